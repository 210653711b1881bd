'use strict';
// Heartbeats: a silent peer (a SIGSTOPped process) is detected within heartbeatTimeout +
// heartbeatInterval and dropped with reason ERR_IPC_HEARTBEAT_TIMEOUT; idle and busy connections
// stay up; heartbeats on one side only are answered by the other side's core; heartbeatInterval: 0
// turns them off; the options are validated; a graceful close gives no reason.

const test = require('node:test');
const assert = require('node:assert/strict');
const { performance } = require('node:perf_hooks');
const lib = require('..');
const { Server, Client } = lib;
const {
  socketPath,
  waitFor,
  collect,
  sleep,
  autoClose,
  startServer,
  connectClient,
  spawnFixture,
  childMessage,
  logChild,
  logged,
  contAtEnd,
} = require('./helpers');

const T = { timeout: 30000 };

/** Starts heartbeat-server.js with `options` on a fresh path; resolves once it listens. */
async function startServerChild(t, options) {
  const socketFile = socketPath(t);
  const child = spawnFixture(t, 'heartbeat-server.js', [socketFile, JSON.stringify(options)]);
  contAtEnd(t, child);
  logChild(child);
  await childMessage(child, (m) => m.event === 'listening', 10000);
  return { child, socketFile };
}

/** Records the events of a Client or Server that tests assert on, with the reasons' codes. */
function record(emitter) {
  const events = [];
  const codeOf = (reason) => (reason === undefined ? undefined : reason && reason.code);
  for (const name of ['connect', 'reconnect', 'close']) emitter.on(name, () => events.push({ event: name }));
  emitter.on('disconnect', (reason) => events.push({ event: 'disconnect', code: codeOf(reason), reason }));
  emitter.on('connection', (clientId) => events.push({ event: 'connection', clientId }));
  emitter.on('connectionClose', (clientId, reason) => events.push({ event: 'connectionClose', clientId, code: codeOf(reason), reason }));
  emitter.on('message', (message, topic) => events.push({ event: 'message', message, topic }));
  emitter.on('messageError', (err) => events.push({ event: 'messageError', code: err.code }));
  emitter.on('error', (err) => events.push({ event: 'error', code: err.code, message: err.message }));
  return events;
}

const only = (events, ...names) => events.filter((e) => names.includes(e.event));

// ----- a silent peer is detected -----

test("a Client detects its SIGSTOPped server process within heartbeatTimeout + heartbeatInterval: 'disconnect' with reason ERR_IPC_HEARTBEAT_TIMEOUT, no 'error', and it reconnects after SIGCONT", T, async (t) => {
  const heartbeatInterval = 200;
  const heartbeatTimeout = 600;
  const { child, socketFile } = await startServerChild(t, {});
  const track = autoClose(t);
  const client = track(new Client({ socketFile, heartbeatInterval, heartbeatTimeout, reconnectDelay: 50, retryDelay: 50, handshakeTimeout: 1000 }));
  const events = record(client);
  client.connect();
  await waitFor(client, 'connect');
  await logged(child, (m) => m.event === 'connection');
  // Let a few heartbeats go by on the idle connection first.
  await sleep(2 * heartbeatInterval);
  assert.deepEqual(only(events, 'disconnect', 'error'), [], 'nothing dropped while the server runs');

  const disconnected = waitFor(client, 'disconnect', 5000);
  child.kill('SIGSTOP');
  const stoppedAt = performance.now();
  const [reason] = await disconnected;
  const elapsed = performance.now() - stoppedAt;
  t.diagnostic(`detected ${elapsed.toFixed(1)} ms after SIGSTOP`);

  assert.ok(reason instanceof Error, `'disconnect' has an Error reason, got ${reason}`);
  assert.equal(reason.code, 'ERR_IPC_HEARTBEAT_TIMEOUT');
  assert.ok(
    elapsed <= heartbeatTimeout + heartbeatInterval,
    `detected ${elapsed.toFixed(1)} ms after SIGSTOP; must be within heartbeatTimeout + heartbeatInterval = ${heartbeatTimeout + heartbeatInterval} ms`,
  );
  // The last frame from the server arrived at most about two intervals before the stop.
  assert.ok(
    elapsed >= heartbeatTimeout - 2 * heartbeatInterval,
    `detected only ${elapsed.toFixed(1)} ms after SIGSTOP, before ${heartbeatTimeout - 2 * heartbeatInterval} ms of silence could have passed`,
  );

  await sleep(100);
  const reconnected = waitFor(client, 'connect', 10000);
  child.kill('SIGCONT');
  await reconnected;
  assert.deepEqual(only(events, 'error'), [], 'a heartbeat timeout emits no error');
  assert.equal(only(events, 'disconnect').length, 1, `one 'disconnect': ${JSON.stringify(events)}`);
  // And the new connection works.
  const echoed = waitFor(client, 'message.echo');
  client.send('echo', { after: 'SIGCONT' });
  assert.deepEqual((await echoed)[0], { after: 'SIGCONT' });
});

test("a Server detects its SIGSTOPped client process within heartbeatTimeout + heartbeatInterval: 'connectionClose'(clientId, reason ERR_IPC_HEARTBEAT_TIMEOUT) and no 'error'", T, async (t) => {
  const heartbeatInterval = 200;
  const heartbeatTimeout = 600;
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval, heartbeatTimeout });
  const events = record(server);
  const connection = waitFor(server, 'connection', 10000);
  const child = spawnFixture(t, 'heartbeat-client.js', [server.socketFile, JSON.stringify({ retryDelay: 50, reconnectDelay: 50 })]);
  contAtEnd(t, child);
  logChild(child);
  const [clientId] = await connection;
  await logged(child, (m) => m.event === 'connect');
  await sleep(2 * heartbeatInterval);
  assert.deepEqual(only(events, 'connectionClose', 'error'), [], 'nothing dropped while the client runs');

  const closed = waitFor(server, 'connectionClose', 5000);
  child.kill('SIGSTOP');
  const stoppedAt = performance.now();
  const [closedId, reason] = await closed;
  const elapsed = performance.now() - stoppedAt;
  t.diagnostic(`detected ${elapsed.toFixed(1)} ms after SIGSTOP`);

  assert.equal(closedId, clientId);
  assert.ok(reason instanceof Error, `'connectionClose' has an Error reason, got ${reason}`);
  assert.equal(reason.code, 'ERR_IPC_HEARTBEAT_TIMEOUT');
  assert.ok(
    elapsed <= heartbeatTimeout + heartbeatInterval,
    `detected ${elapsed.toFixed(1)} ms after SIGSTOP; must be within heartbeatTimeout + heartbeatInterval = ${heartbeatTimeout + heartbeatInterval} ms`,
  );
  assert.ok(
    elapsed >= heartbeatTimeout - 2 * heartbeatInterval,
    `detected only ${elapsed.toFixed(1)} ms after SIGSTOP, before ${heartbeatTimeout - 2 * heartbeatInterval} ms of silence could have passed`,
  );

  // Resumed, the client finds its connection gone and reconnects as a new client.
  const again = waitFor(server, 'connection', 10000);
  child.kill('SIGCONT');
  const [newId] = await again;
  assert.notEqual(newId, clientId);
  await sleep(50);
  assert.deepEqual(only(events, 'error'), [], 'a heartbeat timeout emits no error');
});

test("with heartbeatInterval alone (no heartbeatTimeout) the timeout defaults to twice the interval: a SIGSTOPped server is detected within 3 intervals", T, async (t) => {
  const heartbeatInterval = 200;
  const { child, socketFile } = await startServerChild(t, {});
  const track = autoClose(t);
  const client = track(new Client({ socketFile, heartbeatInterval, reconnectDelay: 50, retryDelay: 50, handshakeTimeout: 1000 }));
  const events = record(client);
  client.connect();
  await waitFor(client, 'connect');
  await logged(child, (m) => m.event === 'connection');
  await sleep(2 * heartbeatInterval);
  assert.deepEqual(only(events, 'disconnect'), []);

  const disconnected = waitFor(client, 'disconnect', 5000);
  child.kill('SIGSTOP');
  const stoppedAt = performance.now();
  const [reason] = await disconnected;
  const elapsed = performance.now() - stoppedAt;
  t.diagnostic(`detected ${elapsed.toFixed(1)} ms after SIGSTOP`);
  assert.equal(reason && reason.code, 'ERR_IPC_HEARTBEAT_TIMEOUT');
  assert.ok(
    elapsed <= 3 * heartbeatInterval,
    `detected ${elapsed.toFixed(1)} ms after SIGSTOP; with the default timeout (2 x ${heartbeatInterval}) it must be within ${3 * heartbeatInterval} ms`,
  );
  child.kill('SIGCONT');
});

// ----- connections that must stay up -----

test("an idle connection with short heartbeats (interval 50 ms) stays up for 600 ms, heartbeats never reach 'message' listeners, and messages still flow afterwards", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 50 });
  const serverEvents = record(server);
  const { client, clientId } = await connectClient(server, track, { heartbeatInterval: 50 });
  const clientEvents = record(client);

  await sleep(600);
  assert.deepEqual(only(serverEvents, 'connectionClose', 'message', 'messageError', 'error'), [], 'server side stayed quiet');
  assert.deepEqual(only(clientEvents, 'disconnect', 'connect', 'message', 'messageError', 'error'), [], 'client side stayed quiet');

  const toServer = waitFor(server, 'message.up');
  client.send('up', { n: 1 });
  assert.deepEqual(await toServer, [{ n: 1 }, clientId]);
  const toClient = waitFor(client, 'message.down');
  server.send('down', { n: 2 }, clientId);
  assert.deepEqual(await toClient, [{ n: 2 }]);
  assert.deepEqual(only(serverEvents, 'message').map((e) => e.topic), ['up'], 'only the real message reached the server');
  assert.deepEqual(only(clientEvents, 'message').map((e) => e.topic), ['down'], 'only the real message reached the client');
});

test("heartbeats on the client only (interval 50 ms, server heartbeatInterval: 0) keep an idle connection up for 500 ms: the server's core answers the pings", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 0 });
  const serverEvents = record(server);
  const { client, clientId } = await connectClient(server, track, { heartbeatInterval: 50 });
  const clientEvents = record(client);

  await sleep(500);
  assert.deepEqual(only(clientEvents, 'disconnect', 'connect', 'message', 'error'), [], 'the client kept its connection');
  assert.deepEqual(only(serverEvents, 'connectionClose', 'message', 'error'), [], 'the server kept its connection');
  const echo = waitFor(server, 'message.still');
  client.send('still', 'here');
  assert.deepEqual(await echo, ['here', clientId]);
});

test("heartbeats on the server only (interval 50 ms, client heartbeatInterval: 0) keep an idle connection up for 500 ms: the client's core answers the pings", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 50 });
  const serverEvents = record(server);
  const { client, clientId } = await connectClient(server, track, { heartbeatInterval: 0 });
  const clientEvents = record(client);

  await sleep(500);
  assert.deepEqual(only(serverEvents, 'connectionClose', 'message', 'error'), [], 'the server kept its connection');
  assert.deepEqual(only(clientEvents, 'disconnect', 'connect', 'message', 'error'), [], 'the client kept its connection');
  const down = waitFor(client, 'message.still');
  server.send('still', 'here', clientId);
  assert.deepEqual(await down, ['here']);
});

test("with heartbeatInterval: 0 on both sides a SIGSTOPped server is not detected within 1 s, and the connection works after SIGCONT", T, async (t) => {
  const { child, socketFile } = await startServerChild(t, { heartbeatInterval: 0 });
  const track = autoClose(t);
  const client = track(new Client({ socketFile, heartbeatInterval: 0 }));
  const events = record(client);
  client.connect();
  await waitFor(client, 'connect');
  await logged(child, (m) => m.event === 'connection');

  child.kill('SIGSTOP');
  await sleep(1000);
  assert.deepEqual(only(events, 'disconnect', 'error'), [], 'no heartbeat, so nothing noticed the stop');
  child.kill('SIGCONT');

  const echoed = waitFor(client, 'message.echo');
  client.send('echo', 'same connection');
  assert.deepEqual(await echoed, ['same connection']);
  await sleep(100);
  assert.deepEqual(only(events, 'disconnect', 'connect'), [{ event: 'connect' }], 'still the first connection');
  assert.deepEqual(child.log.filter((m) => m.event === 'connection' || m.event === 'connectionClose').map((m) => m.event), ['connection']);
});

// ----- a blocked event loop still answers pings -----

/** Keeps this process's JS thread busy for `ms`: no timers, no I/O callbacks, no listeners. */
function blockEventLoop(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test("a Client whose event loop is blocked for 1.5 s still answers its server's pings (interval 100 ms, timeout 300 ms): no disconnect on either side, and messages sent meanwhile arrive in order", T, async (t) => {
  const { child, socketFile } = await startServerChild(t, { heartbeatInterval: 100, heartbeatTimeout: 300 });
  const track = autoClose(t);
  const client = track(new Client({ socketFile, heartbeatInterval: 0 }));
  const events = record(client);
  const connection = childMessage(child, (m) => m.event === 'connection', 10000);
  client.connect();
  await waitFor(client, 'connect');
  const { clientId } = await connection;
  // The first messages arrive while the loop reads (the way every idle connection starts).
  const first = waitFor(client, 'message.echo');
  child.send({ cmd: 'send', topic: 'echo', message: 0, clientId });
  await first;

  const childEvents = [];
  child.on('message', (m) => childEvents.push(m));
  for (let i = 1; i <= 3; i++) child.send({ cmd: 'send', topic: 'echo', message: i, clientId });
  blockEventLoop(1500);
  const got = collect(client, 'message.echo', 3, 5000);
  assert.deepEqual((await got).map(([m]) => m), [1, 2, 3]);
  await sleep(300);
  assert.deepEqual(only(events, 'disconnect', 'error'), [], 'the client was not dropped');
  assert.deepEqual(childEvents.filter((m) => m.event === 'connectionClose' || m.event === 'error'), [], 'the server dropped nobody');

  const after = waitFor(client, 'message.echo');
  child.send({ cmd: 'send', topic: 'echo', message: 'after', clientId });
  assert.deepEqual(await after, ['after']);
});

test("a Server whose event loop is blocked for 1.5 s inside a 'message' listener still answers its client's pings (interval 100 ms, timeout 300 ms): the client stays connected and later messages arrive", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 0 });
  const events = record(server);
  const connection = waitFor(server, 'connection', 10000);
  const child = spawnFixture(t, 'heartbeat-client.js', [server.socketFile, JSON.stringify({ heartbeatInterval: 100, heartbeatTimeout: 300 })]);
  contAtEnd(t, child);
  logChild(child);
  await connection;
  await logged(child, (m) => m.event === 'connect');
  const childEvents = [];
  child.on('message', (m) => childEvents.push(m));

  const blocked = waitFor(server, 'message.block');
  server.once('message.block', () => blockEventLoop(1500));
  child.send({ cmd: 'send', topic: 'block', message: 1 });
  await blocked;
  const later = collect(server, 'message.later', 2, 5000);
  child.send({ cmd: 'send', topic: 'later', message: 1 });
  child.send({ cmd: 'send', topic: 'later', message: 2 });
  assert.deepEqual((await later).map(([m]) => m), [1, 2]);
  await sleep(300);
  assert.deepEqual(childEvents.filter((m) => m.event === 'disconnect' || m.event === 'error'), [], 'the client was not dropped');
  assert.deepEqual(only(events, 'connectionClose', 'error'), [], 'the server dropped nobody');
});

test("a busy connection (a message every 20 ms for 1 s, heartbeatInterval 100 on both sides) is never dropped and every message arrives in order", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 100 });
  const serverEvents = record(server);
  const { client } = await connectClient(server, track, { heartbeatInterval: 100 });
  const clientEvents = record(client);

  const count = 50;
  const received = collect(server, 'message.tick', count, 5000);
  for (let i = 0; i < count; i++) {
    client.send('tick', i);
    await sleep(20);
  }
  const got = await received;
  assert.deepEqual(got.map(([m]) => m), Array.from({ length: count }, (_, i) => i));
  await sleep(300);
  assert.deepEqual(only(clientEvents, 'disconnect', 'connect', 'error', 'messageError'), [], 'the client kept its connection');
  assert.deepEqual(only(serverEvents, 'connectionClose', 'error', 'messageError'), [], 'the server kept its connection');
});

// ----- reasons on a graceful close -----

test("a graceful server.close() gives the client's 'disconnect' no reason (undefined)", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 100 });
  const { client } = await connectClient(server, track, { heartbeatInterval: 100, reconnectDelay: 50, retryDelay: 50 });
  const disconnected = waitFor(client, 'disconnect');
  server.close();
  const args = await disconnected;
  assert.equal(args[0], undefined, `reason: ${args[0]}`);
});

test("a graceful client.close() gives the server's 'connectionClose' no reason (undefined)", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { heartbeatInterval: 100 });
  const { client, clientId } = await connectClient(server, track, { heartbeatInterval: 100 });
  const closed = waitFor(server, 'connectionClose');
  client.close();
  const [id, reason] = await closed;
  assert.equal(id, clientId);
  assert.equal(reason, undefined, `reason: ${reason}`);
});

// ----- options -----

const PATH = '/tmp/nsipc-heartbeat-never-used.sock';

function assertRange(fn, pattern) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof RangeError, `expected a RangeError, got ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
    assert.equal(err.code, 'ERR_OUT_OF_RANGE', err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

for (const name of ['Server', 'Client', 'Peer']) {
  const make = (options) => new lib[name]({ socketFile: PATH, ...options });

  test(`new ${name}() throws RangeError ERR_OUT_OF_RANGE when heartbeatTimeout <= heartbeatInterval`, T, () => {
    assert.equal(typeof lib[name], 'function', `${name} is exported`);
    assertRange(() => make({ heartbeatInterval: 1000, heartbeatTimeout: 1000 }), /heartbeat/);
    assertRange(() => make({ heartbeatInterval: 1000, heartbeatTimeout: 999 }), /heartbeat/);
    assertRange(() => make({ heartbeatInterval: 200, heartbeatTimeout: 100 }), /heartbeat/);
    // Against the default interval (5000).
    assertRange(() => make({ heartbeatTimeout: 5000 }), /heartbeat/);
    assertRange(() => make({ heartbeatTimeout: 3000 }), /heartbeat/);
  });

  test(`new ${name}() throws RangeError ERR_OUT_OF_RANGE for a negative heartbeatInterval or heartbeatTimeout`, T, () => {
    assert.equal(typeof lib[name], 'function', `${name} is exported`);
    assertRange(() => make({ heartbeatInterval: -1 }), /heartbeatInterval/);
    assertRange(() => make({ heartbeatInterval: -100, heartbeatTimeout: 1000 }), /heartbeatInterval/);
    assertRange(() => make({ heartbeatInterval: 100, heartbeatTimeout: -1 }), /heartbeatTimeout/);
  });

  test(`new ${name}() accepts heartbeatInterval 0 (off), an interval alone (timeout defaults to 2x) and timeout > interval`, T, () => {
    assert.equal(typeof lib[name], 'function', `${name} is exported`);
    for (const options of [
      { heartbeatInterval: 0 },
      { heartbeatInterval: 10000 },
      { heartbeatInterval: 50 },
      { heartbeatInterval: 100, heartbeatTimeout: 101 },
      { heartbeatTimeout: 5001 },
      {},
    ]) {
      const made = make(options);
      assert.ok(made instanceof lib[name], JSON.stringify(options));
    }
  });
}
