'use strict';
// What every process of the flood suite shares: its spec (JSON, the only argument), commands
// from the runner by type, replies of the same type, and a quick exit when the runner goes
// away, so a runner that dies or is killed leaves no flooder or server behind.

const spec = JSON.parse(process.argv[2] || '{}');

/** Calls handlers[type](data) for each { type, data } the runner sends; a handler's result (or its Promise's) is the reply. */
function onCommand(handlers) {
  process.on('message', async ({ type, data }) => {
    const handler = handlers[type];
    if (!handler) return;
    const result = await handler(data);
    if (result !== undefined) reply(type, result);
  });
}

function reply(type, data) {
  if (process.connected) process.send({ type, data });
}

/** Replies, then exits once the reply is on its way (the runner SIGKILLs us anyway if this hangs). */
function replyAndExit(type, data) {
  if (!process.connected) process.exit(0);
  process.send({ type, data }, () => process.exit(0));
}

process.on('disconnect', () => process.exit(0));

/** Adds 1 to counts[key]. */
function bump(counts, key, n = 1) {
  counts[key] = (counts[key] || 0) + n;
}

module.exports = { spec, onCommand, reply, replyAndExit, bump };
