'use strict';
// One server or client process of a benchmark run, forked by bench/util/proc.js with a JSON spec
// as its only argument: { scenario, lib, role, index, params, extra, placement, socketPath }.
// It runs scenarios/<scenario>.js's roles[role](ctx, lib) and talks to the orchestrator over the
// fork IPC channel (used only to coordinate, never for the measured traffic):
//   to the orchestrator   { type, data }, and { type: 'error', data: { message, stack } }
//   from it               { type, data }; 'stop' ends the process

const spec = JSON.parse(process.argv[2]);

const queues = new Map();
const waiters = new Map();

function report(err) {
  const data = { message: err && err.message ? err.message : String(err), stack: err && err.stack };
  if (process.connected) process.send({ type: 'error', data }, () => process.exit(1));
  else process.exit(1);
  // If the channel is stuck, do not linger.
  setTimeout(() => process.exit(1), 1000).unref();
}
process.on('uncaughtException', report);
process.on('unhandledRejection', report);

// The orchestrator went away: nobody will read our results or stop us.
process.on('disconnect', () => process.exit(0));

process.on('message', ({ type, data }) => {
  if (type === 'stop') process.exit(0);
  const waiting = waiters.get(type);
  if (waiting && waiting.length > 0) waiting.shift()(data);
  else {
    if (!queues.has(type)) queues.set(type, []);
    queues.get(type).push(data);
  }
});

const ctx = {
  ...spec,
  /** Sends { type, data } to the orchestrator. */
  send(type, data) {
    process.send({ type, data });
  },
  /** The next message of `type` from the orchestrator. */
  waitFor(type) {
    const queued = queues.get(type);
    if (queued && queued.length > 0) return Promise.resolve(queued.shift());
    return new Promise((resolve) => {
      if (!waiters.has(type)) waiters.set(type, []);
      waiters.get(type).push(resolve);
    });
  },
};

const scenario = require(`./scenarios/${spec.scenario}`);
const lib = require(`./libs/${spec.lib}`);
Promise.resolve(scenario.roles[spec.role](ctx, lib)).catch(report);
