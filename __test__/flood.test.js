'use strict';
// Floods. A connection's input is capped (maxInboundBytes): at the cap the core stops reading,
// so the sender's writes back up in the kernel, and nothing is dropped. The event loop keeps
// turning while a flood is handed to JS: timers and immediates run between slices. A server that
// drops a connection says why first (a CLOSE_REASON frame, kind 0x06, JSON {code, message}),
// whether the client was too slow, broke the protocol or fell silent, and a Client reports that
// code as its 'disconnect' reason.
//
// The flooding client of the event-loop test is this file itself, forked with FLOOD_CLIENT as its
// first argument: it runs floodClient() below instead of defining tests.

const FLOOD_CLIENT = '--flood-client';
if (process.argv[2] === FLOOD_CLIENT) {
  floodClient(process.argv[3], Number(process.argv[4]), process.argv[5]);
  return;
}

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { Server, Client, Peer } = require('..');
const {
  socketPath,
  waitFor,
  sleep,
  until,
  withTimeout,
  counter,
  autoClose,
  startServer,
  connectClient,
  roundTrip,
  spawnFixture,
  logChild,
  logged,
  childExit,
  encodeFrame,
} = require('./helpers');

const T = { timeout: 30000 };
const KiB = 1024;

// The hello both sides send first: len 8 | kind 0x01 | 'NSIPC' | version 1 | flags 0.
const HELLO = Buffer.from('00000008014e534950430100', 'hex');
const KIND_HELLO = 0x01;
const KIND_PING = 0x02;
const KIND_CLOSE_REASON = 0x06;
const KIND_UNKNOWN = 0x7e;
// The core reads at most this much at a time (src/reader.rs, READ_CHUNK); it checks the cap
// before each read.
const READ_CHUNK = 64 * KiB;

// ----- local helpers -----

/** Splits bytes into whole frames; asserts that nothing is left over (no cut-off frame). */
function splitFrames(bytes) {
  const frames = [];
  let at = 0;
  while (bytes.length - at >= 4 && bytes.length - at >= 4 + bytes.readUInt32BE(at)) {
    const len = bytes.readUInt32BE(at);
    frames.push({ kind: bytes[at + 4], body: bytes.subarray(at + 5, at + 4 + len) });
    at += 4 + len;
  }
  assert.equal(at, bytes.length, `the last ${bytes.length - at} bytes received are not a whole frame`);
  return frames;
}

/** A CLOSE_REASON frame's JSON body. */
function closeReason(f) {
  assert.equal(f.kind, KIND_CLOSE_REASON, `expected a CLOSE_REASON frame, got kind 0x${f.kind.toString(16)}`);
  return JSON.parse(f.body.toString('utf8'));
}

/**
 * A raw socket connected to `server`; `sock.ended` resolves, once the socket closes, with
 * everything it received and how the stream ended: 'EOF', or the error code of a reset.
 */
async function rawConnect(track, server) {
  const sock = track(net.createConnection(server.socketFile));
  let received = Buffer.alloc(0);
  let how = null;
  sock.on('data', (d) => (received = Buffer.concat([received, d])));
  sock.on('end', () => (how = how ?? 'EOF'));
  sock.on('error', (err) => (how = how ?? err.code)); // a reset after the server hung up
  sock.ended = new Promise((resolve) => sock.once('close', () => resolve({ received, how })));
  await once(sock, 'connect');
  return sock;
}

/** Records each connection's 'connectionClose' reason code (null: no reason) by client id. */
function closeCodes(server) {
  const codes = new Map();
  server.on('connectionClose', (id, reason) => codes.set(id, reason === undefined ? null : reason.code));
  return codes;
}

/** A `size`-byte Buffer whose first 4 bytes (u32 BE) are `index`. */
function blob(index, size) {
  const buf = Buffer.alloc(size, index & 0xff);
  buf.writeUInt32BE(index, 0);
  return buf;
}

/**
 * Blocks this thread (timers, I/O and the library's own event delivery included) until
 * `predicate()` holds, polling every few ms; false if it still did not after `ms`.
 */
function blockUntil(predicate, ms) {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    Atomics.wait(sleeper, 0, 0, 2);
  }
  return true;
}

/**
 * The child process of the event-loop test: a Client that connects to `socketFile`, sends
 * `count` messages on topic 'n' (0, 1, 2, ...) as fast as it can, 1000 per turn of its event
 * loop, then writes the number sent to `doneFile` and reports {event: 'sent'}. It closes on
 * {cmd: 'close'} and exits.
 */
function floodClient(socketFile, count, doneFile) {
  const fsSync = require('node:fs');
  const { Client: FloodingClient } = require('..');
  const client = new FloodingClient({ socketFile });
  const report = (m) => process.connected && process.send(m);
  let sent = 0;
  const batch = () => {
    for (const end = Math.min(sent + 1000, count); sent < end; sent++) client.send('n', sent);
    if (sent < count) {
      setImmediate(batch);
    } else {
      fsSync.writeFileSync(doneFile, String(sent));
      report({ event: 'sent', sent });
    }
  };
  client.once('connect', batch);
  client.on('disconnect', (reason) => report({ event: 'disconnect', code: reason ? reason.code : null }));
  client.on('error', (err) => report({ event: 'error', code: err.code, message: err.message }));
  client.on('close', () => {
    report({ event: 'close' });
    if (process.connected) process.disconnect();
  });
  process.on('message', (m) => m.cmd === 'close' && client.close());
  client.connect();
}

// ----- maxInboundBytes -----

for (const Ctor of [Server, Client, Peer]) {
  test(`new ${Ctor.name}() throws naming options.maxInboundBytes for 0, -1, 1.5 (RangeError ERR_OUT_OF_RANGE) and 'x', null, NaN (TypeError ERR_INVALID_ARG_TYPE), and accepts 1 and Infinity`, T, async (t) => {
    const socketFile = socketPath(t);
    const rejects = (maxInboundBytes, Type, code) =>
      assert.throws(
        () => new Ctor({ socketFile, maxInboundBytes }),
        (err) => {
          assert.ok(err instanceof Type, `maxInboundBytes ${String(maxInboundBytes)}: expected a ${Type.name}, got ${err && err.constructor.name}: ${err && err.message}`);
          assert.equal(err.code, code, err.message);
          assert.match(err.message, /options\.maxInboundBytes/);
          return true;
        },
      );
    for (const bad of [0, -1, 1.5]) rejects(bad, RangeError, 'ERR_OUT_OF_RANGE');
    for (const bad of ['x', null, NaN]) rejects(bad, TypeError, 'ERR_INVALID_ARG_TYPE');
    for (const maxInboundBytes of [1, Infinity]) {
      const instance = new Ctor({ socketFile, maxInboundBytes });
      const closed = waitFor(instance, 'close');
      instance.close();
      await closed;
    }
  });
}

test('maxInboundBytes: a server whose request handlers have not replied stops reading at its 64 KiB cap (far fewer than 200 of the 8 KiB requests reach the handler); once the handlers reply, all 200 requests get their own reply and none is lost', T, async (t) => {
  const CAP = 64 * KiB;
  const SIZE = 8 * KiB;
  const COUNT = 200;
  // Below the cap the core reads once more, up to READ_CHUNK, and hands over every whole request
  // in it (plus the end of one begun in an earlier read); a few more for the JSON around the pad.
  const MOST = Math.ceil((CAP + READ_CHUNK) / SIZE) + 4;
  const track = autoClose(t);
  const server = await startServer(t, track, { maxInboundBytes: CAP });
  const serverErrors = counter(server, 'error');
  const closes = counter(server, 'connectionClose');
  const calls = [];
  const pending = [];
  let answering = false;
  server.handle('slow', ({ i, pad }) => {
    calls.push(i);
    const reply = { i, length: pad.length };
    if (answering) return reply;
    return new Promise((resolve) => pending.push(() => resolve(reply)));
  });
  const { client } = await connectClient(server, track, { requestTimeout: 120000 });
  const disconnects = counter(client, 'disconnect');
  const clientErrors = counter(client, 'error');

  const pad = 'x'.repeat(SIZE);
  const replies = Array.from({ length: COUNT }, (_, i) => client.request('slow', { i, pad }));
  // The cap is reached only once this many are held, unanswered.
  await until(() => calls.length >= CAP / SIZE, 10000, `${CAP / SIZE} handler calls`);
  await sleep(500);
  const reached = calls.length;
  t.diagnostic(`${reached} of ${COUNT} requests reached the handler while none was answered (at most ${MOST} expected)`);
  assert.ok(reached <= MOST, `${reached} requests of ${SIZE} bytes reached the handler with maxInboundBytes ${CAP}: the core did not stop reading at the cap`);

  // Answer the held ones, last first, and every later one at once.
  answering = true;
  for (const resolve of pending.reverse()) resolve();
  const results = await withTimeout(Promise.all(replies), 20000, 'the replies to all 200 requests');
  results.forEach((reply, i) => assert.deepStrictEqual(reply, { i, length: SIZE }, `request ${i} got its own reply`));
  assert.deepStrictEqual(calls, Array.from({ length: COUNT }, (_, i) => i), 'each request reached the handler once, in order');
  assert.deepStrictEqual(disconnects, [], 'the client stayed connected');
  assert.deepStrictEqual(closes, [], 'the server dropped no connection');
  assert.deepStrictEqual(serverErrors, []);
  assert.deepStrictEqual(clientErrors, []);
});

test('maxInboundBytes: 1 on both sides still delivers 2000 messages each way in order, and requests each way are answered', T, async (t) => {
  const COUNT = 2000;
  const track = autoClose(t);
  const server = await startServer(t, track, { maxInboundBytes: 1 });
  const { client, clientId } = await connectClient(server, track, { maxInboundBytes: 1 });
  const atServer = [];
  const atClient = [];
  server.on('message.n', (n) => atServer.push(n));
  client.on('message.n', (n) => atClient.push(n));
  server.handle('double', (n) => 2 * n);
  client.handle('triple', (n) => 3 * n);
  for (let i = 0; i < COUNT; i++) {
    client.send('n', i);
    server.send('n', i, clientId);
  }
  const answers = await withTimeout(
    Promise.all([client.request('double', 21), server.request(clientId, 'triple', 14)]),
    10000,
    'the replies',
  );
  assert.deepStrictEqual(answers, [42, 42]);
  await until(() => atServer.length >= COUNT && atClient.length >= COUNT, 10000, `${COUNT} messages at each side`);
  const all = Array.from({ length: COUNT }, (_, i) => i);
  assert.deepStrictEqual(atServer, all);
  assert.deepStrictEqual(atClient, all);
});

// ----- the event loop during a flood -----

test('while a client process floods a server with 200,000 messages that arrived while its event loop was blocked, a setTimeout(0) and a setImmediate scheduled at the first message both run before the last message is emitted, and all 200,000 arrive in order', { timeout: 60000 }, async (t) => {
  const COUNT = 200000;
  const track = autoClose(t);
  const server = await startServer(t, track);
  const closes = counter(server, 'connectionClose');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-flood-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const doneFile = path.join(dir, 'sent');

  let received = 0;
  let firstBad = -1;
  let timeoutAt = null;
  let immediateAt = null;
  let blockedUntilSent = null;
  server.on('message', (n, topic) => {
    if (firstBad === -1 && (topic !== 'n' || n !== received)) firstBad = received;
    received++;
    if (received === 1) {
      setTimeout(() => (timeoutAt = received), 0);
      setImmediate(() => (immediateAt = received));
      // Hold the event loop until the child has sent everything, so that the whole flood waits
      // for JS (the core reads it meanwhile, up to maxInboundBytes).
      blockedUntilSent = blockUntil(() => fs.existsSync(doneFile), 30000);
    }
  });
  const connection = waitFor(server, 'connection', 10000);
  // spawnFixture() forks a script under fixtures/: this file, as the flooding client.
  const self = path.relative(path.join(__dirname, 'fixtures'), __filename);
  const child = logChild(spawnFixture(t, self, [FLOOD_CLIENT, server.socketFile, String(COUNT), doneFile]));
  await connection;
  await until(() => received >= COUNT || firstBad !== -1, 50000, `all ${COUNT} messages`);
  t.diagnostic(`setTimeout(0) ran after ${timeoutAt} messages, setImmediate after ${immediateAt}`);
  assert.equal(blockedUntilSent, true, `the child reported sending all ${COUNT} within 30 s; its output:\n${child.output}`);
  assert.equal(firstBad, -1, `message ${firstBad} arrived out of order or on another topic`);
  assert.equal(received, COUNT);
  assert.ok(timeoutAt !== null && timeoutAt < COUNT, `setTimeout(0) ran after ${timeoutAt} of ${COUNT} messages: the flood held the event loop`);
  assert.ok(immediateAt !== null && immediateAt < COUNT, `setImmediate ran after ${immediateAt} of ${COUNT} messages: the flood held the event loop`);

  child.send({ cmd: 'close' });
  await logged(child, (m) => m.event === 'close');
  assert.deepStrictEqual(child.log.filter((m) => m.event === 'error' || m.event === 'disconnect'), [], 'the flooding client had no error and no disconnect');
  assert.deepStrictEqual(child.log.find((m) => m.event === 'sent'), { event: 'sent', sent: COUNT });
  await childExit(child, 10000);
  await until(() => closes.length === 1, 5000, "the server's 'connectionClose'");
});

// ----- a dropped client is told why -----

test("a Client whose core stops reading at its maxInboundBytes while its JS is busy is dropped by a server broadcasting 4 MiB in one synchronous loop: 'slowClient' with its id, and its 'disconnect' reason is ERR_IPC_SLOW_CLIENT, told after the start of the stream in order; it then reconnects", T, async (t) => {
  const SIZE = 16 * KiB;
  const COUNT = 256; // 4 MiB
  const track = autoClose(t);
  const server = await startServer(t, track, { highWaterMark: 16 * KiB, maxBufferedBytes: 256 * KiB });
  const slow = counter(server, 'slowClient');
  const codes = closeCodes(server);
  const serverErrors = counter(server, 'error');
  const { client, clientId } = await connectClient(server, track, { maxInboundBytes: 64 * KiB });
  const received = [];
  client.on('message.blob', (buf) => received.push(buf.readUInt32BE(0)));
  const disconnect = waitFor(client, 'disconnect', 10000);
  const reconnect = waitFor(client, 'reconnect', 10000);
  const nextConnection = waitFor(server, 'connection', 10000);
  const clientErrors = counter(client, 'error');

  // One synchronous loop, so the client's JS (this thread too) takes nothing meanwhile. Between
  // broadcasts the thread sleeps a moment without yielding to the event loop: the server's
  // writer puts what it can into the socket, and the client's core reads it until its input
  // holds maxInboundBytes. Then the kernel's buffer fills, and the server's buffer for the client
  // passes maxBufferedBytes. (Without the pause the loop outruns the writer and the server drops
  // the client before it has written anything; with the default maxInboundBytes, 4 MiB, the
  // client's core would read the whole stream and never be slow.)
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < COUNT; i++) {
    server.broadcast('blob', blob(i, SIZE));
    Atomics.wait(pause, 0, 0, 2);
  }

  const [reason] = await disconnect;
  assert.equal(reason && reason.code, 'ERR_IPC_SLOW_CLIENT', `'disconnect' reason: ${reason && `${reason.code}: ${reason.message}`}`);
  assert.match(reason.message, /maxBufferedBytes/);
  await until(() => codes.has(clientId), 5000, "the server's 'connectionClose'");
  assert.deepStrictEqual(slow, [[clientId]], "'slowClient' with the client's id");
  assert.equal(codes.get(clientId), 'ERR_IPC_SLOW_CLIENT');
  t.diagnostic(`the client got ${received.length} of ${COUNT} messages before it was dropped`);
  assert.ok(received.length > 0, 'the client got what it had read before it was dropped');
  assert.ok(received.length < COUNT, 'the client was dropped before it got everything');
  assert.deepStrictEqual(received, Array.from({ length: received.length }, (_, i) => i), 'what the client got is the start of the stream, in order');

  await reconnect;
  const [newId] = await nextConnection;
  assert.notEqual(newId, clientId);
  await roundTrip(server, client, newId, 'after the reconnect');
  assert.deepStrictEqual(serverErrors, []);
  assert.deepStrictEqual(clientErrors, []);
});

test('a raw client that sends a frame of unknown kind 0x7e after the hello reads the server\'s HELLO, then a CLOSE_REASON with code ERR_IPC_PROTOCOL, then the end of the stream; the server\'s \'connectionClose\' carries ERR_IPC_PROTOCOL', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const codes = closeCodes(server);
  const connection = waitFor(server, 'connection');
  const messageError = waitFor(server, 'messageError');
  const sock = await rawConnect(track, server);
  sock.write(HELLO);
  const [clientId] = await connection;
  sock.write(encodeFrame(KIND_UNKNOWN, Buffer.from('what is this')));

  const { received, how } = await withTimeout(sock.ended, 10000, 'the server to close the raw connection');
  const frames = splitFrames(received);
  assert.deepStrictEqual(frames.map((f) => f.kind), [KIND_HELLO, KIND_CLOSE_REASON], 'a HELLO, a CLOSE_REASON and nothing else');
  assert.deepStrictEqual(frames[0].body, HELLO.subarray(5));
  const { code, message } = closeReason(frames[1]);
  t.diagnostic(`CLOSE_REASON message: ${message}; the stream ended with ${how}`);
  assert.equal(code, 'ERR_IPC_PROTOCOL');
  assert.ok(how !== null, 'the stream ended');

  const [err] = await messageError;
  assert.equal(err.code, 'ERR_IPC_PROTOCOL');
  assert.equal(message, err.message, "the client is told what the server's 'messageError' says");
  await until(() => codes.has(clientId), 5000, "the server's 'connectionClose'");
  assert.equal(codes.get(clientId), 'ERR_IPC_PROTOCOL');
});

test('a raw client that says nothing after the hello and answers no PING (heartbeatInterval 100, heartbeatTimeout 600) reads the HELLO, one or more PINGs, then a CLOSE_REASON with code ERR_IPC_HEARTBEAT_TIMEOUT, then the end of the stream', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 100, heartbeatTimeout: 600 });
  const codes = closeCodes(server);
  const connection = waitFor(server, 'connection');
  const sock = await rawConnect(track, server);
  sock.write(HELLO);
  const [clientId] = await connection;

  const { received, how } = await withTimeout(sock.ended, 10000, 'the server to drop the silent connection');
  const frames = splitFrames(received);
  const kinds = frames.map((f) => f.kind);
  t.diagnostic(`received kinds ${kinds.join(', ')}; the stream ended with ${how}`);
  assert.equal(kinds[0], KIND_HELLO);
  assert.deepStrictEqual(frames[0].body, HELLO.subarray(5));
  const pings = frames.slice(1, -1);
  assert.ok(pings.length >= 1, 'at least one PING came before the server gave up');
  for (const ping of pings) assert.deepStrictEqual(ping, { kind: KIND_PING, body: Buffer.alloc(0) }, 'only empty PINGs between the HELLO and the reason');
  const { code, message } = closeReason(frames[frames.length - 1]);
  assert.equal(code, 'ERR_IPC_HEARTBEAT_TIMEOUT', message);
  assert.ok(how !== null, 'the stream ended');

  await until(() => codes.has(clientId), 5000, "the server's 'connectionClose'");
  assert.equal(codes.get(clientId), 'ERR_IPC_HEARTBEAT_TIMEOUT');
});

test("a Client whose server sends a CLOSE_REASON reports its code as the 'disconnect' reason; a code a native-socket-ipc server never sends becomes ERR_IPC_PROTOCOL quoting it", T, async (t) => {
  for (const [sent, expected] of [
    [{ code: 'ERR_IPC_HEARTBEAT_TIMEOUT', message: 'you were silent' }, { code: 'ERR_IPC_HEARTBEAT_TIMEOUT', includes: 'you were silent' }],
    [{ code: 'ERR_SOMETHING_ELSE', message: 'no idea' }, { code: 'ERR_IPC_PROTOCOL', includes: 'ERR_SOMETHING_ELSE' }],
  ]) {
    const track = autoClose(t);
    const where = socketPath(t, 'raw');
    let accepted = 0;
    const raw = track(
      net.createServer((sock) => {
        sock.on('error', () => {});
        // The first connection is dropped with a reason; the reconnect gets a plain hello.
        if (accepted++ === 0) sock.end(Buffer.concat([HELLO, encodeFrame(KIND_CLOSE_REASON, Buffer.from(JSON.stringify(sent)))]));
        else sock.write(HELLO);
      }),
    );
    raw.listen(where);
    await once(raw, 'listening');
    const client = track(new Client({ socketFile: where, reconnectDelay: 10 }));
    const disconnect = waitFor(client, 'disconnect');
    const reconnect = waitFor(client, 'reconnect');
    client.connect();
    const [reason] = await disconnect;
    assert.equal(reason && reason.code, expected.code, `'disconnect' reason: ${reason && `${reason.code}: ${reason.message}`}`);
    assert.ok(reason.message.includes(expected.includes), `the reason's message (${reason.message}) includes ${expected.includes}`);
    await reconnect;
  }
});
