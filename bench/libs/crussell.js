'use strict';
// @crussell52/socket-ipc 0.4.0, the API native-socket-ipc adopts. JSON text frames ending in
// "\0\0"; a Buffer is JSON-encoded by the library and arrives as {type:'Buffer',data:[…]}.
// Both ends hand out their net.Socket ('connection' / 'connect'), so a sender can watch
// writableLength and pause, which the bench does.

const { Server, Client } = require('@crussell52/socket-ipc');
const { socketBacklog } = require('../util/backlog');

const raise = (err) => {
  throw err;
};

function listen(socketFile) {
  const server = new Server({ socketFile });
  const sockets = new Map(); // client id -> net.Socket
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.on('connection', (id, socket) => {
      sockets.set(id, socket);
      // The library attaches no 'error' listener to accepted sockets (a reset would crash the
      // server); without this, killing the clients at the end of a run could kill the server
      // before it reported.
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(id));
    });
    server.once('listening', () => {
      server.off('error', reject);
      server.on('error', raise);
      resolve({
        flush() {},
        ...socketBacklog(() => sockets.values()),
        onMessage: (fn) => server.on('message', fn),
        onConnection: (fn) => server.on('connection', (id) => fn(id)),
        send: (peer, topic, message) => server.send(topic, message, peer),
        broadcast: (topic, message) => server.broadcast(topic, message),
      });
    });
    server.listen();
  });
}

function connect(socketFile) {
  const client = new Client({ socketFile });
  let retries = 0;
  return new Promise((resolve) => {
    client.on('error', raise);
    // A failed attempt (e.g. EAGAIN: the server's accept backlog is full) is retried by the
    // library after retryDelay (default 1000 ms).
    client.on('connectError', () => retries++);
    client.once('connect', (socket) =>
      resolve({
        flush() {},
        ...socketBacklog(() => [socket]),
        retries,
        onMessage: (fn) => client.on('message', fn),
        send: (topic, message) => client.send(topic, message),
      }),
    );
    client.connect();
  });
}

module.exports = {
  name: 'crussell',
  listen,
  connect,
  unsupported: { request: 'no request/response in @crussell52/socket-ipc 0.4.0, only one-way messages' },
};
