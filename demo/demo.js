'use strict';
// `npm run demo`: one server process and two client processes exchange messages both ways —
// topics, a broadcast, a Buffer, and requests in both directions — then everything closes and
// the demo exits 0.
//
// Run without arguments it is the conductor; it forks itself as 'server' and 'client'.

const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Server, Client } = require('..');

const [role, socketFile, name] = process.argv.slice(2);

function say(who, text) {
  console.log(`${who.padEnd(8)} ${text}`);
}

function runServer() {
  const server = new Server({ socketFile });
  const names = new Map();
  server.on('listening', () => {
    say('server', `listening on ${socketFile}`);
    process.send('listening');
  });
  server.handle('sum', (numbers, id) => {
    say('server', `client ${id} asks for the sum of ${JSON.stringify(numbers)}`);
    return numbers.reduce((a, b) => a + b, 0);
  });
  server.on('connection', async (id) => {
    say('server', `client ${id} connected; asking it for its pid`);
    try {
      say('server', `client ${id} answered: pid ${await server.request(id, 'pid', null, { timeout: 2000 })}`);
    } catch (err) {
      say('server', `request to client ${id} failed: ${err.code}: ${err.message}`);
      process.exitCode = 1;
    }
  });
  server.on('message.hello', (message, id) => {
    names.set(id, message.name);
    say('server', `client ${id} says hello as ${JSON.stringify(message.name)}`);
    server.send('welcome', { greeting: `Hello, ${message.name}!`, clientId: id }, id);
    if (names.size === 2) {
      say('server', 'both clients are here: broadcasting on topic "news"');
      server.broadcast('news', { headline: 'everyone is connected', at: new Date().toISOString() });
    }
  });
  server.on('message.blob', (bytes, id) => {
    say('server', `client ${id} sent a Buffer of ${bytes.length} bytes: <${bytes.toString('hex')}>`);
    server.send('blob-reversed', Buffer.from(bytes).reverse(), id);
  });
  server.on('connectionClose', (id) => {
    say('server', `client ${id} (${names.get(id)}) disconnected`);
    names.delete(id);
    if (names.size === 0) server.close();
  });
  server.on('close', () => say('server', 'closed (socket file removed)'));
  server.on('error', (err) => {
    say('server', `error ${err.code}: ${err.message}`);
    process.exitCode = 1;
  });
  server.listen();
}

function runClient() {
  const client = new Client({ socketFile, retryDelay: 100 });
  const expected = new Set(['welcome', 'news', 'sum', ...(name === 'bob' ? ['blob-reversed'] : [])]);
  const got = (topic) => {
    expected.delete(topic);
    if (expected.size === 0) client.close();
  };
  client.handle('pid', () => process.pid);
  client.on('connect', async () => {
    say(name, 'connected');
    client.send('hello', { name });
    client.request('sum', [1, 2, 3]).then(
      (total) => {
        say(name, `the server says 1 + 2 + 3 = ${total}`);
        got('sum');
      },
      (err) => {
        say(name, `request failed: ${err.code}: ${err.message}`);
        process.exitCode = 1;
        client.close();
      },
    );
    if (name === 'bob') client.send('blob', Buffer.from([0xca, 0xfe, 0xba, 0xbe]));
  });
  client.on('message', (message, topic) => {
    const shown = Buffer.isBuffer(message) ? `Buffer <${message.toString('hex')}>` : JSON.stringify(message);
    say(name, `got "${topic}": ${shown}`);
    got(topic);
  });
  client.on('close', () => say(name, 'closed'));
  client.on('error', (err) => {
    say(name, `error ${err.code}: ${err.message}`);
    process.exitCode = 1;
  });
  client.connect();
}

function exited(child) {
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code === 0 ? 0 : code || signal)));
}

async function conduct() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-demo-'));
  const file = path.join(dir, 'demo.sock');
  const guard = setTimeout(() => {
    console.error('demo: did not finish within 15 s');
    process.exit(1);
  }, 15000);
  const server = fork(__filename, ['server', file]);
  await new Promise((resolve) => server.once('message', resolve));
  const clients = ['alice', 'bob'].map((who) => fork(__filename, ['client', file, who]));
  const codes = await Promise.all([server, ...clients].map(exited));
  clearTimeout(guard);
  fs.rmSync(dir, { recursive: true, force: true });
  const ok = codes.every((c) => c === 0);
  console.log(ok ? '\ndemo: 1 server and 2 client processes exchanged messages and exited cleanly' : `\ndemo: a process failed: ${codes}`);
  process.exitCode = ok ? 0 : 1;
}

if (role === 'server') runServer();
else if (role === 'client') runClient();
else conduct();
