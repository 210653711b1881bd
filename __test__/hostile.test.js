'use strict';
// Peers that do not follow the protocol: raw sockets against a Server on every transport (Unix
// socket, TCP, TLS: there the attacker speaks TLS and sends its garbage inside, or sends garbage
// instead of TLS), and a Client against raw node:net servers. Nothing they send may crash, hang or
// disturb other connections: after each barrage a Client connected throughout has received every
// one of its messages, and the server still accepts a new client.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const { once } = require('node:events');
const { Client } = require('..');
const {
  TRANSPORTS,
  tlsFixture,
  socketPath,
  waitFor,
  collect,
  sleep,
  until,
  withTimeout,
  autoClose,
  startServer,
  connectClient,
  counter,
  roundTrip,
  bystander,
} = require('./helpers');

const T = { timeout: 20000 };

// The hello both sides send first: len 8 | kind 0x01 | 'NSIPC' | version 1 | flags 0.
const HELLO = Buffer.from('00000008014e534950430100', 'hex');
const KIND_REJECT = 0x0f;

// ----- local helpers -----

/** A plain socket to `server`'s address (for a TLS server: its port, without TLS), not yet connected. */
function plainSocket(server) {
  const address = server.address();
  return typeof address === 'string' ? net.createConnection(address) : net.createConnection({ host: '127.0.0.1', port: address.port });
}

/**
 * A raw socket connected to `server` over its transport (a TLS session on a TLS server: what is
 * written goes inside it), or with `{ plain: true }` a plain socket even to a TLS server.
 * Everything it receives (decrypted) accumulates in `sock.received`.
 */
async function rawConnect(track, server, { plain = false } = {}) {
  const overTls = server.transport === 'tls' && !plain;
  const sock = track(
    overTls ? tls.connect({ host: '127.0.0.1', port: server.address().port, ca: tlsFixture('ca.pem'), servername: 'localhost' }) : plainSocket(server),
  );
  sock.received = Buffer.alloc(0);
  sock.on('data', (d) => (sock.received = Buffer.concat([sock.received, d])));
  sock.on('error', () => {}); // EPIPE/ECONNRESET from a server that hung up are expected
  await once(sock, overTls ? 'secureConnect' : 'connect');
  return sock;
}

/** Resolves on the socket's 'close' (unlike events.once, an 'error' first does not reject). */
const closeOf = (sock) => new Promise((resolve) => sock.once('close', resolve));

/** Waits until `sock.received` holds at least `n` bytes. */
async function receivedAtLeast(sock, n, ms = 5000) {
  const deadline = Date.now() + ms;
  while (sock.received.length < n) {
    if (Date.now() > deadline) throw new Error(`raw socket received ${sock.received.length} of ${n} bytes`);
    await sleep(5);
  }
  return sock.received;
}

function frame(kind, body = Buffer.alloc(0)) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + body.length, 0);
  head[4] = kind;
  return Buffer.concat([head, body]);
}

function messageFrame(kind, topic, payload) {
  const t = Buffer.from(topic);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(t.length);
  return frame(kind, Buffer.concat([len, t, Buffer.from(payload)]));
}

const jsonFrame = (topic, text) => messageFrame(0x10, topic, text);

/** How many more file descriptors this process may open (RLIMIT_NOFILE minus those open now). */
function spareFileDescriptors() {
  const limits = fs.readFileSync('/proc/self/limits', 'utf8');
  const match = /^Max open files\s+(\S+)/m.exec(limits);
  const limit = match === null || match[1] === 'unlimited' ? Infinity : Number(match[1]);
  return limit - fs.readdirSync('/proc/self/fd').length;
}

/** mulberry32: a small seeded PRNG so the fuzz run is reproducible. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// ----- raw clients against a Server -----

for (const transport of TRANSPORTS) {
  describe(`raw peers against a Server over ${transport}`, () => rawPeersAgainstAServer(transport));
}

function rawPeersAgainstAServer(transport) {
  test("garbage bytes get 'messageError' ERR_IPC_PROTOCOL, no 'connection', a closed socket, and a real client is undisturbed", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const other = await bystander(t, server, track);
    const connections = counter(server, 'connection');
    const errors = counter(server, 'error');

    const messageError = waitFor(server, 'messageError');
    const raw = await rawConnect(track, server);
    const rawClosed = closeOf(raw);
    raw.write('GET / HTTP/1.1\r\n\r\n');
    const [err] = await messageError;
    assert.equal(err.code, 'ERR_IPC_PROTOCOL');
    await withTimeout(rawClosed, 5000, 'the server to close the raw socket');
    assert.equal(raw.received.length, 0, 'the server sent nothing to a peer that is not ours');

    assert.deepStrictEqual(connections, []);
    assert.deepStrictEqual(errors, []);
    await other.check();
  });

  test("a valid hello then an unknown frame kind gets 'messageError' ERR_IPC_PROTOCOL with the clientId, then 'connectionClose'", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const other = await bystander(t, server, track);
    const connection = waitFor(server, 'connection');
    const messageError = waitFor(server, 'messageError');
    const connectionClose = waitFor(server, 'connectionClose');
    const order = [];
    for (const e of ['connection', 'messageError', 'connectionClose']) server.on(e, () => order.push(e));

    const raw = await rawConnect(track, server);
    raw.write(Buffer.concat([HELLO, frame(0x7e, Buffer.from('from the future'))]));
    const [clientId] = await connection;
    const [err, errId] = await messageError;
    assert.equal(err.code, 'ERR_IPC_PROTOCOL');
    assert.equal(errId, clientId);
    assert.equal(err.clientId, clientId);
    const [closedId, reason] = await connectionClose;
    assert.equal(closedId, clientId);
    assert.equal(reason.code, 'ERR_IPC_PROTOCOL', "'connectionClose' carries why the connection was dropped");
    assert.deepStrictEqual(order, ['connection', 'messageError', 'connectionClose']);
    assert.deepStrictEqual((await receivedAtLeast(raw, HELLO.length)).subarray(0, HELLO.length), HELLO);
    await other.check();
  });

  test("a hello then a truncated frame and end() gets 'messageError' ERR_IPC_PROTOCOL and 'connectionClose'", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const other = await bystander(t, server, track);
    const connection = waitFor(server, 'connection');
    const messageError = waitFor(server, 'messageError');
    const connectionClose = waitFor(server, 'connectionClose');
    const messages = counter(server, 'message.t');

    const raw = await rawConnect(track, server);
    const whole = jsonFrame('t', '{"a":1}');
    raw.write(Buffer.concat([HELLO, whole, whole.subarray(0, whole.length - 3)]));
    raw.end();
    const [clientId] = await connection;
    const [err, errId] = await messageError;
    assert.equal(err.code, 'ERR_IPC_PROTOCOL');
    assert.equal(errId, clientId);
    assert.deepStrictEqual((await connectionClose).map((x) => x.code ?? x), [clientId, 'ERR_IPC_PROTOCOL']);
    assert.deepStrictEqual(messages, [[{ a: 1 }, clientId]], 'the complete frame before the truncated one was delivered');
    await other.check();
  });

  test("a hello of protocol version 2 gets a reject frame and 'messageError' ERR_IPC_PROTOCOL, and no 'connection'", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const other = await bystander(t, server, track);
    const connections = counter(server, 'connection');
    const messageError = waitFor(server, 'messageError');

    const raw = await rawConnect(track, server);
    const rawClosed = closeOf(raw);
    const v2 = Buffer.from(HELLO);
    v2[10] = 2;
    raw.write(v2);
    const [err] = await messageError;
    assert.equal(err.code, 'ERR_IPC_PROTOCOL');
    await withTimeout(rawClosed, 5000, 'the server to close the raw socket');
    const got = raw.received;
    assert.ok(got.length >= 5, `expected a reject frame, got ${got.toString('hex')}`);
    assert.equal(got[4], KIND_REJECT);
    assert.equal(got.readUInt32BE(0), got.length - 4, 'the reject frame is the only thing sent');
    assert.match(got.subarray(5).toString(), /version/);
    assert.deepStrictEqual(connections, []);
    await other.check();
  });

  test("a frame announcing 0xFFFFFFF0 bytes gets 'messageError' ERR_IPC_MESSAGE_TOO_LARGE at once, allocating nothing", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const other = await bystander(t, server, track);
    const connection = waitFor(server, 'connection');
    const messageError = waitFor(server, 'messageError', 2000);
    const connectionClose = waitFor(server, 'connectionClose');
    const rssBefore = process.memoryUsage.rss();

    const raw = await rawConnect(track, server);
    raw.write(Buffer.concat([HELLO, Buffer.from([0xff, 0xff, 0xff, 0xf0, 0x10, 0x00])]));
    const [clientId] = await connection;
    const [err, errId] = await messageError;
    assert.equal(err.code, 'ERR_IPC_MESSAGE_TOO_LARGE');
    assert.equal(errId, clientId);
    assert.deepStrictEqual((await connectionClose).map((x) => x.code ?? x), [clientId, 'ERR_IPC_MESSAGE_TOO_LARGE']);
    const grown = process.memoryUsage.rss() - rssBefore;
    assert.ok(grown < 100 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MB`);
    await other.check();
  });

  test("a JSON frame whose payload is not JSON gets 'messageError' ERR_IPC_DECODE and the connection stays up", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const other = await bystander(t, server, track);
    const connection = waitFor(server, 'connection');
    const messageError = waitFor(server, 'messageError');
    const message = waitFor(server, 'message.good');
    const closes = counter(server, 'connectionClose');

    const raw = await rawConnect(track, server);
    raw.write(Buffer.concat([HELLO, jsonFrame('bad', '{not json'), jsonFrame('good', '{"ok":true}')]));
    const [clientId] = await connection;
    const [err, errId] = await messageError;
    assert.equal(err.code, 'ERR_IPC_DECODE');
    assert.equal(errId, clientId);
    assert.deepStrictEqual(await message, [{ ok: true }, clientId]);

    // still up in both directions
    const reply = jsonFrame('back', '"hi"');
    server.send('back', 'hi', clientId);
    const got = await receivedAtLeast(raw, HELLO.length + reply.length);
    assert.deepStrictEqual(got.subarray(HELLO.length), reply);
    const second = waitFor(server, 'message.again');
    raw.write(jsonFrame('again', '2'));
    assert.deepStrictEqual(await second, [2, clientId]);
    assert.deepStrictEqual(closes, []);
    await other.check();
  });

  test("a raw client that sends nothing gets 'messageError' ERR_IPC_HANDSHAKE_TIMEOUT after handshakeTimeout", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { handshakeTimeout: 200 }, transport);
    const other = await bystander(t, server, track);
    const connections = counter(server, 'connection');
    const messageError = waitFor(server, 'messageError', 5000);
    const raw = await rawConnect(track, server);
    const rawClosed = closeOf(raw);
    const [err] = await messageError;
    assert.equal(err.code, 'ERR_IPC_HANDSHAKE_TIMEOUT');
    await withTimeout(rawClosed, 5000, 'the server to close the silent raw socket');
    assert.deepStrictEqual(connections, []);
    await other.check();
  });

  test('a hello that arrives one byte at a time is accepted, and a ping is answered with a pong', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const connection = waitFor(server, 'connection');
    const raw = await rawConnect(track, server);
    raw.setNoDelay?.(true);
    for (const byte of HELLO) {
      raw.write(Buffer.from([byte]));
      await sleep(2);
    }
    const [clientId] = await connection;
    const pong = frame(0x03);
    raw.write(frame(0x02));
    const got = await receivedAtLeast(raw, HELLO.length + pong.length);
    assert.deepStrictEqual(got, Buffer.concat([HELLO, pong]));
    const message = waitFor(server, 'message');
    raw.write(jsonFrame('t', '[1]'));
    assert.deepStrictEqual(await message, [[1], 't', clientId]);
  });

  test("a zero-length frame, a topic that overruns its body, or a non-UTF-8 topic gets 'messageError' ERR_IPC_PROTOCOL", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const other = await bystander(t, server, track);
    const zeroLength = Buffer.from([0, 0, 0, 0]);
    // topic length 9, but only one byte of topic follows
    const overrun = frame(0x10, Buffer.from([0, 9, 0x61]));
    // topic bytes that are not UTF-8
    const notUtf8 = frame(0x11, Buffer.from([0, 2, 0xc3, 0x28, 1, 2]));
    for (const bad of [zeroLength, overrun, notUtf8]) {
      const connection = waitFor(server, 'connection');
      const messageError = waitFor(server, 'messageError');
      const connectionClose = waitFor(server, 'connectionClose');
      const raw = await rawConnect(track, server);
      raw.write(Buffer.concat([HELLO, bad]));
      const [clientId] = await connection;
      const [err, errId] = await messageError;
      assert.equal(err.code, 'ERR_IPC_PROTOCOL', `for ${bad.toString('hex')}`);
      assert.equal(errId, clientId);
      assert.deepStrictEqual((await connectionClose).map((x) => x.code ?? x), [clientId, 'ERR_IPC_PROTOCOL']);
    }
    await other.check();
  });

  test('a raw client that never reads does not hold up other clients or close()', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const connection = waitFor(server, 'connection');
    const raw = await rawConnect(track, server);
    raw.write(HELLO);
    const [stuckId] = await connection;
    await receivedAtLeast(raw, HELLO.length);
    raw.pause();
    // far more than the socket buffers hold
    const chunk = Buffer.alloc(1024 * 1024, 0xab);
    for (let i = 0; i < 32; i++) server.send('flood', chunk, stuckId);

    const { client, clientId } = await connectClient(server, track);
    await roundTrip(server, client, clientId, 'beside a stuck peer');

    const clientClosed = client.closedPromise;
    client.close();
    await withTimeout(clientClosed, 5000, "the client's 'close'");
    const started = Date.now();
    server.close();
    await withTimeout(server.closedPromise, 10000, "the server's 'close' with a peer that does not read");
    assert.ok(Date.now() - started < 10000);
  });

  test('200 raw connections sending seeded random bytes after a valid hello leave the server working', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const other = await bystander(t, server, track);
    const errors = counter(server, 'error');
    const messageErrors = counter(server, 'messageError');
    const messages = counter(server, 'message');
    const COUNT = 200;
    const closes = collect(server, 'connectionClose', COUNT, 15000);
    closes.catch(() => {}); // awaited below; this only keeps an early failure from also reporting it
    const random = prng(0x5eed1234);
    const bytes = (n) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
      return b;
    };

    const CONCURRENT = 20;
    for (let start = 0; start < COUNT; start += CONCURRENT) {
      await Promise.all(
        Array.from({ length: CONCURRENT }, async () => {
          const mode = random();
          let payload = bytes(1 + Math.floor(random() * 4096));
          if (mode < 0.3) {
            // a small, plausible length, so the kind byte and body get looked at
            if (payload.length >= 4) payload.writeUInt32BE(Math.floor(random() * 64), 0);
          } else if (mode < 0.6) {
            // well-formed message frames with random topics and payloads, then random bytes
            const frames = [];
            for (let n = Math.floor(random() * 5); n > 0; n--) {
              const topic = bytes(Math.floor(random() * 8)).toString('latin1');
              frames.push(messageFrame(random() < 0.5 ? 0x10 : 0x11, topic, bytes(Math.floor(random() * 300))));
            }
            payload = Buffer.concat([...frames, payload]);
          }
          // in a few pieces, so frames straddle reads (cut before any await: the run is reproducible)
          const pieces = [];
          for (let at = 0; at < payload.length; ) {
            const n = 1 + Math.floor(random() * payload.length);
            pieces.push(payload.subarray(at, at + n));
            at += n;
          }
          const raw = await rawConnect(track, server);
          const closed = closeOf(raw);
          raw.write(HELLO);
          for (const piece of pieces) raw.write(piece);
          raw.end();
          await withTimeout(closed, 10000, 'the server to close a fuzzing connection');
        }),
      );
    }
    const closed = await closes;
    assert.equal(closed.length, COUNT);
    assert.deepStrictEqual(errors, []);
    for (const [err] of messageErrors) {
      assert.ok(['ERR_IPC_PROTOCOL', 'ERR_IPC_MESSAGE_TOO_LARGE', 'ERR_IPC_DECODE'].includes(err.code), `unexpected ${err.code}: ${err.message}`);
    }
    assert.ok(messageErrors.length > 0, 'random bytes produced protocol errors');
    const byCode = {};
    for (const [err] of messageErrors) byCode[err.code] = (byCode[err.code] || 0) + 1;
    const fuzzMessages = messages.filter(([, , id]) => id !== other.clientId).length;
    t.diagnostic(`fuzz: ${JSON.stringify(byCode)}, ${fuzzMessages} messages delivered`);
    await other.check();
  });

  test('thousands of half-open connections that never send a hello block no one and are dropped after handshakeTimeout', { timeout: 30000 }, async (t) => {
    // Long enough to open them all first: loopback connects here sometimes wait out a 1 s SYN
    // retransmission (plain node:net servers too), so opening 2000 can take over 2 s.
    const HANDSHAKE_TIMEOUT = 4000;
    const track = autoClose(t);
    const server = await startServer(t, track, { handshakeTimeout: HANDSHAKE_TIMEOUT }, transport);
    const other = await bystander(t, server, track);
    const connections = counter(server, 'connection');
    const errors = counter(server, 'error');
    const messageErrors = counter(server, 'messageError');
    const authErrors = counter(server, 'authError');
    // Each costs two descriptors here (our end and the server's): stay well inside the limit.
    const spare = spareFileDescriptors();
    const COUNT = Math.min(2000, Math.floor((spare - 500) / 2));
    assert.ok(COUNT >= 200, `only ${spare} spare file descriptors (ulimit -n)`);
    // On TLS most never even start TLS; some finish the TLS handshake and then say nothing.
    const IN_TLS = transport === 'tls' ? 100 : 0;
    t.diagnostic(`${COUNT} half-open connections (${IN_TLS} inside TLS), ${spare} spare file descriptors`);

    const started = Date.now();
    const lifetimes = [];
    const open = async (inTls) => {
      // timed from before the connect, so a lifetime is never shorter than the server's view of it
      const openedAt = Date.now();
      const sock = await rawConnect(track, server, { plain: !inTls });
      sock.closedAt = closeOf(sock).then(() => lifetimes.push(Date.now() - openedAt));
      return sock;
    };
    const socks = [];
    for (let i = 0; i < COUNT; i += 100) {
      const batch = Math.min(100, COUNT - i);
      socks.push(...(await Promise.all(Array.from({ length: batch }, (_, j) => open(i + j < IN_TLS)))));
    }
    const openedIn = Date.now() - started;
    t.diagnostic(`opened in ${openedIn} ms`);

    // While they are all open, a new client connects and is served.
    const stillOpen = socks.filter((s) => !s.destroyed).length;
    const fresh = await connectClient(server, track);
    await roundTrip(server, fresh.client, fresh.clientId, 'beside the half-open crowd');
    assert.equal(stillOpen, COUNT, 'none were dropped before handshakeTimeout');

    // Then the server drops every one of them, none before handshakeTimeout.
    await withTimeout(Promise.all(socks.map((s) => s.closedAt)), HANDSHAKE_TIMEOUT + 10000, 'the server to drop every half-open connection');
    const shortest = Math.min(...lifetimes);
    assert.ok(shortest >= HANDSHAKE_TIMEOUT - 20, `a half-open connection was dropped after ${shortest} ms`);
    t.diagnostic(`dropped after ${shortest}..${Math.max(...lifetimes)} ms; ${messageErrors.length} messageError, ${authErrors.length} authError`);
    assert.deepStrictEqual(connections.filter(([id]) => id !== fresh.clientId), []);
    assert.deepStrictEqual(errors, []);
    for (const [err] of [...messageErrors, ...authErrors]) assert.equal(err.code, 'ERR_IPC_HANDSHAKE_TIMEOUT', `${err.code}: ${err.message}`);
    await other.check();
  });

  if (transport === 'tls') {
    test("garbage instead of TLS (HTTP, a plain hello, random bytes) gets 'authError' ERR_IPC_TLS and a closed socket, never 'connection'", T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, {}, transport);
      const other = await bystander(t, server, track);
      const connections = counter(server, 'connection');
      const errors = counter(server, 'error');
      const random = prng(0x7151);
      const noise = Buffer.from(Array.from({ length: 3000 }, () => Math.floor(random() * 256)));
      for (const garbage of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.concat([HELLO, jsonFrame('t', '1')]), noise]) {
        const authError = waitFor(server, 'authError');
        const raw = await rawConnect(track, server, { plain: true });
        const { localPort } = raw; // gone once the server hangs up
        const rawClosed = closeOf(raw);
        raw.write(garbage);
        const [err, info] = await authError;
        assert.equal(err.code, 'ERR_IPC_TLS', err.message);
        assert.equal(info.address, '127.0.0.1');
        assert.equal(info.port, localPort);
        await withTimeout(rawClosed, 5000, 'the server to close a socket that does not speak TLS');
      }
      assert.deepStrictEqual(connections, []);
      assert.deepStrictEqual(errors, []);
      await other.check();
    });

    test('corrupt TLS records after the hello (bytes written under the TLS session) end that connection only', T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, {}, transport);
      const other = await bystander(t, server, track);
      const errors = counter(server, 'error');
      const messages = counter(server, 'message.t');
      const connection = waitFor(server, 'connection');
      const tcp = track(plainSocket(server));
      tcp.on('error', () => {});
      await once(tcp, 'connect');
      const session = tls.connect({ socket: tcp, ca: tlsFixture('ca.pem'), servername: 'localhost' });
      session.on('error', () => {});
      await once(session, 'secureConnect');
      session.write(Buffer.concat([HELLO, jsonFrame('t', '"before"')]));
      const [clientId] = await connection;
      await until(() => messages.length === 1, 5000, 'the message sent inside TLS');
      const closed = new Promise((resolve) => server.on('connectionClose', (id, reason) => id === clientId && resolve(reason)));
      // A record header claiming application data, then noise, straight onto the TCP socket.
      tcp.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x01, 0x00]), Buffer.alloc(256, 0x5a)]));
      const messageError = waitFor(server, 'messageError');
      const reason = await withTimeout(closed, 5000, "'connectionClose' of the corrupted session");
      // The pump behind the TLS bridge keeps rustls's reason, so the close says why.
      assert.equal(reason?.code, 'ERR_IPC_TLS', `closed with ${reason?.code}: ${reason?.message}`);
      assert.match(reason.message, /TLS session with the client failed/);
      const [err, errId] = await messageError;
      assert.equal(err.code, 'ERR_IPC_TLS');
      assert.equal(errId, clientId);
      assert.deepStrictEqual(messages, [['before', clientId]]);
      assert.deepStrictEqual(errors, []);
      await other.check();
    });
  }
}

// ----- a Client against raw servers -----

describe('a Client against raw servers', () => {
  /** A tracked net.Server on a fresh path that hands each connection to `onConnection`; returns the path. */
  async function rawServer(t, track, onConnection) {
    const path = socketPath(t, 'raw');
    const srv = track(net.createServer(onConnection));
    srv.listen(path);
    await once(srv, 'listening');
    return path;
  }

  test("a Client whose server writes garbage gets 'connectError' ERR_IPC_PROTOCOL and no 'connect'", T, async (t) => {
    const track = autoClose(t);
    const path = await rawServer(t, track, (sock) => {
      sock.on('error', () => {});
      sock.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    });
    const client = track(new Client({ socketFile: path }));
    const connects = counter(client, 'connect');
    const connectError = waitFor(client, 'connectError');
    client.connect();
    const [err] = await connectError;
    assert.equal(err.code, 'ERR_IPC_PROTOCOL');
    assert.deepStrictEqual(connects, []);
  });

  test("a Client whose server answers with a reject frame gets 'connectError' ERR_IPC_PROTOCOL carrying the reason", T, async (t) => {
    const track = autoClose(t);
    const path = await rawServer(t, track, (sock) => {
      sock.on('error', () => {});
      sock.end(frame(KIND_REJECT, Buffer.from('go away, you are version 1')));
    });
    const client = track(new Client({ socketFile: path }));
    const connectError = waitFor(client, 'connectError');
    client.connect();
    const [err] = await connectError;
    assert.equal(err.code, 'ERR_IPC_PROTOCOL');
    assert.match(err.message, /go away, you are version 1/);
  });

  test("a Client whose server sends invalid JSON after the hello gets 'messageError' ERR_IPC_DECODE and stays connected", T, async (t) => {
    const track = autoClose(t);
    let peer;
    const path = await rawServer(t, track, (sock) => {
      peer = sock;
      sock.on('error', () => {});
      sock.write(Buffer.concat([HELLO, jsonFrame('bad', '{"unterminated'), jsonFrame('good', '{"ok":1}')]));
    });
    const client = track(new Client({ socketFile: path }));
    const disconnects = counter(client, 'disconnect');
    const connected = waitFor(client, 'connect');
    const messageError = waitFor(client, 'messageError');
    const message = waitFor(client, 'message');
    client.connect();
    await connected;
    const [err] = await messageError;
    assert.equal(err.code, 'ERR_IPC_DECODE');
    assert.deepStrictEqual(await message, [{ ok: 1 }, 'good']);
    // and the client still sends on the same connection
    peer.received = Buffer.alloc(0);
    peer.on('data', (d) => (peer.received = Buffer.concat([peer.received, d])));
    client.send('up', true);
    const expected = Buffer.concat([HELLO, jsonFrame('up', 'true')]);
    assert.deepStrictEqual(await receivedAtLeast(peer, expected.length), expected);
    assert.deepStrictEqual(disconnects, []);
  });

  test("a Client whose server sends an unknown frame kind or announces 0xFFFFFFF0 bytes gets 'messageError' and 'disconnect'", T, async (t) => {
    for (const [bad, code] of [
      [frame(0x7e), 'ERR_IPC_PROTOCOL'],
      [Buffer.from([0xff, 0xff, 0xff, 0xf0, 0x10]), 'ERR_IPC_MESSAGE_TOO_LARGE'],
    ]) {
      const track = autoClose(t);
      let accepted = 0;
      const path = await rawServer(t, track, (sock) => {
        sock.on('error', () => {});
        // only the first connection misbehaves; the reconnect gets a clean hello
        sock.write(accepted++ === 0 ? Buffer.concat([HELLO, bad]) : HELLO);
      });
      const client = track(new Client({ socketFile: path, reconnectDelay: 10 }));
      const messageError = waitFor(client, 'messageError');
      const disconnect = waitFor(client, 'disconnect');
      const reconnect = waitFor(client, 'reconnect');
      client.connect();
      const [err] = await messageError;
      assert.equal(err.code, code);
      const [reason] = await disconnect;
      assert.equal(reason.code, code, "'disconnect' carries why the connection was dropped");
      await reconnect;
    }
  });

  test("a Client whose server says nothing gets 'connectError' ERR_IPC_HANDSHAKE_TIMEOUT after handshakeTimeout", T, async (t) => {
    const track = autoClose(t);
    const path = await rawServer(t, track, (sock) => sock.on('error', () => {}));
    const client = track(new Client({ socketFile: path, handshakeTimeout: 200 }));
    const connects = counter(client, 'connect');
    const connectError = waitFor(client, 'connectError', 5000);
    client.connect();
    const [err] = await connectError;
    assert.equal(err.code, 'ERR_IPC_HANDSHAKE_TIMEOUT');
    assert.deepStrictEqual(connects, []);
  });
});

for (const transport of TRANSPORTS) {
  describe(`large frames from a raw peer over ${transport} (read whole, handed to JS without a copy)`, () => largeFrames(transport));
}

function largeFrames(transport) {
  // A frame of 64 KiB or more that arrives over several reads takes its own path in the core.
  test("invalid JSON in a large frame gives 'messageError' ERR_IPC_DECODE and the connection stays up", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const sock = await rawConnect(track, server);
    const errors = collect(server, 'messageError', 1);
    const messages = collect(server, 'message', 2);
    const big = `{"text":"${'x'.repeat(200 * 1024)}"`; // unterminated
    const good = { text: 'y'.repeat(150 * 1024) };
    sock.write(HELLO);
    const bad = jsonFrame('big', big);
    // Split the frame across writes so the core sees its start before the rest.
    sock.write(bad.subarray(0, 1000));
    await sleep(20);
    sock.write(bad.subarray(1000));
    sock.write(Buffer.concat([jsonFrame('good', JSON.stringify(good)), messageFrame(0x11, 'bin', Buffer.alloc(100 * 1024, 7))]));
    const [[err, id]] = await errors;
    assert.equal(err.code, 'ERR_IPC_DECODE');
    assert.equal(typeof id, 'number');
    const [[first, firstTopic], [second, secondTopic]] = await messages;
    assert.equal(firstTopic, 'good');
    assert.deepEqual(first, good);
    assert.equal(secondTopic, 'bin');
    assert.ok(second.equals(Buffer.alloc(100 * 1024, 7)));
  });

  test('a large frame cut off by EOF gives ERR_IPC_PROTOCOL, then connectionClose', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, transport);
    const sock = await rawConnect(track, server);
    const error = waitFor(server, 'messageError');
    const closed = waitFor(server, 'connectionClose');
    const whole = messageFrame(0x11, 'bin', Buffer.alloc(300 * 1024, 1));
    sock.write(HELLO);
    sock.write(whole.subarray(0, 100 * 1024));
    await sleep(20);
    sock.end(whole.subarray(100 * 1024, 200 * 1024));
    const [err] = await error;
    assert.equal(err.code, 'ERR_IPC_PROTOCOL');
    assert.match(err.message, /middle of a frame/);
    await closed;
  });
}
