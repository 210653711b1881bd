'use strict';
// The documentation is checked like code: links and anchors resolve, JS blocks compile, and the
// blocks marked `<!-- docs-check: run -->` run (scripts/check-docs.js).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { checkDocs, checkLinks, anchorsOf, slug } = require('../scripts/check-docs');

test("headings become GitHub's anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered", () => {
  assert.equal(slug('Class: `Server`'), 'class-server');
  assert.equal(slug('`server.send(topic, message, clientId)`'), 'serversendtopic-message-clientid');
  assert.equal(slug("Running mixed fleets: `protocol: 'socket-ipc'`"), 'running-mixed-fleets-protocol-socket-ipc');
  assert.deepEqual([...anchorsOf('# A\n\n## Options\n\n### Options\n\n```\n# not a heading\n```\n<a id="x"></a>\n')], ['a', 'options', 'options-1', 'x']);
});

test('a link to a missing file or to a heading that does not exist is reported with its line', (t) => {
  // Inside the package (checkLinks takes paths relative to it), under the git-ignored target/.
  const base = path.join(__dirname, '..', 'target');
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'docs-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rel = path.relative(path.join(__dirname, '..'), dir);
  fs.writeFileSync(path.join(dir, 'a.md'), '# Title\n\nSee [b](b.md), [here](#title), [gone](#nowhere) and [web](https://example.org).\n');
  fs.writeFileSync(path.join(dir, 'c.md'), '# C\n\n[a](a.md#title) [bad](a.md#missing)\n');
  const problems = [...checkLinks(path.join(rel, 'a.md'), new Map()), ...checkLinks(path.join(rel, 'c.md'), new Map())];
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.match(problems[0], /a\.md:3: link to b\.md: .*b\.md does not exist/);
  assert.match(problems[1], /a\.md:3: link to #nowhere: .*has no heading with the anchor #nowhere/);
  assert.match(problems[2], /c\.md:3: link to a\.md#missing/);
});

test('every relative link and anchor in the Markdown files resolves, every JS block compiles, and the blocks marked to run exit 0', { timeout: 180000 }, () => {
  const { files, problems } = checkDocs();
  assert.ok(files.includes('README.md'), 'README.md is checked');
  assert.deepEqual(problems, []);
});
