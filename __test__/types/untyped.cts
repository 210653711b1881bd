// CommonJS, no type arguments: code written before the typed topics existed compiles as before,
// payloads are `any`, and every event of every class has its listener's arguments typed.

import ipc = require('native-socket-ipc');
import { Server, Client, Peer } from 'native-socket-ipc';
import type {
  IpcError,
  ClientInfo,
  BoundAddress,
  ServerOptions,
  ClientOptions,
  PeerOptions,
  IpcErrorCode,
  ConnectionSocket,
  Transcoder,
  MessageWrapper,
} from 'native-socket-ipc';
import { expectTypeOf, any } from './check';

// The require form and the named imports are the same classes.
expectTypeOf(ipc.Server).toBe<typeof Server>();
expectTypeOf(ipc.Client).toBe<typeof Client>();
expectTypeOf(ipc.Peer).toBe<typeof Peer>();

// ----- Server -----

const server = new Server({ socketFile: '/tmp/app.sock' });
expectTypeOf(server).toBe<Server>();
expectTypeOf(new Server('/tmp/app.sock').listen()).toBe<Server>();
expectTypeOf(server.listen()).toBe<Server>();
expectTypeOf(server.listening).toBe<boolean>();
// @ts-expect-error listening is a read-only getter
server.listening = true;

expectTypeOf(server.send('topic', { any: 'thing' }, 1)).toBe<boolean>();
server.send(undefined, 'no topic means none', 1);
server.send('bytes', Buffer.from('x'), 1);
expectTypeOf(server.broadcast('topic', [1, 2, 3])).toBe<boolean>();
server.broadcast('nothing');
// @ts-expect-error send needs a client id
server.send('topic', 'message');
// @ts-expect-error the client id is a number
server.send('topic', 'message', '1');
// @ts-expect-error a topic is a string
server.send(42, 'message', 1);
expectTypeOf(server.drained()).toBe<Promise<void>>();

// Requests: the reply is `any`, or the type given by hand, as before.
expectTypeOf(server.request(1, 'sum', [1, 2])).toBe<Promise<any>>();
expectTypeOf(server.request<number>(1, 'sum', [1, 2], { timeout: 100 })).toBe<Promise<number>>();
server.request(1, 'reload');
server.request(1, 'sum', [1], { signal: AbortSignal.timeout(10) });
// @ts-expect-error the server's request starts with the client id
server.request('sum', [1, 2]);
// @ts-expect-error timeout is a number
server.request(1, 'sum', [1], { timeout: '5s' });
// @ts-expect-error no such request option
server.request(1, 'sum', [1], { retries: 3 });

expectTypeOf(server.handle('sum', (numbers, clientId) => {
  expectTypeOf(numbers).toBe<any>();
  expectTypeOf(clientId).toBe<number>();
  return numbers.reduce((a: number, b: number) => a + b, 0);
})).toBe<Server>();
server.handle('async', async (message: string) => message.length);
server.handle(undefined, () => undefined);
// @ts-expect-error a handler is a function
server.handle('sum', 42);
expectTypeOf(server.removeHandler('sum')).toBe<boolean>();

expectTypeOf(server.clientInfo(1)).toBe<ClientInfo | undefined>();
expectTypeOf(server.address()).toBe<BoundAddress | null>();
expectTypeOf(server.close()).toBe<Server>();
expectTypeOf(server.closed()).toBe<Promise<void>>();
expectTypeOf(server[Symbol.asyncDispose]()).toBe<Promise<void>>();
expectTypeOf(server.ref().unref()).toBe<Server>();

async function serverMessages() {
  for await (const item of server.messages()) {
    expectTypeOf(item).toBe<{ topic: string; message: any; clientId: number }>();
  }
  for await (const { topic, message, clientId } of server.messages({ topic: 'chat', signal: AbortSignal.timeout(10) })) {
    expectTypeOf(topic).toBe<'chat'>();
    expectTypeOf(message).toBe<any>();
    expectTypeOf(clientId).toBe<number>();
  }
  // @ts-expect-error a topic is a string
  server.messages({ topic: 1 });
  // @ts-expect-error the signal is an AbortSignal
  server.messages({ signal: true });
}

// Every Server event, with its listener's arguments.
server
  .on('listening', () => {})
  .on('connection', (clientId) => expectTypeOf(clientId).toBe<number>())
  .on('connection', (clientId, socket) => {
    expectTypeOf(socket).toBe<ConnectionSocket>();
    expectTypeOf(socket.clientId).toBe<number | undefined>();
  })
  .on('message', (message, topic, clientId) => {
    expectTypeOf(message).toBe<any>();
    expectTypeOf(topic).toBe<string>();
    expectTypeOf(clientId).toBe<number>();
  })
  .on('message.hello', (message, clientId) => {
    expectTypeOf(message).toBe<any>();
    expectTypeOf(clientId).toBe<number>();
  })
  .on('messageError', (error, clientId) => {
    expectTypeOf(error).toBe<IpcError>();
    expectTypeOf(clientId).toBe<number>();
  })
  .on('authError', (error, info) => {
    expectTypeOf(error).toBe<IpcError>();
    expectTypeOf(info).toBe<ClientInfo>();
  })
  .on('connectionClose', (clientId, reason) => {
    expectTypeOf(clientId).toBe<number>();
    expectTypeOf(reason).toBe<IpcError | undefined>();
  })
  .on('drain', (clientId) => expectTypeOf(clientId).toBe<number>())
  .on('slowClient', (clientId) => expectTypeOf(clientId).toBe<number>())
  .on('clientDisconnect', (clientId, reason) => {
    expectTypeOf(clientId).toBe<number>();
    expectTypeOf(reason).toBe<IpcError | undefined>();
  })
  .on('clientReconnect', (clientId) => expectTypeOf(clientId).toBe<number>())
  .on('close', () => {})
  .on('closed', () => {})
  .on('error', (error) => {
    expectTypeOf(error).toBe<IpcError>();
    expectTypeOf(error.code).toBe<IpcErrorCode>();
    expectTypeOf(error.address).toBe<string | undefined>();
    if (error.code === 'ERR_IPC_NOT_SUPPORTED' || error.code === 'EADDRINUSE') error.message;
  });

// A topic built at run time is a 'message.<topic>' event too.
const topic: string = 'late';
server.on(`message.${topic}`, (message, clientId) => expectTypeOf(clientId).toBe<number>());

// The other listener methods take the same events.
const onConnection = (clientId: number) => {};
server.once('connection', onConnection);
server.addListener('connection', onConnection);
server.prependListener('connection', onConnection);
server.prependOnceListener('connection', onConnection);
server.off('connection', onConnection);
server.removeListener('connection', onConnection);
server.emit('connection', 1, any<ConnectionSocket>());
server.listenerCount('connection');
server.removeAllListeners('connection');

// @ts-expect-error no such event
server.on('connect', () => {});
// @ts-expect-error 'message' topics are events only with the dot: 'message.<topic>'
server.on('messagehello', () => {});
// @ts-expect-error 'connection' gives a number, not a string
server.on('connection', (clientId: string) => {});
// @ts-expect-error 'listening' has no arguments
server.on('listening', (what: string) => {});
// @ts-expect-error 'authError' gives the error first
server.once('authError', (info: ClientInfo) => {});
// @ts-expect-error 'drain' on a server names the client
server.off('drain', (clientId: string) => {});
// @ts-expect-error no such event
server.prependListener('disconnect', () => {});
// @ts-expect-error no such event
server.addListener('role', () => {});
// @ts-expect-error emit checks the arguments too
server.emit('connection', 'one');
// @ts-expect-error 'connection' passes a socket with the id
server.emit('connection', 1);
// @ts-expect-error 'closed' has no arguments, as 'close'
server.on('closed', (hadError: boolean) => {});
// @ts-expect-error a listener is a function
server.on('close', 'listener');

// ----- Client -----

const client = new Client({ socketFile: '/tmp/app.sock', retryDelay: { min: 100, max: 1000, factor: 2 } });
expectTypeOf(client.connect()).toBe<Client>();
expectTypeOf(client.connected).toBe<boolean>();
expectTypeOf(client.send('topic', { any: 'thing' })).toBe<boolean>();
client.send('none');
client.send(undefined, 1);
// @ts-expect-error a client sends to its server: no client id
client.send('topic', 'message', 1);
expectTypeOf(client.drained()).toBe<Promise<void>>();
expectTypeOf(client.request('sum', [1, 2, 3])).toBe<Promise<any>>();
expectTypeOf(client.request<number>('sum', [1, 2, 3], { timeout: 1000 })).toBe<Promise<number>>();
client.request('whoami');
// @ts-expect-error a client's request has no client id
client.request(1, 'sum', [1, 2]);
client.handle('reload', (message) => expectTypeOf(message).toBe<any>());
// @ts-expect-error a client's handler gets no client id
client.handle('reload', (message: unknown, clientId: number) => {});
expectTypeOf(client.removeHandler('reload')).toBe<boolean>();
expectTypeOf(client.close()).toBe<Client>();
expectTypeOf(client.closed()).toBe<Promise<void>>();
expectTypeOf(client[Symbol.asyncDispose]()).toBe<Promise<void>>();
expectTypeOf(client.ref().unref()).toBe<Client>();

async function clientMessages() {
  for await (const item of client.messages({ signal: AbortSignal.timeout(10) })) {
    expectTypeOf(item).toBe<{ topic: string; message: any }>();
  }
}

client
  .on('connect', () => {})
  .on('reconnect', () => {})
  .on('connect', (socket) => expectTypeOf(socket).toBe<ConnectionSocket>())
  .on('reconnect', (socket) => expectTypeOf(socket).toBe<ConnectionSocket>())
  .on('closed', () => {})
  .on('disconnect', (reason) => expectTypeOf(reason).toBe<IpcError | undefined>())
  .on('connectError', (error) => expectTypeOf(error).toBe<IpcError>())
  .on('drain', () => {})
  .on('message', (message, topic) => {
    expectTypeOf(message).toBe<any>();
    expectTypeOf(topic).toBe<string>();
  })
  .on('message.hello', (message) => expectTypeOf(message).toBe<any>())
  .on('messageError', (error) => expectTypeOf(error).toBe<IpcError>())
  .on('close', () => {})
  .on('error', (error) => expectTypeOf(error.undelivered).toBe<number | undefined>());

// @ts-expect-error a Client has no 'connection' (that is the server's)
client.on('connection', () => {});
// @ts-expect-error a Client has no 'role' (that is the Peer's)
client.once('role', () => {});
// @ts-expect-error a Client has no 'authError'
client.on('authError', () => {});
// @ts-expect-error a client's 'message' has no client id
client.on('message', (message: unknown, topic: string, clientId: number) => {});
// @ts-expect-error a client's 'drain' has no arguments
client.on('drain', (clientId: number) => {});

// ----- Peer -----

const peer = new Peer('/tmp/pair.sock');
expectTypeOf(peer.connect()).toBe<Peer>();
expectTypeOf(peer.role).toBe<'server' | 'client' | null>();
expectTypeOf(peer.connected).toBe<boolean>();
peer.send('topic', 'message');
expectTypeOf(peer.request('whoami')).toBe<Promise<any>>();
expectTypeOf(peer.request<number>('whoami')).toBe<Promise<number>>();
peer.handle('whoami', () => process.pid);
peer.removeHandler('whoami');
expectTypeOf(peer.drained()).toBe<Promise<void>>();
expectTypeOf(peer.closed()).toBe<Promise<void>>();
expectTypeOf(peer.close().ref().unref()).toBe<Peer>();
expectTypeOf(peer.messages()).toBe<AsyncIterableIterator<{ topic: string; message: any }>>();

peer
  .on('role', (role) => expectTypeOf(role).toBe<'server' | 'client'>())
  .on('connect', () => {})
  .on('disconnect', (reason) => expectTypeOf(reason).toBe<IpcError | undefined>())
  .on('connectError', (error) => expectTypeOf(error).toBe<IpcError>())
  .on('authError', (error, info) => expectTypeOf(info).toBe<ClientInfo>())
  .on('drain', () => {})
  .on('message', (message, topic) => expectTypeOf(topic).toBe<string>())
  .on('message.ping', (message) => expectTypeOf(message).toBe<any>())
  .on('messageError', (error) => expectTypeOf(error).toBe<IpcError>())
  .on('close', () => {})
  .on('error', (error) => expectTypeOf(error).toBe<IpcError>());

// @ts-expect-error a Peer emits no 'reconnect' (it has 'role' and 'connect')
peer.on('reconnect', () => {});
// @ts-expect-error a Peer's 'connect' passes no socket
peer.on('connect', (socket: ConnectionSocket) => {});
// @ts-expect-error a Peer has no deprecated 'closed' (socket-ipc has no Peer)
peer.on('closed', () => {});

// ----- The socket argument -----

// socket-ipc's examples: count clients by their socket's 'close'; notice the server going away.
let clientCount = 0;
server.on('connection', (id, socket) => {
  clientCount++;
  socket.on('close', () => clientCount--);
});
client.on('connect', (socket) => {
  socket.on('end', () => {});
  socket.on('close', (hadError) => expectTypeOf(hadError).toBe<boolean>());
  socket.on('error', (error) => expectTypeOf(error).toBe<IpcError>());
  expectTypeOf(socket.destroyed).toBe<boolean>();
  expectTypeOf(socket.readyState).toBe<'open' | 'closed'>();
  expectTypeOf(socket.remoteAddress).toBe<string | undefined>();
  expectTypeOf(socket.remotePort).toBe<number | undefined>();
  expectTypeOf(socket.remoteFamily).toBe<'IPv4' | 'IPv6' | undefined>();
  expectTypeOf(socket.end()).toBe<ConnectionSocket>();
  expectTypeOf(socket.destroy(new Error('done'))).toBe<ConnectionSocket>();
  // @ts-expect-error not a net.Socket: nothing is written through it (use client.send())
  socket.write('data');
  // @ts-expect-error not a net.Socket: no 'data' event (use 'message')
  socket.on('data', (chunk: Buffer) => {});
  // @ts-expect-error 'close' gives hadError, a boolean
  socket.on('close', (hadError: string) => {});
  // @ts-expect-error the properties are read-only
  socket.destroyed = true;
});
// @ts-expect-error a role is a string
peer.on('role', (role: number) => {});

// ----- Options -----

const serverOptions: ServerOptions = {
  address: 'tcp://127.0.0.1:0',
  tls: { cert: 'PEM', key: Buffer.from('PEM'), ca: ['PEM'], requestCert: true },
  secret: 'a secret of sixteen bytes or more',
  allow: (info) => 'pid' in info && info.uid === 0,
  delivery: 'at-least-once',
  sessionTimeout: 10000,
  maxConnections: Infinity,
  protocol: 'native',
};
new Server(serverOptions);
new Server({ socketFile: '/tmp/app.sock', protocol: 'socket-ipc', allow: { uids: [1000] }, mode: 0o600 });
new Client({ address: { host: 'localhost', port: 9000, family: 'IPv4' }, protocol: 'socket-ipc', maxRetries: 3 });
const clientOptions: ClientOptions = { socketFile: '/tmp/app.sock', reconnectDelay: 100, maxQueue: 10 };
new Client(clientOptions);
const peerOptions: PeerOptions = { socketFile: '/tmp/pair.sock', mode: 0o600, protocol: 'native' };
new Peer(peerOptions);

// @ts-expect-error options are an object or a socket path
new Server(9000);
// @ts-expect-error no such protocol
new Server({ socketFile: '/tmp/app.sock', protocol: 'json' });
// @ts-expect-error no such protocol
new Client({ socketFile: '/tmp/app.sock', protocol: 'node-ipc' });
// @ts-expect-error a Peer speaks only the native protocol
new Peer({ socketFile: '/tmp/pair.sock', protocol: 'socket-ipc' });
// @ts-expect-error delivery is 'at-most-once' or 'at-least-once'
new Client({ socketFile: '/tmp/app.sock', delivery: 'exactly-once' });
// @ts-expect-error maxRetries is a number
new Client({ socketFile: '/tmp/app.sock', maxRetries: 'forever' });
// @ts-expect-error retryDelay is ms or { min, max, factor }
new Client({ socketFile: '/tmp/app.sock', retryDelay: '1s' });
// @ts-expect-error allow is a Server option
new Client({ socketFile: '/tmp/app.sock', allow: { uids: [0] } });
// @ts-expect-error the family of a TCP address is 0, 4, 6, 'IPv4' or 'IPv6'
new Client({ address: { host: 'localhost', port: 9000, family: 5 } });
// @ts-expect-error the allow function gets the client's info
new Server({ socketFile: '/tmp/app.sock', allow: (info: string) => true });

// socket-ipc's transcoder: { socketEncoding, createEncoder, createDecoder }.
const transcoder: Transcoder = {
  socketEncoding: 'utf8',
  createEncoder: () => (wrapper, callback) => {
    expectTypeOf(wrapper).toBe<MessageWrapper>();
    try {
      callback(null, JSON.stringify(wrapper) + '\n');
    } catch (err) {
      callback(err as Error);
    }
  },
  createDecoder: () => {
    let rest = '';
    return (chunk, callback) => {
      expectTypeOf(chunk).toBe<string>();
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      callback(null, lines.map((line) => JSON.parse(line) as MessageWrapper));
    };
  },
};
new Server({ socketFile: '/tmp/app.sock', transcoder });
new Client({ socketFile: '/tmp/app.sock', transcoder: null });
new Peer({ socketFile: '/tmp/pair.sock', transcoder });
new Client({ socketFile: '/tmp/app.sock', transcoder: { createEncoder: () => (w, cb) => cb(null, Buffer.from('x')), createDecoder: () => (c, cb) => cb(null, []) } });
new Client({ socketFile: '/tmp/app.sock', transcoder: { createEncoder: () => (w, cb) => cb(null, null), createDecoder: () => (c, cb) => cb(new Error('bad')) } });
// @ts-expect-error a transcoder needs createDecoder too
new Server({ socketFile: '/tmp/app.sock', transcoder: { createEncoder: transcoder.createEncoder } });
// @ts-expect-error socketEncoding is an encoding Buffer knows
new Server({ socketFile: '/tmp/app.sock', transcoder: { ...transcoder, socketEncoding: 'utf9' } });
// @ts-expect-error an encoder produces a string or bytes
new Server({ socketFile: '/tmp/app.sock', transcoder: { ...transcoder, createEncoder: () => (w, cb) => cb(null, 42) } });
// @ts-expect-error a decoder calls back with an array of { topic, message }
new Server({ socketFile: '/tmp/app.sock', transcoder: { ...transcoder, createDecoder: () => (c, cb) => cb(null, { topic: 't', message: 1 }) } });

export { serverMessages, clientMessages };

// localEndpoint(): one endpoint name for every platform, usable wherever an address is.
{
  const endpointFor = ipc.localEndpoint;
  expectTypeOf(endpointFor('my-app')).toBe<string>();
  new Server({ socketFile: endpointFor('my-app') });
  // @ts-expect-error the name is a string
  endpointFor(7);
  // A pipe client's uid and gid are null: code reading them must say what it does then.
  const info = server.clientInfo(1);
  if (info && 'pid' in info) {
    // @ts-expect-error uid may be null (Windows named pipes)
    const uid: number = info.uid;
    void uid;
  }
}
