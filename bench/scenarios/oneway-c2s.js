'use strict';
// Scenario 1: one client sends 65-byte JSON messages on topic 'bench' to the server as fast as
// it can (1000 per event-loop turn, pausing on a > 1 MiB socket backlog where the library shows
// one). The server counts them from the first received message to the last one parsed and
// emitted to its 'message' listener, checking order. The same runs also yield the receiver's
// and the sender's cost per message (scenario 7, loop-cost.js), so those numbers come from here.

const { PER_TURN, sendMany, stringifyMany, settledMainThreadCpuNs, receiveWindow, ratePerSecond } = require('../util/workload');

const COUNT = { full: 200000, quick: 50000, smoke: 2000 };

module.exports = {
  name: 'oneway-c2s',
  title: 'client → server, 65 B JSON',
  metrics: [{ key: 'rate', label: 'msg/s', better: 'higher' }],

  variants: (mode) => [{ id: '', params: { count: COUNT[mode] } }],
  timeoutMs: (mode) => (mode === 'full' ? 60000 : 20000),
  describe: (params) => `${params.count.toLocaleString('en-US')} msgs`,

  async orchestrate(run) {
    const server = run.fork('server');
    await server.waitFor('ready');
    const client = run.fork('client');
    await client.waitFor('ready');
    client.send('start');
    const r = await server.waitFor('result');
    // The sender's window ends only once everything has arrived, so main-thread work a library
    // does for its sends after send() returned (writing out what it queued) counts too.
    client.send('delivered');
    const s = await client.waitFor('result');
    const intervals = r.count - 1;
    return {
      rate: ratePerSecond(r.count, r.first, r.last),
      // For loop-cost.js: the receiver's cost per message over the same window.
      mainNsPerMsg: r.mainCpuNs / intervals,
      loopNsPerMsg: (r.loopActiveMs * 1e6) / intervals,
      cpuNsPerMsg: (r.cpuUs * 1e3) / intervals,
      // ... and the sender's, per message sent, with its JSON.stringify reference.
      senderMainNsPerMsg: s.mainCpuNs / s.count,
      stringifyNsPerMsg: s.stringifyNs / s.count,
      sendOverheadNsPerMsg: (s.mainCpuNs - s.stringifyNs) / s.count,
      // JSON only: main thread until the last send() returned; every thread of the sender.
      senderCallsNsPerMsg: s.callsCpuNs / s.count,
      senderCpuNsPerMsg: (s.cpuUs * 1e3) / s.count,
      stringifyCharsPerMsg: s.stringifyChars / s.count,
    };
  },

  roles: {
    async server(ctx, lib) {
      const server = await lib.listen(ctx.socketPath, { pattern: 'c2s' });
      server.onMessage(receiveWindow(ctx.params.count, (stats) => ctx.send('result', stats)));
      ctx.send('ready');
    },

    async client(ctx, lib) {
      const { count } = ctx.params;
      const client = await lib.connect(ctx.socketPath, { pattern: 'c2s' });
      // The reference: the same messages through the same loop, JSON.stringify instead of send(),
      // in this process before any traffic. An untimed pass first, so it is not timing V8
      // compiling the loop.
      await stringifyMany(Math.min(count, 5 * PER_TURN));
      const ref0 = settledMainThreadCpuNs();
      const stringifyChars = await stringifyMany(count);
      const stringifyNs = settledMainThreadCpuNs() - ref0;
      ctx.send('ready');

      await ctx.waitFor('start');
      const cpu0 = process.cpuUsage();
      const main0 = settledMainThreadCpuNs();
      await sendMany(client, count);
      const callsCpuNs = settledMainThreadCpuNs() - main0;
      await ctx.waitFor('delivered');
      const mainCpuNs = settledMainThreadCpuNs() - main0;
      const cpu = process.cpuUsage(cpu0);
      ctx.send('result', { count, mainCpuNs, callsCpuNs, cpuUs: cpu.user + cpu.system, stringifyNs, stringifyChars });
    },
  },
};
