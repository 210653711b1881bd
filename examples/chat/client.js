'use strict';
// A chat client: each line typed (stdin) goes to everyone else; their lines are printed here.
//
//   node examples/chat/client.js <name> [socketFile]
//
// Ends at end of input (Ctrl-D). If the server restarts, the client reconnects and joins again.

const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { Client } = require('native-socket-ipc');

const name = process.argv[2];
const socketFile = process.argv[3] || path.join(os.tmpdir(), 'native-socket-ipc-chat.sock');
if (!name) {
  console.error('usage: node client.js <name> [socketFile]');
  process.exit(2);
}

const client = new Client({ socketFile, maxRetries: 10, retryDelay: { min: 100, max: 2000, factor: 2 } });
let myId = null; // our clientId, once joined

// Every connection, the first and each reconnect, joins (again): a restarted server knows no one.
client.on('connect', async () => {
  try {
    const { id, online } = await client.request('join', { name });
    myId = id;
    console.log(`* joined as ${name}; online: ${online.join(', ')}`);
    for (const text of waiting.splice(0)) client.send('say', { text });
    if (inputEnded) client.close();
  } catch (err) {
    console.error(`* could not join: ${err.code}: ${err.message}`);
    if (inputEnded) client.close();
  }
});
client.on('disconnect', () => {
  myId = null;
  console.log('* lost the server; reconnecting');
});

client.on('message.said', ({ from, name: who, text }) => {
  if (from !== myId) console.log(`[${who}] ${text}`);
});
client.on('message.joined', ({ name: who }) => console.log(`* ${who} joined`));
client.on('message.left', ({ name: who }) => console.log(`* ${who} left`));

client.on('error', (err) => {
  console.error(`* ${err.code}: ${err.message}`);
  process.exitCode = 1;
});
// Closed (end of input, or the server never came back): stop reading, so the process exits.
client.on('close', () => {
  input.close();
  process.stdin.destroy();
});

// Lines typed while not joined (the server ignores those) wait here until the join succeeds.
const waiting = [];
let inputEnded = false;
const input = readline.createInterface({ input: process.stdin });
input.on('line', (text) => {
  if (text.trim() === '') return;
  if (myId === null) waiting.push(text);
  else client.send('say', { text });
});
// End of input: close() sends what was typed and then disconnects; the process exits.
input.on('close', () => {
  inputEnded = true;
  if (waiting.length === 0) client.close();
});

client.connect();
