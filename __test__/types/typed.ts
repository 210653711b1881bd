// Typed topics (CommonJS, as a .ts file in a package without "type": "module"): one map of
// topic -> message type and one of request topic -> { request, reply }, shared by both ends.

import { Server, Client, Peer } from 'native-socket-ipc';
import type {
  AnyMessages,
  AnyRequests,
  IpcError,
  ReceivedMessage,
  ServerReceivedMessage,
  ServerEvents,
  ClientEvents,
  PeerEvents,
  RequestSpec,
  RequestOf,
  ReplyOf,
  TopicOf,
} from 'native-socket-ipc';
import { expectTypeOf, any } from './check';

interface Chat {
  from: string;
  text: string;
}

interface Messages {
  chat: Chat;
  tick: number;
  bytes: Buffer;
  /** No payload: the message may be left out. */
  ping: undefined;
}

interface Requests {
  sum: { request: number[]; reply: number };
  user: RequestSpec<number, { name: string } | null>;
  /** No request payload. */
  status: { request: void; reply: 'up' | 'down' };
}

// ----- Server -----

const server = new Server<Messages, Requests>({ socketFile: '/tmp/typed.sock' }).listen();
expectTypeOf(server).toBe<Server<Messages, Requests>>();

server.send('chat', { from: 'server', text: 'hi' }, 1);
server.send('tick', 42, 1);
server.send('bytes', Buffer.alloc(4), 1);
server.send('ping', undefined, 1);
server.broadcast('tick', 1);
server.broadcast('ping');
// @ts-expect-error wrong payload for 'tick'
server.send('tick', '42', 1);
// @ts-expect-error a chat message needs `text`
server.send('chat', { from: 'server' }, 1);
// @ts-expect-error unknown topic on a typed Server
server.send('chta', { from: 'server', text: 'hi' }, 1);
// @ts-expect-error typed topics have no "missing topic" ('none' is not in the map)
server.send(undefined, 1, 1);
// @ts-expect-error the message is required unless its type takes undefined
server.broadcast('tick');
// @ts-expect-error wrong payload for broadcast
server.broadcast('chat', 'hi');
const someTopic: string = 'chat';
// @ts-expect-error a plain string is not a known topic
server.broadcast(someTopic, 1);

// 'message': one listener for every topic, narrowed by the topic.
server.on('message', (message, topic, clientId) => {
  expectTypeOf(topic).toBe<'chat' | 'tick' | 'bytes' | 'ping'>();
  expectTypeOf(clientId).toBe<number>();
  if (topic === 'chat') expectTypeOf(message).toBe<Chat>();
  switch (topic) {
    case 'tick':
      expectTypeOf(message).toBe<number>();
      break;
    case 'bytes':
      expectTypeOf(message).toBe<Buffer>();
      break;
  }
});
// 'message.<topic>': the payload of that topic.
server.on('message.chat', (message, clientId) => {
  expectTypeOf(message).toBe<Chat>();
  expectTypeOf(clientId).toBe<number>();
});
server.once('message.tick', (message) => expectTypeOf(message).toBe<number>());
server.off('message.bytes', (message: Buffer) => {});
// @ts-expect-error unknown topic on a typed Server
server.on('message.chta', () => {});
// @ts-expect-error 'tick' carries a number
server.on('message.tick', (message: string) => {});
// @ts-expect-error the 'message' listener's topic is one of the map's
server.on('message', (message: unknown, topic: 'other') => {});
// The other events do not change with the map.
server.on('connection', (clientId) => expectTypeOf(clientId).toBe<number>());
server.on('error', (error) => expectTypeOf(error).toBe<IpcError>());
// @ts-expect-error no such event
server.on('mesage.chat', () => {});

// Requests: the reply's type follows from the topic.
expectTypeOf(server.request(1, 'sum', [1, 2, 3])).toBe<Promise<number>>();
expectTypeOf(server.request(1, 'user', 7, { timeout: 100 })).toBe<Promise<{ name: string } | null>>();
expectTypeOf(server.request(1, 'status')).toBe<Promise<'up' | 'down'>>();
// @ts-expect-error 'sum' takes numbers
server.request(1, 'sum', ['1', '2']);
// @ts-expect-error 'sum' needs its request
server.request(1, 'sum');
// @ts-expect-error unknown request topic
server.request(1, 'product', [1, 2]);
// @ts-expect-error a message topic is not a request topic
server.request(1, 'tick', 1);
// @ts-expect-error with typed requests the reply's type comes from the map, not by hand
server.request<string>(1, 'sum', [1, 2]);
// @ts-expect-error the client id comes first
server.request('sum', 1, [1, 2]);

server.handle('sum', (numbers, clientId) => {
  expectTypeOf(numbers).toBe<number[]>();
  expectTypeOf(clientId).toBe<number>();
  return numbers.reduce((a, b) => a + b, 0);
});
server.handle('user', async (id) => (id === 1 ? { name: 'ada' } : null));
server.handle('status', () => 'up' as const);
// @ts-expect-error 'sum' replies with a number
server.handle('sum', (numbers) => numbers.join('+'));
// @ts-expect-error 'user' replies with { name } or null, also from a promise
server.handle('user', async () => ({ id: 1 }));
// @ts-expect-error unknown request topic
server.handle('product', () => 1);
// @ts-expect-error the handler's request is typed
server.handle('sum', (numbers: string) => 1);
server.removeHandler('sum');
// @ts-expect-error unknown request topic
server.removeHandler('product');

async function serverIterators() {
  for await (const item of server.messages()) {
    expectTypeOf(item).toBe<ServerReceivedMessage<Messages>>();
    if (item.topic === 'chat') expectTypeOf(item.message).toBe<Chat>();
    else if (item.topic === 'tick') expectTypeOf(item.message).toBe<number>();
  }
  for await (const { message, clientId } of server.messages({ topic: 'chat' })) {
    expectTypeOf(message).toBe<Chat>();
    expectTypeOf(clientId).toBe<number>();
  }
  // @ts-expect-error unknown topic on a typed Server
  server.messages({ topic: 'chta' });
}

// ----- Client -----

const client = new Client<Messages, Requests>('/tmp/typed.sock').connect();
client.send('chat', { from: 'ada', text: 'hello' });
client.send('ping');
// @ts-expect-error wrong payload for 'tick'
client.send('tick', 'soon');
// @ts-expect-error unknown topic on a typed Client
client.send('chta', { from: 'ada', text: 'hello' });
// @ts-expect-error the message is required for 'chat'
client.send('chat');

expectTypeOf(client.request('sum', [1, 2])).toBe<Promise<number>>();
expectTypeOf(client.request('status', undefined, { signal: AbortSignal.timeout(100) })).toBe<Promise<'up' | 'down'>>();
// @ts-expect-error 'user' takes a number
client.request('user', 'ada');
// @ts-expect-error a Client's request has no client id
client.request(1, 'sum', [1]);
// @ts-expect-error bad request options
client.request('sum', [1], { timeout: '1s' });
client.handle('status', () => 'down');
// An async function's single literal reply widens to string (TypeScript does not keep a literal
// against a contextual `Reply | PromiseLike<Reply>`): `as const` keeps it.
client.handle('status', async () => 'up' as const);
client.handle('status', () => Promise.resolve('up' as const));
// @ts-expect-error a Client's handler gets no client id
client.handle('sum', (numbers: number[], clientId: number) => 0);
// @ts-expect-error 'status' replies 'up' or 'down'
client.handle('status', () => 'sideways');
// @ts-expect-error 'status' replies 'up' or 'down', also from an async handler
client.handle('status', async () => 'sideways');

client.on('message', (message, topic) => {
  if (topic === 'bytes') expectTypeOf(message).toBe<Buffer>();
});
client.on('message.ping', (message) => expectTypeOf(message).toBe<undefined>());
// @ts-expect-error a Client's topic listener gets no client id
client.on('message.chat', (message: Chat, clientId: number) => {});
// @ts-expect-error unknown topic on a typed Client
client.on('message.chta', () => {});

async function clientIterators() {
  for await (const item of client.messages({ topic: 'tick' })) {
    expectTypeOf(item).toBe<{ topic: 'tick'; message: number }>();
  }
  for await (const item of client.messages()) {
    expectTypeOf(item).toBe<ReceivedMessage<Messages>>();
  }
}

// ----- Peer -----

const peer = new Peer<Messages, Requests>('/tmp/typed-pair.sock').connect();
peer.send('tick', 1);
peer.on('message.tick', (n) => expectTypeOf(n).toBe<number>());
peer.on('role', (role) => expectTypeOf(role).toBe<'server' | 'client'>());
peer.handle('sum', (numbers) => numbers.length);
expectTypeOf(peer.request('user', 1)).toBe<Promise<{ name: string } | null>>();
expectTypeOf(peer.messages({ topic: 'chat' })).toBe<AsyncIterableIterator<{ topic: 'chat'; message: Chat }>>();
// @ts-expect-error wrong payload for 'chat'
peer.send('chat', 'hi');
// @ts-expect-error unknown request topic
peer.request('product', []);

// ----- Typed messages, untyped requests (and the other way round) -----

const messagesOnly = new Server<Messages>('/tmp/typed.sock');
messagesOnly.send('tick', 1, 1);
expectTypeOf(messagesOnly.request(1, 'anything', { any: 'thing' })).toBe<Promise<any>>();
expectTypeOf(messagesOnly.request<number>(1, 'anything')).toBe<Promise<number>>();
messagesOnly.handle('anything', (message, clientId) => expectTypeOf(message).toBe<any>());

const requestsOnly = new Client<AnyMessages, Requests>('/tmp/typed.sock');
requestsOnly.send('anything', { any: 'thing' });
requestsOnly.on('message.anything', (message) => expectTypeOf(message).toBe<any>());
expectTypeOf(requestsOnly.request('sum', [1])).toBe<Promise<number>>();
// @ts-expect-error unknown request topic
requestsOnly.request('anything', 1);

// A type alias works as a map as well as an interface.
type AliasMessages = { 'job.done': { id: string; ms: number } };
type AliasRequests = { 'job.run': { request: { id: string }; reply: boolean } };
const workers = new Server<AliasMessages, AliasRequests>('/tmp/jobs.sock');
workers.on('message.job.done', ({ id, ms }, clientId) => expectTypeOf(ms).toBe<number>());
expectTypeOf(workers.request(1, 'job.run', { id: 'a' })).toBe<Promise<boolean>>();

// A map with known topics and an index signature: the known ones are typed, others are unknown.
interface OpenMessages {
  chat: Chat;
  [topic: string]: unknown;
}
const open = new Client<OpenMessages>('/tmp/typed.sock');
open.send('chat', { from: 'a', text: 'b' });
open.send('whatever', 123);
open.on('message.chat', (message) => expectTypeOf(message).toBe<Chat>());
open.on('message.other', (message) => expectTypeOf(message).toBe<unknown>());
// @ts-expect-error the known topic keeps its type
open.send('chat', 'text');

// A request map must map topics to { request, reply }.
// @ts-expect-error `sum` is not a RequestSpec
type BadServer = Server<Messages, { sum: number }>;
// @ts-expect-error a message map is an object type
type BadMessages = Client<string>;

// The helper types.
expectTypeOf(any<TopicOf<Messages>>()).toBe<'chat' | 'tick' | 'bytes' | 'ping'>();
expectTypeOf(any<TopicOf<AnyMessages>>()).toBe<string>();
expectTypeOf(any<RequestOf<Requests, 'sum'>>()).toBe<number[]>();
expectTypeOf(any<ReplyOf<Requests, 'user'>>()).toBe<{ name: string } | null>();
expectTypeOf(any<ReplyOf<AnyRequests, string>>()).toBe<any>();
expectTypeOf(any<ServerEvents<Messages>['message.chat']>()).toBe<[message: Chat, clientId: number]>();
expectTypeOf(any<ClientEvents<Messages>['message.tick']>()).toBe<[message: number]>();
expectTypeOf(any<PeerEvents['disconnect']>()).toBe<[reason?: IpcError]>();
expectTypeOf(any<ServerReceivedMessage<Messages, 'tick'>>()).toBe<{ topic: 'tick'; message: number; clientId: number }>();

// Functions can take typed endpoints.
function relay(from: Client<Messages, Requests>, to: Server<Messages, Requests>) {
  from.on('message.chat', (chat) => to.broadcast('chat', chat));
}
relay(client, server);
// @ts-expect-error a Server of other messages is not a Server of these
relay(client, workers);

export { serverIterators, clientIterators };
