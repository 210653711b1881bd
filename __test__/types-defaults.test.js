'use strict';
// The typings work with the defaults: a project whose tsconfig sets only "strict" (no "types",
// no "lib", no module settings) compiles the typed quick start and the TypeScript blocks of the
// documentation marked `<!-- docs-check: compile -->`, with TypeScript 5 and with TypeScript 6.
// The project gets the package and @types/node as a user's project would have them installed.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { markdownFiles } = require('../scripts/check-docs');

const ROOT = path.join(__dirname, '..');
const COMPILERS = [
  ['TypeScript 5', path.join(ROOT, 'node_modules', 'typescript5', 'bin', 'tsc')],
  ['TypeScript 6', path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')],
];
const MARK = '<!-- docs-check: compile -->';

/** The documentation's ```ts blocks preceded by the compile mark: { file, line, code }. */
function markedTsBlocks() {
  const blocks = [];
  for (const file of markdownFiles()) {
    const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!/^```ts\s*$/.test(lines[i])) continue;
      const previous = lines.slice(0, i).reverse().find((l) => l.trim() !== '');
      const start = i;
      const body = [];
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
      if (previous !== undefined && previous.trim() === MARK) blocks.push({ file, line: start + 1, code: body.join('\n') });
    }
  }
  return blocks;
}

/** A user's project: the package and @types/node installed, a tsconfig with only "strict". */
function project(t) {
  const base = path.join(ROOT, 'target');
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'ts-defaults-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'node_modules', '@types'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'native-socket-ipc'), 'dir');
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(dir, 'node_modules', '@types', 'node'), 'dir');
  const files = ['quick-start.ts'];
  fs.copyFileSync(path.join(__dirname, 'types', 'defaults', 'quick-start.ts'), path.join(dir, 'quick-start.ts'));
  for (const block of markedTsBlocks()) {
    // Each block is a module of its own, so blocks may declare the same names.
    const name = `${block.file.replace(/[^a-z0-9]+/gi, '_')}_${block.line}.ts`;
    fs.writeFileSync(path.join(dir, name), `// ${block.file}:${block.line}\n${block.code}\nexport {};\n`);
    files.push(name);
  }
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true }, files }, null, 2));
  return { dir, files };
}

test('the documentation marks at least one TypeScript block to compile', () => {
  assert.ok(markedTsBlocks().length >= 1, `no \`\`\`ts block is preceded by ${MARK}`);
});

for (const [name, tsc] of COMPILERS) {
  test(`${name} compiles the typed quick start and the marked documentation blocks with only "strict" set`, { timeout: 120000 }, (t) => {
    const { dir, files } = project(t);
    const version = spawnSync(process.execPath, [tsc, '--version'], { encoding: 'utf8' }).stdout.trim();
    assert.match(version, new RegExp(`^Version ${name.split(' ')[1]}\\.`), `${tsc} is ${name}`);
    const run = spawnSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', cwd: dir });
    assert.equal(run.status, 0, `${version}, files ${files.join(', ')}:\n${run.stdout}${run.stderr}`);
  });
}
