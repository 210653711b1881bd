'use strict';
// Issue 6, backpressure: send() and broadcast() return false once a connection's buffered bytes
// reach highWaterMark, and 'drain' / drained() follow when the reader catches up; a server drops
// a client whose buffer would pass maxBufferedBytes ('slowClient', then 'connectionClose' with
// ERR_IPC_SLOW_CLIENT) and so keeps its memory bounded while the healthy clients get
// everything; a Client refuses sends past its maxBufferedBytes (ERR_IPC_BUFFER_FULL). Readers
// that stop reading are child processes stopped with SIGSTOP, with heartbeats off, so only
// backpressure acts on them. Each case runs in both delivery modes where the buffer means
// something different (not yet written, or not yet acknowledged).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { setImmediate: nextTurn } = require('node:timers/promises');
const { Client } = require('..');
const {
  socketPath,
  waitFor,
  sleep,
  until,
  withTimeout,
  counter,
  autoClose,
  startServer,
  spawnFixture,
  logChild,
  logged,
  contAtEnd,
} = require('./helpers');

const T = { timeout: 30000 };
const MODES = [undefined, 'at-least-once'];
const modeName = (delivery) => (delivery === undefined ? 'default delivery' : delivery);
const KiB = 1024;
const MiB = 1024 * KiB;

// ----- local helpers -----

/**
 * SIGSTOPs a child and waits until every thread of it is stopped: kill() only queues the signal,
 * and a reader thread that is running may still take bytes off the socket until it stops.
 */
async function stopChild(child) {
  child.kill('SIGSTOP');
  const taskDir = `/proc/${child.pid}/task`;
  // The state is the field after the command name, which is in parentheses and may hold anything.
  const stateOf = (tid) => fs.readFileSync(`${taskDir}/${tid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
  await until(() => fs.readdirSync(taskDir).every((tid) => stateOf(tid) === 'T'), 5000, `every thread of process ${child.pid} stopped`);
}

/** Spawns a fixture, logs its messages and makes sure it is not left stopped. */
function startChild(t, script, args) {
  const child = logChild(spawnFixture(t, script, args));
  contAtEnd(t, child);
  return child;
}

/** Records the events of a Server or Client that the tests assert on, with the reasons' codes. */
function record(emitter) {
  const events = [];
  const codeOf = (reason) => (reason === undefined ? undefined : reason && reason.code);
  emitter.on('disconnect', (reason) => events.push({ event: 'disconnect', code: codeOf(reason) }));
  emitter.on('connectionClose', (clientId, reason) => events.push({ event: 'connectionClose', clientId, code: codeOf(reason) }));
  emitter.on('clientDisconnect', (clientId, reason) => events.push({ event: 'clientDisconnect', clientId, code: codeOf(reason) }));
  emitter.on('messageError', (err) => events.push({ event: 'messageError', code: err.code }));
  emitter.on('error', (err) => events.push({ event: 'error', code: err.code, message: err.message }));
  return events;
}

/** Whether `promise` has settled, asked without waiting for it. */
function tracked(promise) {
  const state = { settled: false };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

/** A `size`-byte Buffer: u32 BE `index`, then index & 0xff in every other byte (fixtures check both). */
function blob(index, size) {
  const buf = Buffer.alloc(size, index & 0xff);
  buf.writeUInt32BE(index, 0);
  return buf;
}

// ----- highWaterMark and 'drain' -----

// About what the kernel's socket buffer holds for a reader that stopped: a Unix stream socket
// charges queued data to the sender's SO_SNDBUF (wmem_default unless set), and the last write
// may overshoot it by a little. In the default mode the library's buffer is what is not yet
// written, so it has to grow only once the kernel's is full.
const KERNEL_BUFFER = Number(fs.readFileSync('/proc/sys/net/core/wmem_default', 'utf8'));

/**
 * Sends `size`-byte blobs with `sendOne(size)` (which returns send()'s result), one per turn of
 * the event loop so the core's writer can write what the kernel takes, until the kernel's buffer
 * is certainly full and the library's buffer is well past highWaterMark; then waits for the
 * writer to give up. Returns how many were sent before the first `false`. The return values
 * before that point depend on how far the writer had got, so callers check the end state.
 */
async function fillPastKernel(sendOne, size, hwm) {
  let firstFalse = -1;
  for (let i = 0; i * size < 2 * KERNEL_BUFFER + 4 * hwm; i++) {
    if (!sendOne() && firstFalse < 0) firstFalse = i;
    await nextTurn();
  }
  await sleep(100);
  return firstFalse;
}

for (const delivery of MODES) {
  const d = delivery === undefined ? {} : { delivery };

  test(`${modeName(delivery)}: client.send() returns false once highWaterMark is passed for a server process that stopped reading (SIGSTOP), 'drain' and drained() follow once it reads again (SIGCONT), and the server gets every message in order`, T, async (t) => {
    const HWM = 64 * KiB;
    const SIZE = 16 * KiB;
    const socketFile = socketPath(t);
    const server = startChild(t, 'backpressure-server.js', [socketFile, JSON.stringify({ heartbeatInterval: 0, ...d })]);
    await logged(server, (m) => m.event === 'listening');
    const track = autoClose(t);
    const client = track(new Client({ socketFile, highWaterMark: HWM, heartbeatInterval: 0, ...d }));
    const events = record(client);
    client.connect();
    await waitFor(client, 'connect', 10000);

    let sent = 0;
    const sendOne = () => client.send('blob', blob(sent++, SIZE));
    assert.equal(sendOne(), true, 'under highWaterMark, send() returns true');
    await withTimeout(client.drained(), 5000, 'drained() while the server reads');

    await stopChild(server);
    const firstFalse = await fillPastKernel(sendOne, SIZE, HWM);
    t.diagnostic(`send() first returned false after ${firstFalse + 1} messages of ${SIZE / KiB} KiB to the stopped server`);
    assert.ok(firstFalse >= 0, 'send() returned false while the server was stopped');
    assert.ok(
      firstFalse * SIZE <= 2 * KERNEL_BUFFER + HWM,
      `send() returned false once what the kernel holds plus highWaterMark was sent, not only after ${firstFalse * SIZE} bytes`,
    );
    assert.equal(sendOne(), false, 'with the kernel buffer full and more queued, send() returns false');
    const drains = counter(client, 'drain');
    const drained = client.drained();
    const state = tracked(drained);
    await sleep(100);
    assert.deepEqual(drains, [], "no 'drain' while the server is stopped");
    assert.equal(state.settled, false, 'drained() waits while the server is stopped');

    const drain = waitFor(client, 'drain', 10000);
    server.kill('SIGCONT');
    await drain;
    await withTimeout(drained, 5000, 'drained() after SIGCONT');
    assert.equal(sendOne(), true, "after 'drain', send() returns true again");

    client.send('end', sent);
    const end = await logged(server, (m) => m.event === 'end');
    assert.deepEqual(
      { count: end.count, bytes: end.bytes, firstBad: end.firstBad },
      { count: sent, bytes: sent * SIZE, firstBad: -1 },
      'the server was handed every message, in order',
    );
    assert.deepEqual(events, [], 'no error and no disconnect');
  });

  test(`${modeName(delivery)}: server.send(…, clientId) returns false once highWaterMark is passed for a client process that stopped reading, broadcast() returns false while it is over, and 'drain' (clientId) and server.drained() follow once it reads again; both clients get every message in order`, T, async (t) => {
    const HWM = 64 * KiB;
    const SIZE = 16 * KiB;
    const track = autoClose(t);
    const server = await startServer(t, track, { highWaterMark: HWM, heartbeatInterval: 0, ...d });
    const events = record(server);
    const connectChild = async () => {
      const connection = waitFor(server, 'connection', 10000);
      const child = startChild(t, 'backpressure-client.js', [server.socketFile, JSON.stringify({ heartbeatInterval: 0, ...d })]);
      const [clientId] = await connection;
      return { child, clientId, sent: 0 };
    };
    const healthy = await connectChild();
    const stalled = await connectChild();
    const sendBlob = (c) => server.send('blob', blob(c.sent++, SIZE), c.clientId);

    assert.equal(sendBlob(stalled), true, 'under highWaterMark, send() returns true');
    assert.equal(server.broadcast('note', 'all well'), true, 'broadcast() returns true while no client is over');
    await withTimeout(server.drained(), 5000, 'server.drained() while both clients read');

    await stopChild(stalled.child);
    const firstFalse = await fillPastKernel(() => sendBlob(stalled), SIZE, HWM);
    t.diagnostic(`send() first returned false after ${firstFalse + 1} messages of ${SIZE / KiB} KiB to the stopped client`);
    assert.ok(firstFalse >= 0, 'send() to the stopped client returned false');
    assert.ok(
      firstFalse * SIZE <= 2 * KERNEL_BUFFER + HWM,
      `send() returned false once what the kernel holds plus highWaterMark was sent, not only after ${firstFalse * SIZE} bytes`,
    );
    assert.equal(sendBlob(stalled), false, 'with its kernel buffer full and more queued, send() to the stopped client returns false');
    assert.equal(sendBlob(healthy), true, 'send() to the other client, which is not over highWaterMark, returns true');
    assert.equal(server.broadcast('note', 'one is over'), false, 'broadcast() returns false while a client is over highWaterMark');
    const drains = counter(server, 'drain');
    const drained = server.drained();
    const state = tracked(drained);
    await sleep(100);
    assert.deepEqual(drains.filter(([id]) => id === stalled.clientId), [], "no 'drain' for the stopped client yet");
    assert.equal(state.settled, false, 'server.drained() waits for the stopped client');

    stalled.child.kill('SIGCONT');
    await until(() => drains.some(([id]) => id === stalled.clientId), 10000, "'drain' with the resumed client's id");
    await withTimeout(drained, 10000, 'server.drained() after SIGCONT');
    assert.equal(sendBlob(stalled), true, "after 'drain', send() to that client returns true again");

    for (const c of [healthy, stalled]) server.send('end', c.sent, c.clientId);
    for (const c of [healthy, stalled]) {
      const end = await logged(c.child, (m) => m.event === 'end');
      assert.deepEqual(
        { count: end.count, bytes: end.bytes, firstBad: end.firstBad },
        { count: c.sent, bytes: c.sent * SIZE, firstBad: -1 },
        `client ${c.clientId} was handed every message, in order`,
      );
      assert.deepEqual(c.child.log.filter((m) => m.event === 'error' || m.event === 'disconnect'), []);
    }
    assert.deepEqual(events, [], 'no error and no client dropped');
  });
}

// ----- maxBufferedBytes -----

test("maxBufferedBytes: a client process that stops reading (SIGSTOP, heartbeats off) while a server process broadcasts 1 GiB in 1 MiB Buffers to it and to 10 healthy client processes is dropped with 'slowClient' then 'connectionClose' ERR_IPC_SLOW_CLIENT and no 'error'; the healthy clients get every byte in order; the server's RSS stays within maxBufferedBytes and a small margin of its baseline", { timeout: 120000 }, async (t) => {
  const CHUNK = MiB;
  const CHUNKS = 1024; // 1 GiB to each client
  const HEALTHY = 10;
  const MAX_BUFFERED = 16 * MiB;
  const HWM = MiB;
  const PATIENCE = 100; // ms the broadcaster waits for drained() before sending on regardless
  const socketFile = socketPath(t);
  const server = startChild(t, 'backpressure-broadcaster.js', [
    socketFile,
    JSON.stringify({ maxBufferedBytes: MAX_BUFFERED, highWaterMark: HWM, heartbeatInterval: 0 }),
    String(CHUNKS),
    String(CHUNK),
    String(PATIENCE),
  ]);
  await logged(server, (m) => m.event === 'listening');

  const clients = [];
  for (let i = 0; i <= HEALTHY; i++) {
    clients.push(startChild(t, 'backpressure-client.js', [socketFile, JSON.stringify({ heartbeatInterval: 0, reconnectDelay: 10, retryDelay: 10 })]));
  }
  await until(() => server.log.filter((m) => m.event === 'connection').length === HEALTHY + 1, 30000, 'every client connected');
  const idOf = (child) => server.log.find((m) => m.event === 'connection' && m.pid === child.pid).clientId;
  const [stalled, ...healthy] = clients;
  const stalledId = idOf(stalled);
  const healthyIds = healthy.map(idOf);
  await stopChild(stalled);

  // The server's resident memory, from /proc, sampled all along.
  const rssOf = (pid) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * KiB;
  const baseline = rssOf(server.pid);
  let peak = baseline;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(server.pid));
    } catch {
      // the process is gone; the assertions below say why
    }
  }, 10);
  t.after(() => clearInterval(sampler));

  server.send({ cmd: 'start' });
  const done = await logged(server, (m) => m.event === 'broadcastDone', 110000);
  const ends = await Promise.all(healthy.map((c) => logged(c, (m) => m.event === 'end', 30000)));
  await logged(server, (m) => m.event === 'drained', 10000);
  clearInterval(sampler);
  peak = Math.max(peak, done.maxRss);

  // The stalled client: 'slowClient', then 'connectionClose' with ERR_IPC_SLOW_CLIENT; no 'error'.
  const aboutStalled = server.log.filter((m) => m.clientId === stalledId && m.event !== 'connection');
  assert.deepEqual(aboutStalled, [
    { event: 'slowClient', clientId: stalledId },
    { event: 'connectionClose', clientId: stalledId, code: 'ERR_IPC_SLOW_CLIENT' },
  ]);
  assert.deepEqual(server.log.filter((m) => m.event === 'error'), [], "the server emitted no 'error'");
  assert.deepEqual(
    server.log.filter((m) => m.event === 'slowClient' || m.event === 'connectionClose').filter((m) => healthyIds.includes(m.clientId)),
    [],
    'no healthy client was dropped',
  );
  // The healthy clients: every byte, in order.
  ends.forEach((end, i) => {
    assert.deepEqual(
      { sent: end.sent, count: end.count, bytes: end.bytes, firstBad: end.firstBad },
      { sent: CHUNKS, count: CHUNKS, bytes: CHUNKS * CHUNK, firstBad: -1 },
      `healthy client ${healthyIds[i]} was handed every chunk, intact and in order`,
    );
    assert.deepEqual(healthy[i].log.filter((m) => m.event === 'error' || m.event === 'disconnect'), []);
  });
  // Memory: what the server holds for its clients is at most the stalled client's queue, which
  // maxBufferedBytes caps, plus what the healthy clients have not read yet, which the broadcaster
  // keeps near highWaterMark by waiting for drained() (a broadcast's chunk is one buffer shared by
  // every client's queue), plus the chunk being written. Allow as much again and 32 MiB for the
  // allocator and the JS heap: far below the 1 GiB that went through, and below a server that
  // kept everything for the stalled client.
  const bound = baseline + 2 * (MAX_BUFFERED + HWM + 2 * CHUNK) + 32 * MiB;
  t.diagnostic(
    `server RSS: baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, bound ${(bound / MiB).toFixed(1)} MiB; ` +
      `broadcast() returned false ${done.waits} times, drained() took longer than ${PATIENCE} ms ${done.gaveUp} times`,
  );
  assert.ok(peak <= bound, `server RSS peaked at ${(peak / MiB).toFixed(1)} MiB, over the bound of ${(bound / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(1)} MiB)`);
});

for (const delivery of MODES) {
  const d = delivery === undefined ? {} : { delivery };

  test(`${modeName(delivery)}: a Client's sends past its maxBufferedBytes, while its server process is stopped (SIGSTOP), are each refused with 'error' ERR_IPC_BUFFER_FULL; the connection stays up and the server then gets exactly the accepted messages, in order`, T, async (t) => {
    const MAX_BUFFERED = MiB;
    const SIZE = 32 * KiB;
    const socketFile = socketPath(t);
    const server = startChild(t, 'backpressure-server.js', [socketFile, JSON.stringify({ heartbeatInterval: 0, ...d })]);
    await logged(server, (m) => m.event === 'listening');
    const track = autoClose(t);
    const client = track(new Client({ socketFile, maxBufferedBytes: MAX_BUFFERED, highWaterMark: 64 * KiB, heartbeatInterval: 0, ...d }));
    const errors = counter(client, 'error');
    const disconnects = counter(client, 'disconnect');
    client.connect();
    await waitFor(client, 'connect', 10000);

    // One message per turn of the event loop: its batch reaches the core at the end of the tick,
    // so an 'error' for it has been emitted by the next turn, and tells which message it was.
    let sent = 0;
    const refused = [];
    const sendOne = async () => {
      const before = errors.length;
      const index = sent++;
      client.send('blob', blob(index, SIZE));
      await nextTurn();
      if (errors.length > before) refused.push(index);
    };
    await stopChild(server);
    // Send until a send is refused right after the core's writer had time to put into the
    // socket whatever the kernel takes (in the default mode an earlier refusal may come while
    // the writer is behind, and room appear once it catches up).
    for (let settled = false; !settled; ) {
      while (!refused.includes(sent - 1) && sent * SIZE < 64 * MiB) await sendOne();
      assert.ok(refused.length > 0, `a send was refused within ${sent} messages of ${SIZE / KiB} KiB (maxBufferedBytes ${MAX_BUFFERED})`);
      await sleep(100);
      await sendOne();
      settled = refused.includes(sent - 1);
    }
    // The buffer is full now and stays full while the server is stopped: these are all refused.
    const last = sent;
    for (let i = 0; i < 5; i++) await sendOne();
    assert.deepEqual(refused.filter((i) => i >= last), [last, last + 1, last + 2, last + 3, last + 4], 'every send into the full buffer is refused');

    server.kill('SIGCONT');
    await withTimeout(client.drained(), 10000, 'drained() after SIGCONT');
    client.send('end', sent);
    const end = await logged(server, (m) => m.event === 'end');
    t.diagnostic(`${end.count} of ${sent} messages accepted; refused: ${refused.join(', ')}`);
    const accepted = Array.from({ length: sent }, (_, i) => i).filter((i) => !refused.includes(i));
    assert.deepEqual(end.indices, accepted, 'the server was handed exactly the messages that were not refused, in order');
    assert.equal(end.bytes, end.count * SIZE);
    assert.ok(
      refused[0] * SIZE >= MAX_BUFFERED - SIZE,
      `nothing was refused before maxBufferedBytes could have been reached: the first refused was message ${refused[0]}`,
    );
    assert.deepEqual([...new Set(errors.map(([err]) => err.code))], ['ERR_IPC_BUFFER_FULL']);
    assert.equal(errors.length, refused.length, `one 'error' per refused message`);
    assert.deepEqual(disconnects, [], 'the connection stayed up');
  });
}
