'use strict';
// The package entry points through package.json's exports map: `import` gets index.mjs, which
// re-exports the CommonJS entry's own objects; `require` gets index.js; only '.' and
// './package.json' are exported, so deep imports of internals are refused.
//
// Each check runs in a child process that loads the package by its name, 'native-socket-ipc'
// (Node resolves a package's own name from inside it through the exports map), and does a real
// round trip over a Unix socket: __test__/fixtures/esm-import.mjs and esm-require.cjs. The same
// fixtures run against the installed tarball in package.test.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { pathToFileURL } = require('node:url');
const { socketPath } = require('./helpers');

const run = promisify(execFile);
const root = path.join(__dirname, '..');
const fixture = (name) => path.join(__dirname, 'fixtures', name);

/** Runs a fixture under this Node with a fresh socket path; resolves with its JSON report. */
async function report(t, name) {
  try {
    const { stdout } = await run(process.execPath, [fixture(name), socketPath(t)], { timeout: 30000, killSignal: 'SIGKILL' });
    const result = JSON.parse(stdout.trim().split('\n').pop());
    assert.equal(result.node, process.version, 'the fixture ran on the same Node as the test');
    return result;
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    throw new Error(`${name} failed (${err.killed ? 'killed after 30 s' : `exit code ${err.code}`}):\n${err.stderr || err.message}`);
  }
}

test("import { Server, Client } from 'native-socket-ipc' in an ES module resolves to index.mjs and does a real round trip", async (t) => {
  const r = await report(t, 'esm-import.mjs');
  assert.deepEqual(r.types, ['function', 'function', 'function'], 'Server, Client and Peer are named exports');
  if (r.resolvedImport !== null) assert.equal(r.resolvedImport, pathToFileURL(path.join(root, 'index.mjs')).href);
  assert.deepEqual(r.reply, { echo: { n: 1 }, clientId: 1 });
});

test("require('native-socket-ipc') in a CommonJS module resolves to index.js and does a real round trip", async (t) => {
  const r = await report(t, 'esm-require.cjs');
  assert.deepEqual(r.types, ['function', 'function', 'function']);
  assert.equal(r.resolvedRequire, path.join(root, 'index.js'));
  assert.deepEqual(r.reply, { echo: { n: 1 }, clientId: 1 });
});

test("ESM and CommonJS get the same class objects, and the default export is the CommonJS exports object", async (t) => {
  const [esm, cjs] = await Promise.all([report(t, 'esm-import.mjs'), report(t, 'esm-require.cjs')]);
  // imported first, then required from the same ES module
  assert.equal(esm.sameClasses, true, 'import { Server } === require(...).Server (and Client, Peer)');
  assert.equal(esm.defaultIsCjsExports, true, 'import pkg from ... gives module.exports itself');
  assert.equal(esm.defaultServer, true, 'pkg.Server === the named Server export');
  // required first, then imported from the same CommonJS module
  assert.equal(cjs.sameClasses, true, "(await import(...)).Server === require(...).Server (and Client, Peer)");
  assert.equal(cjs.defaultIsCjsExports, true);
});

test('every export of the CommonJS entry is also a named export of the ES module entry', async (t) => {
  const r = await report(t, 'esm-import.mjs');
  assert.deepEqual(r.namedExports, r.cjsExports, 'index.mjs names exactly what index.js exports; update index.mjs when index.js gains an export');
  assert.deepEqual(r.cjsExports, ['Client', 'Peer', 'Server', 'localEndpoint']);
});

test("'native-socket-ipc/package.json' is exported to both require and import", async (t) => {
  const [esm, cjs] = await Promise.all([report(t, 'esm-import.mjs'), report(t, 'esm-require.cjs')]);
  assert.equal(esm.packageName, 'native-socket-ipc');
  assert.equal(cjs.packageName, 'native-socket-ipc');
});

test("deep imports of internals ('native-socket-ipc/lib/server.js') are refused with ERR_PACKAGE_PATH_NOT_EXPORTED", async (t) => {
  const [esm, cjs] = await Promise.all([report(t, 'esm-import.mjs'), report(t, 'esm-require.cjs')]);
  assert.equal(esm.deepImport, 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'import()');
  assert.equal(cjs.deepRequire, 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'require()');
});
