'use strict';
// Public entry: Server, Client and Peer, EventEmitters over the native core (binding.js, generated
// by napi build). The core owns sockets and framing; lib/ owns the event semantics.
//
// A message's path: send() -> Outgoing (lib/outgoing.js) gathers the tick's JSON texts ->
// native sendTexts() frames them (src/json_batch.rs) into the outbox (src/outbox.rs) -> socket ->
// the peer's event loop reads it (src/loop_owner.rs, src/loop_reads.rs; the core's src/reader.rs
// for streams, TLS and a blocked loop) -> event records (src/events.rs) -> Incoming
// (lib/incoming.js) -> 'message' listeners. README "How it works" has it file by file.
// A request takes the same path; its reply comes back by it, matched in lib/calls.js.

const { Server } = require('./lib/server');
const { Client } = require('./lib/client');
const { Peer } = require('./lib/peer');
const { localEndpoint } = require('./lib/local-endpoint');

module.exports = { Server, Client, Peer, localEndpoint };
