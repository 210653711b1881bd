'use strict';
// native-socket-ipc over TCP on loopback: the cost of the transport, against
// the same library on a Unix socket (native.js).

const { create, TRANSPORTS } = require('./native');

module.exports = create('native-tcp', TRANSPORTS.tcp);
