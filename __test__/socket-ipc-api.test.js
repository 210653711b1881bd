'use strict';
// Code written for @crussell52/socket-ipc 0.4's documented API, run on this library: the socket
// argument of 'connection' / 'connect' / 'reconnect', the deprecated 'closed' event, the
// `transcoder` option, string client ids, and `address` on OS errors. Every test uses the public
// API over real sockets, each on its own socket path.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const crussell = require('@crussell52/socket-ipc');
const jsonTranscoder = require('@crussell52/socket-ipc/src/lib/transcoder/jsonTranscoder');
const { Server, Client, Peer } = require('..');
const { socketPath, waitFor, waitClose, collect, until, sleep, withTimeout, autoClose, startServer, connectClient } = require('./helpers');

const T = { timeout: 20000 };

/** Records the events of a socket-like object in order: ['end'], ['error', code], ['close', hadError]. */
function socketEvents(socket, { error = true } = {}) {
  const seen = [];
  socket.on('end', () => seen.push(['end']));
  if (error) socket.on('error', (err) => seen.push(['error', err.code]));
  socket.on('close', (hadError) => seen.push(['close', hadError]));
  return seen;
}

/**
 * Resolves with a socket-like object's 'close' argument. (Not events.once(), which listens for
 * 'error' too, so the socket would emit its 'error' to it.)
 */
/**
 * A socket-ipc-wire Server (maxMessageSize 64) and a raw net.Socket connected to it, with the
 * id and ConnectionSocket 'connection' gave: 200 bytes with no delimiter get it dropped.
 */
async function rawSocketIpcClient(t) {
  const track = autoClose(t);
  const server = track(new Server({ socketFile: socketPath(t), protocol: 'socket-ipc', maxMessageSize: 64 }));
  server.on('messageError', () => {});
  server.listen();
  await waitFor(server, 'listening');
  const connection = waitFor(server, 'connection');
  const raw = track(net.connect(server.address()));
  const [clientId, socket] = await connection;
  return { track, server, raw, clientId, socket };
}

function socketClosed(socket, ms = 5000) {
  return withTimeout(new Promise((resolve) => socket.once('close', resolve)), ms, "the socket's 'close'");
}

/**
 * A transcoder that JSON cannot read: each message is its JSON text reversed, then '\x01'. The
 * decoder keeps the unfinished rest between chunks. `made` counts the encoders and decoders made.
 */
function reversingTranscoder(made = { encoders: 0, decoders: 0 }) {
  return {
    made,
    socketEncoding: 'utf8',
    createEncoder() {
      made.encoders++;
      return (wrapper, callback) => callback(null, [...JSON.stringify(wrapper)].reverse().join('') + '\x01');
    },
    createDecoder() {
      made.decoders++;
      let rest = '';
      return (chunk, callback) => {
        const parts = (rest + chunk).split('\x01');
        rest = parts.pop();
        try {
          callback(null, parts.map((text) => JSON.parse([...text].reverse().join(''))));
        } catch (err) {
          callback(err);
        }
      };
    },
  };
}

/** A net.Server to which Clients never get through (nothing listens on `path` yet). */
function missingServerPath(t) {
  return socketPath(t, 'missing');
}

// ----- the socket argument -----

describe("the socket argument of 'connection', 'connect' and 'reconnect'", () => {
  test("a Server's 'connection' passes (clientId, socket); when the client closes, the socket emits 'end' then 'close' (false), before 'connectionClose'", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const order = [];
    const connection = new Promise((resolve) =>
      server.once('connection', (clientId, socket) => {
        socket.on('end', () => order.push('socket end'));
        socket.on('close', (hadError) => order.push(`socket close ${hadError}`));
        resolve([clientId, socket]);
      }),
    );
    server.on('connectionClose', () => order.push('connectionClose'));
    const client = track(new Client({ socketFile: server.socketFile }));
    client.connect();
    const [clientId, socket] = await connection;
    assert.equal(typeof clientId, 'number');
    assert.equal(socket.clientId, clientId);
    assert.equal(socket.destroyed, false);
    assert.equal(socket.readyState, 'open');
    assert.equal(socket.pending, false);
    assert.equal(socket.connecting, false);
    assert.equal(typeof socket.write, 'undefined', 'it is not a net.Socket: nothing is written through it');

    const closed = waitFor(server, 'connectionClose');
    client.close();
    await closed;
    assert.deepStrictEqual(order, ['socket end', 'socket close false', 'connectionClose']);
    assert.equal(socket.destroyed, true);
    assert.equal(socket.readyState, 'closed');
  });

  test("socket-ipc's spam example counts clients with socket.on('close') inside 'connection': back to 0 when all leave", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    let clientCount = 0;
    server.on('connection', (id, socket) => {
      clientCount++;
      socket.on('close', () => clientCount--);
    });
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push((await connectClient(server, track)).client);
    assert.equal(clientCount, 3);
    for (const client of clients) client.close();
    await until(() => clientCount === 0, 5000, 'every socket closed');
    await sleep(50);
    assert.equal(clientCount, 0, "each socket's 'close' fired once");
  });

  test("a server socket emits 'error' with the reason and 'close' (true) when the server drops the client, and 'connectionClose' has the same reason", T, async (t) => {
    const { server, raw, clientId, socket } = await rawSocketIpcClient(t);
    const seen = socketEvents(socket);
    const dropped = waitFor(server, 'connectionClose');
    raw.write('x'.repeat(200)); // over maxMessageSize, with no delimiter: the server drops it
    const [closedId, reason] = await dropped;
    assert.equal(closedId, clientId);
    assert.equal(reason.code, 'ERR_IPC_MESSAGE_TOO_LARGE');
    assert.deepStrictEqual(seen, [['error', 'ERR_IPC_MESSAGE_TOO_LARGE'], ['close', true]]);
  });

  test("a socket's 'error' with no listener is not emitted: a dropped client does not crash the server", T, async (t) => {
    const { track, server, raw, socket } = await rawSocketIpcClient(t);
    const closed = socketClosed(socket);
    raw.write('x'.repeat(200));
    assert.equal(await closed, true, "'close' still says the connection ended in error");
    // The server still serves.
    server.transport = 'unix';
    const other = await connectClient(server, track, { protocol: 'socket-ipc' });
    const got = waitFor(server, 'message.still');
    other.client.send('still', 'here');
    assert.deepStrictEqual(await got, ['here', other.clientId]);
  });

  test("server socket.end() closes that client's connection after what was sent to it: the client gets it, the socket emits 'end' and 'close' (false), 'connectionClose' follows, other clients stay", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const sockets = new Map();
    server.on('connection', (id, socket) => sockets.set(id, socket));
    const join = async () => {
      const connection = waitFor(server, 'connection');
      const client = track(new Client({ socketFile: server.socketFile, reconnectDelay: 60000 }));
      const connected = waitFor(client, 'connect');
      client.connect();
      const [[id]] = await Promise.all([connection, connected]);
      return { client, id };
    };
    const leaving = await join();
    const staying = await join();
    const socket = sockets.get(leaving.id);
    const seen = [];
    socket.on('end', () => seen.push('end'));
    const closed = socketClosed(socket);
    const gone = waitFor(server, 'connectionClose');
    const last = waitFor(leaving.client, 'message.last');
    const disconnected = waitFor(leaving.client, 'disconnect');
    server.send('last', 'before the end', leaving.id);
    assert.equal(socket.end(), socket);
    assert.deepStrictEqual(await last, ['before the end'], 'what was sent before end() arrives');
    assert.equal(await closed, false);
    assert.deepStrictEqual(seen, ['end']);
    const [closedId, reason] = await gone;
    assert.equal(closedId, leaving.id);
    assert.equal(reason, undefined, 'an ordinary end, not an error');
    await disconnected;
    assert.equal(socket.destroyed, true);
    assert.equal(server.clientInfo(leaving.id), undefined);
    // The other client is untouched.
    const got = waitFor(staying.client, 'message.ping');
    assert.equal(server.send('ping', 1, staying.id), true);
    assert.deepStrictEqual(await got, [1]);
    assert.equal(socket.end(), socket, 'end() on a closed socket does nothing');
  });

  test("server socket.destroy(err) closes that client's connection: destroyed at once, err to an 'error' listener, then 'close' (true); the client reconnects as a new client", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const connection = waitFor(server, 'connection');
    const client = track(new Client({ socketFile: server.socketFile, reconnectDelay: 20 }));
    client.connect();
    const [firstId, socket] = await connection;
    const errors = [];
    socket.on('error', (err) => errors.push(err));
    const closed = socketClosed(socket);
    const again = waitFor(server, 'connection');
    const bye = new Error('bye');
    assert.equal(socket.destroy(bye), socket);
    assert.equal(socket.destroyed, true, 'destroyed reads true at once, as on net.Socket');
    assert.equal(await closed, true);
    assert.deepStrictEqual(errors, [bye]);
    const [secondId] = await again;
    assert.notEqual(secondId, firstId, 'a reconnect is a new client');
    assert.equal(socket.destroy(), socket, 'destroy() on a closed socket does nothing');
  });

  test("a Client's 'connect' passes the socket; when the server closes it emits 'end' and 'close' (false) before 'disconnect', and 'reconnect' passes the new one", T, async (t) => {
    const track = autoClose(t);
    const socketFile = socketPath(t);
    const first = track(new Server({ socketFile }));
    first.listen();
    await waitFor(first, 'listening');
    const client = track(new Client({ socketFile, retryDelay: 20, reconnectDelay: 20 }));
    client.on('connectError', () => {});
    const order = [];
    const sockets = [];
    client.on('connect', (socket) => {
      sockets.push(socket);
      order.push('connect');
      socket.on('end', () => order.push('socket end'));
      socket.on('close', (hadError) => order.push(`socket close ${hadError}`));
    });
    client.on('reconnect', (socket) => order.push(`reconnect ${socket === sockets[sockets.length - 1]}`));
    client.on('disconnect', () => order.push('disconnect'));
    client.connect();
    await waitFor(client, 'connect');
    assert.equal(sockets[0].readyState, 'open');
    assert.equal(sockets[0].clientId, undefined, 'a client-side socket has no client id');

    const disconnected = waitFor(client, 'disconnect');
    const firstClosed = waitClose(first);
    first.close();
    await disconnected;
    await firstClosed;
    assert.equal(sockets[0].destroyed, true);

    const second = track(new Server({ socketFile }));
    const reconnected = waitFor(client, 'reconnect');
    second.listen();
    await reconnected;
    assert.notEqual(sockets[1], sockets[0], 'each connection has its own socket');
    assert.equal(sockets[1].destroyed, false);
    assert.deepStrictEqual(order, ['connect', 'socket end', 'socket close false', 'disconnect', 'connect', 'reconnect true']);
  });

  test("close() in the client socket's 'close' listener, after the server went away, means no 'disconnect' and no reconnect: then 'closed' and 'close'", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const client = track(new Client({ socketFile: server.socketFile, reconnectDelay: 0, retryDelay: 10 }));
    client.on('connectError', () => {});
    const order = [];
    client.on('connect', (socket) => {
      order.push('connect');
      socket.on('end', () => order.push('socket end'));
      socket.on('close', () => {
        order.push('socket close');
        client.close();
      });
    });
    for (const event of ['disconnect', 'reconnect', 'closed', 'close']) client.on(event, () => order.push(event));
    client.connect();
    await waitFor(client, 'connect');
    const closed = waitClose(client);
    server.close();
    await closed;
    await sleep(50);
    assert.deepStrictEqual(order, ['connect', 'socket end', 'socket close', 'closed', 'close']);
  });

  test("a client socket emits 'error' with the reason and 'close' (true) when the client drops a connection for bad input", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const connecting = waitFor(server, 'connection');
    const client = track(new Client({ socketFile: server.socketFile, maxMessageSize: 64, reconnectDelay: 5000 }));
    client.on('messageError', () => {});
    const connected = waitFor(client, 'connect');
    client.connect();
    const [[socket], [clientId]] = await Promise.all([connected, connecting]);
    const seen = socketEvents(socket);
    const disconnected = waitFor(client, 'disconnect');
    server.send('big', 'x'.repeat(200), clientId); // over the client's maxMessageSize
    const [reason] = await disconnected;
    assert.equal(reason.code, 'ERR_IPC_MESSAGE_TOO_LARGE');
    assert.deepStrictEqual(seen, [['error', 'ERR_IPC_MESSAGE_TOO_LARGE'], ['close', true]]);
  });

  test("client socket.destroy() closes the Client: the socket's 'close', then the client's 'closed' and 'close', no 'disconnect'; destroy(err) emits err to an 'error' listener", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    for (const withError of [false, true]) {
      const client = track(new Client({ socketFile: server.socketFile }));
      const connected = waitFor(client, 'connect');
      client.connect();
      const [socket] = await connected;
      const order = [];
      socket.on('end', () => order.push('socket end'));
      socket.on('error', (err) => order.push(`socket error ${err.message}`));
      socket.on('close', (hadError) => order.push(`socket close ${hadError}`));
      client.on('close', () => order.push('close'));
      client.on('closed', () => order.push('closed'));
      client.on('disconnect', () => order.push('disconnect'));
      const closed = waitClose(client);
      assert.equal(withError ? socket.destroy(new Error('done')) : socket.destroy(), socket);
      assert.equal(socket.destroyed, true, 'destroyed reads true at once, as on net.Socket');
      await closed;
      await sleep(20);
      assert.deepStrictEqual(order, [...(withError ? ['socket error done', 'socket close true'] : ['socket close false']), 'closed', 'close']);
    }
  });

  test("client socket.end() closes the Client after what was sent: the server gets it, the socket emits 'end' and 'close' (false)", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const client = track(new Client({ socketFile: server.socketFile }));
    const connected = waitFor(client, 'connect');
    client.connect();
    const [socket] = await connected;
    const seen = socketEvents(socket);
    const got = waitFor(server, 'message.last');
    const closed = waitClose(client);
    client.send('last', 'words');
    socket.end();
    assert.equal((await got)[0], 'words');
    await closed;
    assert.deepStrictEqual(seen, [['end'], ['close', false]]);
  });

  test('remoteAddress, remotePort and remoteFamily are the TCP peer\'s, and undefined on a Unix socket (as on net.Socket)', T, async (t) => {
    const track = autoClose(t);
    const tcp = await startServer(t, track, {}, 'tcp');
    const { port } = tcp.address();
    const connection = waitFor(tcp, 'connection');
    const client = track(new Client({ address: `tcp://127.0.0.1:${port}` }));
    const connected = waitFor(client, 'connect');
    client.connect();
    const [[, serverSide], [clientSide]] = await Promise.all([connection, connected]);
    const info = tcp.clientInfo(serverSide.clientId);
    assert.deepStrictEqual(
      [serverSide.remoteAddress, serverSide.remotePort, serverSide.remoteFamily],
      [info.address, info.port, info.family],
    );
    assert.equal(serverSide.remoteAddress, '127.0.0.1');
    assert.deepStrictEqual([clientSide.remoteAddress, clientSide.remotePort, clientSide.remoteFamily], ['127.0.0.1', port, 'IPv4']);

    const unix = await startServer(t, track);
    const unixConnection = waitFor(unix, 'connection');
    const unixClient = track(new Client({ socketFile: unix.socketFile }));
    const unixConnected = waitFor(unixClient, 'connect');
    unixClient.connect();
    const [[, unixServerSide], [unixClientSide]] = await Promise.all([unixConnection, unixConnected]);
    for (const socket of [unixServerSide, unixClientSide]) {
      assert.deepStrictEqual([socket.remoteAddress, socket.remotePort, socket.remoteFamily], [undefined, undefined, undefined]);
    }
  });

  test("on the socket-ipc wire, a @crussell52/socket-ipc client that closes ends its socket on a native server", T, async (t) => {
    const track = autoClose(t);
    const server = track(new Server({ socketFile: socketPath(t), protocol: 'socket-ipc' }));
    server.listen();
    await waitFor(server, 'listening');
    const connection = waitFor(server, 'connection');
    const client = new crussell.Client({ socketFile: server.address(), retryDelay: 20 });
    client.on('error', () => {});
    client.on('connectError', () => {});
    t.after(() => client.close());
    const connected = waitFor(client, 'connect');
    client.connect();
    const [, socket] = await connection;
    const seen = socketEvents(socket);
    const closing = waitFor(server, 'connectionClose');
    await connected;
    client.close();
    await closing;
    assert.deepStrictEqual(seen, [['end'], ['close', false]]);
  });
});

// ----- 'closed' -----

test("'closed', socket-ipc's deprecated alias, comes once just before 'close' (as in socket-ipc) on a Server and a Client, with no arguments; a Peer has none", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const { client } = await connectClient(server, track);
  const peer = track(new Peer({ socketFile: socketPath(t, 'peer') }));
  const seen = [];
  for (const [name, emitter] of [['server', server], ['client', client], ['peer', peer]]) {
    emitter.on('close', (...args) => seen.push([name, 'close', args.length]));
    emitter.on('closed', (...args) => seen.push([name, 'closed', args.length]));
  }
  for (const emitter of [client, server, peer]) {
    const closed = waitClose(emitter);
    emitter.close();
    await closed;
  }
  await sleep(20);
  assert.deepStrictEqual(seen, [
    ['client', 'closed', 0],
    ['client', 'close', 0],
    ['server', 'closed', 0],
    ['server', 'close', 0],
    ['peer', 'close', 0],
  ]);
});

// ----- the transcoder option -----

describe('the transcoder option', () => {
  test("messages sent through a custom transcoder arrive decoded by the peer's transcoder, both ways and by broadcast; one decoder per connection", T, async (t) => {
    const track = autoClose(t);
    const serverSide = reversingTranscoder();
    const clientSide = reversingTranscoder();
    const server = await startServer(t, track, { transcoder: serverSide });
    const a = await connectClient(server, track, { transcoder: clientSide });
    const b = await connectClient(server, track, { transcoder: clientSide });
    const fromB = waitFor(server, 'message.hello');
    b.client.send('hello', 'from b');
    assert.deepStrictEqual(await fromB, ['from b', b.clientId]);

    const SAMPLES = [['object', { a: 1, s: 'é 😀' }], ['none', null], ['list', [1, 'two']], ['text', 'x\u0001y']];
    const atServer = collect(server, 'message', SAMPLES.length);
    const topicEvent = waitFor(server, 'message.list');
    for (const [topic, message] of SAMPLES) a.client.send(topic === 'none' ? '' : topic, message);
    assert.deepStrictEqual(
      (await atServer).map(([message, topic, id]) => [topic, message, id]),
      SAMPLES.map(([topic, message]) => [topic, message, a.clientId]),
    );
    assert.deepStrictEqual(await topicEvent, [[1, 'two'], a.clientId]);

    const atA = collect(a.client, 'message', SAMPLES.length);
    for (const [topic, message] of SAMPLES) server.send(topic, message, a.clientId);
    assert.deepStrictEqual((await atA).map(([message, topic]) => [topic, message]), SAMPLES);

    const both = [waitFor(a.client, 'message.news'), waitFor(b.client, 'message.news')];
    server.broadcast('news', { n: 1 });
    for (const [message] of await Promise.all(both)) assert.deepStrictEqual(message, { n: 1 });

    assert.equal(serverSide.made.encoders, 1, 'one encoder for the server, as socket-ipc makes');
    assert.equal(serverSide.made.decoders, 2, 'one decoder per client connection');
    assert.equal(clientSide.made.encoders, 2, 'one encoder per client');
    assert.equal(clientSide.made.decoders, 2, 'one decoder per client connection');
  });

  test('what a transcoder encodes is what travels: a peer without it gets the bytes, not the message', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const { client, clientId } = await connectClient(server, track, { transcoder: reversingTranscoder() });
    const got = waitFor(server, 'message');
    client.send('t', { a: 1 });
    const [bytes, topic, id] = await got;
    assert.deepStrictEqual([topic, id], ['t', clientId]);
    assert.ok(Buffer.isBuffer(bytes));
    assert.equal(bytes.toString(), '}}1:"a"{:"egassem","t":"cipot"{\x01');
  });

  test("@crussell52/socket-ipc's own JSON transcoder works on the native wire, '\\0\\0' framing and all", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { transcoder: jsonTranscoder });
    const { client, clientId } = await connectClient(server, track, { transcoder: jsonTranscoder });
    const atServer = collect(server, 'message', 100);
    for (let i = 0; i < 100; i++) client.send('n', { i });
    assert.deepStrictEqual((await atServer).map(([m]) => m.i), Array.from({ length: 100 }, (_, i) => i));
    const back = waitFor(client, 'message.bytes');
    server.send('bytes', Buffer.from([1, 2]), clientId);
    // JSON's form of a Buffer, as socket-ipc's transcoder gives it.
    assert.deepStrictEqual((await back)[0], { type: 'Buffer', data: [1, 2] });
  });

  test('a transcoder whose encoder and decoder call back later keeps messages in order', T, async (t) => {
    const track = autoClose(t);
    const later = (fn) => setTimeout(fn, Math.floor(Math.random() * 3));
    const asyncTranscoder = () => {
      const inner = reversingTranscoder();
      return {
        createEncoder() {
          const encode = inner.createEncoder();
          let chain = Promise.resolve();
          // Later, but in order: socket-ipc writes in the order the callbacks come.
          return (wrapper, callback) => {
            chain = chain.then(() => new Promise((resolve) => later(() => { encode(wrapper, callback); resolve(); })));
          };
        },
        createDecoder() {
          const decode = inner.createDecoder();
          let chain = Promise.resolve();
          return (chunk, callback) => {
            chain = chain.then(() => new Promise((resolve) => later(() => { decode(chunk, callback); resolve(); })));
          };
        },
      };
    };
    const server = await startServer(t, track, { transcoder: asyncTranscoder() });
    const { client, clientId } = await connectClient(server, track, { transcoder: asyncTranscoder() });
    const atServer = collect(server, 'message', 200);
    for (let i = 0; i < 200; i++) assert.equal(client.send('n', i), true);
    assert.deepStrictEqual((await atServer).map(([m]) => m), Array.from({ length: 200 }, (_, i) => i));
    const atClient = collect(client, 'message', 50);
    for (let i = 0; i < 50; i++) server.send('n', i, clientId);
    assert.deepStrictEqual((await atClient).map(([m]) => m), Array.from({ length: 50 }, (_, i) => i));
  });

  test("an encoder failure is thrown by send() as ERR_IPC_ENCODE with its cause; one that comes later is an 'error'", T, async (t) => {
    const track = autoClose(t);
    const boom = new Error('cannot encode that');
    const failing = (later) => ({
      createEncoder: () => (wrapper, callback) => {
        if (wrapper.topic !== 'bad') callback(null, JSON.stringify(wrapper) + '\n');
        else if (later) setImmediate(() => callback(boom));
        else callback(boom);
      },
      createDecoder: () => (chunk, callback) => callback(null, chunk.split('\n').filter(Boolean).map((line) => JSON.parse(line))),
    });
    const server = await startServer(t, track, { transcoder: failing(false) });
    const { client, clientId } = await connectClient(server, track, { transcoder: failing(true) });

    assert.throws(() => server.send('bad', 1, clientId), (err) => {
      assert.ok(err instanceof TypeError);
      assert.equal(err.code, 'ERR_IPC_ENCODE');
      assert.equal(err.cause, boom);
      assert.equal(err.topic, 'bad');
      assert.match(err.message, /cannot encode that/);
      return true;
    });
    // An encoder that throws instead of calling back fails the same way.
    const thrower = track(new Client({ socketFile: server.socketFile, transcoder: { createEncoder: () => () => { throw boom; }, createDecoder: () => () => {} } }));
    assert.throws(() => thrower.send('x', 1), { code: 'ERR_IPC_ENCODE', cause: boom });

    const failed = waitFor(client, 'error');
    assert.equal(client.send('bad', 1), true);
    const [err] = await failed;
    assert.deepStrictEqual([err.code, err.cause, err.topic], ['ERR_IPC_ENCODE', boom, 'bad']);
    // Nothing was sent for it, and the next message goes through.
    const got = waitFor(server, 'message');
    client.send('good', 2);
    assert.deepStrictEqual((await got).slice(0, 2), [2, 'good']);
  });

  test("an encoder output over maxMessageSize: send() throws ERR_IPC_MESSAGE_TOO_LARGE when it came at once, an 'error' when it came later", T, async (t) => {
    const track = autoClose(t);
    const padded = (later) => ({
      createEncoder: () => (wrapper, callback) => {
        const data = `${JSON.stringify(wrapper)}\n`.padStart(wrapper.topic === 'big' ? 500 : 0);
        if (later) setImmediate(() => callback(null, data));
        else callback(null, data);
      },
      createDecoder: () => (chunk, callback) => callback(null, chunk.split('\n').filter((line) => line.trim()).map((line) => JSON.parse(line))),
    });
    const server = await startServer(t, track, { transcoder: padded(false), maxMessageSize: 256 });
    const { client, clientId } = await connectClient(server, track, { transcoder: padded(true), maxMessageSize: 256 });
    assert.throws(() => server.send('big', 1, clientId), { code: 'ERR_IPC_MESSAGE_TOO_LARGE' });
    const failed = waitFor(client, 'error');
    client.send('big', 1);
    assert.equal((await failed)[0].code, 'ERR_IPC_MESSAGE_TOO_LARGE');
    const got = waitFor(server, 'message');
    client.send('small', 2);
    assert.deepStrictEqual(await got, [2, 'small', clientId]);
  });

  test("an encoder that calls back with null skips the message; one that produces neither a string nor bytes throws ERR_IPC_ENCODE", T, async (t) => {
    const track = autoClose(t);
    const skipping = {
      createEncoder: () => (wrapper, callback) => callback(null, wrapper.topic === 'skip' ? null : wrapper.topic === 'number' ? 42 : `${JSON.stringify(wrapper)}\n`),
      createDecoder: () => (chunk, callback) => callback(null, chunk.split('\n').filter(Boolean).map((line) => JSON.parse(line))),
    };
    const server = await startServer(t, track, { transcoder: skipping });
    const { client } = await connectClient(server, track, { transcoder: skipping });
    const got = collect(server, 'message', 2);
    client.send('keep', 1);
    client.send('skip', 2);
    client.send('keep', 3);
    assert.deepStrictEqual((await got).map(([m]) => m), [1, 3]);
    assert.throws(() => client.send('number', 4), (err) => err instanceof TypeError && err.code === 'ERR_IPC_ENCODE' && /string or a Buffer/.test(err.message));
  });

  test("a decoder failure is a 'messageError' ERR_IPC_DECODE with its cause; the connection stays up and the next message goes to a new decoder", T, async (t) => {
    const track = autoClose(t);
    const made = { encoders: 0, decoders: 0 };
    const server = await startServer(t, track, { transcoder: reversingTranscoder(made) });
    const { client, clientId } = await connectClient(server, track);
    const failure = waitFor(server, 'messageError');
    // Not the reversed JSON the server's decoder reads.
    client.send('raw', Buffer.from('{not json}\x01'));
    const [err, from] = await failure;
    assert.equal(err.code, 'ERR_IPC_DECODE');
    assert.ok(err.cause instanceof SyntaxError, `the decoder's own error is the cause: ${err.cause}`);
    assert.equal(from, clientId);
    assert.equal(err.clientId, clientId);
    const got = waitFor(server, 'message');
    client.send('raw', Buffer.from(`${[...JSON.stringify({ topic: 'fine', message: 1 })].reverse().join('')}\x01`));
    assert.deepStrictEqual(await got, [1, 'fine', clientId]);
    assert.equal(made.decoders, 2, 'the failed decoder was replaced');
    assert.equal(client.connected, true);
  });

  test("a decoder that throws, or produces something that is not { topic, message }, costs a 'messageError', never the process", T, async (t) => {
    const track = autoClose(t);
    const odd = {
      createEncoder: () => (wrapper, callback) => callback(null, String(wrapper.message)),
      createDecoder: () => (chunk, callback) => {
        if (chunk === 'throw') throw new Error('decoder threw');
        if (chunk === 'not-array') return callback(null, { topic: 'x' });
        if (chunk === 'bad-topic') return callback(null, [{ topic: 7, message: 1 }]);
        return callback(null, [{ topic: null, message: chunk }]);
      },
    };
    const server = await startServer(t, track, { transcoder: odd });
    const { client, clientId } = await connectClient(server, track, { transcoder: odd });
    const errors = collect(server, 'messageError', 3);
    for (const text of ['throw', 'not-array', 'bad-topic']) client.send('t', text);
    const codes = (await errors).map(([err, id]) => [err.code, id]);
    assert.deepStrictEqual(codes, Array(3).fill(['ERR_IPC_DECODE', clientId]));
    // A null topic is 'none', as everywhere in this library.
    const got = waitFor(server, 'message');
    client.send('t', 'fine');
    assert.deepStrictEqual(await got, ['fine', 'none', clientId]);
  });

  test("a message from a peer without the transcoder (JSON, not bytes) is a 'messageError' naming the transcoder option", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { transcoder: reversingTranscoder() });
    const { client, clientId } = await connectClient(server, track);
    const failure = waitFor(server, 'messageError');
    client.send('plain', { a: 1 });
    const [err, from] = await failure;
    assert.deepStrictEqual([err.code, from], ['ERR_IPC_DECODE', clientId]);
    assert.match(err.message, /transcoder/);
  });

  test("socketEncoding decides what the decoder's chunks are: 'base64' strings of the bytes sent, characters split across messages joined", T, async (t) => {
    const track = autoClose(t);
    const chunks = [];
    const base64 = {
      socketEncoding: 'base64',
      createEncoder: () => (wrapper, callback) => callback(null, Buffer.from(JSON.stringify(wrapper))),
      createDecoder: () => (chunk, callback) => {
        chunks.push(chunk);
        callback(null, [JSON.parse(Buffer.from(chunk, 'base64').toString())]);
      },
    };
    const server = await startServer(t, track, { transcoder: base64 });
    const { client } = await connectClient(server, track, { transcoder: base64 });
    // A whole number of 3-byte groups: base64 text of fewer bytes would wait for the rest, as
    // socket.setEncoding('base64') makes it wait in socket-ipc.
    let message = 'abc';
    while (JSON.stringify({ topic: 't', message }).length % 3 !== 0) message += '.';
    const got = waitFor(server, 'message');
    client.send('t', message);
    assert.equal((await got)[0], message);
    assert.equal(chunks[0], Buffer.from(JSON.stringify({ topic: 't', message })).toString('base64'));

    // UTF-8 (the default): a character whose bytes the encoder split over two outputs arrives whole.
    const texts = [];
    let part = 0;
    const splitting = {
      createEncoder: () => (wrapper, callback) => {
        const bytes = Buffer.from('é\n');
        callback(null, part++ === 0 ? bytes.subarray(0, 1) : bytes.subarray(1));
      },
      createDecoder: () => (chunk, callback) => {
        texts.push(chunk);
        callback(null, chunk.includes('\n') ? [{ topic: 'char', message: texts.join('') }] : []);
      },
    };
    const server2 = await startServer(t, track, { transcoder: splitting });
    const second = await connectClient(server2, track, { transcoder: splitting });
    const char = waitFor(server2, 'message.char');
    second.client.send('a', 1);
    second.client.send('b', 2);
    assert.deepStrictEqual((await char)[0], 'é\n');
    assert.deepStrictEqual(texts, ['é\n'], 'the first half of the character waited for the second');
  });

  test('two Peers with the same transcoder exchange messages through it', T, async (t) => {
    const track = autoClose(t);
    const socketFile = socketPath(t, 'pair');
    const made = { encoders: 0, decoders: 0 };
    const first = track(new Peer({ socketFile, transcoder: reversingTranscoder(made) }));
    const firstRole = waitFor(first, 'role');
    first.connect();
    assert.deepStrictEqual(await firstRole, ['server']);
    const second = track(new Peer({ socketFile, transcoder: reversingTranscoder(made) }));
    const both = Promise.all([waitFor(first, 'connect'), waitFor(second, 'connect')]);
    second.connect();
    await both;
    const got = waitFor(first, 'message.hi');
    second.send('hi', { from: 'second' });
    assert.deepStrictEqual(await got, [{ from: 'second' }]);
    const back = waitFor(second, 'message.hi');
    first.send('hi', { from: 'first' });
    assert.deepStrictEqual(await back, [{ from: 'first' }]);
    assert.deepStrictEqual(made, { encoders: 2, decoders: 2 });
  });

  test('requests and replies are not transcoded: request() and handle() work beside a transcoder', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { transcoder: reversingTranscoder() });
    server.handle('sum', (numbers) => numbers.reduce((a, b) => a + b, 0));
    const { client } = await connectClient(server, track, { transcoder: reversingTranscoder() });
    assert.equal(await client.request('sum', [1, 2, 3]), 6);
  });
});

// ----- client ids, and the address of OS errors -----

describe('client ids and OS errors', () => {
  test("server.send(), clientInfo() and request() take a client id as its decimal digits ('1'), as socket-ipc code that kept ids as object keys passes them", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const { client, clientId } = await connectClient(server, track);
    client.handle('who', () => 'me');
    const ids = {};
    ids[clientId] = true;
    const [key] = Object.keys(ids);
    assert.equal(typeof key, 'string');
    const got = waitFor(client, 'message.hi');
    assert.equal(server.send('hi', 1, key), true);
    assert.deepStrictEqual(await got, [1]);
    assert.deepStrictEqual(server.clientInfo(key), server.clientInfo(clientId));
    assert.equal(await server.request(key, 'who'), 'me');
  });

  test("a client id that is neither a number nor its digits throws TypeError ERR_INVALID_ARG_TYPE (request() rejects), never 'not connected'", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    const { clientId } = await connectClient(server, track);
    const errors = [];
    server.on('error', (err) => errors.push(err));
    for (const bad of ['abc', '01', ' 1', '1.0', '', 'f47ac10b-58cc-4372-a567-0e02b2c3d479', null, undefined, {}, [clientId]]) {
      const check = (err) => {
        assert.ok(err instanceof TypeError, `${String(bad)}: ${err}`);
        assert.equal(err.code, 'ERR_INVALID_ARG_TYPE');
        assert.match(err.message, /clientId must be a number/);
        return true;
      };
      assert.throws(() => server.send('t', 1, bad), check);
      assert.throws(() => server.clientInfo(bad), check);
      await assert.rejects(server.request(bad, 't'), check);
    }
    assert.deepStrictEqual(errors, [], "no 'error' event: the call itself was wrong");
    // A number that names no client is still "not connected".
    const unknown = waitFor(server, 'error');
    server.send('t', 1, clientId + 1000);
    assert.equal((await unknown)[0].code, 'ERR_IPC_UNKNOWN_CLIENT');
  });

  test("'connectError' and a failed listen() carry the socket path as `address`, as net's errors do, and as `path`", T, async (t) => {
    const track = autoClose(t);
    const socketFile = missingServerPath(t);
    const client = track(new Client({ socketFile, retryDelay: 1000 }));
    const failed = waitFor(client, 'connectError');
    client.connect();
    const [err] = await failed;
    assert.deepStrictEqual([err.code, err.address, err.path], ['ENOENT', socketFile, socketFile]);

    // A pipe name has no directory to be missing: the failed listen() is a socket-file case.
    if (process.platform === 'win32') return;
    const nowhere = `${socketFile}.d/inside.sock`; // its directory does not exist
    const server = track(new Server({ socketFile: nowhere }));
    const listenFailed = waitFor(server, 'error');
    server.listen();
    const [listenErr] = await listenFailed;
    assert.deepStrictEqual([listenErr.syscall, listenErr.address, listenErr.path], ['listen', nowhere, nowhere]);
  });
});
