'use strict';
// localEndpoint(name): one endpoint name for every platform, and the platform checks of the
// address option (pipe names off Windows, abstract names off Linux). The Windows side of both
// is in windows.test.js, run under Wine.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Server, Client, localEndpoint } = require('..');
const { autoClose, waitFor, roundTrip } = require('./helpers');

const T = { timeout: 20000, skip: process.platform === 'win32' && 'Unix socket files (windows.test.js covers Windows)' };

/** Runs `fn` with environment variables set (undefined: removed), then restores them. */
function withEnv(vars, fn) {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  try {
    return fn();
  } finally {
    apply(saved);
  }
}

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-local-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('with $XDG_RUNTIME_DIR (Linux), localEndpoint(name) is <dir>/<name>.sock, and a Server and a Client meet on it', { ...T, skip: T.skip || (process.platform !== 'linux' && 'Linux only') }, async (t) => {
  const track = autoClose(t);
  const runtime = tempDir(t);
  const name = `app-${process.pid}`;
  const endpoint = withEnv({ XDG_RUNTIME_DIR: runtime }, () => localEndpoint(name));
  assert.equal(endpoint, path.join(runtime, `${name}.sock`));
  const server = track(new Server({ socketFile: endpoint }));
  server.listen();
  await waitFor(server, 'listening');
  const client = track(new Client({ socketFile: withEnv({ XDG_RUNTIME_DIR: runtime }, () => localEndpoint(name)) }));
  const connected = waitFor(server, 'connection');
  client.connect();
  const [clientId] = await connected;
  await roundTrip(server, client, clientId, 'xdg');
});

test("without $XDG_RUNTIME_DIR, localEndpoint(name) is in <tmpdir>/native-socket-ipc-<uid>, created with mode 0700", T, (t) => {
  const tmp = tempDir(t);
  const endpoint = withEnv({ XDG_RUNTIME_DIR: undefined, TMPDIR: tmp }, () => localEndpoint('my-app'));
  const dir = path.join(tmp, `native-socket-ipc-${process.getuid()}`);
  assert.equal(endpoint, path.join(dir, 'my-app.sock'));
  const stat = fs.statSync(dir);
  assert.equal(stat.mode & 0o777, 0o700);
  assert.equal(stat.uid, process.getuid());
  assert.equal(withEnv({ XDG_RUNTIME_DIR: undefined, TMPDIR: tmp }, () => localEndpoint('my-app')), endpoint, 'the same name again gives the same endpoint');
});

test('a $XDG_RUNTIME_DIR that does not exist is passed over for the private temp directory', T, (t) => {
  const tmp = tempDir(t);
  const endpoint = withEnv({ XDG_RUNTIME_DIR: path.join(tmp, 'missing'), TMPDIR: tmp }, () => localEndpoint('x'));
  assert.equal(endpoint, path.join(tmp, `native-socket-ipc-${process.getuid()}`, 'x.sock'));
});

test('a private directory that others can write to is refused with ERR_IPC_UNSAFE_DIRECTORY, and left as it was', T, (t) => {
  const tmp = tempDir(t);
  const dir = path.join(tmp, `native-socket-ipc-${process.getuid()}`);
  fs.mkdirSync(dir);
  fs.chmodSync(dir, 0o777);
  assert.throws(() => withEnv({ XDG_RUNTIME_DIR: undefined, TMPDIR: tmp }, () => localEndpoint('x')), {
    code: 'ERR_IPC_UNSAFE_DIRECTORY',
    message: /only this user .* mode 777/,
  });
  assert.equal(fs.statSync(dir).mode & 0o777, 0o777);
});

test('localEndpoint() refuses names that are not 1-64 of letters, digits, ".", "_" and "-" with ERR_INVALID_ARG_VALUE', T, () => {
  for (const bad of ['', '../up', 'a/b', 'a\\b', '.hidden', '-x', 'x'.repeat(65), 'sp ace', 7, undefined, null]) {
    assert.throws(() => localEndpoint(bad), { code: 'ERR_INVALID_ARG_VALUE' }, JSON.stringify(bad));
  }
  for (const good of ['a', 'my-app', 'com.example.app_2', 'x'.repeat(64)]) {
    assert.doesNotThrow(() => localEndpoint(good), good);
  }
});

test('a Windows pipe name throws ERR_IPC_NOT_SUPPORTED off Windows, naming what to use instead', T, () => {
  for (const name of ['\\\\.\\pipe\\app', '\\\\?\\pipe\\app', '//./pipe/app']) {
    assert.throws(() => new Server({ socketFile: name }), { code: 'ERR_IPC_NOT_SUPPORTED', message: /only on Windows.*localEndpoint/ }, name);
    assert.throws(() => new Client({ address: name }), { code: 'ERR_IPC_NOT_SUPPORTED' }, name);
  }
});

test('the socket path limit is the platform\'s: 107 bytes on Linux, 103 on macOS', T, (t) => {
  const limit = process.platform === 'linux' ? 107 : 103;
  const dir = '/tmp/';
  const at = (n) => dir + 'x'.repeat(n - dir.length);
  assert.doesNotThrow(() => new Server({ socketFile: at(limit) }));
  assert.throws(() => new Server({ socketFile: at(limit + 1) }), { code: 'ERR_INVALID_ARG_VALUE', message: new RegExp(`${limit}-byte limit`) });
});

test('an abstract name (unix:@name) is refused with ERR_IPC_NOT_SUPPORTED where the platform has none', { ...T, skip: process.platform === 'linux' && 'Linux has abstract sockets (transports.test.js)' }, () => {
  assert.throws(() => new Server({ address: 'unix:@app' }), { code: 'ERR_IPC_NOT_SUPPORTED', message: /only on Linux/ });
});
