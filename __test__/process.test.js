'use strict';
// How Servers and Clients interact with their process: exiting after close(), ref()/unref(),
// exceptions thrown by listeners, and worker threads terminated with everything still open.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { socketPath, sleep, spawnFixture, childMessage, childExit } = require('./helpers');

const T = { timeout: 30000 };

const fdCount = () => fs.readdirSync('/proc/self/fd').length;

/**
 * Runs fixture `script` with `args` and asserts that it exits by itself, with code 0, within 5 s;
 * returns every message it sent.
 */
async function runToCleanExit(t, script, args) {
  const child = spawnFixture(t, script, args);
  const seen = [];
  child.on('message', (m) => seen.push(m));
  const exit = await childExit(child, 5000);
  assert.deepEqual(exit, { code: 0, signal: null }, `child output:\n${child.output}`);
  return seen;
}

test('a process whose server and client have closed exits by itself with code 0', T, async (t) => {
  const socketFile = socketPath(t);
  const seen = await runToCleanExit(t, 'exit-after-close.js', [socketFile]);
  assert.deepEqual(seen, [{ event: 'exchanged', message: { got: 'world' } }, { event: 'closed' }]);
  assert.equal(fs.existsSync(socketFile), false, 'the socket file is gone');
});

test('a process whose only handle is a listening server that called unref() exits by itself, removing its socket file', T, async (t) => {
  const socketFile = socketPath(t);
  const seen = await runToCleanExit(t, 'unref-server.js', [socketFile, 'unref']);
  assert.deepEqual(seen, [{ event: 'listening' }]);
  assert.equal(fs.existsSync(socketFile), false, 'the socket file is removed when the process exits');
});

test('a process with a listening (referenced) server does not exit by itself', T, async (t) => {
  const socketFile = socketPath(t);
  const child = spawnFixture(t, 'unref-server.js', [socketFile, 'ref']);
  await childMessage(child, (m) => m.event === 'listening');
  await assert.rejects(childExit(child, 1000), /did not exit within 1000 ms/);
  child.kill('SIGKILL');
  const exit = await childExit(child);
  assert.equal(exit.signal, 'SIGKILL');
});

test('client.unref() while it keeps retrying lets the process exit by itself', T, async (t) => {
  const socketFile = socketPath(t);
  const seen = await runToCleanExit(t, 'unref-client.js', [socketFile]);
  assert.deepEqual(seen, [{ event: 'unref', code: 'ENOENT' }]);
});

test("a 'message' listener that throws reaches process 'uncaughtException', and the rest of the batch is still delivered", T, async (t) => {
  const socketFile = socketPath(t);
  const seen = await runToCleanExit(t, 'throwing-listener.js', [socketFile]);
  const messages = seen.filter((m) => m.event === 'message').map((m) => m.message);
  assert.deepEqual(messages, [1, 2, 3, 4, 5], `all five messages arrive, in order: ${JSON.stringify(seen)}`);
  const uncaught = seen.filter((m) => m.event === 'uncaughtException');
  assert.deepEqual(uncaught, [{ event: 'uncaughtException', message: 'listener threw on message 2' }]);
  // The exception is reported right after the message that threw, before the ones after it.
  const order = seen.map((m) => (m.event === 'message' ? m.message : m.event));
  assert.deepEqual(order, [1, 2, 'uncaughtException', 3, 4, 5]);
});

/** Runs worker-cycle.js on `socketFile`; resolves once `until` is seen (or at once if null). */
async function runWorker(socketFile, round, until) {
  const worker = new Worker(path.join(__dirname, 'fixtures', 'worker-cycle.js'), { workerData: { socketFile, round } });
  const errors = [];
  worker.on('error', (err) => errors.push(err));
  const messages = [];
  const reached = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`round ${round}: no '${until}' within 5 s: ${JSON.stringify(messages)}`)), 5000);
    worker.on('message', (m) => {
      messages.push(m);
      if (m.event === until) {
        clearTimeout(timer);
        resolve();
      }
    });
    if (until === null) {
      clearTimeout(timer);
      resolve();
    }
  });
  try {
    await reached;
  } finally {
    await worker.terminate();
  }
  return { messages, errors };
}

/** Waits (up to `ms`) for the fd count to come back to at most `limit`; returns the last count. */
async function fdsSettle(limit, ms = 3000) {
  const deadline = Date.now() + ms;
  let count = fdCount();
  while (count > limit && Date.now() < deadline) {
    await sleep(20);
    count = fdCount();
  }
  return count;
}

test('30 workers that exchange a message and are terminated without closing leave no fds or socket files behind', T, async (t) => {
  const dir = path.dirname(socketPath(t));
  const baseline = fdCount();
  for (let round = 0; round < 30; round++) {
    const socketFile = path.join(dir, `worker-${round}.sock`);
    const { messages, errors } = await runWorker(socketFile, round, 'exchanged');
    assert.deepEqual(errors, [], `round ${round}: the worker did not fail`);
    assert.deepEqual(messages.at(-1), { event: 'exchanged', message: { got: round }, topic: 'reply' });
    assert.ok(!messages.some((m) => m.event === 'error'), `round ${round}: ${JSON.stringify(messages)}`);
  }
  const count = await fdsSettle(baseline + 5);
  assert.ok(count <= baseline + 5, `open fds: ${count}, baseline ${baseline}`);
  assert.deepEqual(fs.readdirSync(dir), [], 'no socket file from the workers remains');
});

test('workers terminated at any stage (before listening, while connecting, after exchanging) leave no fds or socket files behind', T, async (t) => {
  const dir = path.dirname(socketPath(t));
  const baseline = fdCount();
  const stages = [null, 'listening', 'exchanged'];
  for (let round = 0; round < 30; round++) {
    const socketFile = path.join(dir, `worker-${round}.sock`);
    const { errors } = await runWorker(socketFile, round, stages[round % stages.length]);
    assert.deepEqual(errors, [], `round ${round}: the worker did not fail`);
  }
  const count = await fdsSettle(baseline + 5);
  assert.ok(count <= baseline + 5, `open fds: ${count}, baseline ${baseline}`);
  assert.deepEqual(fs.readdirSync(dir), [], 'no socket file from the workers remains');
});
