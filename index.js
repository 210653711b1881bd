'use strict';
// Public entry: Server, Client and Peer, EventEmitters over the native core (binding.js, generated
// by napi build). The core owns sockets and framing; lib/ owns the event semantics.
//
// A message's path: send() -> Outgoing (lib/outgoing.js) encodes it into the tick's batch ->
// native send() -> Rust outbox (src/connection.rs) -> socket -> peer's reader -> event queue
// (src/events.rs) -> one wake-up -> Incoming (lib/incoming.js) -> 'message' listeners.
// A request takes the same path; its reply comes back by it, matched in lib/calls.js.

const { Server } = require('./lib/server');
const { Client } = require('./lib/client');
const { Peer } = require('./lib/peer');
const { localEndpoint } = require('./lib/local-endpoint');

module.exports = { Server, Client, Peer, localEndpoint };
