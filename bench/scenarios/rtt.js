'use strict';
// Scenario 3: round-trip latency with one message outstanding. The client sends a 65-byte JSON
// message, the server's listener sends it straight back to that client, and the client's
// listener sends the next one. Warm-up round trips are not recorded. Reported per run: p50,
// p99 and p99.9 in microseconds, from just before send() to the reply reaching the listener.
// Run with both ends on one CPU (same: pure software cost) and on two (cross: adds wake-ups).

const { TOPIC, SEQ_BASE, message, now, percentile } = require('../util/workload');

// Warm-up as long as request.js's: after only 500 round trips the p99 still holds V8's
// compilations of the first thousands (~600-1,300 µs instead of ~95 µs on the 2-vCPU VM).
const ROUNDS = {
  full: { warmup: 5000, count: 20000 },
  quick: { warmup: 5000, count: 5000 },
  smoke: { warmup: 50, count: 200 },
};

// A rejected send (zeromq returns promises) must fail the run, not vanish.
const crash = (err) => process.nextTick(() => {
  throw err;
});

module.exports = {
  name: 'rtt',
  title: 'round trip, 1 outstanding, 65 B JSON',
  metrics: [
    { key: 'p50', label: 'p50 µs', better: 'lower', digits: 1 },
    { key: 'p99', label: 'p99 µs', better: 'lower', digits: 1 },
    { key: 'p999', label: 'p99.9 µs', better: 'lower', digits: 1 },
  ],
  placements: ['same', 'cross'],

  variants: (mode) => [{ id: '', params: ROUNDS[mode] }],
  timeoutMs: (mode) => (mode === 'full' ? 60000 : 20000),
  describe: (params) => `${params.warmup.toLocaleString('en-US')} + ${params.count.toLocaleString('en-US')} RTTs`,

  async orchestrate(run) {
    return run.serverThenClient('client');
  },

  roles: {
    async server(ctx, lib) {
      const server = await lib.listen(ctx.socketPath, { pattern: 'rpc' });
      server.onMessage((msg, topic, peer) => {
        const pending = server.send(peer, topic, msg);
        if (pending) pending.catch(crash);
        server.flush();
      });
      ctx.send('ready');
    },

    async client(ctx, lib) {
      const { warmup, count } = ctx.params;
      const client = await lib.connect(ctx.socketPath, { pattern: 'rpc' });
      ctx.send('ready');
      await ctx.waitFor('start');

      const total = warmup + count;
      const samples = new Float64Array(count); // nanoseconds
      let i = 0;
      let sentAt = 0;
      const sendNext = () => {
        sentAt = now();
        const pending = client.send(TOPIC, message(i));
        if (pending) pending.catch(crash);
        client.flush();
      };
      await new Promise((resolve) => {
        client.onMessage((msg) => {
          const at = now();
          if (!msg || msg.seq !== SEQ_BASE + i) throw new Error(`reply ${i}: expected seq ${SEQ_BASE + i}, got ${msg && msg.seq}`);
          if (i >= warmup) samples[i - warmup] = at - sentAt;
          if (++i === total) resolve();
          else sendNext();
        });
        sendNext();
      });

      samples.sort();
      const us = (p) => percentile(samples, p) / 1e3;
      ctx.send('result', { p50: us(50), p99: us(99), p999: us(99.9) });
    },
  },
};
