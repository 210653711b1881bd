'use strict';
// Peer: the symmetric connection. The same code runs in two processes; the first to start
// listens, the next connects (src/peer.rs holds the election). When the listening one goes away
// the other takes the socket file over, so whoever starts next finds it. Everything else —
// send, request, handle, the queue while alone — is a Client's.

const { EVENT } = require('./incoming');
const { OneConnection, kLifecycle } = require('./client');
const { kStart } = require('./endpoint');

const ROLES = ['server', 'client'];
const kRole = Symbol('role');

class Peer extends OneConnection {
  constructor(options) {
    super(options, 'Peer');
    this[kRole] = null;
  }

  /** Starts: listens if the socket file is free or stale, else connects to the peer listening. */
  connect() {
    return this[kStart](true);
  }

  /** 'server' or 'client' once the peer has taken a role, else null. */
  get role() {
    return this[kRole];
  }

  [kLifecycle](event, detail) {
    if (event === 'connect') {
      this.emit('connect');
    } else if (event === EVENT.ROLE) {
      this[kRole] = ROLES[detail[0]];
      this.emit('role', this[kRole]);
    }
  }
}

module.exports = { Peer };
