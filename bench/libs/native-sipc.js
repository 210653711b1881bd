'use strict';
// native-socket-ipc with protocol: 'socket-ipc' on a Unix socket: the @crussell52/socket-ipc
// wire (JSON text + "\0\0") on the native core, the setting a migration runs with. Same run as
// crussell.js, so the two rows compare the wire format's cost with the library's.

const { create, TRANSPORTS } = require('./native');

module.exports = {
  ...create('native-sipc', TRANSPORTS.unix, { protocol: 'socket-ipc' }),
  unsupported: { request: "protocol 'socket-ipc' has no request/response (the wire it speaks has none)" },
};
