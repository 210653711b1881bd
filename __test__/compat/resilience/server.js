'use strict';
/**
 * Resilience, server side: a server with a terrible uptime record. Each server says "hello" to
 * the client that connects, shuts down as soon as the client has acknowledged it, and a
 * replacement starts on the same socket file a second later. The last one stays up until the
 * client leaves, then closes too.
 *
 *   node server.js <socketFile> <servers>
 *
 * Written for @crussell52/socket-ipc 0.4. The library comes from one place only, the require
 * below (IPC_LIB, default '@crussell52/socket-ipc'); nothing else changes between libraries.
 *
 * Meant for one client (client.js). Client ids are printed as "client 1", "client 2"... in the
 * order each server saw them connect (UUIDs on socket-ipc, integers elsewhere).
 */
const { Server } = require(process.env.IPC_LIB || '@crussell52/socket-ipc');

const [socketFile, serversArg] = process.argv.slice(2);
const servers = Number(serversArg);
const RESTART_DELAY = 1000;

setTimeout(() => {
  console.log('gave up: the scenario did not finish in time');
  process.exit(1);
}, 20000).unref();

let server;
let nextServerNum = 1;
let openConnections = 0; // connections whose socket has not emitted 'close' yet, over all servers

function createServer() {
  const serverNum = nextServerNum++;
  const last = serverNum === servers;
  const labels = new Map(); // clientId -> "client <n>"
  const label = (clientId) => labels.get(clientId) || 'a client that never connected';
  let closing = false;
  console.log(`creating server (${serverNum})${serverNum > 1 ? ` (connections of the old one still open: ${openConnections})` : ''}`);

  server = new Server({ socketFile });
  server.on('listening', () => console.log(`server (${serverNum}) is listening`));

  server.on('connection', (clientId, socket) => {
    labels.set(clientId, `client ${labels.size + 1}`);
    console.log(`server (${serverNum}): ${label(clientId)} connected... saying "hello"`);
    server.send('hello', { text: `Hello from server ${serverNum}!`, server: serverNum, last }, clientId);

    // The socket-ipc 0.4 way to hear a client leave (0.2 dropped 'connectionClose').
    // When this server is shutting down, it is not printed as it happens: socket-ipc 0.4 emits
    // the server's 'close' before its sockets' 'close' (net.Server's 'close' is a tick away, a
    // socket's waits for its handle), an order no program should depend on. The next server says
    // instead how many of these sockets are still open (none, by then).
    openConnections++;
    socket.on('close', () => {
      openConnections--;
      if (closing) return;
      console.log(`server (${serverNum}): ${label(clientId)} disconnected`);
      if (last) {
        console.log(`server (${serverNum}): the client left; closing for good`);
        closing = true;
        server.close();
      }
    });
  });

  // The first connection decides this server's fate.
  server.once('connection', () => {
    console.log(last ? `server (${serverNum}) is the last one: it stays up until the client leaves` : `server (${serverNum}) will shut down once it has been acknowledged`);
  });

  server.on('message.ack', (message, clientId) => {
    console.log(`server (${serverNum}): ${label(clientId)} acknowledged: ${JSON.stringify(message)}`);
    if (!last) {
      console.log(`server (${serverNum}) shutting down`);
      closing = true;
      server.close();
    }
  });

  // When a server closes, a replacement starts after a second. (socket-ipc's listening socket
  // removes its file when it closes, so the replacement never needs socket-ipc's stale-socket
  // probe, whose connection 0.4.0 never closes and which the live server would count as a
  // client.)
  server.on('close', () => {
    if (last) {
      console.log(`server (${serverNum}) closed. That was the last one.`);
      return;
    }
    console.log(`server (${serverNum}) closed. Starting a replacement server in 1 second.`);
    setTimeout(createServer, RESTART_DELAY);
  });

  server.on('error', (err) => console.log(`server (${serverNum}) error: ${err.message}`));

  server.listen();
}

createServer();
