'use strict';
// What `npm pack` ships, and that it installs and works where there is no Rust toolchain.
//
// In a temp directory (nothing is written into the repository): `npm pack --ignore-scripts` of
// the repository (`prepare` would run the cargo build), a copy of npm/linux-x64-gnu with the
// built addon copied in, packed the same way; both tarballs installed with --offline into an
// empty project, with cargo and rustc taken off PATH; then the ESM/CJS entry fixtures
// (esm-import.mjs, esm-require.cjs) run there against the installed copy, and `npx
// native-socket-ipc --help` once the repository has the CLI. This is what a registry install
// does once `napi prepublish` has added the platform package to optionalDependencies.
//
// npm is slow: each step has its own deadline and the tests allow minutes, but a stuck npm fails.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFile, spawnSync } = require('node:child_process');
const { promisify } = require('node:util');
const { socketPath } = require('./helpers');

const execFileP = promisify(execFile);
const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const PLATFORM = 'linux-x64-gnu';
const platformDir = path.join(root, 'npm', PLATFORM);
const addonName = `${pkg.napi.binaryName}.${PLATFORM}.node`;
const STEP_MS = 180000; // one npm or node invocation
const TEST_MS = 600000;
const cliPath = path.join(root, 'bin', 'native-socket-ipc.js');

const supported = process.platform === 'linux' && process.arch === 'x64' && !isMusl();
const skip = supported ? false : `the ${PLATFORM} package only runs on x64 Linux with glibc`;

function isMusl() {
  const report = process.report && process.report.getReport();
  return !(report && report.header && report.header.glibcVersionRuntime);
}

// ----- environment -----

const hasRust = (dir) => ['cargo', 'rustc', 'rustup'].some((name) => fs.existsSync(path.join(dir, name)));

/**
 * PATH with every directory holding cargo, rustc or rustup removed and this Node's own directory
 * first (so `npm` and `npx` run on it too). If Node shares a directory with cargo, a directory
 * with links to node, npm and npx alone stands in for it.
 */
function pathWithoutRust(tmp) {
  const nodeDir = path.dirname(process.execPath);
  let first = nodeDir;
  if (hasRust(nodeDir)) {
    first = path.join(tmp, 'node-bin');
    fs.mkdirSync(first);
    fs.symlinkSync(process.execPath, path.join(first, 'node'));
    for (const tool of ['npm', 'npx']) {
      if (fs.existsSync(path.join(nodeDir, tool))) fs.symlinkSync(fs.realpathSync(path.join(nodeDir, tool)), path.join(first, tool));
    }
  }
  const rest = (process.env.PATH || '').split(path.delimiter).filter((dir) => dir && dir !== nodeDir && !hasRust(dir));
  return [first, ...rest].join(path.delimiter);
}

/**
 * The environment for npm and the installed project: PATH without Rust, and without the npm_*
 * variables `npm test` sets for its scripts (npm_config_local_prefix would point a nested npm back
 * at the repository); the cache and config locations are kept.
 */
function cleanEnv(tmp) {
  const keep = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_registry']);
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) && !keep.has(key.toLowerCase())) continue;
    env[key] = value;
  }
  env.PATH = pathWithoutRust(tmp);
  env.NO_UPDATE_NOTIFIER = '1';
  env.npm_config_update_notifier = 'false';
  return env;
}

/** Runs a command with a deadline; resolves with { stdout, stderr }, rejects with its output. */
async function run(file, args, options) {
  try {
    return await execFileP(file, args, { timeout: STEP_MS, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, ...options });
  } catch (err) {
    const how = err.killed ? `killed after ${STEP_MS} ms` : `exit code ${err.code}`;
    throw new Error(`${file} ${args.join(' ')} (in ${options.cwd}) failed, ${how}:\n${err.stderr || ''}${err.stdout || ''}${err.message}`);
  }
}

/** `npm pack` of `dir` into `dest`; resolves with npm's JSON description of the tarball. */
async function pack(dir, dest, env) {
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dest], { cwd: dir, env });
  const [info] = JSON.parse(stdout.slice(stdout.indexOf('[')));
  return { ...info, tarball: path.join(dest, info.filename), paths: info.files.map((f) => f.path) };
}

// ----- the steps, each done once and shared by the tests that need it -----

const once = (fn) => {
  let p;
  return () => (p ??= fn());
};

let tmpDir = null;
test.after(() => tmpDir && fs.rmSync(tmpDir, { recursive: true, force: true }));

const workspace = once(() => {
  tmpDir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'nsipc-pack-')));
  return { tmp: tmpDir, env: cleanEnv(tmpDir) };
});

const packedMain = once(async () => {
  const { tmp, env } = workspace();
  return pack(root, tmp, env);
});

const packedPlatform = once(async () => {
  const { tmp, env } = workspace();
  const built = path.join(root, addonName);
  if (!fs.existsSync(built)) throw new Error(`${addonName} is not built: run \`npm run build\` first`);
  const copy = path.join(tmp, PLATFORM);
  fs.mkdirSync(copy);
  for (const name of fs.readdirSync(platformDir)) fs.copyFileSync(path.join(platformDir, name), path.join(copy, name));
  fs.copyFileSync(built, path.join(copy, addonName));
  return pack(copy, tmp, env);
});

const installed = once(async () => {
  const { tmp, env } = workspace();
  const [main, platform] = await Promise.all([packedMain(), packedPlatform()]);
  const project = path.join(tmp, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'empty-project', version: '1.0.0', private: true }));
  // --offline: both tarballs are local files and the package has no dependencies, so an install
  // must not need the network. Install scripts do run (a consumer's npm runs them), with no cargo.
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', main.tarball, platform.tarball], { cwd: project, env });
  for (const name of ['esm-import.mjs', 'esm-require.cjs', 'round-trip.cjs']) {
    fs.copyFileSync(path.join(__dirname, 'fixtures', name), path.join(project, name));
  }
  return project;
});

/** Runs an entry fixture in the installed project; resolves with its JSON report. */
async function consumerReport(t, name) {
  const project = await installed();
  const { env } = workspace();
  const { stdout } = await run(process.execPath, [name, socketPath(t)], { cwd: project, env });
  const result = JSON.parse(stdout.trim().split('\n').pop());
  assert.equal(result.node, process.version, 'the installed project ran on the same Node as the test');
  return result;
}

// ----- the package's contents -----

test('the npm package contains the entry points, the types, lib/, bin/, the binding loader, README and the docs/ manual', { skip, timeout: TEST_MS }, async () => {
  const { paths } = await packedMain();
  const expected = ['package.json', 'README.md', 'index.js', 'index.mjs', 'index.d.ts', 'binding.js', 'binding.d.ts'];
  for (const name of fs.readdirSync(path.join(root, 'lib'))) expected.push(`lib/${name}`);
  for (const name of ['LICENSE', 'LICENSE.md', 'PROTOCOL.md', 'CHANGELOG.md']) if (fs.existsSync(path.join(root, name))) expected.push(name);
  // The manual the README links to, so its links work in the installed package too.
  for (const name of fs.readdirSync(path.join(root, 'docs'), { recursive: true })) {
    if (name.endsWith('.md')) expected.push(`docs/${name.split(path.sep).join('/')}`);
  }
  if (fs.existsSync(cliPath)) expected.push('bin/native-socket-ipc.js');
  for (const name of expected) assert.ok(paths.includes(name), `${name} is in the package; it has:\n${paths.join('\n')}`);
});

test('every file package.json points at (main, types, exports, bin) is in the package', { skip, timeout: TEST_MS }, async (t) => {
  const { paths } = await packedMain();
  const targets = new Set([pkg.main, pkg.types]);
  const walk = (v) => (typeof v === 'string' ? targets.add(v) : Object.values(v).forEach(walk));
  walk(pkg.exports);
  for (const file of Object.values(pkg.bin || {})) {
    if (fs.existsSync(path.join(root, file))) targets.add(file);
    else t.diagnostic(`bin ${file} does not exist in the repository yet; not checked`);
  }
  for (const target of targets) {
    const name = path.posix.normalize(target);
    assert.ok(paths.includes(name), `package.json names ${target}, which is not in the package`);
  }
});

test('the npm package contains no tests, benches, sources, build output, binaries or CI files', { skip, timeout: TEST_MS }, async () => {
  const { paths } = await packedMain();
  const forbidden = [
    /^__test__\//,
    /^tests?\//,
    /^bench\//,
    /^src\//,
    /^target\//,
    /^fuzz\//,
    /^examples\//,
    /^scripts\//,
    /^demo\//,
    /^npm\//,
    /^\.ci\//,
    /^\.git/,
    /^node_modules\//,
    /\.rs$/,
    /(^|\/)Cargo\.(toml|lock)$/,
    /(^|\/)rustfmt\.toml$/,
    /\.node$/,
    /\.tgz$/,
    /(^|\/)package-lock\.json$/,
  ];
  const leaks = paths.filter((p) => forbidden.some((re) => re.test(p)));
  assert.deepEqual(leaks, [], 'files that do not belong in the package');
});

test("the platform package npm/linux-x64-gnu has the name and version binding.js requires, and holds the addon", { skip, timeout: TEST_MS }, async () => {
  const loader = fs.readFileSync(path.join(root, 'binding.js'), 'utf8');
  // binding.js (napi build) first tries ./<binary>.linux-x64-gnu.node, then the platform package
  const at = loader.indexOf(`require('./${addonName}')`);
  assert.notEqual(at, -1, `binding.js loads ./${addonName}`);
  const [, wantedName] = loader.slice(at).match(/require\('([^'./][^']*)'\)/);
  const [, wantedVersion] = loader.slice(at).match(/bindingPackageVersion !== '([^']+)'/);
  const platformPkg = JSON.parse(fs.readFileSync(path.join(platformDir, 'package.json'), 'utf8'));
  assert.equal(platformPkg.name, wantedName);
  assert.equal(platformPkg.version, wantedVersion);
  assert.equal(pkg.version, wantedVersion, 'binding.js was generated for this version of the package');
  assert.deepEqual([platformPkg.os, platformPkg.cpu, platformPkg.libc], [['linux'], ['x64'], ['glibc']]);
  assert.deepEqual(platformPkg.engines, pkg.engines, 'the platform package supports the same Node versions');
  assert.equal(platformPkg.main, addonName);
  const { paths, name, version } = await packedPlatform();
  assert.deepEqual([name, version], [wantedName, wantedVersion]);
  assert.deepEqual(paths.sort(), ['README.md', addonName, 'package.json'].sort());
});

// ----- installed into an empty project -----

test('the environment of the installed project has no cargo or rustc on PATH', { skip, timeout: TEST_MS }, () => {
  const { env } = workspace();
  for (const tool of ['cargo', 'rustc']) {
    const r = spawnSync(tool, ['--version'], { env });
    assert.equal(r.error && r.error.code, 'ENOENT', `${tool} is still reachable on PATH ${env.PATH}`);
  }
});

test("both tarballs install offline into an empty project, and require('native-socket-ipc') does a real round trip on the platform package's addon", { skip, timeout: TEST_MS }, async (t) => {
  const project = await installed();
  const r = await consumerReport(t, 'esm-require.cjs');
  const installedDir = path.join(project, 'node_modules', 'native-socket-ipc');
  assert.equal(r.resolvedRequire, path.join(installedDir, 'index.js'));
  assert.deepEqual(r.nativeAddons, [path.join(project, 'node_modules', `${pkg.name}-${PLATFORM}`, addonName)]);
  assert.equal(r.sameClasses, true);
  assert.equal(r.deepRequire, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
  assert.deepEqual(r.reply, { echo: { n: 1 }, clientId: 1 });
});

test("in the installed project, import { Server, Client } from 'native-socket-ipc' does a real round trip", { skip, timeout: TEST_MS }, async (t) => {
  const project = await installed();
  const r = await consumerReport(t, 'esm-import.mjs');
  if (r.resolvedImport !== null) {
    assert.equal(r.resolvedImport, `file://${path.join(project, 'node_modules', 'native-socket-ipc', 'index.mjs')}`);
  }
  assert.equal(r.sameClasses, true);
  assert.equal(r.defaultIsCjsExports, true);
  assert.deepEqual(r.namedExports, r.cjsExports);
  assert.deepEqual(r.reply, { echo: { n: 1 }, clientId: 1 });
});

test('in the installed project, `npx native-socket-ipc --help` runs the CLI', { skip: skip || (!fs.existsSync(cliPath) && 'bin/native-socket-ipc.js does not exist yet'), timeout: TEST_MS }, async () => {
  const project = await installed();
  const { env } = workspace();
  // --offline --yes=false: run the installed bin, never download one
  const { stdout } = await run('npx', ['--offline', '--yes=false', 'native-socket-ipc', '--help'], { cwd: project, env });
  for (const command of ['listen', 'send', 'request', 'bench']) assert.match(stdout, new RegExp(`\\b${command}\\b`), `--help names the ${command} command`);
});
