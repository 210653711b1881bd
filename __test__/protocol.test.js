'use strict';
// The documented frames, checked against the real library over real sockets: a raw socket plays
// the other side, so the bytes on the wire are exactly the documented ones. The bytes come from
// vectors/ (the source; __test__/vectors.test.js runs all of them), and PROTOCOL.md's examples
// must be among them.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { Server, Client } = require('..');
const { socketPath, waitFor, collect, encodeFrame, frameReader } = require('./helpers');

const root = path.join(__dirname, '..');
const load = (file) => JSON.parse(fs.readFileSync(path.join(root, 'vectors', file), 'utf8'));
const hex = (text) => Buffer.from(text.replace(/\s/g, ''), 'hex');
const frames = load('frames.json');
const auth = load('auth.json');
const frameNamed = (name) => {
  const vector = frames.vectors.find((v) => v.name === name);
  assert.ok(vector, `vectors/frames.json has no vector named ${name}`);
  return hex(vector.hex);
};
const vectors = {
  HELLO: frameNamed('HELLO, version 1, no flags'),
  MESSAGE_JSON: frameNamed('MESSAGE_JSON, topic hello, message {"a":1}'),
  MESSAGE_BINARY: frameNamed('MESSAGE_BINARY, topic bin, bytes 00 01 02 ff'),
  PING: frameNamed('PING'),
  REQUEST_JSON: frameNamed('REQUEST_JSON, id 1, topic sum, message [1,2]'),
  REPLY_JSON: frameNamed('REPLY_JSON, id 1, reply 3'),
  REPLY_ERROR: frameNamed('REPLY_ERROR, id 1, status 1 (handler failed), {"message":"boom","code":"E_BOOM"}'),
};

test("every hex example in PROTOCOL.md is a vector of vectors/, and its proofs are auth.json's", () => {
  const documented = fs
    .readFileSync(path.join(root, 'PROTOCOL.md'), 'utf8')
    .split('\n')
    .map((line) => line.match(/^\| (.+?) \| `([0-9a-f ]+)` \|$/))
    .filter(Boolean);
  assert.ok(documented.length >= 6, `PROTOCOL.md's example tables were not found (${documented.length} rows)`);
  const known = new Set();
  for (const file of fs.readdirSync(path.join(root, 'vectors')).filter((f) => f.endsWith('.json'))) {
    for (const v of load(file).vectors) if (typeof v.hex === 'string') known.add(hex(v.hex).toString('hex'));
  }
  for (const [, what, bytes] of documented) {
    if (what === 'client proof') assert.equal(bytes, auth.client_hmac_hex);
    else if (what === 'server proof') assert.equal(bytes, auth.server_hmac_hex);
    else assert.ok(known.has(hex(bytes).toString('hex')), `PROTOCOL.md's "${what}" (${bytes}) is in no file of vectors/`);
  }
});

// The proofs as PROTOCOL.md defines them, computed by node:crypto (not by the library).
const proof = (secret, side, serverNonce, clientNonce) =>
  crypto
    .createHmac('sha256', secret)
    .update(Buffer.concat([Buffer.from(`native-socket-ipc v1 ${side}`), serverNonce, clientNonce]))
    .digest();

test("auth.json's proofs are HMAC-SHA256 over the label and both nonces", () => {
  const serverNonce = Buffer.from(auth.server_nonce_hex, 'hex');
  const clientNonce = Buffer.from(auth.client_nonce_hex, 'hex');
  assert.deepEqual(serverNonce, Buffer.from(Array.from({ length: 32 }, (_, i) => i)));
  assert.deepEqual(proof(auth.secret, 'client', serverNonce, clientNonce), Buffer.from(auth.client_hmac_hex, 'hex'));
  assert.deepEqual(proof(auth.secret, 'server', serverNonce, clientNonce), Buffer.from(auth.server_hmac_hex, 'hex'));
});

test('a raw client that follows the documented secret exchange is admitted, and the server proves itself', { timeout: 10000 }, async (t) => {
  const file = socketPath(t);
  const secret = 'the documented exchange, by hand';
  const server = new Server({ socketFile: file, secret });
  t.after(() => server.close());
  server.listen();
  await waitFor(server, 'listening');
  const raw = net.createConnection(file);
  t.after(() => raw.destroy());
  const frames = frameReader(raw);
  const connection = waitFor(server, 'connection');
  raw.write(vectors.HELLO);
  const challenge = await frames.next();
  assert.equal(challenge.kind, 0x30, 'AUTH_CHALLENGE');
  assert.equal(challenge.body.length, 32);
  const clientNonce = crypto.randomBytes(32);
  raw.write(encodeFrame(0x31, Buffer.concat([clientNonce, proof(secret, 'client', challenge.body, clientNonce)])));
  const ok = await frames.next();
  assert.equal(ok.kind, 0x32, 'AUTH_OK');
  assert.deepEqual(ok.body, proof(secret, 'server', challenge.body, clientNonce));
  const hello = await frames.next();
  assert.deepEqual(encodeFrame(hello.kind, hello.body), vectors.HELLO);
  await connection;
});

test('a server answers the documented request from a raw socket with exactly the documented reply', { timeout: 10000 }, async (t) => {
  const file = socketPath(t);
  const server = new Server(file);
  server.handle('sum', ([a, b]) => a + b);
  server.listen();
  await waitFor(server, 'listening');
  const raw = net.createConnection(file);
  const expected = Buffer.concat([vectors.HELLO, vectors.REPLY_JSON]);
  const chunks = [];
  const answered = new Promise((resolve) =>
    raw.on('data', (d) => {
      chunks.push(d);
      if (Buffer.concat(chunks).length >= expected.length) resolve(Buffer.concat(chunks));
    }),
  );
  raw.write(Buffer.concat([vectors.HELLO, vectors.REQUEST_JSON]));
  assert.deepEqual(await answered, expected);
  raw.destroy();
  server.close();
  await waitFor(server, 'close');
});

test('a client sends exactly the documented request and reads the documented error reply', { timeout: 10000 }, async (t) => {
  const file = socketPath(t);
  const requests = [];
  const raw = net.createServer((socket) => {
    socket.write(vectors.HELLO);
    let seen = Buffer.alloc(0);
    socket.on('data', (d) => {
      seen = Buffer.concat([seen, d]);
      if (seen.length === vectors.HELLO.length + vectors.REQUEST_JSON.length) {
        requests.push(seen.subarray(vectors.HELLO.length));
        socket.write(vectors.REPLY_ERROR);
      }
    });
  });
  await new Promise((resolve) => raw.listen(file, resolve));
  const client = new Client({ socketFile: file });
  client.connect();
  await assert.rejects(client.request('sum', [1, 2]), { code: 'ERR_IPC_REMOTE', message: 'boom', remoteCode: 'E_BOOM', topic: 'sum' });
  assert.deepEqual(requests, [vectors.REQUEST_JSON]);
  client.close();
  await waitFor(client, 'close');
  await new Promise((resolve) => raw.close(resolve));
});

test('a server decodes the documented hello, JSON and binary frames from a raw socket', { timeout: 10000 }, async (t) => {
  const file = socketPath(t);
  const server = new Server(file);
  server.listen();
  await waitFor(server, 'listening');
  const raw = net.createConnection(file);
  const received = collect(server, 'message', 2);
  const serverHello = new Promise((resolve) => raw.once('data', resolve));
  raw.write(Buffer.concat([vectors.HELLO, vectors.PING, vectors.MESSAGE_JSON, vectors.MESSAGE_BINARY]));
  assert.deepEqual((await serverHello).subarray(0, vectors.HELLO.length), vectors.HELLO);
  const [[json, jsonTopic], [bin, binTopic]] = await received;
  assert.equal(jsonTopic, 'hello');
  assert.deepEqual(json, { a: 1 });
  assert.equal(binTopic, 'bin');
  assert.deepEqual(bin, Buffer.from([0, 1, 2, 0xff]));
  raw.destroy();
  server.close();
  await waitFor(server, 'close');
});

test('a client sends exactly the documented hello and message bytes', { timeout: 10000 }, async (t) => {
  const file = socketPath(t);
  const chunks = [];
  let gotAll;
  const done = new Promise((resolve) => (gotAll = resolve));
  const expected = Buffer.concat([vectors.HELLO, vectors.MESSAGE_JSON, vectors.MESSAGE_BINARY]);
  const raw = net.createServer((socket) => {
    socket.write(vectors.HELLO);
    socket.on('data', (d) => {
      chunks.push(d);
      if (Buffer.concat(chunks).length >= expected.length) gotAll(Buffer.concat(chunks));
    });
  });
  await new Promise((resolve) => raw.listen(file, resolve));
  const client = new Client({ socketFile: file });
  client.on('connect', () => {
    client.send('hello', { a: 1 });
    client.send('bin', Buffer.from([0, 1, 2, 0xff]));
  });
  client.connect();
  assert.deepEqual(await done, expected);
  client.close();
  await waitFor(client, 'close');
  await new Promise((resolve) => raw.close(resolve));
});
