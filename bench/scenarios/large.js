'use strict';
// Scenario 4: 1 MiB Buffers, client -> server; MB/s (10^6 bytes/s) delivered to the server's
// listener, from the first message to the last, checking the last one's length. The sender sends
// one per event-loop turn and pauses on a > 1 MiB backlog where the library shows one.
//
// Libraries without a binary path send what they must: crussell and node-ipc JSON-encode the
// Buffer ({type:'Buffer',data:[…]}, ~3.6 bytes per byte), net sends base64 inside the NDJSON
// line. Those are much slower, so they move fewer messages (see COUNT); the count is printed.
//
// The `kernel` row is the ceiling: examples/kernel_copy.rs, two processes copying 1 MiB chunks
// through a Unix socket with plain read/write, placed on CPUs like the other servers/clients.

const path = require('node:path');
const { execFile } = require('node:child_process');
const { sendMany, receiveWindow } = require('../util/workload');

const MIB = 1024 * 1024;
const ROOT = path.join(__dirname, '..', '..');
const KERNEL_BINARY = path.join(ROOT, 'target', 'release', 'examples', 'kernel_copy');

// Messages (of 1 MiB) per run. JSON-encoding peers are capped so that a run stays under ~20 s.
const COUNT = {
  full: { default: 500, crussell: 100, 'node-ipc': 100 },
  quick: { default: 100, crussell: 20, 'node-ipc': 20 },
  smoke: { default: 4, crussell: 4, 'node-ipc': 4 },
};

/** The bytes of a received message: a Buffer, or the JSON form JSON-only libraries deliver. */
function byteLength(msg) {
  if (Buffer.isBuffer(msg)) return msg.length;
  if (msg && msg.type === 'Buffer' && Array.isArray(msg.data)) return Buffer.from(msg.data).length;
  return -1;
}

module.exports = {
  name: 'large',
  title: '1 MiB Buffers, client → server',
  metrics: [{ key: 'mbps', label: 'MB/s', better: 'higher', digits: 0 }],
  // Not a library: the OS ceiling, shown with the libraries.
  extraLibs: ['kernel'],

  variants: (mode) => [{ id: '', params: { counts: COUNT[mode] } }],
  paramsFor: (params, lib) => ({ count: params.counts[lib] || params.counts.default }),
  timeoutMs: (mode) => (mode === 'full' ? 60000 : 30000),
  describe: (params) => `${params.count} × 1 MiB`,

  /** Builds the kernel ceiling program once per suite run; the result goes to orchestrate. */
  prepare({ libs, mode }) {
    if (!libs.includes('kernel')) return Promise.resolve({});
    const args = ['build', '--release', '--no-default-features', '--example', 'kernel_copy'];
    return new Promise((resolve) => {
      execFile('cargo', args, { cwd: ROOT, timeout: mode === 'full' ? 600000 : 60000 }, (err, _stdout, stderr) => {
        if (!err) return resolve({ kernelBinary: KERNEL_BINARY });
        const reason = err.killed ? 'timed out' : String(stderr).trim().split('\n').slice(-2).join(' | ') || err.message;
        resolve({ kernelError: `cargo ${args.join(' ')} failed: ${reason}` });
      });
    });
  },

  async orchestrate(run, params) {
    if (run.spec.lib === 'kernel') return kernel(run, params);
    const r = await run.serverThenClient('server');
    return { mbps: ((r.count - 1) * MIB) / ((r.last - r.first) / 1e9) / 1e6 };
  },

  roles: {
    async server(ctx, lib) {
      const { count } = ctx.params;
      const server = await lib.listen(ctx.socketPath, { pattern: 'c2s', binary: true });
      // Only the last message is turned back into bytes and measured: converting every one
      // would charge the JSON peers for work outside the library.
      const check = (msg, index) => {
        if (index < count - 1) return msg ? null : 'empty message';
        const length = byteLength(msg);
        return length === MIB ? null : `the last message is ${length} bytes, not ${MIB}`;
      };
      server.onMessage(receiveWindow(count, (stats) => ctx.send('result', stats), check));
      ctx.send('ready');
    },

    async client(ctx, lib) {
      const client = await lib.connect(ctx.socketPath, { pattern: 'c2s', binary: true });
      const payload = Buffer.alloc(MIB);
      for (let i = 0; i < MIB; i++) payload[i] = i % 251;
      ctx.send('ready');
      await ctx.waitFor('start');
      await sendMany(client, ctx.params.count, { make: () => payload, perTurn: 1 });
    },
  },
};

async function kernel(run, params) {
  const { kernelBinary, kernelError } = run.spec.prepared;
  if (!kernelBinary) throw new Error(kernelError || 'kernel_copy was not built');
  const bytes = String(params.count * MIB);
  const receiver = run.spawn('server', kernelBinary, ['recv', run.socketPath, bytes]);
  await receiver.waitFor('ready');
  run.spawn('client', kernelBinary, ['send', run.socketPath, bytes]);
  const r = await receiver.waitFor('result');
  return { mbps: r.mbps };
}
