'use strict';
// Raw flooders: plain sockets that speak the wire protocol (PROTOCOL.md) by hand, so they can
// do what the library's Client never would: pipeline requests as fast as the socket takes
// them, never read the replies, or send bytes that are not the protocol at all.
// Spec: { socketPath, mode, connections, payloadBytes, seed }. Modes:
//   reader     REQUEST_JSON 'echo' frames, reads and counts the replies
//   nonreader  the same, but stops reading after the server's hello (the socket is paused): the
//              server's replies pile up until it drops the connection as a slow client; then it
//              reconnects and goes on
//   messages   MESSAGE_JSON frames (nothing comes back)
//   barrage    each connection, at each (re)connect, picks one of the above or 'garbage'
//              (seeded-random bytes) or 'corrupt' (requests with one random byte changed per
//              batch), with a random payload size
// Every connection writes until write() returns false, then waits for 'drain'.
//
// Commands: 'start'; 'stop' -> ends every connection, replies with the counts and exits.

const net = require('node:net');
const { spec, onCommand, reply, replyAndExit, bump } = require('./child');

const HELLO = Buffer.from('00000008014e534950430100', 'hex'); // len 8 | HELLO | 'NSIPC' | v1 | flags 0
const SERVER_HELLO_BYTES = 12;
const KIND = { MESSAGE_JSON: 0x10, REQUEST_JSON: 0x20, REPLY_JSON: 0x22, REPLY_ERROR: 0x24 };
const TOPIC = 'echo';
// One write() carries this much: enough that this process's JS is never what limits the flood.
const BATCH_BYTES = 256 * 1024;
// After this many writes in one turn, yield, so the runner's 'stop' is not held up.
const WRITES_PER_TURN = 16;
// Barrage connections, and any whose connect failed, wait this long before connecting again:
// a flood of data, not of connects.
const RECONNECT_MS = 10;
const BARRAGE_SIZES = [10, 100, 1000, 8192];
const BARRAGE_KINDS = ['reader', 'nonreader', 'messages', 'garbage', 'corrupt'];
const RANDOM_POOL_BYTES = 1024 * 1024;
const STOP_FLUSH_MS = 300; // see 'stop'

const stats = { sent: 0, replies: 0, replyErrors: 0, garbageBytes: 0, connects: 0, drops: 0, helloFailed: 0, errors: {}, behaviours: {} };
const sockets = new Set();
let running = false;

/** mulberry32: small and seeded, so a barrage makes the same choices and garbage every run (their order depends on timing). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(spec.seed || 1);
const randomInt = (n) => Math.floor(random() * n);
let randomPool = null; // garbage is cut from this, made once

/** JSON text of exactly `bytes` bytes (at least 10): {"pad":"xxx…"}. */
function jsonOfSize(bytes) {
  return `{"pad":"${'x'.repeat(Math.max(0, bytes - 10))}"}`;
}

/** One REQUEST_JSON frame with request id 0 (the id is at byte 5), or one MESSAGE_JSON frame. */
function frameTemplate(kind, payloadBytes) {
  const topic = Buffer.from(TOPIC);
  const payload = Buffer.from(jsonOfSize(payloadBytes));
  const idBytes = kind === KIND.REQUEST_JSON ? 4 : 0;
  const frame = Buffer.alloc(5 + idBytes + 2 + topic.length + payload.length);
  frame.writeUInt32BE(frame.length - 4, 0);
  frame[4] = kind;
  frame.writeUInt16BE(topic.length, 5 + idBytes);
  topic.copy(frame, 7 + idBytes);
  payload.copy(frame, 7 + idBytes + topic.length);
  return frame;
}

/** A source of write() batches for one behaviour: next() -> { buf, frames, garbage }. */
function source(kind, payloadBytes) {
  if (kind === 'garbage') {
    if (randomPool === null) {
      randomPool = Buffer.alloc(RANDOM_POOL_BYTES);
      for (let i = 0; i < RANDOM_POOL_BYTES; i++) randomPool[i] = randomInt(256);
    }
    return {
      next: () => {
        const size = 1 + randomInt(64 * 1024);
        const start = randomInt(RANDOM_POOL_BYTES - size);
        return { buf: randomPool.subarray(start, start + size), frames: 0, garbage: size };
      },
    };
  }
  const isRequest = kind !== 'messages';
  const template = frameTemplate(isRequest ? KIND.REQUEST_JSON : KIND.MESSAGE_JSON, payloadBytes);
  const count = Math.max(1, Math.floor(BATCH_BYTES / template.length));
  let id = 0;
  return {
    next: () => {
      const buf = Buffer.allocUnsafe(template.length * count).fill(template);
      if (isRequest) {
        // Ids only need to be unique among this connection's outstanding requests.
        for (let i = 0; i < count; i++) buf.writeUInt32BE((id = (id + 1) >>> 0), i * template.length + 5);
      }
      if (kind === 'corrupt') buf[randomInt(buf.length)] = randomInt(256);
      return { buf, frames: count, garbage: 0 };
    },
  };
}

/** Counts the replies in a byte stream without keeping it: only frame headers are looked at. */
class FrameCounter {
  constructor() {
    this.head = Buffer.alloc(5);
    this.headBytes = 0;
    this.bodyLeft = 0;
    this.kind = 0;
  }

  feed(chunk) {
    let i = 0;
    while (i < chunk.length) {
      if (this.headBytes < 5) {
        const n = Math.min(5 - this.headBytes, chunk.length - i);
        chunk.copy(this.head, this.headBytes, i, i + n);
        this.headBytes += n;
        i += n;
        if (this.headBytes < 5) return;
        this.kind = this.head[4];
        this.bodyLeft = Math.max(0, this.head.readUInt32BE(0) - 1);
      }
      const n = Math.min(this.bodyLeft, chunk.length - i);
      this.bodyLeft -= n;
      i += n;
      if (this.bodyLeft === 0) {
        if (this.kind === KIND.REPLY_JSON) stats.replies++;
        else if (this.kind === KIND.REPLY_ERROR) stats.replyErrors++;
        this.headBytes = 0;
      }
    }
  }
}

function pickBehaviour() {
  if (spec.mode !== 'barrage') return { kind: spec.mode, payloadBytes: spec.payloadBytes };
  return { kind: BARRAGE_KINDS[randomInt(BARRAGE_KINDS.length)], payloadBytes: BARRAGE_SIZES[randomInt(BARRAGE_SIZES.length)] };
}

/** Writes batches until the socket pushes back, then again at 'drain'. */
function pump(sock, batches) {
  for (let n = 0; n < WRITES_PER_TURN; n++) {
    if (!running || sock.destroyed) return;
    const { buf, frames, garbage } = batches.next();
    stats.sent += frames;
    stats.garbageBytes += garbage;
    if (!sock.write(buf)) {
      sock.once('drain', () => pump(sock, batches));
      return;
    }
  }
  setImmediate(pump, sock, batches);
}

/** One connection slot: connects, floods, and when the server drops it, connects again. */
function connect() {
  if (!running) return;
  const behaviour = pickBehaviour();
  bump(stats.behaviours, behaviour.kind);
  const batches = source(behaviour.kind, behaviour.payloadBytes);
  const counter = new FrameCounter();
  const sock = net.createConnection(spec.socketPath);
  sockets.add(sock);
  stats.connects++;
  let helloBytes = 0;
  sock.on('connect', () => sock.write(HELLO));
  sock.on('data', (chunk) => {
    if (helloBytes < SERVER_HELLO_BYTES) {
      const n = Math.min(SERVER_HELLO_BYTES - helloBytes, chunk.length);
      helloBytes += n;
      chunk = chunk.subarray(n);
      if (helloBytes < SERVER_HELLO_BYTES) return;
      // From here on a non-reader reads nothing: the kernel buffers fill, then the server's.
      if (behaviour.kind === 'nonreader') sock.pause();
      pump(sock, batches);
    }
    counter.feed(chunk);
  });
  sock.on('error', (err) => bump(stats.errors, err.code || err.message));
  sock.on('close', () => {
    sockets.delete(sock);
    if (!running) return;
    const dropped = helloBytes >= SERVER_HELLO_BYTES;
    if (dropped) stats.drops++;
    else stats.helloFailed++;
    if (dropped && spec.mode !== 'barrage') setImmediate(connect);
    else setTimeout(connect, RECONNECT_MS);
  });
}

onCommand({
  start: () => {
    running = true;
    for (let i = 0; i < spec.connections; i++) connect();
  },
  stop: () => {
    running = false;
    // End at a frame boundary where the socket lets us (what was written goes out whole), so
    // the server's drop counts show what it decided during the flood, not our cut mid-frame.
    // A socket the server no longer reads cannot flush: it is cut after a moment.
    for (const sock of sockets) sock.end();
    setTimeout(() => {
      for (const sock of sockets) sock.destroy();
      replyAndExit('stop', stats);
    }, STOP_FLUSH_MS);
  },
});

reply('ready', {});
