'use strict';
// Windows: named pipes as the local transport, and what differs there. Skipped elsewhere; run
// under Wine with the real Windows node.exe by `npm run test:windows`, beside the portable suites
// (messages, requests, …), whose socketPath() is a fresh pipe on Windows.
//
// Not shown here, and why:
// - remote (SMB) clients are refused (PIPE_REJECT_REMOTE_CLIENTS): no second machine;
// - two servers creating one name at the same instant: Wine does not enforce
//   FILE_FLAG_FIRST_PIPE_INSTANCE (see the Rust test in src/named_pipe.rs). A second server on a
//   live name is refused all the same, and that is tested below.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const os = require('node:os');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { Server, Client, Peer, localEndpoint } = require('..');
const { socketPath, waitFor, collect, autoClose, startServer, connectClient, roundTrip, sleep, tlsFixture } = require('./helpers');

const T = { timeout: 30000, skip: process.platform !== 'win32' && 'Windows only (run by npm run test:windows)' };
const SECRET = 'a shared secret of 32 bytes ....';

test('a Server and a Client exchange messages both ways over a named pipe, and address() is the pipe name', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  assert.match(server.address(), /^\\\\\.\\pipe\\nsipc-/);
  const { client, clientId } = await connectClient(server, track);
  await roundTrip(server, client, clientId, 'pipe');
  const many = collect(server, 'message.n', 1000, 10000);
  for (let i = 0; i < 1000; i++) client.send('n', i);
  assert.deepStrictEqual((await many).map(([n]) => n), [...Array(1000).keys()]);
});

test('the \\\\?\\pipe\\ form of a name works as \\\\.\\pipe\\ does', T, async (t) => {
  const track = autoClose(t);
  const name = `nsipc-qform-${process.pid}`;
  const server = track(new Server({ socketFile: `\\\\?\\pipe\\${name}` }));
  server.listen();
  await waitFor(server, 'listening');
  const client = track(new Client({ socketFile: `\\\\.\\pipe\\${name}` }));
  client.connect();
  await waitFor(client, 'connect');
});

test("clientInfo() and an allow function give the client's pid, with uid and gid null", T, async (t) => {
  const track = autoClose(t);
  const seen = [];
  const server = await startServer(t, track, { allow: (info) => (seen.push(info), true) });
  const { clientId } = await connectClient(server, track);
  assert.deepStrictEqual(seen, [{ pid: process.pid, uid: null, gid: null }]);
  assert.deepStrictEqual(server.clientInfo(clientId), { pid: process.pid, uid: null, gid: null });
});

test('an allow function that refuses by pid gives the client ERR_IPC_NOT_ALLOWED', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { allow: (info) => info.pid !== process.pid });
  const client = track(new Client({ socketFile: server.address() }));
  const refused = waitFor(client, 'error');
  client.connect();
  const [err] = await refused;
  assert.equal(err.code, 'ERR_IPC_NOT_ALLOWED');
});

test('mode and allow: { uids, gids } on a pipe throw ERR_IPC_NOT_SUPPORTED and say what to use instead', T, (t) => {
  const socketFile = socketPath(t);
  assert.throws(() => new Server({ socketFile, mode: 0o600 }), { code: 'ERR_IPC_NOT_SUPPORTED', message: /allow: \(info\)|secret/ });
  assert.throws(() => new Server({ socketFile, allow: { uids: [0] } }), { code: 'ERR_IPC_NOT_SUPPORTED', message: /info\.pid/ });
  assert.throws(() => new Peer({ socketFile, mode: 0o600 }), { code: 'ERR_IPC_NOT_SUPPORTED' });
});

test('a pipe name with nothing after the prefix, over 256 characters or with a NUL throws ERR_INVALID_ARG_VALUE', T, () => {
  for (const bad of ['\\\\.\\pipe\\', `\\\\.\\pipe\\${'x'.repeat(248)}`, '\\\\.\\pipe\\a\0b']) {
    assert.throws(() => new Server({ socketFile: bad }), { code: 'ERR_INVALID_ARG_VALUE', message: /pipe name/ }, JSON.stringify(bad));
  }
  assert.doesNotThrow(() => new Server({ socketFile: `\\\\.\\pipe\\${'x'.repeat(247)}` }), '256 characters in all');
});

test('a Unix socket path or an abstract name throws ERR_IPC_NOT_SUPPORTED naming the pipe form and localEndpoint()', T, () => {
  assert.throws(() => new Server({ socketFile: 'C:\\temp\\app.sock' }), { code: 'ERR_IPC_NOT_SUPPORTED', message: /\\\\\.\\pipe\\.*localEndpoint/ });
  assert.throws(() => new Client({ socketFile: '/tmp/app.sock' }), { code: 'ERR_IPC_NOT_SUPPORTED' });
  assert.throws(() => new Client({ address: 'unix:@app' }), { code: 'ERR_IPC_NOT_SUPPORTED', message: /only on Linux/ });
});

test('a second server on a live pipe name gets EADDRINUSE and the first keeps serving', T, async (t) => {
  const track = autoClose(t);
  const first = await startServer(t, track);
  const firstErrors = [];
  for (const event of ['error', 'authError', 'connection']) first.on(event, (e) => firstErrors.push(`${event}: ${e && e.code}`));
  const second = track(new Server({ socketFile: first.address() }));
  const failed = waitFor(second, 'error');
  second.listen();
  const [err] = await failed;
  assert.equal(err.code, 'EADDRINUSE');
  assert.match(err.message, /left undisturbed/);
  await sleep(200);
  assert.deepStrictEqual(firstErrors, [], "the second server's probe left no trace on the first");
  const { client, clientId } = await connectClient(first, track);
  await roundTrip(first, client, clientId, 'still-first');
});

test('a closed server leaves nothing behind: a new server takes the name at once', T, async (t) => {
  const track = autoClose(t);
  const first = await startServer(t, track);
  const name = first.address();
  first.close();
  await waitFor(first, 'close');
  const again = track(new Server({ socketFile: name }));
  again.listen();
  await waitFor(again, 'listening');
});

test("a client of a pipe nobody serves gets 'connectError' ENOENT, then connects once a server starts", T, async (t) => {
  const track = autoClose(t);
  const name = socketPath(t);
  const client = track(new Client({ socketFile: name, retryDelay: 50 }));
  const errors = collect(client, 'connectError', 2);
  client.connect();
  for (const [err] of await errors) assert.equal(err.code, 'ENOENT');
  const server = track(new Server({ socketFile: name }));
  server.listen();
  await waitFor(client, 'connect', 5000);
});

test('many clients at once each get an instance of the pipe', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const connections = collect(server, 'connection', 20, 10000);
  const clients = Array.from({ length: 20 }, () => track(new Client({ socketFile: server.address() })));
  for (const c of clients) c.connect();
  const ids = (await connections).map(([id]) => id);
  assert.equal(new Set(ids).size, 20);
  const all = collect(server, 'message.hello', 20);
  clients.forEach((c, i) => c.send('hello', i));
  assert.deepStrictEqual((await all).map(([i]) => i).sort((a, b) => a - b), [...Array(20).keys()]);
});

test('requests go both ways over a pipe', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  server.handle('add', ({ a, b }) => a + b);
  const { client, clientId } = await connectClient(server, track);
  client.handle('who', () => 'client');
  assert.equal(await client.request('add', { a: 2, b: 3 }), 5);
  assert.equal(await server.request(clientId, 'who'), 'client');
});

test('the secret and at-least-once delivery work over a pipe', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { secret: SECRET, delivery: 'at-least-once' });
  const { client, clientId } = await connectClient(server, track, { secret: SECRET, delivery: 'at-least-once' });
  await roundTrip(server, client, clientId, 'secret');
  const wrong = track(new Client({ socketFile: server.address(), secret: 'another secret of 32 bytes .....' }));
  const refused = waitFor(wrong, 'error');
  wrong.connect();
  assert.equal((await refused)[0].code, 'ERR_IPC_AUTH_FAILED');
});

test('TLS works over a pipe', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { tls: { cert: tlsFixture('server.pem'), key: tlsFixture('server-key.pem') } });
  const { client, clientId } = await connectClient(server, track, { tls: { ca: tlsFixture('ca.pem') } });
  await roundTrip(server, client, clientId, 'tls-over-pipe');
});

test('heartbeats keep a quiet pipe connection up, and a server restart is followed by a reconnect that delivers queued messages', T, async (t) => {
  const track = autoClose(t);
  const name = socketPath(t);
  let server = track(new Server({ socketFile: name, heartbeatInterval: 50, heartbeatTimeout: 400 }));
  server.listen();
  await waitFor(server, 'listening');
  const client = track(new Client({ socketFile: name, heartbeatInterval: 50, heartbeatTimeout: 400, reconnectDelay: 50 }));
  const firstConnect = waitFor(client, 'connect');
  client.connect();
  await firstConnect;
  let drops = 0;
  client.on('disconnect', () => drops++);
  await sleep(1000); // many heartbeat timeouts' worth of silence
  assert.equal(drops, 0, 'heartbeats kept the connection');
  const gone = waitFor(client, 'disconnect');
  const closed = waitFor(server, 'close');
  server.close();
  await Promise.all([gone, closed]); // the name is free once 'close' is emitted
  client.send('queued', 1); // queued while no server listens
  server = track(new Server({ socketFile: name }));
  const arrived = waitFor(server, 'message.queued', 10000);
  server.listen();
  assert.equal((await arrived)[0], 1);
});

test('two Peers on one pipe name: the first listens, the second connects, and they talk', T, async (t) => {
  const track = autoClose(t);
  const name = socketPath(t);
  const a = track(new Peer({ socketFile: name }));
  const listening = waitFor(a, 'role');
  a.connect();
  assert.deepStrictEqual(await listening, ['server']);
  const b = track(new Peer({ socketFile: name }));
  const both = Promise.all([waitFor(a, 'connect'), waitFor(b, 'connect')]);
  b.connect();
  await both;
  assert.equal(a.role, 'server');
  assert.equal(b.role, 'client');
  const got = waitFor(a, 'message.hi');
  b.send('hi', 'from b');
  assert.equal((await got)[0], 'from b');
});

test("localEndpoint(name) is this user's named pipe, and a Server and Client meet on it", T, async (t) => {
  const track = autoClose(t);
  const name = `nsipc-local-${process.pid}`;
  const endpoint = localEndpoint(name);
  assert.equal(endpoint, `\\\\.\\pipe\\${name}-${os.userInfo().username.replace(/[^A-Za-z0-9._-]/g, '_')}`);
  const server = track(new Server({ socketFile: endpoint }));
  server.listen();
  await waitFor(server, 'listening');
  const client = track(new Client({ socketFile: localEndpoint(name) }));
  const connected = waitFor(server, 'connection');
  client.connect();
  const [clientId] = await connected;
  await roundTrip(server, client, clientId, 'local');
});

test('a client in another process reaches the server over a pipe, and clientInfo() gives that pid', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const connected = waitFor(server, 'connection', 20000);
  const got = waitFor(server, 'message.from-child', 20000);
  const script = `
    const { Client } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const c = new Client({ socketFile: ${JSON.stringify(server.address())} });
    c.on('connect', () => { c.send('from-child', process.pid); setTimeout(() => c.close(), 200); });
    c.connect();`;
  const child = execFile(process.execPath, ['-e', script]);
  const [clientId] = await connected;
  const [pid] = await got;
  assert.equal(pid, child.pid);
  assert.equal(server.clientInfo(clientId).pid, child.pid);
});

test('the CLI sends to a server at a pipe name', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const got = waitFor(server, 'message.greet', 20000);
  const cli = path.join(__dirname, '..', 'bin', 'native-socket-ipc.js');
  const done = new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, 'send', server.address(), 'greet', '{"hi":1}'], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve())),
  );
  assert.deepStrictEqual((await got)[0], { hi: 1 });
  await done;
});
