'use strict';
/**
 * Resilience, client side: a client that makes a lot of noise about the server's state and
 * rides out a server that keeps going away, relying on socket-ipc's retry and reconnect.
 *
 *   node client.js <socketFile>
 *
 * Written for @crussell52/socket-ipc 0.4. The library comes from one place only, the require
 * below (IPC_LIB, default '@crussell52/socket-ipc'); nothing else changes between libraries.
 *
 * Start it before server.js: it retries until a server is there. Each server says "hello"; the
 * client acknowledges it. When the last server says hello, the client closes and the process exits.
 */
const { Client } = require(process.env.IPC_LIB || '@crussell52/socket-ipc');

const [socketFile] = process.argv.slice(2);

setTimeout(() => {
  console.log('gave up: the scenario did not finish in time');
  process.exit(1);
}, 20000).unref();

// reconnectDelay is given explicitly: socket-ipc 0.4.0 documents 100 ms as its default but uses
// 1000 ms (and treats 0 as unset).
const client = new Client({
  socketFile,
  retryDelay: { min: 100, max: 200 },
  reconnectDelay: { min: 100, max: 200 },
});

// How many failed attempts a wait takes depends on timing, so each wait for a server is printed
// once, however many 'connectError's it takes. The client never gives up from here: socket-ipc
// 0.4.0's close() inside 'connectError' does not stop its retries (the retry timer is armed after
// the event), which is why this scenario ends by closing only while connected (close() while not
// connected emits no 'close' on 0.4.0 either).
let waiting = false;
client.on('connectError', () => {
  if (!waiting) console.log('no server (retrying)');
  waiting = true;
});

let connectSocket;
client.on('connect', (socket) => {
  waiting = false;
  connectSocket = socket;
  console.log('connected to server');
});
client.on('reconnect', (socket) => {
  console.log(`reconnected to server (${socket === connectSocket ? "with the socket 'connect' gave" : "with a socket other than the one 'connect' gave"})`);
});
client.on('disconnect', () => console.log('disconnected from server'));

client.on('message', (message, topic) => console.log(`Heard: [${topic}]`, JSON.stringify(message)));
client.on('message.hello', ({ server, last }) => {
  // Only ever sent while connected: socket-ipc 0.4 refuses a send with no connection (NoServerError).
  client.send('ack', { server });
  if (last) {
    console.log('that was the last server; closing');
    client.close();
  }
});

client.on('error', (err) => console.log(`error: ${err.message}`));
client.on('close', () => console.log('closed'));

client.connect();
