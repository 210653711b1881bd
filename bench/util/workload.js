'use strict';
const fs = require('node:fs');
// The workload every scenario shares: the message, the paced sender, the receive window and
// the clock. Used inside the child processes.

const { performance } = require('node:perf_hooks');

const TOPIC = 'bench';

// seq starts at 100000 so it always has 6 digits and every message is exactly 65 bytes of JSON,
// e.g. {"seq":100000,"src":"bench","kind":"tick","value":1000,"ok":true}.
const SEQ_BASE = 100000;

/** The i-th benchmark message: a fresh object, as an application would build it. */
function message(i) {
  return { seq: SEQ_BASE + i, src: 'bench', kind: 'tick', value: 1000 + (i % 9000), ok: true };
}

/** Messages sent per event-loop turn before yielding (setImmediate), as in the earlier bench. */
const PER_TURN = 1000;

/** A sender pauses while more than this is queued in its socket, where the library exposes it. */
const HIGH_WATER = 1024 * 1024;

/** Nanoseconds on CLOCK_MONOTONIC, which all processes share, so stamps compare across them. */
const now = () => Number(process.hrtime.bigint());

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Sends `count` messages built by `make(i)` with `send(message)` (default: endpoint.send on the
 * bench topic), `perTurn` per event-loop turn. After each turn it flushes (net-batch writes its
 * batch there) and waits while the endpoint reports a backlog. zeromq's send returns a promise
 * that must settle before the next send.
 */
async function sendMany(endpoint, count, { make = message, perTurn = PER_TURN, send = (m) => endpoint.send(TOPIC, m) } = {}) {
  let i = 0;
  while (i < count) {
    const end = Math.min(count, i + perTurn);
    for (; i < end; i++) {
      const pending = send(make(i));
      if (pending) await pending;
    }
    endpoint.flush();
    while (endpoint.congested()) await endpoint.drained();
    await nextTurn();
  }
}

/**
 * The sender's reference (loop-cost): the loop of sendMany() with endpoint.send(TOPIC, m)
 * replaced by JSON.stringify(m), over the same messages, `perTurn` per event-loop turn. Returns
 * the total length of the JSON texts (which also keeps the results in use).
 */
async function stringifyMany(count, { make = message, perTurn = PER_TURN } = {}) {
  let chars = 0;
  let i = 0;
  while (i < count) {
    const end = Math.min(count, i + perTurn);
    for (; i < end; i++) chars += JSON.stringify(make(i)).length;
    await nextTurn();
  }
  return chars;
}

/**
 * CPU time of the calling (main) thread alone, in ns, from the scheduler's own accounting. Event
 * loop utilization is wall time, so it also counts time this thread sat runnable while another
 * thread of the process (the native core's, libzmq's) had the CPU it is pinned to.
 */
function mainThreadCpuNs() {
  return Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * mainThreadCpuNs(), up to date. The kernel adds a running thread's time to schedstat only at a
 * scheduler tick (every 4 ms at HZ=250) or when the thread stops running, so a read after a busy
 * stretch can miss up to a tick: 80 ns/msg over 50,000 messages. Blocking for 0.1 ms first
 * (Atomics.wait, which sleeps and so uses no CPU) makes the thread stop running.
 */
function settledMainThreadCpuNs() {
  Atomics.wait(pause, 0, 0, 0.1);
  return mainThreadCpuNs();
}

/**
 * A 'message' listener that counts `count` messages, checks that they arrive complete and in
 * order, and calls `done(stats, lastMessage)` with the window from the first to the last one.
 * Over that window it also samples the event loop's active time and the process's CPU time
 * (loop-cost). `check(message, index)` returns an error text for a wrong message.
 */
function receiveWindow(count, done, check = checkSeq) {
  let received = 0;
  let first = 0;
  let elu0 = null;
  let cpu0 = null;
  let main0 = 0;
  return (msg) => {
    if (received === 0) {
      first = now();
      elu0 = performance.eventLoopUtilization();
      cpu0 = process.cpuUsage();
      main0 = settledMainThreadCpuNs();
    }
    const problem = check(msg, received);
    if (problem) throw new Error(`message ${received}: ${problem}`);
    received++;
    if (received === count) {
      const last = now();
      const elu = performance.eventLoopUtilization(elu0);
      const cpu = process.cpuUsage(cpu0);
      const mainCpuNs = settledMainThreadCpuNs() - main0;
      done({ count, first, last, loopActiveMs: elu.active, cpuUs: cpu.user + cpu.system, mainCpuNs }, msg);
    }
  };
}

/**
 * Collects the server's peers as they connect and tells the orchestrator ('peers', with the
 * time) once `expected` have; returns the array it fills.
 */
function announcePeers(ctx, server, expected) {
  const peers = [];
  server.onConnection((peer) => {
    peers.push(peer);
    if (peers.length === expected) ctx.send('peers', { at: now(), count: expected });
  });
  return peers;
}

function checkSeq(msg, index) {
  if (msg === null || typeof msg !== 'object') return `expected an object, got ${typeof msg}`;
  if (msg.seq !== SEQ_BASE + index) return `expected seq ${SEQ_BASE + index}, got ${msg.seq} (lost or reordered)`;
  return null;
}

/** Messages per second over a window that opens at the first message: n − 1 intervals. */
function ratePerSecond(count, firstNs, lastNs) {
  return lastNs > firstNs ? ((count - 1) * 1e9) / (lastNs - firstNs) : NaN;
}

/** Nearest-rank percentile of an ascending sorted array. */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Resolves when `predicate()` becomes true (polled every 2 ms) or rejects after `ms`. */
async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

module.exports = {
  TOPIC,
  SEQ_BASE,
  PER_TURN,
  HIGH_WATER,
  message,
  now,
  nextTurn,
  sendMany,
  stringifyMany,
  settledMainThreadCpuNs,
  receiveWindow,
  announcePeers,
  checkSeq,
  ratePerSecond,
  percentile,
  until,
};
