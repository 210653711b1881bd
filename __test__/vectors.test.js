'use strict';
// The test vectors of vectors/*.json (PROTOCOL.md, "Test vectors") against the JS side: the
// encoder (lib/outgoing.js) writes exactly the canonical bytes, and a real Server or Client, over
// a real socket whose other end plays the vector byte for byte (node:net), reads every vector as
// the file says. tests/vectors.rs checks the same files against the Rust codec and handshake.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { once } = require('node:events');
const { Server, Client } = require('..');
const { Outgoing } = require('../lib/outgoing');
const { KIND_TEXT, FRAME_START } = require('../lib/kinds');
const { socketPath, waitFor, sleep } = require('./helpers');

const load = (file) => JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'vectors', file), 'utf8'));
const frames = load('frames.json');
const errors = load('errors.json');
const replies = load('replies.json');
const hello = load('hello.json');
const auth = load('auth.json');
const session = load('session.json');
const socketIpc = load('socket-ipc.json');

const hex = (text) => Buffer.from(text.replace(/\s/g, ''), 'hex');
const HELLO = hex(frames.vectors.find((v) => v.name === 'HELLO, version 1, no flags').hex);
const PING = hex('00000001 02');
const KIND = { PONG: 0x03, CLOSE_REASON: 0x06, REJECT: 0x0f, REPLY_ERROR: 0x24, AUTH_CHALLENGE: 0x30, AUTH_PROOF: 0x31, AUTH_OK: 0x32 };
const T = { timeout: 60000 };
const STEP_MS = 3000;

/** The value a `meaning` (or `resolves`, `send`) stands for. */
function valueOf(meaning) {
  if ('json' in meaning) return meaning.json;
  if ('bytes_hex' in meaning) return Buffer.from(meaning.bytes_hex, 'hex');
  assert.equal(meaning.undefined, true, `a meaning with json, bytes_hex or undefined: ${JSON.stringify(meaning)}`);
  return undefined;
}

// ----- the two ends -----

/** A raw socket read as bytes: exact reads, whole frames, and how it ended. */
class Raw {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.how = null;
    this.waiters = [];
    const wake = () => this.waiters.splice(0).forEach((w) => w());
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      wake();
    });
    const ended = (how) => {
      this.how ??= how;
      wake();
    };
    socket.on('end', () => ended('EOF'));
    socket.on('error', (err) => ended(err.code));
    socket.on('close', () => ended('closed'));
  }

  async until(ready, what, ms = STEP_MS) {
    const deadline = Date.now() + ms;
    while (!ready()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; have ${this.buf.toString('hex')}, ended: ${this.how}`);
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, left);
      });
    }
  }

  async read(n, what = `${n} bytes`) {
    await this.until(() => this.buf.length >= n || this.how !== null, what);
    assert.ok(this.buf.length >= n, `the other side ended (${this.how}) after ${this.buf.toString('hex')}, before ${what}`);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async frame() {
    const prefix = await this.read(4, 'a length prefix');
    const rest = await this.read(prefix.readUInt32BE(0), 'a whole frame');
    return { kind: rest[0], body: rest.subarray(1), bytes: Buffer.concat([prefix, rest]) };
  }

  /** Waits for the end; returns how it ended and what came before it unread. */
  async ended(ms = STEP_MS) {
    await this.until(() => this.how !== null, 'the end of the connection', ms);
    return { how: this.how, rest: this.buf };
  }

  write(bytes) {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }
}

async function rawConnect(t, file) {
  const socket = net.createConnection(file);
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  return new Raw(socket);
}

/** Records an emitter's events in order; `until` waits for a condition over them. */
function record(emitter, names) {
  const seen = [];
  const waiters = [];
  for (const name of names) {
    emitter.on(name, (...args) => {
      seen.push({ event: name, args });
      waiters.splice(0).forEach((w) => w());
    });
  }
  return {
    seen,
    of: (name) => seen.filter((e) => e.event === name),
    async until(ready, what, ms = STEP_MS) {
      const deadline = Date.now() + ms;
      while (!ready()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${seen.map((e) => e.event).join(', ')}`);
        await new Promise((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, left);
        });
      }
    },
  };
}

const SERVER_EVENTS = ['connection', 'message', 'messageError', 'connectionClose', 'authError', 'clientDisconnect', 'clientReconnect', 'error'];

/** A listening Server on a socket path of its own, closed when the test ends. */
async function startServer(t, options = {}, setup = () => {}) {
  const file = socketPath(t, 'vectors');
  const server = new Server({ socketFile: file, ...options });
  setup(server);
  const events = record(server, SERVER_EVENTS);
  server.listen();
  await waitFor(server, 'listening');
  t.after(async () => {
    server.close();
    await Promise.race([once(server, 'close'), sleep(3000)]);
  });
  return { server, events, file };
}

/** The handlers errors.json describes. */
function withHandlers(server) {
  server.handle('sum', ([a, b]) => a + b);
  server.handle('none', () => 'none');
}

/** A raw net.Server playing the server side: `play(raw, n)` runs for its n-th connection. */
async function rawServer(t, play) {
  const file = socketPath(t, 'vectors-raw');
  const connections = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const raw = new Raw(socket);
    connections.push(raw);
    raw.done = play(raw, connections.length).catch((err) => {
      raw.failure = err;
    });
  });
  await new Promise((resolve) => server.listen(file, resolve));
  t.after(async () => {
    for (const raw of connections) raw.socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { file, connections };
}

const CLIENT_EVENTS = ['connect', 'connectError', 'error', 'disconnect', 'close'];

function startClient(t, options) {
  const client = new Client({ retryDelay: 20, ...options });
  const events = record(client, CLIENT_EVENTS);
  t.after(async () => {
    client.close();
    await Promise.race([once(client, 'close'), sleep(3000)]);
  });
  client.connect();
  return { client, events };
}

/** Checks a rejection against `expect.rejects` (null in the file: the property is undefined). */
function checkRejection(err, want, what) {
  assert.ok(err instanceof Error, `${what}: rejects with an Error`);
  assert.equal(err.code, want.code, `${what}: code (message: ${err.message})`);
  if ('message' in want) assert.equal(err.message, want.message, `${what}: message`);
  if ('message_includes' in want) assert.ok(err.message.includes(want.message_includes), `${what}: '${err.message}' names '${want.message_includes}'`);
  for (const prop of ['remoteCode', 'remoteStatus']) {
    if (prop in want) assert.equal(err[prop], want[prop] ?? undefined, `${what}: ${prop}`);
  }
}

/** Steps of one side that follow each other, as one write (so they arrive in one read). */
function runsOf(steps) {
  const runs = [];
  for (const step of steps) {
    const last = runs[runs.length - 1];
    if (last && last.from === step.from && step.from !== undefined && 'hex' in step && 'hex' in last.steps[0]) last.steps.push(step);
    else runs.push({ from: step.from, steps: [step] });
  }
  return runs;
}

// ===== frames.json =====

const DATA_KINDS = new Set(['MESSAGE_JSON', 'MESSAGE_BINARY', 'REQUEST_JSON', 'REQUEST_BINARY', 'REPLY_JSON', 'REPLY_BINARY', 'REPLY_ERROR']);

/** Encodes one frame with lib/outgoing.js as a send(), request() or reply would. */
function encodeWithOutgoing(v) {
  const batches = [];
  const out = new Outgoing(false, 8 * 1024 * 1024, (batch) => batches.push(Buffer.from(batch)) > 0, () => false);
  const m = v.meaning;
  if (v.kind.startsWith('MESSAGE')) out.append(0, m.topic, valueOf(m));
  else if (v.kind.startsWith('REQUEST')) out.appendRequest(0, m.request_id, m.topic, valueOf(m));
  else if (v.kind === 'REPLY_ERROR') out.appendReplyError(0, m.request_id, m.status, m.body);
  else out.appendReply(0, m.request_id, valueOf(m));
  out.flush();
  return Buffer.concat(batches);
}

test('frames.json: the JS encoder writes exactly the canonical bytes of every data frame', () => {
  const canonical = frames.vectors.filter((v) => v.canonical && DATA_KINDS.has(v.kind));
  assert.ok(canonical.length >= 15, `${canonical.length} canonical data frames`);
  for (const v of canonical) assert.deepEqual(encodeWithOutgoing(v), hex(v.hex), v.name);
});

test("frames.json: send('', m) and request('') on a real Client write the topic none", T, async (t) => {
  const wanted = ["MESSAGE_JSON, topic none: what send('', 1) writes", "REQUEST_JSON, id 7, topic none, no message: what request('') writes"];
  const [message, request] = wanted.map((name) => hex(frames.vectors.find((v) => v.name === name).hex));
  const { file, connections } = await rawServer(t, async (raw) => {
    assert.deepEqual(await raw.read(HELLO.length), HELLO);
    raw.write(HELLO);
  });
  const { client } = startClient(t, { socketFile: file });
  await waitFor(client, 'connect');
  client.send('', 1);
  // The request id is the client's own count (7 in the vector): compare the rest.
  client.request('', undefined, { timeout: 0 }).catch(() => {});
  const raw = connections[0];
  assert.deepEqual(await raw.read(message.length), message);
  const sent = await raw.read(request.length);
  assert.deepEqual([sent.subarray(0, 5), sent.subarray(9)], [request.subarray(0, 5), request.subarray(9)]);
});

test('frames.json: a real Server delivers every message and request frame as its meaning, topic_len 0 as none', T, async (t) => {
  const handled = [];
  const { events, file } = await startServer(t, {}, (server) => {
    for (const topic of ['sum', 'none', 'bin']) server.handle(topic, (message) => handled.push([topic, message]));
  });
  const raw = await rawConnect(t, file);
  const sent = frames.vectors.filter((v) => v.phase === 'connected' && (v.kind.startsWith('MESSAGE') || v.kind.startsWith('REQUEST')));
  raw.write(Buffer.concat([HELLO, ...sent.map((v) => hex(v.hex))]));
  const messages = sent.filter((v) => v.kind.startsWith('MESSAGE'));
  const requests = sent.filter((v) => v.kind.startsWith('REQUEST'));
  await events.until(() => events.of('message').length === messages.length && handled.length === requests.length, 'every frame');
  assert.deepEqual(
    events.of('message').map((e) => [e.args[1], e.args[0]]),
    messages.map((v) => [v.meaning.topic, valueOf(v.meaning)]),
  );
  assert.deepEqual(handled, requests.map((v) => [v.meaning.topic, valueOf(v.meaning)]));
  assert.equal(events.of('messageError').length, 0);
});

test('frames.json: a real Server answers the PING vector with the PONG vector', T, async (t) => {
  const { file } = await startServer(t);
  const raw = await rawConnect(t, file);
  raw.write(Buffer.concat([HELLO, PING]));
  const pong = hex(frames.vectors.find((v) => v.kind === 'PONG').hex);
  assert.deepEqual(await raw.read(HELLO.length + pong.length), Buffer.concat([HELLO, pong]));
});

test("frames.json: a real Client reports the CLOSE_REASON vector as the reason of its 'disconnect'", T, async (t) => {
  const v = frames.vectors.find((f) => f.kind === 'CLOSE_REASON');
  const { file } = await rawServer(t, async (raw, n) => {
    await raw.read(HELLO.length);
    raw.write(HELLO);
    if (n === 1) {
      raw.write(hex(v.hex));
      raw.socket.end();
    }
  });
  const { client } = startClient(t, { socketFile: file });
  const [reason] = await waitFor(client, 'disconnect');
  assert.equal(reason.code, v.meaning.code);
  assert.ok(reason.message.includes(v.meaning.message), reason.message);
});

// ===== errors.json =====

test('errors.json: a real Server closes on every closing vector with its code and reads on after every other', T, async (t) => {
  for (const v of errors.vectors) {
    const expectation = v.closes ? `closes with ${v.error}` : v.error ? `${v.error}, the connection stays` : 'no error';
    await t.test(`${v.name}: ${expectation}`, async (t) => {
      const options = v.max_message_size ? { maxMessageSize: v.max_message_size } : {};
      const { events, file } = await startServer(t, options, withHandlers);
      const raw = await rawConnect(t, file);
      raw.write(HELLO);
      assert.deepEqual(await raw.read(HELLO.length), HELLO);
      raw.write(hex(v.hex));
      if (v.then_eof) raw.socket.end();
      if (v.closes) {
        await events.until(() => events.of('connectionClose').length === 1, "'connectionClose'");
        const [error] = events.of('messageError').map((e) => e.args[0]);
        assert.equal(error?.code, v.error, `'messageError' ${error?.message}`);
        assert.equal(events.of('connectionClose')[0].args[1]?.code, v.error, "the reason of 'connectionClose'");
        // A named pipe has no half-close: after its end() the raw client cannot read the reason.
        if (v.then_eof && process.platform === 'win32') return;
        const told = await raw.frame();
        assert.equal(told.kind, KIND.CLOSE_REASON, 'the client is told why');
        assert.equal(JSON.parse(told.body).code, v.error);
        const { rest } = await raw.ended();
        assert.equal(rest.length, 0, 'nothing after the CLOSE_REASON');
        return;
      }
      if (v.reply) {
        const reply = await raw.frame();
        if (v.reply.hex) {
          assert.deepEqual(reply.bytes, hex(v.reply.hex), 'the reply');
        } else {
          assert.equal(reply.kind, KIND.REPLY_ERROR, 'a REPLY_ERROR');
          assert.equal(reply.body.readUInt32BE(0), v.reply.request_id, 'its request id');
          assert.equal(reply.body[4], v.reply.status, 'its status');
          assert.equal(JSON.parse(reply.body.subarray(5)).code, v.reply.code, 'its code');
        }
      }
      // The connection reads on: a PING is still answered, and nothing closed it.
      raw.write(PING);
      assert.equal((await raw.frame()).kind, KIND.PONG, 'PONG after it');
      const errs = events.of('messageError').map((e) => e.args[0]);
      if (v.error) {
        assert.deepEqual(errs.map((e) => e.code), [v.error], 'one messageError');
        if (v.topic) assert.equal(errs[0].topic, v.topic, 'err.topic');
      } else {
        assert.deepEqual(errs, [], 'no messageError');
      }
      if (v.meaning) assert.deepEqual(events.of('message').map((e) => [e.args[1], e.args[0]]), [[v.meaning.topic, valueOf(v.meaning)]]);
      assert.equal(events.of('connectionClose').length, 0, 'still connected');
    });
  }
});

// ===== replies.json =====

test('replies.json: a requester settles its request as each answer says, and its connection stays', T, async (t) => {
  for (const v of replies.vectors) {
    const want = v.expect.resolves ? `resolves ${JSON.stringify(v.expect.resolves)}` : `rejects ${v.expect.rejects.code}`;
    await t.test(`${v.name}: ${want}`, async (t) => {
      const { server, events, file } = await startServer(t);
      const raw = await rawConnect(t, file);
      raw.write(HELLO);
      await raw.read(HELLO.length);
      await events.until(() => events.of('connection').length === 1, "'connection'");
      const clientId = events.of('connection')[0].args[0];
      // A fresh Server's first request has id 1.
      const settled = server.request(clientId, 'sum', [1, 2]).then((value) => ({ value }), (err) => ({ err }));
      assert.deepEqual((await raw.frame()).bytes, hex(replies.request), 'the request');
      raw.write(hex(v.hex));
      const outcome = await settled;
      if (v.expect.resolves) {
        assert.equal(outcome.err, undefined, outcome.err?.message);
        assert.deepEqual(outcome.value, valueOf(v.expect.resolves));
      } else {
        checkRejection(outcome.err, v.expect.rejects, v.name);
      }
      raw.write(PING);
      assert.equal((await raw.frame()).kind, KIND.PONG, 'the connection stays');
      assert.equal(events.of('connectionClose').length, 0);
    });
  }
});

// ===== hello.json =====

/** Plays the client's steps against a real Server, reading the server's between them. */
async function playClientSteps(raw, steps, substitute = (step, bytes) => bytes, check = null) {
  for (const run of runsOf(steps)) {
    if (run.from === 'client') {
      raw.write(Buffer.concat(run.steps.map((s) => substitute(s, hex(s.hex)))));
      continue;
    }
    for (const step of run.steps) {
      const bytes = hex(step.hex);
      if (bytes.length === 0) continue;
      if (check !== null) {
        check(step, bytes, await raw.frame());
        continue;
      }
      assert.deepEqual(await raw.read(bytes.length, `the server's ${step.note ?? 'step'}`), bytes, step.note ?? 'what the server writes');
    }
  }
}

/** Plays the server's steps against a real Client (`raw` is its connection to a raw server). */
async function playServerSteps(raw, steps, check = null) {
  for (const step of steps) {
    if (step.from === 'server') {
      raw.write(check?.server?.(step) ?? hex(step.hex));
      continue;
    }
    const bytes = hex(step.hex);
    const custom = check?.client?.(step, bytes);
    if (custom !== undefined) {
      await custom;
      continue;
    }
    assert.deepEqual(await raw.read(bytes.length, 'what the client writes'), bytes, 'what the client writes');
  }
}

/** How a Client under test ended the exchange: 'connect', or 'connectError'/'error' then retries or stops. */
async function checkClientOutcome(events, connections, reports, then) {
  await events.until(() => events.of(reports.event ?? reports.client).length > 0, `'${reports.event ?? reports.client}'`);
  const event = reports.event ?? reports.client;
  if (event === 'connect') return;
  assert.equal(events.of(event)[0].args[0].code, reports.code, events.of(event)[0].args[0].message);
  if (then === 'retries') {
    await events.until(() => connections.length >= 2, 'a second attempt');
  } else {
    await events.until(() => events.of('close').length > 0, "'close' (the client stops)");
    assert.equal(connections.length, 1, 'no second attempt');
    assert.equal(events.of('connectError').length, 0, "not reported as a 'connectError'");
  }
}

test('hello.json: a real Server and a real Client go through each hello exchange as it says', T, async (t) => {
  for (const v of hello.vectors) {
    const reports = v.reports.code ? `${v.reports.event} ${v.reports.code}` : v.reports.event;
    await t.test(`${v.role}: ${v.name}: ${reports}${v.then ? `, ${v.then}` : ''}`, async (t) => {
      if (v.role === 'server') {
        const { events, file } = await startServer(t);
        const raw = await rawConnect(t, file);
        await playClientSteps(raw, v.steps);
        await events.until(() => events.of(v.reports.event).length > 0, `'${v.reports.event}'`);
        if (v.reports.code) assert.equal(events.of(v.reports.event)[0].args[0].code, v.reports.code);
        if (v.reports.event !== 'connection') assert.equal(events.of('connection').length, 0, "no 'connection'");
        for (const later of v.reports.then ?? []) {
          await events.until(() => events.of(later.event).length > 0, `'${later.event}'`);
          const [message, topic] = events.of(later.event)[0].args;
          assert.deepEqual([topic, message], [later.topic, valueOf(later)]);
        }
        if (v.closes) {
          const { rest } = await raw.ended();
          assert.equal(rest.length, 0, 'nothing more is written before the close');
        }
        return;
      }
      const { file, connections } = await rawServer(t, async (raw) => {
        await playServerSteps(raw, v.steps);
        if (v.reports.event !== 'connect') raw.socket.end();
      });
      const { events } = startClient(t, { socketFile: file });
      await checkClientOutcome(events, connections, v.reports, v.then);
      for (const raw of connections) {
        await raw.done;
        if (raw.failure) throw raw.failure;
      }
    });
  }
});

// ===== auth.json =====

const SECRET = auth.secret;
const SN = Buffer.from(auth.server_nonce_hex, 'hex');
const CN = Buffer.from(auth.client_nonce_hex, 'hex');
const proof = (side, serverNonce, clientNonce) =>
  crypto.createHmac('sha256', SECRET).update(Buffer.concat([Buffer.from(`native-socket-ipc v1 ${side}`), serverNonce, clientNonce])).digest();
function encode(kind, body) {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(1 + body.length, 0);
  out[4] = kind;
  body.copy(out, 5);
  return out;
}
const CANONICAL_PROOF = encode(KIND.AUTH_PROOF, Buffer.concat([CN, Buffer.from(auth.client_hmac_hex, 'hex')]));
const CANONICAL_OK = encode(KIND.AUTH_OK, Buffer.from(auth.server_hmac_hex, 'hex'));

test('auth.json: the fixed-nonce frames carry the documented proofs', () => {
  assert.deepEqual(proof('client', SN, CN), Buffer.from(auth.client_hmac_hex, 'hex'));
  assert.deepEqual(proof('server', SN, CN), Buffer.from(auth.server_hmac_hex, 'hex'));
  const steps = auth.vectors[0].steps.map((s) => hex(s.hex));
  assert.ok(steps.some((b) => b.equals(CANONICAL_PROOF)) && steps.some((b) => b.equals(CANONICAL_OK)));
});

test('auth.json: a real Server and a real Client go through each exchange with a secret as it says', T, async (t) => {
  for (const v of auth.vectors) {
    const outcome = v.reports.code ? `${v.reports.server ?? v.reports.client} ${v.reports.code}` : `${v.reports.server ?? ''} ${v.reports.client ?? ''}`;
    await t.test(`${v.role}: ${v.name}: ${outcome.trim()}`, async (t) => {
      if (v.role === 'server' || v.role === 'both') {
        // The server picks its own nonce: proofs over the fixed one are recomputed over it.
        const options = { secret: SECRET, ...(v.server_options?.allow === false ? { allow: () => false } : {}) };
        const { events, file } = await startServer(t, options);
        const raw = await rawConnect(t, file);
        let serverNonce = null;
        await playClientSteps(
          raw,
          v.steps,
          (step, bytes) => (bytes.equals(CANONICAL_PROOF) ? encode(KIND.AUTH_PROOF, Buffer.concat([CN, proof('client', serverNonce, CN)])) : bytes),
          (step, bytes, got) => {
            if (bytes[4] === KIND.AUTH_CHALLENGE) {
              assert.equal(got.kind, KIND.AUTH_CHALLENGE);
              assert.equal(got.body.length, 32, 'a 32-byte nonce');
              serverNonce = got.body;
            } else if (bytes.equals(CANONICAL_OK)) {
              assert.equal(got.kind, KIND.AUTH_OK);
              assert.deepEqual(got.body, proof('server', serverNonce, CN), "the server's proof");
            } else {
              assert.deepEqual(got.bytes, bytes, 'what the server writes');
            }
          },
        );
        const event = v.reports.server;
        await events.until(() => events.of(event).length > 0, `'${event}'`);
        if (v.reports.code) assert.equal(events.of(event)[0].args[0].code, v.reports.code);
        if (event !== 'connection') assert.equal(events.of('connection').length, 0, "no 'connection'");
        if (v.closes) assert.equal((await raw.ended()).rest.length, 0, 'nothing after the REJECT');
      }
      if (v.role === 'client' || v.role === 'both') {
        // The raw server uses the fixed nonce; the client's own nonce is read from its proof.
        const { file, connections } = await rawServer(t, async (raw) => {
          let clientNonce = null;
          await playServerSteps(raw, v.steps, {
            server: (step) => (hex(step.hex).equals(CANONICAL_OK) ? encode(KIND.AUTH_OK, proof('server', SN, clientNonce)) : undefined),
            client: (step, bytes) =>
              bytes.equals(CANONICAL_PROOF)
                ? (async () => {
                    const got = await raw.frame();
                    assert.equal(got.kind, KIND.AUTH_PROOF);
                    clientNonce = got.body.subarray(0, 32);
                    assert.deepEqual(got.body.subarray(32), proof('client', SN, clientNonce), "the client's proof");
                  })()
                : undefined,
          });
          if (v.reports.client !== 'connect') raw.socket.end();
        });
        const secret = v.client_has_secret === false ? {} : { secret: SECRET };
        const { events } = startClient(t, { socketFile: file, ...secret });
        await checkClientOutcome(events, connections, v.reports, v.then ?? 'stops');
        for (const raw of connections) {
          await raw.done;
          if (raw.failure) throw raw.failure;
        }
      }
    });
  }
});

// ===== session.json =====

test('session.json: a real at-least-once Server and Client keep each session exchange as it says', T, async (t) => {
  for (const v of session.vectors) {
    await t.test(`${v.role}: ${v.name}`, async (t) => {
      if (v.role === 'server') {
        const { events, file } = await startServer(t, { delivery: 'at-least-once' });
        for (const [i, steps] of v.connections.entries()) {
          const before = events.of('connection').length + events.of('clientReconnect').length;
          const raw = await rawConnect(t, file);
          const close = steps.find((s) => s.close);
          await playClientSteps(raw, steps.filter((s) => !s.close));
          if (close?.close === 'client') {
            raw.socket.destroy();
            if (i + 1 < v.connections.length) await events.until(() => events.of('clientDisconnect').length > 0, "'clientDisconnect'");
          } else if (close?.close === 'server') {
            assert.equal((await raw.ended()).rest.length, 0, 'nothing more before the close');
            const connected = events.of('connection').length + events.of('clientReconnect').length > before;
            if (connected) await events.until(() => events.of('connectionClose').length > 0, "'connectionClose'");
          }
        }
        const reports = v.reports.map((r) => (r.event === 'message' ? [r.event, r.topic, valueOf(r)] : [r.event, r.code]));
        await events.until(() => events.of('message').length + events.of('messageError').length >= reports.length, 'the reports');
        const seen = events.seen
          .filter((e) => e.event === 'message' || e.event === 'messageError')
          .map((e) => (e.event === 'message' ? [e.event, e.args[1], e.args[0]] : [e.event, e.args[0].code]));
        assert.deepEqual(seen, reports);
        return;
      }
      // The client under test: it re-sends exactly what the server's HELLO says it lacks.
      let sessionId = null;
      const { file, connections } = await rawServer(t, async (raw, n) => {
        const steps = v.connections[n - 1].filter((s) => !s.close);
        for (const step of steps) {
          if (step.from === 'server') {
            raw.write(hex(step.hex));
          } else if (step.kind === 'HELLO') {
            const got = await raw.frame();
            assert.equal(got.kind, 0x01, 'a HELLO');
            assert.equal(got.body[6], step.flags, 'its flags');
            const id = got.body.subarray(7, 23);
            assert.equal(got.body.readBigUInt64BE(23), BigInt(step.received), 'its received count');
            if (sessionId === null) sessionId = id;
            else assert.deepEqual(id, sessionId, 'the same session');
          } else {
            const bytes = hex(step.hex);
            assert.deepEqual(await raw.read(bytes.length, step.note ?? 'a data frame'), bytes, step.note ?? 'a data frame');
          }
        }
        if (n < v.connections.length) {
          raw.socket.destroy();
        } else {
          await sleep(100);
          assert.equal(raw.buf.length, 0, `nothing else is re-sent: ${raw.buf.toString('hex')}`);
        }
      });
      const { client } = startClient(t, { socketFile: file, delivery: 'at-least-once', reconnectDelay: 20 });
      await waitFor(client, 'connect');
      for (const m of v.sends) client.send(m.topic, valueOf(m));
      await until(() => connections.length === v.connections.length, 'every connection');
      for (const raw of connections) {
        await raw.done;
        if (raw.failure) throw raw.failure;
      }
    });
  }
});

async function until(ready, what, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// ===== socket-ipc.json =====

test('socket-ipc.json: the JS encoder writes exactly the bytes of every vector that says what was sent', () => {
  const sendable = socketIpc.vectors.filter((v) => v.send);
  assert.ok(sendable.length >= 3);
  for (const v of sendable) {
    const batches = [];
    const out = new Outgoing(false, 8 * 1024 * 1024, (batch) => batches.push(Buffer.from(batch)) > 0, () => false, undefined, true);
    out.append(0, v.send.topic, valueOf(v.send));
    out.flush();
    const framed = Buffer.concat(batches);
    assert.equal(framed[4], KIND_TEXT, `${v.name}: a TEXT frame for the core`);
    assert.deepEqual(framed.subarray(FRAME_START), hex(v.hex), v.name);
  }
});

test("socket-ipc.json: a real Server with protocol 'socket-ipc' reads each vector as it says", T, async (t) => {
  // Short enough for the smallest maxMessageSize of the file (16).
  const probe = Buffer.from('{"topic":"p"}\0\0');
  for (const v of socketIpc.vectors) {
    const outcome = v.closes ? `closes with ${v.closes.error}` : v.receive.map((r) => (r.event === 'message' ? `message on ${r.topic}` : r.code)).join(', ');
    await t.test(`${v.name}: ${outcome}`, async (t) => {
      const options = { protocol: 'socket-ipc', ...(v.max_message_size ? { maxMessageSize: v.max_message_size } : {}) };
      const { events, file } = await startServer(t, options);
      const raw = await rawConnect(t, file);
      raw.write(hex(v.hex));
      if (v.closes) {
        await events.until(() => events.of('connectionClose').length > 0, "'connectionClose'");
        assert.equal(events.of('connectionClose')[0].args[1]?.code, v.closes.error);
        assert.equal(events.of('message').length, 0);
        return;
      }
      // A last message shows the connection carried on; everything before it is the vector's.
      raw.write(probe);
      await events.until(() => events.of('message').some((e) => e.args[1] === 'p'), 'the probe message');
      const seen = events.seen
        .filter((e) => (e.event === 'message' && e.args[1] !== 'p') || e.event === 'messageError')
        .map((e) => (e.event === 'message' ? [e.event, e.args[1], e.args[0]] : [e.event, e.args[0].code]));
      const expected = v.receive.map((r) => (r.event === 'message' ? [r.event, r.topic, valueOf(r)] : [r.event, r.code]));
      assert.deepEqual(seen, expected);
      assert.equal(events.of('connectionClose').length, 0);
    });
  }
});
