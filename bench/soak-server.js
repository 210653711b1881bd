'use strict';
// One server process of the soak, forked by bench/soak.js with a JSON spec as its only argument:
// { inc, socketFile, delivery, log, s2cRate, broadcastRate, srqRate, heartbeat, maxLarge, seed }.
//
// Traffic: to every client whose tag it knows (from the client's messages), `s2cRate` messages/s
// with server.send (JSON on 's', Buffers on 'sb'), `broadcastRate` broadcasts/s on 'bc', and
// `srqRate` requests/s in all to random clients ('srq', echoed). It answers the clients' 'rq'
// requests. A send or broadcast that returns false pauses that traffic until 'drain' /
// drained(), as an application should.
//
// Everything the accounting needs goes to its log, one write(2) per record, BEFORE the listener
// returns: at-least-once acknowledges a message only after its listeners ran, so a message this
// process acknowledged is in the log even if it is SIGKILLed right after. Records:
//   L inc pid time        started (time: Date.now())
//   G time                close() called (SIGTERM, or the soak's end)
//   C cid                 'connection'                 D cid code   'clientDisconnect'
//   E cid                 'clientReconnect'
//   X cid code n          'connectionClose' ('-': no reason); n: reason.undelivered, the last n sent
//                         to it ('-': none)
//   W cid                 'slowClient'                 M cid tag    first message of client `tag` as cid
//   R tag seq             message from `tag`           K tag seq    ... that arrived corrupted
//   H tag rseq time delay the 'rq' handler ran for request rseq of `tag` (it answers after delay ms)
//   P tag rseq time       ... and, for a delayed answer, resolved its Promise with the reply
//   S cid seq             sent to cid up to seq (once per tick)
//   B a b                 broadcasts a..b (once per tick; eligible: the clients connected then)
//   e code cid seq        an 'error' ('-' where unknown; seq: emitted inside that send() call)
//   Q code                a server→client request settled ('ok', or the rejection's code)
//   Z time                'close' was emitted: this server ended gracefully
// To the parent (IPC): { type: 'listening' }, { type: 'stats', data } every 500 ms, and
// { type: 'listen-error', code }. From it: { type: 'stop' } (stop traffic), { type: 'close' };
// SIGTERM also closes gracefully.

const path = require('node:path');
const { prng, hash, Receipts, jsonPayload, jsonIntact, bytesPayload, readBytes, pickSize, Log, bump } = require('./soak-common');
const { Server } = require(path.join(__dirname, '..'));

const spec = JSON.parse(process.argv[2]);
const random = prng(hash(`server ${spec.inc} ${spec.seed}`));
const log = new Log(spec.log);
log.write(`L ${spec.inc} ${process.pid} ${Date.now()}`);

const server = new Server({
  socketFile: spec.socketFile,
  delivery: spec.delivery,
  heartbeatInterval: spec.heartbeat,
  heartbeatTimeout: 2 * spec.heartbeat,
});

const sessions = new Map(); // cid -> { tag, seq, logged, connected, blocked, blockedAt }
const receipts = new Map(); // tag -> Receipts, for the live stats (the log is what counts)
const stats = { recv: 0, corrupt: 0, dups: 0, order: 0, sent: 0, broadcasts: 0, handled: 0, errors: {}, srq: {}, blockedMaxMs: 0 };
let sending = true;
let inSend = null; // { cid, seq } while inside server.send(): a synchronous 'error' is about it
let bseq = 0;
let broadcastBlocked = false;
let closing = false;

const code = (err) => (err && err.code) || '-';
const report = (message) => process.connected && process.send(message);

server.on('listening', () => report({ type: 'listening' }));
server.on('error', (err) => {
  if (inSend) log.write(`e ${code(err)} ${inSend.cid} ${inSend.seq}`);
  else log.write(`e ${code(err)} ${err.clientId === undefined ? '-' : err.clientId} -`);
  bump(stats.errors, code(err));
  if (server.address() === null && !closing && ['EADDRINUSE', 'EACCES', 'ENOENT'].includes(err.code)) {
    // listen() failed: the parent decides what to do.
    report({ type: 'listen-error', code: err.code, message: err.message });
    setTimeout(() => process.exit(3), 100);
  }
});
server.on('connection', (cid) => {
  sessions.set(cid, { tag: null, seq: 0, logged: 0, connected: true, blocked: false, blockedAt: 0 });
  log.write(`C ${cid}`);
});
server.on('clientDisconnect', (cid, reason) => {
  const s = sessions.get(cid);
  if (s) s.connected = false;
  log.write(`D ${cid} ${code(reason)}`);
});
server.on('clientReconnect', (cid) => {
  const s = sessions.get(cid);
  if (s) s.connected = true;
  log.write(`E ${cid}`);
});
server.on('connectionClose', (cid, reason) => {
  flushSendRecords(); // its S record before its X
  sessions.delete(cid);
  // with at-least-once an expired session says how many messages to it were never acknowledged
  log.write(`X ${cid} ${code(reason)} ${reason && reason.undelivered > 0 ? reason.undelivered : '-'}`);
});
server.on('slowClient', (cid) => log.write(`W ${cid}`));
server.on('drain', (cid) => {
  const s = sessions.get(cid);
  if (s && s.blocked) unblock(s);
});

function unblock(s) {
  s.blocked = false;
  stats.blockedMaxMs = Math.max(stats.blockedMaxMs, Date.now() - s.blockedAt);
}

function received(tag, seq, intact, cid) {
  log.write(`${intact ? 'R' : 'K'} ${tag} ${seq}`);
  const s = sessions.get(cid);
  if (s && s.tag !== tag) {
    s.tag = tag;
    log.write(`M ${cid} ${tag}`);
  }
  stats.recv++;
  if (!intact) stats.corrupt++;
  let r = receipts.get(tag);
  if (r === undefined) receipts.set(tag, (r = new Receipts()));
  const verdict = r.add(seq);
  if (verdict === 'dup') stats.dups++;
  else if (verdict === 'order') stats.order++;
}

server.on('message.j', (m, cid) => received(m.c, m.s, jsonIntact(m), cid));
server.on('message.b', (buf, cid) => {
  const r = readBytes(buf);
  if (r === null) log.write(`K ? 0`);
  else received(r.sender, r.seq, r.intact, cid);
});

server.handle('rq', (m) => {
  log.write(`H ${m.c} ${m.r} ${Date.now()} ${m.delay}`);
  stats.handled++;
  if (m.fail) throw Object.assign(new Error('this request asked to fail'), { code: 'E_SOAK_ASKED' });
  const reply = { r: m.r, srv: spec.inc };
  if (!m.delay) return reply;
  return new Promise((resolve) => {
    setTimeout(() => {
      log.write(`P ${m.c} ${m.r} ${Date.now()}`);
      resolve(reply);
    }, m.delay);
  });
});

// ----- traffic -----

const TICK_MS = 20;
let lastTick = Date.now();
let broadcastBudget = 0;
let srqBudget = 0;
let srqSeq = 0;

function sendOne(cid, s) {
  const seq = ++s.seq;
  const sender = `${spec.inc}:${cid}`;
  const bytes = random() < 0.1;
  const size = pickSize(random, bytes, spec.maxLarge);
  inSend = { cid, seq };
  let accepted;
  try {
    accepted = bytes ? server.send('sb', bytesPayload(sender, seq, size), cid) : server.send('s', jsonPayload(sender, seq, size), cid);
  } finally {
    inSend = null;
  }
  stats.sent++;
  if (accepted === false) {
    s.blocked = true;
    s.blockedAt = Date.now();
  }
}

function flushSendRecords() {
  for (const [cid, s] of sessions) {
    if (s.seq !== s.logged) {
      log.write(`S ${cid} ${s.seq}`);
      s.logged = s.seq;
    }
  }
}

function tick() {
  const now = Date.now();
  const dt = (now - lastTick) / 1000;
  lastTick = now;
  if (!sending) return;
  for (const [cid, s] of sessions) {
    if (s.tag === null) continue; // not yet known who it is
    s.budget = (s.budget || 0) + spec.s2cRate * dt;
    while (s.budget >= 1 && !s.blocked && sessions.has(cid)) {
      s.budget--;
      sendOne(cid, s);
    }
    if (s.budget > 5) s.budget = 5; // no catching up after a pause
  }
  flushSendRecords();

  broadcastBudget = Math.min(broadcastBudget + spec.broadcastRate * dt, 5);
  const first = bseq + 1;
  while (broadcastBudget >= 1 && !broadcastBlocked) {
    broadcastBudget--;
    bseq++;
    const accepted = server.broadcast('bc', jsonPayload(String(spec.inc), bseq, pickSize(random, false, 4096)));
    stats.broadcasts++;
    if (accepted === false) {
      broadcastBlocked = true;
      const since = Date.now();
      server.drained().then(() => {
        broadcastBlocked = false;
        stats.blockedMaxMs = Math.max(stats.blockedMaxMs, Date.now() - since);
      });
    }
  }
  if (bseq >= first) log.write(`B ${first} ${bseq}`);

  srqBudget = Math.min(srqBudget + spec.srqRate * dt, 5);
  while (srqBudget >= 1) {
    srqBudget--;
    const known = [...sessions].filter(([, s]) => s.tag !== null && s.connected);
    if (known.length === 0) break;
    const [cid] = known[random.int(0, known.length - 1)];
    const n = ++srqSeq;
    server.request(cid, 'srq', { n }, { timeout: 5000 }).then(
      (reply) => settled(reply && reply.n === n ? 'ok' : 'WRONG_REPLY'),
      (err) => settled(code(err)),
    );
  }
}

function settled(result) {
  bump(stats.srq, result);
  log.write(`Q ${result}`);
}

const ticker = setInterval(tick, TICK_MS);
const statsTimer = setInterval(() => report({ type: 'stats', data: stats }), 500);

// ----- ending -----

function close() {
  if (closing) return;
  closing = true;
  sending = false;
  clearInterval(ticker);
  log.write(`G ${Date.now()}`);
  server.close();
}

server.on('close', () => {
  flushSendRecords();
  log.write(`Z ${Date.now()}`);
  clearInterval(statsTimer);
  if (process.connected) process.send({ type: 'stats', data: stats }, () => process.exit(0));
  else process.exit(0);
});

process.on('SIGTERM', close);
process.on('message', (m) => {
  if (m.type === 'stop') sending = false;
  else if (m.type === 'close') close();
});
// The soak went away: nobody will read what this process has to say.
process.on('disconnect', () => process.exit(0));

server.listen();
