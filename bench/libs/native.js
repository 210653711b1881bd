'use strict';
// native-socket-ipc, this package, loaded exactly as a user would (its main entry).
//
// Every adapter in this folder exports the same small interface, so each scenario is written once:
//
//   name
//   unsupported?: { [scenario]: reason }     scenarios this library cannot run, and why
//   listen(socketPath, { pattern }) -> Promise<Server>     resolves once listening
//   connect(socketPath, { pattern }) -> Promise<Client>    resolves once connected
//
//   Server: onMessage(fn(message, topic, peer)), onConnection(fn(peer)),
//           send(peer, topic, message), broadcast(topic, message)
//   Client: onMessage(fn(message, topic)), send(topic, message)
//           retries      failed connection attempts before this one succeeded
//   both:   flush()      called after each turn of sends (net-batch writes its batch there)
//           congested()  true while the library reports a backlog (> 1 MiB queued in a socket)
//           drained()    resolves when that backlog has drained
//
//   Request/response (the request scenario), only where the library has it; an adapter without
//   it lists `request` in `unsupported`:
//   Server: handle(topic, fn(message, peer))   fn returns the reply, or a Promise of it
//   Client: request(topic, message) -> Promise<reply>   rejects if the request fails
//
// send/broadcast may return a promise (zeromq); the caller waits for it before the next send.
// `pattern` ('c2s', 's2c', 'rpc', 'request', 'broadcast', 'idle') only matters to zeromq, whose
// socket types differ by messaging pattern. A library error is thrown, so the run fails loudly.

const fs = require('node:fs');
const path = require('node:path');
const { Server, Client } = require(path.join(__dirname, '..', '..'));

const tlsFile = (name) => fs.readFileSync(path.join(__dirname, '..', '..', '__test__', 'fixtures', 'tls', name));

// The same library on another transport (native-tcp.js, native-tls.js): the server listens on a
// free loopback port and leaves the port number in a file at the scenario's socket path, where
// the client (in another process) reads it.
const TRANSPORTS = {
  unix: {
    server: (socketFile) => ({ socketFile }),
    client: (socketFile) => ({ socketFile }),
    listening() {},
  },
  tcp: {
    server: () => ({ address: 'tcp://127.0.0.1:0' }),
    client: (socketFile) => ({ address: `tcp://127.0.0.1:${fs.readFileSync(socketFile, 'utf8')}` }),
    listening: (server, socketFile) => fs.writeFileSync(socketFile, String(server.address().port)),
  },
  tls: {
    server: () => ({ address: 'tls://127.0.0.1:0', tls: { cert: tlsFile('server.pem'), key: tlsFile('server-key.pem') } }),
    client: (socketFile) => ({ address: `tls://localhost:${fs.readFileSync(socketFile, 'utf8')}`, tls: { ca: tlsFile('ca.pem') } }),
    listening: (server, socketFile) => fs.writeFileSync(socketFile, String(server.address().port)),
  },
};

const raise = (err) => {
  throw err;
};

/** Backpressure as the library reports it: send() returned false; drained() waits for 'drain'. */
function backlog(endpoint) {
  let congested = false;
  return {
    flush() {},
    sent(accepted) {
      if (!accepted) congested = true;
    },
    congested: () => congested,
    drained: () =>
      endpoint.drained().then(() => {
        congested = false;
      }),
  };
}

/** The adapter for the library on `transport` (one of TRANSPORTS), with `extra` options on both ends. */
function create(name, transport, extra = {}) {
  function listen(socketFile) {
    const server = new Server({ ...transport.server(socketFile), ...extra });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.once('listening', () => {
        transport.listening(server, socketFile);
        server.off('error', reject);
        server.on('error', raise);
        server.on('messageError', raise);
        const pressure = backlog(server);
        resolve({
          flush: pressure.flush,
          congested: pressure.congested,
          drained: pressure.drained,
          onMessage: (fn) => server.on('message', fn),
          onConnection: (fn) => server.on('connection', fn),
          send: (peer, topic, message) => pressure.sent(server.send(topic, message, peer)),
          broadcast: (topic, message) => pressure.sent(server.broadcast(topic, message)),
          handle: (topic, fn) => server.handle(topic, fn),
        });
      });
      server.listen();
    });
  }

  function connect(socketFile) {
    const client = new Client({ ...transport.client(socketFile), ...extra });
    let retries = 0;
    return new Promise((resolve) => {
      client.on('error', raise);
      client.on('messageError', raise);
      // A failed attempt (e.g. EAGAIN: the server's accept backlog is full) is retried by the
      // library after retryDelay (default 1000 ms).
      client.on('connectError', () => retries++);
      const pressure = backlog(client);
      client.once('connect', () =>
        resolve({
          flush: pressure.flush,
          congested: pressure.congested,
          drained: pressure.drained,
          retries,
          onMessage: (fn) => client.on('message', fn),
          send: (topic, message) => pressure.sent(client.send(topic, message)),
          // The library's own request(), with its default timeout (requestTimeout, 5000 ms).
          request: (topic, message) => client.request(topic, message),
        }),
      );
      client.connect();
    });
  }

  return { name, listen, connect };
}

module.exports = { ...create('native', TRANSPORTS.unix), create, TRANSPORTS };
