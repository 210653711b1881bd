'use strict';
// Scenario 5: one server broadcasts 65-byte JSON messages to 100 clients held by 4 client
// processes (25 each). Each process reports its first and last delivery over all its clients;
// the rate is total deliveries / (latest last − earliest first), on the clock all processes
// share (CLOCK_MONOTONIC). The server broadcasts 1000 per turn and pauses while any client's
// socket holds > 1 MiB, where the library shows it (net, net-batch, crussell, node-ipc);
// zeromq's XPublisher (noDrop) waits at its high-water mark instead.

const { TOPIC, SEQ_BASE, sendMany, announcePeers, now } = require('../util/workload');

const SIZES = {
  full: { count: 20000, processes: 4, perProcess: 25 },
  quick: { count: 5000, processes: 4, perProcess: 25 },
  smoke: { count: 200, processes: 2, perProcess: 5 },
};

module.exports = {
  name: 'broadcast',
  title: 'broadcast to 100 clients, 65 B JSON',
  metrics: [{ key: 'rate', label: 'deliveries/s', better: 'higher' }],

  variants: (mode) => [{ id: '', params: SIZES[mode] }],
  timeoutMs: (mode) => (mode === 'full' ? 90000 : 30000),
  describe: (p) =>
    `${p.count.toLocaleString('en-US')} × ${p.processes * p.perProcess} clients (${p.processes} procs)`,

  async orchestrate(run, params) {
    const server = run.fork('server');
    await server.waitFor('ready');
    const clients = [];
    for (let i = 0; i < params.processes; i++) clients.push(run.fork('client', i));
    await Promise.all(clients.map((c) => c.waitFor('ready')));
    await server.waitFor('peers');
    server.send('start');
    const results = await Promise.all(clients.map((c) => c.waitFor('result')));
    const first = Math.min(...results.map((r) => r.first));
    const last = Math.max(...results.map((r) => r.last));
    const total = results.reduce((sum, r) => sum + r.count, 0);
    return { rate: (total * 1e9) / (last - first) };
  },

  roles: {
    async server(ctx, lib) {
      const { count, processes, perProcess } = ctx.params;
      const server = await lib.listen(ctx.socketPath, { pattern: 'broadcast' });
      announcePeers(ctx, server, processes * perProcess);
      ctx.send('ready');
      await ctx.waitFor('start');
      await sendMany(server, count, { send: (m) => server.broadcast(TOPIC, m) });
    },

    async client(ctx, lib) {
      const { count, perProcess } = ctx.params;
      const clients = [];
      for (let i = 0; i < perProcess; i++) clients.push(lib.connect(ctx.socketPath, { pattern: 'broadcast' }));
      let first = 0;
      let last = 0;
      let finished = 0;
      (await Promise.all(clients)).forEach((client, c) => {
        let received = 0;
        client.onMessage((msg) => {
          const at = now();
          if (first === 0) first = at;
          if (!msg || msg.seq !== SEQ_BASE + received) {
            throw new Error(`client ${c}, delivery ${received}: expected seq ${SEQ_BASE + received}, got ${msg && msg.seq}`);
          }
          if (++received === count) {
            last = at;
            if (++finished === perProcess) ctx.send('result', { first, last, count: count * perProcess });
          }
        });
      });
      ctx.send('ready');
    },
  },
};
