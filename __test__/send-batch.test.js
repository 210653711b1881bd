'use strict';
// JSON messages sent in one tick go to the core as one batch of text (lib/outgoing.js,
// src/json_batch.rs), other kinds as frames. These check, through real sockets, that the two
// paths keep the order of sends, the topics and targets, the size limit and every character.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('..');
const { waitFor, collect, autoClose, startServer, connectClient, clientTransportOptions } = require('./helpers');

const T = { timeout: 20000 };

async function pair(t, serverOptions = {}, clientOptions = {}) {
  const track = autoClose(t);
  const server = await startServer(t, track, serverOptions);
  const { client, clientId } = await connectClient(server, track, clientOptions);
  return { track, server, client, clientId };
}

test('JSON messages, Buffers, undefined and a request sent in one tick arrive in the order they were sent', T, async (t) => {
  const { server, client } = await pair(t);
  server.handle('ask', (m) => m);
  const got = collect(server, 'message', 7);
  client.send('a', 1);
  client.send('b', Buffer.from([1, 2]));
  client.send('a', { two: 2 });
  client.send('c', undefined);
  const reply = client.request('ask', 'r');
  client.send('a', 3);
  client.send('b', new Uint8Array([3]));
  client.send('a', [4]);
  const seen = (await got).map(([m, topic]) => [topic, Buffer.isBuffer(m) ? [...m] : m]);
  assert.deepEqual(seen, [
    ['a', 1],
    ['b', [1, 2]],
    ['a', { two: 2 }],
    ['c', undefined],
    ['a', 3],
    ['b', [3]],
    ['a', [4]],
  ]);
  assert.equal(await reply, 'r');
});

test('messages sent in one tick to three clients on alternating topics each reach their own client, in order, with their topic', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const clients = [];
  for (let i = 0; i < 3; i++) clients.push(await connectClient(server, track));
  const expected = clients.map(() => []);
  const got = clients.map(({ client }) => collect(client, 'message', 300));
  for (let i = 0; i < 900; i++) {
    const to = i % 3;
    const topic = i % 2 === 0 ? 'even' : `odd-${i % 5}`;
    server.send(topic, { i }, clients[to].clientId);
    expected[to].push([topic, i]);
  }
  for (let c = 0; c < 3; c++) {
    assert.deepEqual((await got[c]).map(([m, topic]) => [topic, m.i]), expected[c], `client ${c}`);
  }
});

test("a client's JSON messages and Buffers sent before it connects arrive in order once it connects", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const client = track(new Client(clientTransportOptions(server)));
  for (let i = 0; i < 5; i++) {
    client.send('early', { i });
    client.send('bin', Buffer.from([i]));
  }
  const got = collect(server, 'message', 10);
  client.connect();
  const seen = (await got).map(([m, topic]) => (topic === 'bin' ? `b${m[0]}` : `j${m.i}`));
  assert.deepEqual(seen, ['j0', 'b0', 'j1', 'b1', 'j2', 'b2', 'j3', 'b3', 'j4', 'b4']);
});

test('a JSON message over maxMessageSize only in its UTF-8 (multi-byte characters) throws ERR_IPC_MESSAGE_TOO_LARGE and queues nothing; one exactly at the limit arrives', T, async (t) => {
  // 'é' is 1 UTF-16 unit, 2 bytes of UTF-8. Frame body = kind (1) + topic length (2) + topic + JSON.
  const limit = 200;
  const { server, client } = await pair(t, { maxMessageSize: limit }, { maxMessageSize: limit });
  const fixed = 3 + 't'.length + 2; // the JSON string's quotes
  const fits = 'é'.repeat((limit - fixed) / 2);
  const over = 'é'.repeat((limit - fixed) / 2 + 1);
  assert.throws(() => client.send('t', over), (err) => err.code === 'ERR_IPC_MESSAGE_TOO_LARGE');
  const got = waitFor(server, 'message');
  client.send('t', fits);
  const [message] = await got;
  assert.equal(message, fits);
});

test('strings with newlines, NULs, tabs, lone surrogates and emoji, and topics with newlines, arrive intact', T, async (t) => {
  const { server, client } = await pair(t);
  const values = ['a\nb', 'nul\u0000x', '\t\r\n', 'lone \ud800 surrogate', '😀 é ñ 中', { 'key\nwith newline': 'v\n' }];
  const got = collect(server, 'message', values.length);
  for (const v of values) client.send('topic\nwith newline é', v);
  const seen = await got;
  // JSON.stringify escapes a lone surrogate, so even that arrives as it was sent.
  assert.deepEqual(
    seen.map(([m]) => m),
    values,
  );
  for (const [, topic] of seen) assert.equal(topic, 'topic\nwith newline é');
});
