'use strict';
// Shared by the test files: unique socket paths, waiting for events with a deadline, closing what
// a test opened when it ends, starting Servers and connecting Clients, and child processes that
// run a server or client script.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { fork } = require('node:child_process');

// The library ({ Server, Client }), loaded on first use rather than here: process.test.js uses
// these helpers without ever loading the library in its own process (its children and workers do).
const lib = () => require('..');

let pathCount = 0;

/**
 * A fresh socket path in its own temp directory, removed when the test ends; on Windows a fresh
 * named pipe (it vanishes with its server), so the same tests run there.
 */
function socketPath(t, name = 'ipc') {
  if (process.platform === 'win32') return `\\\\.\\pipe\\nsipc-${name}-${process.pid}-${pathCount++}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-'));
  if (t && t.after) t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, `${name}-${process.pid}-${pathCount++}.sock`);
}

/** Resolves with the event's arguments, or rejects after `ms` naming the event. */
async function waitFor(emitter, event, ms = 5000) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    return await once(emitter, event, { signal: ac.signal });
  } catch (err) {
    if (ac.signal.aborted) throw new Error(`timed out after ${ms} ms waiting for '${event}'`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Collects the first `count` emissions of `event` (arguments arrays), with a deadline. */
function collect(emitter, event, count, ms = 5000) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out after ${ms} ms: saw ${seen.length} of ${count} '${event}' events`));
    }, ms);
    function onEvent(...args) {
      seen.push(args);
      if (seen.length === count) {
        clearTimeout(timer);
        emitter.off(event, onEvent);
        resolve(seen);
      }
    }
    emitter.on(event, onEvent);
  });
}

/** Resolves after `ms`. */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `predicate` every 5 ms until it returns true; rejects after `ms`, naming `what`. */
async function until(predicate, ms = 5000, what = String(predicate)) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms: ${what}`);
    await sleep(5);
  }
}

/** Settles like `promise`, or rejects after `ms` with "timed out after <ms> ms waiting for <what>". */
function withTimeout(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Waits for `emitter`'s 'close' (at most `ms`). Unlike waitFor() (events.once), an 'error' emitted
 * meanwhile does not reject it: several tests expect an 'error' right before 'close'.
 */
function waitClose(emitter, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for 'close'`)), ms);
    emitter.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// ----- closing what a test opened -----

/**
 * Closes one Server or Client when the test ends and waits (at most 3 s) for its 'close'; a
 * missing 'close' does not fail the test (the lifecycle tests check 'close' themselves).
 * Returns `emitter`.
 */
function cleanup(t, emitter) {
  const closed = new Promise((resolve) => emitter.once('close', resolve));
  t.after(async () => {
    emitter.close();
    let timer;
    await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 3000)))]);
    clearTimeout(timer);
  });
  return emitter;
}

/**
 * Returns `track(emitter)`, which registers a Server, Client, raw net.Socket or net.Server to be
 * closed when test `t` ends, gives it `closedPromise` (resolves on its 'close') and returns it.
 * When the test ends they close in turn: raw sockets first (destroyed), then Clients, then
 * Servers and net.Servers (a net.Server's open connections are destroyed first, or its 'close'
 * would wait for them); each step waits for every 'close' in it, failing after 5 s.
 */
function autoClose(t) {
  const open = [];
  const connectionsOf = new Map(); // net.Server -> its open sockets
  t.after(async () => {
    const { Client } = lib();
    const step = (e) => (e instanceof net.Socket ? 0 : e instanceof Client ? 1 : 2);
    for (const s of [0, 1, 2]) {
      await Promise.all(
        open
          .filter((e) => step(e) === s)
          .map((e) => {
            if (e instanceof net.Socket) {
              e.destroy();
              return withTimeout(e.closedPromise, 5000, "a raw socket's 'close'");
            }
            if (e instanceof net.Server) {
              for (const sock of connectionsOf.get(e)) sock.destroy();
              e.close();
              return withTimeout(e.closedPromise, 5000, "a net.Server's 'close'");
            }
            e.close();
            return withTimeout(e.closedPromise, 5000, `'close' of a ${e.constructor.name}`);
          }),
      );
    }
  });
  return (emitter) => {
    emitter.closedPromise = new Promise((resolve) => emitter.once('close', resolve));
    if (emitter instanceof net.Server) {
      const sockets = new Set();
      connectionsOf.set(emitter, sockets);
      emitter.on('connection', (sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
      });
    }
    open.push(emitter);
    return emitter;
  };
}

// ----- Servers and Clients -----

// ----- transports -----

// The transports the core cases run on (see transports.test.js and the suites that loop over it).
const TRANSPORTS = ['unix', 'tcp', 'tls'];

const tlsFixture = (name) => fs.readFileSync(path.join(__dirname, 'fixtures', 'tls', name));

/** Server options for `transport`: a fresh socket path, a free loopback port, or TLS on one. */
function serverTransportOptions(t, transport) {
  switch (transport) {
    case 'unix':
      return { socketFile: socketPath(t) };
    case 'abstract':
      return { address: `unix:@nsipc-test-${process.pid}-${Math.random().toString(36).slice(2)}` };
    case 'tcp':
      return { address: 'tcp://127.0.0.1:0' };
    case 'tls':
      return { address: 'tls://127.0.0.1:0', tls: { cert: tlsFixture('server.pem'), key: tlsFixture('server-key.pem') } };
    default:
      throw new Error(`unknown transport ${transport}`);
  }
}

/** Client options that reach `server` (listening) over the transport it was started on. */
function clientTransportOptions(server) {
  const address = server.address();
  switch (server.transport) {
    case 'unix':
      return { socketFile: address };
    case 'abstract':
      return { address };
    case 'tcp':
      return { address: `tcp://127.0.0.1:${address.port}` };
    case 'tls':
      return { address: `tls://localhost:${address.port}`, tls: { ca: tlsFixture('ca.pem') } };
    default:
      throw new Error(`unknown transport ${server.transport}`);
  }
}

/**
 * A listening Server, tracked by `track` (see autoClose), on a fresh socket path, or on
 * `transport` ('unix', 'abstract', 'tcp', 'tls'). The path is in `server.socketFile` (unix) and
 * the transport in `server.transport`; connectClient() reaches it either way. Also asserts
 * that listen() returns the server.
 */
async function startServer(t, track, options = {}, transport = 'unix') {
  const { Server } = lib();
  const where = serverTransportOptions(t, transport);
  const server = track(new Server({ ...where, ...options }));
  const listening = waitFor(server, 'listening');
  assert.equal(server.listen(), server);
  await listening;
  server.socketFile = where.socketFile;
  server.transport = transport;
  return server;
}

/**
 * A Client, tracked by `track`, connected to a Server from startServer(), and the clientId the
 * server's 'connection' gave it: { client, clientId }. Connect one client at a time.
 */
async function connectClient(server, track, options = {}) {
  const { Client } = lib();
  const client = track(new Client({ ...clientTransportOptions(server), ...options }));
  const connection = waitFor(server, 'connection');
  const connected = waitFor(client, 'connect');
  client.connect();
  const [[clientId]] = await Promise.all([connection, connected]);
  return { client, clientId };
}

/**
 * A Server listening on the given `socketFile`, closed by cleanup() when the test ends (for the
 * lifecycle tests, which choose and inspect their own paths).
 */
async function startServerAt(t, socketFile, options = {}) {
  const { Server } = lib();
  const server = cleanup(t, new Server({ socketFile, ...options }));
  server.listen();
  await waitFor(server, 'listening');
  return server;
}

// ----- behaviour under attack -----

/** Records every emission of `event` (argument arrays), so a test can assert some never fired. */
function counter(emitter, event) {
  const seen = [];
  emitter.on(event, (...args) => seen.push(args));
  return seen;
}

/** One message each way between `client` and `server`, matched by topic and `tag`. */
async function roundTrip(server, client, clientId, tag) {
  // by topic, so a bystander's messages in between do not count
  const atServer = waitFor(server, 'message.ping');
  client.send('ping', { tag });
  assert.deepStrictEqual(await atServer, [{ tag }, clientId]);
  const atClient = waitFor(client, 'message.pong');
  server.send('pong', { tag }, clientId);
  assert.deepStrictEqual(await atClient, [{ tag }]);
}

/**
 * A well-behaved Client (with `options`) connected to `server` for the whole test, with messages
 * flowing both ways every 10 ms. check() sends a last burst, then asserts that each side received
 * every message, in order (counted exactly), that it never disconnected, and that the server still
 * accepts a new client; it returns how many messages went each way. Create it before the test's
 * own waitFor(server, 'connection').
 */
async function bystander(t, server, track, options = {}) {
  const { client, clientId } = await connectClient(server, track, options);
  const atClient = [];
  const atServer = [];
  client.on('message.tick', (n) => atClient.push(n));
  server.on('message.tock', (n, id) => id === clientId && atServer.push(n));
  const disconnects = counter(client, 'disconnect');
  let sent = 0;
  const tick = () => {
    server.send('tick', sent, clientId);
    client.send('tock', sent);
    sent++;
  };
  const timer = setInterval(tick, 10);
  t.after(() => clearInterval(timer));
  return {
    client,
    clientId,
    async check() {
      clearInterval(timer);
      for (let i = 0; i < 50; i++) tick();
      await until(() => atClient.length >= sent && atServer.length >= sent, 5000, `bystander messages: ${atClient.length} and ${atServer.length} of ${sent}`);
      const all = Array.from({ length: sent }, (_, i) => i);
      assert.deepStrictEqual(atClient, all, 'the bystander received every message the server sent it');
      assert.deepStrictEqual(atServer, all, 'the server received every message the bystander sent');
      assert.deepStrictEqual(disconnects, [], 'the bystander stayed connected');
      const fresh = await connectClient(server, track, options);
      await roundTrip(server, fresh.client, fresh.clientId, 'a new client after the barrage');
      return sent;
    },
  };
}

// ----- child processes -----

/**
 * Forks `__test__/fixtures/<script>` with args; it talks back with process.send().
 * The child is killed when the test ends.
 */
function spawnFixture(t, script, args = [], options = {}) {
  const child = fork(path.join(__dirname, 'fixtures', script), args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], ...options });
  child.output = '';
  child.stdout.on('data', (d) => (child.output += d));
  child.stderr.on('data', (d) => (child.output += d));
  if (t && t.after) t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return child;
}

/** Waits for a child's message satisfying `predicate`. */
function childMessage(child, predicate = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error(`timed out after ${ms} ms waiting for a message from the child; its output:\n${child.output}`));
    }, ms);
    function onMessage(m) {
      if (!predicate(m)) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(m);
    }
    child.on('message', onMessage);
  });
}

/** Resolves with { code, signal } when the child exits, rejects after `ms`. */
function childExit(child, ms = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not exit within ${ms} ms; its output:\n${child.output}`)), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

// ----- child processes that report, and raw frames -----

/** Records every message a child sends in `child.log`, so none is missed between awaits. */
function logChild(child) {
  child.log = [];
  child.on('message', (m) => child.log.push(m));
  return child;
}

/** Resolves with the first message the child has reported (now or earlier) that satisfies `predicate`. */
async function logged(child, predicate, ms = 10000) {
  await until(() => child.log.some(predicate), ms, `a message from the child; its log: ${JSON.stringify(child.log).slice(0, 2000)}\n${child.output}`);
  return child.log.find(predicate);
}

/** SIGCONTs a child that may be stopped, when the test ends (before spawnFixture's SIGKILL). */
function contAtEnd(t, child) {
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
  });
}

/** One wire frame (PROTOCOL.md): `len | kind | body`. */
function encodeFrame(kind, body) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + body.length, 0);
  head[4] = kind;
  return Buffer.concat([head, body]);
}

/** Reads whole frames from a raw socket: next(ms) resolves with { kind, body }. */
function frameReader(socket) {
  let buf = Buffer.alloc(0);
  const waiting = [];
  const pump = () => {
    while (waiting.length > 0 && buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      waiting.shift()({ kind: buf[4], body: buf.subarray(5, 4 + len) });
      buf = buf.subarray(4 + len);
    }
  };
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    pump();
  });
  return {
    next: (ms = 5000) => withTimeout(new Promise((resolve) => { waiting.push(resolve); pump(); }), ms, 'a frame'),
  };
}

module.exports = {
  logChild,
  logged,
  contAtEnd,
  encodeFrame,
  frameReader,
  counter,
  roundTrip,
  bystander,
  TRANSPORTS,
  tlsFixture,
  serverTransportOptions,
  clientTransportOptions,
  socketPath,
  waitFor,
  collect,
  sleep,
  until,
  withTimeout,
  waitClose,
  cleanup,
  autoClose,
  startServer,
  connectClient,
  startServerAt,
  spawnFixture,
  childMessage,
  childExit,
};
