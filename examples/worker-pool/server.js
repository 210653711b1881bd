'use strict';
// A worker pool: this server starts N worker processes (worker.js), which connect to it, and
// hands them jobs with server.request(clientId, 'job', job). Each job goes to the least busy
// worker (fewest jobs in flight, at most --concurrency each). A worker that dies mid-job fails
// that request with ERR_IPC_DISCONNECTED: the job goes back to the front of the queue and a
// replacement worker is started. Prints each result, then a summary, and exits 0.
//
//   node examples/worker-pool/server.js [--workers 3] [--jobs 12] [--concurrency 2]
//                                       [--socket <path>] [--no-crash]
//
// To show the recovery, job 3's first run makes its worker kill itself (--no-crash: it does not).

const { fork } = require('node:child_process');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { Server, localEndpoint } = require('native-socket-ipc');

const { values } = parseArgs({
  options: {
    workers: { type: 'string' },
    jobs: { type: 'string' },
    concurrency: { type: 'string' },
    socket: { type: 'string' },
    'no-crash': { type: 'boolean' },
  },
});
const WORKERS = Number(values.workers || 3);
const JOBS = Number(values.jobs || 12);
const CONCURRENCY = Number(values.concurrency || 2);
const CRASH_JOB = values['no-crash'] ? null : 3;
const MAX_ATTEMPTS = 3;
// Workers that may die (and be replaced) before the pool gives up.
const MAX_REPLACEMENTS = 5;

// The same code on every platform: a named pipe on Windows, a socket in a private directory
// elsewhere; the pid keeps two pools apart.
const socketFile = values.socket || localEndpoint(`pool-${process.pid}`);
const log = (text) => console.log(text);

const jobs = Array.from({ length: JOBS }, (_, i) => ({ id: i + 1, limit: 100000 + 25000 * i, attempts: 0 }));
const queue = jobs.slice();
const results = new Map(); // job id -> { primes, pid }
const children = new Map(); // pid -> ChildProcess of a worker we started
const workers = new Map(); // clientId -> { clientId, pid, busy }
let requeued = 0;
let replacements = 0;
let finished = false;

const server = new Server({ socketFile });

function startWorker() {
  const child = fork(path.join(__dirname, 'worker.js'), [socketFile], { stdio: 'inherit' });
  children.set(child.pid, child);
  child.on('exit', (code, signal) => {
    children.delete(child.pid);
    if (finished) return;
    if (replacements >= MAX_REPLACEMENTS) {
      fail(new Error(`workers died ${replacements + 1} times; giving up`));
      return;
    }
    replacements++;
    log(`worker ${child.pid} exited (${signal || `code ${code}`}); starting a replacement`);
    startWorker();
  });
}

// A connection is a worker once we know it is one of ours: the kernel tells its pid.
server.on('connection', (clientId) => {
  const info = server.clientInfo(clientId);
  if (info === undefined || !children.has(info.pid)) return; // not one of our workers
  if (finished) {
    server.send('stop', null, clientId); // a replacement that came too late
    return;
  }
  workers.set(clientId, { clientId, pid: info.pid, busy: 0 });
  log(`worker ${info.pid} ready`);
  dispatch();
});
server.on('connectionClose', (clientId) => workers.delete(clientId));

/** The connected worker with the fewest jobs in flight, if one has room. */
function leastBusy() {
  let best = null;
  for (const worker of workers.values()) {
    if (worker.busy < CONCURRENCY && (best === null || worker.busy < best.busy)) best = worker;
  }
  return best;
}

function dispatch() {
  while (!finished && queue.length > 0) {
    const worker = leastBusy();
    if (worker === null) return;
    run(worker, queue.shift());
  }
}

async function run(worker, job) {
  job.attempts++;
  worker.busy++;
  try {
    const message = { id: job.id, limit: job.limit, crash: job.id === CRASH_JOB && job.attempts === 1 };
    const result = await server.request(worker.clientId, 'job', message, { timeout: 30000 });
    results.set(job.id, { primes: result.primes, pid: worker.pid });
    log(`job ${job.id}: ${result.primes} primes below ${job.limit} (worker ${worker.pid})`);
  } catch (err) {
    // The worker died (or left) with the job: run it again elsewhere. A job must therefore be
    // safe to run twice; it may have finished just before its worker died.
    const lost = err.code === 'ERR_IPC_DISCONNECTED' || err.code === 'ERR_IPC_UNKNOWN_CLIENT';
    if (!lost || job.attempts >= MAX_ATTEMPTS) {
      fail(err);
      return;
    }
    requeued++;
    log(`job ${job.id}: worker ${worker.pid} died with it (${err.code}); re-queued`);
    queue.unshift(job);
  } finally {
    worker.busy--;
  }
  if (results.size === jobs.length) finish();
  else dispatch();
}

async function finish() {
  finished = true;
  // Per process, not per slot: a worker that died was replaced by a new process (a new pid), and
  // a process that joined late may have found the queue empty.
  const perWorker = new Map();
  for (const { pid } of results.values()) perWorker.set(pid, (perWorker.get(pid) || 0) + 1);
  const started = WORKERS + replacements;
  const shares = [...perWorker].map(([pid, count]) => `${count} by worker ${pid}`).join(', ');
  log(`all ${jobs.length} jobs done (${shares}); ${started} worker processes started in all, ${requeued} jobs re-queued after a worker died`);
  await stop();
}

async function fail(err) {
  if (finished) return;
  finished = true;
  console.error(`pool failed: ${err.code || ''} ${err.message}`);
  process.exitCode = 1;
  await stop();
}

/** Tells the workers to stop, waits for them, then closes the server. */
async function stop() {
  const exits = [...children.values()].map((child) => new Promise((resolve) => child.once('exit', resolve)));
  server.broadcast('stop');
  const timer = setTimeout(() => children.forEach((child) => child.kill('SIGKILL')), 5000);
  await Promise.all(exits);
  clearTimeout(timer);
  server.close();
  await new Promise((resolve) => server.once('close', resolve));
}

server.on('error', (err) => fail(err));
server.on('listening', () => {
  log(`pool: ${JOBS} jobs, ${WORKERS} workers, at most ${CONCURRENCY} jobs in flight per worker`);
  for (let i = 0; i < WORKERS; i++) startWorker();
});
server.listen();
