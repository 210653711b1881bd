'use strict';
// The orchestrator's side of one run: starting the server and client processes (pinned with
// taskset by placement), talking to them, noticing when one fails, and killing them all at the
// end. Every process a run starts is in `run.children` and is killed by `run.close()`.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fork, spawn, execFileSync } = require('node:child_process');

const CHILD = path.join(__dirname, '..', 'child.js');
const STDERR_TAIL = 4096;

/** Which CPU a role runs on: the server on CPU 0; clients on CPU 1 (cross) or 0 (same). */
function cpuFor(placement, role) {
  if (placement === 'none') return null;
  if (placement === 'same') return '0';
  return role === 'server' ? '0' : '1';
}

/** Messages from one child process, by type, in order; and how it ended. */
class Child {
  constructor(proc, label, onFailure) {
    this.proc = proc;
    this.label = label;
    this.queues = new Map(); // type -> data[] not yet waited for
    this.waiters = new Map(); // type -> { resolve, reject }[]
    this.failure = null;
    this.exited = false;
    this.expectExit = false; // a program that ends by itself when done (kernel_copy)
    this.closing = false; // set by run.close(): exits from now on are no failure
    this.cpus = undefined; // Cpus_allowed_list, read at the first message
    this.stderr = '';
    this.onFailure = onFailure;
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (text) => {
      this.stderr = (this.stderr + text).slice(-STDERR_TAIL);
    });
    proc.on('error', (err) => this.fail(new Error(`${label}: ${err.message}`)));
    proc.on('exit', (code, signal) => {
      this.exited = true;
      if (this.expectExit && code === 0) return;
      const tail = this.stderr.trim().split('\n').slice(-3).join(' | ');
      this.fail(new Error(`${label} exited (${signal || `code ${code}`})${tail ? `: ${tail}` : ''}`));
    });
  }

  /** Called for each message the child sends: { type, data }. */
  receive({ type, data }) {
    // By its first message the process runs the real program (taskset has exec'd it): record
    // the CPUs it may run on, so the results show the placement that was in effect.
    if (this.cpus === undefined) this.cpus = allowedCpus(this.proc.pid);
    if (type === 'error') {
      this.fail(new Error(`${this.label}: ${data.message}`), data.stack);
      return;
    }
    const waiting = this.waiters.get(type);
    if (waiting && waiting.length > 0) waiting.shift().resolve(data);
    else {
      if (!this.queues.has(type)) this.queues.set(type, []);
      this.queues.get(type).push(data);
    }
  }

  fail(err, detail) {
    if (this.failure || this.closing) return;
    if (detail) err.detail = detail;
    this.failure = err;
    for (const list of this.waiters.values()) for (const w of list) w.reject(err);
    this.waiters.clear();
    this.onFailure(err);
  }

  /** The next message of `type` from this child (already received or still to come). */
  waitFor(type) {
    const queued = this.queues.get(type);
    if (queued && queued.length > 0) return Promise.resolve(queued.shift());
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      if (!this.waiters.has(type)) this.waiters.set(type, []);
      this.waiters.get(type).push({ resolve, reject });
    });
  }

  send(type, data) {
    if (this.proc.connected) this.proc.send({ type, data });
  }

  get pid() {
    return this.proc.pid;
  }
}

class Run {
  /**
   * @param {object} spec  { scenario, lib, placement, params, prepared }
   */
  constructor(spec) {
    this.spec = spec;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsb-'));
    this.socketPath = path.join(this.dir, 's.sock');
    this.children = [];
    // Rejects when any process fails (throws, exits early), so a run never waits for a result
    // that cannot come. Nobody may be listening yet: mark it handled.
    this.failure = new Promise((_, reject) => {
      this.rejectFailure = reject;
    });
    this.failure.catch(() => {});
  }

  /** argv prefix that pins a process to the role's CPU, or runs it as is. */
  pinned(role, command, args) {
    const cpu = cpuFor(this.spec.placement, role);
    return cpu === null ? [command, args] : ['taskset', ['-c', cpu, command, ...args]];
  }

  /** Forks bench/child.js as `role` (server/client) of this run's scenario and library. */
  /**
   * The common shape of a two-process run: fork the server, then the client, wait until both
   * are ready, tell the client to start, and resolve with the `result` that `reporter`
   * ('server' or 'client') sends.
   */
  async serverThenClient(reporter) {
    const server = this.fork('server');
    await server.waitFor('ready');
    const client = this.fork('client');
    await client.waitFor('ready');
    client.send('start');
    return (reporter === 'client' ? client : server).waitFor('result');
  }

  fork(role, index = 0, extra = {}) {
    const { scenario, lib, params, placement } = this.spec;
    const spec = { scenario, lib, role, index, params, extra, placement, socketPath: this.socketPath };
    const cpu = cpuFor(placement, role);
    const proc = fork(CHILD, [JSON.stringify(spec)], {
      // fork() runs `execPath ...execArgv child.js`; with taskset as execPath, taskset pins and
      // then execs node, which keeps the pid and the inherited IPC channel.
      execPath: cpu === null ? process.execPath : 'taskset',
      execArgv: cpu === null ? [] : ['-c', cpu, process.execPath],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const child = new Child(proc, `${role}${role === 'client' ? ` ${index}` : ''}`, (err) => this.rejectFailure(err));
    proc.on('message', (msg) => child.receive(msg));
    this.children.push(child);
    return child;
  }

  /**
   * Starts a non-Node program as `role`. Each JSON line it prints on stdout becomes a message:
   * {"ready":true} is 'ready', anything else 'result'. It may exit 0 when done.
   */
  spawn(role, command, args) {
    const [cmd, argv] = this.pinned(role, command, args);
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const child = new Child(proc, role, (err) => this.rejectFailure(err));
    child.expectExit = true;
    let pending = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (text) => {
      const lines = (pending + text).split('\n');
      pending = lines.pop();
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          const data = JSON.parse(line);
          child.receive({ type: data.ready ? 'ready' : 'result', data });
        } catch {
          child.fail(new Error(`${role} printed something that is not JSON: ${line.slice(0, 80)}`));
        }
      }
    });
    this.children.push(child);
    return child;
  }

  /** Which CPUs each role's processes were allowed to use, e.g. { server: '0', client: '1' }. */
  affinity() {
    const byRole = {};
    for (const child of this.children) {
      if (!child.cpus) continue;
      const role = child.label.split(' ')[0];
      byRole[role] = [...new Set([...(byRole[role] ? byRole[role].split(' ') : []), child.cpus])].join(' ');
    }
    return byRole;
  }

  /** Sends `type` to every child in `children`. */
  tell(children, type, data) {
    for (const child of children) child.send(type, data);
  }

  /** Asks every process to exit, kills what is left after `graceMs`, removes the socket dir. */
  async close(graceMs = 300) {
    const alive = this.children.filter((c) => !c.exited);
    for (const child of this.children) child.closing = true;
    for (const child of alive) child.send('stop');
    const deadline = Date.now() + graceMs;
    while (alive.some((c) => !c.exited) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const child of alive) {
      if (!child.exited) child.proc.kill('SIGKILL');
    }
    // Wait (briefly) for the kills to land, so the next run starts on a quiet machine.
    const killDeadline = Date.now() + 2000;
    while (alive.some((c) => !c.exited) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 10));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The Cpus_allowed_list of a process ("0", "0-1"), or null if it cannot be read. */
function allowedCpus(pid) {
  try {
    const match = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? match[1] : null;
  } catch {
    return null;
  }
}

let clockTicks = null;
/** Clock ticks per second of /proc times (USER_HZ), usually 100. */
function ticksPerSecond() {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * CPU seconds so far: `busy` for the whole machine (/proc/stat, steal excluded) and `ours` for
 * this process plus its reaped children (/proc/self/stat utime+stime+cutime+cstime). Every
 * process of a run is a reaped child once run.close() returns, so between two snapshots
 * busy − ours is what other programs on the machine used: the noise a run suffered.
 */
function cpuSnapshot() {
  try {
    const hz = ticksPerSecond();
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq] = cpu;
    const self = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number);
    const ours = fields[11] + fields[12] + fields[13] + fields[14];
    return { busy: (user + nice + system + irq + softirq) / hz, ours: ours / hz };
  } catch {
    return null; // not Linux
  }
}

/** VmRSS of a process in bytes, from /proc/<pid>/status. */
function rssOf(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

module.exports = { Run, rssOf, cpuFor, cpuSnapshot };
