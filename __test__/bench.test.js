'use strict';
// Smoke test of the benchmark suite: `node bench/run.js --smoke` runs every scenario (but the
// 10,000-client scale) with tiny counts, once, for native and net, in real child processes.
// It checks that the suite runs end to end and prints a row per scenario; it asserts nothing
// about speed.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const SCENARIOS = ['oneway-c2s', 'oneway-s2c', 'rtt', 'large', 'broadcast', 'scale', 'loop-cost'];

test('bench/run.js --smoke runs every scenario and prints the table', { timeout: 30000 }, async () => {
  const { code, stdout, stderr } = await new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bench', 'run.js'), '--smoke'],
      { cwd: ROOT, timeout: 28000, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? (err.killed ? 'killed (timeout)' : err.code) : 0, stdout, stderr }),
    );
  });
  assert.equal(code, 0, `bench --smoke exited with ${code}\n${stdout}\n${stderr}`);

  const rows = stdout.split('\n').map((line) => line.split('|').map((cell) => cell.trim()));
  for (const scenario of SCENARIOS) {
    for (const lib of ['native', 'net']) {
      const row = rows.find((cells) => cells[0].split(' ')[0] === scenario && cells[4] === lib);
      assert.ok(row, `no table row for ${scenario} / ${lib}\n${stdout}`);
      assert.notEqual(row[5], 'ERROR', `${scenario} / ${lib} failed: ${row.join(' | ')}`);
    }
  }
});
