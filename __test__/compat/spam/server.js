'use strict';
/**
 * Spam, server side: counts a flood of messages from several clients and keeps track of them
 * through the socket each 'connection' hands over.
 *
 *   node server.js <socketFile> <clients> <messagesPerClient>
 *
 * Written for @crussell52/socket-ipc 0.4. The library comes from one place only, the require
 * below (IPC_LIB, default '@crussell52/socket-ipc'); nothing else changes between libraries.
 *
 * The scenario is bounded: once every client's messages are in, the server checks that each
 * client's arrived complete and in order, closes, and the process exits. Client ids are never
 * printed (UUIDs on socket-ipc, integers elsewhere).
 */
const { Server } = require(process.env.IPC_LIB || '@crussell52/socket-ipc');

const [socketFile, clientsArg, perClientArg] = process.argv.slice(2);
const expectedClients = Number(clientsArg);
const perClient = Number(perClientArg);
const total = expectedClients * perClient;

// A hang must not outlive the scenario: give up loudly instead (unref'd: never keeps us alive).
setTimeout(() => {
  console.log(`gave up: only ${received} of ${total} messages arrived`);
  process.exit(1);
}, 15000).unref();

const server = new Server({ socketFile });

// Note: the socket-ipc example listens for 'listen', which neither library emits.
server.on('listening', () => console.log('listening'));

let clientCount = 0;
let received = 0;
const nextSeq = new Map(); // clientId -> the sequence number expected next from it
let complaints = 0;

server.on('connection', (clientId, socket) => {
  clientCount++;
  nextSeq.set(clientId, 0);
  console.log(`a client connected (${clientCount} connected)`);
  // socket-ipc 0.4 has no per-client "left" event; its answer is the socket's own 'close'.
  // (Not printed as it happens: on socket-ipc the server's 'close' may come before or after the
  // last sockets' 'close', depending on whether the clients' FINs are read in one go. The count
  // is printed at exit instead, where it must be back to 0.)
  socket.on('close', () => clientCount--);
});

process.on('exit', () => console.log(`at exit: ${clientCount} clients connected`));

// Every message counts, whatever its topic...
server.on('message', () => received++);

// ...and the 'spam' ones carry "<seq>:<32 random letters>", in order per client.
server.on('message.spam', (message, clientId) => {
  const m = /^(\d+):[a-z]{32}$/.exec(message);
  if (!nextSeq.has(clientId)) {
    if (complaints++ < 5) console.log('a message from a client that never connected');
  } else if (!m || Number(m[1]) !== nextSeq.get(clientId)) {
    if (complaints++ < 5) console.log(`out of order or mangled: expected #${nextSeq.get(clientId)}, got ${JSON.stringify(message)}`);
  } else {
    nextSeq.set(clientId, nextSeq.get(clientId) + 1);
  }

  if (received === total) {
    console.log(`received ${received} messages from ${nextSeq.size} clients`);
    const complete = [...nextSeq.values()].every((n) => n === perClient);
    console.log(complete && complaints === 0 ? "every client's messages arrived complete and in order" : `NOT complete/in order: ${[...nextSeq.values()]}`);
    console.log('closing the server');
    server.close();
  }
});

server.on('error', (err) => console.log(`error: ${err.message}`));

// 'closed' is socket-ipc's deprecated alias of 'close' (since 0.3.0); old code still listens to it.
server.on('closed', () => console.log("server emitted 'closed'"));
server.on('close', () => console.log("server emitted 'close'"));

server.listen();
