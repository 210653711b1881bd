'use strict';
// The server under test, one process per scenario. Spec: { socketPath, options }.
// It is the plain setup an application would have: default options (unless the scenario sets
// some), an 'echo' handler and a 'message' listener. Besides serving it measures what only it
// can see: how late its own 10 ms timer runs (a blocked event loop delays every client) and its
// JS heap, and it counts why connections were dropped.
//
// Commands: 'phase' -> the figures since the last 'phase' (and resets them);
// 'stop' -> the totals, then close() and exit.

const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { spec, onCommand, reply, replyAndExit, bump } = require('./child');
const { Server } = require(path.join(__dirname, '..', '..'));

const TICK_MS = 10;
const HEAP_EVERY_TICKS = 10; // process.memoryUsage() every 100 ms is enough for a peak, and cheap

const totals = {
  connections: 0,
  requests: 0,
  messages: 0,
  slowClients: 0,
  drops: {}, // 'connectionClose' with a reason: code -> count
  peerCloses: 0, // 'connectionClose' without one: the client left
  messageErrors: {},
  errors: {},
};

const server = new Server({ socketFile: spec.socketPath, ...spec.options });
server.handle('echo', (m) => {
  totals.requests++;
  return m;
});
server.on('message', () => {
  totals.messages++;
});
server.on('connection', () => totals.connections++);
server.on('slowClient', () => totals.slowClients++);
server.on('connectionClose', (id, reason) => {
  if (reason) bump(totals.drops, reason.code || 'unknown');
  else totals.peerCloses++;
});
server.on('messageError', (err) => bump(totals.messageErrors, err.code || 'unknown'));
server.on('error', (err) => bump(totals.errors, err.code || 'unknown'));

// The largest interval between two ticks of the timer, and the largest heap, since the last phase.
let lastTick = performance.now();
let maxTickMs = 0;
let maxTickAt = 0; // when that interval ended (ms since the epoch), to place it in the runner's timeline
let ticks = 0;
let heap = { heapUsed: 0, external: 0, arrayBuffers: 0 };
function sampleHeap() {
  const m = process.memoryUsage();
  heap = { heapUsed: Math.max(heap.heapUsed, m.heapUsed), external: Math.max(heap.external, m.external), arrayBuffers: Math.max(heap.arrayBuffers, m.arrayBuffers) };
}
setInterval(() => {
  const now = performance.now();
  if (now - lastTick > maxTickMs) {
    maxTickMs = now - lastTick;
    maxTickAt = performance.timeOrigin + now;
  }
  lastTick = now;
  if (++ticks % HEAP_EVERY_TICKS === 0) sampleHeap();
}, TICK_MS);

function phase() {
  // The interval still running counts too: a loop that is only now free was blocked that long.
  const now = performance.now();
  const running = now - lastTick > maxTickMs;
  const result = { maxTickMs: running ? now - lastTick : maxTickMs, maxTickAt: running ? performance.timeOrigin + now : maxTickAt, heap, totals };
  maxTickMs = 0;
  heap = { heapUsed: 0, external: 0, arrayBuffers: 0 };
  sampleHeap();
  return result;
}

onCommand({
  phase,
  stop: () => {
    const result = phase();
    server.close();
    // close() flushes; a client that does not read must not hold up the exit for long.
    server.closed().then(() => replyAndExit('stop', result));
    setTimeout(() => replyAndExit('stop', result), 3000).unref();
  },
});

// The socket file goes with the process, whichever way it ends, and so does its directory
// once empty (the runner removes it too, unless the runner was killed).
process.on('exit', () => {
  try {
    fs.unlinkSync(spec.socketPath);
    fs.rmdirSync(path.dirname(spec.socketPath));
  } catch {}
});

server.once('listening', () => reply('ready', { pid: process.pid }));
server.listen();
