'use strict';
// Client lifecycle: connect errors and retries, maxRetries, close() at every stage, the queue
// while disconnected (maxQueue, ERR_IPC_CLOSED with undelivered), retry spacing, reconnecting to
// a restarted server process, and flushing on close().

const test = require('node:test');
const assert = require('node:assert/strict');
const { Server, Client } = require('..');
const { socketPath, waitFor, collect, sleep, until, waitClose, cleanup, startServerAt, spawnFixture, childMessage, childExit } = require('./helpers');

const T = { timeout: 30000 };

/** Records every event a client emits, in order, as strings (errors as 'error:<code>'). */
function record(client) {
  const events = [];
  for (const name of ['connect', 'reconnect', 'disconnect', 'close']) client.on(name, () => events.push(name));
  client.on('connectError', (err) => events.push(`connectError:${err.code}`));
  client.on('error', (err) => events.push(`error:${err.code}`));
  return events;
}

test("emits 'connectError' with code ENOENT for each failed attempt while no server exists", T, async (t) => {
  const socketFile = socketPath(t);
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20 }));
  const errors = collect(client, 'connectError', 3);
  client.connect();
  const seen = await errors;
  for (const [err] of seen) {
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'ENOENT');
    assert.equal(err.syscall, 'connect');
    assert.equal(err.path, socketFile);
  }
});

test("maxRetries: 2 gives exactly 3 'connectError', then 'error' ERR_IPC_RETRIES_EXHAUSTED, then 'close' once", T, async (t) => {
  const socketFile = socketPath(t);
  const client = cleanup(t, new Client({ socketFile, retryDelay: 10, maxRetries: 2 }));
  const events = record(client);
  let exhausted;
  client.on('error', (err) => (exhausted = err));
  const closed = waitClose(client);
  client.connect();
  await closed;
  await sleep(200);
  assert.deepEqual(events, [
    'connectError:ENOENT',
    'connectError:ENOENT',
    'connectError:ENOENT',
    'error:ERR_IPC_RETRIES_EXHAUSTED',
    'close',
  ]);
  assert.ok(exhausted instanceof Error);
  // close() after it gave up changes nothing.
  client.close();
  await sleep(50);
  assert.equal(events.filter((e) => e === 'close').length, 1);
});

test("maxRetries: 0 gives up after the first failed attempt", T, async (t) => {
  const client = cleanup(t, new Client({ socketFile: socketPath(t), retryDelay: 10, maxRetries: 0 }));
  const events = record(client);
  const closed = waitClose(client);
  client.connect();
  await closed;
  await sleep(100);
  assert.deepEqual(events, ['connectError:ENOENT', 'error:ERR_IPC_RETRIES_EXHAUSTED', 'close']);
});

test("close() inside a 'connectError' handler stops all further attempts and 'close' fires once", T, async (t) => {
  const socketFile = socketPath(t);
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20 }));
  const events = record(client);
  client.once('connectError', () => client.close());
  client.connect();
  await waitClose(client);
  await sleep(300);
  assert.deepEqual(events, ['connectError:ENOENT', 'close']);

  // A server started afterwards never hears from this client.
  const server = await startServerAt(t, socketFile);
  let connections = 0;
  server.on('connection', () => connections++);
  await sleep(200);
  assert.equal(connections, 0);
  assert.deepEqual(events, ['connectError:ENOENT', 'close']);
});

test("close() before connect() emits 'close' once", T, async (t) => {
  const client = new Client({ socketFile: socketPath(t) });
  const events = record(client);
  client.close();
  client.close();
  await waitClose(client);
  await sleep(50);
  assert.deepEqual(events, ['close']);
});

test("close() is idempotent on a connected client: 'close' fires once", T, async (t) => {
  const socketFile = socketPath(t);
  await startServerAt(t, socketFile);
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20 }));
  const events = record(client);
  client.connect();
  await waitFor(client, 'connect');
  const closed = waitClose(client);
  assert.equal(client.close(), client, 'close() returns the client');
  client.close();
  await closed;
  client.close();
  await sleep(100);
  assert.deepEqual(events, ['connect', 'close']);
});

test("send() after close() emits 'error' ERR_IPC_CLOSED", T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  const received = [];
  server.on('message', (m) => received.push(m));
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20 }));
  client.connect();
  await waitFor(client, 'connect');
  const errors = [];
  client.on('error', (err) => errors.push(err));
  const closed = waitClose(client);
  client.close();
  client.send('t', 'while closing');
  await closed;
  client.send('t', 'after close');
  assert.deepEqual(errors.map((e) => e.code), ['ERR_IPC_CLOSED', 'ERR_IPC_CLOSED']);
  await sleep(100);
  assert.deepEqual(received, []);
});

test('messages sent before the server exists are queued and delivered in order once it starts', T, async (t) => {
  const socketFile = socketPath(t);
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20 }));
  const errors = [];
  client.on('error', (err) => errors.push(err));
  // Some before connect(), some while it retries.
  for (let i = 0; i < 5; i++) client.send('q', i);
  client.connect();
  await waitFor(client, 'connectError');
  for (let i = 5; i < 10; i++) client.send('q', i);
  await waitFor(client, 'connectError');

  const server = cleanup(t, new Server({ socketFile }));
  const messages = collect(server, 'message', 10);
  server.listen();
  const got = await messages;
  assert.deepEqual(got.map(([m]) => m), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.ok(got.every(([, topic]) => topic === 'q'));
  assert.deepEqual(errors, []);
});

test("maxQueue: 3 makes the 4th send while disconnected emit 'error' ERR_IPC_QUEUE_FULL, and the first three arrive", T, async (t) => {
  const socketFile = socketPath(t);
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20, maxQueue: 3 }));
  const errors = [];
  client.on('error', (err) => errors.push(err));
  client.connect();
  await waitFor(client, 'connectError');
  client.send('q', 1);
  client.send('q', 2);
  client.send('q', 3);
  assert.deepEqual(errors, []);
  client.send('q', 4);
  assert.equal(errors.length, 1, "the 4th send emits 'error' synchronously");
  assert.equal(errors[0].code, 'ERR_IPC_QUEUE_FULL');

  const server = cleanup(t, new Server({ socketFile }));
  const received = [];
  server.on('message', (m) => received.push(m));
  server.listen();
  await until(() => received.length >= 3);
  await sleep(200);
  assert.deepEqual(received, [1, 2, 3]);
  assert.equal(errors.length, 1);
});

test("close() while retrying with queued messages emits 'error' ERR_IPC_CLOSED with the undelivered count, then 'close'", T, async (t) => {
  const socketFile = socketPath(t);
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20 }));
  const events = record(client);
  let closedError;
  client.on('error', (err) => (closedError = err));
  client.connect();
  await waitFor(client, 'connectError');
  client.send('q', 'a');
  client.send('q', 'b');
  await sleep(50);
  client.close();
  await waitClose(client);
  await sleep(100);
  assert.deepEqual(events.filter((e) => !e.startsWith('connectError')), ['error:ERR_IPC_CLOSED', 'close']);
  assert.equal(closedError.undelivered, 2);
  assert.ok(closedError instanceof Error);
});

test("close() before connect() with queued messages emits 'error' ERR_IPC_CLOSED with the undelivered count, then 'close'", T, async (t) => {
  const client = new Client({ socketFile: socketPath(t) });
  const events = record(client);
  let closedError;
  client.on('error', (err) => (closedError = err));
  client.send('q', 1);
  client.send('q', 2);
  client.send('q', 3);
  client.close();
  await waitClose(client);
  assert.deepEqual(events, ['error:ERR_IPC_CLOSED', 'close']);
  assert.equal(closedError.undelivered, 3);
});

test('retryDelay {min, max} spaces failed attempts between min and (generously) max', T, async (t) => {
  const min = 60;
  const max = 120;
  const client = cleanup(t, new Client({ socketFile: socketPath(t), retryDelay: { min, max } }));
  const times = [];
  client.on('connectError', () => times.push(performance.now()));
  client.connect();
  await until(() => times.length >= 8, 10000);
  client.close();
  // The average gap, not each one: two attempts whose events reach a busy JS thread in one batch
  // look closer together than they were, but the span of seven gaps cannot shrink that way.
  const gaps = times.slice(1, 8).map((at, i) => at - times[i]);
  const average = (times[7] - times[0]) / 7;
  assert.ok(average >= min - 15, `average gap ${average.toFixed(1)} ms is at least about min (${min}): ${gaps.map(Math.round)}`);
  assert.ok(average <= max + 200, `average gap ${average.toFixed(1)} ms is not far over max (${max}): ${gaps.map(Math.round)}`);
  assert.ok(new Set(gaps.map(Math.round)).size > 1, `random delays vary: ${gaps.map(Math.round)}`);
});

test("after its server process is SIGKILLed and restarted, the client emits 'disconnect', then 'connect' followed by 'reconnect', and messages reach the new server", T, async (t) => {
  const socketFile = socketPath(t);
  const first = spawnFixture(t, 'server.js', [socketFile]);
  await childMessage(first, (m) => m.event === 'listening');

  const client = cleanup(t, new Client({ socketFile, retryDelay: 20, reconnectDelay: 20 }));
  const events = record(client);
  client.connect();
  await waitFor(client, 'connect');
  const firstGot = childMessage(first, (m) => m.event === 'message');
  client.send('hello', 'first');
  assert.deepEqual((await firstGot).message, 'first');
  assert.deepEqual(events, ['connect'], "a first connect is not followed by 'reconnect'");

  const disconnected = waitFor(client, 'disconnect');
  first.kill('SIGKILL');
  await childExit(first);
  await disconnected;
  await waitFor(client, 'connectError');
  client.send('hello', 'queued while down');

  const second = spawnFixture(t, 'server.js', [socketFile]);
  const reconnected = waitFor(client, 'reconnect', 10000);
  const messages = [];
  second.on('message', (m) => m.event === 'message' && messages.push(m.message));
  await childMessage(second, (m) => m.event === 'listening');
  await reconnected;
  client.send('hello', 'second');
  await until(() => messages.length >= 2);

  assert.deepEqual(messages, ['queued while down', 'second']);
  // And the new server's replies reach the client.
  const echoed = waitFor(client, 'message.echo');
  client.send('echo', { round: 'trip' });
  assert.deepEqual((await echoed)[0], { round: 'trip' });
  const afterDisconnect = events.slice(events.indexOf('disconnect'));
  assert.equal(afterDisconnect[0], 'disconnect');
  const connectAt = afterDisconnect.indexOf('connect');
  assert.ok(connectAt > 0, `'connect' after 'disconnect': ${events}`);
  assert.equal(afterDisconnect[connectAt + 1], 'reconnect', `'reconnect' right after 'connect': ${events}`);
  assert.ok(
    afterDisconnect.slice(1, connectAt).every((e) => e.startsWith('connectError:')),
    `only connect errors between 'disconnect' and 'connect': ${events}`,
  );
  assert.equal(events.filter((e) => e === 'reconnect').length, 1);
  assert.ok(!events.some((e) => e.startsWith('error:')), `no 'error': ${events}`);
});

test("'disconnect' is not emitted after the user's own close()", T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20 }));
  const events = record(client);
  client.connect();
  await waitFor(client, 'connect');
  const gone = waitFor(server, 'connectionClose');
  client.close();
  await waitClose(client);
  await gone;
  await sleep(100);
  assert.deepEqual(events, ['connect', 'close']);
});

test("a client's close() flushes: messages sent right before close() reach the server", T, async (t) => {
  const socketFile = socketPath(t);
  const server = await startServerAt(t, socketFile);
  const received = [];
  server.on('message', (message, topic) => received.push([topic, message]));
  const client = cleanup(t, new Client({ socketFile, retryDelay: 20 }));
  client.connect();
  await waitFor(client, 'connect');
  const gone = waitFor(server, 'connectionClose');

  const big = 'y'.repeat(512 * 1024);
  const expected = [];
  for (let i = 0; i < 100; i++) {
    client.send('n', i);
    expected.push(['n', i]);
  }
  for (let i = 0; i < 4; i++) {
    client.send('big', big);
    expected.push(['big', big]);
  }
  client.send('last', 'bye');
  expected.push(['last', 'bye']);
  const errors = [];
  client.on('error', (err) => errors.push(err));
  client.close();
  await Promise.all([gone, waitClose(client)]);
  assert.equal(received.length, expected.length, `received ${received.length} of ${expected.length}`);
  assert.deepEqual(received, expected);
  assert.deepEqual(errors, []);
});

test(
  "a send() from the 'error' handler of ERR_IPC_RETRIES_EXHAUSTED or the last 'connectError' handler is reported, not silently dropped",
  T,
  async (t) => {
    const outcome = {};
    for (const where of ['connectError', 'error']) {
      const client = cleanup(t, new Client({ socketFile: socketPath(t), retryDelay: 20, maxRetries: 1 }));
      let sent = 0;
      let reported = 0;
      client.on('connectError', () => {
        if (where === 'connectError') client.send('q', ++sent);
      });
      client.on('error', (err) => {
        if (err.code === 'ERR_IPC_RETRIES_EXHAUSTED') {
          if (where === 'error') client.send('q', ++sent);
        } else if (err.code === 'ERR_IPC_CLOSED') {
          reported += err.undelivered ?? 1;
        }
      });
      client.connect();
      await waitClose(client);
      await sleep(100);
      outcome[where] = `sent ${sent}, reported ${reported}`;
    }
    assert.deepEqual(outcome, { connectError: 'sent 2, reported 2', error: 'sent 1, reported 1' });
  },
);
