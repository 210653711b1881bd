'use strict';
// Addresses and transports: every address form the constructors accept (each one used for a real
// connection) and the ones they reject; server.address() through a Server's life; forcing the
// address family with tcp4:// and tcp6://; abstract Unix sockets; a TCP port already in use;
// reconnecting to a server restarted on the same port; heartbeats, Peers and connect errors over
// TCP and TLS. The core message and request cases run on every transport in messages.test.js and
// requests.test.js.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const dns = require('node:dns');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { Server, Client, Peer } = require('..');
const {
  tlsFixture,
  socketPath,
  waitFor,
  collect,
  sleep,
  withTimeout,
  autoClose,
  startServer,
  connectClient,
  spawnFixture,
  childMessage,
} = require('./helpers');

const T = { timeout: 20000 };

// ----- local helpers -----

/** A loopback TCP port that was free a moment ago (node:net listens on port 0, then closes). */
function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Whether node:net can listen on ::1 here (asked once). */
let ipv6Probe;
function ipv6Loopback() {
  ipv6Probe ??= new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
  return ipv6Probe;
}
const NO_IPV6 = 'this machine has no IPv6 loopback (node:net cannot listen on ::1)';

/** Whether 'localhost' resolves to an IPv6 address here. */
const localhostHasIPv6 = () =>
  dns.promises.lookup('localhost', { family: 6 }).then(
    () => true,
    () => false,
  );

/** A fresh Linux abstract socket name. */
const abstractName = () => `nsipc-test-${process.pid}-${Math.random().toString(36).slice(2)}`;

const serverTls = () => ({ cert: tlsFixture('server.pem'), key: tlsFixture('server-key.pem') });
const clientTls = () => ({ ca: tlsFixture('ca.pem') });

/** Asserts that `fn` throws an instance of `Ctor` with `code` and a message matching `pattern`. */
function assertThrows(fn, Ctor, code, pattern) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof Ctor, `expected a ${Ctor.name}, got ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
    assert.equal(err.code, code, err.message);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

/** Asserts that `address` is { address: host, family, port } with a real port (1..65535). */
function assertTcpAddress(address, host, family) {
  assert.ok(address !== null && typeof address === 'object', `a TCP address is an object, got ${JSON.stringify(address)}`);
  assert.deepEqual(Object.keys(address).sort(), ['address', 'family', 'port']);
  assert.equal(address.address, host);
  assert.equal(address.family, family);
  assert.ok(Number.isInteger(address.port) && address.port > 0 && address.port <= 65535, `a real port, got ${address.port}`);
}

/** Asserts what server.clientInfo(clientId) says about a client in this process over `kind`. */
function assertClientInfo(info, kind) {
  if (kind === 'unix') {
    assert.deepEqual(info, { pid: process.pid, uid: process.getuid(), gid: process.getgid() });
    return;
  }
  assertTcpAddress(info, kind === 'IPv6' ? '::1' : '127.0.0.1', kind);
}

/** A listening Server made with `options`, tracked by `track`. */
async function listening(track, options) {
  const server = track(new Server(options));
  const ready = waitFor(server, 'listening');
  server.listen();
  await ready;
  return server;
}

/** Connects a Client made with `options` (tracked) to `server`: { client, clientId }. */
async function connected(server, track, options) {
  const client = track(new Client(options));
  const connection = waitFor(server, 'connection');
  const connect = waitFor(client, 'connect');
  client.connect();
  const [[clientId]] = await Promise.all([connection, connect]);
  return { client, clientId };
}

/** Asserts a message goes each way between `server` and the client `clientId`. */
async function assertExchange(server, client, clientId, label) {
  const up = waitFor(server, 'message.up');
  client.send('up', { label });
  assert.deepEqual(await up, [{ label }, clientId]);
  const down = waitFor(client, 'message.down');
  server.send('down', Buffer.from(label), clientId);
  const [bytes] = await down;
  assert.equal(Buffer.from(bytes).toString(), label);
}

/** Records the events of a Client or Server that the tests here assert on, with reasons' codes. */
function record(emitter) {
  const events = [];
  const codeOf = (reason) => (reason === undefined ? undefined : reason && reason.code);
  for (const name of ['connect', 'reconnect', 'close']) emitter.on(name, () => events.push({ event: name }));
  emitter.on('disconnect', (reason) => events.push({ event: 'disconnect', code: codeOf(reason) }));
  emitter.on('connectionClose', (clientId, reason) => events.push({ event: 'connectionClose', clientId, code: codeOf(reason) }));
  emitter.on('connectError', (err) => events.push({ event: 'connectError', code: err.code }));
  emitter.on('message', (message, topic) => events.push({ event: 'message', topic }));
  emitter.on('messageError', (err) => events.push({ event: 'messageError', code: err.code }));
  emitter.on('error', (err) => events.push({ event: 'error', code: err.code, message: err.message }));
  return events;
}

const only = (events, ...names) => events.filter((e) => names.includes(e.event));

// ----- address forms the constructors accept -----

// Each form: the Server's argument, what server.address() then gives, the Client's argument (from
// the bound port for TCP), and what clientInfo() shows for that connection ('unix', 'IPv4', 'IPv6').
const ACCEPTED = [
  {
    form: "a socket path as the string argument: new Server('<dir>/x.sock'), new Client('<dir>/x.sock')",
    server: (t, c) => (c.path = socketPath(t)),
    address: (c) => c.path,
    client: (c) => c.path,
    info: 'unix',
  },
  {
    form: '{ socketFile: path }',
    server: (t, c) => ({ socketFile: (c.path = socketPath(t)) }),
    address: (c) => c.path,
    client: (c) => ({ socketFile: c.path }),
    info: 'unix',
  },
  {
    form: "'unix://' + path as the string argument (address() gives the bare path)",
    server: (t, c) => `unix://${(c.path = socketPath(t))}`,
    address: (c) => c.path,
    client: (c) => `unix://${c.path}`,
    info: 'unix',
  },
  {
    form: "{ address: 'unix://' + path }",
    server: (t, c) => ({ address: `unix://${(c.path = socketPath(t))}` }),
    address: (c) => c.path,
    client: (c) => ({ address: `unix://${c.path}` }),
    info: 'unix',
  },
  {
    form: "'unix:@name' (a Linux abstract socket)",
    server: (t, c) => `unix:@${(c.name = abstractName())}`,
    address: (c) => `unix:@${c.name}`,
    client: (c) => ({ address: `unix:@${c.name}` }),
    info: 'unix',
  },
  {
    form: "'tcp://127.0.0.1:0', then 'tcp://127.0.0.1:<port>'",
    server: () => 'tcp://127.0.0.1:0',
    address: () => ({ address: '127.0.0.1', family: 'IPv4' }),
    client: (c, port) => `tcp://127.0.0.1:${port}`,
    info: 'IPv4',
  },
  {
    form: "'tcp4://127.0.0.1:0', then 'tcp4://localhost:<port>'",
    server: () => ({ address: 'tcp4://127.0.0.1:0' }),
    address: () => ({ address: '127.0.0.1', family: 'IPv4' }),
    client: (c, port) => ({ address: `tcp4://localhost:${port}` }),
    info: 'IPv4',
  },
  {
    form: "'tcp6://[::1]:0', then 'tcp6://[::1]:<port>'",
    ipv6: true,
    server: () => 'tcp6://[::1]:0',
    address: () => ({ address: '::1', family: 'IPv6' }),
    client: (c, port) => ({ address: `tcp6://[::1]:${port}` }),
    info: 'IPv6',
  },
  {
    form: "'tcp://[::1]:0' (a bracketed IPv6 literal without forcing the family)",
    ipv6: true,
    server: () => ({ address: 'tcp://[::1]:0' }),
    address: () => ({ address: '::1', family: 'IPv6' }),
    client: (c, port) => `tcp://[::1]:${port}`,
    info: 'IPv6',
  },
  {
    form: "'tls://127.0.0.1:0' with tls { cert, key }, then 'tls://localhost:<port>' with tls { ca }",
    server: () => ({ address: 'tls://127.0.0.1:0', tls: serverTls() }),
    address: () => ({ address: '127.0.0.1', family: 'IPv4' }),
    client: (c, port) => ({ address: `tls://localhost:${port}`, tls: clientTls() }),
    info: 'IPv4',
  },
  {
    form: "{ address: { host, port: 0, family: 4 } }, then { address: { host: 'localhost', port, family: 'IPv4' } }",
    server: () => ({ address: { host: '127.0.0.1', port: 0, family: 4 } }),
    address: () => ({ address: '127.0.0.1', family: 'IPv4' }),
    client: (c, port) => ({ address: { host: 'localhost', port, family: 'IPv4' } }),
    info: 'IPv4',
  },
  {
    form: "{ address: { host: '::1', port: 0, family: 'IPv6' } }, then { address: { host: '::1', port, family: 6 } }",
    ipv6: true,
    server: () => ({ address: { host: '::1', port: 0, family: 'IPv6' } }),
    address: () => ({ address: '::1', family: 'IPv6' }),
    client: (c, port) => ({ address: { host: '::1', port, family: 6 } }),
    info: 'IPv6',
  },
  {
    form: '{ host, port } directly in the options, as in net.connect',
    server: () => ({ host: '127.0.0.1', port: 0 }),
    address: () => ({ address: '127.0.0.1', family: 'IPv4' }),
    client: (c, port) => ({ host: '127.0.0.1', port }),
    info: 'IPv4',
  },
  {
    form: '{ host, port, tls } (TLS switched on by options.tls, not by the scheme)',
    server: () => ({ host: '127.0.0.1', port: 0, tls: serverTls() }),
    address: () => ({ address: '127.0.0.1', family: 'IPv4' }),
    client: (c, port) => ({ host: 'localhost', port, tls: clientTls() }),
    info: 'IPv4',
  },
  {
    form: '{ socketFile, tls } (TLS over a Unix socket file; clientInfo keeps the peer credentials)',
    server: (t, c) => ({ socketFile: (c.path = socketPath(t)), tls: serverTls() }),
    address: (c) => c.path,
    client: (c) => ({ socketFile: c.path, tls: clientTls() }),
    info: 'unix',
  },
];

describe('address forms the constructors accept', () => {
  for (const form of ACCEPTED) {
    test(`${form.form}: the Server listens, address() reports it, a Client connects and messages flow both ways`, T, async (t) => {
      if (form.ipv6 && !(await ipv6Loopback())) return t.skip(NO_IPV6);
      const track = autoClose(t);
      const c = {};
      const server = await listening(track, form.server(t, c));
      const expected = form.address(c);
      const address = server.address();
      if (typeof expected === 'string') assert.equal(address, expected);
      else assertTcpAddress(address, expected.address, expected.family);

      const { client, clientId } = await connected(server, track, form.client(c, address && address.port));
      assertClientInfo(server.clientInfo(clientId), form.info);
      await assertExchange(server, client, clientId, form.form);
    });
  }

  test("new Peer() takes the same forms: a Peer on 'tcp://127.0.0.1:<port>' and one on { host, port } find each other", T, async (t) => {
    const port = await freePort();
    const track = autoClose(t);
    const a = track(new Peer({ address: `tcp://127.0.0.1:${port}`, retryDelay: 50 }));
    const b = track(new Peer({ host: '127.0.0.1', port, retryDelay: 50 }));
    const roleA = waitFor(a, 'role');
    a.connect();
    assert.deepEqual(await roleA, ['server']);
    const connects = Promise.all([waitFor(a, 'connect'), waitFor(b, 'connect')]);
    b.connect();
    await connects;
    assert.equal(b.role, 'client');
    const got = waitFor(a, 'message.hi');
    b.send('hi', 'from b');
    assert.deepEqual(await got, ['from b']);
  });
});

// ----- address forms the constructors reject -----

describe('address forms the constructors reject', () => {
  const INVALID = 'ERR_INVALID_ARG_VALUE';

  test('a TCP or TLS address without a port throws TypeError ERR_INVALID_ARG_VALUE saying it needs a port', () => {
    for (const Ctor of [Server, Client, Peer]) {
      assertThrows(() => new Ctor('tcp://127.0.0.1'), TypeError, INVALID, /needs a port/);
      assertThrows(() => new Ctor({ address: 'tls://localhost' }), TypeError, INVALID, /needs a port/);
      assertThrows(() => new Ctor({ host: '127.0.0.1' }), TypeError, INVALID, /port must be a whole number/);
      assertThrows(() => new Ctor({ address: { host: '127.0.0.1' } }), TypeError, INVALID, /port must be a whole number/);
    }
  });

  test('port 0 throws on a Client and a Peer (1 to 65535), in every address form; a Server accepts it', () => {
    for (const Ctor of [Client, Peer]) {
      assertThrows(() => new Ctor('tcp://127.0.0.1:0'), TypeError, INVALID, /from 1 to 65535, got 0/);
      assertThrows(() => new Ctor({ address: 'tls://localhost:0' }), TypeError, INVALID, /from 1 to 65535, got 0/);
      assertThrows(() => new Ctor({ address: { host: '127.0.0.1', port: 0 } }), TypeError, INVALID, /from 1 to 65535, got 0/);
      assertThrows(() => new Ctor({ host: '127.0.0.1', port: 0 }), TypeError, INVALID, /from 1 to 65535, got 0/);
    }
    new Server('tcp://127.0.0.1:0').close();
    new Server({ host: '127.0.0.1', port: 0 }).close();
  });

  test('port 70000 (or a fraction, or a negative port) throws TypeError ERR_INVALID_ARG_VALUE naming the value', () => {
    for (const Ctor of [Server, Client, Peer]) {
      assertThrows(() => new Ctor('tcp://127.0.0.1:70000'), TypeError, INVALID, /tcp:\/\/127\.0\.0\.1:70000/);
      assertThrows(() => new Ctor({ host: '127.0.0.1', port: 70000 }), TypeError, INVALID, /to 65535.*got 70000/);
      assertThrows(() => new Ctor({ address: { host: '127.0.0.1', port: 70000 } }), TypeError, INVALID, /to 65535.*got 70000/);
      assertThrows(() => new Ctor({ host: '127.0.0.1', port: 80.5 }), TypeError, INVALID, /got 80\.5/);
      assertThrows(() => new Ctor({ host: '127.0.0.1', port: -1 }), TypeError, INVALID, /got -1/);
      assertThrows(() => new Ctor({ host: '127.0.0.1', port: '8080' }), TypeError, INVALID, /got "8080"/);
    }
  });

  test("an unknown scheme (udp://) throws TypeError ERR_INVALID_ARG_VALUE listing the schemes that work", () => {
    for (const Ctor of [Server, Client, Peer]) {
      assertThrows(() => new Ctor('udp://127.0.0.1:9000'), TypeError, INVALID, /unknown scheme 'udp:\/\/'.*tcp:\/\//);
      assertThrows(() => new Ctor({ address: 'http://127.0.0.1:9000' }), TypeError, INVALID, /unknown scheme 'http:\/\/'/);
    }
  });

  test('a path, query or user in a TCP URL throws TypeError ERR_INVALID_ARG_VALUE: a TCP address is just host and port', () => {
    for (const Ctor of [Server, Client, Peer]) {
      for (const address of ['tcp://127.0.0.1:9000/some/path', 'tls://localhost:9000/x', 'tcp://127.0.0.1:9000?a=1', 'tcp://user@127.0.0.1:9000']) {
        assertThrows(() => new Ctor({ address }), TypeError, INVALID, /just host and port/);
      }
    }
  });

  test('an empty host throws TypeError ERR_INVALID_ARG_VALUE', () => {
    for (const Ctor of [Server, Client, Peer]) {
      assertThrows(() => new Ctor('tcp://:9000'), TypeError, INVALID, /tcp:\/\/:9000/);
      assertThrows(() => new Ctor({ host: '', port: 9000 }), TypeError, INVALID, /needs a host/);
      assertThrows(() => new Ctor({ address: { host: '', port: 9000 } }), TypeError, INVALID, /needs a host/);
      assertThrows(() => new Ctor({ address: { port: 9000 } }), TypeError, INVALID, /needs a host/);
      assertThrows(() => new Ctor({ port: 9000 }), TypeError, INVALID, /needs a host/);
    }
  });

  test('an unknown family or an address that is neither a string nor an object throws', () => {
    for (const Ctor of [Server, Client, Peer]) {
      assertThrows(() => new Ctor({ host: '127.0.0.1', port: 9000, family: 5 }), TypeError, INVALID, /family/);
      assertThrows(() => new Ctor({ address: { host: '127.0.0.1', port: 9000, family: 'IPv5' } }), TypeError, INVALID, /family/);
      assertThrows(() => new Ctor({ address: 9000 }), TypeError, 'ERR_INVALID_ARG_TYPE', /options\.address/);
      assertThrows(() => new Ctor({ address: null }), TypeError, 'ERR_INVALID_ARG_TYPE', /options\.address/);
    }
  });

  test("'unix:@' with an empty abstract name throws TypeError ERR_INVALID_ARG_VALUE", () => {
    for (const Ctor of [Server, Client, Peer]) {
      assertThrows(() => new Ctor('unix:@'), TypeError, INVALID, /abstract socket name/);
    }
  });

  test('mode on a TCP, TLS or abstract Server throws TypeError ERR_INVALID_ARG_VALUE: only a socket file has permissions', () => {
    for (const options of [{ address: 'tcp://127.0.0.1:0' }, { host: '127.0.0.1', port: 0 }, { address: `unix:@${abstractName()}` }, { address: 'tls://127.0.0.1:0', tls: serverTls() }]) {
      assertThrows(() => new Server({ ...options, mode: 0o600 }), TypeError, INVALID, /mode/);
    }
    assertThrows(() => new Peer({ address: 'tcp://127.0.0.1:9000', mode: 0o600 }), TypeError, INVALID, /mode/);
  });

  test('allow: { uids } or { gids } on a TCP or TLS Server throws TypeError ERR_INVALID_ARG_VALUE (TCP has no peer credentials); a function is accepted', () => {
    for (const options of [{ address: 'tcp://127.0.0.1:0' }, { host: '127.0.0.1', port: 0 }, { address: 'tls://127.0.0.1:0', tls: serverTls() }]) {
      assertThrows(() => new Server({ ...options, allow: { uids: [process.getuid()] } }), TypeError, INVALID, /allow/);
      assertThrows(() => new Server({ ...options, allow: { gids: [process.getgid()] } }), TypeError, INVALID, /allow/);
      new Server({ ...options, allow: () => true }).close();
    }
  });

  test('mode or allow on a Client, and allow on a Peer, throw TypeError ERR_INVALID_ARG_VALUE: they are Server options', () => {
    for (const address of ['tcp://127.0.0.1:9000', `unix:@${abstractName()}`, path.join(os.tmpdir(), 'nsipc-never-used.sock')]) {
      assertThrows(() => new Client({ address, mode: 0o600 }), TypeError, INVALID, /mode is a Server option/);
      assertThrows(() => new Client({ address, allow: { uids: [0] } }), TypeError, INVALID, /allow is a Server option/);
      assertThrows(() => new Client({ address, allow: () => true }), TypeError, INVALID, /allow is a Server option/);
      assertThrows(() => new Peer({ address, allow: { uids: [0] } }), TypeError, INVALID, /allow is a Server option/);
      assertThrows(() => new Peer({ address, allow: () => true }), TypeError, INVALID, /allow is a Server option/);
    }
  });

  test('a TLS Server without cert and key throws TypeError ERR_IPC_TLS_CONFIG from the constructor', () => {
    assertThrows(() => new Server('tls://127.0.0.1:0'), TypeError, 'ERR_IPC_TLS_CONFIG', /cert/);
    assertThrows(() => new Server({ address: 'tls://127.0.0.1:0' }), TypeError, 'ERR_IPC_TLS_CONFIG', /cert/);
    assertThrows(() => new Server({ address: 'tls://127.0.0.1:0', tls: {} }), TypeError, 'ERR_IPC_TLS_CONFIG', /cert/);
    assertThrows(() => new Server({ address: 'tls://127.0.0.1:0', tls: { cert: tlsFixture('server.pem') } }), TypeError, 'ERR_IPC_TLS_CONFIG');
    assertThrows(() => new Server({ host: '127.0.0.1', port: 0, tls: { key: tlsFixture('server-key.pem') } }), TypeError, 'ERR_IPC_TLS_CONFIG');
  });
});

// ----- server.address() -----

describe('server.address()', () => {
  /** Checks address() over a Server's life: null, then `check(address)` once listening, then null. */
  async function lifecycle(t, options, check) {
    const track = autoClose(t);
    const server = track(new Server(options));
    assert.equal(server.address(), null, 'null before listen()');
    const ready = waitFor(server, 'listening');
    server.listen();
    assert.equal(server.address(), null, "null after listen(), before 'listening'");
    await ready;
    await check(server.address());
    server.close();
    await withTimeout(server.closedPromise, 5000, "the server's 'close'");
    assert.equal(server.address(), null, "null after 'close'");
  }

  test("a socket file: null before 'listening', the socket path while listening, null after 'close'", T, async (t) => {
    const socketFile = socketPath(t);
    await lifecycle(t, { socketFile }, (address) => {
      assert.equal(address, socketFile);
      assert.ok(fs.statSync(socketFile).isSocket(), 'the path is a socket');
    });
  });

  test("an abstract socket: null before 'listening', 'unix:@name' while listening, null after 'close'", T, async (t) => {
    const name = abstractName();
    await lifecycle(t, { address: `unix:@${name}` }, (address) => assert.equal(address, `unix:@${name}`));
  });

  test("'tcp://127.0.0.1:0': null before 'listening', then { address, family: 'IPv4', port } with the real port (node:net connects to it), null after 'close'", T, async (t) => {
    await lifecycle(t, { address: 'tcp://127.0.0.1:0' }, async (address) => {
      assertTcpAddress(address, '127.0.0.1', 'IPv4');
      const socket = net.connect(address.port, '127.0.0.1');
      try {
        await waitFor(socket, 'connect');
      } finally {
        socket.destroy();
      }
    });
  });

  test("'tcp6://[::1]:0': { address: '::1', family: 'IPv6', port } with a real port", T, async (t) => {
    if (!(await ipv6Loopback())) return t.skip(NO_IPV6);
    await lifecycle(t, { address: 'tcp6://[::1]:0' }, async (address) => {
      assertTcpAddress(address, '::1', 'IPv6');
      const socket = net.connect(address.port, '::1');
      try {
        await waitFor(socket, 'connect');
      } finally {
        socket.destroy();
      }
    });
  });

  test('a fixed TCP port is reported as given', T, async (t) => {
    const port = await freePort();
    await lifecycle(t, { host: '127.0.0.1', port }, (address) => assert.deepEqual(address, { address: '127.0.0.1', family: 'IPv4', port }));
  });

  test('address() returns a copy: changing it does not change what the server reports', T, async (t) => {
    const track = autoClose(t);
    const server = await startServer(t, track, {}, 'tcp');
    const address = server.address();
    address.port = 1;
    assert.notEqual(server.address().port, 1);
  });

  test('a Server whose listen() failed reports address() null', T, async (t) => {
    const track = autoClose(t);
    const first = await startServer(t, track, {}, 'tcp');
    const second = track(new Server(`tcp://127.0.0.1:${first.address().port}`));
    const failed = waitFor(second, 'error');
    second.listen();
    assert.equal((await failed)[0].code, 'EADDRINUSE');
    assert.equal(second.address(), null);
  });
});

// ----- forcing the address family -----

describe('tcp4:// and tcp6:// force the address family', () => {
  test("'tcp4://localhost:<port>' connects over IPv4: clientInfo(id).family is 'IPv4' (and an IPv6 server on the same port gets nothing)", T, async (t) => {
    const track = autoClose(t);
    const v4 = await startServer(t, track, {}, 'tcp');
    const { port } = v4.address();
    let v6Connections = 0;
    if (await ipv6Loopback()) {
      // With a server on ::1 too, 'localhost' could reach either one; only forcing picks.
      const v6 = await listening(track, `tcp6://[::1]:${port}`);
      v6.on('connection', () => v6Connections++);
    }
    const { client, clientId } = await connected(v4, track, `tcp4://localhost:${port}`);
    const info = v4.clientInfo(clientId);
    assert.equal(info.family, 'IPv4');
    assert.equal(info.address, '127.0.0.1');
    await assertExchange(v4, client, clientId, 'over IPv4');
    assert.equal(v6Connections, 0, 'the IPv6 server saw no connection');
  });

  test("'tcp6://localhost:<port>' connects over IPv6: clientInfo(id).family is 'IPv6' (and an IPv4 server on the same port gets nothing)", T, async (t) => {
    if (!(await ipv6Loopback())) return t.skip(NO_IPV6);
    if (!(await localhostHasIPv6())) return t.skip("'localhost' has no IPv6 address on this machine (see the ENOTFOUND test below)");
    const track = autoClose(t);
    const v6 = await listening(track, 'tcp6://[::1]:0');
    const { port } = v6.address();
    const v4 = await listening(track, `tcp4://127.0.0.1:${port}`);
    let v4Connections = 0;
    v4.on('connection', () => v4Connections++);
    const { client, clientId } = await connected(v6, track, `tcp6://localhost:${port}`);
    const info = v6.clientInfo(clientId);
    assert.equal(info.family, 'IPv6');
    assert.equal(info.address, '::1');
    await assertExchange(v6, client, clientId, 'over IPv6');
    assert.equal(v4Connections, 0, 'the IPv4 server saw no connection');
  });

  test("'tcp6://localhost:<port>' where 'localhost' has no IPv6 address: 'connectError' ENOTFOUND, never a fallback to the IPv4 server on that port", T, async (t) => {
    if (await localhostHasIPv6()) return t.skip("'localhost' has an IPv6 address on this machine (the test above covers it)");
    const track = autoClose(t);
    const v4 = await startServer(t, track, {}, 'tcp');
    let connections = 0;
    v4.on('connection', () => connections++);
    const client = track(new Client({ address: `tcp6://localhost:${v4.address().port}`, maxRetries: 0 }));
    const events = record(client);
    const connectError = waitFor(client, 'connectError', 10000);
    const exhausted = waitFor(client, 'error', 10000);
    client.connect();
    const [err] = await connectError;
    assert.equal(err.code, 'ENOTFOUND');
    assert.match(err.message, /localhost/);
    assert.equal((await exhausted)[0].code, 'ERR_IPC_RETRIES_EXHAUSTED');
    await withTimeout(client.closedPromise, 5000, "the client's 'close'");
    assert.equal(connections, 0, 'the IPv4 server saw no connection');
    assert.deepEqual(only(events, 'connect'), []);
  });
});

// ----- abstract sockets -----

describe('abstract Unix sockets', () => {
  test("a Server on 'unix:@name' creates no file; the kernel lists '@name' as a listening abstract socket", T, async (t) => {
    const name = abstractName();
    const candidates = [process.cwd(), os.tmpdir()].flatMap((dir) => [name, `@${name}`, `unix:@${name}`].map((f) => path.join(dir, f)));
    const track = autoClose(t);
    const server = await startServer(t, track, { address: `unix:@${name}` }, 'abstract');
    const { client, clientId } = await connectClient(server, track);
    for (const file of candidates) assert.equal(fs.existsSync(file), false, `no file ${file}`);
    let table = null;
    try {
      table = fs.readFileSync('/proc/net/unix', 'utf8');
    } catch {
      // no /proc/net/unix here: the file checks above stand alone
    }
    if (table !== null) assert.ok(table.split('\n').some((line) => line.endsWith(` @${name}`)), `/proc/net/unix lists @${name}`);
    await assertExchange(server, client, clientId, 'abstract');
  });

  test("a second Server on the same abstract name emits 'error' EADDRINUSE; the first keeps serving", T, async (t) => {
    const track = autoClose(t);
    const first = await startServer(t, track, {}, 'abstract');
    const { client, clientId } = await connectClient(first, track);
    const second = track(new Server({ address: first.address() }));
    const events = record(second);
    const failed = waitFor(second, 'error');
    second.listen();
    const [err] = await failed;
    assert.equal(err.code, 'EADDRINUSE');
    await sleep(50);
    assert.deepEqual(
      events.map((e) => e.event),
      ['error'],
      "one 'error', no 'listening'",
    );
    await assertExchange(first, client, clientId, 'still serving');
    await connectClient(first, track);
  });

  test("after close() the abstract name is free again: a new Server listens on it and a Client connects", T, async (t) => {
    const track = autoClose(t);
    const first = await startServer(t, track, {}, 'abstract');
    const address = first.address();
    await connectClient(first, track);
    first.close();
    await withTimeout(first.closedPromise, 5000, "the first server's 'close'");
    const second = await listening(track, { address });
    assert.equal(second.address(), address);
    const { client, clientId } = await connected(second, track, { address });
    await assertExchange(second, client, clientId, 'the name again');
  });
});

// ----- a TCP port in use -----

test("a second Server on a TCP port already in use emits 'error' EADDRINUSE and 'close' after close(); the first keeps serving old and new clients", T, async (t) => {
  const track = autoClose(t);
  const first = await startServer(t, track, {}, 'tcp');
  const { client, clientId } = await connectClient(first, track);
  const { port } = first.address();
  const second = track(new Server(`tcp://127.0.0.1:${port}`));
  const events = record(second);
  let listened = false;
  second.on('listening', () => (listened = true));
  const failed = waitFor(second, 'error');
  second.listen();
  const [err] = await failed;
  assert.equal(err.code, 'EADDRINUSE');
  assert.match(err.message, new RegExp(String(port)));
  second.close();
  await withTimeout(second.closedPromise, 5000, "the second server's 'close'");
  assert.equal(listened, false);
  assert.deepEqual(
    events.map((e) => e.event),
    ['error', 'close'],
  );

  await assertExchange(first, client, clientId, 'the first server');
  const other = await connectClient(first, track);
  await assertExchange(first, other.client, other.clientId, 'a new client');
});

// ----- TCP and TLS: reconnect, heartbeats, Peers -----

for (const scheme of ['tcp', 'tls']) {
  const transport = scheme;
  const serverExtra = () => (scheme === 'tls' ? { tls: serverTls() } : {});
  const clientExtra = () => (scheme === 'tls' ? { tls: clientTls() } : {});
  // TLS clients name the host the certificate is for; plain TCP clients use the address itself.
  const clientHost = scheme === 'tls' ? 'localhost' : '127.0.0.1';

  describe(`over ${scheme}`, () => {
    test(`a Client reconnects when the server restarts on the same ${scheme} port, and a message sent while disconnected reaches the new server`, T, async (t) => {
      const track = autoClose(t);
      const first = await startServer(t, track, {}, transport);
      const { port } = first.address();
      const client = track(new Client({ address: `${scheme}://${clientHost}:${port}`, ...clientExtra(), retryDelay: 20, reconnectDelay: 20 }));
      const events = record(client);
      const firstConnection = waitFor(first, 'connection');
      client.connect();
      await waitFor(client, 'connect');
      await firstConnection;

      const disconnected = waitFor(client, 'disconnect');
      first.close();
      await withTimeout(first.closedPromise, 5000, "the first server's 'close'");
      await disconnected;
      client.send('queued', 'sent while disconnected');
      await sleep(100); // a few refused attempts go by

      const second = track(new Server({ address: `${scheme}://127.0.0.1:${port}`, ...serverExtra() }));
      const secondConnection = waitFor(second, 'connection', 10000);
      const reconnected = waitFor(client, 'reconnect', 10000);
      const queued = waitFor(second, 'message.queued', 10000);
      second.listen();
      await reconnected;
      const [secondId] = await secondConnection;
      assert.deepEqual(await queued, ['sent while disconnected', secondId]);
      assert.equal(second.address().port, port);
      await assertExchange(second, client, secondId, 'after the restart');
      assert.ok(only(events, 'connectError').every((e) => e.code === 'ECONNREFUSED'), JSON.stringify(only(events, 'connectError')));
      assert.deepEqual(only(events, 'error', 'messageError'), []);
    });

    test(`an idle ${scheme} connection with heartbeatInterval 50 / heartbeatTimeout 150 on both sides stays up for 500 ms and messages flow afterwards`, T, async (t) => {
      const hb = { heartbeatInterval: 50, heartbeatTimeout: 150 };
      const track = autoClose(t);
      const server = await startServer(t, track, hb, transport);
      const serverEvents = record(server);
      const { client, clientId } = await connectClient(server, track, hb);
      const clientEvents = record(client);
      await sleep(500);
      assert.deepEqual(only(serverEvents, 'connectionClose', 'message', 'messageError', 'error'), [], 'the server side stayed quiet');
      assert.deepEqual(only(clientEvents, 'disconnect', 'connect', 'message', 'messageError', 'error'), [], 'the client side stayed quiet');
      await assertExchange(server, client, clientId, 'after idling');
    });

    test(`heartbeats on the ${scheme} client only (50 / 150, server heartbeatInterval: 0) keep an idle connection up for 500 ms: the server answers the pings`, T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { heartbeatInterval: 0 }, transport);
      const serverEvents = record(server);
      const { client, clientId } = await connectClient(server, track, { heartbeatInterval: 50, heartbeatTimeout: 150 });
      const clientEvents = record(client);
      await sleep(500);
      assert.deepEqual(only(clientEvents, 'disconnect', 'connect', 'error'), [], 'the client kept its connection');
      assert.deepEqual(only(serverEvents, 'connectionClose', 'error'), [], 'the server kept its connection');
      await assertExchange(server, client, clientId, 'after idling');
    });

    test(`heartbeats on the ${scheme} server only (50 / 150, client heartbeatInterval: 0) keep an idle connection up for 500 ms: the client answers the pings`, T, async (t) => {
      const track = autoClose(t);
      const server = await startServer(t, track, { heartbeatInterval: 50, heartbeatTimeout: 150 }, transport);
      const serverEvents = record(server);
      const { client, clientId } = await connectClient(server, track, { heartbeatInterval: 0 });
      const clientEvents = record(client);
      await sleep(500);
      assert.deepEqual(only(serverEvents, 'connectionClose', 'error'), [], 'the server kept its connection');
      assert.deepEqual(only(clientEvents, 'disconnect', 'connect', 'error'), [], 'the client kept its connection');
      await assertExchange(server, client, clientId, 'after idling');
    });

    test(`a ${scheme} Client detects its SIGSTOPped server process within heartbeatTimeout + heartbeatInterval: 'disconnect' with ERR_IPC_HEARTBEAT_TIMEOUT`, T, async (t) => {
      const heartbeatInterval = 200;
      const heartbeatTimeout = 600;
      const port = await freePort();
      // heartbeat-server.js takes a socket path and then options (JSON), whose address wins.
      const options = { address: `${scheme}://127.0.0.1:${port}`, heartbeatInterval: 0 };
      if (scheme === 'tls') options.tls = { cert: tlsFixture('server.pem').toString(), key: tlsFixture('server-key.pem').toString() };
      const child = spawnFixture(t, 'heartbeat-server.js', ['-', JSON.stringify(options)]);
      t.after(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
      });
      await childMessage(child, (m) => m.event === 'listening', 10000);
      const track = autoClose(t);
      const client = track(
        new Client({ address: `${scheme}://${clientHost}:${port}`, ...clientExtra(), heartbeatInterval, heartbeatTimeout, retryDelay: 50, reconnectDelay: 50, handshakeTimeout: 1000 }),
      );
      const events = record(client);
      client.connect();
      await waitFor(client, 'connect', 5000);
      await sleep(2 * heartbeatInterval);
      assert.deepEqual(only(events, 'disconnect', 'error'), [], 'nothing dropped while the server runs');

      const disconnected = waitFor(client, 'disconnect', 5000);
      child.kill('SIGSTOP');
      const stoppedAt = performance.now();
      const [reason] = await disconnected;
      const elapsed = performance.now() - stoppedAt;
      assert.equal(reason && reason.code, 'ERR_IPC_HEARTBEAT_TIMEOUT');
      assert.ok(elapsed <= heartbeatTimeout + heartbeatInterval, `detected ${elapsed.toFixed(1)} ms after SIGSTOP, over ${heartbeatTimeout} + ${heartbeatInterval} ms`);
      t.diagnostic(`detected ${elapsed.toFixed(1)} ms after SIGSTOP`);
      assert.deepEqual(only(events, 'error'), []);
      child.kill('SIGCONT');
    });

    test(`two Peers on the same ${scheme}://127.0.0.1:<free port>: one takes role 'server', the other 'client', and messages and requests go both ways`, T, async (t) => {
      const port = await freePort();
      const options = { address: `${scheme}://127.0.0.1:${port}`, retryDelay: 50, reconnectDelay: 20 };
      if (scheme === 'tls') options.tls = { ...serverTls(), ...clientTls() };
      const track = autoClose(t);
      const a = track(new Peer(options));
      const b = track(new Peer(options));
      const aEvents = record(a);
      const bEvents = record(b);
      const roleA = waitFor(a, 'role');
      a.connect();
      assert.deepEqual(await roleA, ['server']);
      const roleB = waitFor(b, 'role');
      const connects = Promise.all([waitFor(a, 'connect'), waitFor(b, 'connect')]);
      b.connect();
      assert.deepEqual(await roleB, ['client']);
      await connects;
      assert.equal(a.role, 'server');
      assert.equal(b.role, 'client');

      const toB = waitFor(b, 'message.ab');
      a.send('ab', { from: 'a' });
      assert.deepEqual(await toB, [{ from: 'a' }]);
      const toA = waitFor(a, 'message.ba');
      b.send('ba', Buffer.from('from b'));
      assert.equal(Buffer.from((await toA)[0]).toString(), 'from b');

      a.handle('double', (n) => n * 2);
      b.handle('upper', (s) => s.toUpperCase());
      assert.equal(await withTimeout(b.request('double', 21), 3000, "a's reply"), 42);
      assert.equal(await withTimeout(a.request('upper', 'hi'), 3000, "b's reply"), 'HI');
      for (const events of [aEvents, bEvents]) assert.deepEqual(only(events, 'error', 'disconnect', 'messageError'), []);
    });
  });
}

// ----- connect errors -----

describe('connect errors', () => {
  test("a Client to 'tcp://no-such-host.invalid:9' emits 'connectError' ENOTFOUND, then (maxRetries: 0) 'error' ERR_IPC_RETRIES_EXHAUSTED and 'close'", T, async (t) => {
    const track = autoClose(t);
    const client = track(new Client({ address: 'tcp://no-such-host.invalid:9', maxRetries: 0 }));
    const events = record(client);
    client.connect();
    await withTimeout(client.closedPromise, 15000, "the client's 'close'");
    assert.deepEqual(
      events.map((e) => `${e.event}${e.code ? `:${e.code}` : ''}`),
      ['connectError:ENOTFOUND', 'error:ERR_IPC_RETRIES_EXHAUSTED', 'close'],
    );
  });

  for (const scheme of ['tcp', 'tls']) {
    test(`a ${scheme} Client to a closed port emits 'connectError' ECONNREFUSED, then (maxRetries: 0) 'error' ERR_IPC_RETRIES_EXHAUSTED and 'close'`, T, async (t) => {
      const port = await freePort();
      const track = autoClose(t);
      const client = track(new Client({ address: `${scheme}://127.0.0.1:${port}`, ...(scheme === 'tls' ? { tls: clientTls() } : {}), maxRetries: 0 }));
      const events = record(client);
      client.connect();
      await withTimeout(client.closedPromise, 5000, "the client's 'close'");
      assert.deepEqual(
        events.map((e) => `${e.event}${e.code ? `:${e.code}` : ''}`),
        ['connectError:ECONNREFUSED', 'error:ERR_IPC_RETRIES_EXHAUSTED', 'close'],
      );
    });
  }

  test("a TCP Client keeps retrying a closed port ('connectError' ECONNREFUSED each time) and connects once a Server listens there", T, async (t) => {
    const port = await freePort();
    const track = autoClose(t);
    const client = track(new Client({ address: `tcp://127.0.0.1:${port}`, retryDelay: 20 }));
    const refusals = collect(client, 'connectError', 3);
    client.connect();
    for (const [err] of await refusals) assert.equal(err.code, 'ECONNREFUSED');
    const server = track(new Server({ host: '127.0.0.1', port }));
    const connection = waitFor(server, 'connection');
    const connect = waitFor(client, 'connect');
    server.listen();
    const [[clientId]] = await Promise.all([connection, connect]);
    await assertExchange(server, client, clientId, 'at last');
  });
});
