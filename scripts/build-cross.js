#!/usr/bin/env node
'use strict';
// Cross-builds the addon on x64 Linux for the targets in package.json's napi.targets other than
// this machine's own (which `npm run build` builds), each into npm/<platform>/<binary>.<platform>.node.
//
//   node scripts/build-cross.js                      every non-host target
//   node scripts/build-cross.js --target <triple>    only these (repeatable; the napi triple, or
//                                                    x86_64-pc-windows-gnu for the Windows one)
//   node scripts/build-cross.js --clippy             instead of building, `cargo clippy
//                                                    --all-targets -D warnings` for every target in
//                                                    napi.targets, the host's too, with the same tools
//
// Release builds with CARGO_TARGET_DIR=target/cross, so the host build in target/ is left alone.
// It first checks the tools it needs and installs what it can: `rustup target add`, apt packages
// when run as root with apt-get, and zig + cargo-zigbuild from PyPI into target/cross/venv.
// Otherwise it exits 1 naming what is missing and the command that installs it.
//
// How each target is built here (a release builds each one natively, see
// .github/workflows/release.yml):
// - x86_64-pc-windows-msvc: built as x86_64-pc-windows-gnu with MinGW-w64, because the MSVC
//   libraries cannot be had on Linux; a release builds the real MSVC binary on a Windows runner.
//   Cargo.toml turns on napi's `dyn-symbols` feature for Windows, so the DLL looks up N-API in
//   the host process at load time: it imports only system DLLs and loads in node.exe and
//   Electron alike. napi-build still insists on a libnode.dll to link against (LIBNODE_PATH);
//   an empty archive is enough since nothing is taken from it.
// - macOS arm64/x64: `cargo zigbuild`; zig links Mach-O without an Apple SDK. The deployment
//   targets (11.0, the first arm64 macOS; 10.13 on x64, older than any supported Node needs) are
//   set because zig otherwise records the newest macOS as the minimum. rustc's warning that
//   `xcrun` is missing is expected: zig needs no SDK.
// - aarch64 Linux (glibc): the Debian cross gcc.
// - x64 Linux musl: a cdylib must link musl dynamically (-crt-static), and then Rust links
//   libgcc_s for unwinding, which Debian has only for glibc (musl-gcc fails: "cannot find
//   libgcc_s.so.1"). zig links its own libunwind instead, so the addon needs only musl's libc.

const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const crossDir = path.join(root, 'target', 'cross');
const venvDir = path.join(crossDir, 'venv');
const venvBin = path.join(venvDir, 'bin');
const libnodeDir = path.join(crossDir, 'libnode');
const logDir = path.join(crossDir, 'logs');
const rel = (p) => path.relative(root, p) || '.';

// Pinned: the versions this script was checked with.
const PYPI_TOOLS = ['ziglang==0.17.1', 'cargo-zigbuild==0.24.1'];

const APT = {
  'x86_64-w64-mingw32-gcc': 'gcc-mingw-w64-x86-64',
  'aarch64-linux-gnu-gcc': 'gcc-aarch64-linux-gnu',
};

/** How each napi target is built here. `platform` is napi's name, used for npm/ and the file. */
const RECIPES = {
  'x86_64-pc-windows-msvc': {
    platform: 'win32-x64-msvc',
    rustTarget: 'x86_64-pc-windows-gnu',
    commands: ['x86_64-w64-mingw32-gcc'],
    env: () => ({
      CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER: 'x86_64-w64-mingw32-gcc',
      LIBNODE_PATH: libnodeDir,
      // napi-build does not rerun when LIBNODE_PATH changes; these variables are its rerun
      // triggers (for napi's build script and ours), so a cached link path from a build with
      // another LIBNODE_PATH in this target dir is not reused.
      NAPI_FORCE_BUILD_NAPI: libnodeDir,
      NAPI_FORCE_BUILD_NATIVE_SOCKET_IPC: libnodeDir,
    }),
  },
  'aarch64-apple-darwin': {
    platform: 'darwin-arm64',
    zig: true,
    env: () => ({ MACOSX_DEPLOYMENT_TARGET: '11.0' }),
  },
  'x86_64-apple-darwin': {
    platform: 'darwin-x64',
    zig: true,
    env: () => ({ MACOSX_DEPLOYMENT_TARGET: '10.13' }),
  },
  'aarch64-unknown-linux-gnu': {
    platform: 'linux-arm64-gnu',
    commands: ['aarch64-linux-gnu-gcc'],
    env: () => ({ CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER: 'aarch64-linux-gnu-gcc' }),
  },
  'x86_64-unknown-linux-musl': {
    platform: 'linux-x64-musl',
    zig: true,
    env: () => ({ CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS: '-C target-feature=-crt-static' }),
  },
};

// ----- small helpers -----

function fail(message, code = 1) {
  console.error(`build-cross: ${message}`);
  process.exit(code);
}

function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', ...opts });
}

function ok(cmd, args, opts) {
  const r = run(cmd, args, opts);
  return !r.error && r.status === 0;
}

/** Runs a command with its output shown, for installs; true when it succeeded. */
function runShown(cmd, args, opts = {}) {
  console.log(`$ ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  return !r.error && r.status === 0;
}

function onPath(cmd, envPath = process.env.PATH || '') {
  return envPath.split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir || '.', cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

function size(bytes) {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`;
}

// ----- what to build -----

function parseArgs(argv) {
  const targets = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--clippy') targets.clippy = true;
    else if (arg === '--target' && i + 1 < argv.length) targets.push(argv[++i]);
    else if (arg.startsWith('--target=')) targets.push(arg.slice('--target='.length));
    else if (arg === '-h' || arg === '--help') {
      console.log('usage: node scripts/build-cross.js [--clippy] [--target <triple>]...');
      console.log(`targets: ${Object.keys(RECIPES).join(', ')}`);
      process.exit(0);
    } else fail(`unknown argument ${arg} (usage: node scripts/build-cross.js [--target <triple>]...)`, 2);
  }
  return targets;
}

function hostTriple() {
  const r = run('rustc', ['-vV']);
  if (r.error || r.status !== 0) fail('rustc was not found: install Rust with rustup, then run this again');
  return /^host: (\S+)$/m.exec(r.stdout)[1];
}

/** The cdylib's file name stem, as cargo writes it (the lib target's name). */
function libName() {
  const r = run('cargo', ['metadata', '--no-deps', '--format-version', '1'], { cwd: root, maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) fail(`cargo metadata failed:\n${r.stderr}`);
  const lib = JSON.parse(r.stdout).packages[0].targets.find((t) => t.kind.includes('cdylib'));
  if (!lib) fail('Cargo.toml has no cdylib target');
  return lib.name;
}

function outputFile(rustTarget, lib) {
  if (rustTarget.includes('windows')) return `${lib}.dll`;
  if (rustTarget.includes('apple')) return `lib${lib}.dylib`;
  return `lib${lib}.so`;
}

// ----- tools -----

function installedRustTargets() {
  const r = run('rustup', ['target', 'list', '--installed']);
  if (!r.error && r.status === 0) return new Set(r.stdout.split('\n').filter(Boolean));
  // No rustup: a target is there when its standard library is in the sysroot.
  const sysroot = run('rustc', ['--print', 'sysroot']).stdout.trim();
  const dir = path.join(sysroot, 'lib', 'rustlib');
  return new Set(fs.existsSync(dir) ? fs.readdirSync(dir) : []);
}

function zigReady() {
  const python = path.join(venvBin, 'python');
  return ok(path.join(venvBin, 'cargo-zigbuild'), ['--version']) && ok(python, ['-m', 'ziglang', 'version']);
}

/** Installs what it can; returns the list of what is still missing, each with its install command. */
function ensureTools(recipes) {
  const missing = [];
  if (!ok('cargo', ['--version'])) missing.push('cargo (install Rust with rustup)');

  const rustTargets = [...new Set(recipes.map((r) => r.rustTarget))];
  let absent = rustTargets.filter((t) => !installedRustTargets().has(t));
  if (absent.length && onPath('rustup')) {
    runShown('rustup', ['target', 'add', ...absent]);
    absent = absent.filter((t) => !installedRustTargets().has(t));
  }
  for (const t of absent) missing.push(`Rust standard library for ${t} (install: rustup target add ${t})`);

  const commands = [...new Set(recipes.flatMap((r) => r.commands || []))];
  let absentCmds = commands.filter((c) => !onPath(c));
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (absentCmds.length && isRoot && onPath('apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const pkgs = [...new Set(absentCmds.map((c) => APT[c]))];
    if (runShown('apt-get', ['update'], { env })) runShown('apt-get', ['install', '-y', ...pkgs], { env });
    absentCmds = absentCmds.filter((c) => !onPath(c));
  }
  for (const c of absentCmds) missing.push(`${c} (install: apt-get install -y ${APT[c]})`);

  if (recipes.some((r) => r.zig) && !zigReady()) {
    const python = ['python3', 'python'].find((p) => ok(p, ['-c', 'import venv, ensurepip']));
    if (python) {
      fs.mkdirSync(crossDir, { recursive: true });
      if (fs.existsSync(venvDir) || runShown(python, ['-m', 'venv', venvDir])) {
        runShown(path.join(venvBin, 'python'), ['-m', 'pip', 'install', '--quiet', ...PYPI_TOOLS]);
      }
    }
    if (!zigReady()) {
      const how = python
        ? `${python} -m venv ${rel(venvDir)} && ${rel(venvBin)}/pip install ${PYPI_TOOLS.join(' ')}`
        : 'apt-get install -y python3-venv, then run this again';
      missing.push(`zig and cargo-zigbuild in ${rel(venvDir)} (install: ${how})`);
    }
  }
  return missing;
}

/** The libnode.dll that napi-build wants on windows-gnu: an empty ar archive (see the top). */
function ensureLibnode() {
  fs.mkdirSync(libnodeDir, { recursive: true });
  const file = path.join(libnodeDir, 'libnode.dll');
  if (!fs.existsSync(file)) fs.writeFileSync(file, '!<arch>\n');
}

// ----- building -----

/** Why a failed cargo run failed, from its output: a compile error in our crate or the setup. */
function classify(output, crate) {
  if (/error: linking with `[^`]+` failed/.test(output)) return 'link error';
  if (/failed to run custom build command/.test(output)) return 'a build script failed';
  if (new RegExp(`could not compile \`${crate}\``).test(output) && /^error(\[E\d+\])?:/m.test(output)) {
    return `Rust compile errors in ${crate}`;
  }
  if (/could not compile `/.test(output)) return 'a dependency failed to compile';
  return 'cargo failed';
}

function build(triple, recipe, lib, binaryName) {
  const rustTarget = recipe.rustTarget || triple;
  const args = [recipe.zig ? 'zigbuild' : 'build', '--release', '--lib', '--target', rustTarget];
  const env = { ...process.env, CARGO_TARGET_DIR: crossDir, ...recipe.env() };
  if (recipe.zig) env.PATH = `${venvBin}${path.delimiter}${env.PATH}`; // cargo-zigbuild, and python -m ziglang
  const dest = path.join(root, 'npm', recipe.platform, `${binaryName}.${recipe.platform}.node`);
  const logFile = path.join(logDir, `${triple}.log`);
  fs.mkdirSync(path.dirname(dest), { recursive: true });

  console.log(`\n=== ${triple} -> ${rel(dest)}`);
  console.log(`$ cargo ${args.join(' ')}   (log: ${rel(logFile)})`);
  fs.mkdirSync(logDir, { recursive: true });
  const log = fs.createWriteStream(logFile);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('cargo', args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
      log.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => onData(`${err.message}\n`));
    child.on('close', (code) => {
      log.end();
      const ms = Date.now() - started;
      const result = { triple, platform: recipe.platform, ms, log: logFile };
      const built = path.join(crossDir, rustTarget, 'release', outputFile(rustTarget, lib));
      if (code === 0 && fs.existsSync(built)) {
        fs.copyFileSync(built, dest);
        result.bytes = fs.statSync(dest).size;
        console.log(`=== ${triple}: built in ${seconds(ms)}, ${size(result.bytes)} -> ${rel(dest)}`);
      } else {
        result.error = code === 0 ? `cargo succeeded but ${rel(built)} is missing` : classify(output, lib);
        // Nobody should test or pack a binary left from an older build.
        fs.rmSync(dest, { force: true });
        console.log(`=== ${triple}: FAILED after ${seconds(ms)}: ${result.error} (log: ${rel(logFile)})`);
      }
      resolve(result);
    });
  });
}

/** `cargo clippy` for one target, warnings as errors, with the target's build tools. */
function clippy(triple, recipe) {
  const rustTarget = recipe.rustTarget || triple;
  const env = { ...process.env, CARGO_TARGET_DIR: crossDir, ...(recipe.env ? recipe.env() : {}) };
  const cmd = recipe.zig ? path.join(venvBin, 'cargo-zigbuild') : 'cargo';
  if (recipe.zig) env.PATH = `${venvBin}${path.delimiter}${env.PATH}`;
  // The addon (default features) and, on the host, the core alone as `cargo test` builds it.
  const variants = recipe.host ? [[], ['--no-default-features']] : [[]];
  const started = Date.now();
  let failed = null;
  for (const extra of variants) {
    const args = ['clippy', '--all-targets', '--target', rustTarget, ...extra, '--', '-D', 'warnings'];
    console.log(`\n=== clippy ${triple}${extra.length ? ` ${extra.join(' ')}` : ''}`);
    if (!runShown(cmd, args, { cwd: root, env })) failed = 'clippy reported warnings or errors';
  }
  return { triple, platform: recipe.platform || 'host', ms: Date.now() - started, error: failed, log: '(output above)' };
}

function summary(results) {
  const rows = [['target', 'platform', 'result', 'time', 'size']];
  for (const r of results) {
    rows.push([r.triple, r.platform, r.error ? `FAILED: ${r.error}` : 'ok', seconds(r.ms), r.bytes ? size(r.bytes) : '-']);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  console.log('\nSummary:');
  for (const row of rows) console.log(`  ${row.map((cell, i) => cell.padEnd(widths[i])).join('  ')}`.trimEnd());
  for (const r of results.filter((x) => x.error)) console.log(`  ${r.triple}: see ${rel(r.log)}`);
}

async function main() {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const { binaryName, targets: napiTargets = [] } = pkg.napi || {};
  // A target may also be named by the Rust target it is built as here (x86_64-pc-windows-gnu).
  const aliases = Object.fromEntries(Object.entries(RECIPES).filter(([, r]) => r.rustTarget).map(([t, r]) => [r.rustTarget, t]));
  const args = parseArgs(process.argv.slice(2));
  const wanted = args.map((t) => aliases[t] || t);
  const host = hostTriple();
  if (args.clippy) return lintAll(napiTargets, host, wanted);

  for (const t of wanted) {
    if (t === host) fail(`${t} is this machine's target: \`npm run build\` builds it`, 2);
    if (!napiTargets.includes(t)) fail(`${t} is not in package.json's napi.targets (${napiTargets.join(', ')})`, 2);
  }
  const selected = wanted.length ? [...new Set(wanted)] : napiTargets.filter((t) => t !== host);
  const unknown = selected.filter((t) => !RECIPES[t]);
  if (unknown.length) fail(`no cross-build recipe for ${unknown.join(', ')} (scripts/build-cross.js RECIPES)`, 2);
  if (!selected.length) fail('nothing to build: napi.targets has no target other than the host', 2);

  const recipes = selected.map((t) => ({ rustTarget: t, ...RECIPES[t] }));
  const missing = ensureTools(recipes);
  if (missing.length) fail(`missing tools:\n${missing.map((m) => `  - ${m}`).join('\n')}`);
  if (selected.includes('x86_64-pc-windows-msvc')) ensureLibnode();

  const lib = libName();
  const results = [];
  for (const t of selected) results.push(await build(t, RECIPES[t], lib, binaryName));
  summary(results);
  process.exitCode = results.some((r) => r.error) ? 1 : 0;
}

/** --clippy: every napi target (or those named), the host's with plain cargo. */
function lintAll(napiTargets, host, wanted) {
  const selected = wanted.length ? wanted : napiTargets;
  const recipes = selected.map((t) => (t === host ? { host: true, platform: 'host', rustTarget: t } : { rustTarget: t, ...RECIPES[t] }));
  const cross = recipes.filter((r) => !r.host);
  const missing = cross.length ? ensureTools(cross) : [];
  if (missing.length) fail(`missing tools:\n${missing.map((m) => `  - ${m}`).join('\n')}`);
  if (selected.includes('x86_64-pc-windows-msvc')) ensureLibnode();
  const results = selected.map((t, i) => clippy(t, recipes[i]));
  summary(results);
  process.exitCode = results.some((r) => r.error) ? 1 : 0;
}

// Run as a script; required (by the test runners), it only lends its recipes.
if (require.main === module) main().catch((err) => fail(err.stack || String(err)));

module.exports = { RECIPES, crossDir };
