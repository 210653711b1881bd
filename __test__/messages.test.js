'use strict';
// Message semantics between a real Server and real Clients: every JSON value kind, undefined,
// binary, topics, encode failures, size limits, large messages, ordering, topic events,
// broadcast and sends to clients that are not (or no longer) connected — each over a Unix socket
// file, TCP and TLS.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client } = require('..');
const { TRANSPORTS, waitFor, collect, autoClose, startServer, connectClient, clientTransportOptions } = require('./helpers');

const T = { timeout: 20000 };

// ----- local helpers -----

/** A Server on `transport` and one Client connected to it, both closed when the test ends. */
async function pair(t, transport, serverOptions = {}, clientOptions = {}) {
  const track = autoClose(t);
  const server = await startServer(t, track, serverOptions, transport);
  const { client, clientId } = await connectClient(server, track, clientOptions);
  return { track, server, client, clientId };
}

function assertThrowsCode(fn, Ctor, code) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof Ctor, `expected a ${Ctor.name}, got ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
    assert.equal(err.code, code);
    return true;
  });
}

const JSON_VALUES = [
  { a: 1, b: { c: [1, 2, { d: 'e' }] }, empty: {}, list: [] },
  [1, 'two', null, true, false, { x: [[]] }],
  'a plain string',
  '',
  0,
  -1.5,
  1e300,
  Number.MAX_SAFE_INTEGER,
  true,
  false,
  null,
  {
    nul: 'before\u0000after',
    emoji: '😀👍🏽🏳️‍🌈',
    scripts: ['日本語', 'עברית', 'Ελληνικά', 'русский'],
    escapes: '"quoted" \\ back\nslash\t\u2028\u2029',
    loneSurrogate: '\ud83d',
    deeper: { '😀 key': ['\u0000', { '\u0000': '\uffff' }] },
  },
];

// ----- tests -----

// Every case runs on each transport in TRANSPORTS (a Unix socket file, TCP on loopback, TLS on
// loopback): the framing, batching and large-message paths are the same code over different streams.
for (const transport of TRANSPORTS) {
  describe(transport, () => {
    describe('JSON messages', () => {
      test('every JSON value kind arrives deep-equal from client to server', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const got = collect(server, 'message', JSON_VALUES.length);
        for (const v of JSON_VALUES) client.send('v', v);
        const seen = await got;
        assert.deepStrictEqual(
          seen.map(([message]) => message),
          JSON_VALUES,
        );
        for (const [, topic, id] of seen) {
          assert.equal(topic, 'v');
          assert.equal(id, clientId);
        }
      });

      test('every JSON value kind arrives deep-equal from server to client', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const got = collect(client, 'message', JSON_VALUES.length);
        for (const v of JSON_VALUES) server.send('v', v, clientId);
        const seen = await got;
        assert.deepStrictEqual(
          seen.map(([message]) => message),
          JSON_VALUES,
        );
        for (const args of seen) {
          assert.equal(args.length, 2);
          assert.equal(args[1], 'v');
        }
      });

      test('an undefined message arrives as undefined in both directions', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const atServer = waitFor(server, 'message');
        client.send('u', undefined);
        const [m1, topic1, id1] = await atServer;
        assert.equal(m1, undefined);
        assert.equal(topic1, 'u');
        assert.equal(id1, clientId);

        const atClient = waitFor(client, 'message');
        server.send('u', undefined, clientId);
        const [m2, topic2] = await atClient;
        assert.equal(m2, undefined);
        assert.equal(topic2, 'u');
      });
    });

    describe('binary messages', () => {
      const makeInputs = () => {
        const backing = Buffer.from([9, 9, 9, 1, 2, 3, 4, 9, 9]);
        return [
          Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]),
          new Uint8Array([255, 0, 128, 64]),
          // a view with a non-zero byteOffset into a larger ArrayBuffer: only the view's bytes go
          new Uint8Array(backing.buffer, backing.byteOffset + 3, 4),
          Buffer.alloc(0),
          crypto.randomBytes(100 * 1024), // past the 64 KiB copy threshold on the receiving side
        ];
      };
      const expectedBytes = (input) => Buffer.from(input.buffer, input.byteOffset, input.byteLength);

      test('Buffer and Uint8Array arrive at the server as Buffers with identical bytes', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const inputs = makeInputs();
        const got = collect(server, 'message', inputs.length);
        for (const input of inputs) client.send('bin', input);
        const seen = await got;
        seen.forEach(([message, topic], i) => {
          assert.equal(topic, 'bin');
          assert.ok(Buffer.isBuffer(message), `message ${i} is a Buffer, not ${JSON.stringify(message)?.slice(0, 60)}`);
          assert.deepStrictEqual(Buffer.from(message), Buffer.from(expectedBytes(inputs[i])));
        });
        assert.deepStrictEqual([...seen[2][0]], [1, 2, 3, 4]);
      });

      test('Buffer and Uint8Array arrive at the client as Buffers with identical bytes', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const inputs = makeInputs();
        const got = collect(client, 'message', inputs.length);
        for (const input of inputs) server.send('bin', input, clientId);
        const seen = await got;
        seen.forEach(([message, topic], i) => {
          assert.equal(topic, 'bin');
          assert.ok(Buffer.isBuffer(message), `message ${i} is a Buffer, not ${JSON.stringify(message)?.slice(0, 60)}`);
          assert.deepStrictEqual(Buffer.from(message), Buffer.from(expectedBytes(inputs[i])));
        });
      });

      test('a large received Buffer that is kept stays intact while more messages arrive', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const original = crypto.randomBytes(512 * 1024);
        const first = waitFor(server, 'message');
        client.send('keep', original);
        const [kept] = await first;
        const more = collect(server, 'message', 200, 15000);
        for (let i = 0; i < 200; i++) client.send('more', Buffer.alloc(128 * 1024, i & 0xff));
        await more;
        assert.ok(kept.equals(original), 'the kept Buffer was not overwritten by later traffic');
      });

      test('a JSON object shaped like a serialised Buffer stays a plain object', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const lookalike = { type: 'Buffer', data: [1, 2, 3] };
        const got = waitFor(server, 'message');
        client.send('j', lookalike);
        const [message] = await got;
        assert.equal(Buffer.isBuffer(message), false);
        assert.deepStrictEqual(message, lookalike);
      });
    });

    describe('topics', () => {
      test("an empty or missing topic becomes 'none' and fires 'message.none' on the server", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const messages = collect(server, 'message', 4);
        const topicEvents = collect(server, 'message.none', 4);
        client.send('', 1);
        client.send(undefined, 2);
        client.send(null, 3);
        client.send(undefined); // no topic, no message
        const seen = await messages;
        assert.deepStrictEqual(
          seen.map(([m, topic]) => [m, topic]),
          [
            [1, 'none'],
            [2, 'none'],
            [3, 'none'],
            [undefined, 'none'],
          ],
        );
        assert.deepStrictEqual(await topicEvents, [
          [1, clientId],
          [2, clientId],
          [3, clientId],
          [undefined, clientId],
        ]);
      });

      test("an empty or missing topic becomes 'none' and fires 'message.none' on the client", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const messages = collect(client, 'message', 3);
        const topicEvents = collect(client, 'message.none', 3);
        server.send('', 'a', clientId);
        server.send(undefined, 'b', clientId);
        server.broadcast('', 'c');
        assert.deepStrictEqual(
          (await messages).map(([m, topic]) => [m, topic]),
          [
            ['a', 'none'],
            ['b', 'none'],
            ['c', 'none'],
          ],
        );
        assert.deepStrictEqual(await topicEvents, [['a'], ['b'], ['c']]);
      });

      test('a non-string topic throws TypeError ERR_INVALID_ARG_TYPE from send and broadcast', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        for (const topic of [42, {}, ['t'], true, Symbol('t'), () => 't']) {
          assertThrowsCode(() => client.send(topic, 'x'), TypeError, 'ERR_INVALID_ARG_TYPE');
          assertThrowsCode(() => server.send(topic, 'x', clientId), TypeError, 'ERR_INVALID_ARG_TYPE');
          assertThrowsCode(() => server.broadcast(topic, 'x'), TypeError, 'ERR_INVALID_ARG_TYPE');
        }
        // nothing was queued by the failed calls
        const got = waitFor(server, 'message');
        client.send('ok', 'after');
        assert.deepStrictEqual((await got).slice(0, 2), ['after', 'ok']);
      });

      test('a topic over 65535 UTF-8 bytes throws RangeError ERR_IPC_TOPIC_TOO_LONG; 65535 bytes is delivered', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const asciiTooLong = 'a'.repeat(65536);
        // 32768 two-byte characters: only 32768 UTF-16 units, but 65536 bytes of UTF-8
        const multiByteTooLong = 'é'.repeat(32768);
        for (const topic of [asciiTooLong, multiByteTooLong]) {
          assertThrowsCode(() => client.send(topic, 1), RangeError, 'ERR_IPC_TOPIC_TOO_LONG');
          assertThrowsCode(() => server.send(topic, 1, clientId), RangeError, 'ERR_IPC_TOPIC_TOO_LONG');
          assertThrowsCode(() => server.broadcast(topic, 1), RangeError, 'ERR_IPC_TOPIC_TOO_LONG');
        }
        const longest = 'é'.repeat(32767) + 'a'; // 65535 bytes
        assert.equal(Buffer.byteLength(longest), 65535);
        const atServer = waitFor(server, 'message');
        client.send(longest, 'fits');
        const [m, topic] = await atServer;
        assert.equal(m, 'fits');
        assert.equal(topic, longest);

        const atClient = waitFor(client, 'message');
        server.send(longest, 'fits too', clientId);
        const [m2, topic2] = await atClient;
        assert.equal(m2, 'fits too');
        assert.equal(topic2, longest);
      });
    });

    describe('values JSON cannot encode', () => {
      const circular = () => {
        const o = { name: 'loop' };
        o.self = o;
        return o;
      };
      const unencodable = () => [circular(), 10n, { nested: { big: 1n } }];

      test('Client.send of a circular object or BigInt throws TypeError ERR_IPC_ENCODE and the connection stays usable', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const got = waitFor(server, 'message');
        for (const bad of unencodable()) {
          assertThrowsCode(() => client.send('bad', bad), TypeError, 'ERR_IPC_ENCODE');
        }
        client.send('good', { still: 'works' });
        const [message, topic] = await got;
        assert.equal(topic, 'good');
        assert.deepStrictEqual(message, { still: 'works' });
      });

      test('Server.send and broadcast of a circular object or BigInt throw TypeError ERR_IPC_ENCODE and the connection stays usable', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const got = waitFor(client, 'message');
        for (const bad of unencodable()) {
          assertThrowsCode(() => server.send('bad', bad, clientId), TypeError, 'ERR_IPC_ENCODE');
          assertThrowsCode(() => server.broadcast('bad', bad), TypeError, 'ERR_IPC_ENCODE');
        }
        server.send('good', [1, 2], clientId);
        const [message, topic] = await got;
        assert.equal(topic, 'good');
        assert.deepStrictEqual(message, [1, 2]);
      });
    });

    describe('maxMessageSize', () => {
      // frame length = kind (1) + topic length (2) + topic + payload
      const LIMIT = 64;
      const fitting = 'x'.repeat(LIMIT - 3 - 1 - 2); // topic 't', two JSON quotes: exactly 64
      const oneOver = fitting + 'x';
      // 32 UTF-16 units but 64 bytes of UTF-8: only the encoded size exposes it
      const multiByteOver = 'é'.repeat(30);

      test('Client.send over maxMessageSize throws RangeError ERR_IPC_MESSAGE_TOO_LARGE; exactly maxMessageSize is delivered', T, async (t) => {
        const { server, client } = await pair(t, transport, {}, { maxMessageSize: LIMIT });
        assertThrowsCode(() => client.send('t', oneOver), RangeError, 'ERR_IPC_MESSAGE_TOO_LARGE');
        assertThrowsCode(() => client.send('t', multiByteOver), RangeError, 'ERR_IPC_MESSAGE_TOO_LARGE');
        assertThrowsCode(() => client.send('t', Buffer.alloc(LIMIT)), RangeError, 'ERR_IPC_MESSAGE_TOO_LARGE');
        const got = waitFor(server, 'message');
        client.send('t', fitting);
        const [message] = await got;
        assert.equal(message, fitting);
      });

      test('Server.send and broadcast over maxMessageSize throw RangeError ERR_IPC_MESSAGE_TOO_LARGE; exactly maxMessageSize is delivered', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport, { maxMessageSize: LIMIT });
        assertThrowsCode(() => server.send('t', oneOver, clientId), RangeError, 'ERR_IPC_MESSAGE_TOO_LARGE');
        assertThrowsCode(() => server.send('t', multiByteOver, clientId), RangeError, 'ERR_IPC_MESSAGE_TOO_LARGE');
        assertThrowsCode(() => server.broadcast('t', oneOver), RangeError, 'ERR_IPC_MESSAGE_TOO_LARGE');
        const got = waitFor(client, 'message');
        server.send('t', fitting, clientId);
        const [message] = await got;
        assert.equal(message, fitting);
      });

      test("a server with a smaller maxMessageSize than the client emits 'messageError' ERR_IPC_MESSAGE_TOO_LARGE and closes that connection", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport, { maxMessageSize: LIMIT });
        const before = waitFor(server, 'message');
        const messageError = waitFor(server, 'messageError');
        const connectionClose = waitFor(server, 'connectionClose');
        const disconnect = waitFor(client, 'disconnect');
        client.send('t', fitting); // exactly the receiver's limit: accepted
        client.send('t', oneOver);
        const [first] = await before;
        assert.equal(first, fitting, 'a message of exactly maxMessageSize before the oversized one is delivered');
        const [err, id] = await messageError;
        assert.equal(err.code, 'ERR_IPC_MESSAGE_TOO_LARGE');
        assert.equal(id, clientId);
        assert.equal(err.clientId, clientId);
        assert.deepStrictEqual((await connectionClose).map((x) => x.code ?? x), [clientId, 'ERR_IPC_MESSAGE_TOO_LARGE']);
        await disconnect;
      });

      test("a client with a smaller maxMessageSize than the server emits 'messageError' ERR_IPC_MESSAGE_TOO_LARGE and 'disconnect'", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport, {}, { maxMessageSize: LIMIT });
        const before = waitFor(client, 'message');
        const messageError = waitFor(client, 'messageError');
        const disconnect = waitFor(client, 'disconnect');
        const connectionClose = waitFor(server, 'connectionClose');
        server.send('t', fitting, clientId); // exactly the receiver's limit: accepted
        server.send('t', oneOver, clientId);
        const [first] = await before;
        assert.equal(first, fitting, 'a message of exactly maxMessageSize before the oversized one is delivered');
        const [err] = await messageError;
        assert.equal(err.code, 'ERR_IPC_MESSAGE_TOO_LARGE');
        await disconnect;
        assert.deepStrictEqual(await connectionClose, [clientId]);
      });
    });

    describe('large messages', () => {
      const MiB2 = 2 * 1024 * 1024;
      const bigJson = () => {
        const chunk = 'abcdefghijklmnopqrstuvwxyz0123456789-é😀 ';
        return { id: 7, text: chunk.repeat(Math.ceil(MiB2 / chunk.length)).slice(0, MiB2), tail: [1, 2, 3] };
      };

      /** Checks the two collected messages: `json` on topic 'json', then the bytes of `bin` as a Buffer on 'bin'. */
      const checkIntact = ([[m1, t1], [m2, t2]], json, bin) => {
        assert.equal(t1, 'json');
        assert.deepStrictEqual(m1, json);
        assert.equal(t2, 'bin');
        assert.ok(Buffer.isBuffer(m2));
        assert.ok(m2.equals(bin), 'binary bytes are identical');
      };

      test('a 2 MiB JSON message and a 2 MiB Buffer arrive intact from client to server', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const json = bigJson();
        const bin = crypto.randomBytes(MiB2);
        const got = collect(server, 'message', 2, 15000);
        client.send('json', json);
        client.send('bin', bin);
        checkIntact(await got, json, bin);
      });

      test('a 2 MiB JSON message and a 2 MiB Buffer arrive intact from server to client', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const json = bigJson();
        const bin = crypto.randomBytes(MiB2);
        const got = collect(client, 'message', 2, 15000);
        server.send('json', json, clientId);
        server.send('bin', bin, clientId);
        checkIntact(await got, json, bin);
      });
    });

    describe('ordering', () => {
      const N = 50000;
      const checkOrder = (seen) => {
        assert.equal(seen.length, N);
        for (let i = 0; i < N; i++) {
          if (seen[i][0].seq !== i) assert.fail(`message ${i} carried seq ${seen[i][0].seq}`);
        }
      };

      test('50,000 messages from client to server arrive in send order', T, async (t) => {
        const { server, client } = await pair(t, transport);
        const got = collect(server, 'message', N, 15000);
        for (let seq = 0; seq < N; seq++) client.send('seq', { seq });
        checkOrder(await got);
      });

      test('50,000 messages from server to client arrive in send order', T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const got = collect(client, 'message', N, 15000);
        for (let seq = 0; seq < N; seq++) server.send('seq', { seq }, clientId);
        checkOrder(await got);
      });
    });

    describe('topic events', () => {
      test("'message.<topic>' fires with (message, clientId) on the server and only for that topic", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const greets = [];
        server.on('message.greet', (...args) => greets.push(args));
        const done = waitFor(server, 'message.done');
        const emoji = waitFor(server, 'message.😀 topic');
        client.send('greet', { hi: 1 });
        client.send('other', 'not a greet');
        client.send('greet', 'again');
        client.send('😀 topic', 'emoji');
        client.send('done', null);
        assert.deepStrictEqual(await emoji, ['emoji', clientId]);
        assert.deepStrictEqual(await done, [null, clientId]);
        assert.deepStrictEqual(greets, [
          [{ hi: 1 }, clientId],
          ['again', clientId],
        ]);
      });

      test("'message.<topic>' fires with (message) on the client and only for that topic", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const greets = [];
        client.on('message.greet', (...args) => greets.push(args));
        const done = waitFor(client, 'message.done');
        server.send('greet', { hi: 1 }, clientId);
        server.send('other', 'not a greet', clientId);
        server.broadcast('greet', 'again');
        server.send('done', null, clientId);
        assert.deepStrictEqual(await done, [null]);
        assert.deepStrictEqual(greets, [[{ hi: 1 }], ['again']]);
      });
    });

    describe('broadcast', () => {
      test('broadcast reaches each of 100 clients exactly once', T, async (t) => {
        const track = autoClose(t);
        const server = await startServer(t, track, {}, transport);
        const COUNT = 100;
        const connections = collect(server, 'connection', COUNT, 15000);
        const clients = [];
        const connects = [];
        for (let i = 0; i < COUNT; i++) {
          const client = track(new Client(clientTransportOptions(server)));
          client.received = [];
          client.on('message', (m, topic) => client.received.push([topic, m]));
          connects.push(waitFor(client, 'connect', 15000));
          clients.push(client.connect());
        }
        await Promise.all([connections, ...connects]);

        server.broadcast('news', { n: 1 });
        // a second broadcast marks the end: any duplicate of the first would arrive before it
        const ends = clients.map((c) => waitFor(c, 'message.end', 15000));
        server.broadcast('end', 'last');
        await Promise.all(ends);
        for (const [i, client] of clients.entries()) {
          assert.deepStrictEqual(
            client.received,
            [
              ['news', { n: 1 }],
              ['end', 'last'],
            ],
            `client ${i}`,
          );
        }
      });

      test('broadcast with no clients connected does nothing and is not delivered to a later client', T, async (t) => {
        const track = autoClose(t);
        const server = await startServer(t, track, {}, transport);
        const errors = [];
        server.on('error', (err) => errors.push(err));
        server.broadcast('nobody', 'hears this');
        server.broadcast('nobody', Buffer.from('or this'));
        const { client, clientId } = await connectClient(server, track);
        const got = waitFor(client, 'message');
        server.send('direct', 'first', clientId);
        assert.deepStrictEqual(await got, ['first', 'direct']);
        assert.deepStrictEqual(errors, []);
      });
    });

    describe('sends to clients that are not connected', () => {
      test("Server.send to an unknown clientId emits 'error' ERR_IPC_UNKNOWN_CLIENT with err.clientId", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const unknownId = clientId + 1000;
        const errored = waitFor(server, 'error');
        server.send('t', 'lost', unknownId);
        const [err] = await errored;
        assert.equal(err.code, 'ERR_IPC_UNKNOWN_CLIENT');
        assert.equal(err.clientId, unknownId);
        // the real client is unaffected
        const got = waitFor(client, 'message');
        server.send('t', 'found', clientId);
        assert.deepStrictEqual(await got, ['found', 't']);
      });

      test("Server.send to a client after its 'connectionClose' emits 'error' ERR_IPC_UNKNOWN_CLIENT with err.clientId", T, async (t) => {
        const { server, client, clientId } = await pair(t, transport);
        const connectionClose = waitFor(server, 'connectionClose');
        client.close();
        assert.deepStrictEqual(await connectionClose, [clientId]);
        const errored = waitFor(server, 'error');
        server.send('t', 'too late', clientId);
        const [err] = await errored;
        assert.equal(err.code, 'ERR_IPC_UNKNOWN_CLIENT');
        assert.equal(err.clientId, clientId);
      });
    });

    describe('large Buffers among small messages', () => {
      // Buffers of 64 KiB and more travel as pieces of their own (lib/outgoing.js appendLarge);
      // they must keep their place among the batched small messages, both ways and in broadcasts.
      const sequence = () => {
        const out = [];
        for (let i = 0; i < 6; i++) {
          out.push(['small', { i }]);
          out.push(['big', crypto.randomBytes(64 * 1024 + i * 1000)]);
        }
        return out;
      };

      test('keep their order, both directions, when sent in one tick with small messages', T, async (t) => {
        const track = autoClose(t);
        const server = await startServer(t, track, {}, transport);
        const { client, clientId } = await connectClient(server, track);
        const toServer = sequence();
        const toClient = sequence();
        const atServer = collect(server, 'message', toServer.length);
        const atClient = collect(client, 'message', toClient.length);
        for (const [topic, message] of toServer) client.send(topic, message);
        for (const [topic, message] of toClient) server.send(topic, message, clientId);
        assert.deepEqual((await atServer).map(([m, topic]) => [topic, m]), toServer);
        assert.deepEqual((await atClient).map(([m, topic]) => [topic, m]), toClient);
      });

      test('sent before connect() are delivered in order after it', T, async (t) => {
        const track = autoClose(t);
        const server = await startServer(t, track, {}, transport);
        const client = track(new Client(clientTransportOptions(server)));
        const messages = sequence();
        for (const [topic, message] of messages) client.send(topic, message);
        const atServer = collect(server, 'message', messages.length);
        client.connect();
        assert.deepEqual((await atServer).map(([m, topic]) => [topic, m]), messages);
      });

      test('broadcast reaches every client intact and in order', T, async (t) => {
        const track = autoClose(t);
        const server = await startServer(t, track, {}, transport);
        const clients = [];
        for (let i = 0; i < 3; i++) clients.push((await connectClient(server, track)).client);
        const messages = sequence();
        const received = clients.map((c) => collect(c, 'message', messages.length));
        for (const [topic, message] of messages) server.broadcast(topic, message);
        for (const got of await Promise.all(received)) {
          assert.deepEqual(got.map(([m, topic]) => [topic, m]), messages);
        }
      });
    });
  });
}
