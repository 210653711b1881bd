'use strict';
// Exponential backoff: retryDelay and reconnectDelay as { min, max, factor }. The exact schedule
// and its jitter bounds are unit-tested in src/reconnect.rs; here, the options are validated at
// construction, and the gaps between real failed attempts grow, and start over after a success.
// Timing assertions are loose on purpose: each compares gaps whose nominal ranges are far apart.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const { Client, Peer } = require('..');
const { socketPath, waitFor, until, cleanup, startServerAt } = require('./helpers');

const T = { timeout: 30000 };
// Never listened on: the constructor checks need only an address that is valid on this platform.
const PATH = process.platform === 'win32' ? '\\\\.\\pipe\\nsipc-backoff-never-used' : '/tmp/nsipc-backoff-never-used.sock';

/** Asserts that `fn` throws a RangeError ERR_OUT_OF_RANGE whose message matches `pattern`. */
function assertOutOfRange(fn, pattern) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof RangeError, `expected a RangeError, got ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
    assert.equal(err.code, 'ERR_OUT_OF_RANGE', err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

/** The times (performance.now()) of every 'connectError' from now on. */
function connectErrorTimes(client) {
  const times = [];
  client.on('connectError', () => times.push(performance.now()));
  return times;
}

const gapsOf = (times) => times.slice(1).map((at, i) => at - times[i]);
const sum = (list) => list.reduce((a, b) => a + b, 0);
const show = (gaps) => gaps.map(Math.round).join(', ');

describe('options', () => {
  for (const Ctor of [Client, Peer]) {
    for (const name of ['retryDelay', 'reconnectDelay']) {
      test(`new ${Ctor.name}() rejects a ${name}.factor that is not a finite number over 1 with ERR_OUT_OF_RANGE naming it`, T, () => {
        for (const factor of [1, 0.5, 0, -2, NaN, Infinity, -Infinity, '2', true, {}, [2]]) {
          assertOutOfRange(() => new Ctor({ socketFile: PATH, [name]: { min: 10, max: 100, factor } }), new RegExp(`options\\.${name}\\.factor`));
        }
      });

      test(`new ${Ctor.name}() rejects ${name} with a factor and min 0, or min over max, with ERR_OUT_OF_RANGE naming it`, T, () => {
        assertOutOfRange(() => new Ctor({ socketFile: PATH, [name]: { min: 0, max: 100, factor: 2 } }), new RegExp(`options\\.${name}\\.min`));
        assertOutOfRange(() => new Ctor({ socketFile: PATH, [name]: { min: 200, max: 100, factor: 2 } }), new RegExp(`options\\.${name}\\.min`));
        // A missing max means the default (1000 or 100), which the message says.
        assertOutOfRange(() => new Ctor({ socketFile: PATH, [name]: { min: 5000, factor: 2 } }), /a missing max means/);
        assertOutOfRange(() => new Ctor({ socketFile: PATH, [name]: { min: -1, max: 100, factor: 2 } }), new RegExp(`options\\.${name}`));
      });
    }
  }

  test('new Client() accepts { min, max, factor }, a factor alone (min and max default) and min equal to max', T, async (t) => {
    for (const options of [
      { retryDelay: { min: 10, max: 5000, factor: 2 }, reconnectDelay: { min: 1, max: 30000, factor: 1.5 } },
      { retryDelay: { factor: 3 }, reconnectDelay: { factor: 1.01 } },
      { retryDelay: { min: 50, max: 50, factor: 2 }, reconnectDelay: { min: 20, max: 2 ** 40, factor: 10 } },
      { retryDelay: { min: 10, max: 20, factor: undefined }, reconnectDelay: 5 },
    ]) {
      const client = cleanup(t, new Client({ socketFile: PATH, ...options }));
      const closed = waitFor(client, 'close');
      client.close();
      await closed;
    }
  });
});

test('retryDelay with a factor: the gaps between failed attempts grow from min, without a server at all', T, async (t) => {
  // Nominal gaps: 40, [40, 80], [80, 160], [160, 320], [320, 640].
  const client = cleanup(t, new Client({ socketFile: socketPath(t), retryDelay: { min: 40, max: 10000, factor: 2 } }));
  const times = connectErrorTimes(client);
  client.connect();
  await until(() => times.length >= 6, 10000, "six 'connectError'");
  client.close();
  const gaps = gapsOf(times.slice(0, 6));
  assert.ok(gaps[4] > 3 * gaps[0], `the fifth gap is well over the first: ${show(gaps)}`);
  assert.ok(gaps[4] >= 250, `the fifth gap is about 320 ms or more: ${show(gaps)}`);
  assert.ok(sum(gaps.slice(3)) > sum(gaps.slice(0, 2)) * 2, `later gaps outgrow earlier ones: ${show(gaps)}`);
});

test("reconnectDelay with a factor: after a drop the gaps between 'connectError' grow (instead of retryDelay), and after a reconnect start from min again", T, async (t) => {
  const socketFile = socketPath(t);
  let server = await startServerAt(t, socketFile);
  // retryDelay is long: a gap anywhere near it would mean the reconnect schedule was not used.
  const client = cleanup(
    t,
    new Client({ socketFile, retryDelay: 4000, reconnectDelay: { min: 40, max: 10000, factor: 2 } }),
  );
  const times = connectErrorTimes(client);
  client.connect();
  await waitFor(client, 'connect');

  // First drop. Nominal: 40 to the first attempt, then gaps [40, 80], [80, 160], [160, 320], [320, 640].
  server.close();
  await waitFor(client, 'disconnect');
  await until(() => times.length >= 5, 10000, "five 'connectError' after the first drop");
  const first = gapsOf(times.slice(0, 5));
  assert.ok(first.every((gap) => gap < 2000), `no gap comes from retryDelay (4000 ms): ${show(first)}`);
  assert.ok(first[3] > 2.5 * first[0], `the fourth gap is well over the first: ${show(first)}`);
  assert.ok(first[3] >= 250, `the fourth gap is about 320 ms or more: ${show(first)}`);
  assert.ok(first[2] + first[3] > first[0] + first[1], `later gaps outgrow earlier ones: ${show(first)}`);

  // A success resets the schedule: had it gone on, the next gap would be 640 ms or more.
  server = await startServerAt(t, socketFile);
  await waitFor(client, 'reconnect', 10000);
  times.length = 0;
  server.close();
  await waitFor(client, 'disconnect');
  await until(() => times.length >= 3, 10000, "three 'connectError' after the second drop");
  const second = gapsOf(times.slice(0, 3));
  assert.ok(second[0] < 400, `after a reconnect the first gap is back near min (nominal 40-80 ms): ${show(second)}`);
  assert.ok(second[0] < first[3], `and under the last gap before the reconnect: ${show(second)} vs ${show(first)}`);
});
