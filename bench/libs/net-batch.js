'use strict';
// node:net NDJSON exactly as in net.js, but one write() per 1000 messages (or per turn of sends,
// whichever comes first): the pure-JavaScript ceiling for this framing. When the server is the
// sender (s2c, broadcast) it batches the same way; a broadcast batch is encoded once for all.

const { create } = require('./net');

module.exports = {
  ...create({ name: 'net-batch', batch: 1000 }),
  unsupported: {
    rtt: 'with one message outstanding there is nothing to batch; it would measure net again',
    large: 'a 1 MiB message is already one write; it would measure net again',
    scale: 'idle connections write nothing; it would measure net again',
    request: 'node:net has no request/response, only a byte stream',
  },
};
