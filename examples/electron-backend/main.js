'use strict';
// The Electron main process, played by plain Node so that it runs (and is tested) anywhere:
// `node examples/electron-backend/main.js`. It starts backend.js as a child process, hands it
// jobs by request/response and shows their progress, and survives the backend crashing: here it
// kills the backend with SIGKILL in the middle of job 2 (pass --no-crash to skip that), restarts
// it, reconnects and runs job 2 again. Exits 0 when every job is done.
//
// In Electron the only change is how the backend is started (startBackend below, and README.md):
//   const { utilityProcess } = require('electron');
//   utilityProcess.fork(BACKEND, [], { env, serviceName: 'backend', stdio: 'inherit' })
// after app.whenReady(), instead of child_process.fork(BACKEND, [], { env }).

const { fork } = require('node:child_process');
const crypto = require('node:crypto');
const path = require('node:path');
const { Client, localEndpoint } = require('native-socket-ipc');

const BACKEND = path.join(__dirname, 'backend.js');
const crashOnce = !process.argv.includes('--no-crash');
// Restarts allowed within a minute before main gives up on the backend.
const MAX_RESTARTS = 5;

const log = (text) => console.log(`main: ${text}`);

// Where the backend listens, the same code on every platform: a named pipe on Windows, a socket
// file in a directory only this user can enter elsewhere (see localEndpoint in the README). The
// pid keeps two running copies of the app apart. And a secret only main and its backend know.
const socketFile = localEndpoint(`backend-${process.pid}`);
const secret = crypto.randomBytes(32).toString('hex');

// ----- the backend process -----

let backend = null;
let quitting = false;
const restarts = [];

function startBackend() {
  const env = { ...process.env, BACKEND_SOCKET: socketFile, BACKEND_SECRET: secret };
  // Electron: utilityProcess.fork(BACKEND, [], { env, serviceName: 'backend', stdio: 'inherit' }).
  // Its 'exit' event gives only the exit code; kill() and pid work the same.
  const child = fork(BACKEND, [], { env, stdio: 'inherit' });
  log(`started backend ${child.pid}`);
  child.on('exit', (code, signal) => {
    if (quitting) return;
    log(`backend ${child.pid} exited (${signal || `code ${code}`}); restarting it`);
    const now = Date.now();
    restarts.push(now);
    while (restarts[0] < now - 60000) restarts.shift();
    if (restarts.length > MAX_RESTARTS) {
      log(`the backend failed ${restarts.length} times in a minute; giving up`);
      process.exitCode = 1;
      shutdown();
      return;
    }
    backend = startBackend();
  });
  return child;
}

// ----- the connection -----

// The client reconnects by itself whenever the backend comes back: it retries until the new
// backend listens (on Unix the new one's listen() reclaims the crashed one's stale socket file;
// a Windows pipe vanishes with its server).
const client = new Client({
  socketFile,
  secret,
  retryDelay: { min: 20, max: 500, factor: 2 },
  reconnectDelay: { min: 20, max: 500, factor: 2 },
  // A backend stopped dead (not crashed) is noticed within 2 s.
  heartbeatInterval: 1000,
});
let connected = false;
client.on('connect', () => {
  connected = true;
  log('connected to the backend');
});
client.on('reconnect', () => log('reconnected to the restarted backend'));
client.on('disconnect', () => {
  connected = false;
  log('lost the backend');
});
client.on('error', (err) => log(`client error: ${err.code}: ${err.message}`));

const whenConnected = () => (connected ? Promise.resolve() : new Promise((resolve) => client.once('connect', resolve)));

// Progress pushed by the backend while a job runs. In Electron: forward it to the window,
// e.g. win.webContents.send('job-progress', progress).
client.on('message.progress', (progress) => {
  log(`job ${progress.id}: ${progress.done}/${progress.of}`);
  if (crashOnce && progress.id === 2 && progress.done === 2 && !crashed) {
    crashed = true;
    log(`simulating a crash: kill -9 backend ${backend.pid}`);
    process.kill(backend.pid, 'SIGKILL');
  }
});
let crashed = false;

/**
 * Runs a job on the backend. If the backend dies while it runs, the request fails with
 * ERR_IPC_DISCONNECTED (it may or may not have finished), so the job, which may safely run
 * twice, is sent again once the restarted backend is connected.
 */
async function runJob(job, attempts = 3) {
  for (let attempt = 1; ; attempt++) {
    await whenConnected();
    try {
      return await client.request('job', job, { timeout: 10000 });
    } catch (err) {
      if (err.code !== 'ERR_IPC_DISCONNECTED' || attempt === attempts) throw err;
      log(`job ${job.id} was interrupted (${err.code}); running it again on the restarted backend`);
    }
  }
}

async function shutdown() {
  if (quitting) return;
  quitting = true;
  const exited = backend && backend.exitCode === null && backend.signalCode === null ? new Promise((resolve) => backend.once('exit', resolve)) : null;
  // Ask the backend to stop; close() sends it before disconnecting.
  if (connected) client.send('quit');
  client.close();
  await new Promise((resolve) => client.once('close', resolve));
  if (exited) {
    const timer = setTimeout(() => {
      log('the backend did not stop within 3 s; killing it');
      backend.kill('SIGKILL');
    }, 3000);
    await exited;
    clearTimeout(timer);
  }
  log('backend stopped');
}

async function main() {
  log(`backend socket: ${socketFile}`);
  backend = startBackend();
  client.connect();
  const jobs = [1, 2, 3].map((id) => ({ id, numbers: Array.from({ length: 5 }, (_, i) => id * 10 + i), stepMs: 30 }));
  for (const job of jobs) {
    const result = await runJob(job);
    log(`job ${result.id} done: total ${result.total} (backend ${result.pid})`);
  }
  log('all jobs done');
  await shutdown();
}

main().catch(async (err) => {
  log(`failed: ${err.code || ''} ${err.message}`);
  process.exitCode = 1;
  await shutdown();
});
