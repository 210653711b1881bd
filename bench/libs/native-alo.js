'use strict';
// native-socket-ipc with delivery: 'at-least-once' on a Unix socket: what acknowledgements and
// keeping every message until it is acknowledged cost, against the default mode (native.js).

const { create, TRANSPORTS } = require('./native');

module.exports = create('native-alo', TRANSPORTS.unix, { delivery: 'at-least-once' });
