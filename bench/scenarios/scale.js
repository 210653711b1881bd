'use strict';
// Scenario 6: many idle clients on one server. Client processes (500 clients each) are started
// and loaded first; then all are told to connect at once. Reported: the time from that signal
// until the server has seen every connection, and the server's resident memory per connection,
// (VmRSS after − VmRSS before) / N from /proc/<pid>/status (the server is the process itself:
// taskset execs node). Nothing system-wide is raised; ulimit -n must allow N server descriptors.

const { announcePeers, now } = require('../util/workload');
const { rssOf } = require('../util/proc');

const PER_PROCESS = 500;
// Let the server's memory settle before each reading (lazy allocations, deferred frees).
const SETTLE_MS = 300;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = {
  name: 'scale',
  title: 'idle clients on one server',
  metrics: [
    { key: 'connectMs', label: 'connect all, ms', better: 'lower', digits: 0 },
    { key: 'rssKiB', label: 'server RSS KiB/conn', better: 'lower', digits: 1 },
  ],

  variants: (mode) => {
    const sizes = mode === 'full' ? [1000, 10000] : [1000];
    return sizes.map((clients) => ({ id: `${clients / 1000}k`, params: { clients } }));
  },
  timeoutMs: (mode) => (mode === 'full' ? 120000 : 30000),
  describe: (p) => `${p.clients.toLocaleString('en-US')} clients, ${Math.ceil(p.clients / PER_PROCESS)} procs`,

  async orchestrate(run, params) {
    const { clients } = params;
    const server = run.fork('server');
    await server.waitFor('ready');
    const processes = [];
    for (let i = 0; i * PER_PROCESS < clients; i++) {
      processes.push(run.fork('client', i, { count: Math.min(PER_PROCESS, clients - i * PER_PROCESS) }));
    }
    await Promise.all(processes.map((p) => p.waitFor('ready')));
    await sleep(SETTLE_MS);
    const rssBefore = rssOf(server.pid);
    const start = now();
    run.tell(processes, 'start');
    const { at } = await server.waitFor('peers');
    await sleep(SETTLE_MS);
    const rssAfter = rssOf(server.pid);
    const retries = (await Promise.all(processes.map((p) => p.waitFor('connected')))).reduce((sum, n) => sum + n, 0);
    return {
      connectMs: (at - start) / 1e6,
      rssKiB: (rssAfter - rssBefore) / clients / 1024,
      // Failed attempts, mostly EAGAIN from a full accept backlog, each retried after the
      // library's delay: they explain most of the differences in connect time.
      counts: { retries },
    };
  },

  roles: {
    async server(ctx, lib) {
      const server = await lib.listen(ctx.socketPath, { pattern: 'idle' });
      announcePeers(ctx, server, ctx.params.clients);
      ctx.send('ready');
    },

    async client(ctx, lib) {
      ctx.send('ready');
      await ctx.waitFor('start');
      const clients = [];
      for (let i = 0; i < ctx.extra.count; i++) clients.push(lib.connect(ctx.socketPath, { pattern: 'idle' }));
      const connected = await Promise.all(clients);
      ctx.send('connected', connected.reduce((sum, c) => sum + (c.retries || 0), 0));
    },
  },
};
