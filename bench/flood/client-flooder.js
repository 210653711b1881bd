'use strict';
// A flood through the library's own Client: it keeps `outstanding` requests of `payloadBytes`
// of JSON in flight, starting a new one as each settles. This is what a buggy (or greedy)
// application built on this library can do to a server. Spec: { socketPath, outstanding, payloadBytes }.
//
// Commands: 'start'; 'stop' -> stops, replies with the counts and exits.

const path = require('node:path');
const { spec, onCommand, reply, replyAndExit, bump } = require('./child');
const { Client } = require(path.join(__dirname, '..', '..'));

const PAD = 'x'.repeat(Math.max(0, spec.payloadBytes - '{"pad":""}'.length));
const client = new Client({ socketFile: spec.socketPath });
const stats = { sent: 0, replies: 0, connects: 0, drops: 0, errors: {} };
let running = false;

client.on('connect', () => stats.connects++);
client.on('disconnect', (reason) => {
  stats.drops++;
  bump(stats.errors, `disconnect ${reason ? reason.code : ''}`.trim());
});
client.on('error', (err) => bump(stats.errors, `error ${err.code}`));

function one() {
  if (!running) return;
  stats.sent++;
  client.request('echo', { pad: PAD }).then(
    () => {
      if (running) stats.replies++;
      one();
    },
    (err) => {
      if (running) bump(stats.errors, `request ${err.code}`);
      // A rejection may come at once (queue full); do not spin on it.
      setTimeout(one, 10);
    },
  );
}

onCommand({
  start: () => {
    running = true;
    for (let i = 0; i < spec.outstanding; i++) one();
  },
  stop: () => {
    running = false;
    client.close();
    replyAndExit('stop', stats);
  },
});

client.once('connect', () => reply('ready', {}));
client.connect();
