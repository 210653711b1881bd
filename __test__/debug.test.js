'use strict';
// NODE_DEBUG=native-socket-ipc: a child process runs a scripted session (fixtures/debug-session.js)
// with and without the variable. With it, stderr has a line for each lifecycle event (listening,
// connection, connect, reconnect, disconnect, connectError, connectionClose, authError, errors
// with their codes, undelivered counts, close), and never the payload, the topic, the secret or
// the TLS key. Without it, nothing at all.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { socketPath, spawnFixture, childExit, tlsFixture } = require('./helpers');

const T = { timeout: 60000 };

// Strings no log line could contain by chance.
const PAYLOAD = `payload-${crypto.randomBytes(8).toString('hex')}`;
const SECRET = `secret-${crypto.randomBytes(12).toString('hex')}`;

/** Runs the session with NODE_DEBUG set to `nodeDebug` (or unset): { code, stdout, stderr, seen }. */
async function runSession(t, nodeDebug) {
  const env = { ...process.env };
  delete env.NODE_DEBUG;
  if (nodeDebug !== undefined) env.NODE_DEBUG = nodeDebug;
  const child = spawnFixture(t, 'debug-session.js', [socketPath(t), SECRET, PAYLOAD], { env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const { code } = await childExit(child, 30000);
  let seen;
  try {
    seen = JSON.parse(stdout);
  } catch {
    assert.fail(`the session printed no summary; stdout:\n${stdout}\nstderr:\n${stderr}`);
  }
  assert.equal(code, 0, `the session failed: ${stdout}\n${stderr}`);
  // The session did what it is there for, so the assertions on its output mean something.
  assert.deepStrictEqual(seen, {
    errors: ['ERR_IPC_AUTH_FAILED', 'ERR_IPC_RETRIES_EXHAUSTED', 'ERR_IPC_CLOSED'],
    messages: 3,
    reply: PAYLOAD,
    authErrors: 1,
    plainEmit: seen.plainEmit,
  });
  return { stderr, seen };
}

test('with NODE_DEBUG=native-socket-ipc, stderr has a line for each lifecycle event and error', T, async (t) => {
  const { stderr } = await runSession(t, 'native-socket-ipc');
  const lines = stderr.split('\n').filter((line) => line !== '');
  for (const line of lines) assert.match(line, /^NATIVE-SOCKET-IPC \d+: (Server|Client)#\d+ \S+: /, 'every line is from util.debuglog');
  const expected = [
    /Server#1 \S+: listening on \S+/,
    /Server#1 \S+: connection 1 \(pid \d+, uid \d+, gid \d+\)$/,
    /Client#1 \S+: connect$/,
    /Client#2 \S+: error ERR_IPC_AUTH_FAILED: /,
    /Server#1 \S+: authError ERR_IPC_AUTH_FAILED \(pid \d+, uid \d+, gid \d+\)$/,
    /Server#1 \S+: connectionClose 1$/,
    /Server#1 \S+: close$/,
    /Client#1 \S+: disconnect$/,
    /Client#1 \S+: reconnect$/,
    /Client#1 \S+: connectError ENOENT: /,
    /Client#1 \S+: error ERR_IPC_RETRIES_EXHAUSTED: gave up/,
    /Client#1 \S+: error ERR_IPC_CLOSED \(3 undelivered\): /,
    /Client#1 \S+: close$/,
    /Server#3 tls:\/\/127\.0\.0\.1:0: connection 1 \(127\.0\.0\.1:\d+\)$/,
  ];
  for (const pattern of expected) {
    assert.ok(
      lines.some((line) => pattern.test(line)),
      `no line matches ${pattern}; stderr:\n${stderr}`,
    );
  }
  // In order, for the client that lost its server.
  const at = (pattern) => lines.findIndex((line) => pattern.test(line));
  const order = [/Client#1 \S+: connect$/, /Client#1 \S+: disconnect$/, /Client#1 \S+: reconnect$/, /ERR_IPC_RETRIES_EXHAUSTED/, /Client#1 \S+: close$/];
  const positions = order.map(at);
  assert.deepStrictEqual([...positions].sort((a, b) => a - b), positions, `out of order:\n${stderr}`);
});

test('the debug output never holds a message, a topic, a request payload, the secret or the TLS key', T, async (t) => {
  const { stderr } = await runSession(t, 'native-socket-ipc');
  assert.ok(stderr.length > 0, 'there is output to check');
  const secret = Buffer.from(SECRET);
  for (const form of [PAYLOAD, PAYLOAD.slice(8), SECRET, SECRET.slice(7), secret.toString('hex'), secret.toString('base64').slice(0, 16)]) {
    assert.ok(!stderr.includes(form), `${JSON.stringify(form)} shows in the debug output:\n${stderr}`);
  }
  for (const name of ['server-key.pem', 'server.pem', 'ca.pem']) {
    const body = tlsFixture(name).toString().split('\n').filter((line) => line.length >= 40 && !line.startsWith('-----'));
    assert.ok(body.length > 0);
    for (const line of body) assert.ok(!stderr.includes(line.slice(0, 24)), `PEM data of ${name} shows in the debug output`);
  }
});

test('without NODE_DEBUG, or with it naming other sections, the library prints nothing and adds nothing to emit()', T, async (t) => {
  const unset = await runSession(t, undefined);
  assert.equal(unset.stderr, '');
  assert.equal(unset.seen.plainEmit, true, "emit() is EventEmitter's own");
  const other = await runSession(t, 'native-socket-ipc-other,ipc');
  assert.equal(other.stderr, '');
  assert.equal(other.seen.plainEmit, true);
  const on = await runSession(t, 'native-socket-ipc');
  assert.equal(on.seen.plainEmit, false, 'while debugging, emit() logs');
});
