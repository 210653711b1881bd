#!/usr/bin/env node
'use strict';
// Flood suite: can one flooding connection take a server's memory or its event loop? Each
// scenario starts a fresh server process, a well-behaved client, and flooders that hammer the
// server over raw sockets (or the library's own Client), then lets the server rest. The runner
// samples the server's RSS from /proc every 20 ms (a blocked event loop cannot hide a peak);
// the server measures its own timer lateness. One table, and exit code 1 if any bound below is
// passed. Not part of `npm test`.
//
//   node bench/flood.js [--short] [--only a,b] [--json FILE] [--seed N]      (--help: details)
//
// Processes (bench/flood/): server.js (the server under test), good-client.js (the bystander),
// flooder.js (raw sockets: reader, non-reader, messages, barrage), client-flooder.js (the
// library's Client with 1,000 requests in flight). Every one is forked; the runner talks to
// them over the fork IPC channel, which carries only commands and figures.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fork } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const MIB = 1024 * 1024;

// ----- Bounds (per scenario; passing one marks the row FAIL) -----

// What one client's queued replies may occupy before the server drops it: the server's default maxBufferedBytes.
const DEFAULT_MAX_BUFFERED_BYTES = 64 * MIB;
// What one client's unprocessed input may occupy: the server's default maxInboundBytes (the inbound cap).
const DEFAULT_MAX_INBOUND_BYTES = 4 * MIB;
// Allocator slack, V8 growth and the core's threads: what a busy server may use beyond those buffers.
const PEAK_SLACK_BYTES = 64 * MIB;
// Once the flood has gone its memory must come back, bar allocator caches of this size.
const REST_SLACK_BYTES = 64 * MIB;
// A 10 ms timer whose ticks are further apart than this means the event loop was blocked, and every client waited.
const MAX_TIMER_GAP_MS = 100;
// One hostile connection must not break another: the well-behaved client sees no error...
const MAX_GOOD_ERRORS = 0;
// ...and loses no reply.
const MAX_GOOD_LOST = 0;

// ----- How the suite runs -----

const RSS_EVERY_MS = 20; // from the runner, so a server whose event loop is stuck still gets sampled
const IDLE_MS = 1000; // after start-up, before the baseline RSS is taken
const REST_WINDOW_MS = 1000; // "RSS after rest" is also given as the minimum over this last stretch
// A runaway server is killed once its RSS passes this share of the memory available at the
// start: the row fails, and the machine stays usable.
const SAFETY_SHARE = 0.5;
const START_MS = 15000; // a child process must be up (and connected) within this
const ASK_MS = 15000; // a child must answer a command within this (the server's loop may be slow)
const GOOD_SETTLE_MS = 12000; // for the good client's figures: it first waits up to 6 s for its last requests to settle
const GOOD_PAD_BYTES = 256;
const DEFAULT_SEED = 1;

const raw = (mode, connections, payloadBytes, extra = {}) => ({ script: 'flooder.js', mode, connections, payloadBytes, ...extra });

// floodMs, restMs and rounds are [full, --short].
const SCENARIOS = [
  {
    name: 'big-reader',
    about: '1 raw connection pipelines 8 KB echo requests and reads the replies',
    flooders: () => [raw('reader', 1, 8192)],
    floodMs: [4000, 2000],
    restMs: [3000, 3000],
  },
  {
    name: 'big-nonreader',
    about: '1 raw connection pipelines 8 KB echo requests and never reads; dropped, it reconnects',
    flooders: () => [raw('nonreader', 1, 8192)],
    floodMs: [4000, 2000],
    restMs: [3000, 3000],
  },
  {
    name: 'four-rounds',
    about: '4 raw non-readers of 8 KB requests (2 processes x 2), in rounds of flood and rest',
    flooders: () => [raw('nonreader', 2, 8192), raw('nonreader', 2, 8192)],
    floodMs: [8000, 3000],
    restMs: [5000, 3000],
    rounds: [4, 2],
  },
  {
    name: 'small-messages',
    about: '1 raw connection sends 500-byte MESSAGE_JSON frames',
    flooders: () => [raw('messages', 1, 500)],
    floodMs: [4000, 2000],
    restMs: [3000, 3000],
  },
  {
    name: 'small-requests',
    about: '1 raw connection pipelines 10-byte echo requests and reads the replies',
    flooders: () => [raw('reader', 1, 10)],
    floodMs: [4000, 2000],
    restMs: [3000, 3000],
  },
  {
    name: 'client-1000',
    about: "the library's Client keeps 1,000 requests of 8 KB in flight",
    flooders: () => [{ script: 'client-flooder.js', connections: 1, outstanding: 1000, payloadBytes: 8192 }],
    floodMs: [4000, 2000],
    restMs: [3000, 3000],
  },
  {
    name: 'barrage',
    about: '200 raw connections (4 processes x 50): hello, then seeded-random bytes or valid floods; reconnect when dropped',
    flooders: (seed) => [0, 1, 2, 3].map((i) => raw('barrage', 50, 0, { seed: seed * 1000 + i })),
    floodMs: [60000, 10000],
    restMs: [8000, 8000],
  },
];

const USAGE = `usage: node bench/flood.js [options]

Floods a native-socket-ipc server from hostile connections and checks that its memory and its
event loop stay bounded and that a well-behaved client on the same server is not disturbed.
Prints one table; exits 1 if any bound was passed (every scenario still runs).

  --short        CI durations (the whole run takes about 70 s; the full one about 3 minutes)
  --only a,b     run only these scenarios:
${SCENARIOS.map((s) => `                   ${s.name.padEnd(15)}${s.about}`).join('\n')}
  --json FILE    also write the results (every figure, the bounds, the verdicts) to FILE
  --seed N       seed of the barrage's random bytes and choices (default ${DEFAULT_SEED})
  --help         this text

Bounds, per scenario:
  peak RSS       <= baseline + connections x (maxBufferedBytes 64 MiB + inbound cap 4 MiB) + 64 MiB
  RSS after rest <= baseline + 64 MiB (the minimum over the last second of each rest)
  timer gap      the server's 10 ms timer ticks at most ${MAX_TIMER_GAP_MS} ms apart
  good client    ${MAX_GOOD_ERRORS} errors and ${MAX_GOOD_LOST} lost replies`;

function parseArgs(argv) {
  const opts = { short: false, only: null, json: null, seed: DEFAULT_SEED };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usageError(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === '--short') opts.short = true;
    else if (arg === '--only') opts.only = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (arg === '--json') opts.json = value();
    else if (arg === '--seed') {
      opts.seed = Number(value());
      if (!Number.isInteger(opts.seed) || opts.seed < 0) usageError('--seed must be a whole number >= 0');
    } else usageError(`unknown option ${arg}`);
  }
  if (opts.only) {
    const unknown = opts.only.filter((name) => !SCENARIOS.some((s) => s.name === name));
    if (unknown.length > 0) usageError(`unknown scenario(s): ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  }
  return opts;
}

function usageError(message) {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

// ----- Child processes, and cleaning up after them on every path -----

const live = new Set(); // child processes not yet exited
const tempDirs = new Set();

function cleanUp() {
  for (const child of live) child.kill();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    cleanUp();
    process.exit(130);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `promise` does or after `ms`, whichever is first, leaving no timer behind. */
function within(promise, ms) {
  let timer;
  return Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}

/** One forked process of bench/flood/: its replies by type, and how it ended. */
class Child {
  constructor(label, script, spec) {
    this.label = label;
    this.proc = fork(path.join(__dirname, 'flood', script), [JSON.stringify(spec)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.gone = false;
    this.failure = null;
    this.stderr = '';
    this.inbox = new Map(); // type -> replies nobody waited for yet
    this.waiting = new Map(); // type -> { resolve, reject }[]
    live.add(this);
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (text) => (this.stderr = (this.stderr + text).slice(-2000)));
    this.proc.on('error', () => {}); // a send to a process that just exited; its 'exit' says what happened
    this.proc.on('message', ({ type, data }) => {
      const waiters = this.waiting.get(type);
      if (waiters && waiters.length > 0) waiters.shift().resolve(data);
      else this.inbox.set(type, [...(this.inbox.get(type) || []), data]);
    });
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.gone = true;
        live.delete(this);
        const tail = this.stderr.trim().split('\n').slice(-2).join(' | ');
        this.failure = new Error(`${this.label} exited (${signal || `code ${code}`})${tail ? `: ${tail}` : ''}`);
        for (const waiters of this.waiting.values()) for (const w of waiters) w.reject(this.failure);
        this.waiting.clear();
        resolve();
      });
    });
  }

  get pid() {
    return this.proc.pid;
  }

  send(type, data) {
    try {
      if (this.proc.connected) this.proc.send({ type, data });
    } catch {}
  }

  /** The next reply of `type`; rejects if the process exits first or `ms` pass. */
  next(type, ms) {
    const queued = this.inbox.get(type);
    if (queued && queued.length > 0) return Promise.resolve(queued.shift());
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label} did not answer '${type}' within ${ms} ms`)), ms);
      const settle = (fn) => (x) => {
        clearTimeout(timer);
        fn(x);
      };
      if (!this.waiting.has(type)) this.waiting.set(type, []);
      this.waiting.get(type).push({ resolve: settle(resolve), reject: settle(reject) });
    });
  }

  ask(type, ms, data) {
    this.send(type, data);
    return this.next(type, ms);
  }

  kill() {
    if (!this.gone) this.proc.kill('SIGKILL');
  }

  /** Waits up to `ms` for the process to exit by itself, then kills it (and waits for that). */
  async ended(ms) {
    await within(this.exited, ms);
    if (this.gone) return;
    this.kill();
    await within(this.exited, 2000);
  }
}

// ----- RSS, from outside the server -----

function rssOf(pid) {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null; // gone
  }
}

function memAvailable() {
  try {
    return Number(/^MemAvailable:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))[1]) * 1024;
  } catch {
    return 8 * 1024 * MIB;
  }
}

class RssSampler {
  constructor(pid, capBytes, onCap) {
    this.pid = pid;
    this.samples = []; // [performance.now(), rss]
    this.capBytes = capBytes;
    this.onCap = onCap;
    this.sample();
    this.timer = setInterval(() => this.sample(), RSS_EVERY_MS);
  }

  sample() {
    const rss = rssOf(this.pid);
    if (rss === null) return;
    this.samples.push([performance.now(), rss]);
    if (rss > this.capBytes && this.onCap) {
      this.onCap(rss);
      this.onCap = null;
    }
  }

  last() {
    return this.samples.length ? this.samples[this.samples.length - 1][1] : null;
  }

  /** max or min of the samples taken since `from` (performance.now()). */
  over(from, pick) {
    let result = null;
    for (let i = this.samples.length - 1; i >= 0 && this.samples[i][0] >= from; i--) {
      result = result === null ? this.samples[i][1] : pick(result, this.samples[i][1]);
    }
    return result;
  }

  /** [ms since `from`, MiB] every `stepMs`, for the JSON: where in the run the memory went. */
  timeline(from, stepMs = 100) {
    const points = [];
    let next = from;
    for (const [t, rss] of this.samples) {
      if (t < next) continue;
      points.push([Math.round(t - from), Math.round((rss / MIB) * 10) / 10]);
      next = t + stepMs;
    }
    return points;
  }

  stop() {
    clearInterval(this.timer);
  }
}

// ----- One scenario -----

function addCounts(into, from) {
  for (const [key, value] of Object.entries(from)) {
    if (typeof value === 'number') into[key] = (into[key] || 0) + value;
    else if (value && typeof value === 'object') addCounts((into[key] = into[key] || {}), value);
  }
  return into;
}

async function runScenario(scenario, opts) {
  const pick = (pair) => (pair ? pair[opts.short ? 1 : 0] : 1);
  const floodMs = pick(scenario.floodMs);
  const restMs = pick(scenario.restMs);
  const rounds = pick(scenario.rounds);
  const serverOptions = scenario.serverOptions || {};
  const connections = scenario.flooders(opts.seed).reduce((n, f) => n + f.connections, 0);
  const row = { name: scenario.name, about: scenario.about, floodMs, restMs, rounds: [], connections, serverOptions, flooders: {} };

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-flood-'));
  tempDirs.add(dir);
  const socketPath = path.join(dir, 's.sock');
  const children = [];
  const start = (label, script, spec) => {
    const child = new Child(label, script, { socketPath, ...spec });
    children.push(child);
    return child;
  };
  let sampler = null;
  let firstFlood = null;
  let good = null;
  let baselineAt = null;
  try {
    const server = start('server', 'server.js', { options: serverOptions });
    await server.next('ready', START_MS);
    sampler = new RssSampler(server.pid, opts.safetyCapBytes, (rss) => {
      row.killedAtRss = rss;
      server.kill();
    });
    good = start('good client', 'good-client.js', { padBytes: GOOD_PAD_BYTES });
    await good.next('ready', START_MS);
    good.send('start');
    await sleep(IDLE_MS);
    row.baseline = sampler.last();
    baselineAt = performance.now();
    await server.ask('phase', ASK_MS); // start-up's timer gaps and heap are not what is measured

    firstFlood = performance.now();
    for (let r = 0; r < rounds; r++) {
      const round = {};
      row.rounds.push(round);
      const specs = scenario.flooders(opts.seed + r);
      const flooders = specs.map((spec, i) => start(`flooder ${i + 1}`, spec.script, spec));
      await Promise.all(flooders.map((f) => f.next('ready', START_MS)));
      const floodStart = performance.now();
      const floodStartEpoch = Date.now();
      round.floodStartedAtMs = Math.round(floodStart - baselineAt);
      for (const f of flooders) f.send('start');
      await sleep(floodMs);
      const counts = await Promise.all(flooders.map((f) => f.ask('stop', ASK_MS)));
      for (const c of counts) addCounts(row.flooders, c);
      await Promise.all(flooders.map((f) => f.ended(3000)));
      // The rest begins once every flooder process is gone.
      round.floodEndedAtMs = Date.now() - floodStartEpoch;
      await sleep(restMs);
      round.peak = sampler.over(floodStart, Math.max);
      round.restLast = sampler.last();
      round.restMin = sampler.over(performance.now() - REST_WINDOW_MS, Math.min);
      const phase = await server.ask('phase', ASK_MS);
      round.maxTickMs = phase.maxTickMs;
      round.maxTickEndedAtMs = Math.round(phase.maxTickAt - floodStartEpoch); // from the flood's start
      round.heap = phase.heap;
      row.server = phase.totals;
    }
    row.peak = sampler.over(firstFlood, Math.max);
    row.good = await good.ask('stop', GOOD_SETTLE_MS);
    row.server = (await server.ask('stop', ASK_MS)).totals;
  } catch (err) {
    row.error = row.killedAtRss ? `server killed at RSS ${mib(row.killedAtRss)} MiB (safety cap)` : err.message;
    if (sampler && firstFlood !== null) row.peak = sampler.over(firstFlood, Math.max);
    // What the bystander saw of the failure is worth having.
    if (good && !good.gone && !row.good) row.good = await good.ask('stop', GOOD_SETTLE_MS).catch(() => undefined);
  } finally {
    if (sampler) {
      sampler.stop();
      if (baselineAt !== null) row.rssTimeline = sampler.timeline(baselineAt); // [ms after the baseline, MiB]
    }
    await Promise.all(children.map((c) => c.ended(c.label === 'server' ? 4000 : 1000)));
    fs.rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
  return judge(row);
}

/** Adds the bounds and what passed them to a scenario's row. */
function judge(row) {
  const maxBuffered = row.serverOptions.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const maxInbound = row.serverOptions.maxInboundBytes ?? DEFAULT_MAX_INBOUND_BYTES;
  const failures = [];
  row.maxTickMs = row.rounds.reduce((m, r) => Math.max(m, r.maxTickMs ?? 0), 0) || null;
  row.heapPeak = row.rounds.reduce((m, r) => Math.max(m, r.heap ? r.heap.heapUsed : 0), 0) || null;
  if (row.baseline != null) {
    row.bounds = {
      peak: row.baseline + row.connections * (maxBuffered + maxInbound) + PEAK_SLACK_BYTES,
      rest: row.baseline + REST_SLACK_BYTES,
    };
    if (row.peak != null && row.peak > row.bounds.peak) failures.push(`peak RSS ${mib(row.peak)} MiB > ${mib(row.bounds.peak)} MiB`);
    row.rounds.forEach((r, i) => {
      if (r.restMin != null && r.restMin > row.bounds.rest) {
        failures.push(`RSS after rest${row.rounds.length > 1 ? ` (round ${i + 1})` : ''} ${mib(r.restMin)} MiB > ${mib(row.bounds.rest)} MiB`);
      }
    });
  }
  if (row.maxTickMs != null && row.maxTickMs > MAX_TIMER_GAP_MS) failures.push(`timer gap ${Math.round(row.maxTickMs)} ms > ${MAX_TIMER_GAP_MS} ms`);
  if (row.good) {
    if (row.good.errorCount > MAX_GOOD_ERRORS) {
      const which = Object.entries(row.good.errors).map(([k, v]) => `${k.replace(/ERR_IPC_/g, '')} x${v}`);
      failures.push(`good client: ${row.good.errorCount} errors (${which.join(', ')})`);
    }
    if (row.good.lost > MAX_GOOD_LOST) failures.push(`good client: ${row.good.lost} lost replies`);
  }
  if (row.error) failures.push(row.error);
  row.failures = failures;
  row.pass = failures.length === 0;
  return row;
}

// ----- The table -----

const mib = (bytes) => (bytes == null ? '-' : (bytes / MIB).toFixed(0));
const count = (n) => (n == null ? '-' : n < 10000 ? String(n) : n < 1e6 ? `${(n / 1000).toFixed(1)}k` : `${(n / 1e6).toFixed(2)}M`);
const ms = (x) => (x == null ? '-' : x < 10 ? x.toFixed(1) : x.toFixed(0));
const flag = (text, bad) => (bad ? `${text}!` : text);

function tableRow(row) {
  const f = row.flooders;
  const b = row.bounds || {};
  const restBad = row.rounds.some((r) => r.restMin > b.rest);
  const drops = Object.entries((row.server && row.server.drops) || {})
    .map(([code, n]) => `${code.replace(/^ERR_IPC_/, '')} ${n}`)
    .join(', ');
  const handled = row.server ? row.server.requests + row.server.messages : null;
  return [
    row.name,
    String(row.connections),
    count(f.sent),
    count(handled),
    count(f.replies === undefined ? undefined : f.replies + (f.replyErrors || 0)),
    count(f.drops),
    mib(row.baseline),
    flag(mib(row.peak), row.peak > b.peak),
    flag(row.rounds.map((r) => mib(r.restMin)).join('/') || '-', restBad),
    mib(row.heapPeak),
    flag(ms(row.maxTickMs), row.maxTickMs > MAX_TIMER_GAP_MS),
    row.good ? `${ms(row.good.p99Ms)}/${ms(row.good.worstMs)}` : '-',
    row.good ? flag(`${row.good.errorCount}/${row.good.lost}`, row.good.errorCount > MAX_GOOD_ERRORS || row.good.lost > MAX_GOOD_LOST) : '-',
    drops || '-',
    row.pass ? 'ok' : 'FAIL',
  ];
}

const HEADERS = ['scenario', 'conns', 'sent', 'handled', 'replies', 'dropped', 'base MiB', 'peak MiB', 'rest MiB', 'heap MiB', 'gap ms', 'good p99/max ms', 'good err/lost', 'drops (server)', 'result'];

function printTable(rows, opts) {
  const cells = [HEADERS, ...rows.map(tableRow)];
  const widths = HEADERS.map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  const line = (c) => c.map((text, i) => (i === 0 || i >= 13 ? text.padEnd(widths[i]) : text.padStart(widths[i]))).join('  ').trimEnd();
  console.log(`\nflood suite${opts.short ? ' (--short)' : ''}: node ${process.version}, ${os.cpus().length} CPUs, seed ${opts.seed}`);
  console.log(line(cells[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells.slice(1)) console.log(line(c));
  console.log(
    [
      '',
      'sent: frames the flooders wrote; handled: requests + messages the server took in; replies: read by the flooders;',
      'dropped: flooder connections the server closed during the flood; rest: RSS after rest (min over its last second,',
      "one per round); gap: largest interval between ticks of the server's 10 ms timer; drops: 'connectionClose' reasons",
      'on the server over the whole scenario (a barrage connection that ends mid-frame when its flooder stops is a',
      "PROTOCOL drop too); good: the well-behaved client's latency, errors and lost replies; '!' marks a passed bound",
    ].join('\n'),
  );
  const failed = rows.filter((r) => !r.pass);
  if (failed.length > 0) {
    console.log('');
    for (const row of failed) console.log(`FAIL ${row.name}: ${row.failures.join('; ')}`);
  }
}

// ----- main -----

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  opts.safetyCapBytes = Math.floor(memAvailable() * SAFETY_SHARE);
  const scenarios = SCENARIOS.filter((s) => !opts.only || opts.only.includes(s.name));
  const rows = [];
  for (const scenario of scenarios) {
    const began = Date.now();
    process.stderr.write(`${scenario.name}: ${scenario.about} ... `);
    const row = await runScenario(scenario, opts);
    process.stderr.write(`${row.pass ? 'ok' : 'FAIL'} (${((Date.now() - began) / 1000).toFixed(1)} s)\n`);
    rows.push(row);
  }
  printTable(rows, opts);
  if (opts.json) {
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      short: opts.short,
      seed: opts.seed,
      bounds: {
        defaultMaxBufferedBytes: DEFAULT_MAX_BUFFERED_BYTES,
        defaultMaxInboundBytes: DEFAULT_MAX_INBOUND_BYTES,
        peakSlackBytes: PEAK_SLACK_BYTES,
        restSlackBytes: REST_SLACK_BYTES,
        maxTimerGapMs: MAX_TIMER_GAP_MS,
        maxGoodErrors: MAX_GOOD_ERRORS,
        maxGoodLost: MAX_GOOD_LOST,
      },
      scenarios: rows,
      pass: rows.every((r) => r.pass),
    };
    fs.mkdirSync(path.dirname(path.resolve(opts.json)), { recursive: true });
    fs.writeFileSync(opts.json, `${JSON.stringify(result, null, 2)}\n`);
  }
  process.exitCode = rows.every((r) => r.pass) ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 2;
});
