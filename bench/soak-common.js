'use strict';
// What the soak's processes share (bench/soak.js, soak-server.js, soak-client.js): a seeded PRNG,
// sets of sequence numbers kept as ranges, the payloads (each names its sender and sequence
// number and can be checked on arrival), and the logs the children write.

const fs = require('node:fs');

/** mulberry32: a small seeded PRNG, so a run's schedule and payloads can be replayed by --seed. */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (min, max) => min + Math.floor(next() * (max - min + 1)); // inclusive
  return next;
}

/** A number for a string, to derive each child's seed from the run's seed and its name. */
function hash(text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * A set of positive integers as sorted disjoint ranges [a, b]. Sequence numbers arrive almost
 * always in order, so this stays a handful of ranges however many numbers it holds.
 */
class Ranges {
  constructor(list = []) {
    this.list = []; // [[a, b], ...] sorted, disjoint, not adjacent
    for (const [a, b] of list) this.add(a, b);
  }

  /** Adds [a, b]; returns how many of those numbers were already in the set. */
  add(a, b = a) {
    const list = this.list;
    const last = list[list.length - 1];
    if (last === undefined || a > last[1] + 1) {
      list.push([a, b]); // the usual case: past the end
      return 0;
    }
    if (a === last[1] + 1) {
      last[1] = Math.max(last[1], b);
      return 0;
    }
    // Somewhere inside: find the first range that ends at or after a - 1.
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid][1] < a - 1) lo = mid + 1;
      else hi = mid;
    }
    let overlap = 0;
    let start = a;
    let end = b;
    let j = lo;
    while (j < list.length && list[j][0] <= b + 1) {
      const [x, y] = list[j];
      overlap += Math.max(0, Math.min(y, b) - Math.max(x, a) + 1);
      start = Math.min(start, x);
      end = Math.max(end, y);
      j++;
    }
    list.splice(lo, j - lo, [start, end]);
    return overlap;
  }

  has(n) {
    let lo = 0;
    let hi = this.list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b] = this.list[mid];
      if (n < a) hi = mid - 1;
      else if (n > b) lo = mid + 1;
      else return true;
    }
    return false;
  }

  get size() {
    let n = 0;
    for (const [a, b] of this.list) n += b - a + 1;
    return n;
  }

  /** How many numbers this set shares with `other`. */
  overlap(other) {
    let n = 0;
    let i = 0;
    let j = 0;
    const A = this.list;
    const B = other.list;
    while (i < A.length && j < B.length) {
      const lo = Math.max(A[i][0], B[j][0]);
      const hi = Math.min(A[i][1], B[j][1]);
      if (lo <= hi) n += hi - lo + 1;
      if (A[i][1] < B[j][1]) i++;
      else j++;
    }
    return n;
  }

  /** The numbers of [1, n] missing from this set, as ranges. */
  missingUpTo(n) {
    const gaps = [];
    let next = 1;
    for (const [a, b] of this.list) {
      if (a > n) break;
      if (a > next) gaps.push([next, a - 1]);
      next = Math.max(next, b + 1);
    }
    if (next <= n) gaps.push([next, n]);
    return new Ranges(gaps);
  }

  /** This set without the numbers in `other`. */
  minus(other) {
    const out = [];
    let j = 0;
    const B = other.list;
    for (let [a, b] of this.list) {
      while (j < B.length && B[j][1] < a) j++;
      let k = j;
      while (a <= b) {
        if (k >= B.length || B[k][0] > b) {
          out.push([a, b]);
          break;
        }
        if (B[k][0] > a) out.push([a, B[k][0] - 1]);
        a = Math.max(a, B[k][1] + 1);
        k++;
      }
    }
    return new Ranges(out);
  }

  /** "1-5,9,12-14", at most `max` ranges. */
  toString(max = 8) {
    const shown = this.list.slice(0, max).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
    if (this.list.length > max) shown.push(`… (${this.list.length - max} more ranges)`);
    return shown.join(',');
  }
}

/**
 * What one process received from one sender: the sequence numbers seen, and how often one came
 * twice (`dups`) or came after a higher one without having been seen before (`order`).
 */
class Receipts {
  constructor() {
    this.seen = new Ranges();
    this.last = 0;
    this.dups = 0;
    this.order = 0;
  }

  /** Returns 'ok', 'dup' or 'order'. */
  add(seq) {
    const already = this.seen.add(seq);
    if (already > 0) {
      this.dups++;
      return 'dup';
    }
    if (seq < this.last) {
      this.order++;
      return 'order';
    }
    this.last = seq;
    return 'ok';
  }
}

// ----- payloads -----
// JSON: { c: sender, s: seq, l: length of p, p: one character repeated } (sender is a client tag,
// or 'srv:cid' for the server's sends). Bytes: an ASCII head "sender:seq:length|", then bytes
// that follow from seq, checked at a few places on arrival.

const CHARS = 'abcdefghijklmnopqrstuvwxyz';

function jsonPayload(sender, seq, length, extra) {
  return { c: sender, s: seq, l: length, p: CHARS[seq % 26].repeat(length), ...extra };
}

/** true if a JSON payload arrived as it was made. */
function jsonIntact(m) {
  return typeof m.p === 'string' && m.p.length === m.l && (m.l === 0 || (m.p[0] === CHARS[m.s % 26] && m.p[m.l - 1] === CHARS[m.s % 26]));
}

function bytesPayload(sender, seq, length) {
  const head = Buffer.from(`${sender}:${seq}:${length}|`);
  const buf = Buffer.allocUnsafe(head.length + length);
  head.copy(buf);
  for (let i = 0; i < length; i++) buf[head.length + i] = (seq * 7 + i) & 0xff;
  return buf;
}

/** { sender, seq, intact } of a bytes payload, or null if it has no head. */
function readBytes(buf) {
  const bar = buf.indexOf(0x7c); // '|'
  if (bar < 0 || bar > 200) return null;
  // from the right: the sender may hold ':' itself ('inc:cid' for the server's sends)
  const fields = buf.toString('latin1', 0, bar).split(':');
  const length = Number(fields.pop());
  const seq = Number(fields.pop());
  const sender = fields.join(':');
  const body = bar + 1;
  let intact = buf.length - body === length;
  // every 4096th byte and the last: enough to notice a shifted or mixed-up frame
  for (let i = 0; intact && i < length; i += 4096) intact = buf[body + i] === ((seq * 7 + i) & 0xff);
  if (intact && length > 0) intact = buf[body + length - 1] === ((seq * 7 + length - 1) & 0xff);
  return { sender, seq, intact };
}

/** A payload size: mostly small, some medium, rarely large (up to `maxLarge`). */
function pickSize(random, bytes, maxLarge) {
  const r = random();
  if (bytes) {
    if (r < 0.7) return random.int(0, 4096);
    if (r < 0.95) return random.int(4096, 65536);
    return random.int(65536, maxLarge);
  }
  if (r < 0.7) return random.int(0, 200);
  if (r < 0.955) return random.int(200, 4096);
  if (r < 0.995) return random.int(4096, 65536);
  return random.int(65536, maxLarge);
}

// ----- logs -----

/**
 * An append-only log file. write() is a write(2) before it returns, so what a process logged is
 * in the file even if it is SIGKILLed right after (the kernel keeps it).
 */
class Log {
  constructor(file) {
    this.fd = fs.openSync(file, 'a');
  }

  write(line) {
    fs.writeSync(this.fd, `${line}\n`);
  }
}

/** Calls fn(fields) for each line of a log file, reading it in chunks (logs can be large). */
function eachLine(file, fn) {
  const fd = fs.openSync(file, 'r');
  const chunk = Buffer.allocUnsafe(1 << 20);
  let rest = '';
  try {
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      const lines = (rest + chunk.toString('utf8', 0, n)).split('\n');
      rest = lines.pop();
      for (const line of lines) if (line) fn(line.split(' '));
    }
    // A process killed mid-write can leave a partial last line: it is not a record.
  } finally {
    fs.closeSync(fd);
  }
}

/** VmRSS of a process in bytes, or null if it is gone. */
function rssOf(pid) {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Adds one to counts[key]. */
function bump(counts, key, by = 1) {
  counts[key] = (counts[key] || 0) + by;
}

module.exports = {
  prng,
  hash,
  Ranges,
  Receipts,
  jsonPayload,
  jsonIntact,
  bytesPayload,
  readBytes,
  pickSize,
  Log,
  eachLine,
  rssOf,
  bump,
};
