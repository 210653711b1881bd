'use strict';
// Server lifecycle: listening, listen failures (missing directory, live server, non-socket paths),
// stale socket reclaim, close() semantics and event order, client ids, flush on close.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Server, Client } = require('..');
const { socketPath, waitFor, collect, sleep, until, waitClose, cleanup, startServerAt, spawnFixture, childMessage, childExit } = require('./helpers');

const T = { timeout: 30000 };

/**
 * A Client connected to the Server on `socketFile` (retry and reconnect delays of 20 ms unless
 * `options` say otherwise), closed by cleanup() when the test ends.
 */
async function connectClientAt(t, socketFile, options = {}) {
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20, reconnectDelay: 20, ...options }));
  client.connect();
  await waitFor(client, 'connect');
  return client;
}

/**
 * Makes a Server on `socketFile` (closed by cleanup() when the test ends) whose listen() must
 * fail: asserts that its 'error' has a string code and the path, and that 'listening' never fired.
 * Returns the server.
 */
async function listenMustFail(t, socketFile) {
  const server = cleanup(t, new Server({ socketFile }));
  let listening = false;
  server.on('listening', () => (listening = true));
  const error = waitFor(server, 'error');
  server.listen();
  const [err] = await error;
  assert.equal(typeof err.code, 'string');
  assert.equal(err.path, socketFile);
  assert.equal(listening, false);
  return server;
}

const isSocket = (p) => {
  try {
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
};

test("'listening' fires once the socket file exists and accepts connections", T, async (t) => {
  const socketFile = socketPath(t);
  const server = cleanup(t, new Server(socketFile));
  let listening = 0;
  server.on('listening', () => listening++);
  assert.equal(server.listen(), server, 'listen() returns the server');
  await waitFor(server, 'listening');
  assert.ok(isSocket(socketFile), 'the socket file exists once listening');
  const connection = waitFor(server, 'connection');
  await connectClientAt(t, socketFile);
  const [clientId] = await connection;
  assert.ok(Number.isInteger(clientId) && clientId > 0);
  await sleep(50);
  assert.equal(listening, 1, "'listening' fires exactly once");
});

test("listen() on a path in a missing directory emits 'error' ENOENT (syscall 'listen', path) and does not throw", T, async (t) => {
  const socketFile = path.join(path.dirname(socketPath(t)), 'no-such-dir', 'ipc.sock');
  const server = new Server({ socketFile });
  let listening = false;
  server.on('listening', () => (listening = true));
  const error = waitFor(server, 'error');
  assert.doesNotThrow(() => server.listen());
  const [err] = await error;
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'ENOENT');
  assert.equal(err.syscall, 'listen');
  assert.equal(err.path, socketFile);
  assert.match(err.message, /ENOENT/);
  assert.equal(listening, false);
  // A failed server still closes cleanly, once.
  let closes = 0;
  server.on('close', () => closes++);
  server.close();
  server.close();
  await sleep(50);
  assert.equal(closes, 1);
  assert.equal(fs.existsSync(socketFile), false);
});

test("listen() where a live server listens emits 'error' EADDRINUSE and leaves the first server and its clients undisturbed", T, async (t) => {
  const socketFile = socketPath(t);
  const first = await startServerAt(t, socketFile);
  const connections = [];
  const messageErrors = [];
  const firstErrors = [];
  first.on('connection', (id) => connections.push(id));
  first.on('messageError', (err) => messageErrors.push(err));
  first.on('error', (err) => firstErrors.push(err));
  first.on('message.echo', (message, clientId) => first.send('echo', message, clientId));

  const clientA = await connectClientAt(t, socketFile);
  await until(() => connections.length === 1);

  const second = cleanup(t, new Server({ socketFile }));
  let secondListening = false;
  second.on('listening', () => (secondListening = true));
  const error = waitFor(second, 'error');
  assert.doesNotThrow(() => second.listen());
  const [err] = await error;
  assert.equal(err.code, 'EADDRINUSE');
  assert.equal(err.syscall, 'listen');
  assert.equal(err.path, socketFile);
  assert.equal(secondListening, false);

  // Give a late 'connection' for the probe every chance to show up.
  await sleep(200);
  assert.equal(connections.length, 1, `the probe must not be reported as a connection (saw ${connections})`);
  assert.deepEqual(messageErrors, [], 'the probe must not be reported as a messageError');
  assert.deepEqual(firstErrors, []);
  assert.ok(isSocket(socketFile), 'the first server keeps its socket file');

  // Existing client still works...
  const reply = waitFor(clientA, 'message.echo');
  clientA.send('echo', { still: 'alive' });
  assert.deepEqual((await reply)[0], { still: 'alive' });
  // ...and new clients reach the first server.
  const clientB = await connectClientAt(t, socketFile);
  const replyB = waitFor(clientB, 'message.echo');
  clientB.send('echo', 'b');
  assert.deepEqual((await replyB)[0], 'b');
  assert.equal(connections.length, 2);
});

test('a stale socket file left by a SIGKILLed server process is reclaimed by a new Server', T, async (t) => {
  const socketFile = socketPath(t);
  const child = spawnFixture(t, 'server.js', [socketFile]);
  await childMessage(child, (m) => m.event === 'listening');
  child.kill('SIGKILL');
  const exit = await childExit(child);
  assert.equal(exit.signal, 'SIGKILL');
  assert.ok(isSocket(socketFile), 'the killed server left its socket file behind');

  const server = await startServerAt(t, socketFile);
  const connection = waitFor(server, 'connection');
  const message = waitFor(server, 'message');
  const client = await connectClientAt(t, socketFile);
  await connection;
  client.send('hello', { after: 'reclaim' });
  const [msg, topic] = await message;
  assert.equal(topic, 'hello');
  assert.deepEqual(msg, { after: 'reclaim' });
});

test("a regular file at socketFile makes listen() emit 'error' and leaves the file and its content untouched", T, async (t) => {
  const socketFile = socketPath(t);
  fs.writeFileSync(socketFile, 'precious data\n');
  const server = await listenMustFail(t, socketFile);
  assert.ok(fs.statSync(socketFile).isFile());
  assert.equal(fs.readFileSync(socketFile, 'utf8'), 'precious data\n');
  server.close();
  await waitClose(server);
  assert.equal(fs.readFileSync(socketFile, 'utf8'), 'precious data\n', 'close() after a failed listen leaves the file too');
});

test("a directory at socketFile makes listen() emit 'error' and leaves the directory and its content untouched", T, async (t) => {
  const socketFile = socketPath(t);
  fs.mkdirSync(socketFile);
  fs.writeFileSync(path.join(socketFile, 'inside.txt'), 'keep me');
  await listenMustFail(t, socketFile);
  assert.ok(fs.statSync(socketFile).isDirectory());
  assert.equal(fs.readFileSync(path.join(socketFile, 'inside.txt'), 'utf8'), 'keep me');
});

test("a client process killed with SIGKILL produces 'connectionClose' with its id, and the server keeps serving", T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  const errors = [];
  server.on('error', (err) => errors.push(err));
  const connection = waitFor(server, 'connection');
  const message = waitFor(server, 'message');
  const child = spawnFixture(t, 'client.js', [socketFile, JSON.stringify({ retryDelay: 20 })]);
  await childMessage(child, (m) => m.event === 'connect');
  const [clientId] = await connection;
  child.send({ cmd: 'send', topic: 'from-child', message: 'hi' });
  assert.deepEqual(await message, ['hi', 'from-child', clientId]);

  const gone = waitFor(server, 'connectionClose');
  child.kill('SIGKILL');
  await childExit(child);
  assert.deepEqual(await gone, [clientId]);

  const next = waitFor(server, 'connection');
  await connectClientAt(t, socketFile);
  const [nextId] = await next;
  assert.notEqual(nextId, clientId);
  assert.deepEqual(errors, []);
});

test('close() removes the socket file', T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  assert.ok(isSocket(socketFile));
  server.close();
  await waitClose(server);
  assert.equal(fs.existsSync(socketFile), false);
});

test("close() right after listen() emits 'close' once and leaves no socket file", T, async (t) => {
  const socketFile = socketPath(t);
  const server = new Server({ socketFile });
  let closes = 0;
  server.on('close', () => closes++);
  server.listen();
  server.close();
  await waitClose(server);
  await sleep(100);
  assert.equal(closes, 1);
  assert.equal(fs.existsSync(socketFile), false);
});

test("close() is idempotent and 'close' fires exactly once, after every 'connectionClose'", T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  const order = [];
  server.on('connection', (id) => order.push(`connection:${id}`));
  server.on('connectionClose', (id) => order.push(`connectionClose:${id}`));
  server.on('close', () => order.push('close'));
  const connections = collect(server, 'connection', 3);
  for (let i = 0; i < 3; i++) await connectClientAt(t, socketFile, { reconnectDelay: 5000 });
  const ids = (await connections).map(([id]) => id);

  assert.equal(server.close(), server, 'close() returns the server');
  server.close();
  await waitClose(server);
  server.close();
  await sleep(150);
  server.close();

  const closeAt = order.indexOf('close');
  assert.equal(order.filter((e) => e === 'close').length, 1, `'close' exactly once: ${order}`);
  assert.equal(closeAt, order.length - 1, `'close' is the last event: ${order}`);
  for (const id of ids) {
    const at = order.indexOf(`connectionClose:${id}`);
    assert.ok(at !== -1 && at < closeAt, `connectionClose:${id} comes before 'close': ${order}`);
  }
  assert.equal(order.filter((e) => e.startsWith('connectionClose:')).length, 3);
});

test("close() before listen() emits 'close' once", T, async (t) => {
  const server = new Server({ socketFile: socketPath(t) });
  let closes = 0;
  server.on('close', () => closes++);
  server.close();
  server.close();
  await waitClose(server);
  await sleep(50);
  assert.equal(closes, 1);
});

test("send() and broadcast() after close() emit 'error' ERR_IPC_CLOSED", T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  const connection = waitFor(server, 'connection');
  await connectClientAt(t, socketFile, { reconnectDelay: 5000 });
  const [clientId] = await connection;
  const errors = [];
  server.on('error', (err) => errors.push(err));

  server.close();
  // While closing...
  assert.doesNotThrow(() => server.send('t', 1, clientId));
  assert.doesNotThrow(() => server.broadcast('t', 2));
  await waitClose(server);
  // ...and once closed.
  server.send('t', 3, clientId);
  server.broadcast('t', 4);
  assert.deepEqual(errors.map((e) => e.code), ['ERR_IPC_CLOSED', 'ERR_IPC_CLOSED', 'ERR_IPC_CLOSED', 'ERR_IPC_CLOSED']);
  for (const err of errors) assert.ok(err instanceof Error);

  // A server that never listened behaves the same.
  const never = new Server({ socketFile: socketPath(t) });
  const neverErrors = [];
  never.on('error', (err) => neverErrors.push(err.code));
  never.close();
  never.send('t', 1, 1);
  never.broadcast('t', 2);
  await waitClose(never);
  assert.deepEqual(neverErrors, ['ERR_IPC_CLOSED', 'ERR_IPC_CLOSED']);
});

test('client ids are positive integers, never reused across 20 connect/disconnect cycles', T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  const ids = [];
  for (let i = 0; i < 20; i++) {
    const connection = waitFor(server, 'connection');
    const client = new Client({ socketFile, retryDelay: 20 });
    cleanup(t, client);
    client.connect();
    const [id] = await connection;
    ids.push(id);
    const gone = new Promise((resolve) => {
      server.on('connectionClose', function onClose(closedId) {
        if (closedId !== id) return;
        server.off('connectionClose', onClose);
        resolve();
      });
    });
    client.close();
    await Promise.all([gone, waitClose(client)]);
  }
  for (const id of ids) assert.ok(Number.isInteger(id) && id > 0, `id ${id} is a positive integer`);
  assert.equal(new Set(ids).size, 20, `ids are unique: ${ids}`);
});

test('messages the server sends immediately before close() reach the client', T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  const connection = waitFor(server, 'connection');
  const client = await connectClientAt(t, socketFile, { reconnectDelay: 5000 });
  const [clientId] = await connection;

  const received = [];
  client.on('message', (message, topic) => received.push([topic, message]));
  const disconnect = waitFor(client, 'disconnect');
  const big = 'x'.repeat(256 * 1024);
  for (let i = 0; i < 100; i++) server.send('direct', i, clientId);
  server.broadcast('all', 'broadcast-last');
  server.send('big', big, clientId);
  const closed = waitClose(server);
  server.close();
  await Promise.all([disconnect, closed]);

  const expected = [...Array.from({ length: 100 }, (_, i) => ['direct', i]), ['all', 'broadcast-last'], ['big', big]];
  assert.equal(received.length, expected.length, `received ${received.length} of ${expected.length}`);
  assert.deepEqual(received, expected);
});

test(
  'broadcast() before listen() reaches no client (it is not held back and delivered to clients that connect later)',
  T,
  async (t) => {
    const socketFile = socketPath(t);
    const server = cleanup(t, new Server({ socketFile }));
    server.broadcast('early', 'nobody was connected');
    await sleep(20);
    server.listen();
    await waitFor(server, 'listening');
    const connection = waitFor(server, 'connection');
    const client = await connectClientAt(t, socketFile);
    const [clientId] = await connection;
    const received = [];
    client.on('message', (message, topic) => received.push(topic));
    server.send('later', 'direct', clientId);
    await until(() => received.includes('later'));
    await sleep(50);
    assert.deepEqual(received, ['later']);
  },
);

test(
  'two servers reclaiming the same stale socket at the same moment: exactly one listens, the other emits EADDRINUSE',
  T,
  async (t) => {
    const dir = path.dirname(socketPath(t));
    const batch = 500;
    for (let round = 0; round < 4; round++) {
      // Make `batch` stale socket files: a process listens on them and is SIGKILLed.
      const child = spawnFixture(t, 'stale-sockets.js', [dir, String(batch)]);
      await childMessage(child, (m) => m.event === 'ready', 10000);
      child.kill('SIGKILL');
      await childExit(child);
      for (let i = 0; i < batch; i++) {
        const socketFile = path.join(dir, `stale-${i}.sock`);
        assert.ok(isSocket(socketFile));
        const servers = [new Server({ socketFile }), new Server({ socketFile })];
        const outcomes = await Promise.all(
          servers.map(
            (server) =>
              new Promise((resolve) => {
                server.on('listening', () => resolve('listening'));
                server.on('error', (err) => resolve(err.code));
                server.listen();
              }),
          ),
        );
        await Promise.all(servers.map((server) => (server.close(), waitClose(server))));
        fs.rmSync(socketFile, { force: true });
        assert.deepEqual(
          outcomes.slice().sort(),
          ['EADDRINUSE', 'listening'],
          `attempt ${round * batch + i}: both servers on ${socketFile} reported ${outcomes}`,
        );
      }
    }
  },
);

// ----- who is connected, and how many may be -----

test("server.clientInfo(clientId) gives the pid, uid and gid of the client's process (SO_PEERCRED), and undefined once it left", T, async (t) => {
  const socketFile = socketPath(t);
  const server = cleanup(t, await startServerAt(t, socketFile));
  const connection = waitFor(server, 'connection');
  const child = spawnFixture(t, 'client.js', [socketFile]);
  await childMessage(child, (m) => m.event === 'connect');
  const [clientId] = await connection;
  assert.deepStrictEqual(server.clientInfo(clientId), { pid: child.pid, uid: process.getuid(), gid: process.getgid() });
  assert.equal(server.clientInfo(clientId + 1000), undefined);
  const left = waitFor(server, 'connectionClose');
  child.kill('SIGKILL');
  await left;
  assert.equal(server.clientInfo(clientId), undefined);
});

test("past maxConnections a client gets 'connectError' ERR_IPC_SERVER_FULL (no 'connection', no server 'error'), and gets in once a place frees", T, async (t) => {
  const socketFile = socketPath(t);
  const server = cleanup(t, await startServerAt(t, socketFile, { maxConnections: 2 }));
  const errors = [];
  server.on('error', (err) => errors.push(err));
  const connections = collect(server, 'connection', 2);
  const first = cleanup(t, new Client({ socketFile }).connect());
  cleanup(t, new Client({ socketFile }).connect());
  await connections;
  let connectionsAfter = 0;
  server.on('connection', () => connectionsAfter++);
  const third = cleanup(t, new Client({ socketFile, retryDelay: 50 }));
  const refused = waitFor(third, 'connectError');
  third.connect();
  const [err] = await refused;
  assert.equal(err.code, 'ERR_IPC_SERVER_FULL');
  assert.match(err.message, /maxConnections/);
  assert.equal(connectionsAfter, 0);
  const joined = waitFor(third, 'connect');
  first.close();
  await joined;
  assert.equal(connectionsAfter, 1);
  assert.deepStrictEqual(errors, []);
});

test('maxConnections must be a whole number >= 1 or Infinity', T, () => {
  for (const bad of [0, -1, 1.5]) {
    assert.throws(() => new Server({ socketFile: '/tmp/x.sock', maxConnections: bad }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  }
  assert.throws(() => new Server({ socketFile: '/tmp/x.sock', maxConnections: '2' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
});
