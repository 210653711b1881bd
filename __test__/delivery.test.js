'use strict';
// Issue 6, delivery: with `delivery: 'at-least-once'` every message is handed to the receiver's
// listeners exactly once and in order across dropped connections while both processes live
// (sessions resumed with the same clientId), and a server process that dies or closes and is
// started again gets what the first one had not acknowledged; sessions expire; mismatched
// modes are refused for good; requests survive a resume; the default mode needs no ACKs.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { once } = require('node:events');
const { Client } = require('..');
const {
  socketPath,
  waitFor,
  waitClose,
  sleep,
  until,
  withTimeout,
  autoClose,
  startServer,
  startServerAt,
  spawnFixture,
  childExit,
  logChild,
  logged,
  contAtEnd,
  encodeFrame,
  frameReader,
} = require('./helpers');

const ALO = 'at-least-once';
const T = { timeout: 30000 };

// ----- local helpers -----

/** Starts delivery-server.js on `socketFile`; resolves once it listens. */
async function startServerChild(t, socketFile, options, recordFile, behaviour = {}) {
  const child = logChild(spawnFixture(t, 'delivery-server.js', [socketFile, JSON.stringify(options), recordFile, JSON.stringify(behaviour)]));
  contAtEnd(t, child);
  await logged(child, (m) => m.event === 'listening');
  return child;
}

/** Starts delivery-client.js against `socketFile`. */
function startClientChild(t, socketFile, options) {
  const child = logChild(spawnFixture(t, 'delivery-client.js', [socketFile, JSON.stringify(options)]));
  contAtEnd(t, child);
  return child;
}

/** The numbers a delivery-server.js recorded, in the order its listener saw them. */
function readRecord(file) {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}

/** Asserts that `seen` is exactly from, from + 1, ..., to: nothing lost, repeated or reordered. */
function assertRun(seen, from, to, what) {
  const expected = to - from + 1;
  let firstBad = -1;
  for (let i = 0; i < seen.length; i++) {
    if (seen[i] !== from + i) {
      firstBad = i;
      break;
    }
  }
  const dups = seen.length - new Set(seen).size;
  const around = firstBad < 0 ? '' : `; at index ${firstBad}: ${JSON.stringify(seen.slice(Math.max(0, firstBad - 3), firstBad + 4))}`;
  assert.ok(
    firstBad === -1 && seen.length === expected,
    `${what}: expected exactly ${from}..${to} in order (${expected} messages), got ${seen.length} messages ` +
      `(first ${seen[0]}, last ${seen.at(-1)}, ${dups} duplicates)${around}`,
  );
}

/** Records the events of a Server or Client that the tests assert on, with the reasons' codes. */
function record(emitter) {
  const events = [];
  const codeOf = (reason) => (reason === undefined ? undefined : reason && reason.code);
  for (const name of ['connect', 'reconnect', 'close']) emitter.on(name, () => events.push({ event: name }));
  for (const name of ['connection', 'clientReconnect']) emitter.on(name, (clientId) => events.push({ event: name, clientId }));
  for (const name of ['clientDisconnect', 'connectionClose']) {
    emitter.on(name, (clientId, reason) => events.push({ event: name, clientId, code: codeOf(reason) }));
  }
  emitter.on('disconnect', (reason) => events.push({ event: 'disconnect', code: codeOf(reason) }));
  emitter.on('messageError', (err) => events.push({ event: 'messageError', code: err.code }));
  emitter.on('authError', (err) => events.push({ event: 'authError', code: err.code }));
  emitter.on('error', (err) => events.push({ event: 'error', code: err.code, message: err.message }));
  return events;
}

const only = (events, ...names) => events.filter((e) => names.includes(e.event));

/** The lifecycle of one client as a server saw it: event names, and codes where there are any. */
const lifecycleOf = (events, clientId) =>
  events
    .filter((e) => e.clientId === clientId && ['connection', 'clientDisconnect', 'clientReconnect', 'connectionClose'].includes(e.event))
    .map((e) => (e.code ? `${e.event} ${e.code}` : e.event));

/** A request's outcome as a value, so a rejection cannot go unhandled while the test waits. */
const settle = (promise) =>
  promise.then(
    (value) => ({ ok: true, value }),
    (err) => ({ ok: false, code: err.code, message: err.message }),
  );

// The frames of PROTOCOL.md that the raw-socket tests need.
const HELLO_V1 = Buffer.from('00000008014e5349504301' + '00', 'hex');
const KIND_HELLO = 0x01;
const KIND_ACK = 0x04;
const KIND_MESSAGE_JSON = 0x10;

/** MESSAGE_JSON with a short topic. */
const messageFrame = (topic, message) => {
  const t = Buffer.from(topic);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(t.length);
  return encodeFrame(KIND_MESSAGE_JSON, Buffer.concat([len, t, Buffer.from(JSON.stringify(message))]));
};

// ----- a server process replaced in the middle of a stream -----

/**
 * A client in this process streams 'n' 0..99,999 to a server child, with at-least-once delivery
 * and the pacing a user would use (when send() returns false, await drained()). The first server
 * stops inside the listener of message `AT` (SIGKILL, or a graceful close()); a second server is
 * then started on the same path. Each server records, synchronously in its listener, what it was
 * handed (fixtures/delivery-server.js).
 */
async function serverReplacedMidStream(t, behaviour, expectedExit) {
  const TOTAL = 100000;
  const AT = 40000;
  const HIGH_WATER_MARK = 64 * 1024;
  const socketFile = socketPath(t);
  const firstFile = path.join(path.dirname(socketFile), 'first.txt');
  const secondFile = path.join(path.dirname(socketFile), 'second.txt');
  const serverOptions = { delivery: ALO, heartbeatInterval: 0 };
  const first = await startServerChild(t, socketFile, serverOptions, firstFile, behaviour(AT));

  const track = autoClose(t);
  const client = track(
    new Client({
      socketFile,
      delivery: ALO,
      highWaterMark: HIGH_WATER_MARK,
      heartbeatInterval: 0,
      reconnectDelay: 10,
      retryDelay: 10,
      maxQueue: Infinity,
    }),
  );
  const events = record(client);
  client.connect();
  await waitFor(client, 'connect', 10000);

  let sentUpTo = -1;
  const sending = (async () => {
    for (let i = 0; i < TOTAL; i++) {
      sentUpTo = i;
      if (!client.send('n', i)) await client.drained();
    }
  })();

  assert.deepEqual(await childExit(first, 20000), expectedExit, `the first server ended as planned; its output:\n${first.output}`);
  const second = await startServerChild(t, socketFile, serverOptions, secondFile, { reportAt: TOTAL - 1 });
  await logged(second, (m) => m.event === 'reached', 30000);
  await withTimeout(sending, 30000, `the sender (it got to ${sentUpTo})`);
  await withTimeout(client.drained(), 10000, 'drained(): everything acknowledged by the second server');

  const s1 = readRecord(firstFile);
  const s2 = readRecord(secondFile);
  const dups = s2.length > 0 ? Math.max(0, s1.length - s2[0]) : 0;
  t.diagnostic(`the first server was handed 0..${s1.length - 1}, the second ${s2[0]}..${s2.at(-1)}; ${dups} handed to both`);

  // The first server was handed a prefix of the stream, each once and in order.
  assertRun(s1, 0, s1.length - 1, "the first server's listeners");
  assert.ok(s1.length >= AT + 1, `the first server got to message ${AT} (it stopped there): ${s1.length} messages`);
  // The second server was handed a contiguous run ending with the last message: no message
  // twice, none out of order.
  assert.ok(s2.length > 0, 'the second server was handed messages');
  assertRun(s2, s2[0], TOTAL - 1, "the second server's listeners");
  // Together they saw everything: the second server's run starts no later than right after the
  // first server's last message.
  assert.ok(s2[0] <= s1.length, `nothing lost: the first server stopped after ${s1.length - 1} and the second started at ${s2[0]}`);
  // What both were handed is the window s2[0]..s1.length-1: a contiguous tail of the first
  // server's run, i.e. the messages it handled but had not acknowledged when it stopped. The
  // sender waited for drained() whenever highWaterMark bytes were unacknowledged, so the window
  // cannot be more than the messages that fit in highWaterMark (each one has at least 5 payload
  // bytes past message 9999) and in particular does not reach back to the start of the stream.
  assert.ok(s2[0] >= 1, 'the first server acknowledged what it handled: the second did not get the whole stream again');
  assert.ok(
    dups <= Math.floor(HIGH_WATER_MARK / 5) + 1,
    `at most the unacknowledged tail was handed to both: ${dups} messages (${s2[0]}..${s1.length - 1})`,
  );

  assert.deepEqual(only(events, 'error', 'messageError'), [], 'the client reported no error');
  return { s1, s2, dups };
}

test("at-least-once: a server process SIGKILLed in the middle of a 100,000-message stream and started again on the same path: together the two servers' listeners saw every message, the second saw none twice and in order, and only a tail the first had not acknowledged reached both", { timeout: 60000 }, async (t) => {
  const { s1 } = await serverReplacedMidStream(t, (at) => ({ killAt: at }), { code: null, signal: 'SIGKILL' });
  assert.equal(s1.length, 40001, 'the first server died in the listener of message 40000');
});

test("at-least-once: a server that close()s in the middle of a 100,000-message stream and is started again: what the first had not acknowledged reaches the second, nothing is lost, and the second sees each message once, in order", { timeout: 60000 }, async (t) => {
  const { dups } = await serverReplacedMidStream(t, (at) => ({ closeAt: at }), { code: 0, signal: null });
  t.diagnostic(`${dups} messages handled by the closing server were handed to the new one as well`);
});

// ----- connection drops while both processes live -----

test("at-least-once: a client process SIGSTOPped until the server's heartbeat drops it loses and duplicates nothing in either direction, and the server emits 'clientDisconnect' then 'clientReconnect' with the same clientId and no 'connectionClose'", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { delivery: ALO, heartbeatInterval: 200, heartbeatTimeout: 600 });
  const events = record(server);
  const atServer = [];
  server.on('message.n', (n) => atServer.push(n));
  const connection = waitFor(server, 'connection', 10000);
  // (maxQueue: options travel as JSON, which has no Infinity)
  const child = startClientChild(t, server.socketFile, { delivery: ALO, heartbeatInterval: 0, reconnectDelay: 10, retryDelay: 10, maxQueue: 1e9 });
  const [clientId] = await connection;

  // Both directions stream all along: 20 messages every 5 ms.
  let sent = 0;
  const timer = setInterval(() => {
    for (let i = 0; i < 20; i++) server.send('s', sent++, clientId);
  }, 5);
  t.after(() => clearInterval(timer));
  child.send({ cmd: 'stream', every: 5, per: 20 });
  await until(() => atServer.length >= 200, 10000, 'the client streaming');

  const dropped = waitFor(server, 'clientDisconnect', 10000);
  child.kill('SIGSTOP');
  const [droppedId, reason] = await dropped;
  assert.equal(droppedId, clientId);
  assert.equal(reason && reason.code, 'ERR_IPC_HEARTBEAT_TIMEOUT', "'clientDisconnect' says the heartbeat dropped it");
  // The server goes on sending to the kept session while the client is away.
  const whileAway = sent;
  await until(() => sent >= whileAway + 200, 5000, 'the server sending to the kept session');

  const resumed = waitFor(server, 'clientReconnect', 15000);
  child.kill('SIGCONT');
  assert.deepEqual(await resumed, [clientId], "'clientReconnect' with the same clientId");
  const before = atServer.length;
  await until(() => atServer.length >= before + 200, 10000, 'the client streaming after the resume');

  // Stop both streams; each 'end' follows every message of its direction.
  clearInterval(timer);
  const serverEnd = waitFor(server, 'message.end', 10000);
  child.send({ cmd: 'stop' });
  const [clientSent] = await serverEnd;
  server.send('end', sent, clientId);
  const { got, count } = await logged(child, (m) => m.event === 'end');
  assert.equal(count, sent);

  assertRun(atServer, 0, clientSent - 1, "the server's listeners (client -> server)");
  assertRun(got, 0, sent - 1, "the client's listeners (server -> client)");
  assert.deepEqual(lifecycleOf(events, clientId), ['connection', 'clientDisconnect ERR_IPC_HEARTBEAT_TIMEOUT', 'clientReconnect']);
  assert.deepEqual(only(events, 'connection').length, 1, 'the resumed client is no new connection');
  assert.deepEqual(only(events, 'error', 'messageError'), []);
  assert.deepEqual(child.log.filter((m) => m.event === 'error'), [], 'the client reported no error');
  assert.ok(child.log.some((m) => m.event === 'disconnect'), "the client saw its connection drop ('disconnect')");
});

test("at-least-once: a client whose short heartbeat drops its SIGSTOPped server process loses and duplicates nothing in either direction, and the server emits 'clientDisconnect' then 'clientReconnect' with the same clientId and no 'connectionClose'", T, async (t) => {
  const socketFile = socketPath(t);
  const recordFile = path.join(path.dirname(socketFile), 'record.txt');
  const child = await startServerChild(t, socketFile, { delivery: ALO, heartbeatInterval: 0 }, recordFile);
  const track = autoClose(t);
  const client = track(
    new Client({ socketFile, delivery: ALO, heartbeatInterval: 200, heartbeatTimeout: 600, reconnectDelay: 10, retryDelay: 10, maxQueue: Infinity }),
  );
  const events = record(client);
  const got = [];
  client.on('message.s', (n) => got.push(n));
  client.connect();
  await waitFor(client, 'connect', 10000);
  const { clientId } = await logged(child, (m) => m.event === 'connection');

  let sent = 0;
  const timer = setInterval(() => {
    for (let i = 0; i < 20; i++) client.send('n', sent++);
  }, 5);
  t.after(() => clearInterval(timer));
  child.send({ cmd: 'stream', clientId, every: 5, per: 20 });
  await until(() => got.length >= 200, 10000, 'the server streaming');

  const dropped = waitFor(client, 'disconnect', 10000);
  child.kill('SIGSTOP');
  const [reason] = await dropped;
  assert.equal(reason && reason.code, 'ERR_IPC_HEARTBEAT_TIMEOUT');
  // The client goes on sending while disconnected.
  const whileAway = sent;
  await until(() => sent >= whileAway + 200, 5000, 'the client sending while disconnected');

  const reconnected = waitFor(client, 'reconnect', 15000);
  child.kill('SIGCONT');
  await reconnected;
  const before = got.length;
  await until(() => got.length >= before + 200, 10000, 'the server streaming after the resume');

  clearInterval(timer);
  client.send('end', sent);
  const { count: serverGotEnd } = await logged(child, (m) => m.event === 'end');
  assert.equal(serverGotEnd, sent);
  const clientEnd = waitFor(client, 'message.end', 10000);
  child.send({ cmd: 'stop' });
  const [serverSent] = await clientEnd;

  assertRun(readRecord(recordFile), 0, sent - 1, "the server's listeners (client -> server)");
  assertRun(got, 0, serverSent - 1, "the client's listeners (server -> client)");
  const lifecycle = child.log
    .filter((m) => m.clientId === clientId && ['connection', 'clientDisconnect', 'clientReconnect', 'connectionClose'].includes(m.event))
    .map((m) => m.event);
  assert.deepEqual(lifecycle, ['connection', 'clientDisconnect', 'clientReconnect'], 'the server kept the session and resumed it under the same clientId');
  assert.equal(child.log.filter((m) => m.event === 'connection').length, 1, 'the resumed client is no new connection');
  assert.deepEqual(child.log.filter((m) => m.event === 'error'), [], 'the server reported no error');
  assert.deepEqual(only(events, 'error', 'messageError'), []);
  assert.deepEqual(only(events, 'disconnect').length, 1);
});

// ----- sessions end -----

test("at-least-once: a session not resumed within sessionTimeout ends with 'connectionClose' (clientId, err) and err.code ERR_IPC_SESSION_EXPIRED; until then a send to it queues without an error", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { delivery: ALO, sessionTimeout: 500, heartbeatInterval: 0 });
  const events = record(server);
  const connection = waitFor(server, 'connection', 10000);
  const child = startClientChild(t, server.socketFile, { delivery: ALO, heartbeatInterval: 0 });
  const [clientId] = await connection;

  const dropped = waitFor(server, 'clientDisconnect', 10000);
  const ended = waitFor(server, 'connectionClose', 10000);
  child.kill('SIGKILL');
  await dropped;
  server.send('s', 1, clientId); // to the kept session: queued
  const [closedId, err] = await ended;
  assert.equal(closedId, clientId);
  assert.ok(err instanceof Error, `'connectionClose' has an Error reason, got ${err}`);
  assert.equal(err.code, 'ERR_IPC_SESSION_EXPIRED');
  assert.deepEqual(lifecycleOf(events, clientId), ['connection', 'clientDisconnect', 'connectionClose ERR_IPC_SESSION_EXPIRED']);
  assert.deepEqual(only(events, 'error', 'messageError'), [], 'no error: the send to the kept session was queued');

  // The session is gone now: a send to it is to an unknown client.
  const unknown = waitFor(server, 'error');
  server.send('s', 2, clientId);
  const [unknownErr] = await unknown;
  assert.equal(unknownErr.code, 'ERR_IPC_UNKNOWN_CLIENT');
});

// ----- mismatched modes -----

for (const [serverDelivery, clientDelivery] of [
  [ALO, undefined],
  [undefined, ALO],
]) {
  const name = (d) => (d === undefined ? 'the default delivery' : `delivery '${d}'`);
  test(`a client with ${name(clientDelivery)} and a server with ${name(serverDelivery)}: the client gets one final 'error' ERR_IPC_DELIVERY_MISMATCH and 'close', and makes no second attempt; the server emits no 'connection' and no 'authError'`, T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, serverDelivery ? { delivery: serverDelivery } : {});
    const serverEvents = record(server);

    // A pass-through proxy in front of the server counts the client's connection attempts.
    const proxyFile = socketPath(t, 'proxy');
    let attempts = 0;
    const proxy = track(
      net.createServer((downstream) => {
        attempts++;
        const upstream = net.connect(server.socketFile);
        downstream.pipe(upstream).pipe(downstream);
        for (const s of [downstream, upstream]) s.on('error', () => {});
        downstream.on('close', () => upstream.destroy());
        upstream.on('close', () => downstream.destroy());
      }),
    );
    proxy.listen(proxyFile);
    await once(proxy, 'listening');

    const client = track(new Client({ socketFile: proxyFile, retryDelay: 10, reconnectDelay: 10, ...(clientDelivery ? { delivery: clientDelivery } : {}) }));
    const events = record(client);
    const closed = waitClose(client, 10000);
    client.connect();
    await closed;
    await sleep(200); // twenty retry delays: room for attempts that must not happen

    assert.deepEqual(only(events, 'error').map((e) => e.code), ['ERR_IPC_DELIVERY_MISMATCH'], JSON.stringify(events));
    assert.deepEqual(only(events, 'connect'), [], 'the client never connected');
    assert.deepEqual(events.at(-1), { event: 'close' }, "'close' is the last event");
    assert.equal(attempts, 1, 'the client did not try again');
    assert.deepEqual(only(serverEvents, 'connection', 'authError', 'error'), [], 'the server reported nothing');
  });
}

// ----- the default mode is unchanged -----

test('the default delivery mode needs no ACK frames: a Client sends the v1 hello with no flags or extensions, and its drained() resolves against a raw server that never acknowledges', T, async (t) => {
  const track = autoClose(t);
  const file = socketPath(t);
  const raw = track(net.createServer());
  raw.listen(file);
  await once(raw, 'listening');
  const accepted = once(raw, 'connection');
  const client = track(new Client({ socketFile: file, heartbeatInterval: 0 }));
  const events = record(client);
  client.connect();
  const [sock] = await accepted;
  const reader = frameReader(sock);
  const hello = await reader.next();
  assert.deepEqual(encodeFrame(hello.kind, hello.body), HELLO_V1, 'the hello of protocol v1: flags 0, no extensions');
  const connected = waitFor(client, 'connect');
  sock.write(HELLO_V1);
  await connected;

  const returned = [];
  for (let i = 0; i < 100; i++) returned.push(client.send('m', i));
  assert.deepEqual(returned, Array(100).fill(true), 'send() returns true');
  for (let i = 0; i < 100; i++) {
    const frame = await reader.next();
    assert.deepEqual(encodeFrame(frame.kind, frame.body), messageFrame('m', i));
  }
  await withTimeout(client.drained(), 5000, 'drained() with nothing ever acknowledged');
  assert.deepEqual(only(events, 'error', 'disconnect', 'messageError'), []);
});

test('the default delivery mode needs no ACK frames: a raw v1 client that never acknowledges talks to a default Server, whose hello has no flags and which sends no ACK', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 0 });
  const events = record(server);
  const got = [];
  server.on('message.m', (m) => got.push(m));
  const connection = waitFor(server, 'connection');
  const sock = track(net.connect(server.socketFile));
  const reader = frameReader(sock);
  sock.write(HELLO_V1);
  const hello = await reader.next();
  assert.equal(hello.kind, KIND_HELLO);
  assert.deepEqual(encodeFrame(hello.kind, hello.body), HELLO_V1, "the server's hello: version 1, flags 0, no extensions");
  const [clientId] = await connection;

  for (let i = 0; i < 100; i++) sock.write(messageFrame('m', i));
  await until(() => got.length >= 100, 5000, 'the raw client’s messages at the server');
  assertRun(got, 0, 99, "the server's listeners");
  for (let i = 0; i < 100; i++) assert.equal(server.send('r', i, clientId), true, 'send() returns true');
  server.send('last', null, clientId);
  const kinds = [];
  for (;;) {
    const frame = await reader.next();
    kinds.push(frame.kind);
    if (frame.kind === KIND_MESSAGE_JSON && frame.body.subarray(2, 2 + frame.body.readUInt16BE(0)).toString() === 'last') break;
  }
  assert.equal(kinds.length, 101, `the server sent exactly its 101 messages: kinds ${kinds.join(',')}`);
  assert.ok(!kinds.includes(KIND_ACK), 'no ACK frame');
  await withTimeout(server.drained(), 5000, 'server.drained() with nothing ever acknowledged');
  assert.deepEqual(only(events, 'error', 'messageError', 'connectionClose'), []);
});

// ----- requests across a resumed session -----

test('at-least-once: requests from a client, made while its connection to a SIGSTOPped server drops and after, resolve once the session resumes, and each is handled once', T, async (t) => {
  const socketFile = socketPath(t);
  const child = await startServerChild(t, socketFile, { delivery: ALO, heartbeatInterval: 0 }, path.join(path.dirname(socketFile), 'record.txt'));
  const track = autoClose(t);
  const client = track(
    new Client({ socketFile, delivery: ALO, heartbeatInterval: 200, heartbeatTimeout: 600, reconnectDelay: 10, retryDelay: 10, requestTimeout: 20000 }),
  );
  const events = record(client);
  client.connect();
  await waitFor(client, 'connect', 10000);
  const { clientId } = await logged(child, (m) => m.event === 'connection');
  assert.equal(await client.request('echo', 0), 0);

  const dropped = waitFor(client, 'disconnect', 10000);
  child.kill('SIGSTOP');
  const inFlight = settle(client.request('echo', 1)); // written to a server that does not read
  await dropped;
  const whileAway = settle(client.request('echo', 2)); // made while disconnected
  const reconnected = waitFor(client, 'reconnect', 15000);
  child.kill('SIGCONT');
  await reconnected;

  assert.deepEqual(await withTimeout(inFlight, 10000, 'the request in flight'), { ok: true, value: 1 });
  assert.deepEqual(await withTimeout(whileAway, 10000, 'the request made while disconnected'), { ok: true, value: 2 });
  await logged(child, (m) => m.event === 'handled' && m.message === 2);
  const handled = child.log.filter((m) => m.event === 'handled').map((m) => m.message);
  assert.deepEqual(handled, [0, 1, 2], 'each request was handled exactly once, in order');
  const lifecycle = child.log
    .filter((m) => m.clientId === clientId && ['connection', 'clientDisconnect', 'clientReconnect', 'connectionClose'].includes(m.event))
    .map((m) => m.event);
  assert.deepEqual(lifecycle, ['connection', 'clientDisconnect', 'clientReconnect']);
  assert.deepEqual(only(events, 'error'), []);
});

test('at-least-once: requests from the server to a client process that is SIGSTOPped until the heartbeat drops it, made before and during the drop, resolve once the session resumes, and each is handled once', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { delivery: ALO, heartbeatInterval: 200, heartbeatTimeout: 600, requestTimeout: 20000 });
  const events = record(server);
  const connection = waitFor(server, 'connection', 10000);
  const child = startClientChild(t, server.socketFile, { delivery: ALO, heartbeatInterval: 0, reconnectDelay: 10, retryDelay: 10 });
  const [clientId] = await connection;
  assert.equal(await server.request(clientId, 'echo', 0), 0);

  const dropped = waitFor(server, 'clientDisconnect', 10000);
  child.kill('SIGSTOP');
  const inFlight = settle(server.request(clientId, 'echo', 1));
  await dropped;
  const whileAway = settle(server.request(clientId, 'echo', 2)); // to the kept session
  const resumed = waitFor(server, 'clientReconnect', 15000);
  child.kill('SIGCONT');
  await resumed;

  assert.deepEqual(await withTimeout(inFlight, 10000, 'the request in flight'), { ok: true, value: 1 });
  assert.deepEqual(await withTimeout(whileAway, 10000, 'the request made during the drop'), { ok: true, value: 2 });
  await logged(child, (m) => m.event === 'handled' && m.message === 2);
  assert.deepEqual(child.log.filter((m) => m.event === 'handled').map((m) => m.message), [0, 1, 2], 'each request was handled exactly once, in order');
  assert.deepEqual(lifecycleOf(events, clientId), ['connection', 'clientDisconnect ERR_IPC_HEARTBEAT_TIMEOUT', 'clientReconnect']);
  assert.deepEqual(only(events, 'error'), []);
});

// ----- graceful close -----

test("at-least-once: everything a client process sent before client.close() is handed to the server's listeners, once and in order, before 'connectionClose' without a reason (and no 'clientDisconnect')", T, async (t) => {
  const COUNT = 50000;
  const track = autoClose(t);
  const server = await startServer(t, track, { delivery: ALO, heartbeatInterval: 0 });
  const events = record(server);
  const got = [];
  server.on('message.n', (n) => got.push(n));
  const connection = waitFor(server, 'connection', 10000);
  const child = startClientChild(t, server.socketFile, { delivery: ALO, heartbeatInterval: 0 });
  const [clientId] = await connection;

  await logged(child, (m) => m.event === 'connect'); // sent before 'connect', they would count against maxQueue
  const ended = waitFor(server, 'connectionClose', 15000);
  child.send({ cmd: 'sendThenClose', count: COUNT });
  const [closedId, reason] = await ended;
  assert.equal(closedId, clientId);
  assert.equal(reason, undefined, 'a graceful close has no reason');
  assertRun(got, 0, COUNT - 1, "the server's listeners");
  assert.deepEqual(lifecycleOf(events, clientId), ['connection', 'connectionClose']);
  await logged(child, (m) => m.event === 'close');
  assert.deepEqual(child.log.filter((m) => m.event === 'error'), [], 'the client reported no error');
});

test("at-least-once: everything a server process sent to a client before server.close() is handed to the client's listeners, once and in order, before its 'disconnect'", T, async (t) => {
  const COUNT = 50000;
  const socketFile = socketPath(t);
  const child = await startServerChild(t, socketFile, { delivery: ALO, heartbeatInterval: 0 }, path.join(path.dirname(socketFile), 'record.txt'));
  const track = autoClose(t);
  const client = track(new Client({ socketFile, delivery: ALO, heartbeatInterval: 0, reconnectDelay: 10, retryDelay: 10 }));
  const events = record(client);
  const got = [];
  client.on('message.s', (n) => got.push(n));
  client.connect();
  await waitFor(client, 'connect', 10000);
  const { clientId } = await logged(child, (m) => m.event === 'connection');

  const disconnected = waitFor(client, 'disconnect', 15000);
  child.send({ cmd: 'sendThenClose', clientId, count: COUNT });
  await disconnected;
  assertRun(got, 0, COUNT - 1, "the client's listeners");
  await logged(child, (m) => m.event === 'close');
  assert.deepEqual(child.log.filter((m) => m.event === 'error'), [], 'the server reported no error');
  assert.deepEqual(only(events, 'error', 'messageError'), []);
});

test("at-least-once: a request whose server closes after starting its handler, without replying, rejects with ERR_IPC_DISCONNECTED once the client reaches a server that does not know the session (even with timeout: 0)", T, async (t) => {
  const track = autoClose(t);
  const socketFile = socketPath(t);
  const first = await startServerAt(t, socketFile, { delivery: ALO });
  let handlerStarted;
  const started = new Promise((resolve) => {
    handlerStarted = resolve;
  });
  first.handle('slow', () => {
    handlerStarted();
    return new Promise(() => {}); // never replies
  });
  const client = track(new Client({ socketFile, delivery: ALO, retryDelay: 20, reconnectDelay: 20 }));
  client.connect();
  await waitFor(client, 'connect');
  const outcome = client.request('slow', 1, { timeout: 0 }).then(
    () => assert.fail('a reply cannot come'),
    (err) => err,
  );
  await withTimeout(started, 5000, 'the handler to start');
  first.close();
  await waitFor(first, 'close');
  const second = await startServerAt(t, socketFile, { delivery: ALO });
  const handledAgain = [];
  second.handle('slow', (message) => handledAgain.push(message));
  const err = await withTimeout(outcome, 5000, 'the request to settle');
  assert.equal(err.code, 'ERR_IPC_DISCONNECTED');
  assert.equal(err.topic, 'slow');
  assert.deepEqual(handledAgain, [], 'the first server acknowledged it, so it is not sent again');
});
