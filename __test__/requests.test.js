'use strict';
// Request/response between a real Server and real Clients: request() and handle() in both
// directions, value kinds, async handlers, many concurrent requests matched by id, timeouts
// (per request and the requestTimeout default), AbortSignal, every rejection code, handler
// registration, the queue while disconnected, ordering against plain messages, and requests
// across a reconnect, each over a Unix socket file, TCP and TLS. A server in a child process
// (fixtures/handler-server.js) is SIGKILLed to drop a connection with a request outstanding.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const net = require('node:net');
const { Server, Client } = require('..');
const {
  TRANSPORTS,
  tlsFixture,
  socketPath,
  waitFor,
  sleep,
  until,
  withTimeout,
  autoClose,
  startServer,
  connectClient,
  spawnFixture,
  childMessage,
  childExit,
} = require('./helpers');

const T = { timeout: 20000 };

// ----- local helpers -----

/** A Server on `transport` and one Client connected to it, both closed when the test ends. */
async function pair(t, transport, serverOptions = {}, clientOptions = {}) {
  const track = autoClose(t);
  const server = await startServer(t, track, serverOptions, transport);
  const { client, clientId } = await connectClient(server, track, clientOptions);
  return { track, server, client, clientId };
}

/** A loopback TCP port that was free a moment ago (node:net listens on port 0, then closes). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Where a Server on `transport` will listen and how a Client reaches it, for tests that start the
 * Client (or restart the Server) themselves: { serverOptions, clientOptions } with a fresh socket
 * path or a free loopback port. TLS PEMs are strings so that the options survive JSON.
 */
async function addressFor(t, transport) {
  switch (transport) {
    case 'unix': {
      const socketFile = socketPath(t);
      return { serverOptions: { socketFile }, clientOptions: { socketFile } };
    }
    case 'tcp': {
      const address = `tcp://127.0.0.1:${await freePort()}`;
      return { serverOptions: { address }, clientOptions: { address } };
    }
    case 'tls': {
      const port = await freePort();
      return {
        serverOptions: { address: `tls://127.0.0.1:${port}`, tls: { cert: tlsFixture('server.pem').toString(), key: tlsFixture('server-key.pem').toString() } },
        clientOptions: { address: `tls://localhost:${port}`, tls: { ca: tlsFixture('ca.pem').toString() } },
      };
    }
    default:
      throw new Error(`unknown transport ${transport}`);
  }
}

/**
 * Asserts that `promise` is a Promise that rejects within `ms` with an instance of `Ctor` whose
 * `code` is `code` (and, when given, whose `topic` is `topic`). Returns the error.
 */
async function expectRejection(promise, { code, topic, ms = 5000, Ctor = Error }) {
  assert.ok(promise instanceof Promise, `request() returns a Promise, not ${util.inspect(promise)}`);
  const outcome = await withTimeout(
    promise.then(
      (value) => ({ value }),
      (error) => ({ error }),
    ),
    ms,
    `a rejection with ${code}`,
  );
  if (!('error' in outcome)) assert.fail(`expected a rejection with ${code}, but it resolved with ${util.inspect(outcome.value)}`);
  const err = outcome.error;
  assert.ok(err instanceof Ctor, `expected a ${Ctor.name}, got ${util.inspect(err)}`);
  assert.equal(err.code, code, `code of ${util.inspect(err)}`);
  if (topic !== undefined) assert.equal(err.topic, topic, 'err.topic');
  return err;
}

/**
 * Marks a request's promise as handled now, so that a rejection that comes while the test awaits
 * something else is not reported as unhandled; the test checks the outcome later. Returns it.
 */
function later(promise) {
  if (promise instanceof Promise) promise.catch(() => {});
  return promise;
}

/** Calls `fn`, asserting it does not throw, and returns what it returned (the request's Promise). */
function noThrow(fn, what) {
  let result;
  assert.doesNotThrow(() => {
    result = fn();
  }, `${what} does not throw synchronously`);
  return result;
}

function assertThrowsCode(fn, Ctor, code) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof Ctor, `expected a ${Ctor.name}, got ${util.inspect(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

/** A promise with its resolve function, to hold a handler until the test lets it go. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** Counts the events a Client or Server emits that a reply must never cause. */
function countStray(emitter) {
  const stray = [];
  for (const name of ['message', 'messageError', 'error']) emitter.on(name, (...args) => stray.push([name, ...args]));
  return stray;
}

const VALUES = [
  { a: 1, b: { c: [1, 2, { d: 'e' }] }, empty: {}, list: [] },
  [1, 'two', null, true, false, { x: [[]] }],
  'a plain string',
  '',
  0,
  -1.5,
  Number.MAX_SAFE_INTEGER,
  true,
  false,
  null,
  { deep: { deeper: { deepest: [{ emoji: '😀', nul: 'a\u0000b' }] } } },
];

// ----- tests -----

// Every case that needs a connection runs on each transport in TRANSPORTS (a Unix socket file,
// TCP on loopback, TLS on loopback).
for (const transport of TRANSPORTS) {
  describe(transport, () => {
    describe('request and handle', () => {
      test('client.request resolves with what server.handle returns, for every JSON value kind, in both request and reply', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const received = [];
        assert.equal(
          server.handle('echo', (...args) => {
            received.push(args);
            return args[0];
          }),
          server,
          'handle() returns the server',
        );
        for (const v of VALUES) {
          const reply = await withTimeout(client.request('echo', v), 3000, `the reply to ${util.inspect(v)}`);
          assert.deepStrictEqual(reply, v);
        }
        assert.deepStrictEqual(
          received.map(([m]) => m),
          VALUES,
        );
        for (const args of received) {
          assert.equal(args.length, 2, 'a server handler gets (message, clientId)');
          assert.equal(args[1], clientId);
        }
      });

      test('a reply differs from the request: the server computes it from the message', T, async (t) => {
        const { server, client } = await pair(t, transport);
        server.handle('sum', (numbers) => ({ total: numbers.reduce((a, b) => a + b, 0), count: numbers.length }));
        server.handle('upper', (s) => s.toUpperCase());
        assert.deepStrictEqual(await withTimeout(client.request('sum', [1, 2, 3, 4.5]), 3000, 'sum'), { total: 10.5, count: 4 });
        assert.equal(await withTimeout(client.request('upper', 'abc'), 3000, 'upper'), 'ABC');
      });

      test('undefined travels as undefined in a request and in a reply, in both directions', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const atServer = [];
        server.handle('u', (...args) => {
          atServer.push(args);
          return undefined;
        });
        const atClient = [];
        client.handle('u', (...args) => {
          atClient.push(args);
          return undefined;
        });
        assert.equal(await withTimeout(client.request('u', undefined), 3000, 'client→server'), undefined);
        assert.equal(await withTimeout(server.request(clientId, 'u', undefined), 3000, 'server→client'), undefined);
        assert.equal(atServer.length, 1);
        assert.equal(atServer[0][0], undefined);
        assert.equal(atServer[0][1], clientId);
        assert.equal(atClient.length, 1);
        assert.equal(atClient[0][0], undefined);

        // A defined request with an undefined reply, and the reverse.
        server.handle('toUndefined', () => undefined);
        server.handle('fromUndefined', (m) => ({ wasUndefined: m === undefined }));
        assert.equal(await withTimeout(client.request('toUndefined', { x: 1 }), 3000, 'toUndefined'), undefined);
        assert.deepStrictEqual(await withTimeout(client.request('fromUndefined', undefined), 3000, 'fromUndefined'), { wasUndefined: true });
      });

      test('a Buffer or Uint8Array request arrives as a Buffer and a Buffer reply resolves as a Buffer, in both directions', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const reverse = (m) => {
          assert.ok(Buffer.isBuffer(m), `the handler gets a Buffer, not ${util.inspect(m)}`);
          return Buffer.from(m).reverse();
        };
        const atServer = [];
        server.handle('rev', (m) => {
          atServer.push(m);
          return reverse(m);
        });
        const atClient = [];
        client.handle('rev', (m) => {
          atClient.push(m);
          return reverse(m);
        });
        const bytes = Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
        const reply1 = await withTimeout(client.request('rev', bytes), 3000, 'client→server Buffer');
        assert.ok(Buffer.isBuffer(reply1), `the reply is a Buffer, not ${util.inspect(reply1)}`);
        assert.deepStrictEqual([...reply1], [0xff, 0xfe, 0x80, 0x7f, 2, 1, 0]);
        assert.deepStrictEqual([...atServer[0]], [...bytes]);

        const reply2 = await withTimeout(server.request(clientId, 'rev', new Uint8Array([9, 8, 7])), 3000, 'server→client Uint8Array');
        assert.ok(Buffer.isBuffer(reply2), `the reply is a Buffer, not ${util.inspect(reply2)}`);
        assert.deepStrictEqual([...reply2], [7, 8, 9]);
        assert.ok(Buffer.isBuffer(atClient[0]));
        assert.deepStrictEqual([...atClient[0]], [9, 8, 7]);

        // A JSON request with a Buffer reply, and the reverse.
        server.handle('bytesOf', (s) => Buffer.from(s, 'utf8'));
        server.handle('lengthOf', (b) => ({ length: b.length, isBuffer: Buffer.isBuffer(b) }));
        const asBytes = await withTimeout(client.request('bytesOf', 'héllo'), 3000, 'bytesOf');
        assert.ok(Buffer.isBuffer(asBytes));
        assert.equal(asBytes.toString('utf8'), 'héllo');
        assert.deepStrictEqual(await withTimeout(client.request('lengthOf', Buffer.alloc(1000, 7)), 3000, 'lengthOf'), { length: 1000, isBuffer: true });
      });

      test('server.request(clientId, ...) resolves with what client.handle returns; the client handler gets only (message)', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const received = [];
        assert.equal(
          client.handle('echo', (...args) => {
            received.push(args);
            return { echoed: args[0] };
          }),
          client,
          'handle() returns the client',
        );
        for (const v of VALUES) {
          const reply = await withTimeout(server.request(clientId, 'echo', v), 3000, `the reply to ${util.inspect(v)}`);
          assert.deepStrictEqual(reply, { echoed: v });
        }
        assert.deepStrictEqual(
          received.map((args) => args),
          VALUES.map((v) => [v]),
          'a client handler is called with exactly (message)',
        );
      });

      test('server.request reaches the client it names, and each client answers for itself', T, async (t) => {
        const track = autoClose(t);
        const server = await startServer(t, track, {}, transport);
        const a = await connectClient(server, track);
        const b = await connectClient(server, track);
        a.client.handle('who', (m) => `a:${m}`);
        b.client.handle('who', (m) => `b:${m}`);
        const [ra, rb] = await withTimeout(Promise.all([server.request(a.clientId, 'who', 1), server.request(b.clientId, 'who', 2)]), 3000, 'both replies');
        assert.equal(ra, 'a:1');
        assert.equal(rb, 'b:2');

        // And the server's handler sees which client asked.
        server.handle('whoami', (m, clientId) => clientId);
        const [ia, ib] = await withTimeout(Promise.all([a.client.request('whoami', null), b.client.request('whoami', null)]), 3000, 'whoami');
        assert.equal(ia, a.clientId);
        assert.equal(ib, b.clientId);
        assert.notEqual(ia, ib);
      });

      test('an async handler: the request resolves with the value its Promise resolves to, later', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        server.handle('later', async (m) => {
          await sleep(150);
          return { doubled: m * 2 };
        });
        client.handle('later', (m) => new Promise((resolve) => setTimeout(() => resolve(`${m}!`), 150)));
        const started = Date.now();
        assert.deepStrictEqual(await withTimeout(client.request('later', 21), 3000, 'client→server'), { doubled: 42 });
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 140, `the reply waited for the handler's promise (${elapsed} ms)`);
        assert.equal(await withTimeout(server.request(clientId, 'later', 'hey'), 3000, 'server→client'), 'hey!');
      });

      test('200 concurrent client requests answered out of order each get their own reply', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const N = 200;
        const arrived = [];
        server.handle('slow', async (m) => {
          arrived.push(m.i);
          await sleep((N - 1 - m.i) >> 2); // later requests are answered sooner
          return { i: m.i, square: m.i * m.i, tag: m.tag };
        });
        const resolvedOrder = [];
        const requests = [];
        for (let i = 0; i < N; i++) {
          requests.push(
            client.request('slow', { i, tag: `t${i}` }).then((reply) => {
              resolvedOrder.push(i);
              return reply;
            }),
          );
        }
        const replies = await withTimeout(Promise.all(requests), 10000, `${N} replies`);
        replies.forEach((reply, i) => assert.deepStrictEqual(reply, { i, square: i * i, tag: `t${i}` }));
        assert.deepStrictEqual(
          arrived,
          Array.from({ length: N }, (_, i) => i),
          'requests reach the handler in the order they were made',
        );
        assert.ok(
          resolvedOrder.indexOf(N - 1) < resolvedOrder.indexOf(0),
          `the replies really came back out of order: ${resolvedOrder.slice(0, 20)}…`,
        );
      });

      test('200 concurrent server requests answered out of order each get their own reply', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const N = 200;
        client.handle('slow', async (i) => {
          await sleep((N - 1 - i) >> 2);
          return [i, String(i)];
        });
        const resolvedOrder = [];
        const requests = Array.from({ length: N }, (_, i) =>
          server.request(clientId, 'slow', i).then((reply) => {
            resolvedOrder.push(i);
            return reply;
          }),
        );
        const replies = await withTimeout(Promise.all(requests), 10000, `${N} replies`);
        replies.forEach((reply, i) => assert.deepStrictEqual(reply, [i, String(i)]));
        assert.ok(resolvedOrder.indexOf(N - 1) < resolvedOrder.indexOf(0), `out of order: ${resolvedOrder.slice(0, 20)}…`);
      });

      test('concurrent requests with mixed outcomes (value, thrown error, no handler) each settle with their own outcome', T, async (t) => {
        const { server, client } = await pair(t, transport);
        server.handle('mixed', async (i) => {
          await sleep((60 - i) % 7);
          if (i % 3 === 1) {
            const err = new Error(`failed ${i}`);
            err.code = `E_${i}`;
            throw err;
          }
          return `ok ${i}`;
        });
        const outcomes = await withTimeout(
          Promise.allSettled(Array.from({ length: 60 }, (_, i) => (i % 3 === 2 ? client.request(`nobody-${i}`, i) : client.request('mixed', i)))),
          10000,
          'all outcomes',
        );
        outcomes.forEach((o, i) => {
          if (i % 3 === 0) {
            assert.deepStrictEqual(o, { status: 'fulfilled', value: `ok ${i}` });
          } else if (i % 3 === 1) {
            assert.equal(o.status, 'rejected', `request ${i}`);
            assert.equal(o.reason.code, 'ERR_IPC_REMOTE');
            assert.equal(o.reason.remoteCode, `E_${i}`);
            assert.equal(o.reason.message, `failed ${i}`);
            assert.equal(o.reason.topic, 'mixed');
          } else {
            assert.equal(o.status, 'rejected', `request ${i}`);
            assert.equal(o.reason.code, 'ERR_IPC_NO_HANDLER');
            assert.equal(o.reason.topic, `nobody-${i}`);
          }
        });
      });
    });

    describe('timeouts', () => {
      test('a request whose handler never answers rejects with ERR_IPC_TIMEOUT after its timeout, with err.timeout', T, async (t) => {
        const { server, client } = await pair(t, transport);
        let calls = 0;
        server.handle('never', () => {
          calls++;
          return new Promise(() => {});
        });
        const started = Date.now();
        const err = await expectRejection(client.request('never', 1, { timeout: 100 }), { code: 'ERR_IPC_TIMEOUT', topic: 'never', ms: 3000 });
        const elapsed = Date.now() - started;
        assert.equal(err.timeout, 100);
        assert.ok(elapsed >= 90, `not before the timeout (${elapsed} ms)`);
        assert.equal(calls, 1, 'the handler was called');
      });

      test('server.request to a client whose handler never answers rejects with ERR_IPC_TIMEOUT', T, async (t) => {
        const { client, server, clientId } = await pair(t, transport);
        client.handle('never', () => new Promise(() => {}));
        const started = Date.now();
        const err = await expectRejection(server.request(clientId, 'never', 1, { timeout: 120 }), { code: 'ERR_IPC_TIMEOUT', topic: 'never', ms: 3000 });
        assert.equal(err.timeout, 120);
        assert.ok(Date.now() - started >= 110);
      });

      test('the requestTimeout option is the default timeout: a Client with requestTimeout 100 times out after about 100 ms', T, async (t) => {
        const { server, client } = await pair(t, transport, {}, { requestTimeout: 100 });
        server.handle('never', () => new Promise(() => {}));
        const started = Date.now();
        const err = await expectRejection(client.request('never', 1), { code: 'ERR_IPC_TIMEOUT', topic: 'never', ms: 2000 });
        assert.equal(err.timeout, 100);
        assert.ok(Date.now() - started >= 90);
      });

      test('the requestTimeout option is the default timeout for server.request too', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport, { requestTimeout: 100 });
        client.handle('never', () => new Promise(() => {}));
        const err = await expectRejection(server.request(clientId, 'never', 1), { code: 'ERR_IPC_TIMEOUT', topic: 'never', ms: 2000 });
        assert.equal(err.timeout, 100);
      });

      test('timeout: 0 means no timeout: the request outlives the requestTimeout default and resolves', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport, { requestTimeout: 100 }, { requestTimeout: 100 });
        let serverAnswered = 0;
        server.handle('slow', async (m) => {
          await sleep(400);
          serverAnswered++;
          return `done ${m}`;
        });
        client.handle('slow', async (m) => {
          await sleep(400);
          return `client done ${m}`;
        });
        assert.equal(await withTimeout(client.request('slow', 1, { timeout: 0 }), 3000, 'client request'), 'done 1');
        assert.equal(await withTimeout(server.request(clientId, 'slow', 2, { timeout: 0 }), 3000, 'server request'), 'client done 2');
        // The same handler with the default times out, so the 0 above really switched it off.
        await expectRejection(client.request('slow', 3), { code: 'ERR_IPC_TIMEOUT', ms: 2000 });
        await until(() => serverAnswered === 2, 3000, 'the timed-out handler finished');
      });

      test('requestTimeout: 0 on the Client switches the default timeout off', T, async (t) => {
        const { server, client } = await pair(t, transport, {}, { requestTimeout: 0 });
        server.handle('slow', async () => {
          await sleep(300);
          return 'ok';
        });
        assert.equal(await withTimeout(client.request('slow', null), 3000, 'the reply'), 'ok');
      });

      test('a late reply after a timeout is discarded: no event, and the next request gets its own reply', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const stray = countStray(client);
        let answered = 0;
        server.handle('late', async (m) => {
          await sleep(m.delay);
          answered++;
          return `reply ${m.n}`;
        });
        await expectRejection(client.request('late', { n: 1, delay: 250 }, { timeout: 50 }), { code: 'ERR_IPC_TIMEOUT', ms: 2000 });
        await until(() => answered === 1, 3000, 'the late handler answered');
        await sleep(100);
        assert.equal(await withTimeout(client.request('late', { n: 2, delay: 0 }), 3000, 'the next reply'), 'reply 2');
        assert.deepStrictEqual(stray, [], 'the discarded reply caused no event');
      });

      test('a negative, fractional or infinite timeout rejects (never throws) with RangeError ERR_OUT_OF_RANGE, and nothing is sent', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        let calls = 0;
        server.handle('x', () => ++calls);
        for (const timeout of [-1, 1.5, Infinity]) {
          const p = noThrow(() => client.request('x', 1, { timeout }), `request with timeout ${timeout}`);
          await expectRejection(p, { code: 'ERR_OUT_OF_RANGE', topic: 'x', Ctor: RangeError });
        }
        await expectRejection(
          noThrow(() => server.request(clientId, 'x', 1, { timeout: -5 }), 'server.request with timeout -5'),
          { code: 'ERR_OUT_OF_RANGE', topic: 'x', Ctor: RangeError },
        );
        assert.equal(await withTimeout(client.request('x', 1), 3000, 'a good request'), 1, 'the rejected requests were never sent');
      });

      test('a timeout that is not a number rejects (never throws) with TypeError ERR_INVALID_ARG_TYPE, like the constructor options', T, async (t) => {
        // The spec allows ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE for bad options; the constructor
        // options (options.test.js) give TypeError ERR_INVALID_ARG_TYPE for a string number.
        const { server, client } = await pair(t, transport);
        server.handle('x', () => 'x');
        const p = noThrow(() => client.request('x', 1, { timeout: '100' }), "request with timeout '100'");
        await expectRejection(p, { code: 'ERR_INVALID_ARG_TYPE', topic: 'x', Ctor: TypeError });
      });
    });

    describe('AbortSignal', () => {
      test('a signal aborted before the call rejects with ERR_IPC_ABORTED, err.cause = signal.reason, and nothing is sent', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const seen = [];
        server.handle('count', (m) => {
          seen.push(m);
          return m;
        });
        const ac = new AbortController();
        const reason = new Error('caller gave up');
        ac.abort(reason);
        const p = noThrow(() => client.request('count', 'aborted', { signal: ac.signal }), 'request with an aborted signal');
        const err = await expectRejection(p, { code: 'ERR_IPC_ABORTED', topic: 'count', ms: 1000 });
        assert.equal(err.cause, ac.signal.reason);
        assert.equal(err.cause, reason);
        // A round trip of another request: had the aborted one been sent, it would have arrived first.
        assert.equal(await withTimeout(client.request('count', 'after'), 3000, 'the next request'), 'after');
        assert.deepStrictEqual(seen, ['after'], 'the handler never saw the aborted request');
      });

      test('server.request with an already aborted signal rejects with ERR_IPC_ABORTED and the client handler is not called', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const seen = [];
        client.handle('count', (m) => {
          seen.push(m);
          return m;
        });
        const signal = AbortSignal.abort();
        const err = await expectRejection(
          noThrow(() => server.request(clientId, 'count', 'aborted', { signal }), 'server.request with an aborted signal'),
          { code: 'ERR_IPC_ABORTED', topic: 'count', ms: 1000 },
        );
        assert.equal(err.cause, signal.reason);
        assert.equal(await withTimeout(server.request(clientId, 'count', 'after'), 3000, 'the next request'), 'after');
        assert.deepStrictEqual(seen, ['after']);
      });

      test('aborting after the request was sent rejects at once with ERR_IPC_ABORTED; the late reply is discarded and the connection keeps working', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const stray = countStray(client);
        const started = deferred();
        const release = deferred();
        let answered = 0;
        server.handle('held', async (m) => {
          started.resolve(m);
          await release.promise;
          answered++;
          return `held reply ${m}`;
        });
        server.handle('quick', (m) => `quick reply ${m}`);
        const ac = new AbortController();
        const p = later(client.request('held', 1, { signal: ac.signal, timeout: 30000 }));
        assert.equal(await withTimeout(started.promise, 3000, 'the handler to start'), 1);
        const reason = { why: 'not needed any more' };
        ac.abort(reason);
        const err = await expectRejection(p, { code: 'ERR_IPC_ABORTED', topic: 'held', ms: 1000 });
        assert.equal(err.cause, ac.signal.reason);
        assert.equal(err.cause, reason);

        release.resolve();
        await until(() => answered === 1, 3000, 'the handler answered');
        await sleep(100);
        assert.equal(await withTimeout(client.request('quick', 2), 3000, 'a later request'), 'quick reply 2');
        assert.deepStrictEqual(stray, [], 'the discarded reply caused no event');
      });

      test('aborting a server.request after it was sent rejects with ERR_IPC_ABORTED', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const started = deferred();
        client.handle('held', () => {
          started.resolve();
          return new Promise(() => {});
        });
        client.handle('quick', (m) => m + 1);
        const ac = new AbortController();
        const p = later(server.request(clientId, 'held', 1, { signal: ac.signal, timeout: 30000 }));
        await withTimeout(started.promise, 3000, 'the client handler to start');
        ac.abort();
        const err = await expectRejection(p, { code: 'ERR_IPC_ABORTED', topic: 'held', ms: 1000 });
        assert.equal(err.cause, ac.signal.reason);
        assert.equal(await withTimeout(server.request(clientId, 'quick', 41), 3000, 'a later request'), 42);
      });

      test('a signal that is not an AbortSignal rejects (never throws) with ERR_INVALID_ARG_TYPE', T, async (t) => {
        const { server, client } = await pair(t, transport);
        server.handle('x', () => 'x');
        const p = noThrow(() => client.request('x', 1, { signal: { aborted: false } }), 'request with a fake signal');
        await expectRejection(p, { code: 'ERR_INVALID_ARG_TYPE', topic: 'x', Ctor: TypeError });
      });
    });

    describe('ERR_IPC_NO_HANDLER', () => {
      test('client.request for a topic the server does not handle rejects at once with ERR_IPC_NO_HANDLER, and emits no message', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const serverStray = countStray(server);
        server.handle('other', () => 'other');
        const started = Date.now();
        await expectRejection(client.request('nobody', { x: 1 }, { timeout: 30000 }), { code: 'ERR_IPC_NO_HANDLER', topic: 'nobody', ms: 2000 });
        assert.ok(Date.now() - started < 2000);
        assert.equal(await withTimeout(client.request('other', 1), 3000, 'a handled request'), 'other', 'the connection still works');
        assert.deepStrictEqual(serverStray, [], "a request without a handler does not fall back to 'message'");
      });

      test('server.request for a topic the client does not handle rejects at once with ERR_IPC_NO_HANDLER', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const clientStray = countStray(client);
        await expectRejection(server.request(clientId, 'nobody', [1], { timeout: 30000 }), { code: 'ERR_IPC_NO_HANDLER', topic: 'nobody', ms: 2000 });
        client.handle('nobody', () => 'now somebody');
        assert.equal(await withTimeout(server.request(clientId, 'nobody', [1]), 3000, 'the request once handled'), 'now somebody');
        assert.deepStrictEqual(clientStray, []);
      });
    });

    describe('ERR_IPC_REMOTE', () => {
      test('a handler that throws an Error with a code: ERR_IPC_REMOTE with remoteCode and the remote message, and no remote stack', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const serverStray = countStray(server);
        server.handle('boom', function remoteHandlerFrameZq7() {
          const err = new Error('the remote side broke: 42');
          err.code = 'E_CUSTOM_REMOTE';
          throw err;
        });
        const err = await expectRejection(client.request('boom', null, { timeout: 30000 }), { code: 'ERR_IPC_REMOTE', topic: 'boom', ms: 2000 });
        assert.equal(err.remoteCode, 'E_CUSTOM_REMOTE');
        assert.equal(err.message, 'the remote side broke: 42');
        assert.ok(!String(err.stack).includes('remoteHandlerFrameZq7'), `the remote stack is not carried:\n${err.stack}`);
        assert.deepStrictEqual(serverStray, [], "a throwing handler emits no 'error' on the server");
      });

      test('a handler that throws an Error without a code gives remoteCode undefined', T, async (t) => {
        const { server, client } = await pair(t, transport);
        server.handle('plain', () => {
          throw new TypeError('plain type error');
        });
        const err = await expectRejection(client.request('plain', 1), { code: 'ERR_IPC_REMOTE', topic: 'plain', ms: 2000 });
        assert.equal(err.remoteCode, undefined);
        assert.equal(err.message, 'plain type error');
      });

      test('an async handler that rejects gives ERR_IPC_REMOTE with the rejection message and code', T, async (t) => {
        const { server, client } = await pair(t, transport);
        server.handle('asyncBoom', async function asyncRemoteFrameQx9() {
          await sleep(20);
          const err = new Error('async failure');
          err.code = 'E_ASYNC';
          throw err;
        });
        const err = await expectRejection(client.request('asyncBoom', 1, { timeout: 30000 }), { code: 'ERR_IPC_REMOTE', topic: 'asyncBoom', ms: 2000 });
        assert.equal(err.remoteCode, 'E_ASYNC');
        assert.equal(err.message, 'async failure');
        assert.ok(!String(err.stack).includes('asyncRemoteFrameQx9'), `the remote stack is not carried:\n${err.stack}`);
      });

      test('a handler that throws a string gives ERR_IPC_REMOTE with message String(value)', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        server.handle('str', () => {
          throw 'just a string'; // eslint-disable-line no-throw-literal
        });
        client.handle('num', () => Promise.reject(404));
        const err = await expectRejection(client.request('str', 1), { code: 'ERR_IPC_REMOTE', topic: 'str', ms: 2000 });
        assert.equal(err.message, 'just a string');
        assert.equal(err.remoteCode, undefined);
        const err2 = await expectRejection(server.request(clientId, 'num', 1), { code: 'ERR_IPC_REMOTE', topic: 'num', ms: 2000 });
        assert.equal(err2.message, '404');
      });

      test("a reply that cannot be encoded (BigInt) gives ERR_IPC_REMOTE with remoteCode 'ERR_IPC_ENCODE', and the connection stays up", T, async (t) => {
        const { server, client } = await pair(t, transport);
        server.handle('big', () => ({ n: 10n }));
        server.handle('bigAsync', async () => 10n);
        server.handle('ok', () => 'ok');
        const err = await expectRejection(client.request('big', 1, { timeout: 30000 }), { code: 'ERR_IPC_REMOTE', topic: 'big', ms: 2000 });
        assert.equal(err.remoteCode, 'ERR_IPC_ENCODE');
        const err2 = await expectRejection(client.request('bigAsync', 1, { timeout: 30000 }), { code: 'ERR_IPC_REMOTE', topic: 'bigAsync', ms: 2000 });
        assert.equal(err2.remoteCode, 'ERR_IPC_ENCODE');
        assert.equal(await withTimeout(client.request('ok', 1), 3000, 'a later request'), 'ok');
      });

      test('a client handler that throws gives server.request ERR_IPC_REMOTE with remoteCode and message', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const clientStray = countStray(client);
        client.handle('boom', function clientHandlerFrameWv3() {
          const err = new RangeError('client says no');
          err.code = 'E_CLIENT_NO';
          throw err;
        });
        const err = await expectRejection(server.request(clientId, 'boom', 1, { timeout: 30000 }), { code: 'ERR_IPC_REMOTE', topic: 'boom', ms: 2000 });
        assert.equal(err.remoteCode, 'E_CLIENT_NO');
        assert.equal(err.message, 'client says no');
        assert.ok(!String(err.stack).includes('clientHandlerFrameWv3'), `the remote stack is not carried:\n${err.stack}`);
        assert.deepStrictEqual(clientStray, []);
      });
    });

    describe('ERR_IPC_DISCONNECTED', () => {
      test('a request outstanding when the server process is SIGKILLed rejects with ERR_IPC_DISCONNECTED, well before its timeout', T, async (t) => {
        const track = autoClose(t);
        const { serverOptions, clientOptions } = await addressFor(t, transport);
        // handler-server.js takes the socket path and then options (JSON), whose address wins.
        const child = spawnFixture(t, 'handler-server.js', [serverOptions.socketFile ?? '-', JSON.stringify(serverOptions)]);
        await childMessage(child, (m) => m.event === 'listening');
        const client = track(new Client({ ...clientOptions, retryDelay: 50, reconnectDelay: 50 }));
        client.connect();
        await waitFor(client, 'connect');
        assert.deepStrictEqual(await withTimeout(client.request('echo', { via: 'child' }), 3000, 'the echo'), { via: 'child' });

        const handling = childMessage(child, (m) => m.event === 'handling');
        const p = later(client.request('never', 'outstanding', { timeout: 30000 }));
        assert.equal((await handling).message, 'outstanding');
        const disconnected = waitFor(client, 'disconnect');
        const started = Date.now();
        child.kill('SIGKILL');
        await childExit(child);
        await expectRejection(p, { code: 'ERR_IPC_DISCONNECTED', topic: 'never', ms: 5000 });
        assert.ok(Date.now() - started < 5000);
        await disconnected;
      });

      test('a server.request outstanding when its client closes rejects with ERR_IPC_DISCONNECTED', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const started = deferred();
        client.handle('never', () => {
          started.resolve();
          return new Promise(() => {});
        });
        const p = later(server.request(clientId, 'never', 1, { timeout: 30000 }));
        await withTimeout(started.promise, 3000, 'the client handler to start');
        const gone = waitFor(server, 'connectionClose');
        client.close();
        await expectRejection(p, { code: 'ERR_IPC_DISCONNECTED', topic: 'never', ms: 5000 });
        assert.equal((await gone)[0], clientId);
      });

      test('a client request outstanding when the server closes rejects with ERR_IPC_DISCONNECTED', T, async (t) => {
        const { server, client } = await pair(t, transport, {}, { retryDelay: 50, reconnectDelay: 50 });
        const started = deferred();
        server.handle('never', () => {
          started.resolve();
          return new Promise(() => {});
        });
        const p = later(client.request('never', 1, { timeout: 30000 }));
        await withTimeout(started.promise, 3000, 'the server handler to start');
        const disconnected = waitFor(client, 'disconnect');
        server.close();
        await expectRejection(p, { code: 'ERR_IPC_DISCONNECTED', topic: 'never', ms: 5000 });
        await disconnected;
      });
    });

    describe('ERR_IPC_CLOSED', () => {
      test('client.request after client.close() rejects with ERR_IPC_CLOSED, without throwing', T, async (t) => {
        const { server, client } = await pair(t, transport);
        let calls = 0;
        server.handle('x', () => ++calls);
        const errors = [];
        client.on('error', (err) => errors.push(err));
        client.close();
        await expectRejection(noThrow(() => client.request('x', 1), 'request right after close()'), { code: 'ERR_IPC_CLOSED', topic: 'x', ms: 2000 });
        await withTimeout(client.closedPromise, 5000, "the client's 'close'");
        await expectRejection(noThrow(() => client.request('x', 2), "request after 'close'"), { code: 'ERR_IPC_CLOSED', topic: 'x', ms: 2000 });
        await sleep(100);
        assert.equal(calls, 0);
      });

      test('a client request outstanding when client.close() is called rejects with ERR_IPC_CLOSED', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const started = deferred();
        server.handle('never', () => {
          started.resolve();
          return new Promise(() => {});
        });
        const p = later(client.request('never', 1, { timeout: 30000 }));
        await withTimeout(started.promise, 3000, 'the handler to start');
        client.close();
        await expectRejection(p, { code: 'ERR_IPC_CLOSED', topic: 'never', ms: 3000 });
      });

      test('a request still queued (never connected) when client.close() is called rejects with ERR_IPC_CLOSED', T, async (t) => {
        const track = autoClose(t);
        const { clientOptions } = await addressFor(t, transport);
        const client = track(new Client({ ...clientOptions, retryDelay: 20 }));
        client.on('error', () => {}); // close() may report the discarded queue
        client.connect();
        const p = later(client.request('queued', 1, { timeout: 30000 }));
        await sleep(50);
        client.close();
        await expectRejection(p, { code: 'ERR_IPC_CLOSED', topic: 'queued', ms: 3000 });
      });

      test('server.request after server.close() rejects with ERR_IPC_CLOSED, without throwing', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        let calls = 0;
        client.handle('x', () => ++calls);
        server.on('error', () => {});
        server.close();
        await expectRejection(noThrow(() => server.request(clientId, 'x', 1), 'server.request right after close()'), { code: 'ERR_IPC_CLOSED', topic: 'x', ms: 2000 });
        await withTimeout(server.closedPromise, 5000, "the server's 'close'");
        await expectRejection(noThrow(() => server.request(clientId, 'x', 2), "server.request after 'close'"), { code: 'ERR_IPC_CLOSED', topic: 'x', ms: 2000 });
        assert.equal(calls, 0);
      });

      test('a server.request outstanding when server.close() is called rejects with ERR_IPC_CLOSED', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const started = deferred();
        client.handle('never', () => {
          started.resolve();
          return new Promise(() => {});
        });
        const p = later(server.request(clientId, 'never', 1, { timeout: 30000 }));
        await withTimeout(started.promise, 3000, 'the client handler to start');
        server.close();
        await expectRejection(p, { code: 'ERR_IPC_CLOSED', topic: 'never', ms: 4000 });
      });
    });

    describe('ERR_IPC_UNKNOWN_CLIENT', () => {
      test('server.request to a client id that never connected rejects with ERR_IPC_UNKNOWN_CLIENT and emits no error', T, async (t) => {
        const { server } = await pair(t, transport);
        const stray = countStray(server);
        const p = noThrow(() => server.request(9999, 'x', 1), 'server.request(9999, ...)');
        const err = await expectRejection(p, { code: 'ERR_IPC_UNKNOWN_CLIENT', topic: 'x', ms: 2000 });
        assert.equal(err.clientId, 9999);
        await sleep(50);
        assert.deepStrictEqual(stray, [], "the rejection is the only report: no 'error' event");
      });

      test('server.request to a client that has left rejects with ERR_IPC_UNKNOWN_CLIENT', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        client.handle('x', () => 'x');
        assert.equal(await withTimeout(server.request(clientId, 'x', 1), 3000, 'while connected'), 'x');
        const gone = waitFor(server, 'connectionClose');
        client.close();
        await gone;
        const err = await expectRejection(server.request(clientId, 'x', 1, { timeout: 30000 }), { code: 'ERR_IPC_UNKNOWN_CLIENT', topic: 'x', ms: 2000 });
        assert.equal(err.clientId, clientId);
      });
    });

    describe('handler registration', () => {
      test('a second handle() for the same topic throws ERR_IPC_HANDLER_EXISTS, on the server and on the client', T, async (t) => {
        const { server, client } = await pair(t, transport);
        server.handle('t', () => 'first');
        assertThrowsCode(() => server.handle('t', () => 'second'), Error, 'ERR_IPC_HANDLER_EXISTS');
        client.handle('t', () => 'first');
        assertThrowsCode(() => client.handle('t', () => 'second'), Error, 'ERR_IPC_HANDLER_EXISTS');
        assert.equal(await withTimeout(client.request('t', 1), 3000, 'the reply'), 'first', 'the first handler stays');
      });

      test('removeHandler returns true then false, and a request after it gets ERR_IPC_NO_HANDLER; handle() works again after', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        server.handle('t', () => 'server first');
        client.handle('t', () => 'client first');
        assert.equal(await withTimeout(client.request('t', 1), 3000, 'before removal'), 'server first');

        assert.equal(server.removeHandler('t'), true);
        assert.equal(server.removeHandler('t'), false);
        assert.equal(server.removeHandler('never-registered'), false);
        await expectRejection(client.request('t', 1, { timeout: 30000 }), { code: 'ERR_IPC_NO_HANDLER', topic: 't', ms: 2000 });
        server.handle('t', () => 'server second');
        assert.equal(await withTimeout(client.request('t', 1), 3000, 'after re-registering'), 'server second');

        assert.equal(client.removeHandler('t'), true);
        assert.equal(client.removeHandler('t'), false);
        await expectRejection(server.request(clientId, 't', 1, { timeout: 30000 }), { code: 'ERR_IPC_NO_HANDLER', topic: 't', ms: 2000 });
        client.handle('t', () => 'client second');
        assert.equal(await withTimeout(server.request(clientId, 't', 1), 3000, 'after re-registering'), 'client second');
      });
    });

    describe('request() never throws', () => {
      test('a bad topic type or a message that cannot be encoded gives a rejected promise, on the client and the server', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport, {}, {});
        let calls = 0;
        server.handle('t', () => ++calls);
        client.handle('t', () => ++calls);

        for (const topic of [42, {}, Symbol('s'), ['a']]) {
          const p = noThrow(() => client.request(topic, 1), `client.request with topic ${String(topic)}`);
          await expectRejection(p, { code: 'ERR_INVALID_ARG_TYPE', Ctor: TypeError, ms: 2000 });
          const q = noThrow(() => server.request(clientId, topic, 1), `server.request with topic ${String(topic)}`);
          await expectRejection(q, { code: 'ERR_INVALID_ARG_TYPE', Ctor: TypeError, ms: 2000 });
        }

        const circular = { a: 1 };
        circular.self = circular;
        for (const message of [10n, { n: 1n }, circular]) {
          const p = noThrow(() => client.request('t', message), 'client.request with an unencodable message');
          const err = await expectRejection(p, { code: 'ERR_IPC_ENCODE', topic: 't', Ctor: TypeError, ms: 2000 });
          assert.ok(err.cause instanceof Error, 'err.cause holds the JSON.stringify error');
          const q = noThrow(() => server.request(clientId, 't', message), 'server.request with an unencodable message');
          await expectRejection(q, { code: 'ERR_IPC_ENCODE', topic: 't', Ctor: TypeError, ms: 2000 });
        }

        // The connection is still up and nothing reached a handler.
        assert.equal(await withTimeout(client.request('t', 'ok'), 3000, 'client request'), 1);
        assert.equal(await withTimeout(server.request(clientId, 't', 'ok'), 3000, 'server request'), 2);
      });

      test('a topic over 65535 bytes or a message over maxMessageSize gives a rejected promise, not a throw', T, async (t) => {
        const { track, server, client } = await pair(t, transport);
        server.handle('t', () => 'ok');
        const p = noThrow(() => client.request('x'.repeat(70000), 1), 'request with a huge topic');
        await expectRejection(p, { code: 'ERR_IPC_TOPIC_TOO_LONG', Ctor: RangeError, ms: 2000 });
        assert.equal(await withTimeout(client.request('t', 1), 3000, 'a small request'), 'ok');

        const { client: small } = await connectClient(server, track, { maxMessageSize: 4096 });
        const q = noThrow(() => small.request('t', 'y'.repeat(10000)), 'request over maxMessageSize');
        await expectRejection(q, { code: 'ERR_IPC_MESSAGE_TOO_LARGE', topic: 't', Ctor: RangeError, ms: 2000 });
        assert.equal(await withTimeout(small.request('t', 1), 3000, 'a small request'), 'ok');
      });
    });

    describe('requests while disconnected', () => {
      test('requests made before connect() and while the server is not up wait in the queue and resolve once it starts', T, async (t) => {
        const track = autoClose(t);
        const { serverOptions, clientOptions } = await addressFor(t, transport);
        const client = track(new Client({ ...clientOptions, retryDelay: 20 }));
        const early = client.request('echo', 'before connect()', { timeout: 10000 });
        let earlyDone = false;
        early.then(
          () => (earlyDone = true),
          () => (earlyDone = true),
        );
        client.connect();
        const retrying = later(client.request('echo', 'while retrying', { timeout: 10000 }));
        await waitFor(client, 'connectError');
        await sleep(200);
        assert.equal(earlyDone, false, 'nothing answered the request while no server was up');

        const server = track(new Server(serverOptions));
        const seen = [];
        server.handle('echo', (m) => {
          seen.push(m);
          return `server got: ${m}`;
        });
        server.listen();
        const replies = await withTimeout(Promise.all([early, retrying]), 5000, 'the queued requests');
        assert.deepStrictEqual(replies, ['server got: before connect()', 'server got: while retrying']);
        assert.deepStrictEqual(seen, ['before connect()', 'while retrying'], 'sent in the order they were made');
      });

      test('a queued request whose timeout expires before the server starts rejects with ERR_IPC_TIMEOUT', T, async (t) => {
        const track = autoClose(t);
        const { serverOptions, clientOptions } = await addressFor(t, transport);
        const client = track(new Client({ ...clientOptions, retryDelay: 20 }));
        client.connect();
        const started = Date.now();
        const err = await expectRejection(client.request('echo', 1, { timeout: 150 }), { code: 'ERR_IPC_TIMEOUT', topic: 'echo', ms: 2000 });
        assert.equal(err.timeout, 150);
        assert.ok(Date.now() - started >= 140);

        // A server that starts afterwards answers new requests.
        const server = track(new Server(serverOptions));
        server.handle('echo', (m) => m);
        server.listen();
        assert.equal(await withTimeout(client.request('echo', 'fresh'), 5000, 'a fresh request'), 'fresh');
      });

      test('a queued request counts against maxQueue: past it request() rejects with ERR_IPC_QUEUE_FULL', T, async (t) => {
        const track = autoClose(t);
        const { serverOptions, clientOptions } = await addressFor(t, transport);
        const client = track(new Client({ ...clientOptions, retryDelay: 20, maxQueue: 2 }));
        const errors = [];
        client.on('error', (err) => errors.push(err));
        client.connect();
        client.send('m', 'first message');
        const queued = later(client.request('echo', 'queued', { timeout: 10000 }));
        const full = noThrow(() => client.request('echo', 'one too many', { timeout: 10000 }), 'request on a full queue');
        await expectRejection(full, { code: 'ERR_IPC_QUEUE_FULL', topic: 'echo', ms: 2000 });
        client.send('m', 'dropped message');
        await until(() => errors.length >= 1, 2000, "'error' ERR_IPC_QUEUE_FULL from send()");
        await sleep(50);
        assert.deepStrictEqual(
          errors.map((e) => e.code),
          ['ERR_IPC_QUEUE_FULL'],
          'the queued request fills the queue for send() too',
        );

        const server = track(new Server(serverOptions));
        const messages = [];
        const handled = [];
        server.on('message', (m) => messages.push(m));
        server.handle('echo', (m) => {
          handled.push(m);
          return m;
        });
        server.listen();
        assert.equal(await withTimeout(queued, 5000, 'the queued request'), 'queued');
        await sleep(50);
        assert.deepStrictEqual(messages, ['first message']);
        assert.deepStrictEqual(handled, ['queued']);
      });

      test('an abort while a request is queued rejects it with ERR_IPC_ABORTED', T, async (t) => {
        const track = autoClose(t);
        const { clientOptions } = await addressFor(t, transport);
        const client = track(new Client({ ...clientOptions, retryDelay: 20 }));
        client.on('error', () => {});
        client.connect();
        const ac = new AbortController();
        const p = later(client.request('echo', 1, { signal: ac.signal, timeout: 30000 }));
        await sleep(50);
        ac.abort();
        const err = await expectRejection(p, { code: 'ERR_IPC_ABORTED', topic: 'echo', ms: 1000 });
        assert.equal(err.cause, ac.signal.reason);
      });
    });

    describe('ordering and separation from messages', () => {
      test('client message A, request R, message B reach the server in the order A, R, B', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const log = [];
        server.on('message', (m, topic) => log.push(`message ${topic}:${m}`));
        server.handle('R', (m) => {
          log.push(`request R:${m}`);
          return 'r';
        });
        client.send('A', 1);
        const r = client.request('R', 2);
        client.send('B', 3);
        assert.equal(await withTimeout(r, 3000, 'R'), 'r');
        await until(() => log.length === 3, 3000, 'three arrivals');
        assert.deepStrictEqual(log, ['message A:1', 'request R:2', 'message B:3']);

        // A longer interleaving keeps its order too.
        log.length = 0;
        const pending = [];
        for (let i = 0; i < 60; i++) {
          if (i % 2) pending.push(client.request('R', i));
          else client.send('M', i);
        }
        await withTimeout(Promise.all(pending), 5000, 'the interleaved requests');
        await until(() => log.length === 60, 3000, 'sixty arrivals');
        assert.deepStrictEqual(
          log,
          Array.from({ length: 60 }, (_, i) => (i % 2 ? `request R:${i}` : `message M:${i}`)),
        );
      });

      test('server message A, request R, message B reach the client in the order A, R, B', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const log = [];
        client.on('message', (m, topic) => log.push(`message ${topic}:${m}`));
        client.handle('R', (m) => {
          log.push(`request R:${m}`);
          return 'r';
        });
        server.send('A', 1, clientId);
        const r = server.request(clientId, 'R', 2);
        server.send('B', 3, clientId);
        assert.equal(await withTimeout(r, 3000, 'R'), 'r');
        await until(() => log.length === 3, 3000, 'three arrivals');
        assert.deepStrictEqual(log, ['message A:1', 'request R:2', 'message B:3']);
      });

      test('a message the server handler sends before returning reaches the client before the request resolves', T, async (t) => {
        const { server, client } = await pair(t, transport);
        server.handle('withNote', (m, clientId) => {
          server.send('note', `note for ${m}`, clientId);
          return `reply for ${m}`;
        });
        const log = [];
        client.on('message.note', (m) => log.push(m));
        for (let i = 0; i < 20; i++) {
          const reply = await withTimeout(client.request('withNote', i), 3000, `request ${i}`);
          log.push(reply);
        }
        assert.deepStrictEqual(
          log,
          Array.from({ length: 20 }, (_, i) => [`note for ${i}`, `reply for ${i}`]).flat(),
        );
      });

      test('a message the client handler sends before returning reaches the server before server.request resolves', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        client.handle('withNote', (m) => {
          client.send('note', `note for ${m}`);
          return `reply for ${m}`;
        });
        const log = [];
        server.on('message.note', (m) => log.push(m));
        for (let i = 0; i < 20; i++) {
          log.push(await withTimeout(server.request(clientId, 'withNote', i), 3000, `request ${i}`));
        }
        assert.deepStrictEqual(
          log,
          Array.from({ length: 20 }, (_, i) => [`note for ${i}`, `reply for ${i}`]).flat(),
        );
      });

      test("client requests and their replies emit no 'message' events; client messages do not call server handlers", T, async (t) => {
        const { server, client } = await pair(t, transport);
        const serverMessages = [];
        const clientMessages = [];
        server.on('message', (...args) => serverMessages.push(args));
        server.on('message.h', (...args) => serverMessages.push(['message.h', ...args]));
        client.on('message', (...args) => clientMessages.push(args));
        client.on('message.h', (...args) => clientMessages.push(['message.h', ...args]));
        const handled = [];
        server.handle('h', (m) => {
          handled.push(m);
          return 'reply';
        });

        assert.equal(await withTimeout(client.request('h', 'as request'), 3000, 'the request'), 'reply');
        await sleep(50);
        assert.deepStrictEqual(serverMessages, [], "a request emitted no 'message' on the server");
        assert.deepStrictEqual(clientMessages, [], "a reply emitted no 'message' on the client");

        const arrived = waitFor(server, 'message.h');
        client.send('h', 'as message');
        await arrived;
        await withTimeout(client.request('h', 'second request'), 3000, 'a round trip after the message');
        assert.deepStrictEqual(handled, ['as request', 'second request'], 'the message did not call the handler');
        assert.equal(serverMessages.filter(([name]) => name !== 'message.h').length, 1, "only the message emitted 'message'");
      });

      test("server requests and their replies emit no 'message' events; server messages do not call client handlers", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const serverMessages = [];
        const clientMessages = [];
        server.on('message', (...args) => serverMessages.push(args));
        client.on('message', (...args) => clientMessages.push(args));
        client.on('message.h', (...args) => clientMessages.push(['message.h', ...args]));
        const handled = [];
        client.handle('h', (m) => {
          handled.push(m);
          return 'reply';
        });
        assert.equal(await withTimeout(server.request(clientId, 'h', 'as request'), 3000, 'the request'), 'reply');
        await sleep(50);
        assert.deepStrictEqual(clientMessages, []);
        assert.deepStrictEqual(serverMessages, []);

        const arrived = waitFor(client, 'message.h');
        server.send('h', 'as message', clientId);
        await arrived;
        await withTimeout(server.request(clientId, 'h', 'second request'), 3000, 'a round trip after the message');
        assert.deepStrictEqual(handled, ['as request', 'second request']);
      });
    });

    describe('reconnect', () => {
      test('requests work after the client reconnects to a server restarted on the same address, and a request made while down is answered by the new server', T, async (t) => {
        const track = autoClose(t);
        const { serverOptions, clientOptions } = await addressFor(t, transport);
        const first = track(new Server(serverOptions));
        first.handle('who', (m) => `first:${m}`);
        first.listen();
        await waitFor(first, 'listening');

        const client = track(new Client({ ...clientOptions, retryDelay: 20, reconnectDelay: 20 }));
        client.handle('ping', (m) => `pong:${m}`);
        const firstConnection = waitFor(first, 'connection');
        client.connect();
        await waitFor(client, 'connect');
        const [firstId] = await firstConnection;
        assert.equal(await withTimeout(client.request('who', 1), 3000, 'the first server'), 'first:1');
        assert.equal(await withTimeout(first.request(firstId, 'ping', 1), 3000, 'the first server to the client'), 'pong:1');

        const disconnected = waitFor(client, 'disconnect');
        first.close();
        await withTimeout(first.closedPromise, 5000, "the first server's 'close'");
        await disconnected;
        const whileDown = later(client.request('who', 'while down', { timeout: 10000 }));

        const second = track(new Server(serverOptions));
        second.handle('who', (m) => `second:${m}`);
        const secondConnection = waitFor(second, 'connection', 10000);
        const reconnected = waitFor(client, 'reconnect', 10000);
        second.listen();
        await reconnected;
        const [secondId] = await secondConnection;
        assert.equal(await withTimeout(whileDown, 5000, 'the request made while down'), 'second:while down');
        assert.equal(await withTimeout(client.request('who', 2), 3000, 'the second server'), 'second:2');
        assert.equal(await withTimeout(second.request(secondId, 'ping', 2), 3000, 'the second server to the client'), 'pong:2');
      });
    });

    describe('replies after the requester left', () => {
      test("a server handler that finishes after its client left sends nothing and emits no 'error' (the client's own request failed with ERR_IPC_CLOSED)", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const errors = [];
        server.on('error', (err) => errors.push(err));
        let finished = false;
        server.handle('slow', async () => {
          await sleep(300);
          finished = true;
          return 'too late';
        });
        const reply = later(client.request('slow', null));
        const gone = waitFor(server, 'connectionClose');
        // Let the request reach the handler, then leave while it works.
        await sleep(50);
        client.close();
        assert.deepStrictEqual((await gone)[0], clientId);
        await expectRejection(reply, { code: 'ERR_IPC_CLOSED', topic: 'slow' });
        await until(() => finished, 2000, 'the handler finished');
        await sleep(100);
        assert.deepStrictEqual(errors, [], 'a reply to a departed client is not an error');
      });
    });
  });
}

// Argument checks that never open a connection: the same on every transport, so run once.
describe('without a connection', () => {
  test('a bad requestTimeout option throws RangeError ERR_OUT_OF_RANGE at construction', (t) => {
    const socketFile = socketPath(t);
    assertThrowsCode(() => new Client({ socketFile, requestTimeout: -1 }), RangeError, 'ERR_OUT_OF_RANGE');
    assertThrowsCode(() => new Server({ socketFile, requestTimeout: 1.5 }), RangeError, 'ERR_OUT_OF_RANGE');
  });

  test('handle() with a handler that is not a function throws TypeError ERR_INVALID_ARG_TYPE', (t) => {
    const server = new Server({ socketFile: socketPath(t) });
    const client = new Client({ socketFile: socketPath(t) });
    for (const bad of [undefined, null, 'fn', 42, {}]) {
      assertThrowsCode(() => server.handle('t', bad), TypeError, 'ERR_INVALID_ARG_TYPE');
      assertThrowsCode(() => client.handle('t', bad), TypeError, 'ERR_INVALID_ARG_TYPE');
    }
    // Nothing was registered by the failed calls.
    assert.equal(server.removeHandler('t'), false);
    assert.equal(client.removeHandler('t'), false);
    server.close();
    client.close();
  });
});
