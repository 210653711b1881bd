'use strict';
// One worker of the pool: connects to the pool's server and answers its 'job' requests. It
// counts the primes below job.limit, a stand-in for any CPU-bound task.

const { Client } = require('native-socket-ipc');

const socketFile = process.argv[2];
if (!socketFile) {
  console.error('usage: node worker.js <socketFile>   (started by server.js)');
  process.exit(2);
}

function countPrimes(limit) {
  const composite = new Uint8Array(limit);
  let count = 0;
  for (let n = 2; n < limit; n++) {
    if (composite[n]) continue;
    count++;
    for (let m = n * n; m < limit; m += n) composite[m] = 1;
  }
  return count;
}

// Give up quickly if the server is not there: a worker has nothing to do without it.
const client = new Client({ socketFile, maxRetries: 20, retryDelay: 50 });

client.handle('job', (job) => {
  // The pool's demonstration of a crash: die mid-job, as a segfault or an OOM kill would.
  if (job.crash) process.kill(process.pid, 'SIGKILL');
  return { id: job.id, primes: countPrimes(job.limit) };
});

// The pool is finished (or gone): stop. Closing the only connection lets the process exit.
client.on('message.stop', () => client.close());
client.on('disconnect', () => client.close());
client.on('error', (err) => {
  console.error(`worker ${process.pid}: ${err.code}: ${err.message}`);
  process.exitCode = 1;
});

client.connect();
