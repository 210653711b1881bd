'use strict';
// Scenario 1: one client sends 65-byte JSON messages on topic 'bench' to the server as fast as
// it can (1000 per event-loop turn, pausing on a > 1 MiB socket backlog where the library shows
// one). The server counts them from the first received message to the last one parsed and
// emitted to its 'message' listener, checking order. The same window also yields the receiver's
// loop cost (scenario 7, loop-cost.js), so those numbers come from these runs.

const { sendMany, receiveWindow, ratePerSecond } = require('../util/workload');

const COUNT = { full: 200000, quick: 50000, smoke: 2000 };

module.exports = {
  name: 'oneway-c2s',
  title: 'client → server, 65 B JSON',
  metrics: [{ key: 'rate', label: 'msg/s', better: 'higher' }],

  variants: (mode) => [{ id: '', params: { count: COUNT[mode] } }],
  timeoutMs: (mode) => (mode === 'full' ? 60000 : 20000),
  describe: (params) => `${params.count.toLocaleString('en-US')} msgs`,

  async orchestrate(run, params) {
    const r = await run.serverThenClient('server');
    const intervals = r.count - 1;
    return {
      rate: ratePerSecond(r.count, r.first, r.last),
      // For loop-cost.js: the receiver's cost per message over the same window.
      mainNsPerMsg: r.mainCpuNs / intervals,
      loopNsPerMsg: (r.loopActiveMs * 1e6) / intervals,
      cpuNsPerMsg: (r.cpuUs * 1e3) / intervals,
    };
  },

  roles: {
    async server(ctx, lib) {
      const server = await lib.listen(ctx.socketPath, { pattern: 'c2s' });
      server.onMessage(receiveWindow(ctx.params.count, (stats) => ctx.send('result', stats)));
      ctx.send('ready');
    },

    async client(ctx, lib) {
      const client = await lib.connect(ctx.socketPath, { pattern: 'c2s' });
      ctx.send('ready');
      await ctx.waitFor('start');
      await sendMany(client, ctx.params.count);
    },
  },
};
