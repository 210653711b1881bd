'use strict';
// The bystander: a well-behaved application client on the server under attack. It uses the
// library's own Client with default options and asks 'echo' every 10 ms for the whole flood
// and rest, each request on its own (it does not wait for the previous reply, so a stalled
// server shows as the latency it really caused). Spec: { socketPath, padBytes }.
//
// Commands: 'start'; 'stop' -> stops asking, waits for the outstanding replies (at most a
// little longer than requestTimeout), replies with the figures and exits.
// Errors: any 'error', 'disconnect' or rejected request. Lost: a request still unsettled at the
// end, or a reply that is not the echo of its own request.

const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { spec, onCommand, reply, replyAndExit, bump } = require('./child');
const { Client } = require(path.join(__dirname, '..', '..'));

const EVERY_MS = 10;
const SETTLE_MS = 6000; // requestTimeout (5000 by default) plus margin: by then every request has settled

const pad = 'p'.repeat(spec.padBytes || 256);
const client = new Client({ socketFile: spec.socketPath });
const errors = {};
const latencies = [];
const outstanding = new Set();
let sent = 0;
let mismatched = 0;
let timer = null;

client.on('error', (err) => bump(errors, `error ${err.code}`));
client.on('disconnect', (reason) => bump(errors, `disconnect ${reason ? reason.code : ''}`.trim()));

function ask() {
  const seq = ++sent;
  const t0 = performance.now();
  outstanding.add(seq);
  client.request('echo', { seq, pad }).then(
    (echo) => {
      outstanding.delete(seq);
      if (!echo || echo.seq !== seq || echo.pad !== pad) mismatched++;
      else latencies.push(performance.now() - t0);
    },
    (err) => {
      outstanding.delete(seq);
      bump(errors, `request ${err.code}`);
    },
  );
}

async function stop() {
  clearInterval(timer);
  const deadline = Date.now() + SETTLE_MS;
  while (outstanding.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  latencies.sort((a, b) => a - b);
  const pick = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null);
  const result = {
    sent,
    replies: latencies.length,
    errors,
    errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
    lost: outstanding.size + mismatched,
    p50Ms: pick(0.5),
    p99Ms: pick(0.99),
    worstMs: latencies.length ? latencies[latencies.length - 1] : null,
  };
  client.close();
  replyAndExit('stop', result);
}

onCommand({
  start: () => {
    timer = setInterval(ask, EVERY_MS);
  },
  stop,
});

client.once('connect', () => reply('ready', {}));
client.connect();
