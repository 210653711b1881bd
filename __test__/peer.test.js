'use strict';
// Peer: the same code on both ends. The first to start listens, the next connects; simultaneous
// starts end as one server and one client; stale socket files are reclaimed; the client takes
// over when the server goes away; a third peer is refused with ERR_IPC_PEER_BUSY; messages sent
// without a partner are queued; requests both ways; close() and connect() rules.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');
const { Peer } = require('..');
const { socketPath, waitFor, collect, sleep, until, withTimeout, waitClose, cleanup, spawnFixture, childMessage, childExit } = require('./helpers');

const T = { timeout: 30000 };
const FAST = { retryDelay: 50, reconnectDelay: 20 };

/** A Peer on `socketFile` with fast retries, closed when the test ends; events are recorded in peer.events. */
function makePeer(t, socketFile, options = {}) {
  const peer = cleanup(t, new Peer({ socketFile, ...FAST, ...options }));
  peer.events = record(peer);
  return peer;
}

/** Records a Peer's events in order: { event, ... }. */
function record(peer) {
  const events = [];
  peer.on('role', (role) => events.push({ event: 'role', role }));
  peer.on('connect', () => events.push({ event: 'connect', role: peer.role }));
  peer.on('disconnect', (reason) => events.push({ event: 'disconnect', code: reason === undefined ? undefined : reason && reason.code }));
  peer.on('connectError', (err) => events.push({ event: 'connectError', code: err.code }));
  peer.on('message', (message, topic) => events.push({ event: 'message', message, topic }));
  peer.on('messageError', (err) => events.push({ event: 'messageError', code: err.code }));
  peer.on('error', (err) => events.push({ event: 'error', code: err.code, message: err.message }));
  peer.on('close', () => events.push({ event: 'close' }));
  return events;
}

const only = (events, ...names) => events.filter((e) => names.includes(e.event));
const roles = (peer) => only(peer.events, 'role').map((e) => e.role);

/** Resolves with the first 'role' of `peer` (or its role if it already has one). */
async function roleOf(peer, ms = 5000) {
  if (peer.role !== null && peer.role !== undefined) return peer.role;
  const [role] = await waitFor(peer, 'role', ms);
  return role;
}

/** Connects `peer` and waits for its 'role' and 'connect'. */
async function connectPeer(peer, ms = 5000) {
  const role = waitFor(peer, 'role', ms);
  const connected = waitFor(peer, 'connect', ms);
  assert.equal(peer.connect(), peer, 'connect() returns the peer');
  const [[r]] = await Promise.all([role, connected]);
  return r;
}

// ----- child processes running fixtures/peer.js -----

/** Starts peer.js; resolves once it is loaded (it connects on {cmd:'connect'}). */
async function spawnPeer(t, socketFile, options = {}) {
  const child = spawnFixture(t, 'peer.js', [socketFile, JSON.stringify({ ...FAST, ...options })]);
  child.log = [];
  child.on('message', (m) => child.log.push(m));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
  });
  await childMessage(child, (m) => m.event === 'ready', 10000);
  return child;
}

/** Starts peer.js and has it connect; resolves with the child once it reported role `role`. */
async function startPeerChild(t, socketFile, role, options = {}) {
  const child = await spawnPeer(t, socketFile, options);
  const took = childMessage(child, (m) => m.event === 'role', 5000);
  child.send({ cmd: 'connect' });
  const m = await took;
  assert.equal(m.role, role, `the child took role '${role}'; its log: ${JSON.stringify(child.log)}`);
  return child;
}

async function kill9(child) {
  child.kill('SIGKILL');
  const exit = await childExit(child);
  assert.equal(exit.signal, 'SIGKILL');
}

/** Asserts that `a` and `b` exchange a message and a request each way. */
async function assertExchange(a, b, label = '') {
  const toB = waitFor(b, 'message.ab');
  a.send('ab', { from: 'a', label });
  assert.deepEqual(await toB, [{ from: 'a', label }]);
  const toA = waitFor(a, 'message.ba');
  b.send('ba', { from: 'b', label });
  assert.deepEqual(await toA, [{ from: 'b', label }]);
}

// ----- two peers -----

test("two Peers in one process on one socketFile: one takes role 'server', the other 'client', both 'connect', and role getters match", T, async (t) => {
  const socketFile = socketPath(t);
  const a = makePeer(t, socketFile);
  const b = makePeer(t, socketFile);
  assert.equal(a.role, null, 'role is null before connect()');
  assert.equal(b.role, null);

  const [ra, rb] = await Promise.all([connectPeer(a), connectPeer(b)]);
  assert.deepEqual([ra, rb].sort(), ['client', 'server']);
  assert.equal(a.role, ra);
  assert.equal(b.role, rb);
  await sleep(100);
  for (const p of [a, b]) {
    assert.deepEqual(roles(p), [p.role], `one 'role' event: ${JSON.stringify(p.events)}`);
    const connects = only(p.events, 'connect');
    assert.equal(connects.length, 1, JSON.stringify(p.events));
    assert.equal(connects[0].role, p.role, "the role is already set when 'connect' is emitted");
    assert.deepEqual(only(p.events, 'error', 'disconnect'), []);
  }
});

test("two connected Peers exchange messages both ways ('message' and 'message.<topic>') and requests both ways", T, async (t) => {
  const socketFile = socketPath(t);
  const server = makePeer(t, socketFile);
  assert.equal(await roleOf(server.connect()), 'server');
  const client = makePeer(t, socketFile);
  const serverConnect = waitFor(server, 'connect');
  assert.equal(await connectPeer(client), 'client');
  await serverConnect;

  // Messages.
  const atClient = waitFor(client, 'message');
  const atClientTopic = waitFor(client, 'message.down');
  server.send('down', { n: 1, list: [1, 'two', null] });
  assert.deepEqual(await atClient, [{ n: 1, list: [1, 'two', null] }, 'down']);
  assert.deepEqual(await atClientTopic, [{ n: 1, list: [1, 'two', null] }]);
  const atServer = waitFor(server, 'message');
  const atServerTopic = waitFor(server, 'message.up');
  client.send('up', Buffer.from([1, 2, 3]));
  const [buf, topic] = await atServer;
  assert.equal(topic, 'up');
  assert.ok(Buffer.isBuffer(buf));
  assert.deepEqual([...buf], [1, 2, 3]);
  assert.deepEqual([...(await atServerTopic)[0]], [1, 2, 3]);

  // Requests.
  assert.equal(server.handle('double', (n) => n * 2), server, 'handle() returns the peer');
  assert.equal(client.handle('upper', async (s) => s.toUpperCase()), client);
  assert.equal(await withTimeout(client.request('double', 21), 5000, "the server's reply"), 42);
  assert.equal(await withTimeout(server.request('upper', 'hi'), 5000, "the client's reply"), 'HI');
  await assert.rejects(withTimeout(client.request('nothing-here', 1), 5000, 'ERR_IPC_NO_HANDLER'), { code: 'ERR_IPC_NO_HANDLER', topic: 'nothing-here' });
  await assert.rejects(withTimeout(server.request('nothing-here', 1), 5000, 'ERR_IPC_NO_HANDLER'), { code: 'ERR_IPC_NO_HANDLER', topic: 'nothing-here' });
  // Requests never emit 'message'.
  assert.deepEqual(only(server.events, 'message').map((e) => e.topic), ['up']);
  assert.deepEqual(only(client.events, 'message').map((e) => e.topic), ['down']);
});

test("new Peer(socketFile) with a plain path string works: the first to connect becomes 'server'", T, async (t) => {
  const socketFile = socketPath(t);
  const peer = cleanup(t, new Peer(socketFile));
  assert.equal(await roleOf(peer.connect()), 'server');
  assert.equal(peer.role, 'server');
});

// ----- simultaneous start -----

test('two peer processes started at the same instant end as exactly one server and one client, connected to each other, in each of 50 rounds', { timeout: 120000 }, async (t) => {
  const rounds = 50;
  const started = performance.now();
  let maxSkew = 0; // ms between the two children's connect() calls
  let contested = 0; // rounds in which a child saw a connectError or changed role on the way
  for (let round = 0; round < rounds; round++) {
    const socketFile = socketPath(t, `race${round}`);
    const children = await Promise.all([spawnPeer(t, socketFile), spawnPeer(t, socketFile)]);
    const connected = children.map((c) => childMessage(c, (m) => m.event === 'connect', 8000));
    const at = Date.now() + 50;
    for (const c of children) c.send({ cmd: 'connect', at });
    try {
      await Promise.all(connected);
      const finalRoles = children.map((c) => only(c.log, 'role').at(-1)?.role);
      assert.deepEqual([...finalRoles].sort(), ['client', 'server'], `round ${round}: roles ${JSON.stringify(finalRoles)}`);
      // They are partners: a message from one reaches the other.
      const got = childMessage(children[1], (m) => m.event === 'message' && m.topic === 'race', 3000);
      children[0].send({ cmd: 'send', topic: 'race', message: round });
      assert.equal((await got).message, round);
      const [ca, cb] = children.map((c) => c.log.find((m) => m.event === 'connecting').time);
      maxSkew = Math.max(maxSkew, Math.abs(ca - cb));
      if (children.some((c) => only(c.log, 'connectError').length > 0 || only(c.log, 'role').length > 1)) contested++;
      for (const c of children) {
        assert.deepEqual(only(c.log, 'error', 'disconnect'), [], `round ${round}: ${JSON.stringify(c.log)}`);
        assert.equal(only(c.log, 'connect').length, 1, `round ${round}: ${JSON.stringify(c.log)}`);
      }
    } catch (err) {
      err.message += `\nround ${round} logs:\n  A: ${JSON.stringify(children[0].log)}\n  B: ${JSON.stringify(children[1].log)}`;
      throw err;
    } finally {
      await Promise.all(children.map((c) => kill9(c)));
    }
  }
  t.diagnostic(`${rounds} rounds in ${((performance.now() - started) / 1000).toFixed(1)} s; largest start skew ${maxSkew.toFixed(2)} ms; ${contested} rounds with a connectError or a role change`);
});

// ----- stale socket files and failover -----

test('a stale socket file left by a SIGKILLed peer process does not stop the next start: a new Peer becomes server and another connects as client', T, async (t) => {
  const socketFile = socketPath(t);
  const a = await startPeerChild(t, socketFile, 'server');
  await kill9(a);
  assert.ok(fs.existsSync(socketFile), 'the killed server left its socket file behind');

  const b = makePeer(t, socketFile);
  assert.equal(await roleOf(b.connect()), 'server');
  const c = makePeer(t, socketFile);
  const bConnect = waitFor(b, 'connect');
  assert.equal(await connectPeer(c), 'client');
  await bConnect;
  await assertExchange(b, c, 'after stale');
  assert.deepEqual(only(b.events, 'error', 'connectError'), []);
});

test("failover: when the server peer process is SIGKILLed, the client peer emits 'disconnect', then 'role' 'server'; a new peer joins as 'client' and messages flow", T, async (t) => {
  const socketFile = socketPath(t);
  const a = await startPeerChild(t, socketFile, 'server');
  const b = makePeer(t, socketFile);
  const aConnect = childMessage(a, (m) => m.event === 'connect');
  assert.equal(await connectPeer(b), 'client');
  await aConnect;

  const disconnected = waitFor(b, 'disconnect');
  const tookOver = waitFor(b, 'role', 5000);
  await kill9(a);
  await disconnected;
  assert.deepEqual(await tookOver, ['server']);
  assert.equal(b.role, 'server');
  assert.deepEqual(only(b.events, 'role', 'connect', 'disconnect').map((e) => e.event + (e.role ? `:${e.role}` : '')), [
    'role:client',
    'connect:client',
    'disconnect',
    'role:server',
  ]);

  const c = makePeer(t, socketFile);
  const bConnect = waitFor(b, 'connect');
  assert.equal(await connectPeer(c), 'client');
  await bConnect;
  await assertExchange(b, c, 'after failover');
  assert.deepEqual(only(b.events, 'error'), []);
});

test("graceful failover: when the server Peer calls close(), the client Peer emits 'disconnect', then 'role' 'server', and a new Peer joins it as 'client'", T, async (t) => {
  const socketFile = socketPath(t);
  const a = makePeer(t, socketFile);
  assert.equal(await roleOf(a.connect()), 'server');
  const b = makePeer(t, socketFile);
  assert.equal(await connectPeer(b), 'client');

  const disconnected = waitFor(b, 'disconnect');
  const tookOver = waitFor(b, 'role', 5000);
  const aClosed = waitClose(a);
  a.close();
  await aClosed;
  await disconnected;
  assert.deepEqual(await tookOver, ['server']);
  assert.equal(b.role, 'server');

  const c = makePeer(t, socketFile);
  const bConnect = waitFor(b, 'connect');
  assert.equal(await connectPeer(c), 'client');
  await bConnect;
  await assertExchange(b, c, 'after graceful failover');
  assert.deepEqual(only(a.events, 'close').length, 1);
  assert.deepEqual(only(b.events, 'error'), []);
});

test("a server peer whose partner leaves stays server: 'disconnect', no 'role' event, and the next partner gives 'connect' again", T, async (t) => {
  const socketFile = socketPath(t);
  const a = makePeer(t, socketFile);
  assert.equal(await roleOf(a.connect()), 'server');

  // First partner: a process, SIGKILLed.
  const aConnect1 = waitFor(a, 'connect');
  const b = await startPeerChild(t, socketFile, 'client');
  await aConnect1;
  const disconnected1 = waitFor(a, 'disconnect');
  await kill9(b);
  await disconnected1;

  // Second partner: an in-process Peer that closes.
  const c = makePeer(t, socketFile);
  const aConnect2 = waitFor(a, 'connect');
  assert.equal(await connectPeer(c), 'client');
  await aConnect2;
  await assertExchange(a, c, 'second partner');
  const disconnected2 = waitFor(a, 'disconnect');
  c.close();
  const [reason] = await disconnected2;
  assert.equal(reason, undefined, "a partner's close() gives 'disconnect' no reason");

  // Third partner.
  const d = makePeer(t, socketFile);
  const aConnect3 = waitFor(a, 'connect');
  assert.equal(await connectPeer(d), 'client');
  await aConnect3;
  await assertExchange(a, d, 'third partner');

  assert.equal(a.role, 'server');
  assert.deepEqual(roles(a), ['server'], 'no further role event');
  assert.deepEqual(only(a.events, 'connect', 'disconnect').map((e) => e.event), ['connect', 'disconnect', 'connect', 'disconnect', 'connect']);
  assert.deepEqual(only(a.events, 'error'), []);
});

// ----- a third peer -----

for (const leaves of ['client', 'server']) {
  test(`a third Peer gets 'connectError' ERR_IPC_PEER_BUSY and keeps retrying without 'connect'; once the ${leaves} of the pair closes, it joins`, T, async (t) => {
    const socketFile = socketPath(t);
    const a = makePeer(t, socketFile);
    assert.equal(await roleOf(a.connect()), 'server');
    const b = makePeer(t, socketFile);
    const aConnect = waitFor(a, 'connect');
    assert.equal(await connectPeer(b), 'client');
    await aConnect;

    const c = makePeer(t, socketFile, { retryDelay: 100 });
    const busy = collect(c, 'connectError', 3, 5000);
    c.connect();
    for (const [err] of await busy) {
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'ERR_IPC_PEER_BUSY', err.message);
    }
    assert.deepEqual(only(c.events, 'connect'), [], 'the third peer never connected');
    assert.deepEqual(only(a.events, 'disconnect', 'error'), [], 'the pair was not disturbed');
    assert.deepEqual(only(b.events, 'disconnect', 'error'), [], 'the pair was not disturbed');
    await assertExchange(a, b, 'pair still up');

    const [leaving, staying] = leaves === 'server' ? [a, b] : [b, a];
    const cConnect = waitFor(c, 'connect', 5000);
    const stayingConnect = waitFor(staying, 'connect', 5000);
    leaving.close();
    await Promise.all([cConnect, stayingConnect]);
    assert.deepEqual([c.role, staying.role].sort(), ['client', 'server']);
    await assertExchange(staying, c, 'after joining');
    assert.deepEqual(only(c.events, 'error'), []);
    assert.deepEqual(only(staying.events, 'error'), []);
  });
}

// ----- queue -----

test('messages sent with no partner connected (before connect() and while alone as server) are queued and delivered in order once a partner connects', T, async (t) => {
  const socketFile = socketPath(t);
  const a = makePeer(t, socketFile);
  a.send('q', 0);
  a.send('q', 1);
  assert.equal(await roleOf(a.connect()), 'server');
  a.send('q', 2);
  await sleep(50);
  a.send('q', 3);

  const b = makePeer(t, socketFile);
  b.send('r', 'before connect');
  const atB = collect(b, 'message.q', 4, 5000);
  const atA = collect(a, 'message.r', 1, 5000);
  assert.equal(await connectPeer(b), 'client');
  assert.deepEqual((await atB).map(([m]) => m), [0, 1, 2, 3]);
  assert.deepEqual((await atA).map(([m]) => m), ['before connect']);
  assert.deepEqual(only(a.events, 'error'), []);
});

test('messages sent by a client peer after its server went away are queued and delivered to the next partner', T, async (t) => {
  const socketFile = socketPath(t);
  const a = await startPeerChild(t, socketFile, 'server');
  const b = makePeer(t, socketFile);
  assert.equal(await connectPeer(b), 'client');
  const disconnected = waitFor(b, 'disconnect');
  const tookOver = waitFor(b, 'role', 5000);
  await kill9(a);
  await disconnected;
  b.send('q', 'while alone 1');
  await tookOver;
  b.send('q', 'while alone 2');
  const c = await spawnPeer(t, socketFile);
  const got = [];
  c.on('message', (m) => m.event === 'message' && got.push(m.message));
  c.send({ cmd: 'connect' });
  await until(() => got.length >= 2, 5000, `queued messages reach the new partner: ${JSON.stringify(c.log)}`);
  assert.deepEqual(got, ['while alone 1', 'while alone 2']);
});

// ----- close, connect, outstanding requests -----

test("peer.close() emits 'close' exactly once, even when called twice, and the partner gets 'disconnect'", T, async (t) => {
  const socketFile = socketPath(t);
  const a = makePeer(t, socketFile);
  assert.equal(await roleOf(a.connect()), 'server');
  const b = makePeer(t, socketFile);
  assert.equal(await connectPeer(b), 'client');

  const aDisconnect = waitFor(a, 'disconnect');
  const closed = waitClose(b);
  assert.equal(b.close(), b, 'close() returns the peer');
  b.close();
  await closed;
  b.close();
  await aDisconnect;
  await sleep(200);
  assert.equal(only(b.events, 'close').length, 1, JSON.stringify(b.events));
  assert.deepEqual(b.events.at(-1), { event: 'close' }, "'close' is the last event");
  assert.deepEqual(only(b.events, 'error'), []);
});

test("close() on a Peer that never connected emits 'close' exactly once", T, async (t) => {
  const peer = new Peer({ socketFile: socketPath(t) });
  const events = record(peer);
  peer.close();
  peer.close();
  await waitClose(peer);
  await sleep(100);
  assert.deepEqual(events, [{ event: 'close' }]);
});

test('connect() called twice throws ERR_IPC_ALREADY_CONNECTING synchronously', T, async (t) => {
  const peer = makePeer(t, socketPath(t));
  assert.equal(peer.connect(), peer);
  assert.throws(() => peer.connect(), (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'ERR_IPC_ALREADY_CONNECTING');
    return true;
  });
  assert.equal(await roleOf(peer), 'server');
  assert.throws(() => peer.connect(), { code: 'ERR_IPC_ALREADY_CONNECTING' });
});

test('a request outstanding when the server peer process is SIGKILLed rejects with ERR_IPC_DISCONNECTED', T, async (t) => {
  const socketFile = socketPath(t);
  const a = await startPeerChild(t, socketFile, 'server');
  const b = makePeer(t, socketFile);
  assert.equal(await connectPeer(b), 'client');
  const handling = childMessage(a, (m) => m.event === 'handling' && m.topic === 'hang');
  const pending = b.request('hang', 'waiting', { timeout: 20000 });
  pending.catch(() => {});
  await handling;
  await kill9(a);
  await assert.rejects(withTimeout(pending, 5000, 'the rejection'), (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'ERR_IPC_DISCONNECTED', err.message);
    assert.equal(err.topic, 'hang');
    return true;
  });
});

test('a request outstanding when the client peer process is SIGKILLed rejects with ERR_IPC_DISCONNECTED on the server peer', T, async (t) => {
  const socketFile = socketPath(t);
  const a = makePeer(t, socketFile);
  assert.equal(await roleOf(a.connect()), 'server');
  const aConnect = waitFor(a, 'connect');
  const b = await startPeerChild(t, socketFile, 'client');
  await aConnect;
  const handling = childMessage(b, (m) => m.event === 'handling' && m.topic === 'hang');
  const pending = a.request('hang', 'waiting', { timeout: 20000 });
  pending.catch(() => {});
  await handling;
  await kill9(b);
  await assert.rejects(withTimeout(pending, 5000, 'the rejection'), (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'ERR_IPC_DISCONNECTED', err.message);
    assert.equal(err.topic, 'hang');
    return true;
  });
  assert.equal(a.role, 'server');
});

// ----- heartbeats on a Peer -----

test("a server peer detects its SIGSTOPped partner by heartbeat: 'disconnect' with reason ERR_IPC_HEARTBEAT_TIMEOUT within heartbeatTimeout + heartbeatInterval, stays server, and the partner reconnects after SIGCONT", T, async (t) => {
  const heartbeatInterval = 200;
  const heartbeatTimeout = 600;
  const socketFile = socketPath(t);
  const a = makePeer(t, socketFile, { heartbeatInterval, heartbeatTimeout });
  assert.equal(await roleOf(a.connect()), 'server');
  const aConnect = waitFor(a, 'connect');
  const b = await startPeerChild(t, socketFile, 'client', { handshakeTimeout: 1000 });
  await aConnect;
  await sleep(2 * heartbeatInterval);

  const disconnected = waitFor(a, 'disconnect', 5000);
  b.kill('SIGSTOP');
  const stoppedAt = performance.now();
  const [reason] = await disconnected;
  const elapsed = performance.now() - stoppedAt;
  t.diagnostic(`detected ${elapsed.toFixed(1)} ms after SIGSTOP`);
  assert.equal(reason && reason.code, 'ERR_IPC_HEARTBEAT_TIMEOUT');
  assert.ok(
    elapsed <= heartbeatTimeout + heartbeatInterval,
    `detected ${elapsed.toFixed(1)} ms after SIGSTOP; must be within ${heartbeatTimeout + heartbeatInterval} ms`,
  );
  assert.equal(a.role, 'server');

  const again = waitFor(a, 'connect', 10000);
  b.kill('SIGCONT');
  await again;
  assert.deepEqual(roles(a), ['server']);
  assert.deepEqual(only(a.events, 'error'), []);
});
