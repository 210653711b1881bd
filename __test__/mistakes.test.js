'use strict';
// Common mistakes explain themselves: a mistyped option, a socket in a directory that does not
// exist, a client pointed at the wrong path (nothing there, a regular file, a stale socket, no
// permission), and a client that keeps failing where nobody listens.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { Server, Client, Peer } = require('..');
const { socketPath, waitFor, autoClose } = require('./helpers');

const T = { timeout: 20000 };
const unix = process.platform !== 'win32';

test('a mistyped option throws ERR_INVALID_ARG_VALUE naming it and the option it most likely meant', T, (t) => {
  const socketFile = socketPath(t);
  const cases = [
    [Client, { retries: 2 }, 'retries', 'maxRetries'],
    [Client, { maxRetry: 2 }, 'maxRetry', 'maxRetries'],
    [Client, { path: socketFile }, 'path', 'socketFile'],
    [Server, { hearbeatInterval: 100 }, 'hearbeatInterval', 'heartbeatInterval'],
    [Server, { maxconnections: 5 }, 'maxconnections', 'maxConnections'],
    [Peer, { reconectDelay: 10 }, 'reconectDelay', 'reconnectDelay'],
  ];
  for (const [Class, extra, name, meant] of cases) {
    assert.throws(
      () => new Class({ socketFile, ...extra }),
      (err) => {
        assert.equal(err.code, 'ERR_INVALID_ARG_VALUE');
        assert.ok(err instanceof TypeError);
        assert.match(err.message, new RegExp(`unknown option '${name}'; did you mean '${meant}'\\?`));
        return true;
      },
      `${Class.name} ${name}`,
    );
  }
});

test('an option of another class names the class it belongs to, and a name like no option gets no guess', T, (t) => {
  const socketFile = socketPath(t);
  assert.throws(() => new Server({ socketFile, retryDelay: 10 }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.retryDelay is a Client's and a Peer's option, not a Server's/ });
  assert.throws(() => new Client({ socketFile, sessionTimeout: 10 }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.sessionTimeout is a Server's option, not a Client's/ });
  assert.throws(() => new Client({ socketFile, zqxwv: 1 }), (err) => {
    assert.equal(err.code, 'ERR_INVALID_ARG_VALUE');
    assert.match(err.message, /unknown option 'zqxwv'/);
    assert.doesNotMatch(err.message, /did you mean/);
    return true;
  });
});

test("listen() in a directory that does not exist reports ENOENT and says the directory is missing", { ...T, skip: !unix && 'socket files are Unix' }, async (t) => {
  const missing = path.join(path.dirname(socketPath(t)), 'not-created');
  const server = autoClose(t)(new Server({ socketFile: path.join(missing, 's.sock') }));
  server.listen();
  const [err] = await waitFor(server, 'error');
  assert.equal(err.code, 'ENOENT');
  assert.equal(err.syscall, 'listen');
  assert.ok(err.message.includes(`the directory ${missing} does not exist`), err.message);
});

/** The first 'connectError' of a client that tries `socketFile` once. */
async function firstConnectError(t, socketFile) {
  const client = autoClose(t)(new Client({ socketFile, maxRetries: 0 }));
  client.on('error', () => {}); // ERR_IPC_RETRIES_EXHAUSTED follows
  client.connect();
  const [err] = await waitFor(client, 'connectError');
  return err;
}

test("a client's connect error says there is no socket file at the path", { ...T, skip: !unix && 'socket files are Unix' }, async (t) => {
  const err = await firstConnectError(t, socketPath(t));
  assert.equal(err.code, 'ENOENT');
  assert.match(err.message, /no socket file there: the server is not running yet, or it listens on another path/);
});

test("a client's connect error says the path is a regular file, not a socket", { ...T, skip: !unix && 'socket files are Unix' }, async (t) => {
  const file = socketPath(t);
  fs.writeFileSync(file, 'not a socket');
  const err = await firstConnectError(t, file);
  assert.equal(err.code, 'ECONNREFUSED');
  assert.match(err.message, /the path is a regular file, not a socket/);
});

test("a client's connect error says nothing listens on a socket file its server left behind", { ...T, skip: !unix && 'socket files are Unix' }, async (t) => {
  const stale = socketPath(t);
  // A server killed outright leaves its socket file.
  const child = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(child.signal, 'SIGKILL');
  assert.ok(fs.statSync(stale).isSocket(), 'the stale socket file is there');
  const err = await firstConnectError(t, stale);
  assert.equal(err.code, 'ECONNREFUSED');
  assert.match(err.message, /a socket file is there but nothing listens on it: its server has exited/);
});

const root = unix && process.getuid() === 0;
test("a client's connect error says permission was denied, and what decides it", { ...T, skip: !root && 'needs root, to run the client as another user (nobody)' }, async (t) => {
  const socketFile = socketPath(t);
  fs.chmodSync(path.dirname(socketFile), 0o755);
  const server = autoClose(t)(new Server({ socketFile, mode: 0o600 }));
  server.listen();
  await waitFor(server, 'listening');
  // The client, as user nobody, may enter the directory but not write to the socket.
  const script = `const { Client } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const c = new Client({ socketFile: ${JSON.stringify(socketFile)}, maxRetries: 0 });
    c.on('error', () => {});
    c.on('connectError', (err) => { console.log(JSON.stringify({ code: err.code, message: err.message })); c.close(); });
    c.connect();`;
  const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  let errText = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (errText += d));
  const [code] = await waitFor(child, 'exit', 15000);
  assert.equal(code, 0, errText);
  const reported = JSON.parse(out.trim().split('\n')[0]);
  assert.equal(reported.code, 'EACCES');
  assert.match(reported.message, /permission denied: this process's user may not connect to the socket/);
});

test('a client that keeps failing with no connectError or error listener warns once, with a code, after a few attempts', T, async (t) => {
  const warnings = [];
  const onWarning = (w) => {
    if (w.code === 'IPC_CONNECT_RETRYING') warnings.push(w);
  };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const socketFile = socketPath(t);
  const client = autoClose(t)(new Client({ socketFile, retryDelay: 5 }));
  client.connect();
  // Plenty of attempts: well past the few before the warning.
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(warnings.length, 1, 'exactly one warning');
  assert.equal(warnings[0].name, 'NativeSocketIpcWarning');
  assert.match(warnings[0].message, /connection attempts failed.*It keeps retrying\. Listen to 'connectError'/s);

  // With a listener, the failures are heard, and nothing is printed.
  const heard = autoClose(t)(new Client({ socketFile, retryDelay: 5 }));
  let seen = 0;
  heard.on('connectError', () => seen++);
  heard.connect();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.ok(seen >= 5, `the listener saw ${seen} failures`);
  assert.equal(warnings.length, 1, 'no warning for a client whose failures are heard');
});
