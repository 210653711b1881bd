'use strict';
// Shared by the test files: unique socket paths, waiting for events with a deadline, and child
// processes that run a server or client script.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { fork } = require('node:child_process');

let counter = 0;

/** A fresh socket path in its own temp directory; removed when the test ends. */
function socketPath(t, name = 'ipc') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-'));
  if (t && t.after) t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, `${name}-${process.pid}-${counter++}.sock`);
}

/** Resolves with the event's arguments, or rejects after `ms` naming the event. */
async function waitFor(emitter, event, ms = 5000) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    return await once(emitter, event, { signal: ac.signal });
  } catch (err) {
    if (ac.signal.aborted) throw new Error(`timed out after ${ms} ms waiting for '${event}'`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Collects the first `count` emissions of `event` (arguments arrays), with a deadline. */
function collect(emitter, event, count, ms = 5000) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out after ${ms} ms: saw ${seen.length} of ${count} '${event}' events`));
    }, ms);
    function onEvent(...args) {
      seen.push(args);
      if (seen.length === count) {
        clearTimeout(timer);
        emitter.off(event, onEvent);
        resolve(seen);
      }
    }
    emitter.on(event, onEvent);
  });
}

/** Resolves after `ms`. */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Forks `__test__/fixtures/<script>` with args; it talks back with process.send().
 * The child is killed when the test ends.
 */
function spawnFixture(t, script, args = [], options = {}) {
  const child = fork(path.join(__dirname, 'fixtures', script), args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], ...options });
  child.output = '';
  child.stdout.on('data', (d) => (child.output += d));
  child.stderr.on('data', (d) => (child.output += d));
  if (t && t.after) t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return child;
}

/** Waits for a child's message satisfying `predicate`. */
function childMessage(child, predicate = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error(`timed out after ${ms} ms waiting for a message from the child; its output:\n${child.output}`));
    }, ms);
    function onMessage(m) {
      if (!predicate(m)) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(m);
    }
    child.on('message', onMessage);
  });
}

/** Resolves with { code, signal } when the child exits, rejects after `ms`. */
function childExit(child, ms = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not exit within ${ms} ms; its output:\n${child.output}`)), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

module.exports = { socketPath, waitFor, collect, sleep, spawnFixture, childMessage, childExit };
