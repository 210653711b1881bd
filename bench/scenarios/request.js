'use strict';
// Scenario 8: request/response with the library's own request API. The client calls
// request(topic, message) with a 65-byte JSON message; the server's handler returns the message
// it got, which becomes the reply. One run measures two phases on the same connection:
//
//   latency     one request outstanding: the next request() starts in the continuation of the
//               previous one's promise. Warm-up requests are not recorded. p50 and p99 in µs,
//               from just before request() to the code after its `await` (the promise's
//               continuation), as rtt.js measures send() → 'message' listener.
//   throughput  a pipeline of 64 outstanding requests: each reply's continuation starts a new
//               request, so 64 stay in flight. Warm-up replies are not counted; then requests
//               per second over the next `count` replies: count / (time of the last counted reply
//               − time of the last warm-up reply). Requests already in flight when the count is
//               reached are still awaited (and checked) before the run reports.
//
// Every reply is checked against its own request's seq (replies may arrive in any order).
// Run with both ends on one CPU (same) and on two (cross), as rtt. Libraries without a request
// mechanism (no `handle`/`request` in their adapter) are marked unsupported in their adapter.

const { TOPIC, SEQ_BASE, message, now, percentile } = require('../util/workload');

const DEPTH = 64;

// 5,000 warm-up requests, more than rtt's 500 (quick) and 2,000 (full): with fewer, native's p99
// still holds the slow round trips of its first thousands (V8 still optimizing the JS on both
// ends), e.g. ~600-800 µs instead of ~100 µs after 500 on this 2-vCPU VM (same placement).
const SIZES = {
  full: { warmup: 5000, count: 20000, depth: DEPTH, pipeWarmup: 5000, pipeCount: 200000 },
  quick: { warmup: 5000, count: 5000, depth: DEPTH, pipeWarmup: 2000, pipeCount: 50000 },
  smoke: { warmup: 50, count: 200, depth: DEPTH, pipeWarmup: 100, pipeCount: 1000 },
};

const checkReply = (reply, i) =>
  reply && reply.seq === SEQ_BASE + i ? null : `reply ${i}: expected seq ${SEQ_BASE + i}, got ${reply && reply.seq}`;

/** One request outstanding; returns the sorted latencies (ns) of the recorded ones. */
async function latency(client, warmup, count) {
  const samples = new Float64Array(count);
  for (let i = 0; i < warmup + count; i++) {
    const sentAt = now();
    const reply = await client.request(TOPIC, message(i));
    const at = now();
    const problem = checkReply(reply, i);
    if (problem) throw new Error(`latency ${problem}`);
    if (i >= warmup) samples[i - warmup] = at - sentAt;
  }
  return samples.sort();
}

/** `depth` requests outstanding; returns requests per second over `count` replies after `warmup`. */
function throughput(client, depth, warmup, count) {
  return new Promise((resolve, reject) => {
    let issued = 0;
    let completed = 0;
    let inFlight = 0;
    let failed = false;
    let startedAt = warmup === 0 ? now() : 0;
    let rate = NaN;
    const fail = (err) => {
      if (!failed) reject(err);
      failed = true;
    };
    const issue = () => {
      const i = issued++;
      inFlight++;
      client.request(TOPIC, message(i)).then((reply) => {
        inFlight--;
        if (failed) return;
        const problem = checkReply(reply, i);
        if (problem) return fail(new Error(`pipeline ${problem}`));
        completed++;
        if (completed === warmup) startedAt = now();
        else if (completed === warmup + count) rate = (count * 1e9) / (now() - startedAt);
        if (completed < warmup + count) issue();
        else if (inFlight === 0) resolve(rate);
      }, fail);
    };
    for (let k = 0; k < depth; k++) issue();
  });
}

module.exports = {
  name: 'request',
  title: 'request/response, 65 B JSON: 1 outstanding (latency) and 64 outstanding (throughput)',
  metrics: [
    { key: 'p50', label: 'p50 µs', better: 'lower', digits: 1 },
    { key: 'p99', label: 'p99 µs', better: 'lower', digits: 1 },
    { key: 'rate', label: `req/s (${DEPTH} outstanding)`, better: 'higher' },
  ],
  placements: ['same', 'cross'],

  variants: (mode) => [{ id: '', params: SIZES[mode] }],
  timeoutMs: (mode) => (mode === 'full' ? 90000 : 30000),
  describe: (p) =>
    `${p.warmup.toLocaleString('en-US')} + ${p.count.toLocaleString('en-US')} at 1 outstanding; ` +
    `${p.pipeWarmup.toLocaleString('en-US')} + ${p.pipeCount.toLocaleString('en-US')} at ${p.depth}`,

  async orchestrate(run) {
    return run.serverThenClient('client');
  },

  roles: {
    async server(ctx, lib) {
      const server = await lib.listen(ctx.socketPath, { pattern: 'request' });
      server.handle(TOPIC, (msg) => msg);
      ctx.send('ready');
    },

    async client(ctx, lib) {
      const { warmup, count, depth, pipeWarmup, pipeCount } = ctx.params;
      const client = await lib.connect(ctx.socketPath, { pattern: 'request' });
      ctx.send('ready');
      await ctx.waitFor('start');

      const samples = await latency(client, warmup, count);
      const us = (p) => percentile(samples, p) / 1e3;
      const rate = await throughput(client, depth, pipeWarmup, pipeCount);
      ctx.send('result', { p50: us(50), p99: us(99), rate });
    },
  },
};
