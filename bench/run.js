#!/usr/bin/env node
'use strict';
// The benchmark suite: every scenario (bench/scenarios/) for every library (bench/libs/), each
// run in fresh server and client processes, then ONE table of medians and min–max, and
// bench/results/latest.json. See bench/README.md.
//
//   node bench/run.js [--quick | --smoke] [--runs N] [--only a,b] [--libs x,y]
//                     [--placement same|cross|none] [--out file.json]

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Run, cpuSnapshot } = require('./util/proc');
const { summarize, formatValue, formatRatio, render } = require('./util/table');

const SCENARIOS = ['oneway-c2s', 'oneway-s2c', 'rtt', 'request', 'large', 'broadcast', 'scale', 'loop-cost'];
const LIBS = ['native', 'native-alo', 'native-sipc', 'native-tcp', 'native-tls', 'net', 'net-batch', 'crussell', 'node-ipc', 'zeromq'];
const PLACEMENTS = ['same', 'cross', 'none'];
const RESULTS = path.join(__dirname, 'results');
// A run during which other programs kept this much CPU busy (in CPUs, averaged) is flagged.
const NOISY_CPU = 0.1;

const USAGE = `usage: node bench/run.js [options]
  --quick              fewer messages, 1 run per cell, no 10,000-client scale (< 2 min)
  --smoke              tiny counts, 1 run, native and net only, no 10,000-client scale;
                       exits 1 if any cell failed (used by __test__/bench.test.js)
  --runs N             runs per cell (default 3; --quick and --smoke: 1)
  --only a,b           scenarios: ${SCENARIOS.join(', ')}
  --libs x,y           libraries: ${LIBS.join(', ')}, kernel (the ceiling row of 'large')
  --placement P        same: server and clients on CPU 0; cross: server on CPU 0, clients on
                       CPU 1; none: no pinning. Default: cross, and both same and cross for rtt
                       and request
  --out FILE           where to write the JSON (default bench/results/latest.json;
                       --smoke: bench/results/smoke.json)`;

function fail(message) {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { mode: 'full', runs: null, only: null, libs: null, placement: null, out: null };
  const list = (value, known, what) => {
    const items = String(value || '').split(',').filter(Boolean);
    for (const item of items) if (!known.includes(item)) fail(`unknown ${what}: ${item}`);
    if (items.length === 0) fail(`--${what === 'scenario' ? 'only' : 'libs'} needs a value`);
    return items;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    switch (flag) {
      case '--quick':
      case '--smoke':
        if (opts.mode !== 'full') fail('--quick and --smoke exclude each other');
        opts.mode = flag.slice(2);
        break;
      case '--runs': {
        const runs = Number(value());
        if (!Number.isInteger(runs) || runs < 1) fail('--runs needs a positive integer');
        opts.runs = runs;
        break;
      }
      case '--only':
        opts.only = list(value(), SCENARIOS, 'scenario');
        break;
      case '--libs':
        opts.libs = list(value(), [...LIBS, 'kernel'], 'library');
        break;
      case '--placement':
        opts.placement = value();
        if (!PLACEMENTS.includes(opts.placement)) fail(`--placement must be one of ${PLACEMENTS.join(', ')}`);
        break;
      case '--out':
        opts.out = value();
        if (!opts.out) fail('--out needs a file');
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        fail(`unknown option: ${arg}`);
    }
  }
  opts.runs = opts.runs || (opts.mode === 'full' ? 3 : 1);
  if (!opts.libs && opts.mode === 'smoke') opts.libs = ['native', 'net'];
  opts.out = opts.out || path.join(RESULTS, opts.mode === 'smoke' ? 'smoke.json' : 'latest.json');
  return opts;
}

function machine() {
  let cpuModel = 'unknown';
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) cpuModel = match[1].trim();
  } catch {
    // not Linux: keep 'unknown'
  }
  return {
    nproc: os.availableParallelism ? os.availableParallelism() : os.cpus().length,
    cpuModel,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    memoryMiB: Math.round(os.totalmem() / 2 ** 20),
  };
}

/**
 * Which native-socket-ipc was measured: the commit, whether its sources had uncommitted
 * changes, and when the addon was built (it may be rebuilt between suite runs).
 */
function nativeBuild() {
  const root = path.join(__dirname, '..');
  const git = (...args) => {
    try {
      return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  const addon = fs.readdirSync(root).find((f) => f.endsWith('.node'));
  const changed = git('status', '--porcelain', '--', 'src', 'lib', 'index.js', 'Cargo.toml');
  return {
    commit: git('rev-parse', '--short', 'HEAD'),
    uncommittedChanges: changed === null ? null : changed.length > 0,
    addon: addon || null,
    addonBuilt: addon ? fs.statSync(path.join(root, addon)).mtime.toISOString() : null,
  };
}

/** One run: fresh processes, a hard timeout, everything killed at the end. Never throws. */
async function runOnce(scenario, cell, opts, prepared) {
  const run = new Run({ scenario: scenario.name, lib: cell.lib, placement: cell.placement, params: cell.params, prepared });
  const limit = opts.mode === 'smoke' ? 10000 : scenario.timeoutMs(opts.mode);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${limit / 1000} s`)), limit);
  });
  const work = Promise.resolve().then(() => scenario.orchestrate(run, cell.params));
  work.catch(() => {}); // after a timeout or a failure, its own rejection no longer matters
  const started = Date.now();
  const cpuBefore = cpuSnapshot();
  let result;
  try {
    // `counts` are side facts worth a note (e.g. connect retries), not compared metrics.
    const { counts, ...metrics } = await Promise.race([work, run.failure, timeout]);
    for (const { key } of scenario.metrics) {
      if (!Number.isFinite(metrics[key])) throw new Error(`no valid '${key}' (got ${metrics[key]})`);
    }
    result = { ok: true, metrics, counts };
  } catch (err) {
    result = { ok: false, error: err.message };
  }
  clearTimeout(timer);
  const cpus = run.affinity();
  await run.close();
  const seconds = (Date.now() - started) / 1000;
  const cpuAfter = cpuSnapshot();
  // CPUs' worth of work other programs did during the run (0.5 = half a CPU, on average).
  const foreignCpu =
    cpuBefore && cpuAfter ? Math.max(0, cpuAfter.busy - cpuBefore.busy - (cpuAfter.ours - cpuBefore.ours)) / seconds : null;
  return { ...result, seconds, cpus, foreignCpu };
}

/** The cells (variant × placement × library) of one scenario, in table order. */
function cellsOf(scenario, opts, libs) {
  const placements = opts.placement ? [opts.placement] : scenario.placements || ['cross'];
  const cells = [];
  for (const variant of scenario.variants(opts.mode)) {
    for (const placement of placements) {
      for (const lib of [...libs, ...(scenario.extraLibs || [])]) {
        if (opts.libs && !opts.libs.includes(lib)) continue;
        const adapter = LIBS.includes(lib) ? require(`./libs/${lib}`) : null;
        const params = { ...variant.params, ...(scenario.paramsFor ? scenario.paramsFor(variant.params, lib) : {}) };
        cells.push({
          scenario: scenario.name,
          variant: variant.id,
          placement,
          lib,
          params,
          note: scenario.describe ? scenario.describe(params) : '',
          unsupported: adapter && adapter.unsupported ? adapter.unsupported[scenario.name] : undefined,
          runs: [],
        });
      }
    }
  }
  return cells;
}

function progress(text) {
  process.stderr.write(`${text}\n`);
}

/** Runs every cell of the selected scenarios `opts.runs` times; fills in cell.runs. */
async function runAll(toRun, scenarios, cellsByScenario, opts) {
  const total = toRun.reduce((sum, name) => sum + cellsByScenario[name].filter((c) => !c.unsupported).length, 0) * opts.runs;
  progress(`bench: ${opts.mode} mode, ${opts.runs} run(s) per cell, ${total} runs`);
  let done = 0;
  for (const name of toRun) {
    const scenario = scenarios[name];
    const cells = cellsByScenario[name].filter((c) => !c.unsupported);
    const prepared = scenario.prepare ? await scenario.prepare({ libs: cells.map((c) => c.lib), mode: opts.mode }) : {};
    // Runs are interleaved across libraries (run 1 of each, then run 2 …), so a slow phase of a
    // shared machine does not land on one library alone.
    for (let r = 0; r < opts.runs; r++) {
      for (const cell of cells) {
        const result = await runOnce(scenario, cell, opts, prepared);
        cell.runs.push(result);
        const shown = [
          result.ok
            ? scenario.metrics.map((m) => `${formatValue(result.metrics[m.key], m)} ${m.label}`).join(', ')
            : `ERROR ${result.error}`,
          result.counts && Object.entries(result.counts).map(([count, n]) => `${n} ${count}`).join(', '),
          result.foreignCpu >= NOISY_CPU ? `other programs: ${result.foreignCpu.toFixed(1)} CPU` : '',
        ];
        const where = [name, cell.variant, cell.placement, cell.lib].filter(Boolean).join(' ');
        progress(`[${++done}/${total}] ${where} #${r + 1}: ${shown.filter(Boolean).join('; ')} (${result.seconds.toFixed(1)} s)`);
      }
    }
  }
}

/** Medians and errors of each cell, from its runs. */
function summarizeCell(cell, scenario) {
  const ok = cell.runs.filter((r) => r.ok);
  const errors = [...new Set(cell.runs.filter((r) => !r.ok).map((r) => r.error))];
  cell.summary = {};
  for (const m of scenario.metrics) if (ok.length) cell.summary[m.key] = summarize(ok.map((r) => r.metrics[m.key]));
  cell.error = ok.length === 0 && !cell.unsupported ? errors.join('; ') || 'no runs' : undefined;
  cell.partialError =
    ok.length && errors.length ? `${cell.runs.length - ok.length}/${cell.runs.length} failed: ${errors.join('; ')}` : undefined;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const buildAtStart = nativeBuild();
  const loadStart = os.loadavg();
  const selected = opts.only || SCENARIOS;
  const libs = LIBS.filter((lib) => !opts.libs || opts.libs.includes(lib));
  const scenarios = Object.fromEntries(SCENARIOS.map((name) => [name, require(`./scenarios/${name}`)]));

  // A derived scenario (loop-cost) has no runs of its own: it reads those of its source, which
  // therefore runs even when only the derived one was asked for.
  const toRun = SCENARIOS.filter(
    (name) => !scenarios[name].source && (selected.includes(name) || selected.some((s) => scenarios[s].source === name)),
  );
  const cellsByScenario = {};
  for (const name of toRun) cellsByScenario[name] = cellsOf(scenarios[name], opts, libs);
  await runAll(toRun, scenarios, cellsByScenario, opts);
  for (const name of selected) {
    const source = scenarios[name].source;
    if (source) cellsByScenario[name] = cellsByScenario[source].map((c) => ({ ...c, scenario: name }));
  }

  const shown = SCENARIOS.filter((name) => selected.includes(name));
  const rows = [];
  const jsonCells = [];
  let failedCells = 0;
  for (const name of shown) {
    const scenario = scenarios[name];
    const cells = cellsByScenario[name];
    for (const cell of cells) {
      summarizeCell(cell, scenario);
      if (cell.error) failedCells++;
      jsonCells.push({ ...cell, scenario: name, variant: cell.variant || undefined });
    }
    // Rows: per variant and placement, per metric, one row per library.
    const groups = [...new Set(cells.map((c) => `${c.variant}\0${c.placement}`))];
    for (const group of groups) {
      const inGroup = cells.filter((c) => `${c.variant}\0${c.placement}` === group);
      const native = inGroup.find((c) => c.lib === 'native');
      for (const m of scenario.metrics) for (const cell of inGroup) rows.push(row(scenario, m, cell, native));
    }
  }

  const seconds = (Date.now() - started) / 1000;
  const info = machine();
  const build = nativeBuild();
  // Someone may rebuild the addon while the suite runs; then the native rows mix two builds.
  build.rebuiltDuringRun = build.addonBuilt !== buildAtStart.addonBuilt || build.commit !== buildAtStart.commit;
  const placementText =
    opts.placement || 'cross (server CPU 0, clients CPU 1); rtt and request: same (all on CPU 0) and cross';
  const header = [
    `native-socket-ipc benchmarks — ${opts.mode} mode, ${opts.runs} run(s) per cell, placement: ${placementText}`,
    `${info.cpuModel}, nproc ${info.nproc}, Node ${info.node}, started ${new Date(started).toISOString()}, took ${seconds.toFixed(0)} s`,
    `native-socket-ipc at ${build.commit || '?'}${build.uncommittedChanges ? ' + uncommitted changes' : ''}, addon built ${build.addonBuilt || '?'}` +
      (build.rebuiltDuringRun
        ? ` — WARNING: the addon or commit changed during this run (was ${buildAtStart.commit}, built ${buildAtStart.addonBuilt})`
        : ''),
    'median and min–max over runs; native/peer = native median ÷ this row\'s median ("better" says which way wins)',
    `notes flag cells where other programs kept ≥ ${NOISY_CPU} CPU busy during a run (/proc/stat minus this suite)`,
  ];
  const table = render(
    ['scenario', 'placement', 'metric', 'better', 'library', 'median', 'min–max', 'runs', 'native/peer', 'notes'],
    rows,
  );
  console.log(`${header.join('\n')}\n\n${table}`);

  const json = {
    date: new Date(started).toISOString(),
    command: ['node', ...process.argv.slice(1).map((a) => path.relative(process.cwd(), a) || a)].join(' '),
    machine: info,
    native: build,
    mode: opts.mode,
    runsPerCell: opts.runs,
    placement: opts.placement || 'default',
    placementMeaning: {
      same: 'server and clients pinned to CPU 0 (taskset -c 0)',
      cross: 'server pinned to CPU 0, clients to CPU 1',
      none: 'no pinning',
      default: 'cross for every scenario; rtt and request also run same',
    },
    libs: opts.libs || LIBS,
    scenarios: shown,
    durationSeconds: seconds,
    loadavg: { start: loadStart, end: os.loadavg() },
    cells: jsonCells,
  };
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, `${JSON.stringify(json, null, 2)}\n`);
  progress(`bench: wrote ${path.relative(process.cwd(), opts.out)} in ${seconds.toFixed(1)} s`);
  if (opts.mode === 'smoke' && failedCells > 0) process.exitCode = 1;
}

/** One table row: a cell's summary of metric `m`, compared with the native cell of its group. */
function row(scenario, m, cell, native) {
  const label = [scenario.name, cell.variant].filter(Boolean).join(' ');
  const base = [label, cell.placement, m.label, m.better, cell.lib];
  if (cell.unsupported) return [...base, 'n/a', '', '', '', cell.unsupported];
  if (cell.error) return [...base, 'ERROR', '', `0/${cell.runs.length}`, '', clip(cell.error)];
  const s = cell.summary[m.key];
  const nativeMedian = native && native.summary[m.key] ? native.summary[m.key].median : NaN;
  const ratio = cell.lib === 'native' ? '' : formatRatio(nativeMedian, s.median, m.better, cell.lib);
  const ok = cell.runs.filter((r) => r.ok);
  const countNames = [...new Set(ok.flatMap((r) => Object.keys(r.counts || {})))];
  const counts = countNames.map((name) => `${name} ${ok.map((r) => (r.counts || {})[name]).join('/')}`);
  const foreign = Math.max(...cell.runs.map((r) => r.foreignCpu || 0));
  const notes = [
    cell.lib === 'kernel' ? 'ceiling: examples/kernel_copy.rs' : '',
    cell.note,
    ...counts,
    foreign >= NOISY_CPU ? `other programs used up to ${foreign.toFixed(1)} CPU` : '',
    cell.partialError && clip(cell.partialError),
  ];
  return [
    ...base,
    formatValue(s.median, m),
    `${formatValue(s.min, m)}–${formatValue(s.max, m)}`,
    `${s.n}/${cell.runs.length}`,
    ratio,
    notes.filter(Boolean).join('; '),
  ];
}

function clip(text, max = 110) {
  const line = String(text).replace(/\s+/g, ' ');
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
