'use strict';
// node-ipc 12.0.0 (CommonJS build). JSON text frames {type, data} ending in "\f"; the message
// type is the topic, and listeners subscribe per type, so this adapter subscribes to the bench
// topic. A Buffer is JSON-encoded and arrives as {type:'Buffer',data:[…]}.
//
// One IPC instance per server or client (the module's default export is a process-wide
// singleton, and its clients are keyed by id). Logging is on by default and is switched off.

const { IPCModule } = require('node-ipc');
const { TOPIC } = require('../util/workload');
const { socketBacklog } = require('../util/backlog');

// Resets and broken pipes happen when the bench kills the peers at the end of a run.
const raiseUnlessHangup = (err) => {
  if (err && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) return;
  throw err;
};

function newIpc() {
  const ipc = new IPCModule();
  ipc.config.silent = true;
  // The default of 100 is enforced through net.Server#maxConnections; the scale scenario opens
  // thousands. This is a per-server setting, nothing system-wide.
  ipc.config.maxConnections = 100000;
  return ipc;
}

function listen(socketPath) {
  const ipc = newIpc();
  return new Promise((resolve) => {
    ipc.serve(socketPath, () => {
      const server = ipc.server;
      server.on('error', raiseUnlessHangup);
      resolve({
        flush() {},
        ...socketBacklog(() => server.sockets),
        // Peers are the net.Sockets themselves: node-ipc addresses clients by socket.
        onMessage: (fn) => server.on(TOPIC, (data, socket) => fn(data, TOPIC, socket)),
        onConnection: (fn) => server.on('connect', (socket) => fn(socket)),
        send: (socket, topic, message) => server.emit(socket, topic, message),
        broadcast: (topic, message) => server.broadcast(topic, message),
      });
    });
    ipc.server.start();
  });
}

let clientCount = 0;

function connect(socketPath) {
  const ipc = newIpc();
  const id = `bench-${process.pid}-${clientCount++}`;
  return new Promise((resolve) => {
    ipc.connectTo(id, socketPath);
    const client = ipc.of[id];
    // Before the connection, 'error' reports failed attempts (e.g. EAGAIN: the server's accept
    // backlog is full), which the library retries after config.retry (default 500 ms).
    let retries = 0;
    const duringConnect = () => retries++;
    client.on('error', duringConnect);
    client.on('connect', function onConnect() {
      client.off('connect', onConnect);
      client.off('error', duringConnect);
      client.on('error', raiseUnlessHangup);
      resolve({
        flush() {},
        ...socketBacklog(() => [client.socket]),
        retries,
        onMessage: (fn) => client.on(TOPIC, (data) => fn(data, TOPIC)),
        send: (topic, message) => client.emit(topic, message),
      });
    });
  });
}

module.exports = {
  name: 'node-ipc',
  listen,
  connect,
  unsupported: {
    // Its `sync` option only holds each emit until the server sends anything back; it matches
    // no reply to a request and gives the caller nothing to await.
    request: "no request/response in node-ipc 12 ('sync' only paces emits, matches no reply)",
  },
};
