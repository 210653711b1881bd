'use strict';
// Security options through the public API, with real sockets: the shared secret (and that it
// never shows), the secret's challenge on the wire, allow, the socket file's mode, TLS (mutual,
// refused certificates, mixed-up TLS and plain ends) and frameTimeout.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const util = require('node:util');
const { once } = require('node:events');
const { Server, Client, Peer } = require('..');
const {
  TRANSPORTS,
  tlsFixture,
  clientTransportOptions,
  socketPath,
  waitFor,
  sleep,
  until,
  withTimeout,
  waitClose,
  autoClose,
  startServer,
  connectClient,
  spawnFixture,
  childMessage,
  childExit,
  counter,
  roundTrip,
  bystander,
} = require('./helpers');

const T = { timeout: 20000 };

// A secret no message, stack or inspect output could contain by chance.
const SECRET = `nsipc-secret-${crypto.randomBytes(12).toString('hex')}`;
const WRONG_SECRET = `nsipc-wrong-${crypto.randomBytes(12).toString('hex')}`;

// The hello both sides send first: len 8 | kind 0x01 | 'NSIPC' | version 1 | flags 0.
const HELLO = Buffer.from('00000008014e534950430100', 'hex');
const KIND = { HELLO: 0x01, REJECT: 0x0f, JSON: 0x10, AUTH_CHALLENGE: 0x30, AUTH_PROOF: 0x31, AUTH_OK: 0x32 };

const CERT = { cert: tlsFixture('server.pem'), key: tlsFixture('server-key.pem') };
const CA = tlsFixture('ca.pem');

// ----- local helpers -----

/** Records the order of `events` on `emitter` by name, and every Error among their arguments. */
function recorder(emitter, events) {
  const order = [];
  const errors = [];
  for (const event of events) {
    emitter.on(event, (...args) => {
      order.push(event);
      for (const a of args) if (a instanceof Error) errors.push(a);
    });
  }
  return { order, errors };
}

const CLIENT_EVENTS = ['connect', 'connectError', 'disconnect', 'error', 'close'];
const SERVER_ERRORS = ['authError', 'messageError', 'error'];

/**
 * The texts in which a secret could leak, one per entry: inspect output, error messages, String(err),
 * stacks (and those of their causes).
 */
function textsOf(...things) {
  const texts = [];
  for (const thing of things) {
    if (thing instanceof Error) {
      for (let e = thing; e instanceof Error; e = e.cause) texts.push(e.message, String(e), e.stack);
      texts.push(util.inspect(thing, { showHidden: true, depth: Infinity }));
    } else {
      texts.push(util.inspect(thing, { showHidden: true, depth: Infinity }));
    }
  }
  return texts;
}

const spacedHex = (buf) => [...buf].map((b) => b.toString(16).padStart(2, '0')).join(' ');

/** Asserts that no text holds `secret`, in plain text, hex (also as inspect prints a Buffer) or base64. */
function assertHidden(texts, secret = SECRET) {
  const bytes = Buffer.from(secret);
  const forms = [secret, bytes.toString('hex'), spacedHex(bytes.subarray(0, 12)), bytes.toString('base64').slice(0, 16)];
  for (const text of texts) {
    for (const form of forms) assert.ok(!text.includes(form), `the secret shows (as ${JSON.stringify(form)}) in:\n${text}`);
  }
}

// The base64 body of the test server's private key: none of it may show either.
const KEY_LINE = tlsFixture('server-key.pem').toString().split('\n')[1];
const CLIENT_KEY_LINE = tlsFixture('client-key.pem').toString().split('\n')[1];

function assertNoKey(texts) {
  for (const text of texts) {
    assert.ok(!text.includes('PRIVATE KEY'), `'PRIVATE KEY' shows in:\n${text}`);
    assert.ok(!text.includes(KEY_LINE) && !text.includes(CLIENT_KEY_LINE), `the private key's base64 shows in:\n${text}`);
  }
}

/**
 * A Client (retryDelay 20) the server must refuse for good: it emits one 'error' with `code`,
 * then 'close', and nothing more in the `quietMs` after (no retries). Returns { client, err, errors }.
 */
async function expectRefused(server, track, options, code, quietMs = 500) {
  const client = track(new Client({ ...clientTransportOptions(server), retryDelay: 20, ...options }));
  const { order, errors } = recorder(client, CLIENT_EVENTS);
  const closed = waitClose(client, 5000);
  client.connect();
  await closed;
  await sleep(quietMs);
  assert.deepStrictEqual(order, ['error', 'close'], `events of the refused client: ${order}; errors: ${errors.map((e) => `${e.code}: ${e.message}`)}`);
  assert.equal(errors[0].code, code, errors[0].message);
  return { client, err: errors[0], errors };
}

/** What the server's 'authError' info says about a client of this process on `transport`. */
function assertInfoIsUs(info, transport) {
  if (transport === 'unix' || transport === 'abstract') {
    assert.deepStrictEqual(info, { pid: process.pid, uid: process.getuid(), gid: process.getgid() });
  } else {
    assert.equal(info.address, '127.0.0.1');
    assert.equal(info.family, 'IPv4');
    assert.ok(Number.isInteger(info.port) && info.port > 0, `port ${info.port}`);
  }
}

/** A raw socket to `server` (speaking TLS on a TLS server); what it receives accumulates in `received`. */
async function rawConnect(track, server) {
  let sock;
  const address = server.address();
  if (server.transport === 'tls') {
    sock = track(tls.connect({ host: '127.0.0.1', port: address.port, ca: CA, servername: 'localhost' }));
  } else if (server.transport === 'tcp') {
    sock = track(net.createConnection({ host: '127.0.0.1', port: address.port }));
  } else {
    sock = track(net.createConnection(address));
  }
  sock.received = Buffer.alloc(0);
  sock.on('data', (d) => (sock.received = Buffer.concat([sock.received, d])));
  sock.on('error', () => {}); // EPIPE/ECONNRESET from a server that hung up are expected
  await once(sock, server.transport === 'tls' ? 'secureConnect' : 'connect');
  sock.setNoDelay?.(true);
  return sock;
}

/** Resolves on the socket's 'close' (unlike events.once, an 'error' first does not reject). */
const closeOf = (sock) => new Promise((resolve) => sock.once('close', resolve));

async function receivedAtLeast(sock, n, ms = 5000) {
  await until(() => sock.received.length >= n, ms, `raw socket to receive ${n} bytes (has ${sock.received.length})`);
  return sock.received;
}

function frame(kind, body = Buffer.alloc(0)) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + body.length, 0);
  head[4] = kind;
  return Buffer.concat([head, body]);
}

function jsonFrame(topic, text) {
  const t = Buffer.from(topic);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(t.length);
  return frame(KIND.JSON, Buffer.concat([len, t, Buffer.from(text)]));
}

/** Splits bytes into complete frames [{ kind, body }]; a partial tail is left out. */
function framesOf(buf) {
  const frames = [];
  let at = 0;
  while (buf.length - at >= 4) {
    const len = buf.readUInt32BE(at);
    if (buf.length - at - 4 < len) break;
    frames.push({ kind: buf[at + 4], body: buf.subarray(at + 5, at + 4 + len) });
    at += 4 + len;
  }
  return frames;
}

/** A frame for an assertion message: a message frame as `topic: payload`, others as hex. */
function describeFrame({ kind, body }) {
  if ((kind === KIND.JSON || kind === 0x11) && body.length >= 2) {
    const topicEnd = 2 + body.readUInt16BE(0);
    return `message '${body.subarray(2, topicEnd).toString()}': ${body.subarray(topicEnd).toString()}`;
  }
  return `kind 0x${kind.toString(16)} ${body.toString('hex')}`;
}


// ----- the shared secret -----

for (const transport of TRANSPORTS) {
  describe(`secret over ${transport}`, () => {
    test('a client with the right secret connects and messages flow both ways', T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { secret: SECRET }, transport);
      const authErrors = counter(server, 'authError');
      const { client, clientId } = await connectClient(server, track, { secret: SECRET });
      await roundTrip(server, client, clientId, 'with the secret');
      assert.deepStrictEqual(authErrors, []);
      assertHidden(textsOf(server, client));
    });

    test('a secret given as a Buffer on one side and a string on the other is the same secret', T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { secret: Buffer.from(SECRET) }, transport);
      const { client, clientId } = await connectClient(server, track, { secret: SECRET });
      await roundTrip(server, client, clientId, 'buffer and string');
      assertHidden(textsOf(server, client));
    });

    test("a wrong secret: client 'error' ERR_IPC_AUTH_FAILED, 'close', no retry; server 'authError' once and no 'connection'", T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { secret: SECRET }, transport);
      const connections = counter(server, 'connection');
      const authErrors = counter(server, 'authError');
      const serverSide = recorder(server, SERVER_ERRORS);
      const { client, errors } = await expectRefused(server, track, { secret: WRONG_SECRET }, 'ERR_IPC_AUTH_FAILED');
      assert.equal(authErrors.length, 1, 'one attempt, one authError: the client did not retry');
      const [err, info] = authErrors[0];
      assert.equal(err.code, 'ERR_IPC_AUTH_FAILED');
      assertInfoIsUs(info, transport);
      assert.deepStrictEqual(connections, []);
      assert.deepStrictEqual(serverSide.order, ['authError']);
      const texts = textsOf(server, client, ...errors, ...serverSide.errors);
      assertHidden(texts);
      assertHidden(texts, WRONG_SECRET);
    });

    test("a client without the secret: ERR_IPC_AUTH_FAILED on both sides, no retry, no 'connection'", T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { secret: SECRET }, transport);
      const connections = counter(server, 'connection');
      const authErrors = counter(server, 'authError');
      const { client, errors } = await expectRefused(server, track, {}, 'ERR_IPC_AUTH_FAILED');
      assert.equal(authErrors.length, 1);
      assert.equal(authErrors[0][0].code, 'ERR_IPC_AUTH_FAILED');
      assertInfoIsUs(authErrors[0][1], transport);
      assert.deepStrictEqual(connections, []);
      assertHidden(textsOf(server, client, ...errors, authErrors[0][0]));
    });

    test('a client with a secret the server does not have refuses the server (ERR_IPC_AUTH_FAILED) and does not retry', T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, {}, transport);
      const connections = counter(server, 'connection');
      const closes = counter(server, 'connectionClose');
      const { client, errors } = await expectRefused(server, track, { secret: SECRET }, 'ERR_IPC_AUTH_FAILED');
      // The server (which asks for nothing) may have seen the hello: at most one connection, and it ended.
      assert.ok(connections.length <= 1, `${connections.length} connections: the client retried`);
      await until(() => closes.length === connections.length, 2000, 'the connection to end at the server');
      assertHidden(textsOf(server, client, ...errors));
    });
  });
}

describe('secret: Peers', () => {
  test("two Peers with the secret pair; a third with a wrong secret gets ERR_IPC_AUTH_FAILED and the listening Peer 'authError'", T, async (t) => {
    const track = autoClose(t);
    const file = socketPath(t);
    const a = track(new Peer({ socketFile: file, secret: SECRET }));
    const aRole = waitFor(a, 'role');
    a.connect();
    assert.deepStrictEqual(await aRole, ['server']);
    const b = track(new Peer({ socketFile: file, secret: Buffer.from(SECRET) }));
    const paired = Promise.all([waitFor(a, 'connect'), waitFor(b, 'connect')]);
    b.connect();
    await paired;
    assert.equal(b.role, 'client');
    const atB = waitFor(b, 'message');
    a.send('hi', 'from a');
    assert.deepStrictEqual(await atB, ['from a', 'hi']);

    const authError = waitFor(a, 'authError');
    const c = track(new Peer({ socketFile: file, secret: WRONG_SECRET, retryDelay: 20 }));
    const cSide = recorder(c, CLIENT_EVENTS);
    const cClosed = waitClose(c);
    c.connect();
    await cClosed;
    const [err, info] = await authError;
    assert.equal(err.code, 'ERR_IPC_AUTH_FAILED');
    assert.deepStrictEqual(info, { pid: process.pid, uid: process.getuid(), gid: process.getgid() });
    assert.deepStrictEqual(cSide.order, ['error', 'close']);
    assert.equal(cSide.errors[0].code, 'ERR_IPC_AUTH_FAILED');

    // the pair is undisturbed, and the socket file still belongs to a
    assert.equal(a.role, 'server');
    const atA = waitFor(a, 'message');
    b.send('hi', 'from b');
    assert.deepStrictEqual(await atA, ['from b', 'hi']);
    assertHidden(textsOf(a, b, c, err, ...cSide.errors));
    assertHidden(textsOf(err, ...cSide.errors), WRONG_SECRET);
  });

  test('a Peer with the wrong secret is refused by a lone listening Peer, which stays listening for the right one', T, async (t) => {
    const track = autoClose(t);
    const file = socketPath(t);
    const a = track(new Peer({ socketFile: file, secret: SECRET }));
    const aRole = waitFor(a, 'role');
    a.connect();
    await aRole;
    const authErrors = counter(a, 'authError');
    const wrong = track(new Peer({ socketFile: file, secret: WRONG_SECRET, retryDelay: 20 }));
    const wrongSide = recorder(wrong, CLIENT_EVENTS);
    const wrongClosed = waitClose(wrong);
    wrong.connect();
    await wrongClosed;
    await sleep(300);
    assert.deepStrictEqual(wrongSide.order, ['error', 'close']);
    assert.equal(wrongSide.errors[0].code, 'ERR_IPC_AUTH_FAILED');
    assert.equal(authErrors.length, 1);
    assert.ok(fs.existsSync(file), 'the refused Peer did not take the socket file over');

    const right = track(new Peer({ socketFile: file, secret: SECRET }));
    const paired = Promise.all([waitFor(a, 'connect'), waitFor(right, 'connect')]);
    right.connect();
    await paired;
  });
});

describe('the secret and the TLS key never show', () => {
  test('util.inspect of a Server, Client and Peer (before and after starting) shows neither the secret nor a private key', T, async (t) => {
    const track = autoClose(t);
    const server = track(new Server({ address: 'tls://127.0.0.1:0', secret: SECRET, tls: { ...CERT, ca: CA, requestCert: true } }));
    const client0 = new Client({ address: 'tls://localhost:1', secret: Buffer.from(SECRET), tls: { ca: CA, cert: tlsFixture('client.pem'), key: tlsFixture('client-key.pem') } });
    const peer = track(new Peer({ socketFile: socketPath(t), secret: SECRET, tls: { ...CERT, ca: CA } }));
    const before = textsOf(server, client0, peer);
    assertHidden(before);
    assertNoKey(before);
    const listening = waitFor(server, 'listening');
    server.listen();
    await listening;
    server.transport = 'tls';
    const { client, clientId } = await connectClient(server, track, {
      secret: SECRET,
      tls: { ca: CA, cert: tlsFixture('client.pem'), key: tlsFixture('client-key.pem') },
    });
    await roundTrip(server, client, clientId, 'inspect');
    const role = waitFor(peer, 'role');
    peer.connect();
    await role;
    const texts = textsOf(server, client, peer);
    assertHidden(texts);
    assertNoKey(texts);
  });

  test('the secret does not show even when the caller changes its Buffer afterwards, and the copy is what counts', T, async (t) => {
    const track = autoClose(t);
    const buf = Buffer.from(SECRET);
    const server = await startServer(t, track, { secret: buf });
    buf.fill(0x41); // the server keeps its own copy
    const { client, clientId } = await connectClient(server, track, { secret: SECRET });
    await roundTrip(server, client, clientId, 'copied');
    assertHidden(textsOf(server, client));
  });

  for (const [name, Class] of [['Server', Server], ['Client', Client], ['Peer', Peer]]) {
    test(`a secret under 16 bytes makes new ${name}() throw RangeError ERR_OUT_OF_RANGE without showing it`, (t) => {
      const socketFile = socketPath(t);
      for (const secret of ['shh-tiny-secret', Buffer.from('fifteen-bytes!!'), 'q7Zk-short']) {
        let caught;
        try {
          new Class({ socketFile, secret });
        } catch (err) {
          caught = err;
        }
        assert.ok(caught instanceof RangeError, `expected a RangeError, got ${caught}`);
        assert.equal(caught.code, 'ERR_OUT_OF_RANGE');
        assertHidden(textsOf(caught), String(secret));
      }
      // 16 bytes is enough, counted in bytes: 8 two-byte characters are 16 bytes
      new Class({ socketFile, secret: '0123456789abcdef' });
      new Class({ socketFile, secret: 'é'.repeat(8) });
      assert.throws(() => new Class({ socketFile, secret: 1234567890123456 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    });
  }

  test('a bad private key makes the constructor throw ERR_IPC_TLS_CONFIG without showing the key', () => {
    const badKey = `-----BEGIN PRIVATE KEY-----\n${KEY_LINE.split('').reverse().join('')}\n-----END PRIVATE KEY-----\n`;
    for (const key of [badKey, tlsFixture('other-server-key.pem')]) {
      let caught;
      try {
        new Server({ address: 'tls://127.0.0.1:0', tls: { cert: tlsFixture('server.pem'), key } });
      } catch (err) {
        caught = err;
      }
      assert.equal(caught?.code, 'ERR_IPC_TLS_CONFIG', String(caught));
      const texts = textsOf(caught);
      assertNoKey(texts);
      for (const text of texts) assert.ok(!text.includes(KEY_LINE.split('').reverse().join('')));
      const otherKeyLine = tlsFixture('other-server-key.pem').toString().split('\n')[1];
      for (const text of texts) assert.ok(!text.includes(otherKeyLine));
    }
  });
});

// ----- the secret on the wire -----

describe('the secret challenge on the wire (raw clients on a Unix socket)', () => {
  // The proofs of src/auth.rs: HMAC-SHA256(secret, label | server nonce | client nonce).
  const proof = (label, serverNonce, clientNonce, secret = SECRET) =>
    crypto.createHmac('sha256', secret).update(Buffer.concat([Buffer.from(`native-socket-ipc v1 ${label}`), serverNonce, clientNonce])).digest();

  /** A raw socket that sent its hello and received the challenge; returns { raw, nonce }. */
  async function challenged(track, server) {
    const raw = await rawConnect(track, server);
    raw.write(HELLO);
    await receivedAtLeast(raw, 4 + 1 + 32);
    const [challenge] = framesOf(raw.received);
    assert.equal(challenge.kind, KIND.AUTH_CHALLENGE);
    assert.equal(challenge.body.length, 32);
    assert.equal(raw.received.readUInt32BE(0), 33);
    return { raw, nonce: Buffer.from(challenge.body) };
  }

  /** Sends `proofFrame` and expects the server to answer with a REJECT 'auth failed…' and hang up. */
  async function expectAuthReject(track, server, proofFrame) {
    const authError = waitFor(server, 'authError');
    const { raw } = await challenged(track, server);
    const closed = closeOf(raw);
    raw.write(proofFrame);
    await withTimeout(closed, 5000, 'the server to hang up on a bad proof');
    const frames = framesOf(raw.received);
    assert.deepStrictEqual(frames.map((f) => f.kind), [KIND.AUTH_CHALLENGE, KIND.REJECT], 'a challenge, then a reject, and no hello');
    const reason = frames[1].body.toString();
    assert.ok(reason.startsWith('auth failed'), reason);
    assertHidden([reason]);
    const [err, info] = await authError;
    assert.equal(err.code, 'ERR_IPC_AUTH_FAILED');
    assert.equal(info.pid, process.pid);
    return reason;
  }

  test("a proof of 64 random bytes gets a REJECT 'auth failed…' and 'authError', never 'connection'", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { secret: SECRET });
    const connections = counter(server, 'connection');
    await expectAuthReject(track, server, frame(KIND.AUTH_PROOF, crypto.randomBytes(64)));
    assert.deepStrictEqual(connections, []);
  });

  test('a proof of the wrong length (0, 63, 65 bytes) gets a REJECT and an authError likewise', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { secret: SECRET });
    const connections = counter(server, 'connection');
    for (const n of [0, 63, 65]) await expectAuthReject(track, server, frame(KIND.AUTH_PROOF, crypto.randomBytes(n)));
    assert.deepStrictEqual(connections, []);
  });

  test('each connection gets a fresh challenge, and a proof computed for another challenge is refused (no replay)', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { secret: SECRET });
    const connections = counter(server, 'connection');
    const first = await challenged(track, server);
    const clientNonce = crypto.randomBytes(32);
    const replayed = frame(KIND.AUTH_PROOF, Buffer.concat([clientNonce, proof('client', first.nonce, clientNonce)]));
    const second = await challenged(track, server);
    assert.notDeepStrictEqual(first.nonce, second.nonce);
    // the proof for the first challenge, sent on the second connection
    const authError = waitFor(server, 'authError');
    const closed = closeOf(second.raw);
    second.raw.write(replayed);
    await withTimeout(closed, 5000, 'the server to refuse the replayed proof');
    assert.deepStrictEqual(framesOf(second.raw.received).map((f) => f.kind), [KIND.AUTH_CHALLENGE, KIND.REJECT]);
    assert.equal((await authError)[0].code, 'ERR_IPC_AUTH_FAILED');
    assert.deepStrictEqual(connections, []);

    // the same proof on the connection it was made for is accepted: the server proves itself, then says hello
    const connection = waitFor(server, 'connection');
    first.raw.write(replayed);
    await receivedAtLeast(first.raw, 37 + 37 + HELLO.length);
    const frames = framesOf(first.raw.received);
    assert.deepStrictEqual(frames.map((f) => f.kind), [KIND.AUTH_CHALLENGE, KIND.AUTH_OK, KIND.HELLO]);
    assert.deepStrictEqual(frames[1].body, proof('server', first.nonce, clientNonce), "the server's proof");
    const [clientId] = await connection;
    const message = waitFor(server, 'message');
    first.raw.write(jsonFrame('t', '"proved"'));
    assert.deepStrictEqual(await message, ['proved', 't', clientId]);
  });

  test('a proof frame announcing 4 GiB, or a message instead of a proof, ends the connection with no connection event', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { secret: SECRET });
    const connections = counter(server, 'connection');
    const messages = counter(server, 'message');
    const rssBefore = process.memoryUsage.rss();
    for (const bad of [Buffer.from([0xff, 0xff, 0xff, 0xf0, KIND.AUTH_PROOF]), jsonFrame('sneak', '"in"')]) {
      const { raw } = await challenged(track, server);
      const closed = closeOf(raw);
      raw.write(bad);
      await withTimeout(closed, 5000, `the server to hang up on ${bad.subarray(0, 8).toString('hex')}`);
      assert.ok(!framesOf(raw.received).some((f) => f.kind === KIND.HELLO), 'no hello');
    }
    const grown = process.memoryUsage.rss() - rssBefore;
    assert.ok(grown < 100 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MB`);
    assert.deepStrictEqual(connections, []);
    assert.deepStrictEqual(messages, []);
  });

  test("a raw client that goes silent after the challenge gets 'messageError' ERR_IPC_HANDSHAKE_TIMEOUT after handshakeTimeout", T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, { secret: SECRET, handshakeTimeout: 300 });
    const connections = counter(server, 'connection');
    const messageError = waitFor(server, 'messageError');
    const { raw } = await challenged(track, server);
    const closed = closeOf(raw);
    const [err] = await messageError;
    assert.equal(err.code, 'ERR_IPC_HANDSHAKE_TIMEOUT');
    await withTimeout(closed, 5000, 'the server to hang up');
    assert.deepStrictEqual(connections, []);
  });
});

describe('a Client with a secret against fake servers (raw node:net on a Unix socket)', () => {
  /**
   * A raw server on a fresh path: on each connection, once the client's hello has arrived, it
   * sends a challenge; once the client's proof has arrived, it sends what `answer(proof, nonce)`
   * returns. Returns { path, proofs, later } (the proofs it received, and the frames after them).
   */
  async function fakeServer(t, track, answer) {
    const path = socketPath(t, 'fake');
    const proofs = [];
    const later = [];
    const srv = track(
      net.createServer((sock) => {
        sock.on('error', () => {});
        const nonce = crypto.randomBytes(32);
        let received = Buffer.alloc(0);
        let stage = 0;
        sock.on('data', (d) => {
          received = Buffer.concat([received, d]);
          const frames = framesOf(received);
          if (stage === 0 && frames.length >= 1) {
            stage = 1;
            sock.write(frame(KIND.AUTH_CHALLENGE, nonce));
          }
          if (stage === 1 && frames.length >= 2) {
            stage = 2;
            proofs.push(frames[1]);
            sock.write(answer(frames[1].body, nonce));
          }
          if (stage === 2) later.splice(0, Infinity, ...frames.slice(2));
        });
      }),
    );
    srv.listen(path);
    await once(srv, 'listening');
    return { path, proofs, later };
  }

  /** A Client with the secret that must refuse the fake server: 'error' ERR_IPC_AUTH_FAILED, never 'connect'. */
  async function expectClientRefuses(t, track, answer) {
    const { path, proofs, later } = await fakeServer(t, track, answer);
    const client = track(new Client({ socketFile: path, secret: SECRET, retryDelay: 20, maxRetries: 2 }));
    const side = recorder(client, CLIENT_EVENTS);
    const outcome = Promise.race([waitClose(client).then(() => 'close'), once(client, 'connect').then(() => 'connect')]);
    client.connect();
    client.send('private', 'for the real server only');
    const first = await withTimeout(outcome, 5000, "the client's 'close' (or 'connect')");
    if (first === 'connect') await sleep(100); // let what the client sends reach the fake server
    assert.equal(
      first,
      'close',
      `the client connected to a server that never proved it knows the secret, and sent it ${later.length} frame(s): ${later.map(describeFrame).join(', ')}`,
    );
    assert.equal(proofs.length, 1, 'the client made one attempt');
    assert.equal(proofs[0].kind, KIND.AUTH_PROOF);
    assert.equal(proofs[0].body.length, 64);
    assert.ok(!side.order.includes('connect'), `events: ${side.order}`);
    assert.deepStrictEqual(side.order.slice(0, 1), ['error'], `events: ${side.order}`);
    assert.equal(side.errors[0].code, 'ERR_IPC_AUTH_FAILED', side.errors[0].message);
    assertHidden(textsOf(client, ...side.errors));
  }

  test('a fake server that answers the proof with a wrong AUTH_OK is refused (ERR_IPC_AUTH_FAILED)', T, async (t) => {
    const track = autoClose(t);
    await expectClientRefuses(t, track, () => Buffer.concat([frame(KIND.AUTH_OK, crypto.randomBytes(32)), HELLO]));
  });

  test('a fake server that answers with an AUTH_OK replaying the client\'s own proof is refused', T, async (t) => {
    const track = autoClose(t);
    await expectClientRefuses(t, track, (proofBody) => Buffer.concat([frame(KIND.AUTH_OK, proofBody.subarray(32)), HELLO]));
  });

  test('a fake server that challenges, then skips AUTH_OK and sends its hello, is refused: it never proved the secret', T, async (t) => {
    const track = autoClose(t);
    await expectClientRefuses(t, track, () => HELLO);
  });

  test('the real server\'s AUTH_OK, computed with the secret, is accepted by the client (the fake server\'s framing is right)', T, async (t) => {
    const track = autoClose(t);
    const serverProof = (nonce, clientNonce) =>
      crypto.createHmac('sha256', SECRET).update(Buffer.concat([Buffer.from('native-socket-ipc v1 server'), nonce, clientNonce])).digest();
    const { path } = await fakeServer(t, track, (proofBody, nonce) => Buffer.concat([frame(KIND.AUTH_OK, serverProof(nonce, proofBody.subarray(0, 32))), HELLO]));
    const client = track(new Client({ socketFile: path, secret: SECRET }));
    const connected = waitFor(client, 'connect');
    client.connect();
    await connected;
  });
});

// ----- allow -----

describe('allow', () => {
  const OTHER_ID = 4242424;

  test('allow { uids: [our uid] } admits, and so does { gids: [our gid] } (either list may match)', T, async (t) => {
    const track = autoClose(t);
    for (const allow of [{ uids: [process.getuid()] }, { uids: [OTHER_ID], gids: [process.getgid()] }, { gids: [OTHER_ID, process.getgid()] }]) {
      const server = await startServer(t, track, { allow });
      const authErrors = counter(server, 'authError');
      const { client, clientId } = await connectClient(server, track);
      await roundTrip(server, client, clientId, JSON.stringify(allow));
      assert.deepStrictEqual(authErrors, []);
    }
  });

  for (const transport of ['unix', 'abstract']) {
    test(`allow { uids, gids } without ours refuses on ${transport}: client ERR_IPC_NOT_ALLOWED and stops; server 'authError', no 'connection'`, T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { allow: { uids: [OTHER_ID], gids: [OTHER_ID] } }, transport);
      const connections = counter(server, 'connection');
      const authErrors = counter(server, 'authError');
      await expectRefused(server, track, {}, 'ERR_IPC_NOT_ALLOWED');
      assert.equal(authErrors.length, 1, 'one attempt: the client did not retry');
      assert.equal(authErrors[0][0].code, 'ERR_IPC_NOT_ALLOWED');
      assertInfoIsUs(authErrors[0][1], transport);
      assert.deepStrictEqual(connections, []);
    });
  }

  test('allow { uids } on TCP, and allow or mode on a Client, throw ERR_INVALID_ARG_VALUE', (t) => {
    assert.throws(() => new Server({ address: 'tcp://127.0.0.1:0', allow: { uids: [0] } }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => new Server({ address: 'tls://127.0.0.1:0', tls: CERT, allow: { gids: [0] } }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => new Client({ socketFile: socketPath(t), allow: () => true }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => new Client({ socketFile: socketPath(t), mode: 0o600 }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => new Server({ socketFile: socketPath(t), allow: {} }), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  for (const transport of TRANSPORTS) {
    test(`an allow function on ${transport} gets the client's info before 'connection', and the same info as clientInfo()`, T, async (t) => {
      const track = autoClose(t);
      const order = [];
      const infos = [];
      const server = await startServer(
        t,
        track,
        {
          allow: (info) => {
            order.push('allow');
            infos.push(info);
            return true;
          },
        },
        transport,
      );
      server.on('connection', () => order.push('connection'));
      const { client, clientId } = await connectClient(server, track);
      assert.deepStrictEqual(order, ['allow', 'connection']);
      assert.equal(infos.length, 1);
      assertInfoIsUs(infos[0], transport);
      assert.deepStrictEqual(server.clientInfo(clientId), infos[0]);
      await roundTrip(server, client, clientId, 'allowed');
    });
  }

  test('with a secret as well, the allow function is asked only about clients that proved the secret', T, async (t) => {
    const track = autoClose(t);
    const asked = [];
    const server = await startServer(t, track, {
      secret: SECRET,
      allow: (info) => {
        asked.push(info);
        return false;
      },
    });
    const authErrors = counter(server, 'authError');
    await expectRefused(server, track, { secret: WRONG_SECRET }, 'ERR_IPC_AUTH_FAILED', 100);
    assert.deepStrictEqual(asked, []);
    assert.equal(authErrors[0][0].code, 'ERR_IPC_AUTH_FAILED');
    // the client that proved the secret is asked about (and refused)
    await expectRefused(server, track, { secret: SECRET }, 'ERR_IPC_NOT_ALLOWED', 100);
    assert.equal(asked.length, 1);
    assertInfoIsUs(asked[0], 'unix');
  });

  test('only true allows: false, 1, "yes", {} and a Promise of true each refuse with ERR_IPC_NOT_ALLOWED', T, async (t) => {
    const track = autoClose(t);
    let verdict;
    const server = await startServer(t, track, { allow: () => verdict });
    const connections = counter(server, 'connection');
    const authErrors = counter(server, 'authError');
    const verdicts = [false, 1, 'yes', {}, Promise.resolve(true), undefined];
    for (const v of verdicts) {
      verdict = v;
      await expectRefused(server, track, {}, 'ERR_IPC_NOT_ALLOWED', 200);
    }
    assert.equal(authErrors.length, verdicts.length);
    for (const [err, info] of authErrors) {
      assert.equal(err.code, 'ERR_IPC_NOT_ALLOWED');
      assertInfoIsUs(info, 'unix');
    }
    assert.deepStrictEqual(connections, []);
    verdict = true;
    const { client, clientId } = await connectClient(server, track);
    await roundTrip(server, client, clientId, 'true at last');
  });

  for (const transport of ['unix', 'tcp']) {
    test(`an allow function that throws refuses on ${transport}; the authError's cause is what it threw, and the client is not told`, T, async (t) => {
      const track = autoClose(t);
      const thrown = new Error(`allow blew up: ${SECRET}`);
      const server = await startServer(
        t,
        track,
        {
          allow: () => {
            throw thrown;
          },
        },
        transport,
      );
      const connections = counter(server, 'connection');
      const authErrors = counter(server, 'authError');
      const errors = counter(server, 'error');
      const { err } = await expectRefused(server, track, {}, 'ERR_IPC_NOT_ALLOWED');
      assert.equal(authErrors.length, 1);
      const [serverErr, info] = authErrors[0];
      assert.equal(serverErr.code, 'ERR_IPC_NOT_ALLOWED');
      assert.equal(serverErr.cause, thrown);
      assertInfoIsUs(info, transport);
      assert.deepStrictEqual(connections, []);
      assert.deepStrictEqual(errors, []);
      // what the function threw stays on the server
      assertHidden(textsOf(err));
    });
  }
});

// ----- the socket file's mode -----

describe('mode', () => {
  for (const mode of [0o600, 0o660]) {
    test(`mode 0o${mode.toString(8)} is the socket file's permissions as soon as 'listening' fires`, T, async (t) => {
      const track = autoClose(t);
      const socketFile = socketPath(t);
      const server = track(new Server({ socketFile, mode }));
      let seen;
      server.once('listening', () => (seen = fs.statSync(socketFile)));
      const listening = waitFor(server, 'listening');
      server.listen();
      await listening;
      assert.ok(seen.isSocket());
      assert.equal(seen.mode & 0o777, mode, `mode 0o${(seen.mode & 0o777).toString(8)}`);
      server.socketFile = socketFile;
      server.transport = 'unix';
      const { client, clientId } = await connectClient(server, track);
      await roundTrip(server, client, clientId, 'mode');
    });
  }

  test('without mode the socket file is still created', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track);
    assert.ok(fs.statSync(server.socketFile).isSocket());
  });

  test('a Peer in the server role applies its mode to the socket file', T, async (t) => {
    const track = autoClose(t);
    const socketFile = socketPath(t);
    const peer = track(new Peer({ socketFile, mode: 0o600 }));
    const role = waitFor(peer, 'role');
    peer.connect();
    assert.deepStrictEqual(await role, ['server']);
    assert.equal(fs.statSync(socketFile).mode & 0o777, 0o600);
  });

  test('mode on an abstract socket or a TCP port, or out of range, throws', (t) => {
    assert.throws(() => new Server({ address: 'unix:@nsipc-mode-test', mode: 0o600 }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => new Server({ address: 'tcp://127.0.0.1:0', mode: 0o600 }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => new Server({ socketFile: socketPath(t), mode: 0o1000 }), { code: 'ERR_OUT_OF_RANGE' });
  });

  // Root runs these tests, so another user's refusal cannot be shown; the bits can, in a child
  // process whose umask is set first, which proves the mode does not come from the umask.
  for (const [umask, mode] of [
    [0, 0o600],
    [0, 0o660],
    [0o077, 0o660],
    [0, undefined],
  ]) {
    test(`a Server in a child process with umask 0o${umask.toString(8)} and mode ${mode === undefined ? 'unset' : `0o${mode.toString(8)}`} gets exactly that mode`, T, async (t) => {
      const track = autoClose(t);
      const socketFile = socketPath(t);
      const child = spawnFixture(t, 'security-mode.js', [socketFile, mode === undefined ? 'none' : mode.toString(8), umask.toString(8)]);
      const listening = await childMessage(child, (m) => m.event === 'listening' || m.event === 'error');
      assert.equal(listening.event, 'listening', JSON.stringify(listening));
      assert.equal(listening.umask, umask, 'the child ran with the umask asked for');
      assert.ok(listening.isSocket);
      if (mode !== undefined) assert.equal(listening.mode, mode, `mode 0o${listening.mode.toString(8)}`);
      else t.diagnostic(`without mode, under umask 0o${umask.toString(8)}: 0o${listening.mode.toString(8)}`);
      assert.equal(fs.statSync(socketFile).mode & 0o777, listening.mode, 'the parent sees the same mode');
      // and it serves (we are root, so a refusal by the bits cannot be shown here)
      const client = track(new Client({ socketFile }));
      const echoed = waitFor(client, 'message');
      client.connect();
      client.send('echo', 'through the child');
      assert.deepStrictEqual(await echoed, ['through the child', 'echo']);
      child.send({ cmd: 'close' });
      assert.deepStrictEqual(await childExit(child), { code: 0, signal: null });
    });
  }
});

// ----- TLS -----

describe('TLS', () => {
  const tlsServer = (t, track, tlsOptions, extra = {}) => startServer(t, track, { tls: { ...CERT, ...tlsOptions }, ...extra }, 'tls');
  const clientCert = { cert: tlsFixture('client.pem'), key: tlsFixture('client-key.pem') };

  test('mutual TLS: a client with a certificate from the CA connects; clientInfo() gives its address', T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, { ca: CA, requestCert: true });
    const authErrors = counter(server, 'authError');
    const { client, clientId } = await connectClient(server, track, { tls: { ca: CA, ...clientCert } });
    await roundTrip(server, client, clientId, 'mutual');
    assertInfoIsUs(server.clientInfo(clientId), 'tls');
    assert.deepStrictEqual(authErrors, []);
    assertNoKey(textsOf(server, client));
  });

  test("mutual TLS: a client without a certificate gets ERR_IPC_TLS (CertificateRequired) and stops; server 'authError' ERR_IPC_TLS", T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, { ca: CA, requestCert: true });
    const connections = counter(server, 'connection');
    const authErrors = counter(server, 'authError');
    const { client, err } = await expectRefused(server, track, { tls: { ca: CA } }, 'ERR_IPC_TLS');
    assert.match(err.message, /CertificateRequired/);
    assert.equal(authErrors.length, 1);
    assert.equal(authErrors[0][0].code, 'ERR_IPC_TLS');
    assertInfoIsUs(authErrors[0][1], 'tls');
    assert.deepStrictEqual(connections, []);
    assertNoKey(textsOf(server, client, err, authErrors[0][0]));
  });

  test('mutual TLS: a client certificate from another CA is refused (ERR_IPC_TLS on both sides)', T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, { ca: CA, requestCert: true });
    const connections = counter(server, 'connection');
    const authError = waitFor(server, 'authError');
    const otherKey = tlsFixture('other-server-key.pem');
    const { client, err } = await expectRefused(server, track, { tls: { ca: CA, cert: tlsFixture('other-server.pem'), key: otherKey } }, 'ERR_IPC_TLS');
    const [serverErr] = await authError;
    assert.equal(serverErr.code, 'ERR_IPC_TLS');
    assert.deepStrictEqual(connections, []);
    const texts = textsOf(server, client, err, serverErr);
    assertNoKey(texts);
    for (const text of texts) assert.ok(!text.includes(otherKey.toString().split('\n')[1]));
  });

  test('requestCert with rejectUnauthorized: false on the server accepts a client without a certificate', T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, { ca: CA, requestCert: true, rejectUnauthorized: false });
    const { client, clientId } = await connectClient(server, track, { tls: { ca: CA } });
    await roundTrip(server, client, clientId, 'no client cert needed');
  });

  test('a client trusting only other-ca.pem gets ERR_IPC_TLS and stops (no retries); the server is undisturbed', T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, {});
    const connections = counter(server, 'connection');
    const { err } = await expectRefused(server, track, { tls: { ca: tlsFixture('other-ca.pem') } }, 'ERR_IPC_TLS');
    assert.match(err.message, /UnknownIssuer|certificate/i);
    assert.deepStrictEqual(connections, []);
    const { client, clientId } = await connectClient(server, track);
    await roundTrip(server, client, clientId, 'after a distrustful client');
  });

  test('a client without any ca (Mozilla roots only) refuses the test server with ERR_IPC_TLS', T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, {});
    await expectRefused(server, track, { tls: {} }, 'ERR_IPC_TLS');
  });

  test('rejectUnauthorized: false connects to a server whose certificate no configured CA signed', T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, { cert: tlsFixture('other-server.pem'), key: tlsFixture('other-server-key.pem') });
    // the control: the default refuses it
    await expectRefused(server, track, { tls: { ca: CA } }, 'ERR_IPC_TLS');
    const { client, clientId } = await connectClient(server, track, { tls: { rejectUnauthorized: false } });
    await roundTrip(server, client, clientId, 'unverified');
  });

  test("a servername the certificate does not name ('example.com' on tls://127.0.0.1) is refused; the IP itself is fine", T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, {});
    const port = server.address().port;
    const { err } = await expectRefused(server, track, { address: `tls://127.0.0.1:${port}`, tls: { ca: CA, servername: 'example.com' } }, 'ERR_IPC_TLS');
    assert.match(err.message, /example\.com/);
    await expectRefused(server, track, { address: `tls://localhost:${port}`, tls: { ca: CA, servername: 'example.com' } }, 'ERR_IPC_TLS');
    const { client, clientId } = await connectClient(server, track, { address: `tls://127.0.0.1:${port}`, tls: { ca: CA } });
    await roundTrip(server, client, clientId, 'by IP');
  });

  test('TLS over a Unix socket works, and clientInfo() gives pid, uid and gid', T, async (t) => {
    const track = autoClose(t);
    const socketFile = socketPath(t);
    const server = track(new Server({ socketFile, tls: CERT }));
    const listening = waitFor(server, 'listening');
    server.listen();
    await listening;
    server.transport = 'unix';
    const { client, clientId } = await connectClient(server, track, { tls: { ca: CA } });
    await roundTrip(server, client, clientId, 'tls over unix');
    assert.deepStrictEqual(server.clientInfo(clientId), { pid: process.pid, uid: process.getuid(), gid: process.getgid() });
    // a plain client on that socket gets nowhere
    const plain = track(new Client({ socketFile, retryDelay: 50 }));
    const connectError = waitFor(plain, 'connectError');
    const authError = waitFor(server, 'authError');
    plain.connect();
    assert.equal((await connectError)[0].code, 'ERR_IPC_PROTOCOL');
    assert.equal((await authError)[0].code, 'ERR_IPC_TLS');
    await roundTrip(server, client, clientId, 'still');
  });

  test('a plain client to a TLS server fails (connectError) while the server keeps serving a TLS client', T, async (t) => {
    const track = autoClose(t);
    const server = await tlsServer(t, track, {});
    const errors = counter(server, 'error');
    const authErrors = counter(server, 'authError');
    const plain = track(new Client({ address: `tcp://127.0.0.1:${server.address().port}`, retryDelay: 50 }));
    const plainSide = recorder(plain, CLIENT_EVENTS);
    const failedTwice = new Promise((resolve) => {
      let n = 0;
      plain.on('connectError', () => ++n === 2 && resolve());
    });
    plain.connect();
    await withTimeout(failedTwice, 5000, 'two failed attempts of the plain client');
    assert.ok(!plainSide.order.includes('connect'));
    for (const err of plainSide.errors) assert.equal(err.code, 'ERR_IPC_PROTOCOL', err.message);
    await until(() => authErrors.length >= 2, 5000, "the server's 'authError' for each attempt");
    for (const [err] of authErrors) assert.equal(err.code, 'ERR_IPC_TLS');
    const { client, clientId } = await connectClient(server, track);
    await roundTrip(server, client, clientId, 'beside a plain client');
    assert.deepStrictEqual(errors, []);
  });

  test('a TLS client to a plain server fails cleanly (connectError ERR_IPC_TLS) and the server keeps serving', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, 'tcp');
    const errors = counter(server, 'error');
    const connections = counter(server, 'connection');
    const messageError = waitFor(server, 'messageError');
    const tlsClient = track(new Client({ address: `tls://localhost:${server.address().port}`, tls: { ca: CA }, retryDelay: 50 }));
    const tlsSide = recorder(tlsClient, CLIENT_EVENTS);
    const connectError = waitFor(tlsClient, 'connectError');
    tlsClient.connect();
    assert.equal((await connectError)[0].code, 'ERR_IPC_TLS');
    assert.equal((await messageError)[0].code, 'ERR_IPC_PROTOCOL');
    assert.ok(!tlsSide.order.includes('connect'));
    assert.deepStrictEqual(connections, []);
    const { client, clientId } = await connectClient(server, track);
    await roundTrip(server, client, clientId, 'beside a TLS client');
    assert.deepStrictEqual(errors, []);
  });

  test('bad PEM throws ERR_IPC_TLS_CONFIG from the constructor; so does a TLS server without cert and key', () => {
    const tlsConfig = { name: 'TypeError', code: 'ERR_IPC_TLS_CONFIG' };
    assert.throws(() => new Server({ address: 'tls://127.0.0.1:0', tls: { cert: 'not a pem', key: CERT.key } }), tlsConfig);
    assert.throws(
      () => new Server({ address: 'tls://127.0.0.1:0', tls: { cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', key: CERT.key } }),
      tlsConfig,
    );
    assert.throws(() => new Server({ address: 'tls://127.0.0.1:0', tls: { cert: CERT.cert } }), tlsConfig);
    assert.throws(() => new Server({ address: 'tls://127.0.0.1:0' }), tlsConfig);
    assert.throws(() => new Client({ address: 'tls://127.0.0.1:1', tls: { ca: 'garbage' } }), tlsConfig);
    assert.throws(() => new Client({ address: 'tls://127.0.0.1:1', tls: { cert: 'garbage', key: clientCert.key } }), tlsConfig);
  });

  test("a Peer's TLS options are checked for both roles in the constructor: a bad ca throws even with a good cert and key", () => {
    const tlsConfig = { name: 'TypeError', code: 'ERR_IPC_TLS_CONFIG', message: /tls\.ca/ };
    assert.throws(() => new Peer({ address: 'tls://127.0.0.1:1', tls: { ...CERT, ca: 'garbage' } }), tlsConfig);
    assert.throws(() => new Peer({ address: 'tls://127.0.0.1:1', tls: { ca: tlsFixture('ca.pem') } }), { code: 'ERR_IPC_TLS_CONFIG' });
  });
});

// ----- frameTimeout -----

for (const transport of TRANSPORTS) {
  describe(`frameTimeout over ${transport}`, () => {
    // A frame of 200 bytes on the wire.
    const FRAME_200 = jsonFrame('t', JSON.stringify('x'.repeat(200 - 4 - 1 - 2 - 1 - 2)));
    assert.equal(FRAME_200.length, 200);

    /** A raw client past the hello; resolves { raw, clientId }. */
    async function helloed(track, server) {
      const connection = waitFor(server, 'connection');
      const raw = await rawConnect(track, server);
      raw.write(HELLO);
      const [clientId] = await connection;
      return { raw, clientId };
    }

    test("a frame stuck after 3 bytes of its header is dropped after frameTimeout: 'messageError' and 'connectionClose' ERR_IPC_FRAME_TIMEOUT", T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { frameTimeout: 300 }, transport);
      const other = await bystander(t, server, track);
      const { raw, clientId } = await helloed(track, server);
      const messageError = waitFor(server, 'messageError', 3000);
      const connectionClose = new Promise((resolve) => server.on('connectionClose', (id, reason) => id === clientId && resolve([id, reason])));
      const rawClosed = closeOf(raw);
      const started = Date.now();
      raw.write(FRAME_200.subarray(0, 3));
      const [err, errId] = await messageError;
      const elapsed = Date.now() - started;
      assert.equal(err.code, 'ERR_IPC_FRAME_TIMEOUT');
      assert.equal(errId, clientId);
      assert.ok(elapsed >= 250 && elapsed <= 1500, `dropped after ${elapsed} ms`);
      const [, reason] = await withTimeout(connectionClose, 1500, "'connectionClose' of the stuck client");
      assert.equal(reason.code, 'ERR_IPC_FRAME_TIMEOUT');
      await withTimeout(rawClosed, 2000, 'the stuck socket to close');
      await other.check();
    });

    test('a frame trickling in one byte every 50 ms is dropped after frameTimeout although bytes keep arriving', T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { frameTimeout: 300 }, transport);
      const other = await bystander(t, server, track);
      const messages = counter(server, 'message.t');
      const { raw, clientId } = await helloed(track, server);
      const messageError = waitFor(server, 'messageError', 3000);
      const connectionClose = new Promise((resolve) => server.on('connectionClose', (id, reason) => id === clientId && resolve(reason)));
      let sent = 0;
      let stopped = false;
      raw.once('close', () => (stopped = true));
      const started = Date.now();
      const trickle = (async () => {
        while (!stopped && sent < FRAME_200.length) {
          raw.write(FRAME_200.subarray(sent, sent + 1));
          sent++;
          await sleep(50);
        }
      })();
      const [err, errId] = await messageError;
      const elapsed = Date.now() - started;
      assert.equal(err.code, 'ERR_IPC_FRAME_TIMEOUT');
      assert.equal(errId, clientId);
      assert.ok(elapsed >= 250 && elapsed <= 1500, `dropped after ${elapsed} ms`);
      assert.ok(sent < FRAME_200.length, `${sent} of ${FRAME_200.length} bytes sent when dropped`);
      assert.equal((await withTimeout(connectionClose, 1500, "'connectionClose'")).code, 'ERR_IPC_FRAME_TIMEOUT');
      await withTimeout(trickle, 15000, 'the trickle to stop');
      assert.deepStrictEqual(messages, []);
      await other.check();
    });

    test('frameTimeout 0 keeps a connection with a partial frame open (1 s), and the frame completes later', T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { frameTimeout: 0 }, transport);
      const other = await bystander(t, server, track);
      const messageErrors = counter(server, 'messageError');
      const closes = counter(server, 'connectionClose');
      const { raw, clientId } = await helloed(track, server);
      raw.write(FRAME_200.subarray(0, 3));
      await sleep(1000);
      assert.deepStrictEqual(messageErrors, []);
      assert.deepStrictEqual(closes, []);
      assert.ok(!raw.destroyed);
      const message = waitFor(server, 'message.t');
      raw.write(FRAME_200.subarray(3));
      const [m, id] = await message;
      assert.equal(id, clientId);
      assert.equal(m.length, 190);
      await other.check();
    });

    test('frameTimeout does not touch idle connections: a client silent for 800 ms with frameTimeout 200 stays connected', T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { frameTimeout: 200 }, transport);
      const closes = counter(server, 'connectionClose');
      const { client, clientId } = await connectClient(server, track, { frameTimeout: 200 });
      const disconnects = counter(client, 'disconnect');
      await sleep(800);
      await roundTrip(server, client, clientId, 'after a silence');
      assert.deepStrictEqual(closes, []);
      assert.deepStrictEqual(disconnects, []);
    });
  });
}

describe('frameTimeout on a Client', () => {
  test("a server that sends half a frame gets the client 'messageError' ERR_IPC_FRAME_TIMEOUT and 'disconnect', then it reconnects", T, async (t) => {
    const track = autoClose(t);
    const path = socketPath(t, 'raw');
    let accepted = 0;
    const srv = track(
      net.createServer((sock) => {
        sock.on('error', () => {});
        // the first connection stalls mid-frame; the next is clean
        sock.write(accepted++ === 0 ? Buffer.concat([HELLO, jsonFrame('t', '"half"').subarray(0, 6)]) : HELLO);
      }),
    );
    srv.listen(path);
    await once(srv, 'listening');
    const client = track(new Client({ socketFile: path, frameTimeout: 300, reconnectDelay: 10 }));
    const connected = waitFor(client, 'connect');
    const messageError = waitFor(client, 'messageError', 3000);
    const disconnect = waitFor(client, 'disconnect', 3000);
    client.connect();
    await connected;
    const started = Date.now();
    const [err] = await messageError;
    assert.equal(err.code, 'ERR_IPC_FRAME_TIMEOUT');
    assert.ok(Date.now() - started <= 1500);
    assert.equal((await disconnect)[0].code, 'ERR_IPC_FRAME_TIMEOUT');
    await waitFor(client, 'reconnect');
  });
});
