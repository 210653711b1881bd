'use strict';
// Constructor options are validated when the object is made, naming the bad option; listen()
// and connect() run once per instance and return it.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const { Server, Client } = require('..');
const { socketPath, waitFor, autoClose } = require('./helpers');

const T = { timeout: 20000 };
const CLASSES = [Server, Client];

// ----- local helpers -----

/** Asserts that `fn` throws an instance of `Ctor` with `code` and a message matching `pattern`. */
function assertThrows(fn, Ctor, code, pattern) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof Ctor, `expected a ${Ctor.name}, got ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
    if (code !== undefined) assert.equal(err.code, code, err.message);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

const PATH = '/tmp/nsipc-options-never-used.sock';

// ----- tests -----

describe('socketFile', () => {
  for (const Ctor of CLASSES) {
    test(`new ${Ctor.name}() with a missing or empty socketFile throws a TypeError naming 'socketFile'`, T, () => {
      for (const make of [
        () => new Ctor({}),
        () => new Ctor({ socketFile: '' }),
        () => new Ctor({ socketFile: undefined }),
        () => new Ctor({ socketFile: null }),
        () => new Ctor(''),
        () => new Ctor(),
      ]) {
        assertThrows(make, TypeError, undefined, /socketFile/);
      }
    });

    test(`new ${Ctor.name}() with an all-digit socketFile throws a TypeError mentioning a port`, T, () => {
      assertThrows(() => new Ctor({ socketFile: '8080' }), TypeError, undefined, /port/i);
      assertThrows(() => new Ctor('8080'), TypeError, undefined, /port/i);
    });

    test(`new ${Ctor.name}() with a non-string socketFile throws TypeError ERR_INVALID_ARG_TYPE`, T, () => {
      for (const socketFile of [8080, true, {}, ['/tmp/a.sock'], Buffer.from('/tmp/a.sock'), () => '/tmp/a.sock']) {
        assertThrows(() => new Ctor({ socketFile }), TypeError, 'ERR_INVALID_ARG_TYPE', /socketFile/);
      }
    });

    test(`new ${Ctor.name}() with neither a string nor an object throws TypeError ERR_INVALID_ARG_TYPE`, T, () => {
      for (const options of [42, true, null]) {
        assertThrows(() => new Ctor(options), TypeError, 'ERR_INVALID_ARG_TYPE');
      }
    });
  }

  test("new Server('/x.sock') and new Client('/x.sock') accept the string form without touching the socket", T, async () => {
    for (const Ctor of CLASSES) {
      const instance = new Ctor('/x.sock');
      assert.ok(instance instanceof Ctor);
      const closed = waitFor(instance, 'close');
      assert.equal(instance.close(), instance);
      await closed;
    }
  });

  test('the string form listens and connects like the object form', T, async (t) => {
    const track = autoClose(t);
    const path = socketPath(t);
    const server = track(new Server(path));
    const listening = waitFor(server, 'listening');
    server.listen();
    await listening;
    const client = track(new Client(path));
    const connected = waitFor(client, 'connect');
    const connection = waitFor(server, 'connection');
    client.connect();
    const [[clientId]] = await Promise.all([connection, connected]);
    const got = waitFor(server, 'message');
    client.send('t', 'via string form');
    assert.deepStrictEqual(await got, ['via string form', 't', clientId]);
  });
});

describe('numeric options', () => {
  for (const Ctor of CLASSES) {
    test(`new ${Ctor.name}() rejects a bad maxMessageSize with TypeError or RangeError and a code`, T, () => {
      assertThrows(() => new Ctor({ socketFile: PATH, maxMessageSize: '1024' }), TypeError, 'ERR_INVALID_ARG_TYPE', /maxMessageSize/);
      assertThrows(() => new Ctor({ socketFile: PATH, maxMessageSize: NaN }), TypeError, 'ERR_INVALID_ARG_TYPE', /maxMessageSize/);
      assertThrows(() => new Ctor({ socketFile: PATH, maxMessageSize: null }), TypeError, 'ERR_INVALID_ARG_TYPE', /maxMessageSize/);
      for (const bad of [0, -1, 1.5, 15, 2 ** 32, Infinity]) {
        assertThrows(() => new Ctor({ socketFile: PATH, maxMessageSize: bad }), RangeError, 'ERR_OUT_OF_RANGE', /maxMessageSize/);
      }
    });

    test(`new ${Ctor.name}() rejects a bad handshakeTimeout with TypeError or RangeError and a code`, T, () => {
      assertThrows(() => new Ctor({ socketFile: PATH, handshakeTimeout: '200' }), TypeError, 'ERR_INVALID_ARG_TYPE', /handshakeTimeout/);
      for (const bad of [0, -5, 2.5, 2 ** 31]) {
        assertThrows(() => new Ctor({ socketFile: PATH, handshakeTimeout: bad }), RangeError, 'ERR_OUT_OF_RANGE', /handshakeTimeout/);
      }
    });

    test(`new ${Ctor.name}() accepts the boundary values of maxMessageSize and handshakeTimeout`, T, async () => {
      for (const options of [
        { maxMessageSize: 16 },
        { maxMessageSize: 0xffffffff },
        { handshakeTimeout: 1 },
        { handshakeTimeout: 2 ** 31 - 1 },
      ]) {
        const instance = new Ctor({ socketFile: PATH, ...options });
        const closed = waitFor(instance, 'close');
        instance.close();
        await closed;
      }
    });
  }

  test('new Client() rejects retryDelay and reconnectDelay with min > max, negative or non-numeric values with RangeError ERR_OUT_OF_RANGE', T, () => {
    for (const name of ['retryDelay', 'reconnectDelay']) {
      for (const bad of [{ min: 5, max: 1 }, -1, NaN, Infinity, '100', { min: -1, max: 5 }, { min: 1, max: 'x' }]) {
        assertThrows(() => new Client({ socketFile: PATH, [name]: bad }), RangeError, 'ERR_OUT_OF_RANGE', new RegExp(name));
      }
    }
  });

  test('new Client() rejects a negative or fractional maxRetries and maxQueue with RangeError ERR_OUT_OF_RANGE', T, () => {
    for (const name of ['maxRetries', 'maxQueue']) {
      for (const bad of [-1, 1.5, -Infinity]) {
        assertThrows(() => new Client({ socketFile: PATH, [name]: bad }), RangeError, 'ERR_OUT_OF_RANGE', new RegExp(name));
      }
      assertThrows(() => new Client({ socketFile: PATH, [name]: '3' }), TypeError, 'ERR_INVALID_ARG_TYPE', new RegExp(name));
    }
  });

  test('new Client() accepts delays as numbers or { min, max }, and Infinity or 0 for maxRetries and maxQueue', T, async () => {
    for (const options of [
      { retryDelay: 0, reconnectDelay: 0 },
      { retryDelay: { min: 1, max: 1 }, reconnectDelay: { min: 0, max: 50 } },
      { maxRetries: 0, maxQueue: 0 },
      { maxRetries: Infinity, maxQueue: Infinity },
    ]) {
      const client = new Client({ socketFile: PATH, ...options });
      const closed = waitFor(client, 'close');
      client.close();
      await closed;
    }
  });
});

describe('transcoder', () => {
  const encoder = () => () => {};
  const decoder = () => () => {};
  for (const Ctor of CLASSES) {
    test(`new ${Ctor.name}() with a transcoder that is not { createEncoder, createDecoder, socketEncoding } throws a TypeError naming what is wrong`, T, () => {
      assertThrows(() => new Ctor({ socketFile: PATH, transcoder: 42 }), TypeError, 'ERR_INVALID_ARG_TYPE', /options\.transcoder must be an object/);
      assertThrows(() => new Ctor({ socketFile: PATH, transcoder: {} }), TypeError, 'ERR_INVALID_ARG_VALUE', /createEncoder/);
      assertThrows(() => new Ctor({ socketFile: PATH, transcoder: { createEncoder: encoder } }), TypeError, 'ERR_INVALID_ARG_VALUE', /createDecoder/);
      for (const socketEncoding of ['utf9', 42, 'buffer']) {
        assertThrows(
          () => new Ctor({ socketFile: PATH, transcoder: { socketEncoding, createEncoder: encoder, createDecoder: decoder } }),
          TypeError,
          'ERR_INVALID_ARG_VALUE',
          /socketEncoding/,
        );
      }
      assertThrows(() => new Ctor({ socketFile: PATH, transcoder: { createEncoder: () => 'no', createDecoder: decoder } }), TypeError, 'ERR_INVALID_ARG_VALUE', /must return an encoder function/);
      const boom = new Error('boom');
      assert.throws(
        () => new Ctor({ socketFile: PATH, transcoder: { createEncoder: () => { throw boom; }, createDecoder: decoder } }),
        (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_VALUE' && err.cause === boom && /createEncoder\(\) threw: boom/.test(err.message),
      );
    });

    test(`new ${Ctor.name}() takes a transcoder (made once, as socket-ipc makes its encoder), and null or undefined for the default encoding`, T, async () => {
      let encoders = 0;
      for (const transcoder of [{ socketEncoding: 'latin1', createEncoder: () => (encoders++, encoder()), createDecoder: decoder }, null, undefined]) {
        const endpoint = new Ctor({ socketFile: PATH, transcoder });
        const closed = waitFor(endpoint, 'close');
        endpoint.close();
        await closed;
      }
      assert.equal(encoders, 1);
    });

    test(`new ${Ctor.name}() with protocol 'socket-ipc' and a transcoder throws ERR_IPC_NOT_SUPPORTED saying what to use instead`, T, () => {
      assertThrows(
        () => new Ctor({ socketFile: PATH, protocol: 'socket-ipc', transcoder: { createEncoder: encoder, createDecoder: decoder } }),
        Error,
        'ERR_IPC_NOT_SUPPORTED',
        /protocol 'native'.*same transcoder/,
      );
    });
  }
});

describe('listen() and connect()', () => {
  test('listen() returns the Server, and a second listen() throws ERR_IPC_ALREADY_LISTENING', T, async (t) => {
    const track = autoClose(t);
    const server = track(new Server({ socketFile: socketPath(t) }));
    const listening = waitFor(server, 'listening');
    assert.equal(server.listen(), server);
    assertThrows(() => server.listen(), Error, 'ERR_IPC_ALREADY_LISTENING');
    await listening;
    assertThrows(() => server.listen(), Error, 'ERR_IPC_ALREADY_LISTENING');
  });

  test('listen() after close() throws ERR_IPC_ALREADY_LISTENING saying the Server was closed', T, async (t) => {
    const server = new Server({ socketFile: socketPath(t) });
    const closed = waitFor(server, 'close');
    server.close();
    await closed;
    assertThrows(() => server.listen(), Error, 'ERR_IPC_ALREADY_LISTENING', /this Server was closed; create a new Server/);
  });

  test('connect() returns the Client, and a second connect() throws ERR_IPC_ALREADY_CONNECTING', T, async (t) => {
    const track = autoClose(t);
    const path = socketPath(t);
    const server = track(new Server({ socketFile: path }));
    const listening = waitFor(server, 'listening');
    server.listen();
    await listening;
    const client = track(new Client({ socketFile: path }));
    const connected = waitFor(client, 'connect');
    assert.equal(client.connect(), client);
    assertThrows(() => client.connect(), Error, 'ERR_IPC_ALREADY_CONNECTING');
    await connected;
    assertThrows(() => client.connect(), Error, 'ERR_IPC_ALREADY_CONNECTING');
  });

  test('connect() after close() throws ERR_IPC_ALREADY_CONNECTING saying the Client was closed (socket-ipc would connect a client whose sends all fail)', T, async (t) => {
    const client = new Client({ socketFile: socketPath(t) });
    const closed = waitFor(client, 'close');
    client.close();
    await closed;
    assertThrows(() => client.connect(), Error, 'ERR_IPC_ALREADY_CONNECTING', /this Client was closed; create a new Client/);
  });
});

test('a socketFile over 107 bytes or containing a NUL byte throws TypeError ERR_INVALID_ARG_VALUE naming socketFile', () => {
  const tooLong = `/tmp/${'x'.repeat(103)}`; // 108 bytes
  const longest = `/tmp/${'x'.repeat(102)}`; // 107 bytes
  for (const Ctor of [Server, Client]) {
    for (const bad of [tooLong, '/tmp/a\0b.sock', `/tmp/${'é'.repeat(52)}`]) {
      assert.throws(() => new Ctor({ socketFile: bad }), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_VALUE' && /socketFile/.test(err.message));
    }
    assert.doesNotThrow(() => new Ctor({ socketFile: longest }));
  }
});

describe('delivery and backpressure', () => {
  for (const Ctor of CLASSES) {
    test(`new ${Ctor.name}() throws naming the option for a bad delivery, highWaterMark or maxBufferedBytes, and accepts both delivery modes`, T, () => {
      for (const delivery of ['exactly-once', 'AT-LEAST-ONCE', 1, null]) {
        assertThrows(() => new Ctor({ socketFile: PATH, delivery }), TypeError, 'ERR_INVALID_ARG_VALUE', /options\.delivery/);
      }
      for (const highWaterMark of [0, -1, 1.5, Infinity]) {
        assertThrows(() => new Ctor({ socketFile: PATH, highWaterMark }), RangeError, 'ERR_OUT_OF_RANGE', /options\.highWaterMark/);
      }
      assertThrows(() => new Ctor({ socketFile: PATH, maxBufferedBytes: 0 }), RangeError, 'ERR_OUT_OF_RANGE', /options\.maxBufferedBytes/);
      assertThrows(
        () => new Ctor({ socketFile: PATH, highWaterMark: 2048, maxBufferedBytes: 1024 }),
        RangeError,
        'ERR_OUT_OF_RANGE',
        /options\.maxBufferedBytes \(1024\) must be at least options\.highWaterMark \(2048\)/,
      );
      for (const delivery of ['at-most-once', 'at-least-once', undefined]) new Ctor({ socketFile: PATH, delivery });
      new Ctor({ socketFile: PATH, highWaterMark: 1, maxBufferedBytes: Infinity });
    });
  }

  test("a Peer refuses delivery 'at-least-once' (it has no server side to keep a session)", T, () => {
    const { Peer } = require('..');
    assertThrows(() => new Peer({ socketFile: PATH, delivery: 'at-least-once' }), TypeError, 'ERR_INVALID_ARG_VALUE', /Peer/);
    new Peer({ socketFile: PATH, delivery: 'at-most-once' });
  });

  test('sessionTimeout on a Server must be a whole number of ms from 0', T, () => {
    for (const sessionTimeout of [-1, 1.5, 'soon']) {
      assert.throws(() => new Server({ socketFile: PATH, sessionTimeout }), (err) => /options\.sessionTimeout/.test(err.message));
    }
    new Server({ socketFile: PATH, sessionTimeout: 0 });
  });
});
