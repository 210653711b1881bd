'use strict';
// The command-line tool (bin/native-socket-ipc.js), run as a user runs it: a child process per
// command, over real sockets. Servers are either `listen` in a child process or a Server in this
// process (for replies `listen` cannot give: a slow handler, a throwing one, a Buffer).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { socketPath, autoClose, startServer, until, tlsFixture, counter } = require('./helpers');

const T = { timeout: 60000 };
const BIN = path.join(__dirname, '..', 'bin', 'native-socket-ipc.js');
const TLS_DIR = path.join(__dirname, 'fixtures', 'tls');
const tlsFile = (name) => path.join(TLS_DIR, name);
const SECRET = 'a test secret that is long enough';
const COMMANDS = ['listen', 'send', 'request', 'bench'];
// The CLI never shows a stack trace for an expected error.
const STACK = /\n\s+at /;

/** The environment for a CLI child: this one without a secret, plus `extra`. */
function env(extra = {}) {
  const copy = { ...process.env, ...extra };
  if (!('NATIVE_SOCKET_IPC_SECRET' in extra)) delete copy.NATIVE_SOCKET_IPC_SECRET;
  return copy;
}

/** Starts the CLI with `args`; killed when the test ends. */
function spawnCli(t, args, options = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env: env(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdoutBytes = [];
  child.stderrText = '';
  child.stdout.on('data', (d) => child.stdoutBytes.push(d));
  child.stderr.on('data', (d) => (child.stderrText += d));
  Object.defineProperty(child, 'stdoutText', { get: () => Buffer.concat(child.stdoutBytes).toString() });
  if (options.input === undefined) child.stdin.end();
  else child.stdin.end(options.input);
  child.exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

/** Runs the CLI to its exit (failing after `ms`): { code, signal, stdout, stderr, stdoutBytes }. */
async function runCli(t, args, options = {}) {
  const child = spawnCli(t, args, options);
  const ms = options.ms || 15000;
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`native-socket-ipc ${args.join(' ')} did not exit within ${ms} ms; stderr:\n${child.stderrText}`));
    }, ms);
  });
  try {
    const { code, signal } = await Promise.race([child.exited, deadline]);
    const stdoutBytes = Buffer.concat(child.stdoutBytes);
    return { code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr: child.stderrText };
  } finally {
    clearTimeout(timer);
  }
}

/** `listen` in a child process, once it reports 'listening on <address>' on stderr. */
async function startListen(t, args, options = {}) {
  const child = spawnCli(t, ['listen', ...args], options);
  await until(() => /listening on \S+/.test(child.stderrText) || child.exitCode !== null, 10000, `'listening on' from listen; stderr: ${child.stderrText}`);
  assert.equal(child.exitCode, null, `listen exited early; stderr:\n${child.stderrText}`);
  child.address = /listening on (\S+)/.exec(child.stderrText)[1];
  return child;
}

/** Sends SIGINT (or `signal`) to a listen child and returns how it exited (within 10 s). */
async function stopListen(child, signal = 'SIGINT') {
  child.kill(signal);
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`listen did not exit within 10 s of ${signal}`)), 10000);
  });
  try {
    return await Promise.race([child.exited, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until the listen child printed `count` lines on stdout; returns them. */
async function linesOf(child, count) {
  const lines = () => child.stdoutText.split('\n').filter((l) => l !== '');
  await until(() => lines().length >= count, 10000, `${count} lines from listen; stdout:\n${child.stdoutText}\nstderr:\n${child.stderrText}`);
  return lines();
}

function assertOk(result, what) {
  assert.equal(result.code, 0, `${what} exits 0; stderr:\n${result.stderr}`);
}

/** Exit status `code`, and stderr's first line `native-socket-ipc: <errorCode>: …` with no stack. */
function assertFails(result, code, errorCode) {
  assert.equal(result.code, code, `exit status ${code}; stderr:\n${result.stderr}`);
  assert.match(result.stderr, new RegExp(`^native-socket-ipc: ${errorCode}: `));
  assert.doesNotMatch(result.stderr, STACK);
}

function assertUsage(result, errorCode) {
  assertFails(result, 2, errorCode);
  assert.match(result.stderr, /Run 'native-socket-ipc( \w+)? --help' for usage\./);
}

// ----- help, version and usage errors -----

test('--help and -h print usage that lists every command, and exit 0', T, async (t) => {
  for (const flag of ['--help', '-h']) {
    const result = await runCli(t, [flag]);
    assertOk(result, flag);
    assert.match(result.stdout, /^Usage: native-socket-ipc <command>/);
    for (const command of COMMANDS) assert.match(result.stdout, new RegExp(`^  ${command} <address>`, 'm'), `${flag} lists ${command}`);
    assert.match(result.stdout, /NATIVE_SOCKET_IPC_SECRET/, 'the help names the environment variable for the secret');
    assert.equal(result.stderr, '');
  }
});

test("each command has its own --help (and 'help <command>'), exit 0", T, async (t) => {
  for (const command of COMMANDS) {
    const viaFlag = await runCli(t, [command, '--help']);
    assertOk(viaFlag, `${command} --help`);
    assert.match(viaFlag.stdout, new RegExp(`^Usage: native-socket-ipc ${command} <address>`));
    const viaHelp = await runCli(t, ['help', command]);
    assertOk(viaHelp, `help ${command}`);
    assert.equal(viaHelp.stdout, viaFlag.stdout);
  }
});

test('--version prints the package version', T, async (t) => {
  const result = await runCli(t, ['--version']);
  assertOk(result, '--version');
  assert.equal(result.stdout, `${require('../package.json').version}\n`);
});

test('an unknown command exits 2 with ERR_INVALID_ARG_VALUE and a pointer to --help', T, async (t) => {
  const result = await runCli(t, ['lsten', '/tmp/x.sock']);
  assertUsage(result, 'ERR_INVALID_ARG_VALUE');
  assert.match(result.stderr, /unknown command 'lsten'; the commands are listen, send, request, bench/);
});

test('no command exits 2 with ERR_MISSING_ARGS', T, async (t) => {
  assertUsage(await runCli(t, []), 'ERR_MISSING_ARGS');
});

test("an unknown flag, or another command's flag, exits 2", T, async (t) => {
  const unknown = await runCli(t, ['send', '/tmp/x.sock', 't', '1', '--bogus']);
  assertUsage(unknown, 'ERR_PARSE_ARGS_UNKNOWN_OPTION');
  assert.match(unknown.stderr, /Run 'native-socket-ipc send --help'/);
  const misplaced = await runCli(t, ['listen', '/tmp/x.sock', '--timeout', '5']);
  assertUsage(misplaced, 'ERR_PARSE_ARGS_UNKNOWN_OPTION');
  assert.match(misplaced.stderr, /'--timeout' does not apply to 'listen'/);
});

test('a missing or extra argument exits 2, naming what is expected', T, async (t) => {
  const missing = await runCli(t, ['request', '/tmp/x.sock', 'topic']);
  assertUsage(missing, 'ERR_MISSING_ARGS');
  assert.match(missing.stderr, /'request' needs <json>/);
  const extra = await runCli(t, ['send', '/tmp/x.sock', 'topic', '{"a":', '1}']);
  assertUsage(extra, 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL');
});

test('bad JSON exits 2 before connecting: the server sees no connection', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const connections = counter(server, 'connection');
  for (const [args, input] of [
    [['send', server.socketFile, 'topic', "{name: 'ada'}"]],
    [['request', server.socketFile, 'topic', 'hello']],
    [['send', server.socketFile, 'topic', '-'], '{"unfinished": '],
  ]) {
    const result = await runCli(t, args, { input });
    assertUsage(result, 'ERR_INVALID_ARG_VALUE');
    assert.match(result.stderr, /is not valid JSON/);
  }
  assert.deepEqual(connections, []);
});

test('bad numbers, a bad --protocol and a bad address exit 2', T, async (t) => {
  assertUsage(await runCli(t, ['request', '/tmp/x.sock', 't', '1', '--timeout', 'soon']), 'ERR_INVALID_ARG_VALUE');
  assertUsage(await runCli(t, ['bench', '/tmp/x.sock', '--count', '-5']), 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE');
  assertUsage(await runCli(t, ['bench', '/tmp/x.sock', '--count', '0']), 'ERR_INVALID_ARG_VALUE');
  assertUsage(await runCli(t, ['send', '/tmp/x.sock', 't', '1', '--protocol', 'http']), 'ERR_INVALID_ARG_VALUE');
  const address = await runCli(t, ['send', 'ftp://example.com:21', 't', '1']);
  assertUsage(address, 'ERR_INVALID_ARG_VALUE');
  assert.match(address.stderr, /<address>/, 'the error names the address argument, not a library option');
  const secret = await runCli(t, ['send', '/tmp/x.sock', 't', '1', '--secret', 'short']);
  assertUsage(secret, 'ERR_OUT_OF_RANGE');
  assert.match(secret.stderr, /--secret/);
  assert.doesNotMatch(secret.stderr, /short/, 'the secret is not echoed');
});

// ----- listen and send -----

test('listen prints each message sent with send (client id, topic, JSON), connections on stderr, and exits 0 on SIGINT', T, async (t) => {
  const socketFile = socketPath(t);
  const listen = await startListen(t, [socketFile]);
  assert.equal(listen.address, socketFile);
  assertOk(await runCli(t, ['send', socketFile, 'greet', '{"name":"ada","n":[1,2]}']), 'send');
  assertOk(await runCli(t, ['send', socketFile, 'with space', '"text"']), 'send');
  assertOk(await runCli(t, ['send', socketFile, 'stdin', '-'], { input: '[true, null]\n' }), 'send -');
  const lines = await linesOf(listen, 3);
  assert.match(lines[0], /^\[client (\d+)\] greet \{"name":"ada","n":\[1,2\]\}$/);
  assert.match(lines[1], /^\[client \d+\] "with space" "text"$/);
  assert.match(lines[2], /^\[client \d+\] stdin \[true,null\]$/);
  const clientId = /^\[client (\d+)\]/.exec(lines[0])[1];
  assert.match(listen.stderrText, new RegExp(`client ${clientId} connected \\(pid \\d+, uid \\d+, gid \\d+\\)`));
  assert.match(listen.stderrText, new RegExp(`client ${clientId} disconnected`));
  assert.deepEqual(await stopListen(listen), { code: 0, signal: null });
  assert.equal(fs.existsSync(socketFile), false, 'the socket file is removed');
});

test('listen --json prints NDJSON {clientId, topic, message}; a Buffer (send --raw) is base64, marked by encoding', T, async (t) => {
  const socketFile = socketPath(t);
  const listen = await startListen(t, [socketFile, '--json']);
  assertOk(await runCli(t, ['send', socketFile, 'obj', '{"a":{"b":[1,"two"]}}']), 'send');
  assertOk(await runCli(t, ['send', socketFile, 'bytes', '-', '--raw'], { input: Buffer.from([0, 1, 2, 255]) }), 'send --raw');
  assertOk(await runCli(t, ['send', socketFile, 'lookalike', '{"message":"AAEC/w==","encoding":"base64"}']), 'send');
  const records = (await linesOf(listen, 3)).map((line) => JSON.parse(line));
  const ids = records.map((r) => r.clientId);
  assert.ok(ids.every(Number.isInteger), 'each line has a numeric clientId');
  assert.deepEqual(records, [
    { clientId: ids[0], topic: 'obj', message: { a: { b: [1, 'two'] } } },
    { clientId: ids[1], topic: 'bytes', message: Buffer.from([0, 1, 2, 255]).toString('base64'), encoding: 'base64' },
    { clientId: ids[2], topic: 'lookalike', message: { message: 'AAEC/w==', encoding: 'base64' } },
  ]);
  assert.deepEqual(await stopListen(listen, 'SIGTERM'), { code: 0, signal: null });
});

test('listen at an address in use exits 1 with EADDRINUSE', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  assertFails(await runCli(t, ['listen', server.socketFile]), 1, 'EADDRINUSE');
});

test('send to an address where nothing listens exits 1 after its retries, naming the cause', T, async (t) => {
  const socketFile = socketPath(t);
  const result = await runCli(t, ['send', socketFile, 'topic', '1', '--retries', '1'], { ms: 10000 });
  assertFails(result, 1, 'ERR_IPC_RETRIES_EXHAUSTED');
  assert.match(result.stderr, /\(2 attempts\): connect ENOENT/);
  const tcp = await runCli(t, ['send', 'tcp://127.0.0.1:1', 'topic', '1'], { ms: 10000 });
  assertFails(tcp, 1, 'ERR_IPC_RETRIES_EXHAUSTED');
  assert.match(tcp.stderr, /ECONNREFUSED/);
});

// ----- request -----

test("request prints the reply of listen --handle/--reply; listen echoes without --reply and shows the request", T, async (t) => {
  const socketFile = socketPath(t);
  const replying = await startListen(t, [socketFile, '--handle', 'ping', '--reply', '{"pong":true}']);
  const result = await runCli(t, ['request', socketFile, 'ping', '[1,2,3]']);
  assertOk(result, 'request');
  assert.equal(result.stdout, '{"pong":true}\n');
  assert.match((await linesOf(replying, 1))[0], /^\[client \d+\] ping \(request\) \[1,2,3\]$/);
  await stopListen(replying);

  const echoing = await startListen(t, [socketFile, '--json', '--handle', 'echo', '--handle', 'other']);
  const echoed = await runCli(t, ['request', socketFile, 'echo', '-'], { input: '{"x":"y"}' });
  assertOk(echoed, 'request');
  assert.equal(echoed.stdout, '{"x":"y"}\n');
  const [record] = (await linesOf(echoing, 1)).map((line) => JSON.parse(line));
  assert.deepEqual(record, { clientId: record.clientId, topic: 'echo', message: { x: 'y' }, request: true });
  await stopListen(echoing);
});

test('listen --reply without --handle exits 2', T, async (t) => {
  const result = await runCli(t, ['listen', socketPath(t), '--reply', '1']);
  assertUsage(result, 'ERR_MISSING_ARGS');
  assert.match(result.stderr, /--reply needs --handle <topic>/);
});

test('request on a topic without a handler exits 1 with ERR_IPC_NO_HANDLER, nothing on stdout', T, async (t) => {
  const socketFile = socketPath(t);
  const listen = await startListen(t, [socketFile, '--handle', 'ping']);
  const result = await runCli(t, ['request', socketFile, 'nobody', '1']);
  assertFails(result, 1, 'ERR_IPC_NO_HANDLER');
  assert.match(result.stderr, /no handler for topic 'nobody'/);
  assert.equal(result.stdout, '');
  await stopListen(listen);
});

test('request --timeout: a reply that does not come exits 1 with ERR_IPC_TIMEOUT', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  let asked = 0;
  server.handle('slow', () => {
    asked++;
    return new Promise(() => {});
  });
  const result = await runCli(t, ['request', server.socketFile, 'slow', '1', '--timeout', '300']);
  assertFails(result, 1, 'ERR_IPC_TIMEOUT');
  assert.match(result.stderr, /within 300 ms; raise --timeout,/, "the advice names the CLI's flag");
  assert.equal(asked, 1, 'the request reached the handler');
});

test("a handler's error exits 1 with ERR_IPC_REMOTE, its message and its code", T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  server.handle('user', (id) => {
    throw Object.assign(new Error(`no user ${id}`), { code: 'E_NOT_FOUND' });
  });
  const result = await runCli(t, ['request', server.socketFile, 'user', '42']);
  assertFails(result, 1, 'ERR_IPC_REMOTE');
  assert.match(result.stderr, /ERR_IPC_REMOTE: no user 42 \(remote code: E_NOT_FOUND\)/);
});

test('request --raw sends bytes as a Buffer; a Buffer reply is written to stdout as its raw bytes', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  const seen = [];
  server.handle('reverse', (message) => {
    seen.push(message);
    return Buffer.from(message).reverse();
  });
  const bytes = Buffer.from([1, 2, 3, 0, 254, 10]);
  const result = await runCli(t, ['request', server.socketFile, 'reverse', '-', '--raw'], { input: bytes });
  assertOk(result, 'request --raw');
  assert.ok(Buffer.isBuffer(seen[0]), 'the handler got a Buffer');
  assert.deepEqual(seen[0], bytes);
  assert.deepEqual(result.stdoutBytes, Buffer.from(bytes).reverse());
});

// ----- secret and TLS -----

test('secret both ways: listen with the env var, send with --secret or the env var; a wrong or missing secret exits 1 with ERR_IPC_AUTH_FAILED', T, async (t) => {
  const socketFile = socketPath(t);
  const listen = await startListen(t, [socketFile], { env: { NATIVE_SOCKET_IPC_SECRET: SECRET } });
  assertOk(await runCli(t, ['send', socketFile, 'flag', '1', '--secret', SECRET]), 'send --secret');
  assertOk(await runCli(t, ['send', socketFile, 'env', '2'], { env: { NATIVE_SOCKET_IPC_SECRET: SECRET } }), 'send (env)');
  const lines = await linesOf(listen, 2);
  assert.match(lines[0], /\] flag 1$/);
  assert.match(lines[1], /\] env 2$/);

  const wrong = await runCli(t, ['send', socketFile, 'wrong', '3', '--secret', `${SECRET}!`]);
  assertFails(wrong, 1, 'ERR_IPC_AUTH_FAILED');
  assert.doesNotMatch(wrong.stderr, new RegExp(SECRET), 'the secret is not printed');
  assertFails(await runCli(t, ['send', socketFile, 'none', '4']), 1, 'ERR_IPC_AUTH_FAILED');
  // The flag wins over the environment.
  const flagWins = await runCli(t, ['send', socketFile, 'both', '5', '--secret', `${SECRET}?`], { env: { NATIVE_SOCKET_IPC_SECRET: SECRET } });
  assertFails(flagWins, 1, 'ERR_IPC_AUTH_FAILED');
  await until(() => (listen.stderrText.match(/refused a connection .*ERR_IPC_AUTH_FAILED/g) || []).length === 3, 10000, `three refusals on listen's stderr:\n${listen.stderrText}`);
  assert.equal((await linesOf(listen, 2)).length, 2, 'no refused message was printed');

  // A CLI client with a secret also refuses a server without one.
  const track = autoClose(t);
  const plain = await startServer(t, track);
  assertFails(await runCli(t, ['request', plain.socketFile, 't', '1', '--secret', SECRET]), 1, 'ERR_IPC_AUTH_FAILED');
  await stopListen(listen);
});

test('TLS: listen --tls-cert/--tls-key on tls://, request with --tls-ca; another CA exits 1 with ERR_IPC_TLS; --no-tls-verify connects', T, async (t) => {
  const listen = await startListen(t, [
    'tls://127.0.0.1:0',
    '--tls-cert', tlsFile('server.pem'),
    '--tls-key', tlsFile('server-key.pem'),
    '--handle', 'ping', '--reply', '"pong"',
  ]);
  const port = /^tls:\/\/127\.0\.0\.1:(\d+)$/.exec(listen.address)[1];
  const address = `tls://localhost:${port}`;
  const ok = await runCli(t, ['request', address, 'ping', '1', '--tls-ca', tlsFile('ca.pem')]);
  assertOk(ok, 'request over TLS');
  assert.equal(ok.stdout, '"pong"\n');
  assertFails(await runCli(t, ['request', address, 'ping', '1', '--tls-ca', tlsFile('other-ca.pem')]), 1, 'ERR_IPC_TLS');
  // The certificate is for localhost and 127.0.0.1, not for this name.
  assertFails(await runCli(t, ['request', address, 'ping', '1', '--tls-ca', tlsFile('ca.pem'), '--tls-servername', 'example.org']), 1, 'ERR_IPC_TLS');
  const unverified = await runCli(t, ['request', address, 'ping', '2', '--no-tls-verify']);
  assertOk(unverified, 'request --no-tls-verify');
  assert.equal(unverified.stdout, '"pong"\n');
  await stopListen(listen);
});

test('mutual TLS over a Unix socket: listen --tls-ca requires a client certificate, which send gives with --tls-cert/--tls-key', T, async (t) => {
  const socketFile = socketPath(t);
  const listen = await startListen(t, [
    socketFile,
    '--tls-cert', tlsFile('server.pem'),
    '--tls-key', tlsFile('server-key.pem'),
    '--tls-ca', tlsFile('ca.pem'),
  ]);
  const withCert = await runCli(t, [
    'send', socketFile, 'mtls', '"hi"',
    '--tls-ca', tlsFile('ca.pem'),
    '--tls-cert', tlsFile('client.pem'),
    '--tls-key', tlsFile('client-key.pem'),
  ]);
  assertOk(withCert, 'send with a client certificate');
  assert.match((await linesOf(listen, 1))[0], /\] mtls "hi"$/);
  assertFails(await runCli(t, ['send', socketFile, 'mtls', '"no cert"', '--tls-ca', tlsFile('ca.pem')]), 1, 'ERR_IPC_TLS');
  await stopListen(listen);
  assert.equal((await linesOf(listen, 1)).length, 1, 'the client without a certificate was not heard');
});

test('a --tls-* file that cannot be read exits 1 with ENOENT, naming the flag', T, async (t) => {
  const result = await runCli(t, ['send', socketPath(t), 't', '1', '--tls-ca', path.join(TLS_DIR, 'missing.pem')]);
  assertFails(result, 1, 'ENOENT');
  assert.match(result.stderr, /cannot read --tls-ca /);
});

// ----- bench -----

test('bench runs its own server and a client process, prints messages/s, MB/s and p50/p99, and exits 0', T, async (t) => {
  const socketFile = socketPath(t);
  const human = await runCli(t, ['bench', socketFile, '--count', '500', '--size', '32', '--requests', '20'], { ms: 30000 });
  assertOk(human, 'bench');
  assert.match(human.stdout, /500 messages of 32 bytes/);
  assert.match(human.stdout, /one-way, client → server\s+[\d,]+ msg\/s/);
  assert.match(human.stdout, /[\d.]+ MB\/s of payload/);
  assert.match(human.stdout, /request round trip\s+p50 [\d.,]+ µs\s+p99 [\d.,]+ µs/);
  assert.equal(fs.existsSync(socketFile), false, 'the server closed and removed its socket file');

  const json = await runCli(t, ['bench', 'tcp://127.0.0.1:0', '--count', '300', '--requests', '10', '--json'], { ms: 30000 });
  assertOk(json, 'bench --json');
  const result = JSON.parse(json.stdout);
  assert.match(result.address, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(result.count, 300);
  assert.equal(result.size, 64);
  assert.equal(result.oneway.messages, 300);
  assert.ok(result.oneway.messagesPerSecond > 0 && result.oneway.megabytesPerSecond > 0, JSON.stringify(result.oneway));
  assert.equal(result.roundTrip.requests, 10);
  assert.ok(result.roundTrip.p50Us > 0 && result.roundTrip.p99Us >= result.roundTrip.p50Us, JSON.stringify(result.roundTrip));
});

test('bench with a secret and TLS passes them to its client process', T, async (t) => {
  const result = await runCli(t, [
    'bench', 'tls://localhost:0', '--count', '200', '--requests', '5', '--json',
    '--tls-cert', tlsFile('server.pem'), '--tls-key', tlsFile('server-key.pem'), '--tls-ca', tlsFile('ca.pem'),
  ], { ms: 30000, env: { NATIVE_SOCKET_IPC_SECRET: SECRET } });
  assertOk(result, 'bench over TLS with a secret');
  assert.equal(JSON.parse(result.stdout).oneway.messages, 200);
  // TLS over a Unix socket, without the CA: the client speaks TLS too, and refuses the certificate.
  const noCa = await runCli(t, [
    'bench', socketPath(t), '--count', '10',
    '--tls-cert', tlsFile('server.pem'), '--tls-key', tlsFile('server-key.pem'),
  ], { ms: 30000 });
  assertFails(noCa, 1, 'ERR_IPC_TLS');
  assert.match(noCa.stderr, /check --tls-ca, --tls-cert and --tls-servername/);
});

test('bench at an address in use exits 1', T, async (t) => {
  const track = autoClose(t);
  const server = await startServer(t, track);
  assertFails(await runCli(t, ['bench', server.socketFile, '--count', '10']), 1, 'EADDRINUSE');
});
