'use strict';
// The backend process: the work the Electron app keeps out of its main process (and so out of
// the UI's way). It listens on the socket main.js chose and answers 'job' requests, pushing
// 'progress' messages to the asker while a job runs.
//
// Started by main.js with child_process.fork() here; in Electron, with utilityProcess.fork()
// (see README.md). Both give it the same Node.js environment, so this file is the same in both.

const { Server } = require('native-socket-ipc');

const socketFile = process.env.BACKEND_SOCKET;
const secret = process.env.BACKEND_SECRET;
if (!socketFile || !secret) {
  console.error('backend.js is started by main.js, which sets BACKEND_SOCKET and BACKEND_SECRET');
  process.exit(2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Only main.js knows the secret (it made it up and handed it over in the environment), and the
// endpoint is private to this user (localEndpoint: a 0700 directory, or on Windows a pipe only
// its creator may write to): no other process can ask the backend for anything.
const server = new Server({ socketFile, secret });

// A job: add up the squares of job.numbers, one step per number, reporting progress. A real
// backend would index files, talk to a database, run a model...
server.handle('job', async (job, clientId) => {
  let total = 0;
  for (let i = 0; i < job.numbers.length; i++) {
    await sleep(job.stepMs);
    total += job.numbers[i] ** 2;
    server.send('progress', { id: job.id, done: i + 1, of: job.numbers.length }, clientId);
  }
  return { id: job.id, total, pid: process.pid };
});

server.on('message.quit', () => server.close());
server.on('listening', () => console.log(`backend ${process.pid}: listening`));
server.on('error', (err) => {
  console.error(`backend ${process.pid}: ${err.code}: ${err.message}`);
  process.exitCode = 1;
  server.close();
});

// If main goes away without telling us (it crashed), do not linger as an orphan. A
// child_process.fork() child sees its IPC channel close; Electron kills a utility process
// together with the app anyway.
if (typeof process.send === 'function') process.on('disconnect', () => server.close());
// Closed: let go of that channel too, so the process can exit.
server.on('close', () => process.connected && process.disconnect());

server.listen();
