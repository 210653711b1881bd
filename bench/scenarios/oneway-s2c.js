'use strict';
// Scenario 2: scenario 1 reversed. The server sends 65-byte JSON messages to its one client
// (server.send(topic, message, clientId); net-batch batches on the server too), and the client
// counts them from the first received message to the last one emitted to its listener.

const { TOPIC, sendMany, receiveWindow, ratePerSecond, announcePeers } = require('../util/workload');

const COUNT = { full: 200000, quick: 50000, smoke: 2000 };

module.exports = {
  name: 'oneway-s2c',
  title: 'server → client, 65 B JSON',
  metrics: [{ key: 'rate', label: 'msg/s', better: 'higher' }],

  variants: (mode) => [{ id: '', params: { count: COUNT[mode] } }],
  timeoutMs: (mode) => (mode === 'full' ? 60000 : 20000),
  describe: (params) => `${params.count.toLocaleString('en-US')} msgs`,

  async orchestrate(run) {
    const server = run.fork('server');
    await server.waitFor('ready');
    const client = run.fork('client');
    await client.waitFor('ready');
    // The server sends only once it has seen the connection (it needs the client's id).
    await server.waitFor('peers');
    server.send('start');
    const r = await client.waitFor('result');
    return { rate: ratePerSecond(r.count, r.first, r.last) };
  },

  roles: {
    async server(ctx, lib) {
      const server = await lib.listen(ctx.socketPath, { pattern: 's2c' });
      const peers = announcePeers(ctx, server, 1);
      ctx.send('ready');
      await ctx.waitFor('start');
      const peer = peers[0];
      await sendMany(server, ctx.params.count, { send: (m) => server.send(peer, TOPIC, m) });
    },

    async client(ctx, lib) {
      const client = await lib.connect(ctx.socketPath, { pattern: 's2c' });
      client.onMessage(receiveWindow(ctx.params.count, (stats) => ctx.send('result', stats)));
      ctx.send('ready');
    },
  },
};
