'use strict';
// native-socket-ipc over TLS (rustls) over TCP on loopback, with the test certificates: the cost of the transport, against
// the same library on a Unix socket (native.js).

const { create, TRANSPORTS } = require('./native');

module.exports = create('native-tls', TRANSPORTS.tls);
