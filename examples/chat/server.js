'use strict';
// A chat server: everyone who joins hears everyone else. A client joins with a request
// ('join', { name }) and gets its id back; every line it sends ('say') is broadcast to all
// clients as 'said' { from, name, text }, and each client skips its own. The others hear of
// joins ('joined') and leaves ('left').
//
//   node examples/chat/server.js [socketFile]        (default: <tmpdir>/native-socket-ipc-chat.sock)
//
// Runs until Ctrl-C (SIGINT) or SIGTERM.

const os = require('node:os');
const path = require('node:path');
const { Server } = require('native-socket-ipc');

const socketFile = process.argv[2] || path.join(os.tmpdir(), 'native-socket-ipc-chat.sock');
const server = new Server({ socketFile });
const names = new Map(); // clientId -> name

server.handle('join', ({ name }, clientId) => {
  name = String(name).slice(0, 32) || `guest${clientId}`;
  names.set(clientId, name);
  console.log(`${name} joined (client ${clientId})`);
  // Tell the others; not the joiner, who learns its id from this reply, after this message.
  for (const id of names.keys()) if (id !== clientId) server.send('joined', { from: clientId, name }, id);
  return { id: clientId, online: [...names.values()] };
});

server.on('message.say', ({ text }, clientId) => {
  const name = names.get(clientId);
  if (name === undefined) return; // said something before joining
  server.broadcast('said', { from: clientId, name, text: String(text) });
});

server.on('connectionClose', (clientId) => {
  const name = names.get(clientId);
  if (name === undefined) return;
  names.delete(clientId);
  console.log(`${name} left`);
  server.broadcast('left', { from: clientId, name });
});

server.on('listening', () => console.log(`chat server listening on ${socketFile}`));
server.on('error', (err) => {
  console.error(`${err.code}: ${err.message}`);
  process.exitCode = 1;
  server.close();
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close());
server.listen();
