'use strict';
// One client process of the soak, forked by bench/soak.js with a JSON spec as its only argument:
// { tag, kind, socketFile, delivery, report, rate, reqRate, heartbeat, maxLarge, seed }.
//
// Traffic: `rate` messages/s to the server, each carrying this incarnation's tag and a sequence
// number 1, 2, 3, … (JSON on 'j', about 10% Buffers on 'b'), and `reqRate` requests/s ('rq',
// at most 64 outstanding; 2% ask the handler to throw, 10% to answer after a delay). A send that
// returns false pauses sending until 'drain'. It echoes the server's 'srq' requests.
//
// What it received ('s'/'sb' from server.send, 'bc' from broadcast) is kept as ranges of
// sequence numbers per sender. When it closes it writes its report (JSON) to `report`:
//   { tag, kind, sent, errSeqs: [[seq, code]], closeUndelivered, undeliveredRanges: [[a, b, code]],
//     errors: { code: n },
//     recv: { sender: { seen, dups, order } }, corrupt, requests: { result: n },
//     failedRequests: [[rseq, code, sent at, failed at (Date.now()), delay asked]], srqHandled, connectErrorSamples: { code: message },
//     events: { connect, reconnect, disconnect: { code: n }, connectError: { code: n } },
//     timeline: [[ms since start, 'connect' | 'disconnect(code)', seq sent so far]],
//     blockedMaxMs, drainWaits }
// A SIGKILLed client writes no report; the parent then only has its last stats.
// To the parent (IPC): { type: 'stats', data } every 500 ms. From it: { type: 'stop' } (stop
// traffic, stay connected), { type: 'close' } (close(), report, exit).

const fs = require('node:fs');
const path = require('node:path');
const { prng, hash, Receipts, jsonPayload, jsonIntact, bytesPayload, readBytes, pickSize, bump } = require('./soak-common');
const { Client } = require(path.join(__dirname, '..'));

const spec = JSON.parse(process.argv[2]);
const random = prng(hash(`client ${spec.tag} ${spec.seed}`));

const client = new Client({
  socketFile: spec.socketFile,
  delivery: spec.delivery,
  heartbeatInterval: spec.heartbeat,
  heartbeatTimeout: 2 * spec.heartbeat,
  // Reconnect soon after a server restart, backing off while it stays away.
  reconnectDelay: { min: 20, max: 1000, factor: 2 },
  retryDelay: { min: 50, max: 300 },
});

let seq = 0;
let inSend = 0; // the seq being sent: a synchronous 'error' inside send() is about it
const errSeqs = []; // [seq, code] of sends refused by an 'error' emitted inside the send() call
let closeUndelivered = 0; // err.undelivered of ERR_IPC_CLOSED: the last ones sent
const undeliveredRanges = []; // [first, last, code] of other errors with err.undelivered
const errors = {}; // per code: how many messages (or errors without a message) it concerned
const recv = new Map(); // sender -> Receipts
const requests = {};
const failedRequests = []; // [rseq, code, sent at, failed at, delay] of requests that failed, not as asked
const events = { connect: 0, reconnect: 0, disconnect: {}, connectError: {} };
let corrupt = 0;
let received = 0;
let dups = 0;
let order = 0;
let srqHandled = 0;
let pending = 0;
let blocked = false;
let blockedAt = 0;
let blockedMaxMs = 0;
let drainWaits = 0;
let sending = true;
let closing = false;

const code = (err) => (err && err.code) || '-';

// When the connection came and went, by the seq sent so far: places a lost range in time.
const t0 = Date.now();
const timeline = [];
const mark = (what) => timeline.length < 5000 && timeline.push([Date.now() - t0, what, seq]);
client.on('connect', () => {
  events.connect++;
  mark('connect');
});
client.on('reconnect', () => events.reconnect++);
client.on('disconnect', (reason) => {
  bump(events.disconnect, code(reason));
  mark(`disconnect(${code(reason)})`);
});
const connectErrorSamples = {}; // code -> the first message with it
client.on('connectError', (err) => {
  bump(events.connectError, code(err));
  if (!(code(err) in connectErrorSamples)) connectErrorSamples[code(err)] = err.message;
});
client.on('drain', () => {
  if (!blocked) return;
  blocked = false;
  blockedMaxMs = Math.max(blockedMaxMs, Date.now() - blockedAt);
});
client.on('error', (err) => {
  if (inSend) {
    errSeqs.push([inSend, code(err)]);
    bump(errors, code(err));
  } else if (err.code === 'ERR_IPC_CLOSED' && err.undelivered > 0) {
    // what the client still held when it stopped: the last ones it sent
    closeUndelivered += err.undelivered;
    bump(errors, code(err), err.undelivered);
  } else if (err.undelivered > 0) {
    // refused when the batch reached the core (ERR_IPC_BUFFER_FULL): the last ones sent so far
    undeliveredRanges.push([Math.max(1, seq - err.undelivered + 1), seq, code(err)]);
    bump(errors, code(err), err.undelivered);
  } else {
    bump(errors, code(err));
  }
});

function got(sender, n, intact) {
  received++;
  if (!intact) corrupt++;
  let r = recv.get(sender);
  if (r === undefined) recv.set(sender, (r = new Receipts()));
  const verdict = r.add(n);
  if (verdict === 'dup') dups++;
  else if (verdict === 'order') order++;
}

client.on('message.s', (m) => got(m.c, m.s, jsonIntact(m)));
client.on('message.bc', (m) => got(`b${m.c}`, m.s, jsonIntact(m)));
client.on('message.sb', (buf) => {
  const r = readBytes(buf);
  if (r === null) corrupt++;
  else got(r.sender, r.seq, r.intact);
});
client.handle('srq', (m) => {
  srqHandled++;
  return m;
});

// ----- traffic -----

const TICK_MS = 20;
let lastTick = Date.now();
let budget = 0;
let reqBudget = 0;
let rseq = 0;

function sendOne() {
  const n = ++seq;
  const bytes = random() < 0.1;
  const size = pickSize(random, bytes, spec.maxLarge);
  inSend = n;
  let accepted;
  try {
    accepted = bytes ? client.send('b', bytesPayload(spec.tag, n, size)) : client.send('j', jsonPayload(spec.tag, n, size));
  } finally {
    inSend = 0;
  }
  if (accepted === false) {
    blocked = true;
    blockedAt = Date.now();
    drainWaits++;
  }
}

function request() {
  const r = ++rseq;
  const fail = random() < 0.02;
  const delay = random() < 0.1 ? random.int(1, 50) : 0;
  pending++;
  const at = Date.now();
  client
    .request('rq', { c: spec.tag, r, fail, delay }, { timeout: 5000 })
    .then(
      (reply) => bump(requests, reply && reply.r === r ? 'ok' : 'WRONG_REPLY'),
      (err) => {
        if (fail && err.code === 'ERR_IPC_REMOTE') bump(requests, 'ok (asked to fail: ERR_IPC_REMOTE)');
        else {
          bump(requests, code(err));
          if (failedRequests.length < 2000) failedRequests.push([r, code(err), at, Date.now(), delay]);
        }
      },
    )
    .finally(() => pending--);
}

function tick() {
  const now = Date.now();
  const dt = (now - lastTick) / 1000;
  lastTick = now;
  if (!sending) return;
  budget = Math.min(budget + spec.rate * dt, 20);
  while (budget >= 1 && !blocked) {
    budget--;
    sendOne();
  }
  reqBudget = Math.min(reqBudget + spec.reqRate * dt, 5);
  while (reqBudget >= 1 && pending < 64) {
    reqBudget--;
    request();
  }
}

const ticker = setInterval(tick, TICK_MS);
const stats = () => ({
  sent: seq,
  received,
  pending,
  blocked,
  dups,
  order,
  corrupt,
  errors,
  requests,
  reconnects: events.reconnect,
});
const statsTimer = setInterval(() => process.connected && process.send({ type: 'stats', data: stats() }), 500);

// ----- ending -----

function close() {
  if (closing) return;
  closing = true;
  sending = false;
  clearInterval(ticker);
  client.close();
}

client.on('close', () => {
  clearInterval(statsTimer);
  // Rejections of close() arrive in this tick's microtasks; let them land in `requests` first.
  setImmediate(() => {
    const out = {
      tag: spec.tag,
      kind: spec.kind,
      sent: seq,
      errSeqs,
      closeUndelivered,
      undeliveredRanges,
      errors,
      recv: Object.fromEntries([...recv].map(([sender, r]) => [sender, { seen: r.seen.list, dups: r.dups, order: r.order }])),
      corrupt,
      requests,
      failedRequests,
      srqHandled,
      events,
      connectErrorSamples,
      timeline,
      blockedMaxMs: blocked ? Math.max(blockedMaxMs, Date.now() - blockedAt) : blockedMaxMs,
      drainWaits,
    };
    fs.writeFileSync(spec.report, JSON.stringify(out));
    if (process.connected) process.send({ type: 'stats', data: stats() }, () => process.exit(0));
    else process.exit(0);
  });
});

process.on('message', (m) => {
  if (m.type === 'stop') sending = false;
  else if (m.type === 'close') close();
});
process.on('SIGTERM', close);
process.on('disconnect', () => process.exit(0));

client.connect();
