'use strict';
// The per-platform npm packages: one npm/<platform>/ for every triple in package.json's
// napi.targets, shaped the way `napi artifacts` / `napi prepublish` and npm's install-time platform
// filter expect, and packing to nothing but its binary, package.json and README.md. Fast and
// host-only: it reads files and runs `npm pack --dry-run`; it never cross-builds
// (`npm run build:cross` does that), so a binary is checked only where one has been built.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
// napi's own triple -> platform mapping, the one `napi artifacts` and `napi prepublish` use.
const { parseTriple } = require('@napi-rs/cli');

const execFileP = promisify(execFile);
const root = path.join(__dirname, '..');
const npmDir = path.join(root, 'npm');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const { binaryName, targets } = pkg.napi;
const platforms = targets.map((triple) => {
  const t = parseTriple(triple);
  const dir = path.join(npmDir, t.platformArchABI);
  return { ...t, dir, binary: `${binaryName}.${t.platformArchABI}.node` };
});
const readPkg = (p) => JSON.parse(fs.readFileSync(path.join(p.dir, 'package.json'), 'utf8'));

/** npm for a child process: the npm running `npm test` when there is one, else npm on PATH. */
function npmCommand() {
  const cli = process.env.npm_execpath;
  if (cli && /\.[cm]?js$/.test(cli)) return [process.execPath, [cli]];
  return [process.platform === 'win32' ? 'npm.cmd' : 'npm', []];
}

/** The environment without the npm_* variables `npm test` sets (they would point npm back here). */
function npmEnv() {
  const keep = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_registry']);
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) || keep.has(key.toLowerCase())) env[key] = value;
  }
  env.npm_config_update_notifier = 'false';
  return env;
}

test('package.json lists each napi target once, the host build x86_64-unknown-linux-gnu among them', () => {
  assert.equal(new Set(targets).size, targets.length, `duplicates in ${targets}`);
  assert.ok(targets.includes('x86_64-unknown-linux-gnu'));
});

test('the root package has no os, cpu or libc restriction, so it installs on every platform', () => {
  for (const field of ['os', 'cpu', 'libc']) assert.equal(pkg[field], undefined, `root package.json has "${field}"`);
});

test('the root package.json declares no optionalDependencies (napi prepublish adds them at release)', () => {
  assert.equal(pkg.optionalDependencies, undefined);
});

test('every napi target has npm/<platform>/package.json named native-socket-ipc-<platform> at the root version', () => {
  for (const p of platforms) {
    assert.ok(fs.existsSync(path.join(p.dir, 'package.json')), `npm/${p.platformArchABI}/package.json is missing (${p.triple})`);
    const platformPkg = readPkg(p);
    assert.equal(platformPkg.name, `${pkg.name}-${p.platformArchABI}`, p.triple);
    assert.equal(platformPkg.version, pkg.version, `${platformPkg.name} has the root package's version`);
    assert.ok(fs.existsSync(path.join(p.dir, 'README.md')), `npm/${p.platformArchABI}/README.md is missing`);
  }
});

test("every platform package's os, cpu and libc let npm install it only on its own platform", () => {
  for (const p of platforms) {
    const platformPkg = readPkg(p);
    assert.deepEqual(platformPkg.os, [p.platform], `${platformPkg.name} os`);
    assert.deepEqual(platformPkg.cpu, [p.arch], `${platformPkg.name} cpu`);
    // npm knows libc only on Linux: glibc or musl there, and no libc field anywhere else.
    const libc = p.platform === 'linux' ? [p.abi === 'musl' ? 'musl' : 'glibc'] : undefined;
    assert.deepEqual(platformPkg.libc, libc, `${platformPkg.name} libc`);
  }
});

test('every platform package has main and files naming only its <binary>.<platform>.node', () => {
  for (const p of platforms) {
    const platformPkg = readPkg(p);
    assert.equal(platformPkg.main, p.binary, `${platformPkg.name} main`);
    assert.deepEqual(platformPkg.files, [p.binary], `${platformPkg.name} files`);
  }
});

test("every platform package has the root package's license and Node engines", () => {
  for (const p of platforms) {
    const platformPkg = readPkg(p);
    assert.equal(platformPkg.license, pkg.license, `${platformPkg.name} license`);
    assert.deepEqual(platformPkg.engines, pkg.engines, `${platformPkg.name} engines`);
  }
});

test('npm/ holds no platform directory for a target that napi.targets does not list', () => {
  const known = new Set(platforms.map((p) => p.platformArchABI));
  const stray = fs.readdirSync(npmDir).filter((name) => !known.has(name));
  assert.deepEqual(stray, []);
});

test("the release workflow's build matrix has exactly the napi targets", () => {
  const workflow = fs.readFileSync(path.join(root, '.github', 'workflows', 'release.yml'), 'utf8');
  const built = [...workflow.matchAll(/^\s*target: (\S+)\s*$/gm)].map((m) => m[1]);
  assert.deepEqual([...built].sort(), [...targets].sort());
});

test('binding.js loads each platform package by its name and binary file', (t) => {
  const loaderPath = path.join(root, 'binding.js');
  if (!fs.existsSync(loaderPath)) return t.skip('binding.js is generated by `npm run build`, which has not run');
  const loader = fs.readFileSync(loaderPath, 'utf8');
  for (const p of platforms) {
    assert.ok(loader.includes(`require('./${p.binary}')`), `binding.js loads ./${p.binary}`);
    assert.ok(loader.includes(`require('${pkg.name}-${p.platformArchABI}')`), `binding.js loads ${pkg.name}-${p.platformArchABI}`);
  }
});

test("a platform package's binary, where built, is a library for that platform's OS and CPU", (t) => {
  const machines = { x64: { elf: 62, macho: 0x01000007, pe: 0x8664 }, arm64: { elf: 183, macho: 0x0100000c, pe: 0xaa64 } };
  let checked = 0;
  for (const p of platforms) {
    const file = path.join(p.dir, p.binary);
    if (!fs.existsSync(file)) continue;
    const b = fs.readFileSync(file);
    const want = machines[p.arch];
    if (p.platform === 'linux') {
      assert.equal(b.toString('latin1', 0, 4), '\x7fELF', `${p.binary} is ELF`);
      assert.equal(b.readUInt16LE(18), want.elf, `${p.binary} machine`);
      // Symbol versions name glibc in a glibc build and never in a musl one.
      assert.equal(b.includes('GLIBC_'), p.abi !== 'musl', `${p.binary} is linked against ${p.abi === 'musl' ? 'musl' : 'glibc'}`);
    } else if (p.platform === 'darwin') {
      assert.equal(b.readUInt32LE(0), 0xfeedfacf, `${p.binary} is 64-bit Mach-O`);
      assert.equal(b.readUInt32LE(4), want.macho, `${p.binary} CPU type`);
    } else if (p.platform === 'win32') {
      assert.equal(b.toString('latin1', 0, 2), 'MZ', `${p.binary} is a PE file`);
      const pe = b.readUInt32LE(0x3c);
      assert.equal(b.toString('latin1', pe, pe + 4), 'PE\0\0', `${p.binary} PE header`);
      assert.equal(b.readUInt16LE(pe + 4), want.pe, `${p.binary} machine`);
    }
    checked++;
  }
  t.diagnostic(`${checked} of ${platforms.length} platform binaries present and checked`);
});

test('npm pack of every platform package lists only package.json, README.md and its binary (when built)', { timeout: 120000 }, async (t) => {
  const [cmd, pre] = npmCommand();
  const env = npmEnv();
  const packs = platforms.map(async (p) => {
    const { stdout } = await execFileP(cmd, [...pre, 'pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: p.dir, env, timeout: 90000 });
    const [info] = JSON.parse(stdout);
    const files = info.files.map((f) => f.path).sort();
    const expected = ['README.md', 'package.json'];
    if (fs.existsSync(path.join(p.dir, p.binary))) expected.push(p.binary);
    else t.diagnostic(`${p.platformArchABI}: no ${p.binary} built here; only the other files checked`);
    assert.deepEqual(files, expected.sort(), `npm pack of npm/${p.platformArchABI}`);
    assert.deepEqual([info.name, info.version], [`${pkg.name}-${p.platformArchABI}`, pkg.version]);
  });
  await Promise.all(packs);
});
