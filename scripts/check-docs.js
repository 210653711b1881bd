'use strict';
// The documentation check (part of `npm test`, through __test__/docs.test.js; also runnable alone:
// `node scripts/check-docs.js`).
//
// - Every relative link in the Markdown files (README.md, the other top-level .md files, docs/,
//   examples/) points at a file that exists, and every `#anchor` at a heading (or an explicit
//   `<a id>`) of that file, with GitHub's rules for turning a heading into an anchor.
// - Every ```js block compiles (as an ES module, so top-level `await` and `import` are fine).
// - A ```js block preceded by the line `<!-- docs-check: run -->` is run, as its own file inside
//   the package (so `require('native-socket-ipc')` is this checkout), and must exit 0 within
//   the time limit. Blocks that need a server of their own start it themselves.
//
// Exits 1 and lists every problem if there is one.

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
const RUN_MARK = '<!-- docs-check: run -->';
const RUN_TIMEOUT_MS = 30000;

// `await using` (explicit resource management) parses on Node 24 and later only; blocks that
// show it are compiled where it does.
const AWAIT_USING = (() => {
  try {
    new Function('return async () => { await using x = null; }');
    return true;
  } catch {
    return false;
  }
})();

/** The Markdown files the check covers, relative to the package root. */
function markdownFiles() {
  const files = fs.readdirSync(ROOT).filter((f) => f.endsWith('.md'));
  for (const dir of ['docs', 'examples']) {
    const walk = (rel) => {
      const abs = path.join(ROOT, rel);
      if (!fs.existsSync(abs)) return;
      for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
        const child = path.join(rel, entry.name);
        if (entry.isDirectory()) walk(child);
        else if (entry.name.endsWith('.md')) files.push(child);
      }
    };
    walk(dir);
  }
  return files.sort();
}

/** The lines of `text` outside fenced code blocks, with their line numbers. */
function proseLines(text) {
  const out = [];
  let fence = null;
  text.split('\n').forEach((line, i) => {
    const m = /^\s*(```+|~~~+)/.exec(line);
    if (m) {
      if (fence === null) fence = m[1];
      else if (line.trim().startsWith(fence)) fence = null;
      return;
    }
    if (fence === null) out.push({ line, n: i + 1 });
  });
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading) {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link: its text
    .replace(/<[^>]+>/g, '') // inline HTML
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** Every anchor a file offers: its headings' slugs (numbered when repeated) and `<a id>`s. */
function anchorsOf(text) {
  const anchors = new Set();
  const seen = new Map();
  for (const { line } of proseLines(text)) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const base = slug(h[1]);
      const count = seen.get(base) || 0;
      seen.set(base, count + 1);
      anchors.add(count === 0 ? base : `${base}-${count}`);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(a[1]);
  }
  return anchors;
}

/** Problems with the relative links and anchors of one Markdown file. */
function checkLinks(file, cache) {
  const problems = [];
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const anchors = (target) => {
    if (!cache.has(target)) cache.set(target, anchorsOf(fs.readFileSync(path.join(ROOT, target), 'utf8')));
    return cache.get(target);
  };
  for (const { line, n } of proseLines(text)) {
    // Inline code spans may show link syntax as text: not links.
    const prose = line.replace(/`[^`]*`/g, '');
    for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const href = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // https:, mailto: …
      const [pathPart, anchor] = href.split('#');
      const target = pathPart === '' ? file : path.normalize(path.join(path.dirname(file), decodeURIComponent(pathPart)));
      const where = `${file}:${n}`;
      if (!fs.existsSync(path.join(ROOT, target))) {
        problems.push(`${where}: link to ${href}: ${target} does not exist`);
        continue;
      }
      if (anchor !== undefined && anchor !== '') {
        if (!target.endsWith('.md')) continue; // a line anchor in a source file (#L10): not checked
        if (!anchors(target).has(anchor)) problems.push(`${where}: link to ${href}: ${target} has no heading with the anchor #${anchor}`);
      }
    }
  }
  return problems;
}

/** The ```js blocks of a Markdown file: { code, line, run }. */
function jsBlocks(file) {
  const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(js|javascript|mjs|cjs)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    const body = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) body.push(lines[i].slice(open[1].length));
    const previous = lines.slice(0, start).reverse().find((l) => l.trim() !== '');
    blocks.push({ code: body.join('\n'), line: start + 1, run: previous !== undefined && previous.trim() === RUN_MARK, lang: open[2] });
  }
  return blocks;
}

/** Compiles (and for marked blocks runs) every ```js block; returns the problems found. */
function checkCode(file, workDir) {
  const problems = [];
  for (const block of jsBlocks(file)) {
    const where = `${file}:${block.line}`;
    const name = `${file.replace(/[^a-z0-9]+/gi, '_')}_${block.line}`;
    // CommonJS blocks run as .js (require works); the check compiles everything as a module too,
    // since blocks may use import or top-level await.
    const commonJs = /\brequire\(/.test(block.code) && !/^\s*import\s/m.test(block.code);
    const script = path.join(workDir, `${name}.${commonJs && !/\bawait\b/.test(topLevel(block.code)) ? 'cjs' : 'mjs'}`);
    let source = block.code;
    if (script.endsWith('.mjs') && commonJs) source = `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n${source}`;
    fs.writeFileSync(script, source);
    if (/\bawait using\b/.test(block.code) && !AWAIT_USING) continue; // this Node cannot parse it
    const check = spawnSync(process.execPath, ['--check', script], { encoding: 'utf8' });
    if (check.status !== 0) {
      problems.push(`${where}: the code block does not compile:\n${indent(check.stderr.trim())}`);
      continue;
    }
    if (!block.run) continue;
    const run = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: RUN_TIMEOUT_MS, cwd: workDir });
    if (run.error || run.status !== 0) {
      const why = run.error ? run.error.message : `exit ${run.status}${run.signal ? ` (${run.signal})` : ''}`;
      problems.push(`${where}: the code block marked to run failed: ${why}\n${indent((run.stderr || '').trim().split('\n').slice(-8).join('\n'))}`);
    }
  }
  return problems;
}

/** The code outside function bodies, roughly: for telling whether `await` is top-level. */
function topLevel(code) {
  let depth = 0;
  let out = '';
  for (const ch of code) {
    if (ch === '{') depth++;
    else if (ch === '}') depth--;
    else if (depth === 0) out += ch;
  }
  return out;
}

function indent(text) {
  return text.split('\n').map((l) => `    ${l}`).join('\n');
}

/** Runs every check; returns { files, problems }. */
function checkDocs() {
  // Inside the package, so a block's require('native-socket-ipc') resolves to this checkout;
  // under target/ (ignored by git).
  const workDir = path.join(ROOT, 'target', 'docs-check');
  fs.rmSync(workDir, { recursive: true, force: true });
  fs.mkdirSync(workDir, { recursive: true });
  const files = markdownFiles();
  const cache = new Map();
  const problems = [];
  for (const file of files) {
    problems.push(...checkLinks(file, cache));
    problems.push(...checkCode(file, workDir));
  }
  fs.rmSync(workDir, { recursive: true, force: true });
  return { files, problems };
}

module.exports = { checkDocs, checkLinks, checkCode, markdownFiles, anchorsOf, slug, jsBlocks };

if (require.main === module) {
  const { files, problems } = checkDocs();
  if (problems.length > 0) {
    console.error(`${problems.length} problem(s) in the documentation:\n${problems.join('\n')}`);
    process.exit(1);
  }
  console.log(`docs: ${files.length} Markdown files, every relative link and anchor resolves and every JS block compiles`);
}
