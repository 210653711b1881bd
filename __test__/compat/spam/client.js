'use strict';
/**
 * Spam, client side: floods the server with messages, 300 every 5 ms, and watches the server go
 * away through the socket that 'connect' hands over.
 *
 *   node client.js <socketFile> <messages>
 *
 * Written for @crussell52/socket-ipc 0.4. The library comes from one place only, the require
 * below (IPC_LIB, default '@crussell52/socket-ipc'); nothing else changes between libraries.
 *
 * The scenario is bounded: it sends <messages> messages, waits for the server (which closes once
 * it has them all) to go away, then closes the client and the process exits.
 */
const { Client } = require(process.env.IPC_LIB || '@crussell52/socket-ipc');

const [socketFile, countArg] = process.argv.slice(2);
const count = Number(countArg);

setTimeout(() => {
  console.log(`gave up: sent ${sent} of ${count} messages, the server never went away`);
  process.exit(1);
}, 15000).unref();

// A pool of random 32-letter strings to pick from, as the messages' payload.
const letters = 'abcdefghijklmnopqrstuvwxyz';
const pool = Array.from({ length: 1000 }, () => Array.from({ length: 32 }, () => letters[(Math.random() * 26) | 0]).join(''));

let sent = 0;
let spamInterval;
function spam() {
  spamInterval = setInterval(() => {
    for (let i = 0; i < 300 && sent < count; i++) {
      client.send('spam', `${sent++}:${pool[(Math.random() * pool.length) | 0]}`);
    }
    if (sent === count) {
      clearInterval(spamInterval);
      console.log(`sent ${count} messages`);
    }
  }, 5);
}

const client = new Client({ socketFile });

client.on('connect', (socket) => {
  console.log('connected to server');

  socket.on('end', () => {
    console.log('server went away (end)');
    clearInterval(spamInterval);
  });

  socket.on('close', () => {
    console.log('server went away (close); closing the client');
    clearInterval(spamInterval);
    // Give up on the server instead of waiting for it to come back. This listener was attached
    // in 'connect', before socket-ipc attached its own, so close() comes first and socket-ipc
    // emits 'close' rather than 'disconnect' (and schedules no reconnect).
    client.close();
  });

  spam();
});

client.on('disconnect', () => console.log('disconnect'));
client.on('reconnect', () => console.log('reconnect'));
client.on('error', (err) => console.log(`error: ${err.message}`));

// 'closed' is socket-ipc's deprecated alias of 'close' (since 0.3.0); old code still listens to it.
client.on('closed', () => console.log("client emitted 'closed'"));
client.on('close', () => console.log("client emitted 'close'"));

client.connect();
