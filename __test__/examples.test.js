'use strict';
// The examples in examples/ run as a user runs them (`node examples/<name>/<file>.js`), as child
// processes with deadlines, and do what their READMEs say.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { socketPath, until } = require('./helpers');
const { localEndpoint } = require('..');

const T = { timeout: 60000 };
const EXAMPLES = path.join(__dirname, '..', 'examples');

/** Starts `node examples/<file> ...args` with piped stdio; killed when the test ends. */
function spawnExample(t, file, args = []) {
  const child = spawn(process.execPath, [path.join(EXAMPLES, file), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.out = '';
  child.err = '';
  child.stdout.on('data', (d) => (child.out += d));
  child.stderr.on('data', (d) => (child.err += d));
  child.exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

/** How the child exited; fails if it runs longer than `ms`. */
async function exitOf(child, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not exit within ${ms} ms; stdout:\n${child.out}\nstderr:\n${child.err}`)), ms);
  });
  try {
    return await Promise.race([child.exited, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until the child's stdout matches `pattern`; returns the match. */
async function output(child, pattern, what, ms = 15000) {
  await until(() => pattern.test(child.out), ms, `${what}; stdout so far:\n${child.out}\nstderr:\n${child.err}`);
  return pattern.exec(child.out);
}

const isAlive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code !== 'ESRCH';
  }
};

test('electron-backend: main runs jobs on the backend with progress, restarts it after kill -9, reconnects, finishes the jobs and exits 0', T, async (t) => {
  const main = spawnExample(t, 'electron-backend/main.js');
  const exit = await exitOf(main, 45000, 'main.js');
  assert.deepEqual(exit, { code: 0, signal: null }, `stdout:\n${main.out}\nstderr:\n${main.err}`);
  const out = main.out;

  // Each job's answer: the sum of the squares of id*10 .. id*10+4.
  const total = (id) => Array.from({ length: 5 }, (_, i) => (id * 10 + i) ** 2).reduce((a, b) => a + b, 0);
  const done = new Map([...out.matchAll(/^main: job (\d+) done: total (\d+) \(backend (\d+)\)$/gm)].map((m) => [Number(m[1]), { total: Number(m[2]), pid: Number(m[3]) }]));
  assert.deepEqual([...done.keys()], [1, 2, 3], 'every job finished once, in order');
  for (const [id, { total: got }] of done) assert.equal(got, total(id), `job ${id}'s total`);
  for (let done = 1; done <= 5; done++) assert.match(out, new RegExp(`^main: job 1: ${done}/5$`, 'm'), 'progress was pushed while the job ran');

  const killed = Number(/^main: simulating a crash: kill -9 backend (\d+)$/m.exec(out)[1]);
  // Windows has no signals: a killed process reports exit code 1 there.
  const how = process.platform === 'win32' ? 'code 1' : 'SIGKILL';
  assert.match(out, new RegExp(`^main: backend ${killed} exited \\(${how}\\); restarting it$`, 'm'));
  assert.match(out, /^main: job 2 was interrupted \(ERR_IPC_DISCONNECTED\); running it again on the restarted backend$/m);
  assert.match(out, /^main: reconnected to the restarted backend$/m);
  assert.equal(done.get(1).pid, killed, 'job 1 ran on the first backend');
  assert.notEqual(done.get(2).pid, killed, 'job 2 finished on the restarted backend');
  assert.match(out, /^main: all jobs done\nmain: backend stopped\n$/m);

  const socketFile = /^main: backend socket: (.+)$/m.exec(out)[1];
  assert.equal(socketFile, localEndpoint(`backend-${main.pid}`), "the endpoint is localEndpoint's, named after main's pid");
  assert.equal(fs.existsSync(socketFile), false, 'the backend removed its socket file when it closed');
  const started = [...out.matchAll(/^main: started backend (\d+)$/gm)].map((m) => Number(m[1]));
  assert.equal(started.length, 2, 'one backend, restarted once');
  for (const pid of started) assert.equal(isAlive(pid), false, `backend ${pid} is gone`);
});

/** The number of primes below `limit`, computed here to check the workers' answers. */
function countPrimes(limit) {
  let count = 0;
  for (let n = 2; n < limit; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return count;
}

test('worker-pool: jobs go to N workers by request, a job whose worker died is re-queued, every result is right, exit 0', T, async (t) => {
  const socketFile = socketPath(t);
  const jobs = 8;
  const pool = spawnExample(t, 'worker-pool/server.js', ['--workers', '3', '--jobs', String(jobs), '--socket', socketFile]);
  const exit = await exitOf(pool, 45000, 'worker-pool/server.js');
  assert.deepEqual(exit, { code: 0, signal: null }, `stdout:\n${pool.out}\nstderr:\n${pool.err}`);
  const out = pool.out;

  const results = [...out.matchAll(/^job (\d+): (\d+) primes below (\d+) \(worker (\d+)\)$/gm)].map((m) => ({
    id: Number(m[1]),
    primes: Number(m[2]),
    limit: Number(m[3]),
    pid: Number(m[4]),
  }));
  assert.deepEqual(results.map((r) => r.id).sort((a, b) => a - b), Array.from({ length: jobs }, (_, i) => i + 1), 'each job has exactly one result');
  for (const r of results) assert.equal(r.primes, countPrimes(r.limit), `job ${r.id}'s answer`);

  const died = /^job 3: worker (\d+) died with it \(ERR_IPC_DISCONNECTED\); re-queued$/m.exec(out);
  assert.ok(died, `job 3's worker died and the job was re-queued:\n${out}`);
  const how = process.platform === 'win32' ? 'code 1' : 'SIGKILL'; // no signals on Windows
  assert.match(out, new RegExp(`^worker ${died[1]} exited \\(${how}\\); starting a replacement$`, 'm'));
  assert.notEqual(results.find((r) => r.id === 3).pid, Number(died[1]), 'job 3 finished on another worker');
  // The summary names each process's share, which adds up to the results printed above.
  const summary = new RegExp(`^all ${jobs} jobs done \\((.+)\\); (\\d+) worker processes started in all, ([1-9]\\d*) jobs re-queued after a worker died$`, 'm').exec(out);
  assert.ok(summary, `the summary line:\n${out}`);
  const shares = [...summary[1].matchAll(/(\d+) by worker (\d+)/g)].map((m) => [Number(m[2]), Number(m[1])]);
  const perPid = new Map();
  for (const r of results) perPid.set(r.pid, (perPid.get(r.pid) || 0) + 1);
  assert.deepEqual(new Map(shares), perPid, 'each worker\'s share is the count of its results');
  assert.equal(Number(summary[2]), 3 + 1, 'three workers, and one replacement for the one that died');
  assert.equal(fs.existsSync(socketFile), false, 'the server removed its socket file');
  const ready = [...out.matchAll(/^worker (\d+) ready$/gm)].map((m) => Number(m[1]));
  for (const pid of ready) assert.equal(isAlive(pid), false, `worker ${pid} is gone`);
});

test("chat: two clients driven through stdin each see the other's line (not their own), then exit 0 at end of input", { ...T, skip: process.platform === 'win32' && 'the chat server stops on SIGINT, which Windows cannot send to another process' }, async (t) => {
  const socketFile = socketPath(t);
  const server = spawnExample(t, 'chat/server.js', [socketFile]);
  await output(server, /^chat server listening on /m, 'the chat server listening');

  const ada = spawnExample(t, 'chat/client.js', ['ada', socketFile]);
  await output(ada, /^\* joined as ada; online: ada$/m, 'ada joined');
  const bob = spawnExample(t, 'chat/client.js', ['bob', socketFile]);
  await output(bob, /^\* joined as bob; online: ada, bob$/m, 'bob joined');
  await output(ada, /^\* bob joined$/m, 'ada hears that bob joined');

  ada.stdin.write('hello from ada\n');
  await output(bob, /^\[ada\] hello from ada$/m, "bob sees ada's line");
  bob.stdin.write('hi ada, bob here\n');
  await output(ada, /^\[bob\] hi ada, bob here$/m, "ada sees bob's line");
  // A line typed last, right before the end of input, is still delivered.
  ada.stdin.end('bye\n');
  await output(bob, /^\[ada\] bye$/m, "bob sees ada's last line");
  assert.deepEqual(await exitOf(ada, 10000, 'ada'), { code: 0, signal: null }, ada.err);
  await output(bob, /^\* ada left$/m, 'bob hears that ada left');
  bob.stdin.end();
  assert.deepEqual(await exitOf(bob, 10000, 'bob'), { code: 0, signal: null }, bob.err);

  assert.doesNotMatch(ada.out, /^\[ada\]/m, 'ada does not get her own lines back');
  assert.doesNotMatch(bob.out, /^\[bob\]/m, 'bob does not get his own lines back');
  await output(server, /^bob left$/m, 'the server saw bob leave');
  server.kill('SIGINT');
  assert.deepEqual(await exitOf(server, 10000, 'the chat server'), { code: 0, signal: null }, server.err);
  assert.equal(fs.existsSync(socketFile), false, 'the server removed its socket file');
});
