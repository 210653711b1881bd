// ES module: `import` from the package name, and the promise-based API (messages(), closed(),
// `await using`, events.once/on with an AbortSignal), with top-level await.

import { Server, Client, Peer } from 'native-socket-ipc';
import * as ipc from 'native-socket-ipc';
import type { IpcError, ReceivedMessage, ServerReceivedMessage } from 'native-socket-ipc';
import { once, on, EventEmitter } from 'node:events';
import { expectTypeOf } from './check.js';

expectTypeOf(ipc.Server).toBe<typeof Server>();
expectTypeOf(ipc.Client).toBe<typeof Client>();
expectTypeOf(ipc.Peer).toBe<typeof Peer>();

interface Messages {
  chat: { from: string; text: string };
  tick: number;
}
interface Requests {
  sum: { request: number[]; reply: number };
}

const controller = new AbortController();
const { signal } = controller;

// listen() and connect() return the object, so they chain from the constructor.
const server = new Server<Messages, Requests>({ socketFile: '/tmp/esm.sock' }).listen();
await once(server, 'listening', { signal });
expectTypeOf(server.listening).toBe<boolean>();
server.handle('sum', (numbers) => numbers.reduce((a, b) => a + b, 0));

const client = new Client<Messages, Requests>({ socketFile: '/tmp/esm.sock' }).connect();
await once(client, 'connect', { signal });
expectTypeOf(client.connected).toBe<boolean>();
expectTypeOf(await client.request('sum', [1, 2, 3], { signal })).toBe<number>();
client.send('chat', { from: 'esm', text: 'hello' });

// The server's messages, as an async iterator.
for await (const { topic, message, clientId } of server.messages({ signal })) {
  expectTypeOf(clientId).toBe<number>();
  if (topic === 'chat') {
    expectTypeOf(message).toBe<{ from: string; text: string }>();
    server.send('chat', { from: 'server', text: `re: ${message.text}` }, clientId);
    break; // return(): removes the iterator's listeners
  }
}

// One topic only.
const ticks = client.messages({ topic: 'tick', signal: AbortSignal.timeout(1000) });
expectTypeOf(ticks).toBe<AsyncIterableIterator<{ topic: 'tick'; message: number }>>();
const first = await ticks.next();
if (!first.done) expectTypeOf(first.value.message).toBe<number>();
await ticks.return?.();

// Aborting rejects with an AbortError (code 'ABORT_ERR').
try {
  for await (const item of client.messages({ signal })) {
    expectTypeOf(item).toBe<ReceivedMessage<Messages>>();
    controller.abort();
  }
} catch (err) {
  if (err instanceof Error && err.name === 'AbortError') {
    // expected
  }
}

// events.on over a typed endpoint still works (its items are untyped arrays).
for await (const args of on(server, 'message.tick', { signal: AbortSignal.timeout(10) })) {
  expectTypeOf(args).toBe<any[]>();
  break;
}

// closed(): a promise of 'close'.
client.close();
await client.closed();
server.close();
expectTypeOf(server.closed()).toBe<Promise<void>>();
await server.closed();

// `await using`: close() and closed() at the end of the block.
{
  await using scoped = new Server<Messages>({ socketFile: '/tmp/esm-scoped.sock' }).listen();
  await using peer = new Peer('/tmp/esm-pair.sock').connect();
  await once(peer, 'role');
  scoped.broadcast('tick', Date.now());
}
const disposable: AsyncDisposable = new Client('/tmp/esm.sock');

// Typed endpoints are still EventEmitters, and fit where the untyped classes are expected.
const asEmitter: EventEmitter = server;
const asNodeEmitter: NodeJS.EventEmitter = client;
function closeAll(endpoints: Array<Server | Client | Peer>) {
  return Promise.all(endpoints.map((endpoint) => endpoint.close().closed()));
}
await closeAll([server, client, new Peer<Messages>('/tmp/esm-pair.sock')]);

// The errors a listener gets are IpcErrors with a code.
client.on('error', (error) => {
  expectTypeOf(error).toBe<IpcError>();
  if (error.code === 'ERR_IPC_RETRIES_EXHAUSTED') console.error(error.message);
});

// @ts-expect-error messages() takes an options object, not a topic string
server.messages('chat');
// @ts-expect-error unknown topic on a typed Client
client.messages({ topic: 'chta' });
// @ts-expect-error closed() takes no callback; it returns a promise
client.closed(() => {});
// @ts-expect-error listening is a Server's; a Client has `connected`
client.listening;
// @ts-expect-error connected is a Client's and a Peer's; a Server has `listening`
server.connected;
// @ts-expect-error connected is read-only
client.connected = false;
// @ts-expect-error the iterator's items of one topic carry that topic's type
expectTypeOf(ticks).toBe<AsyncIterableIterator<ServerReceivedMessage<Messages, 'tick'>>>();
// @ts-expect-error a typed 'message.tick' listener gets a number
server.on('message.tick', (message: string, clientId: number) => {});

export { disposable, asEmitter, asNodeEmitter };
