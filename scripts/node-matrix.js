#!/usr/bin/env node
'use strict';
// npm run test:node-matrix [-- --versions 18,22] [-- --files __test__/a.test.js __test__/b.test.js]
//
// Runs the node:test suite (the command `npm run test:js` runs) under several Node.js release
// lines, to show that the one N-API addon works on each. Every Node comes from the npm package
// `node@<major>` (the latest release of that line), which installs a real Node binary; they are
// kept in node_modules/.cache/node-matrix/<major> (never committed; NODE_MATRIX_CACHE moves it)
// and reused while they are still the latest of their line. Each suite runs with that Node first
// on PATH, so the child processes the tests fork (process.execPath) and npm run on it too.
//
// Prints each failing test as it happens, then a table: Node version, tests, pass, fail,
// cancelled, skipped, duration, result. The full TAP output of each run is saved next to the
// binaries (logs/node-<version>.tap). Exits 1 if any run inside package.json's `engines` failed;
// a line outside `engines` is run when asked for and reported, but does not fail the matrix.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const DEFAULT_VERSIONS = ['18', '20', '22', '24'];
// What `npm run test:js` runs: node ${TEST_FLAGS} __test__/*.test.js, the shell expanding the
// pattern. The files are listed here rather than passing a directory or a quoted pattern: Node
// 22 and later take `node --test __test__/` for a module path and fail, and Node 18 and 20 do not
// expand glob patterns themselves.
const TEST_FLAGS = ['--test', '--test-reporter=tap', '--test-timeout=60000'];
const TEST_DIR = '__test__';
const TEST_SCRIPT = `node ${TEST_FLAGS.join(' ')} ${TEST_DIR}/*.test.js`;
const testFiles = () =>
  fs
    .readdirSync(path.join(root, TEST_DIR))
    .filter((name) => name.endsWith('.test.js'))
    .sort()
    .map((name) => `${TEST_DIR}/${name}`);

const USAGE = `Usage: node scripts/node-matrix.js [--versions 18,20,22,24] [--files <test file>...] [--timeout <minutes>]

Runs the test suite (${TEST_SCRIPT}) under the latest release of each Node.js line,
installed from the npm package node@<major>.

  --versions <list>   Node.js major versions, comma separated (default ${DEFAULT_VERSIONS.join(',')})
  --files <files...>  run only these test files (default: every ${TEST_DIR}/*.test.js)
  --timeout <min>     give up on one version's run after this many minutes (default 60)
  --offline           use the cached Node binaries; do not ask the registry for newer ones
  --help              this text

Binaries and logs: ${path.relative(process.cwd(), cacheDir()) || '.'} (NODE_MATRIX_CACHE overrides).`;

function cacheDir() {
  return process.env.NODE_MATRIX_CACHE || path.join(root, 'node_modules', '.cache', 'node-matrix');
}

function parseArgs(argv) {
  const opts = { versions: DEFAULT_VERSIONS, files: null, timeoutMin: 60, offline: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value\n\n${USAGE}`);
      return argv[++i];
    };
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === '--versions') {
      opts.versions = value().split(',').map((v) => v.trim()).filter(Boolean);
      for (const v of opts.versions) if (!/^\d+$/.test(v)) fail(`--versions takes major versions such as 18,22, not '${v}'`);
    } else if (arg === '--files') {
      opts.files = [];
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) opts.files.push(...argv[++i].split(',').filter(Boolean));
      if (opts.files.length === 0) fail(`--files needs at least one test file\n\n${USAGE}`);
      for (const f of opts.files) if (!fs.existsSync(path.resolve(root, f))) fail(`--files: ${f} does not exist (paths are relative to the package root)`);
    } else if (arg === '--timeout') {
      opts.timeoutMin = Number(value());
      if (!(opts.timeoutMin > 0)) fail('--timeout takes a positive number of minutes');
    } else if (arg === '--offline') {
      opts.offline = true;
    } else {
      fail(`unknown argument '${arg}'\n\n${USAGE}`);
    }
  }
  return opts;
}

function fail(message) {
  console.error(`node-matrix: ${message}`);
  process.exit(2);
}

// ----- versions -----

const parse = (v) => v.replace(/^v/, '').split('.').map(Number);
const compare = (a, b) => {
  const [x, y] = [parse(a), parse(b)];
  for (let i = 0; i < 3; i++) if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  return 0;
};

/**
 * Whether `version` satisfies an `engines` range made of `||`-separated sets of space-separated
 * comparators (>=, >, <=, <, =, ^, ~, or a bare version), which covers what engines ranges use.
 */
function satisfies(version, range) {
  return range.split('||').some((set) => {
    const parts = set.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter(Boolean);
    return parts.every((part) => {
      const [, op = '', v] = part.match(/^(>=|<=|>|<|=|\^|~)?v?([\d.x*]+)$/) || [];
      if (v === undefined) throw new Error(`cannot read the engines range '${range}'`);
      const want = v.replace(/\.?[x*].*$/, '');
      const c = compare(version, want || '0');
      const [maj, min] = parse(want);
      const [vmaj, vmin] = parse(version);
      switch (op) {
        case '>=': return c >= 0;
        case '>': return c > 0;
        case '<=': return c <= 0;
        case '<': return c < 0;
        case '^': return vmaj === maj && c >= 0;
        case '~': return vmaj === maj && (min === undefined || vmin === min) && c >= 0;
        default: return want.split('.').every((n, i) => parse(version)[i] === Number(n));
      }
    });
  });
}

// ----- installing Node binaries -----

function npm(args, cwd) {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10 * 60 * 1000 });
}

/** The newest published version of the npm package node@<major>, or null if the registry cannot be asked. */
function latestOf(major) {
  try {
    const out = JSON.parse(npm(['view', `node@${major}`, 'version', '--json'], os.tmpdir()));
    const versions = (Array.isArray(out) ? out : [out]).filter((v) => parse(v)[0] === Number(major));
    return versions.sort(compare).pop() || null;
  } catch (err) {
    console.error(`node-matrix: could not ask the registry for node@${major}: ${String(err.stderr || err.message).trim().split('\n').pop()}`);
    return null;
  }
}

/** The Node binary of the cached node@<major> install and its version, or null. */
function cached(dir) {
  const bin = path.join(dir, 'node_modules', 'node', 'bin', 'node');
  try {
    const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim().slice(1);
    return { bin, version };
  } catch {
    return null;
  }
}

/** Installs (or reuses) the latest node@<major>; returns { bin, version }. */
function ensureNode(major, offline) {
  const dir = path.join(cacheDir(), major);
  const have = cached(dir);
  const latest = offline ? null : latestOf(major);
  if (have && (latest === null || have.version === latest)) return have;
  if (latest === null) throw new Error(`node@${major} is not cached in ${dir} and the registry could not be asked`);
  console.log(`node-matrix: installing node@${latest} (npm package) into ${dir}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `node-matrix-${major}`, private: true }));
  // The package's preinstall script fetches the binary (node-<platform>-<arch>), so scripts must run.
  npm(['install', '--no-audit', '--no-fund', '--no-package-lock', '--prefix', dir, `node@${latest}`], dir);
  const got = cached(dir);
  if (!got) throw new Error(`installing node@${latest} left no working binary at ${path.join(dir, 'node_modules/node/bin/node')}`);
  if (got.version !== latest) throw new Error(`node@${latest} installed a binary that reports v${got.version}`);
  return got;
}

// ----- running the suite -----

/** The test runner flags this Node understands (Node 18 has no --test-timeout). */
function supportedFlags(bin) {
  const help = execFileSync(bin, ['--help'], { encoding: 'utf8' });
  const flags = TEST_FLAGS.filter((flag) => help.includes(flag.split('=')[0]));
  return { flags, missing: TEST_FLAGS.filter((f) => !flags.includes(f)) };
}

/** Runs the suite under `node`; resolves with the counts of the TAP summary. */
function runSuite(node, targets, targetsLabel, timeoutMin, logFile) {
  const { flags, missing } = supportedFlags(node.bin);
  const args = [...flags, ...targets];
  const env = { ...process.env, PATH: [path.dirname(node.bin), process.env.PATH].join(path.delimiter) };
  const shown = targetsLabel || targets.join(' ');
  console.log(`\n=== Node ${node.version}: node ${flags.join(' ')} ${shown}`);
  if (missing.length) console.log(`    (this Node has no ${missing.join(', ')}: run without it; the whole run still has a ${timeoutMin}-minute deadline)`);
  const log = fs.createWriteStream(logFile);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(node.bin, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const counts = { tests: null, pass: null, fail: null, cancelled: null, skipped: null, todo: null, duration_ms: null };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      console.log(`    timed out after ${timeoutMin} minutes; killing the run`);
      try { process.kill(-child.pid, 'SIGKILL'); } catch {}
    }, timeoutMin * 60 * 1000);
    const stopOnSignal = () => {
      try { process.kill(-child.pid, 'SIGKILL'); } catch {}
      process.exit(130);
    };
    process.once('SIGINT', stopOnSignal);
    let pending = '';
    child.stdout.on('data', (chunk) => {
      log.write(chunk);
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        const summary = line.match(/^# (tests|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/);
        if (summary) counts[summary[1]] = Number(summary[2]);
        // failing tests at any depth, as they happen
        else if (/^\s*not ok \d+ /.test(line) && !/# (SKIP|TODO)/.test(line)) console.log(`    ${line.trim()}`);
      }
    });
    child.stderr.on('data', (chunk) => log.write(chunk));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.off('SIGINT', stopOnSignal);
      log.end();
      resolve({ ...counts, code, signal, timedOut, missing, wallMs: Date.now() - started });
    });
  });
}

// ----- the table -----

function formatDuration(ms) {
  if (ms === null || ms === undefined) return '-';
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s` : `${s} s`;
}

function table(rows) {
  const head = ['Node', 'tests', 'pass', 'fail', 'cancelled', 'skipped', 'duration', 'result'];
  const body = rows.map((r) => [r.node, r.tests, r.pass, r.fail, r.cancelled, r.skipped, r.duration, r.result].map((c) => (c === null || c === undefined ? '-' : String(c))));
  const width = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 || i === 7 ? c.padEnd(width[i]) : c.padStart(width[i]))).join(' | ')} |`;
  const rule = `|${width.map((w, i) => (i === 0 || i === 7 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const targets = opts.files || testFiles();
  if (pkg.scripts && pkg.scripts['test:js'] !== TEST_SCRIPT) {
    console.log(`node-matrix: note: package.json's test:js is '${pkg.scripts['test:js']}'; this runs '${TEST_SCRIPT}'`);
  }
  const engines = (pkg.engines && pkg.engines.node) || '*';
  fs.mkdirSync(path.join(cacheDir(), 'logs'), { recursive: true });
  const rows = [];
  let failed = false;
  for (const major of opts.versions) {
    let node;
    try {
      node = ensureNode(major, opts.offline);
    } catch (err) {
      console.error(`node-matrix: ${err.message}`);
      rows.push({ node: `${major}.x`, result: 'FAIL (no Node binary)' });
      failed = true;
      continue;
    }
    const inEngines = engines === '*' || satisfies(node.version, engines);
    const logFile = path.join(cacheDir(), 'logs', `node-${node.version}.tap`);
    const r = await runSuite(node, targets, opts.files ? null : `${TEST_DIR}/*.test.js (${targets.length} files)`, opts.timeoutMin, logFile);
    const ok = r.code === 0 && !r.timedOut && r.fail === 0 && !r.cancelled && r.tests !== null;
    let result = ok ? 'ok' : r.timedOut ? 'FAIL (timed out)' : r.tests === null ? `FAIL (exit ${r.code ?? r.signal}, no summary)` : 'FAIL';
    if (!inEngines) result += ` (outside engines ${engines})`;
    if (r.missing.length) result += ` (no ${r.missing.map((f) => f.split('=')[0]).join(', ')})`;
    if (!ok && inEngines) failed = true;
    console.log(`    ${result}; TAP output in ${path.relative(process.cwd(), logFile)}`);
    rows.push({ node: node.version, ...r, duration: formatDuration(r.duration_ms ?? r.wallMs), result });
  }
  const what = opts.files ? opts.files.join(' ') : `the whole suite (${targets.length} files, ${TEST_DIR}/*.test.js)`;
  console.log(`\nnode-matrix: ${what} on ${os.platform()} ${os.arch()}, ${os.cpus().length} CPUs, ${new Date().toISOString().slice(0, 10)}; engines: ${engines}\n`);
  console.log(table(rows));
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
