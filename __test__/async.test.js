'use strict';
// The promise and async-iterator API: messages([options]) on Server, Client and Peer (queueing,
// topic filter, several iterators, end at 'close', failure, AbortSignal, listener cleanup, option
// validation), the listening / connected getters, closed(), Symbol.asyncDispose, and
// events.once(client, 'connect', { signal }).

const test = require('node:test');
const assert = require('node:assert/strict');
const { once, getEventListeners } = require('node:events');
const { Server, Client, Peer } = require('..');
const {
  socketPath,
  waitFor,
  collect,
  until,
  withTimeout,
  waitClose,
  autoClose,
  startServer,
  connectClient,
} = require('./helpers');

const T = { timeout: 30000 };

/** The iterator's next result, or a failure naming `what` after 5 s. */
const next = (it, what = 'the next message') => withTimeout(it.next(), 5000, what);

/** How many listeners `emitter` has for each of `events`. */
const counts = (emitter, events) => Object.fromEntries(events.map((e) => [e, emitter.listenerCount(e)]));
const ITERATOR_EVENTS = ['message', 'message.a', 'close', 'error'];

/** Collects `n` items from a for await loop over `it`, then breaks. */
async function take(it, n) {
  const seen = [];
  if (n === 0) return seen;
  for await (const item of it) {
    seen.push(item);
    if (seen.length === n) break;
  }
  return seen;
}

/** Rejects with `what` if `promise` has not settled after a round trip through the event loop. */
async function assertPending(promise, what) {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled, false, what);
}

async function pair(t, serverOptions = {}, clientOptions = {}) {
  const track = autoClose(t);
  const server = await startServer(t, track, serverOptions);
  const { client, clientId } = await connectClient(server, track, clientOptions);
  return { track, server, client, clientId };
}

// ----- messages(): what it yields -----

test('server.messages() yields { topic, message, clientId } for each message, in order, queueing those that arrive before they are asked for', T, async (t) => {
  const { server, client, clientId } = await pair(t);
  const it = server.messages();
  const sent = [
    ['a', { n: 1 }],
    ['b', 'two'],
    ['a', [3]],
    ['c', null],
    ['bytes', Buffer.from('four')],
  ];
  for (const [topic, message] of sent) client.send(topic, message);
  // All five arrive (and are queued in the iterator) before the first is asked for.
  await waitFor(server, 'message.bytes');
  const got = await withTimeout(take(it, sent.length), 5000, 'five messages');
  assert.deepStrictEqual(
    got,
    sent.map(([topic, message]) => ({ topic, message: Buffer.isBuffer(message) ? Buffer.from(message) : message, clientId })),
  );
});

test('client.messages() yields { topic, message }, with no clientId', T, async (t) => {
  const { server, client, clientId } = await pair(t);
  const it = client.messages();
  server.send('x', { hello: 'client' }, clientId);
  server.broadcast('y', 42);
  const got = await withTimeout(take(it, 2), 5000, 'two messages');
  assert.deepStrictEqual(got, [
    { topic: 'x', message: { hello: 'client' } },
    { topic: 'y', message: 42 },
  ]);
  assert.equal(Object.hasOwn(got[0], 'clientId'), false);
});

test('peer.messages() yields { topic, message } from the partner, in either role', T, async (t) => {
  const track = autoClose(t);
  const socketFile = socketPath(t);
  const first = track(new Peer({ socketFile, retryDelay: 50 }));
  const firstConnected = waitFor(first, 'connect');
  first.connect();
  await waitFor(first, 'role');
  const second = track(new Peer({ socketFile, retryDelay: 50 }));
  const secondConnected = waitFor(second, 'connect');
  second.connect();
  await Promise.all([firstConnected, secondConnected]);
  const atFirst = first.messages();
  const atSecond = second.messages({ topic: 'ping' });
  second.send('hi', { from: 'second' });
  first.send('other', 1);
  first.send('ping', { from: 'first' });
  assert.deepStrictEqual(await next(atFirst), { value: { topic: 'hi', message: { from: 'second' } }, done: false });
  assert.deepStrictEqual(await next(atSecond), { value: { topic: 'ping', message: { from: 'first' } }, done: false });
  await atFirst.return();
  await atSecond.return();
});

test('messages({ topic }) yields only that topic; an empty topic means "none", as for send()', T, async (t) => {
  const { server, client, clientId } = await pair(t);
  const onlyA = server.messages({ topic: 'a' });
  const onlyNone = server.messages({ topic: '' });
  const atClient = client.messages({ topic: 'b' });
  client.send('b', 1);
  client.send('a', 2);
  client.send('', 3);
  client.send('a', 4);
  server.send('a', 5, clientId);
  server.send('b', 6, clientId);
  assert.deepStrictEqual(await withTimeout(take(onlyA, 2), 5000, "topic 'a'"), [
    { topic: 'a', message: 2, clientId },
    { topic: 'a', message: 4, clientId },
  ]);
  assert.deepStrictEqual(await withTimeout(take(onlyNone, 1), 5000, "topic 'none'"), [{ topic: 'none', message: 3, clientId }]);
  assert.deepStrictEqual(await withTimeout(take(atClient, 1), 5000, "topic 'b'"), [{ topic: 'b', message: 6 }]);
});

test('several iterators at once each get every message, alongside ordinary listeners', T, async (t) => {
  const { server, client, clientId } = await pair(t);
  const iterators = [server.messages(), server.messages(), server.messages({ topic: 'n' })];
  const heard = [];
  server.on('message.n', (n) => heard.push(n));
  for (let i = 0; i < 20; i++) client.send('n', i);
  const expected = Array.from({ length: 20 }, (_, i) => ({ topic: 'n', message: i, clientId }));
  const results = await withTimeout(Promise.all(iterators.map((it) => take(it, 20))), 5000, 'three iterators');
  for (const got of results) assert.deepStrictEqual(got, expected);
  assert.deepStrictEqual(heard, expected.map((e) => e.message));
});

// ----- how it ends -----

test("the iterator ends (done) at 'close', after handing out what was queued", T, async (t) => {
  const { server, client, clientId } = await pair(t);
  const atServer = server.messages();
  const atClient = client.messages();
  const arrived = collect(server, 'message.last', 2);
  client.send('last', 1);
  client.send('last', 2);
  await arrived;
  server.close();
  await waitClose(server);
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), { message: 0, 'message.a': 0, close: 0, error: 0 }, 'no listener is left');
  assert.deepStrictEqual(await next(atServer), { value: { topic: 'last', message: 1, clientId }, done: false });
  assert.deepStrictEqual(await next(atServer), { value: { topic: 'last', message: 2, clientId }, done: false });
  assert.deepStrictEqual(await next(atServer), { value: undefined, done: true });
  assert.deepStrictEqual(await next(atServer), { value: undefined, done: true });

  // A next() waiting when 'close' comes resolves done; so does a for await loop.
  const waiting = atClient.next();
  const loop = (async () => {
    const seen = [];
    for await (const m of client.messages()) seen.push(m);
    return seen;
  })();
  client.close();
  assert.deepStrictEqual(await withTimeout(waiting, 5000, 'the waiting next()'), { value: undefined, done: true });
  assert.deepStrictEqual(await withTimeout(loop, 5000, 'the for await loop to end'), []);
});

test('messages() on an endpoint that has emitted close is done at once and adds no listener', T, async (t) => {
  const server = new Server({ socketFile: socketPath(t) });
  server.close();
  await waitClose(server);
  const it = server.messages();
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), { message: 0, 'message.a': 0, close: 0, error: 0 });
  assert.deepStrictEqual(await next(it), { value: undefined, done: true });
});

test('a client that gives up (maxRetries) rejects its iterator with ERR_IPC_RETRIES_EXHAUSTED, with no error listener needed', T, async (t) => {
  const client = new Client({ socketFile: socketPath(t), retryDelay: 10, maxRetries: 1 });
  const closed = waitClose(client);
  const it = client.messages();
  const again = client.messages({ topic: 'a' });
  client.connect();
  await assert.rejects(next(it), (err) => {
    assert.equal(err.code, 'ERR_IPC_RETRIES_EXHAUSTED');
    assert.ok(err instanceof Error);
    return true;
  });
  await assert.rejects(next(again), { code: 'ERR_IPC_RETRIES_EXHAUSTED' });
  assert.deepStrictEqual(await next(it), { value: undefined, done: true }, 'after the rejection the iterator is done');
  await closed;
  assert.deepStrictEqual(counts(client, ITERATOR_EVENTS), { message: 0, 'message.a': 0, close: 0, error: 0 });
  // An iterator asked for afterwards reports the same failure.
  await assert.rejects(next(client.messages()), { code: 'ERR_IPC_RETRIES_EXHAUSTED' });
});

test('a client that gives up with messages still queued rejects with ERR_IPC_RETRIES_EXHAUSTED; the undelivered count is a separate error for error listeners', T, async (t) => {
  const client = new Client({ socketFile: socketPath(t), retryDelay: 10, maxRetries: 0 });
  const errors = [];
  client.on('error', (err) => errors.push([err.code, err.undelivered]));
  const it = client.messages();
  client.send('queued', 1);
  client.send('queued', 2);
  client.connect();
  await assert.rejects(next(it), { code: 'ERR_IPC_RETRIES_EXHAUSTED' });
  await withTimeout(client.closed(), 5000, "the client's 'close'");
  // Two errors; which comes first depends on whether the core had stopped before the queued
  // messages reached it (they are refused then), so only the set is checked.
  assert.deepStrictEqual(errors.sort(), [
    ['ERR_IPC_CLOSED', 2],
    ['ERR_IPC_RETRIES_EXHAUSTED', undefined],
  ]);
});

test("a client's messages queued before it gives up are handed out before the rejection", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const { client, clientId } = await connectClient(server, track, { retryDelay: 10, reconnectDelay: 10, maxRetries: 0 });
  const it = client.messages();
  server.send('before', 1, clientId);
  await waitFor(client, 'message.before');
  server.close();
  const seen = [];
  let failure;
  try {
    for await (const m of it) seen.push(m);
  } catch (err) {
    failure = err;
  }
  assert.deepStrictEqual(seen, [{ topic: 'before', message: 1 }], 'the queued message came first');
  assert.equal(failure && failure.code, 'ERR_IPC_RETRIES_EXHAUSTED', 'then the failure');
  await withTimeout(client.closed(), 5000, "the client's 'close'");
});

test('a client refused for a wrong secret rejects its iterator with ERR_IPC_AUTH_FAILED', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track, { secret: 'the-right-secret-0123456789' });
  server.on('authError', () => {});
  const client = track(new Client({ socketFile: server.socketFile, secret: 'a-wrong-secret-0123456789', retryDelay: 10 }));
  const it = client.messages();
  client.connect();
  await assert.rejects(next(it), { code: 'ERR_IPC_AUTH_FAILED' });
  await withTimeout(client.closed(), 5000, "the client's 'close'");
});

test('a server whose listen() fails rejects its iterator with that error (EADDRINUSE), with no error listener needed', T, async (t) => {
  const track = autoClose(t);
  const live = await startServer(t, track);
  const server = track(new Server({ socketFile: live.socketFile }));
  const before = counts(server, ITERATOR_EVENTS);
  const it = server.messages();
  const other = server.messages({ topic: 'a' });
  server.listen();
  await assert.rejects(next(it), (err) => {
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.syscall, 'listen');
    return true;
  });
  await assert.rejects(next(other), { code: 'EADDRINUSE' });
  assert.deepStrictEqual(await next(it), { value: undefined, done: true });
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), before);
  assert.equal(server.listening, false);
  await assert.rejects(next(server.messages()), { code: 'EADDRINUSE' }, 'an iterator asked for later reports the failure too');
});

test("an 'error' that does not end the endpoint throws as usual when only iterators listen, and goes to 'error' listeners otherwise", T, async (t) => {
  const { server, client, clientId } = await pair(t);
  const it = server.messages();
  assert.throws(() => server.send('x', 1, 9999), { code: 'ERR_IPC_UNKNOWN_CLIENT' });
  const errors = [];
  server.on('error', (err) => errors.push(err.code));
  assert.equal(server.send('x', 1, 9999), false);
  assert.deepStrictEqual(errors, ['ERR_IPC_UNKNOWN_CLIENT']);
  // The iterator goes on.
  client.send('still', 'here');
  assert.deepStrictEqual(await next(it), { value: { topic: 'still', message: 'here', clientId }, done: false });
  await it.return();
  assert.equal(server.listenerCount('error'), 1, "only the test's own listener is left");
});

// ----- AbortSignal -----

test('aborting the signal rejects a waiting next() with AbortError (code ABORT_ERR, cause = the reason) and removes every listener', T, async (t) => {
  const { server } = await pair(t);
  const before = counts(server, ITERATOR_EVENTS);
  const ac = new AbortController();
  const it = server.messages({ signal: ac.signal, topic: 'a' });
  assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
  assert.equal(server.listenerCount('message.a'), before['message.a'] + 1);
  const waiting = it.next();
  const reason = new Error('stop now');
  ac.abort(reason);
  await assert.rejects(withTimeout(waiting, 5000, 'the rejection'), (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'AbortError');
    assert.equal(err.code, 'ABORT_ERR');
    assert.equal(err.cause, reason);
    return true;
  });
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), before);
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  assert.deepStrictEqual(await next(it), { value: undefined, done: true });
});

test('an abort drops what was queued: the next next() rejects at once', T, async (t) => {
  const { server, client } = await pair(t);
  const ac = new AbortController();
  const it = server.messages({ signal: ac.signal });
  const arrived = collect(server, 'message.q', 2);
  client.send('q', 1);
  client.send('q', 2);
  await arrived;
  ac.abort();
  await assert.rejects(next(it), (err) => err.name === 'AbortError' && err.code === 'ABORT_ERR' && err.cause instanceof Error);
  assert.deepStrictEqual(await next(it), { value: undefined, done: true });
});

test('a signal aborted before messages() is called: the first next() rejects with AbortError and no listener is added', T, async (t) => {
  const { server } = await pair(t);
  const before = counts(server, ITERATOR_EVENTS);
  const signal = AbortSignal.abort('already');
  const it = server.messages({ signal });
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), before);
  assert.equal(getEventListeners(signal, 'abort').length, 0);
  await assert.rejects(next(it), (err) => err.name === 'AbortError' && err.code === 'ABORT_ERR' && err.cause === 'already');
  // In a for await loop, too.
  await assert.rejects(
    (async () => {
      for await (const m of server.messages({ signal })) assert.fail(`got ${JSON.stringify(m)}`);
    })(),
    { name: 'AbortError' },
  );
});

// ----- leaving the loop -----

test('break, a throw in the loop body, return() and throw() each remove every listener the iterator added', T, async (t) => {
  const { server, client } = await pair(t);
  const before = counts(server, ITERATOR_EVENTS);
  const ac = new AbortController();
  const send = () => client.send('a', 'x');

  // break
  send();
  for await (const m of server.messages({ signal: ac.signal })) {
    assert.equal(m.message, 'x');
    break;
  }
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), before, 'after break');
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'the abort listener is gone after break');

  // a throw in the body
  send();
  await assert.rejects(
    (async () => {
      for await (const m of server.messages({ topic: 'a', signal: ac.signal })) throw new Error(`boom ${m.message}`);
    })(),
    { message: 'boom x' },
  );
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), before, 'after a throw in the loop');
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);

  // return() while a next() waits: that next() resolves done
  const it = server.messages({ signal: ac.signal });
  const waiting = it.next();
  assert.deepStrictEqual(await it.return('r'), { value: 'r', done: true });
  assert.deepStrictEqual(await withTimeout(waiting, 5000, 'the waiting next()'), { value: undefined, done: true });
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), before, 'after return()');

  // throw(): rejects with the error and ends
  const it2 = server.messages({ topic: 'a' });
  const oops = new Error('oops');
  await assert.rejects(it2.throw(oops), (err) => err === oops);
  assert.deepStrictEqual(await it2.next(), { value: undefined, done: true });
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), before, 'after throw()');
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);

  // Aborting afterwards does nothing more.
  ac.abort();
  assert.deepStrictEqual(counts(server, ITERATOR_EVENTS), before);
});

test('messages() is an async iterable iterator: [Symbol.asyncIterator]() returns itself', T, async (t) => {
  const { server } = await pair(t);
  const it = server.messages();
  assert.equal(it[Symbol.asyncIterator](), it);
  await it.return();
});

// ----- options -----

test('messages() rejects bad options with TypeError ERR_INVALID_ARG_TYPE and adds no listener', T, async (t) => {
  const server = new Server({ socketFile: socketPath(t) });
  const client = new Client({ socketFile: socketPath(t) });
  const peer = new Peer({ socketFile: socketPath(t) });
  for (const endpoint of [server, client, peer]) {
    for (const bad of [null, 'a', 5, [], { topic: 5 }, { topic: null }, { topic: {} }, { signal: {} }, { signal: 'x' }, { signal: null }, { signal: new EventTarget() }]) {
      assert.throws(
        () => endpoint.messages(bad),
        (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_TYPE' && /messages\(options\)/.test(err.message),
        `messages(${require('node:util').inspect(bad)}) on a ${endpoint.constructor.name}`,
      );
    }
    assert.deepStrictEqual(counts(endpoint, ITERATOR_EVENTS), { message: 0, 'message.a': 0, close: 0, error: 0 });
    // {} and undefined are fine.
    await endpoint.messages({}).return();
    await endpoint.messages(undefined).return();
  }
});

// ----- at-least-once -----

test('with at-least-once, a message counts as delivered once it is queued into the iterator, before the loop reads it', T, async (t) => {
  const { server, client } = await pair(t, { delivery: 'at-least-once' }, { delivery: 'at-least-once' });
  const it = server.messages();
  const errors = [];
  client.on('error', (err) => errors.push(err));
  for (let i = 0; i < 5; i++) client.send('m', i);
  await waitFor(server, 'message.m');
  // The client closes while none has been read from the iterator: every message was acknowledged.
  client.close();
  await withTimeout(client.closed(), 5000, "the client's 'close'");
  assert.deepStrictEqual(errors, [], 'no ERR_IPC_CLOSED with undelivered messages');
  const got = await withTimeout(take(it, 5), 5000, 'five messages');
  assert.deepStrictEqual(got.map((m) => m.message), [0, 1, 2, 3, 4]);
});

// ----- getters -----

test('server.listening: false before listen() and while starting, true from listening, false from close()', T, async (t) => {
  const server = new Server({ socketFile: socketPath(t) });
  assert.equal(server.listening, false);
  server.listen();
  assert.equal(server.listening, false, 'not yet bound');
  let inListener;
  server.once('listening', () => (inListener = server.listening));
  await waitFor(server, 'listening');
  assert.equal(inListener, true, "true inside a 'listening' listener");
  assert.equal(server.listening, true);
  server.close();
  assert.equal(server.listening, false, 'false as soon as close() is called');
  await waitClose(server);
  assert.equal(server.listening, false);
  assert.throws(() => {
    server.listening = true;
  }, TypeError);
});

test("client.connected: true from 'connect' to 'disconnect', again after a reconnect, false from close()", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const client = track(new Client({ socketFile: server.socketFile, retryDelay: 20, reconnectDelay: 20 }));
  assert.equal(client.connected, false, 'before connect()');
  client.connect();
  assert.equal(client.connected, false, 'while connecting');
  const seen = [];
  client.on('connect', () => seen.push(['connect', client.connected]));
  client.on('disconnect', () => seen.push(['disconnect', client.connected]));
  await waitFor(client, 'connect');
  assert.equal(client.connected, true);
  // The server goes away and a new one takes the same path: the client reconnects.
  const dropped = waitFor(client, 'disconnect');
  server.close();
  await dropped;
  assert.equal(client.connected, false);
  await withTimeout(server.closed(), 5000, "the server's 'close'");
  const again = track(new Server({ socketFile: server.socketFile }));
  again.listen();
  await waitFor(client, 'reconnect');
  assert.equal(client.connected, true);
  assert.deepStrictEqual(seen, [
    ['connect', true],
    ['disconnect', false],
    ['connect', true],
  ]);
  client.close();
  assert.equal(client.connected, false, 'false as soon as close() is called');
  await withTimeout(client.closed(), 5000, "the client's 'close'");
  assert.equal(client.connected, false);
});

test('peer.connected: true while a partner is connected, false once it has left', T, async (t) => {
  const track = autoClose(t);
  const socketFile = socketPath(t);
  const first = track(new Peer({ socketFile, retryDelay: 20, reconnectDelay: 20 }));
  assert.equal(first.connected, false);
  first.connect();
  await waitFor(first, 'role');
  assert.equal(first.connected, false, 'listening, with no partner yet');
  const second = track(new Peer({ socketFile, retryDelay: 20, reconnectDelay: 20 }));
  const both = Promise.all([waitFor(first, 'connect'), waitFor(second, 'connect')]);
  second.connect();
  await both;
  assert.equal(first.connected, true);
  assert.equal(second.connected, true);
  const left = waitFor(first, 'disconnect');
  second.close();
  assert.equal(second.connected, false);
  await left;
  assert.equal(first.connected, false);
});

// ----- closed() and Symbol.asyncDispose -----

test("closed() resolves once 'close' has been emitted (after its listeners), at once afterwards, and does not itself close", T, async (t) => {
  const { server, client, clientId } = await pair(t);
  const order = [];
  const serverClosed = server.closed().then(() => order.push('closed()'));
  server.on('close', () => order.push("'close'"));
  await assertPending(serverClosed, 'closed() does not settle while the server runs');
  // closed() did not close anything: messages still flow.
  const msg = waitFor(server, 'message.still');
  client.send('still', 'open');
  assert.deepStrictEqual(await msg, ['open', clientId]);
  assert.equal(server.listening, true);
  server.close();
  await withTimeout(serverClosed, 5000, 'server.closed()');
  assert.deepStrictEqual(order, ["'close'", 'closed()']);
  // Already closed: at once (before a setImmediate).
  let resolved = false;
  server.closed().then(() => (resolved = true));
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(resolved, true);
  assert.equal(await server.closed(), undefined);
  client.close();
  await withTimeout(client.closed(), 5000, 'client.closed()');
});

for (const [name, make] of [
  ['Server', (t) => new Server({ socketFile: socketPath(t) })],
  ['Client', (t) => new Client({ socketFile: socketPath(t) })],
  ['Peer', (t) => new Peer({ socketFile: socketPath(t) })],
]) {
  test(`a ${name} never started: closed() waits for close() and its 'close', whether asked before or after`, T, async (t) => {
    const endpoint = make(t);
    const order = [];
    endpoint.on('close', () => order.push("'close'"));
    const before = endpoint.closed().then(() => order.push('closed() asked before close()'));
    await assertPending(before, 'closed() waits for close()');
    endpoint.close();
    // Between close() and 'close' (emitted on the next tick): still waits for the event.
    const between = endpoint.closed().then(() => order.push('closed() asked between'));
    await withTimeout(Promise.all([before, between]), 5000, 'closed()');
    assert.deepStrictEqual(order, ["'close'", 'closed() asked before close()', 'closed() asked between']);
    await withTimeout(endpoint.closed(), 5000, 'closed() asked after');
  });
}

test('a client that gave up resolves closed(); a server whose listen() failed resolves it after close()', T, async (t) => {
  const client = new Client({ socketFile: socketPath(t), retryDelay: 10, maxRetries: 0 });
  client.on('error', () => {});
  client.connect();
  await withTimeout(client.closed(), 5000, "the client's closed()");

  const track = autoClose(t);
  const live = await startServer(t, track);
  const server = new Server({ socketFile: live.socketFile });
  const failed = waitFor(server, 'error').catch((err) => err);
  const closed = server.closed();
  server.listen();
  await failed;
  await assertPending(closed, 'a failed server emits no close until close()');
  server.close();
  await withTimeout(closed, 5000, "the server's closed()");
});

test('Symbol.asyncDispose closes the endpoint and resolves after its close event', T, async (t) => {
  if (typeof Symbol.asyncDispose !== 'symbol') {
    t.skip('this runtime has no Symbol.asyncDispose');
    return;
  }
  const { server, client } = await pair(t);
  const order = [];
  client.on('close', () => order.push('client close'));
  server.on('close', () => order.push('server close'));
  await withTimeout(client[Symbol.asyncDispose](), 5000, "the client's asyncDispose");
  order.push('client disposed');
  await withTimeout(server[Symbol.asyncDispose](), 5000, "the server's asyncDispose");
  order.push('server disposed');
  assert.deepStrictEqual(order, ['client close', 'client disposed', 'server close', 'server disposed']);
  // Again: nothing more happens, and it still resolves.
  await withTimeout(server[Symbol.asyncDispose](), 5000, 'a second asyncDispose');
  assert.deepStrictEqual(order.filter((e) => e === 'server close'), ['server close']);

  const peer = new Peer({ socketFile: socketPath(t) });
  peer.connect();
  await withTimeout(peer[Symbol.asyncDispose](), 5000, "the peer's asyncDispose");
  assert.equal(typeof Server.prototype[Symbol.asyncDispose], 'function');
});

// ----- events.once with a signal -----

test("events.once(client, 'connect', { signal }) resolves on connect", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const client = track(new Client({ socketFile: server.socketFile }));
  const ac = new AbortController();
  const connected = once(client, 'connect', { signal: ac.signal });
  client.connect();
  const args = await withTimeout(connected, 5000, "'connect'");
  assert.equal(args.length, 1, "'connect' passes the connection's socket");
  assert.equal(args[0].readyState, 'open');
  assert.equal(client.listenerCount('connect'), 0);
  assert.equal(client.listenerCount('error'), 0);
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
});

test("aborting events.once(client, 'connect', { signal }) rejects with AbortError and leaves no listener behind", T, async (t) => {
  // No server: the client keeps retrying, so 'connect' never comes.
  const client = new Client({ socketFile: socketPath(t), retryDelay: 20 });
  t.after(() => client.close());
  const attempts = [];
  client.on('connectError', (err) => attempts.push(err.code));
  const ac = new AbortController();
  const connected = once(client, 'connect', { signal: ac.signal });
  client.connect();
  await until(() => attempts.length >= 2, 5000, 'two failed attempts');
  assert.equal(client.listenerCount('connect'), 1);
  ac.abort();
  await assert.rejects(withTimeout(connected, 5000, 'the rejection'), (err) => err.name === 'AbortError' && err.code === 'ABORT_ERR');
  assert.equal(client.listenerCount('connect'), 0);
  assert.equal(client.listenerCount('error'), 0);
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  // An already-aborted signal rejects at once, too.
  await assert.rejects(once(client, 'connect', { signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.equal(client.listenerCount('connect'), 0);
  client.close();
  await withTimeout(client.closed(), 5000, "the client's 'close'");
});
