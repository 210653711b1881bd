'use strict';
// Compatibility suite: programs written for @crussell52/socket-ipc 0.4, in the spirit of its own
// examples (conversation, resilience, spam: see __test__/compat/README.md), run unchanged on
// native-socket-ipc. Each program loads the library from one place, `IPC_LIB` (default
// '@crussell52/socket-ipc'), so "only the require changes" holds literally. Every example runs as
// real child processes, once on the real socket-ipc 0.4.0 (the devDependency, by the programs'
// default) and once with IPC_LIB set to this package. The socket-ipc run must print the expected
// transcript below (so the programs do what they claim); the native run must print the same
// output, process for process, and every process must exit 0 by itself.
//
// Comparison: stdout, split into lines, compared exactly. The one equivalence is in the
// conversation example, where server and two clients share one process: its lines are tagged
// with who saw them ([server], [bob], [server/bob], ...), and lines are grouped by tag (stable:
// each tag's lines keep their order) before comparing, because how two independent connections
// interleave is not behaviour either library promises. Client ids (UUIDs on socket-ipc, integers
// here) are never printed raw: the programs print '<id>' or "client 1" after checking the id is
// one that 'connection' announced. stderr is not compared (it is shown when a test fails).
//
// Run: node --test --test-timeout=120000 __test__/compat.test.js

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const COMPAT = path.join(__dirname, 'compat');
const LIBS = {
  // The programs' default: IPC_LIB is removed from their environment.
  socketIpc: { name: 'socket-ipc 0.4.0', ipcLib: undefined },
  native: { name: 'native-socket-ipc', ipcLib: path.join(__dirname, '..') },
};
// socket-ipc 0.4 speaks Unix socket files only (no named pipes): the suite has no Windows form.
const T = { timeout: 90000, skip: process.platform === 'win32' && 'socket-ipc 0.4 runs on Unix socket files only' };
const RUN_DEADLINE = 40000; // for one run of one example, all its processes

// ----- child processes -----

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-compat-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts `node __test__/compat/<file> ...args` on `lib`; SIGKILLed if still running when `t` ends. */
function start(t, lib, file, args, label = file) {
  const env = { ...process.env };
  delete env.IPC_LIB;
  if (lib.ipcLib !== undefined) env.IPC_LIB = lib.ipcLib;
  const child = spawn(process.execPath, [path.join(COMPAT, file), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.label = label;
  child.out = '';
  child.err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (child.out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (child.err += d));
  child.exited = new Promise((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, error: err.message }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

const describe = (child) => `${child.label}\n--- stdout:\n${child.out}--- stderr:\n${child.err}`;

function deadline(ms, what) {
  let timer;
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}

/** Resolves once `child` has printed a line matching `pattern`; rejects if it exits first or after `ms`. */
async function lineFrom(child, pattern, ms) {
  const d = deadline(ms, `${child.label} printed no line matching ${pattern}`);
  try {
    await Promise.race([
      d.promise,
      new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(child.out)) return resolve();
          if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`${child.label} exited before printing a line matching ${pattern}`));
          setTimeout(check, 10);
        };
        check();
      }),
    ]);
  } catch (err) {
    err.message += `\n${describe(child)}`;
    throw err;
  } finally {
    d.clear();
  }
}

/**
 * Waits for every child to exit (within `ms` of the call) and returns what each did. Once one
 * has failed (non-zero exit, signal), the others get 3 s more, then are killed: a scenario whose
 * server crashed would otherwise wait out its client's own time limit.
 */
async function results(children, ms) {
  const d = deadline(ms, 'not every process exited');
  let grace;
  let over = false;
  for (const child of children) {
    child.exited.then(({ code }) => {
      if (code === 0 || grace || over) return;
      grace = setTimeout(() => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }, 3000);
    });
  }
  try {
    await Promise.race([d.promise, Promise.all(children.map((c) => c.exited))]);
  } catch (err) {
    err.message += '\n' + children.map(describe).join('\n');
    throw err;
  } finally {
    over = true;
    d.clear();
    clearTimeout(grace);
  }
  return Promise.all(
    children.map(async (c) => ({ label: c.label, exit: await c.exited, stdout: c.out, stderr: c.err })),
  );
}

// ----- the scenarios: how each example is run -----

const SPAM_CLIENTS = 2;
const SPAM_MESSAGES = 3000; // per client: 10 bursts of 300

const SCENARIOS = {
  // The server counts everything two spamming clients send, then closes; the clients hear it go.
  async spam(t, lib) {
    const socketFile = path.join(tempDir(t), 'spam.sock');
    const deadlineAt = Date.now() + RUN_DEADLINE;
    const server = start(t, lib, 'spam/server.js', [socketFile, String(SPAM_CLIENTS), String(SPAM_MESSAGES)]);
    await lineFrom(server, /^listening$/m, 10000);
    const clients = Array.from({ length: SPAM_CLIENTS }, (_, i) => start(t, lib, 'spam/client.js', [socketFile, String(SPAM_MESSAGES)], `spam/client.js (${i + 1})`));
    return results([server, ...clients], deadlineAt - Date.now());
  },

  // The client starts first (and retries), then three servers in turn come and go.
  async resilience(t, lib) {
    const socketFile = path.join(tempDir(t), 'resilience.sock');
    const deadlineAt = Date.now() + RUN_DEADLINE;
    const client = start(t, lib, 'resilience/client.js', [socketFile]);
    await lineFrom(client, /^no server \(retrying\)$/m, 10000);
    const server = start(t, lib, 'resilience/server.js', [socketFile, '3']);
    return results([server, client], deadlineAt - Date.now());
  },

  // One process: a server and two clients, bob and charlie.
  async conversation(t, lib) {
    const socketFile = path.join(tempDir(t), 'conversation.sock');
    return results([start(t, lib, 'conversation/conversation.js', [socketFile])], RUN_DEADLINE);
  },

  // The same, with a custom `transcoder` on every side.
  async 'conversation --transcoder'(t, lib) {
    const socketFile = path.join(tempDir(t), 'conversation.sock');
    return results([start(t, lib, 'conversation/conversation.js', [socketFile, '--transcoder'], 'conversation/conversation.js --transcoder')], RUN_DEADLINE);
  },
};

// ----- normalisation -----

const lines = (text) => text.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1);

/** Conversation lines grouped by their [tag], tags sorted, each tag's lines in their order. */
function byTag(text) {
  const groups = new Map();
  for (const line of lines(text)) {
    const tag = /^\[([^\]]*)\]/.exec(line)?.[1] ?? '';
    if (!groups.has(tag)) groups.set(tag, []);
    groups.get(tag).push(line);
  }
  return [...groups.keys()].sort().flatMap((tag) => groups.get(tag));
}

const NORMALISE = { spam: lines, resilience: lines, conversation: byTag, 'conversation --transcoder': byTag };

// ----- what socket-ipc 0.4.0 prints: the scenarios as designed -----

const spamClient = [
  'connected to server',
  `sent ${SPAM_MESSAGES} messages`,
  'server went away (end)',
  'server went away (close); closing the client',
  "client emitted 'closed'",
  "client emitted 'close'",
];

function resilienceServer(servers) {
  const out = [];
  for (let n = 1; n <= servers; n++) {
    const last = n === servers;
    out.push(n === 1 ? 'creating server (1)' : `creating server (${n}) (connections of the old one still open: 0)`);
    out.push(`server (${n}) is listening`, `server (${n}): client 1 connected... saying "hello"`);
    if (!last) {
      out.push(
        `server (${n}) will shut down once it has been acknowledged`,
        `server (${n}): client 1 acknowledged: {"server":${n}}`,
        `server (${n}) shutting down`,
        `server (${n}) closed. Starting a replacement server in 1 second.`,
      );
    } else {
      out.push(
        `server (${n}) is the last one: it stays up until the client leaves`,
        `server (${n}): client 1 acknowledged: {"server":${n}}`,
        `server (${n}): client 1 disconnected`,
        `server (${n}): the client left; closing for good`,
        `server (${n}) closed. That was the last one.`,
      );
    }
  }
  return out;
}

function resilienceClient(servers) {
  const out = ['no server (retrying)'];
  for (let n = 1; n <= servers; n++) {
    const last = n === servers;
    if (n > 1) out.push('disconnected from server', 'no server (retrying)');
    out.push('connected to server');
    if (n > 1) out.push("reconnected to server (with the socket 'connect' gave)");
    out.push(`Heard: [hello] {"text":"Hello from server ${n}!","server":${n},"last":${last}}`);
  }
  out.push('that was the last server; closing', 'closed');
  return out;
}

function conversation(transcoder) {
  // Dates come back as Dates through the transcoder, as ISO strings through JSON.
  const hello = (n) => `{ n: ${n}, sentAt: ${transcoder ? '' : "'"}2018-01-0${n}T00:00:00.000Z${transcoder ? '' : "'"} }`;
  const answered = [2, 3, 4];
  const client = (name) => [
    `[${name}] connected`,
    ...answered.flatMap((n) => [
      `[${name}] Server -> Client (${name}): [hello] ${hello(n)}`,
      ...(name === 'charlie' ? [`[${name}] Server -> Client (${name}): [helloagain] ${hello(n)}`] : []),
    ]),
    `[${name}] Server -> Client (${name}): [goodbye] 'that is all for today'`,
    `[${name}] closing`,
    `[${name}] closed`,
  ];
  const withServer = (name) =>
    answered.flatMap((n) => [
      `[server/${name}] Client (<id>) -> Server: [helloback] { clientName: '${name}', original: ${hello(n)} }`,
      ...(name === 'charlie' ? [`[server/${name}] Server -> Client (<id>): [helloagain] ${hello(n)}`] : []),
    ]);
  return [
    ...client('bob'),
    ...client('charlie'),
    '[server] listening',
    '[server] broadcast [hello] 1',
    '[server] a client connected (1 connected)',
    '[server] a client connected (2 connected)',
    ...answered.map((n) => `[server] broadcast [hello] ${n}`),
    '[server] broadcast [goodbye]',
    '[server] a client left (1 connected)',
    '[server] a client left (0 connected)',
    '[server] closed',
    ...withServer('bob'),
    ...withServer('charlie'),
  ];
}

const EXPECTED = {
  spam: {
    'spam/server.js': [
      'listening',
      ...Array.from({ length: SPAM_CLIENTS }, (_, i) => `a client connected (${i + 1} connected)`),
      `received ${SPAM_CLIENTS * SPAM_MESSAGES} messages from ${SPAM_CLIENTS} clients`,
      "every client's messages arrived complete and in order",
      'closing the server',
      "server emitted 'closed'",
      "server emitted 'close'",
      'at exit: 0 clients connected',
    ],
    ...Object.fromEntries(Array.from({ length: SPAM_CLIENTS }, (_, i) => [`spam/client.js (${i + 1})`, spamClient])),
  },
  resilience: { 'resilience/server.js': resilienceServer(3), 'resilience/client.js': resilienceClient(3) },
  conversation: { 'conversation/conversation.js': conversation(false) },
  'conversation --transcoder': { 'conversation/conversation.js --transcoder': conversation(true) },
};

// ----- running and comparing -----

// Each example's socket-ipc run, made once and used by both of its tests (whichever runs first
// starts it and owns its processes; it has always finished by the time that test ends).
const referenceRuns = new Map();
function reference(t, example) {
  if (!referenceRuns.has(example)) referenceRuns.set(example, SCENARIOS[example](t, LIBS.socketIpc));
  return referenceRuns.get(example);
}

/** { label: { exit, stdout: [normalised lines] } } */
function observed(example, runs) {
  return Object.fromEntries(runs.map((r) => [r.label, { exit: r.exit, stdout: NORMALISE[example](r.stdout) }]));
}

const details = (runs) => runs.map((r) => `${r.label} exited ${JSON.stringify(r.exit)}\n--- stdout:\n${r.stdout}--- stderr:\n${r.stderr}`).join('\n');

test('the socket-ipc the suite compares against is @crussell52/socket-ipc 0.4.0, as the programs resolve it', T, () => {
  const pkg = require(require.resolve('@crussell52/socket-ipc/package.json', { paths: [path.join(COMPAT, 'spam')] }));
  assert.equal(pkg.name, '@crussell52/socket-ipc');
  assert.equal(pkg.version, '0.4.0');
});

const NAMES = {
  spam: 'the spam example',
  resilience: 'the resilience example',
  conversation: 'the conversation example',
  'conversation --transcoder': 'the conversation example with a custom transcoder',
};
const WHAT = {
  spam: "two clients flood a server with 3,000 messages each, watched through the sockets of 'connection' and 'connect'; the server closes once it has them all",
  resilience: 'a client retries until a server is up, then rides out three servers closing and restarting on one socket file by reconnecting',
  conversation: 'a server and clients bob and charlie exchange hello / helloback / helloagain / goodbye by broadcast and send',
  'conversation --transcoder': 'the same, in newline-delimited JSON that revives Dates, on every side',
};

for (const example of Object.keys(SCENARIOS)) {
  test(`${NAMES[example]} (${WHAT[example]}) prints the expected transcript and exits 0 on socket-ipc 0.4.0`, T, async (t) => {
    const runs = await reference(t, example);
    const expected = Object.fromEntries(Object.entries(EXPECTED[example]).map(([label, stdout]) => [label, { exit: { code: 0, signal: null }, stdout }]));
    assert.deepEqual(observed(example, runs), expected, details(runs));
    for (const r of runs) assert.equal(r.stderr, '', `${r.label} wrote to stderr on socket-ipc 0.4.0`);
  });

  test(`${NAMES[example]} runs unchanged on native-socket-ipc with the same output as on socket-ipc 0.4.0`, T, async (t) => {
    const want = observed(example, await reference(t, example));
    const runs = await SCENARIOS[example](t, LIBS.native);
    const got = observed(example, runs);
    assert.deepEqual(Object.keys(got), Object.keys(want));
    // Process by process, so that every difference is reported, each with its own diff.
    const differences = [];
    for (const label of Object.keys(want)) {
      try {
        assert.deepEqual(got[label], want[label], `${label}: native-socket-ipc (actual) vs socket-ipc 0.4.0 (expected)`);
      } catch (err) {
        differences.push(err.message);
      }
    }
    if (differences.length > 0) assert.fail(`${differences.join('\n\n')}\n\nnative-socket-ipc's run in full:\n${details(runs)}`);
  });
}
