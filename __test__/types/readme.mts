// The TypeScript examples of the README ("## TypeScript"), kept compiling. The lines the README
// says do not compile are marked here with @ts-expect-error.

import { Server, Client, Peer } from 'native-socket-ipc';

// protocol.ts
export interface Messages {
  chat: { from: string; text: string };
  tick: number;
  shutdown: undefined; // no payload: the message may be left out
}

export interface Requests {
  sum: { request: number[]; reply: number };
  status: { request: void; reply: 'up' | 'down' };
}

// Typed events
declare const untypedServer: Server;
declare const untypedClient: Client;
declare const peer: Peer;
untypedServer.on('connectionClose', (clientId, reason) => {});
untypedClient.on('disconnect', (reason) => {});
peer.on('role', (role) => {});
// @ts-expect-error a Server has no 'connect' event
untypedServer.on('connect', () => {});
// @ts-expect-error a Client's 'drain' has no arguments
untypedClient.on('drain', (clientId) => {});

// server.ts
const server = new Server<Messages, Requests>({ socketFile: '/tmp/app.sock' }).listen();

server.on('message.chat', (chat, clientId) => {
  server.broadcast('chat', { from: chat.from, text: chat.text });
});
server.on('message', (message, topic, clientId) => {
  if (topic === 'tick') console.log(message.toFixed(0));
});
server.handle('sum', (numbers) => numbers.reduce((a, b) => a + b, 0));

// @ts-expect-error 'tick' carries a number
server.send('tick', 'soon', 1);
// @ts-expect-error 'chta' is not a topic of Messages
server.broadcast('chta', {});
// @ts-expect-error 'sum' replies with a number
server.handle('sum', (numbers) => numbers.join('+'));

// client.ts
const client = new Client<Messages, Requests>({ socketFile: '/tmp/app.sock' }).connect();

const total: number = await client.request('sum', [1, 2, 3]);
const state: 'up' | 'down' = await client.request('status');
client.send('shutdown');

for await (const { topic, message } of client.messages()) {
  if (topic === 'chat') console.log(`${message.from}: ${message.text}`);
}
for await (const { message } of client.messages({ topic: 'tick' })) {
  const tick: number = message;
}

// The notes
interface OpenMessages {
  chat: Messages['chat'];
  [topic: string]: unknown;
}
new Client<OpenMessages>('/tmp/app.sock').send('anything', 1);
client.handle('status', async () => 'up' as const);
// @ts-expect-error with a Requests map the reply's type comes from the map
client.request<number>('sum', [1, 2]);
// @ts-expect-error request topics are not message topics
client.send('sum', [1, 2]);
// @ts-expect-error nor are they 'message.<topic>' events
client.on('message.sum', () => {});

export { total, state };
