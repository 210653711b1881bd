#!/usr/bin/env node
'use strict';
// Soak test (issue 6): mixed traffic for N minutes between a server process and several client
// processes while servers restart and clients come and go; then it counts what was lost,
// duplicated or reordered. Not part of `npm test`.
//
//   npm run soak -- --minutes N [--delivery at-most-once|at-least-once] [options]   (-h: all)
//
// The processes: one server (bench/soak-server.js) at a time on one socket path; `--clients`
// steady clients (bench/soak-client.js) that live for the whole run; and up to `--churn`
// churning clients, each living 1–8 s and then closing gracefully (85%) or being SIGKILLed
// (15%). Every 5–15 s (`--restart`) the server is SIGKILLed (75%) or sent SIGTERM, on which it
// close()s gracefully; a fresh server process starts on the same path 0–1000 ms after it is gone.
// Every 8–16 s (`--stall`) the server or a steady client is stopped (SIGSTOP) for 0.3–3 s: with
// heartbeats at 500 ms / 1 s (`--heartbeat`) the connections drop while both processes live, and
// with at-least-once the sessions resume ('clientReconnect', same clientId).
// Traffic, in both directions: JSON messages of assorted sizes (mostly under 200 bytes, a few up
// to 64 KiB, rare ones up to `--max-large`) with about 10% Buffers; server.send to each client,
// broadcasts, and requests each way. Every message carries its sender (a client's tag, 's3' or
// 'c17', each a single process; or for the server's sends the server incarnation and the
// clientId) and a sequence number per sender.
//
// At the end: traffic stops, the soak waits until nothing more arrives, closes every client and
// then the server gracefully, and tallies from what the processes recorded. Servers log every
// message before their listener returns, with one write(2) (so a SIGKILLed server's log holds
// everything it acknowledged); clients write a report when they close.
//
// DEFINITIONS (what the summary counts; they follow the at-least-once guarantee of issue 6)
//
// client → server, per message a client sent:
// - lost: sent by a client incarnation that was not SIGKILLed, with no 'error' event for it,
//   and received by no server process's listener. Messages of SIGKILLed client incarnations are
//   not checked (what only a killed process held dies with it); they are reported apart.
//   An error "for it": an 'error' emitted inside the send() call that sent it (QUEUE_FULL,
//   CLOSED…); ERR_IPC_CLOSED with err.undelivered = n when the client stops, which covers its
//   last n messages; any other 'error' with err.undelivered = n (ERR_IPC_BUFFER_FULL, emitted
//   when the tick's batch reaches the core), which covers the last n sent before it. Those are
//   "reported undelivered", counted per code; any of them that arrived anyway is counted too
//   (no violation: with at-least-once, close() reports what was not yet acknowledged).
// - duplicated: received twice by the SAME server process. Never allowed.
// - redelivered (after a crash): received by two different server processes, the first of which
//   was SIGKILLed. Allowed with at-least-once: the first handled it but had not acknowledged it.
//   After a graceful close it counts as a violation: a server that closed acknowledged what it
//   handled.
// - order: within one server process, a client's sequence numbers must increase (a repeat is a
//   duplicate, not an order violation).
//
// server → client (server.send), per server process and client:
// - checked: the server process ended gracefully (SIGTERM → close(), or at the end) and the
//   client is a steady one that was closed only at the end. Then every message the server sent
//   it must arrive exactly once and in order, except those with an 'error' for that send() call
//   and the last n when its session ended with a 'connectionClose' reason that has
//   err.undelivered = n (ERR_IPC_SESSION_EXPIRED); a missing one is "lost".
// - not checked, reported apart: messages from a server process that was SIGKILLed (it held
//   them when it died), and messages to churning or SIGKILLed clients (they left).
// - broadcasts: a client is due every broadcast made while its connection was up, as the server
//   saw it ('connection' / 'clientReconnect' up to 'clientDisconnect' / 'connectionClose');
//   counted like server.send.
// - duplicated / order: a client receiving one message twice, or a server's sequence numbers
//   going down, from any server and for any client.
//
// Also: requests each way by result code (ok, or the rejection's code), and for each failed
// client request whether a server's handler ran for it and whether that server had ended (closed
// or SIGKILLed) before the failure, i.e. the reply was lost with it; a request handler that ran
// twice for one request in one server process (a violation); 'error' events per code on each
// side; RSS (VmRSS from /proc/<pid>/status every 2 s) of the server and the clients: min / max /
// last per role, and the maximum per minute.
//
// The verdict (exit code 1 if any): duplicates, order violations, corrupted payloads, a child
// that crashed or did not close, redelivery after a graceful close, a request handled twice by
// one server; with at-least-once also lost messages (client → server, and checked server →
// client). With at-most-once, loss is reported but allowed: a dropped connection may lose what
// was in flight, and this soak drops connections all the time. Redelivery is never expected
// there (nothing is re-sent).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fork } = require('node:child_process');
const { prng, Ranges, Receipts, eachLine, rssOf, bump } = require('./soak-common');

const USAGE = `usage: npm run soak -- [options]      (node bench/soak.js [options])
  --minutes N            how long the traffic runs (default 2; decimals allowed)
  --delivery MODE        at-least-once (default) or at-most-once
  --clients N            steady clients, alive for the whole run (default 6)
  --churn N              churning clients alive at once, at most (default 3)
  --restart A-B          seconds between server restarts, uniformly random (default 5-15);
                         0 turns restarts off
  --stall A-B            seconds between stalls (default 8-16; 0: none): the server or a steady
                         client is stopped (SIGSTOP) for 0.3-3 s, so heartbeats drop connections
                         while both processes live and at-least-once sessions resume
  --heartbeat MS         heartbeatInterval of every server and client (default 500; the
                         timeout is twice that)
  --rate N               messages/s from each client to the server (default 200)
  --s2c-rate N           messages/s from the server to each client with send() (default 50)
  --broadcast-rate N     broadcasts/s (default 10)
  --request-rate N       requests/s from each client (default 10)
  --srq-rate N           requests/s from the server, to random clients (default 10)
  --max-large BYTES      the largest payload (default 1048576)
  --seed N               seed of the schedule and the payloads (default: random, printed)
  --keep                 keep the logs and reports (kept anyway when the verdict fails)`;

function parseArgs(argv) {
  const o = {
    minutes: 2,
    delivery: 'at-least-once',
    clients: 6,
    churn: 3,
    restart: [5, 15],
    stall: [8, 16],
    heartbeat: 500,
    rate: 200,
    s2cRate: 50,
    broadcastRate: 10,
    requestRate: 10,
    srqRate: 10,
    maxLarge: 1048576,
    seed: Math.floor(Math.random() * 2 ** 31),
    keep: false,
  };
  const fail = (message) => {
    console.error(`${message}\n\n${USAGE}`);
    process.exit(2);
  };
  const number = (text, flag, min = 0) => {
    const n = Number(text);
    if (text === undefined || text === '' || !Number.isFinite(n) || n < min) fail(`${flag} needs a number ≥ ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].startsWith('--') && argv[i].includes('=') ? argv[i].split(/=(.*)/s) : [argv[i], undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    switch (flag) {
      case '--minutes':
        o.minutes = number(value(), flag, 0.05);
        break;
      case '--delivery':
        o.delivery = value();
        if (!['at-least-once', 'at-most-once'].includes(o.delivery)) fail('--delivery must be at-least-once or at-most-once');
        break;
      case '--clients':
        o.clients = Math.floor(number(value(), flag, 1));
        break;
      case '--churn':
        o.churn = Math.floor(number(value(), flag));
        break;
      case '--restart':
      case '--stall': {
        const text = String(value());
        const key = flag.slice(2);
        if (text === '0') o[key] = null;
        else {
          const [a, b = a] = text.split('-').map((x) => number(x, flag, 0.1));
          if (b < a) fail(`${flag} A-B needs A ≤ B`);
          o[key] = [a, b];
        }
        break;
      }
      case '--heartbeat':
        o.heartbeat = Math.floor(number(value(), flag, 50));
        break;
      case '--rate':
        o.rate = number(value(), flag);
        break;
      case '--s2c-rate':
        o.s2cRate = number(value(), flag);
        break;
      case '--broadcast-rate':
        o.broadcastRate = number(value(), flag);
        break;
      case '--request-rate':
        o.requestRate = number(value(), flag);
        break;
      case '--srq-rate':
        o.srqRate = number(value(), flag);
        break;
      case '--max-large':
        o.maxLarge = Math.floor(number(value(), flag, 65536));
        break;
      case '--seed':
        o.seed = Math.floor(number(value(), flag));
        break;
      case '--keep':
        o.keep = true;
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        fail(`unknown option: ${argv[i]}`);
    }
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const random = prng(opts.seed);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-soak-'));
const socketFile = path.join(dir, 's.sock');
const started = Date.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const elapsed = () => {
  const s = Math.round((Date.now() - started) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const mib = (bytes) => (bytes / 1048576).toFixed(1);

const anomalies = []; // things that went wrong outside the message accounting: crashes, hangs
function anomaly(text) {
  anomalies.push(`[${elapsed()}] ${text}`);
  console.log(`  ! ${text}`);
}

// ----- child processes -----

const servers = []; // every server process, in start order (incarnation = index + 1)
const clients = new Map(); // tag -> client process
let current = null; // the server process now running (or starting)

/** A forked child: its role, its last stats, how it ended. */
function spawnChild(role, name, script, spec) {
  const proc = fork(path.join(__dirname, script), [JSON.stringify(spec)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const child = {
    role, // 'server', 'steady', 'churn'
    name,
    spec,
    proc,
    pid: proc.pid,
    stats: null,
    stderr: '',
    startedAt: Date.now(),
    ending: null, // 'kill', 'term', 'close': what the soak did to end it
    exited: false,
    exit: null,
    waiters: [],
    rss: { first: null, max: 0, last: null },
  };
  child.exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      child.exited = true;
      child.exit = { code, signal };
      const expected = (child.ending === 'kill' && signal === 'SIGKILL') || (child.ending !== null && child.ending !== 'kill' && code === 0);
      if (!expected) {
        const tail = child.stderr.trim().split('\n').slice(-5).join('\n      ');
        anomaly(`${name} (pid ${child.pid}) exited unexpectedly: ${signal || `code ${code}`}${tail ? `\n      ${tail}` : ''}`);
        child.crashed = true;
      }
      resolve();
    });
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (text) => {
    child.stderr = (child.stderr + text).slice(-8192);
  });
  proc.on('message', (m) => {
    if (m.type === 'stats') child.stats = m.data;
    for (const w of child.waiters.slice()) w(m);
  });
  proc.on('error', (err) => anomaly(`${name}: ${err.message}`));
  return child;
}

/** The next message from `child` satisfying `predicate`, or null after `ms` or if it exits. */
function message(child, predicate, ms) {
  return new Promise((resolve) => {
    const done = (m) => {
      clearTimeout(timer);
      child.waiters = child.waiters.filter((w) => w !== onMessage);
      resolve(m);
    };
    const onMessage = (m) => predicate(m) && done(m);
    const timer = setTimeout(() => done(null), ms);
    child.waiters.push(onMessage);
    child.exitPromise.then(() => done(null));
  });
}

/** Resolves true once `child` has exited, false after `ms`. */
function exited(child, ms) {
  return Promise.race([child.exitPromise.then(() => true), sleep(ms).then(() => false)]);
}

async function startServer() {
  for (;;) {
    const inc = servers.length + 1;
    const spec = {
      inc,
      socketFile,
      delivery: opts.delivery,
      log: path.join(dir, `server-${inc}.log`),
      s2cRate: opts.s2cRate,
      broadcastRate: opts.broadcastRate,
      srqRate: opts.srqRate,
      heartbeat: opts.heartbeat,
      maxLarge: Math.min(opts.maxLarge, 262144),
      seed: opts.seed,
    };
    const server = spawnChild('server', `server #${inc}`, 'soak-server.js', spec);
    servers.push(server);
    current = server;
    const m = await message(server, (x) => x.type === 'listening' || x.type === 'listen-error', 10000);
    if (m && m.type === 'listening') return server;
    if (m && m.type === 'listen-error') {
      server.ending = 'close'; // it exits by itself
      anomaly(`server #${inc} could not listen: ${m.code} ${m.message}`);
    } else if (!server.exited) {
      anomaly(`server #${inc} did not listen within 10 s; killed`);
      server.ending = 'kill';
      server.proc.kill('SIGKILL');
    }
    await server.exitPromise;
    await sleep(500);
  }
}

let churnCount = 0;
function startClient(kind, tag) {
  const spec = {
    tag,
    kind,
    socketFile,
    delivery: opts.delivery,
    report: path.join(dir, `client-${tag}.json`),
    rate: opts.rate,
    reqRate: opts.requestRate,
    heartbeat: opts.heartbeat,
    maxLarge: opts.maxLarge,
    seed: opts.seed,
  };
  const child = spawnChild(kind, `client ${tag}`, 'soak-client.js', spec);
  clients.set(tag, child);
  return child;
}

/** Asks a client to close(); SIGKILLs it (an anomaly) if it has not exited within 15 s. */
async function closeClient(child) {
  if (child.exited || child.ending) return child.exitPromise;
  child.ending = 'close';
  child.proc.send({ type: 'close' });
  if (!(await exited(child, 15000))) {
    anomaly(`${child.name} did not exit within 15 s of close(); SIGKILLed`);
    child.hung = true;
    child.proc.kill('SIGKILL');
    await child.exitPromise;
  }
}

function killChild(child) {
  if (child.exited || child.ending) return child.exitPromise;
  child.ending = 'kill';
  child.killedAt = Date.now();
  child.proc.kill('SIGKILL');
  return child.exitPromise;
}

// ----- the schedule -----

let stopping = false;
let restarting = Promise.resolve();

// The schedule's waits, cut short when the traffic stops (a restart may be 15 s away).
const pauses = new Set();
function pause(ms) {
  return new Promise((resolve) => {
    const entry = { resolve, timer: setTimeout(() => (pauses.delete(entry), resolve()), ms) };
    pauses.add(entry);
  });
}
function endPauses() {
  for (const { timer, resolve } of pauses) {
    clearTimeout(timer);
    resolve();
  }
  pauses.clear();
}
const restarts = { kill: 0, term: 0 };
const churnTimers = new Set();
const churnEnds = [];

// Restarts and stalls of the server take turns (a stopped process cannot close gracefully).
let serverTurn = Promise.resolve();
function withServer(fn) {
  const run = serverTurn.then(fn);
  serverTurn = run.catch(() => {});
  return run;
}

async function restartLoop() {
  if (!opts.restart) return;
  while (!stopping) {
    await pause(1000 * (opts.restart[0] + random() * (opts.restart[1] - opts.restart[0])));
    if (stopping) break;
    restarting = withServer(restart);
    await restarting;
  }
}

/** Ends the running server (SIGKILL, or SIGTERM for a graceful close) and starts a fresh one. */
async function restart() {
  const server = current;
  if (random() < 0.25) {
    restarts.term++;
    server.ending = 'term';
    server.proc.kill('SIGTERM');
    if (!(await exited(server, 15000))) {
      anomaly(`${server.name} did not exit within 15 s of SIGTERM (graceful close hangs); SIGKILLed`);
      server.hung = true;
      server.killedAt = Date.now();
      server.proc.kill('SIGKILL');
      await server.exitPromise;
    }
  } else {
    restarts.kill++;
    await killChild(server);
  }
  await sleep(random.int(0, 1000));
  await startServer();
}

const stalls = { server: 0, client: 0 };
async function stallLoop() {
  if (!opts.stall) return;
  while (!stopping) {
    await pause(1000 * (opts.stall[0] + random() * (opts.stall[1] - opts.stall[0])));
    if (stopping) break;
    const ms = random.int(300, 3000);
    if (random() < 0.5) {
      stalls.server++;
      await withServer(() => stall(current, ms));
    } else {
      const steady = [...clients.values()].filter((c) => c.role === 'steady' && !c.exited);
      stalls.client++;
      await stall(steady[random.int(0, steady.length - 1)], ms);
    }
  }
}

/** Stops a process for `ms` (SIGSTOP, then SIGCONT): to its peers it hangs, then comes back. */
async function stall(child, ms) {
  if (child.exited) return;
  child.proc.kill('SIGSTOP');
  await sleep(ms);
  if (!child.exited) child.proc.kill('SIGCONT');
}

async function churnLoop() {
  if (opts.churn === 0) return;
  while (!stopping) {
    await pause(random.int(300, 1500));
    if (stopping) break;
    const alive = [...clients.values()].filter((c) => c.role === 'churn' && !c.exited && !c.ending).length;
    if (alive >= opts.churn) continue;
    const child = startClient('churn', `c${++churnCount}`);
    const kill = random() < 0.15;
    const timer = setTimeout(() => {
      churnTimers.delete(timer);
      churnEnds.push(kill ? killChild(child) : closeClient(child));
    }, random.int(1000, 8000));
    churnTimers.add(timer);
  }
}

// ----- RSS and progress -----

const rssByRole = {}; // role -> { min, max, last, perMinute: [] }
function sampleRss() {
  const minute = Math.floor((Date.now() - started) / 60000);
  for (const child of [...servers, ...clients.values()]) {
    if (child.exited) continue;
    const rss = rssOf(child.pid);
    if (rss === null) continue;
    const r = (rssByRole[child.role] ||= { min: Infinity, max: 0, last: 0, perMinute: [] });
    r.min = Math.min(r.min, rss);
    r.max = Math.max(r.max, rss);
    r.last = rss;
    r.perMinute[minute] = Math.max(r.perMinute[minute] || 0, rss);
    if (child.rss.first === null && Date.now() - child.startedAt > 5000) child.rss.first = rss;
    child.rss.max = Math.max(child.rss.max, rss);
    child.rss.last = rss;
  }
}

function totals() {
  const t = { c2sSent: 0, c2sRecv: 0, s2cSent: 0, broadcasts: 0, s2cRecv: 0, reqOk: 0, reqFailed: 0, pending: 0 };
  for (const s of servers) {
    if (!s.stats) continue;
    t.c2sRecv += s.stats.recv;
    t.s2cSent += s.stats.sent;
    t.broadcasts += s.stats.broadcasts;
  }
  for (const c of clients.values()) {
    if (!c.stats) continue;
    t.c2sSent += c.stats.sent;
    t.s2cRecv += c.stats.received;
    if (!c.exited) t.pending += c.stats.pending;
    for (const [result, n] of Object.entries(c.stats.requests)) {
      if (result.startsWith('ok')) t.reqOk += n;
      else t.reqFailed += n;
    }
  }
  return t;
}

function progress() {
  const t = totals();
  const live = [...clients.values()].filter((c) => !c.exited);
  const churned = [...clients.values()].filter((c) => c.role === 'churn' && c.exited);
  const rss = (role) => {
    const values = [...servers, ...clients.values()].filter((c) => c.role === role && !c.exited && c.rss.last).map((c) => c.rss.last);
    if (values.length === 0) return '–';
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    return lo === hi ? `${mib(lo)}M` : `${mib(lo)}–${mib(hi)}M`;
  };
  console.log(
    `[${elapsed()}] server #${servers.length} (restarts: ${restarts.kill} kill, ${restarts.term} term; ` +
      `stalls: ${stalls.server} server, ${stalls.client} client) · ` +
      `clients ${live.filter((c) => c.role === 'steady').length}+${live.filter((c) => c.role === 'churn').length} ` +
      `(churned ${churned.length}, ${churned.filter((c) => c.ending === 'kill').length} killed) · ` +
      `c→s sent ${fmt(t.c2sSent)} recv ${fmt(t.c2sRecv)} · s→c sent ${fmt(t.s2cSent)} + ${fmt(t.broadcasts)} bc, recv ${fmt(t.s2cRecv)} · ` +
      `req ok ${fmt(t.reqOk)} failed ${fmt(t.reqFailed)} · rss server ${rss('server')} steady ${rss('steady')} churn ${rss('churn')}`,
  );
}

// ----- the end: quiet, close, tally -----

/** Waits until nothing more arrives for 3 s and no request is outstanding (at most 60 s). */
async function quiet() {
  const deadline = Date.now() + 60000;
  let last = null;
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    await sleep(500);
    const t = totals();
    const signature = `${t.c2sRecv} ${t.s2cRecv} ${t.reqOk} ${t.reqFailed} ${t.pending}`;
    if (signature !== last) {
      last = signature;
      stableSince = Date.now();
    } else if (t.pending === 0 && Date.now() - stableSince >= 3000) return true;
  }
  anomaly('traffic did not go quiet within 60 s of stopping (something still arrives, or requests stay outstanding)');
  return false;
}

/** What one server process's log says: see soak-server.js for the records. */
function replayServer(server) {
  const sum = {
    inc: server.spec.inc,
    graceful: false,
    killed: server.ending === 'kill' || Boolean(server.hung),
    tags: new Map(), // tag -> Receipts (what this process received from that client)
    corrupt: 0,
    handled: new Map(), // tag -> Ranges of request numbers its handler ran for
    handledAt: new Map(), // 'tag rseq' -> when (Date.now())
    repliedAt: new Map(), // 'tag rseq' -> when a delayed reply was returned
    startAt: server.startedAt,
    closeAt: Infinity, // when close() was called
    endAt: Infinity, // when close() was called, or when the soak SIGKILLed it
    handledTwice: 0,
    cids: new Map(), // cid -> { tag, sent, errSeqs: Ranges, eligible: Ranges }
    errors: {},
    disconnects: {},
    closes: {},
    reconnects: 0,
    slow: 0,
    srq: {},
    broadcasts: 0,
    received: 0,
  };
  const cid = (id) => {
    let c = sum.cids.get(id);
    if (c === undefined) sum.cids.set(id, (c = { tag: null, tags: new Set(), sent: 0, errSeqs: new Ranges(), eligible: new Ranges() }));
    return c;
  };
  const connected = new Set();
  if (!fs.existsSync(server.spec.log)) return sum;
  eachLine(server.spec.log, (f) => {
    switch (f[0]) {
      case 'R':
      case 'K': {
        let r = sum.tags.get(f[1]);
        if (r === undefined) sum.tags.set(f[1], (r = new Receipts()));
        r.add(Number(f[2]));
        sum.received++;
        if (f[0] === 'K') sum.corrupt++;
        break;
      }
      case 'B': {
        const [a, b] = [Number(f[1]), Number(f[2])];
        sum.broadcasts += b - a + 1;
        for (const id of connected) cid(id).eligible.add(a, b);
        break;
      }
      case 'S':
        cid(f[1]).sent = Math.max(cid(f[1]).sent, Number(f[2]));
        break;
      case 'C':
        cid(f[1]);
        connected.add(f[1]);
        break;
      case 'E':
        sum.reconnects++;
        connected.add(f[1]);
        break;
      case 'D':
        bump(sum.disconnects, f[2]);
        connected.delete(f[1]);
        break;
      case 'X': {
        bump(sum.closes, f[2]);
        connected.delete(f[1]);
        const n = f[3] === undefined || f[3] === '-' ? 0 : Number(f[3]);
        if (n > 0) {
          // its S record came just before: the last n of what it was sent
          const c = cid(f[1]);
          c.errSeqs.add(Math.max(1, c.sent - n + 1), c.sent);
          bump(sum.errors, `${f[2]} (connectionClose, undelivered)`, n);
        }
        break;
      }
      case 'M':
        cid(f[1]).tag = f[2];
        cid(f[1]).tags.add(f[2]);
        break;
      case 'H': {
        let h = sum.handled.get(f[1]);
        if (h === undefined) sum.handled.set(f[1], (h = new Ranges()));
        if (h.add(Number(f[2])) > 0) sum.handledTwice++;
        sum.handledAt.set(`${f[1]} ${f[2]}`, Number(f[3]));
        break;
      }
      case 'P':
        sum.repliedAt.set(`${f[1]} ${f[2]}`, Number(f[3]));
        break;
      case 'L':
        sum.startAt = Number(f[3]);
        break;
      case 'G':
        sum.closeAt = Number(f[1]);
        break;
      case 'e':
        bump(sum.errors, f[1]);
        if (f[3] !== '-') cid(f[2]).errSeqs.add(Number(f[3]));
        break;
      case 'W':
        sum.slow++;
        break;
      case 'Q':
        bump(sum.srq, f[1]);
        break;
      case 'Z':
        sum.graceful = true;
        break;
    }
  });
  if (sum.graceful) sum.killed = false; // it got to 'close' before any kill landed
  sum.endAt = sum.graceful ? sum.closeAt : server.killedAt || Infinity;
  return sum;
}

function readReport(child) {
  try {
    return JSON.parse(fs.readFileSync(child.spec.report, 'utf8'));
  } catch {
    return null;
  }
}

function tally() {
  const v = { violations: [], notes: [] };
  const c2s = {
    sent: 0,
    sentKilled: 0,
    receivedKilled: 0,
    received: 0,
    receipts: 0,
    lost: 0,
    lostDetail: [],
    duplicated: 0,
    redeliveredAfterKill: 0,
    redeliveredAfterClose: 0,
    reported: {},
    reportedArrived: 0,
    order: 0,
    corrupt: 0,
    phantom: 0,
  };
  const s2c = {
    sent: 0,
    received: 0,
    checkedSent: 0,
    lost: 0,
    lostDetail: [],
    lostKilledServer: 0,
    uncheckedSent: 0,
    uncheckedReceived: 0,
    reported: {},
    dups: 0,
    order: 0,
    corrupt: 0,
  };
  const bc = { made: 0, due: 0, received: 0, checkedDue: 0, lost: 0, lostDetail: [], lostKilledServer: 0, uncheckedDue: 0, extra: 0 };
  const req = { client: {}, server: {}, handledTwice: 0, handledByTwo: 0, failedWhere: {}, examples: [] };
  const errs = { client: {}, server: {} };
  const conn = {
    serverDisconnects: {},
    serverCloses: {},
    serverReconnects: 0,
    slow: 0,
    clientDisconnects: {},
    clientConnectErrors: {},
    clientReconnects: 0,
    connectErrorSamples: {},
  };

  // client → server: each server's receipts, then across servers
  const sums = servers.map(replayServer);
  const union = new Map(); // tag -> Ranges received by any server
  const handledUnion = new Map();
  const perServerTags = []; // [{ sum, tag, seen }]
  for (const sum of sums) {
    c2s.receipts += sum.received;
    c2s.corrupt += sum.corrupt;
    req.handledTwice += sum.handledTwice;
    conn.serverReconnects += sum.reconnects;
    conn.slow += sum.slow;
    for (const [k, n] of Object.entries(sum.errors)) bump(errs.server, k, n);
    for (const [k, n] of Object.entries(sum.disconnects)) bump(conn.serverDisconnects, k, n);
    for (const [k, n] of Object.entries(sum.closes)) bump(conn.serverCloses, k, n);
    for (const [k, n] of Object.entries(sum.srq)) bump(req.server, k, n);
    for (const [tag, r] of sum.tags) {
      c2s.duplicated += r.dups;
      c2s.order += r.order;
      let u = union.get(tag);
      if (u === undefined) union.set(tag, (u = new Ranges()));
      // received before by an earlier server process: which ended how?
      for (const earlier of perServerTags) {
        if (earlier.tag !== tag) continue;
        const both = r.seen.overlap(earlier.seen);
        if (both === 0) continue;
        if (earlier.sum.graceful) c2s.redeliveredAfterClose += both;
        else c2s.redeliveredAfterKill += both;
      }
      for (const [a, b] of r.seen.list) u.add(a, b);
      perServerTags.push({ sum, tag, seen: r.seen });
    }
    for (const [tag, h] of sum.handled) {
      let u = handledUnion.get(tag);
      if (u === undefined) handledUnion.set(tag, (u = new Ranges()));
      for (const [a, b] of h.list) req.handledByTwo += u.add(a, b);
    }
  }

  const reports = new Map();
  for (const child of clients.values()) {
    const report = child.ending === 'kill' || child.crashed || child.hung ? null : readReport(child);
    if (report) reports.set(child.spec.tag, report);
    const tag = child.spec.tag;
    const got = union.get(tag) || new Ranges();
    if (!report) {
      // SIGKILLed (or crashed): only its last stats say how much it sent
      c2s.sentKilled += child.stats ? child.stats.sent : 0;
      c2s.receivedKilled += got.size;
      continue;
    }
    c2s.sent += report.sent;
    c2s.received += got.size;
    const reported = new Ranges();
    for (const [seq, code] of report.errSeqs) {
      reported.add(seq);
      bump(c2s.reported, code);
    }
    for (const [a, b, code] of report.undeliveredRanges || []) {
      reported.add(a, b);
      bump(c2s.reported, code, b - a + 1);
    }
    if (report.closeUndelivered > 0) {
      reported.add(Math.max(1, report.sent - report.closeUndelivered + 1), report.sent);
      bump(c2s.reported, 'ERR_IPC_CLOSED (at close)', report.closeUndelivered);
    }
    c2s.reportedArrived += reported.overlap(got);
    const lost = got.missingUpTo(report.sent).minus(reported);
    if (lost.size > 0) {
      c2s.lost += lost.size;
      c2s.lostDetail.push(`${tag} (${report.kind}, sent ${report.sent}): lost ${lost.size}: seq ${lost.toString()}` + timelineNear(report, lost));
    }
    c2s.phantom += got.minus(new Ranges([[1, report.sent]])).size;
    for (const [k, n] of Object.entries(report.errors)) bump(errs.client, k, n);
    for (const [k, n] of Object.entries(report.requests)) bump(req.client, k, n);
    for (const [r, code, sentAt, failedAt, delay] of report.failedRequests || []) {
      // Was it handled, and did that server end before the request failed (its reply lost with it)?
      const by = sums.filter((x) => x.handled.has(tag) && x.handled.get(tag).has(r));
      let where = 'never handled';
      if (by.length > 0) {
        const last = by[by.length - 1];
        const key = `${tag} ${r}`;
        const replied = delay ? last.repliedAt.get(key) : last.handledAt.get(key); // undefined: never
        if (replied !== undefined && replied < last.endAt) where = `the handler replied before its server ${last.graceful ? 'closed' : 'was SIGKILLed'}`;
        else if (last.endAt < failedAt) where = `handled, then its server ${last.graceful ? 'closed gracefully' : 'was SIGKILLed'} before the reply`;
        else where = 'handled by a server still running when it failed';
        if (req.examples.length < 6 && code === 'ERR_IPC_TIMEOUT') {
          const at = (time) => `+${time - last.startAt} ms`;
          req.examples.push(
            `${tag} request ${r}: sent ${at(sentAt)}, handled by server #${last.inc} ${at(last.handledAt.get(key))} ` +
              `(reply after ${delay} ms${replied !== undefined ? `, returned ${at(replied)}` : ', never returned'}), ` +
              `server ${last.graceful ? 'close() called' : 'SIGKILLed'} ${at(last.endAt)}, ${code} ${at(failedAt)}`,
          );
        }
      }
      bump(req.failedWhere, `${code}: ${where}`);
    }
    for (const [k, m] of Object.entries(report.connectErrorSamples || {})) {
      if (!(k in conn.connectErrorSamples)) conn.connectErrorSamples[k] = `${tag}: ${m}`;
    }
    for (const [k, n] of Object.entries(report.events.disconnect)) bump(conn.clientDisconnects, k, n);
    for (const [k, n] of Object.entries(report.events.connectError)) bump(conn.clientConnectErrors, k, n);
    conn.clientReconnects += report.events.reconnect;
    for (const r of Object.values(report.recv)) {
      s2c.dups += r.dups;
      s2c.order += r.order;
    }
    s2c.corrupt += report.corrupt;
  }

  // server → client: per server process and clientId, against that client's report
  for (const sum of sums) {
    const byTag = new Map(); // tag -> eligible broadcasts (over its cids in this server)
    for (const [id, c] of sum.cids) {
      bc.due += c.eligible.size;
      if (c.tags.size > 1) v.notes.push(`server #${sum.inc}: client id ${id} sent messages as ${[...c.tags].join(' and ')}`);
      if (c.tag === null) {
        bc.uncheckedDue += c.eligible.size; // never said who it is
        continue;
      }
      const child = clients.get(c.tag);
      const report = reports.get(c.tag);
      const sentSeqs = new Ranges(c.sent > 0 ? [[1, c.sent]] : []).minus(c.errSeqs);
      const seen = report && report.recv[`${sum.inc}:${id}`] ? new Ranges(report.recv[`${sum.inc}:${id}`].seen) : new Ranges();
      s2c.sent += c.sent;
      s2c.received += seen.size;
      const checked = sum.graceful && child && child.role === 'steady' && report;
      const lost = sentSeqs.minus(seen);
      if (checked) {
        s2c.checkedSent += sentSeqs.size;
        if (lost.size > 0) {
          s2c.lost += lost.size;
          s2c.lostDetail.push(`server #${sum.inc} → ${c.tag} (client id ${id}, sent ${c.sent}): lost ${lost.size}: seq ${lost.toString()}`);
        }
      } else if (!sum.graceful && child && child.role === 'steady' && report) {
        s2c.lostKilledServer += lost.size;
      } else {
        s2c.uncheckedSent += sentSeqs.size;
        s2c.uncheckedReceived += seen.size;
      }
      byTag.set(c.tag, (byTag.get(c.tag) || new Ranges()));
      for (const [a, b] of c.eligible.list) byTag.get(c.tag).add(a, b);
    }
    for (const [code, n] of Object.entries(sum.errors)) if (code !== '-') bump(s2c.reported, code, n);
    bc.made += sum.broadcasts;
    for (const [tag, due] of byTag) {
      const child = clients.get(tag);
      const report = reports.get(tag);
      const seen = report && report.recv[`b${sum.inc}`] ? new Ranges(report.recv[`b${sum.inc}`].seen) : new Ranges();
      bc.received += seen.size;
      bc.extra += seen.minus(due).size;
      const lost = due.minus(seen);
      if (sum.graceful && child && child.role === 'steady' && report) {
        bc.checkedDue += due.size;
        if (lost.size > 0) {
          bc.lost += lost.size;
          bc.lostDetail.push(`server #${sum.inc} → ${tag}: ${lost.size} broadcasts due and not received: ${lost.toString()}`);
        }
      } else if (!sum.graceful && child && child.role === 'steady' && report) {
        bc.lostKilledServer += lost.size;
      } else bc.uncheckedDue += due.size;
    }
  }

  // the verdict
  const atLeastOnce = opts.delivery === 'at-least-once';
  const check = (n, text, always = true) => {
    if (n > 0 && (always || atLeastOnce)) v.violations.push(`${fmt(n)} ${text}`);
  };
  check(c2s.duplicated, 'client → server messages received twice by one server process');
  check(c2s.order, 'client → server order violations');
  check(c2s.corrupt + s2c.corrupt, 'corrupted payloads');
  check(c2s.phantom, 'client → server messages received that their client never sent');
  check(s2c.dups, 'server → client messages received twice by one client');
  check(s2c.order, 'server → client order violations');
  check(req.handledTwice, 'requests whose handler ran twice in one server process');
  check(c2s.redeliveredAfterClose, 'client → server messages redelivered after a graceful server close');
  if (!atLeastOnce) check(c2s.redeliveredAfterKill, 'client → server messages received by two server processes (at-most-once re-sends nothing)');
  check(c2s.lost, 'client → server messages lost', false);
  check(s2c.lost, 'server → client messages lost (checked: graceful server, steady client)', false);
  check(bc.lost, 'broadcasts lost (checked: graceful server, steady client)', false);
  check(anomalies.length, 'process anomalies (crash, hang, failed listen, no quiet)');
  // A send() that returned false must be followed by 'drain' (the soak waits for it).
  const stalled = [...reports.values()].filter((r) => r.blockedMaxMs > 30000).map((r) => r.tag);
  if (stalled.length > 0) v.violations.push(`clients that waited over 30 s for 'drain': ${stalled.join(', ')}`);
  return { c2s, s2c, bc, req, errs, conn, v, sums, reports };
}

/** The client's connects and disconnects around the first lost range, to place it in time. */
function timelineNear(report, lost) {
  if (!report.timeline || lost.list.length === 0) return '';
  const [a] = lost.list[0];
  const before = report.timeline.filter(([, , seq]) => seq < a).slice(-2);
  const after = report.timeline.filter(([, , seq]) => seq >= a).slice(0, 2);
  const show = (list) => list.map(([t, what, seq]) => `${what}@${(t / 1000).toFixed(1)}s/seq ${seq}`).join(', ');
  return `\n      around seq ${a}: before: ${show(before) || '–'}; after: ${show(after) || '–'}`;
}

function codes(counts) {
  const entries = Object.entries(counts).sort((x, y) => y[1] - x[1]);
  return entries.length === 0 ? 'none' : entries.map(([k, n]) => `${k} ${fmt(n)}`).join(', ');
}

function summary(t, minutes) {
  const { c2s, s2c, bc, req, errs, conn, v, sums } = t;
  const killedServers = sums.filter((s) => !s.graceful).length;
  const churn = [...clients.values()].filter((c) => c.role === 'churn');
  const line = (label, value, note = '') => console.log(`  ${label.padEnd(44)} ${String(value).padStart(12)}${note ? `   ${note}` : ''}`);
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  console.log('');
  console.log(`=== soak summary: ${minutes.toFixed(1)} min of traffic, delivery ${opts.delivery}, seed ${opts.seed} ===`);
  console.log(
    `servers: ${sums.length} processes (${restarts.kill} SIGKILLed, ${restarts.term} SIGTERM; ${sums.length - killedServers} ended gracefully)` +
      ` · clients: ${opts.clients} steady, ${churn.length} churning (${churn.filter((c) => c.ending === 'kill').length} SIGKILLed)` +
      ` · stalls (SIGSTOP): ${stalls.server} server, ${stalls.client} steady client`,
  );
  console.log('client → server');
  line('sent (clients not SIGKILLed)', fmt(c2s.sent));
  line('received (distinct)', fmt(c2s.received), `all receipts incl. repeats and killed clients': ${fmt(c2s.receipts)}`);
  line('lost', fmt(c2s.lost), opts.delivery === 'at-most-once' ? '(allowed with at-most-once)' : '');
  line('duplicated (same server process)', fmt(c2s.duplicated));
  line('redelivered after a crash (SIGKILL)', fmt(c2s.redeliveredAfterKill), 'received by two server processes');
  line('redelivered after a graceful close', fmt(c2s.redeliveredAfterClose));
  line('reported undelivered (error event)', fmt(sum(c2s.reported)), codes(c2s.reported));
  line('  … of which arrived anyway', fmt(c2s.reportedArrived));
  line('order violations', fmt(c2s.order));
  line('corrupted', fmt(c2s.corrupt));
  line('of SIGKILLed clients (not checked): sent', `≥ ${fmt(c2s.sentKilled)}`, `received ${fmt(c2s.receivedKilled)}`);
  for (const d of c2s.lostDetail.slice(0, 10)) console.log(`    ${d}`);
  console.log('server → client (send)');
  line('sent', fmt(s2c.sent), `received ${fmt(s2c.received)}`);
  line('checked (graceful server → steady client)', fmt(s2c.checkedSent));
  line('lost (checked)', fmt(s2c.lost), opts.delivery === 'at-most-once' ? '(allowed with at-most-once)' : '');
  line('lost, allowed: server process SIGKILLed', fmt(s2c.lostKilledServer));
  line('not checked (churning/killed clients): sent', fmt(s2c.uncheckedSent), `received ${fmt(s2c.uncheckedReceived)}`);
  line('duplicated / order violations / corrupted', `${s2c.dups} / ${s2c.order} / ${s2c.corrupt}`, 'any server, any client');
  line('server error events', fmt(sum(s2c.reported)), codes(s2c.reported));
  for (const d of s2c.lostDetail.slice(0, 10)) console.log(`    ${d}`);
  console.log('server → client (broadcast)');
  line('broadcasts made', fmt(bc.made), `deliveries due (client connected): ${fmt(bc.due)}, received ${fmt(bc.received)}`);
  line('checked deliveries (graceful server, steady)', fmt(bc.checkedDue));
  line('lost (checked)', fmt(bc.lost));
  line('lost, allowed: server process SIGKILLed', fmt(bc.lostKilledServer));
  line('received while not counted as connected', fmt(bc.extra), '(fine: e.g. a kept session, or in flight)');
  for (const d of bc.lostDetail.slice(0, 10)) console.log(`    ${d}`);
  console.log('requests');
  line('client → server', fmt(sum(req.client)), codes(req.client));
  line('server → client', fmt(sum(req.server)), codes(req.server));
  line('handler ran twice in one server process', fmt(req.handledTwice));
  line('handled by two server processes', fmt(req.handledByTwo), '(a request re-sent to the next server)');
  for (const [k, n] of Object.entries(req.failedWhere).sort((x, y) => y[1] - x[1])) {
    console.log(`    failed client → server requests, ${k}: ${fmt(n)}`);
  }
  for (const e of req.examples) console.log(`      e.g. ${e}`);
  console.log('events');
  line('client error events (per message)', fmt(sum(errs.client)), codes(errs.client));
  line('client disconnects', fmt(sum(conn.clientDisconnects)), codes(conn.clientDisconnects));
  line('client connectErrors', fmt(sum(conn.clientConnectErrors)), codes(conn.clientConnectErrors));
  for (const [k, m] of Object.entries(conn.connectErrorSamples)) {
    if (k !== 'ECONNREFUSED' && k !== 'ENOENT') console.log(`    connectError ${k}, first seen: ${m}`);
  }
  line('client reconnects (steady + churning)', fmt(conn.clientReconnects));
  line('server clientDisconnect', fmt(sum(conn.serverDisconnects)), codes(conn.serverDisconnects));
  line('server clientReconnect', fmt(conn.serverReconnects));
  line('server connectionClose', fmt(sum(conn.serverCloses)), `reasons: ${codes(conn.serverCloses)}`);
  line('server slowClient', fmt(conn.slow));
  const reports = [...t.reports.values()];
  const clientPause = Math.max(0, ...reports.map((r) => r.blockedMaxMs));
  const serverPause = Math.max(0, ...servers.filter((s) => s.stats).map((s) => s.stats.blockedMaxMs));
  line("client sends that returned false", fmt(reports.reduce((n, r) => n + r.drainWaits, 0)), `longest wait for 'drain': ${fmt(clientPause)} ms`);
  line("server: longest wait for 'drain'/drained()", `${fmt(serverPause)} ms`);
  console.log('RSS (MiB)                                   min      max     last');
  for (const role of ['server', 'steady', 'churn']) {
    const r = rssByRole[role];
    if (!r) continue;
    console.log(`  ${role.padEnd(40)} ${mib(r.min).padStart(7)}  ${mib(r.max).padStart(7)}  ${mib(r.last).padStart(7)}`);
  }
  const minutesSeen = Math.max(...Object.values(rssByRole).map((r) => r.perMinute.length), 0);
  if (minutesSeen > 0) {
    console.log(`  max per minute (1..${minutesSeen}):`);
    for (const role of ['server', 'steady', 'churn']) {
      const r = rssByRole[role];
      if (!r) continue;
      console.log(`    ${role.padEnd(7)} ${Array.from({ length: minutesSeen }, (_, i) => (r.perMinute[i] ? mib(r.perMinute[i]) : '–')).join(' ')}`);
    }
    const steady = [...clients.values()].filter((c) => c.role === 'steady' && c.rss.first);
    if (steady.length > 0) {
      console.log(`    steady clients, after 5 s → last: ${steady.map((c) => `${c.spec.tag} ${mib(c.rss.first)}→${mib(c.rss.last)}`).join(', ')}`);
    }
  }
  if (anomalies.length > 0) {
    console.log('anomalies');
    for (const a of anomalies) console.log(`  ${a}`);
  }
  for (const n of v.notes.slice(0, 10)) console.log(`note: ${n}`);
  if (v.violations.length === 0) console.log(`verdict: OK (${opts.delivery})`);
  else {
    console.log(`verdict: FAILED (${opts.delivery})`);
    for (const x of v.violations) console.log(`  - ${x}`);
  }
}

async function main() {
  console.log(
    `soak: ${opts.minutes} min, delivery ${opts.delivery}, seed ${opts.seed}, ${opts.clients} steady + up to ${opts.churn} churning clients, ` +
      `restarts every ${opts.restart ? opts.restart.join('–') + ' s' : 'never'}, stalls every ${opts.stall ? opts.stall.join('–') + ' s' : 'never'}, ` +
      `heartbeat ${opts.heartbeat} ms; files in ${dir}`,
  );
  process.on('SIGINT', () => {
    for (const child of [...servers, ...clients.values()]) if (!child.exited) child.proc.kill('SIGKILL');
    console.log(`\ninterrupted; files left in ${dir}`);
    process.exit(130);
  });

  await startServer();
  for (let i = 1; i <= opts.clients; i++) startClient('steady', `s${i}`);
  const rssTimer = setInterval(sampleRss, 2000);
  const progressTimer = setInterval(progress, 10000);
  const loops = Promise.all([restartLoop(), churnLoop(), stallLoop()]);

  await sleep(opts.minutes * 60000);
  const trafficMinutes = (Date.now() - started) / 60000;
  stopping = true;
  endPauses();
  for (const timer of churnTimers) clearTimeout(timer);
  await loops;
  await restarting;
  if (current.exited) await startServer();

  console.log(`[${elapsed()}] stopping traffic; waiting for quiet`);
  for (const child of [...servers, ...clients.values()]) if (!child.exited && !child.ending) child.proc.send({ type: 'stop' });
  await Promise.all(churnEnds);
  await quiet();
  progress();
  console.log(`[${elapsed()}] closing the clients, then the server`);
  await Promise.all([...clients.values()].map(closeClient));
  current.ending = 'close';
  current.proc.send({ type: 'close' });
  if (!(await exited(current, 15000))) {
    anomaly(`${current.name} did not exit within 15 s of close() at the end; SIGKILLed`);
    current.hung = true;
    current.killedAt = Date.now();
    current.proc.kill('SIGKILL');
    await current.exitPromise;
  }
  sampleRss();
  clearInterval(rssTimer);
  clearInterval(progressTimer);

  const result = tally();
  summary(result, trafficMinutes);
  const failed = result.v.violations.length > 0;
  if (failed || opts.keep) console.log(`logs and reports kept in ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  for (const child of [...servers, ...clients.values()]) if (!child.exited) child.proc.kill('SIGKILL');
  console.error(`files left in ${dir}`);
  process.exit(1);
});
