'use strict';
// lib/kinds.js is the JS side's only definition of the numbers it shares with the Rust core.
// These tests read the Rust sources and PROTOCOL.md as text and check that both languages (and
// the document) agree, both ways: a kind or layout constant on one side only fails, naming it.
// No native addon is needed.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const kinds = require('../lib/kinds');

const root = path.join(__dirname, '..');
const read = (file) => fs.readFileSync(path.join(root, file), 'utf8');
const show = (value) => (typeof value === 'number' ? `0x${value.toString(16)}` : JSON.stringify(value));

// ===== Reading Rust =====
// Enough of Rust for constant items as rustfmt lays them out: an item starts at its scope's
// indentation, and a module's items are indented one level (2 spaces) more than the module.

/** The items of `mod` in `file` (the file's top level when `mod` is null), comments removed. */
function scopeOf(file, mod = null) {
  let text = read(file).replace(/\/\/.*$/gm, '');
  if (mod !== null) {
    const found = text.match(new RegExp(`^pub mod ${mod} \\{\\n([\\s\\S]*?)^\\}`, 'm'));
    assert.ok(found, `${file} has no \`pub mod ${mod}\``);
    text = found[1].replace(/^ {2}/gm, '');
  }
  const where = mod === null ? file : `${file}, mod ${mod}`;
  const items = new Map();
  for (const [, name, expr] of text.matchAll(/^(?:pub(?:\([\w:]+\))? )?const (\w+): [^=]+ = ([^;]+);$/gm)) {
    items.set(name, { expr, scope: null });
  }
  // `pub use crate::a::b::{X, Y};` or `pub use crate::a::b::X;`
  for (const [, from, list, one] of text.matchAll(/^pub use crate::((?:\w+::)*\w+)::(?:\{([^}]*)\}|(\w+));$/gm)) {
    for (const name of (list ?? one).split(',').map((n) => n.trim()).filter(Boolean)) {
      items.set(name, { expr: name, scope: scopeAt(from) });
    }
  }
  const scope = { where, items, evaluate: (expr) => evaluate(expr, scope) };
  return scope;
}

/** `codec::kind` -> src/codec.rs, mod kind; `socket_ipc` -> src/socket_ipc.rs. */
function scopeAt(rustPath) {
  const [file, mod = null, ...deeper] = rustPath.replace(/^crate::/, '').split('::');
  assert.equal(deeper.length, 0, `nested module ${rustPath} is not supported here`);
  return scopeOf(`src/${file}.rs`, mod);
}

/** The value of an item: a number, or a string for a byte string such as `b"\0\0"`. */
function valueOf(scope, name) {
  const item = scope.items.get(name);
  assert.ok(item, `${scope.where} defines no ${name}`);
  return item.scope === null ? scope.evaluate(item.expr) : valueOf(item.scope, item.expr);
}

const BYTE_ESCAPES = { 0: '\0', n: '\n', r: '\r', t: '\t', '\\': '\\', '"': '"' };

/** Evaluates a constant expression: integers, `uN::MAX`, other constants, + - * << and `as`. */
function evaluate(expr, scope) {
  if (/^[a-z_]\w*$/i.test(expr)) return valueOf(scope, expr);
  const bytes = expr.match(/^b"(.*)"$/);
  if (bytes) return bytes[1].replace(/\\(x[\da-f]{2}|.)/gi, (_, escape) => BYTE_ESCAPES[escape] ?? String.fromCharCode(parseInt(escape.slice(1), 16)));
  const tokens = expr.match(/0x[\da-f_]+|\d[\d_]*(?:[ui](?:8|16|32|64|size))?|[a-z_]\w*(?:::\w+)*|<<|\S/gi);
  let at = 0;
  const shift = () => {
    let v = sum();
    while (tokens[at] === '<<') at++, (v <<= sum());
    return v;
  };
  const sum = () => {
    let v = product();
    while (tokens[at] === '+' || tokens[at] === '-') v = tokens[at++] === '+' ? v + product() : v - product();
    return v;
  };
  const product = () => {
    let v = cast();
    while (tokens[at] === '*') at++, (v *= cast());
    return v;
  };
  const cast = () => {
    const v = atom();
    while (tokens[at] === 'as') at += 2;
    return v;
  };
  const atom = () => {
    const token = tokens[at++];
    if (token === '(') {
      const v = shift();
      assert.equal(tokens[at++], ')', `${scope.where}: unbalanced ( in ${expr}`);
      return v;
    }
    if (/^\d/.test(token)) return BigInt(token.replace(/_|[ui](8|16|32|64|size)$/g, ''));
    const max = token.match(/^u(8|16|32|64)::MAX$/);
    if (max) return (1n << BigInt(max[1])) - 1n;
    const [name, ...from] = token.replace(/^crate::/, '').split('::').reverse();
    const value = from.length === 0 ? valueOf(scope, name) : valueOf(scopeAt(from.reverse().join('::')), name);
    assert.equal(typeof value, 'number', `${scope.where}: ${token} in ${expr} is not a number`);
    return BigInt(value);
  };
  const value = shift();
  assert.equal(at, tokens.length, `${scope.where}: cannot evaluate ${expr}`);
  return Number(value);
}

/** Every item of a scope with its value, re-exports included. */
function valuesOf(scope) {
  return new Map([...scope.items.keys()].map((name) => [name, valueOf(scope, name)]));
}

// ===== The two sides =====

const wireKinds = valuesOf(scopeOf('src/codec.rs', 'kind'));
const recordKinds = valuesOf(scopeOf('src/events.rs', 'kind'));
const replyStatuses = valuesOf(scopeOf('src/codec.rs', 'reply_status'));
// Lifecycle records are 0x80 and up (src/events.rs, mod kind); JS has them in EVENT.
const LIFECYCLE = 0x80;

// Rust names whose JS constant is not `KIND_` + the Rust name.
const JS_NAME = { MESSAGE_JSON: 'KIND_JSON', MESSAGE_BINARY: 'KIND_BINARY' };
const RUST_NAME = Object.fromEntries(Object.entries(JS_NAME).map(([rust, js]) => [js, rust]));
const jsNameOf = (rustName) => JS_NAME[rustName] ?? `KIND_${rustName}`;
const rustNameOf = (jsName) => RUST_NAME[jsName] ?? jsName.slice('KIND_'.length);

// Layout constants: JS name, Rust file, and the Rust expression (in that file's top level) that
// must have the same value.
const LAYOUT = [
  ['LEN_PREFIX', 'src/codec.rs', 'LEN_PREFIX'],
  // The body starts after length and kind; Rust writes it as `LEN_PREFIX + 1`.
  ['FRAME_START', 'src/codec.rs', 'LEN_PREFIX + 1'],
  ['REQUEST_ID', 'src/codec.rs', 'REQUEST_ID'],
  ['MAX_TOPIC_BYTES', 'src/codec.rs', 'MAX_TOPIC_LEN'],
  ['TEXT_DELIMITER', 'src/socket_ipc.rs', 'DELIMITER'],
  ['BROADCAST', 'src/server.rs', 'BROADCAST'],
  ['BROADCAST_UP_TO', 'src/server.rs', 'BROADCAST_UP_TO'],
  ['RECORD_HEADER', 'src/events.rs', 'RECORD_HEADER'],
  ['GROUP_ENTRY', 'src/events.rs', 'GROUP_ENTRY'],
  ['MORE', 'src/binding.rs', 'MORE'],
];

test('the Rust sources were read: constants, and re-exports from src/codec.rs and src/socket_ipc.rs', () => {
  // Guards the tests below against passing on nothing if the Rust layout changes.
  assert.ok(wireKinds.has('HELLO'), 'src/codec.rs, mod kind: HELLO not read');
  assert.ok(recordKinds.has('LISTENING'), 'src/events.rs, mod kind: LISTENING not read');
  assert.equal(recordKinds.get('MESSAGE_JSON'), wireKinds.get('MESSAGE_JSON'), 'src/events.rs: re-export of codec::kind::MESSAGE_JSON not read');
  assert.ok(recordKinds.has('TEXT'), 'src/events.rs: re-export of socket_ipc::TEXT not read');
  assert.ok(replyStatuses.has('HANDLER_FAILED'), 'src/codec.rs, mod reply_status: HANDLER_FAILED not read');
});

test('every wire frame kind in src/codec.rs has the same value in lib/kinds.js', () => {
  for (const [name, value] of wireKinds) {
    const jsName = jsNameOf(name);
    assert.ok(jsName in kinds, `src/codec.rs kind::${name} (${show(value)}) is missing from lib/kinds.js (as ${jsName})`);
    assert.equal(kinds[jsName], value, `kind ${name}: src/codec.rs has ${show(value)}, lib/kinds.js ${jsName} has ${show(kinds[jsName])}`);
  }
});

test('every record kind in src/events.rs has the same value in lib/kinds.js (KIND_* below 0x80, EVENT from 0x80)', () => {
  for (const [name, value] of recordKinds) {
    const jsName = value < LIFECYCLE ? jsNameOf(name) : `EVENT.${name}`;
    const jsValue = value < LIFECYCLE ? kinds[jsName] : kinds.EVENT[name];
    assert.ok(jsValue !== undefined, `src/events.rs kind::${name} (${show(value)}) is missing from lib/kinds.js (as ${jsName})`);
    assert.equal(jsValue, value, `record kind ${name}: src/events.rs has ${show(value)}, lib/kinds.js ${jsName} has ${show(jsValue)}`);
  }
});

test('every KIND_* in lib/kinds.js is a wire kind in src/codec.rs or a record kind in src/events.rs', () => {
  for (const jsName of Object.keys(kinds).filter((name) => name.startsWith('KIND_'))) {
    const name = rustNameOf(jsName);
    const rust = wireKinds.get(name) ?? recordKinds.get(name);
    assert.ok(rust !== undefined, `lib/kinds.js ${jsName} (${show(kinds[jsName])}) is neither src/codec.rs kind::${name} nor src/events.rs kind::${name}`);
    assert.ok(rust < LIFECYCLE, `lib/kinds.js ${jsName} is a lifecycle record in src/events.rs: it belongs in EVENT`);
    assert.equal(kinds[jsName], rust, `lib/kinds.js ${jsName} is ${show(kinds[jsName])}, the Rust ${name} ${show(rust)}`);
  }
});

test('every EVENT in lib/kinds.js is a lifecycle record kind (0x80 and up) in src/events.rs', () => {
  for (const [name, value] of Object.entries(kinds.EVENT)) {
    assert.ok(recordKinds.has(name), `lib/kinds.js EVENT.${name} (${show(value)}) is not in src/events.rs, mod kind`);
    assert.ok(recordKinds.get(name) >= LIFECYCLE, `src/events.rs kind::${name} is below 0x80: a data record, not an EVENT`);
    assert.equal(value, recordKinds.get(name), `EVENT.${name} is ${show(value)}, src/events.rs has ${show(recordKinds.get(name))}`);
  }
});

test('REPLY_STATUS in lib/kinds.js has exactly the statuses of src/codec.rs, mod reply_status', () => {
  for (const [name, value] of replyStatuses) {
    assert.ok(name in kinds.REPLY_STATUS, `src/codec.rs reply_status::${name} (${value}) is missing from lib/kinds.js REPLY_STATUS`);
    assert.equal(kinds.REPLY_STATUS[name], value, `REPLY_STATUS.${name}: src/codec.rs has ${value}, lib/kinds.js ${kinds.REPLY_STATUS[name]}`);
  }
  for (const name of Object.keys(kinds.REPLY_STATUS)) {
    assert.ok(replyStatuses.has(name), `lib/kinds.js REPLY_STATUS.${name} is not in src/codec.rs, mod reply_status`);
  }
});

test('every layout constant in lib/kinds.js has the value of its Rust counterpart', () => {
  for (const [jsName, file, expr] of LAYOUT) {
    const rust = scopeOf(file).evaluate(expr);
    assert.ok(jsName in kinds, `lib/kinds.js has no ${jsName} (${file}: ${expr} = ${show(rust)})`);
    assert.equal(kinds[jsName], rust, `${jsName}: ${file} has ${expr} = ${show(rust)}, lib/kinds.js ${show(kinds[jsName])}`);
  }
});

test('lib/kinds.js exports nothing that is not checked against Rust here', () => {
  const layout = new Set(LAYOUT.map(([jsName]) => jsName));
  for (const name of Object.keys(kinds)) {
    const checked = name.startsWith('KIND_') || name === 'EVENT' || name === 'REPLY_STATUS' || layout.has(name);
    assert.ok(checked, `lib/kinds.js exports ${name}, which no Rust constant is checked against: add it to LAYOUT in this test`);
  }
});

test("PROTOCOL.md's frame kind table lists every wire frame kind of src/codec.rs with the same number, and no other", () => {
  const lines = read('PROTOCOL.md').split('\n');
  const head = lines.findIndex((line) => /^\| kind \| name \|/.test(line));
  assert.ok(head >= 0, 'PROTOCOL.md has no "| kind | name |" table');
  const documented = new Map();
  for (let i = head + 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const [, kind, name] = lines[i].split(/(?<!\\)\|/).map((cell) => cell.trim());
    if (name === 'reserved') continue;
    const number = kind.match(/^`0x([\da-f]{2})`$/i);
    assert.ok(number && /^[A-Z_]+$/.test(name), `PROTOCOL.md frame kind row not understood: ${lines[i]}`);
    documented.set(name, parseInt(number[1], 16));
  }
  for (const [name, value] of wireKinds) {
    assert.ok(documented.has(name), `src/codec.rs kind::${name} (${show(value)}) is missing from PROTOCOL.md's frame kind table`);
    assert.equal(documented.get(name), value, `${name}: src/codec.rs has ${show(value)}, PROTOCOL.md ${show(documented.get(name))}`);
  }
  for (const [name, value] of documented) {
    assert.ok(wireKinds.has(name), `PROTOCOL.md lists ${name} (${show(value)}), which src/codec.rs, mod kind does not define`);
  }
});

test('no lib/ file but lib/kinds.js defines a kind or layout constant of its own', () => {
  const names = [
    ...Object.keys(kinds),
    ...Object.keys(kinds.EVENT),
    ...Object.keys(kinds.REPLY_STATUS),
  ];
  const lib = path.join(root, 'lib');
  for (const file of fs.readdirSync(lib).filter((f) => f.endsWith('.js') && f !== 'kinds.js')) {
    const text = fs.readFileSync(path.join(lib, file), 'utf8');
    for (const name of names) {
      const defined = new RegExp(`\\b(?:const|let|var)\\s+${name}\\s*=|^\\s*${name}\\s*:\\s*(?:0x[\\da-fA-F]+|\\d)`, 'm');
      assert.ok(!defined.test(text), `lib/${file} defines ${name}; import it from lib/kinds.js instead`);
    }
  }
});
