'use strict';
// What scripts/test-arm64.js and scripts/test-windows.js share: running the node:test suite with a
// real Node.js binary of another platform on this x64 Linux machine (arm64 Node under qemu-user,
// Windows node.exe under Wine), against an addon cross-built by scripts/build-cross.js.
//
// Everything fetched or generated goes to target/cross/ (git-ignored; also CARGO_TARGET_DIR of
// build-cross.js). The only thing written outside it is the addon copied to the package root for
// the duration of a run, where binding.js looks first; it is removed (or the file that was there
// before put back) when the run ends, also on Ctrl-C.

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync, execFileSync } = require('node:child_process');

const root = path.join(__dirname, '..', '..');
const crossDir = path.join(root, 'target', 'cross');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const binaryName = pkg.napi.binaryName;
const rel = (p) => path.relative(root, p) || '.';

function fail(tool, message, code = 2) {
  console.error(`${tool}: ${message}`);
  process.exit(code);
}

/** The full path of `cmd` on PATH, or null. */
function which(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const file = path.join(dir || '.', cmd);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {}
  }
  return null;
}

/**
 * Checks prerequisites, each `{ what, ok: () => boolean, apt?: 'package', fix?: 'command' }`.
 * Missing Debian packages are installed with apt-get when running as root; otherwise, and for
 * anything apt cannot provide, it says exactly what is missing and how to get it, and exits 2.
 */
function requirePrerequisites(tool, checks) {
  let missing = checks.filter((c) => !c.ok());
  const apt = [...new Set(missing.filter((c) => c.apt).map((c) => c.apt))];
  if (apt.length && process.getuid && process.getuid() === 0 && which('apt-get')) {
    console.log(`${tool}: installing ${apt.join(' ')} (apt-get, running as root)`);
    const run = (args) => spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
    if (!run(['install', '-y', '--no-install-recommends', ...apt])) {
      // A fresh container has no package lists yet.
      run(['update']) && run(['install', '-y', '--no-install-recommends', ...apt]);
    }
    missing = missing.filter((c) => !c.ok());
  }
  if (missing.length === 0) return;
  const lines = missing.map((c) => `  - ${c.what}: ${c.apt ? `apt-get install ${c.apt}` : c.fix}`);
  const aptLeft = [...new Set(missing.filter((c) => c.apt).map((c) => c.apt))];
  if (aptLeft.length) lines.push(`  (as root: apt-get update && apt-get install -y ${aptLeft.join(' ')})`);
  fail(tool, `missing prerequisites:\n${lines.join('\n')}`);
}

// ----- the Node.js binary of the other platform -----

/**
 * Unpacks `file` (e.g. 'bin/node') of the npm package `name@version` into
 * target/cross/<name>-<version>/ and returns its path; reuses an earlier unpack. The tarball comes
 * from `npm pack` (the ordinary registry client, so npm's registry and proxy settings apply) and
 * must have the pinned sha512 `integrity`: the pin is to an exact build of Node, not just a
 * version number.
 */
function fetchNodePackage(tool, { name, version, integrity, file }) {
  const dir = path.join(crossDir, `${name}-${version}`);
  const target = path.join(dir, file);
  if (fs.existsSync(target)) return target;
  fs.mkdirSync(crossDir, { recursive: true });
  console.log(`${tool}: fetching ${name}@${version} from the npm registry (npm pack) into ${rel(crossDir)}`);
  const packed = spawnSync('npm', ['pack', `${name}@${version}`, '--pack-destination', crossDir, '--json'], {
    cwd: crossDir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (packed.status !== 0) fail(tool, `npm pack ${name}@${version} failed (exit ${packed.status})`);
  const tgz = path.join(crossDir, JSON.parse(packed.stdout)[0].filename);
  const actual = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tgz)).digest('base64')}`;
  if (actual !== integrity) {
    fs.rmSync(tgz, { force: true });
    fail(tool, `${name}@${version} from the registry is not the pinned build:\n  expected ${integrity}\n  got      ${actual}`);
  }
  // Only the one file is needed (the package also has headers and docs); unpack next to the final
  // folder and rename, so an interrupted unpack is never taken for a finished one.
  const tmp = `${dir}.partial`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  execFileSync('tar', ['xzf', tgz, '-C', tmp, '--strip-components=1', `package/${file}`], { stdio: 'inherit' });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  fs.rmSync(tgz, { force: true });
  return target;
}

// ----- the addon -----

/**
 * The cross-built addon to test: `--binary <file>` as given; otherwise the output of
 * `node scripts/build-cross.js --target <triple>`, which is run first unless `--no-build`.
 */
function addonFor(tool, opts, { triple, platform }) {
  if (opts.binary) {
    const file = path.resolve(opts.binary);
    if (!fs.existsSync(file)) fail(tool, `--binary ${opts.binary}: no such file`);
    return file;
  }
  const built = path.join(root, 'npm', platform, `${binaryName}.${platform}.node`);
  if (!opts.build) {
    if (!fs.existsSync(built)) fail(tool, `--no-build: ${rel(built)} does not exist; build it with node scripts/build-cross.js --target ${triple}`);
    return built;
  }
  const script = path.join(root, 'scripts', 'build-cross.js');
  if (!fs.existsSync(script)) {
    fail(tool, `${rel(script)} does not exist (yet), so the ${triple} addon cannot be built here.\n` +
      `  Build it another way and pass --binary <file.node>, or --no-build to use ${rel(built)}.`);
  }
  // build-cross.js checks (and where it can, installs) the compilers and Rust targets itself.
  console.log(`${tool}: node ${rel(script)} --target ${triple}`);
  const r = spawnSync(process.execPath, [script, '--target', triple], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail(tool, `building the ${triple} addon failed (build-cross.js exit ${r.status ?? r.signal})`, 1);
  if (!fs.existsSync(built)) fail(tool, `build-cross.js succeeded but did not produce ${rel(built)}`, 1);
  return built;
}

/**
 * Copies the addon to the package root as <binaryName>.<platform>.node, the first place binding.js
 * looks on that platform. Returns a function that undoes it (called at exit, also on signals):
 * the copy is removed, or a file that was already there is put back.
 */
function placeAddon(addon, platform) {
  const dest = path.join(root, `${binaryName}.${platform}.node`);
  const backup = path.join(crossDir, `${path.basename(dest)}.before-test`);
  const hadOne = fs.existsSync(dest);
  if (hadOne) fs.renameSync(dest, backup);
  fs.copyFileSync(addon, dest);
  let undone = false;
  const undo = () => {
    if (undone) return;
    undone = true;
    fs.rmSync(dest, { force: true });
    if (hadOne) fs.renameSync(backup, dest);
  };
  process.on('exit', undo);
  return { dest, undo };
}

// ----- test files and the TAP result -----

/**
 * The test files to run, relative to the package root with '/' separators: the ones named on the
 * command line, else `defaults`. Each must exist.
 */
function testFiles(tool, named, defaults) {
  const files = (named.length ? named : defaults).map((f) => path.relative(root, path.resolve(named.length ? process.cwd() : root, f)).split(path.sep).join('/'));
  for (const f of files) if (!fs.existsSync(path.join(root, f))) fail(tool, `${f}: no such test file`);
  return files;
}

/** The counts of a TAP stream's closing summary (# tests, # pass, ...) and its failing tests. */
function tapSummary(text) {
  const counts = { tests: null, pass: null, fail: null, cancelled: null, skipped: null, todo: null, duration_ms: null };
  const failures = [];
  const stack = []; // names of the enclosing subtests, by indentation
  for (const line of text.split('\n')) {
    const summary = line.match(/^# (tests|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/);
    if (summary) counts[summary[1]] = Number(summary[2]);
    const sub = line.match(/^(\s*)# Subtest: (.*)$/);
    if (sub) stack.splice(sub[1].length / 4, Infinity, sub[2]);
    const notOk = line.match(/^(\s*)not ok \d+ - (.*?)(\s+# (SKIP|TODO).*)?$/);
    if (notOk && !notOk[3]) failures.push(stack.slice(0, notOk[1].length / 4).concat(notOk[2]).join(' > '));
  }
  // A parent test fails when a subtest does: list only the innermost.
  const innermost = failures.filter((f) => !failures.some((g) => g !== f && g.startsWith(`${f} > `)));
  return { counts, failures: innermost };
}

function formatDuration(ms) {
  if (ms < 10000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s` : `${s} s`;
}

/** Prints the closing summary; returns whether the run passed. */
function report(tool, { label, counts, failures, code, timedOut, wallMs, tapFile }) {
  const ok = code === 0 && !timedOut && counts.tests !== null && counts.fail === 0 && !counts.cancelled;
  const n = (v) => (v === null ? '?' : v);
  console.log(`\n${tool}: ${label}`);
  console.log(`  tests ${n(counts.tests)}, pass ${n(counts.pass)}, fail ${n(counts.fail)}, cancelled ${n(counts.cancelled)}, skipped ${n(counts.skipped)}, todo ${n(counts.todo)}`);
  console.log(`  duration ${formatDuration(wallMs)} (node:test reports ${counts.duration_ms === null ? '?' : formatDuration(counts.duration_ms)})`);
  for (const f of failures) console.log(`  not ok: ${f}`);
  if (timedOut) console.log('  the run was killed: it went past the deadline');
  else if (counts.tests === null) console.log(`  no TAP summary: the test runner exited with ${code} before finishing`);
  console.log(`  TAP output: ${rel(tapFile)}`);
  console.log(`  result: ${ok ? 'PASS' : 'FAIL'}`);
  return ok;
}

/** The flags shared by the scripts (see their usage texts); test files are the other arguments. */
function parseArgs(tool, argv, usage, extra = {}) {
  const opts = { build: true, binary: null, files: [], timeoutMin: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : fail(tool, `${arg} needs a value\n\n${usage}`));
    if (arg === '--help' || arg === '-h') {
      console.log(usage);
      process.exit(0);
    } else if (arg === '--no-build') opts.build = false;
    else if (arg === '--binary') opts.binary = value();
    else if (arg === '--timeout') {
      opts.timeoutMin = Number(value());
      if (!(opts.timeoutMin > 0)) fail(tool, '--timeout takes a positive number of minutes');
    } else if (Object.hasOwn(extra, arg)) opts[extra[arg]] = true;
    else if (arg.startsWith('-')) fail(tool, `unknown option '${arg}'\n\n${usage}`);
    else opts.files.push(arg);
  }
  return opts;
}

module.exports = {
  root,
  crossDir,
  binaryName,
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
};
