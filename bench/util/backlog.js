'use strict';
// congested()/drained() for adapters whose library exposes its net.Sockets: a sender pauses
// while any socket it writes to holds more than HIGH_WATER bytes, until those have drained.

const { once } = require('node:events');
const { HIGH_WATER } = require('./workload');

/** `sockets()` returns the sockets to watch at the time of the call (peers come and go). */
function socketBacklog(sockets) {
  return {
    congested() {
      for (const socket of sockets()) if (socket.writableLength > HIGH_WATER) return true;
      return false;
    },
    drained() {
      const waits = [];
      for (const socket of sockets()) if (socket.writableLength > HIGH_WATER) waits.push(once(socket, 'drain'));
      return Promise.all(waits);
    },
  };
}

module.exports = { socketBacklog };
