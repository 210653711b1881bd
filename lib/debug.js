'use strict';
// NODE_DEBUG=native-socket-ipc: one line on stderr (through util.debuglog) for each lifecycle
// event of each Server, Client and Peer: listening, connections and their end with the reason's
// code, connects, reconnects, disconnects, failed attempts, errors (code and message), dropped
// slow clients, undelivered counts and refused authentications.
//
// What is never logged: message contents, topics, request payloads, the secret, TLS material, and
// the text of 'messageError' and of connection-end reasons (a JSON parse error quotes the bytes
// it choked on). Only codes, client ids, counts, addresses and process credentials.
//
// When the variable does not name the section, nothing here runs: watch() is not called, so the
// endpoints keep EventEmitter's own emit().

const util = require('node:util');

const debuglog = util.debuglog('native-socket-ipc');
// NODE_DEBUG is read once, when the process starts.
const enabled = debuglog.enabled;

// endpoint -> its label, e.g. 'Client#2 /tmp/app.sock'.
const labels = new WeakMap();
const counts = new Map();

/**
 * Starts logging `endpoint`'s events: its emit() is wrapped (on the object itself, so only when
 * debugging). `where` returns the address it was created for, read at the first line.
 */
function watch(endpoint, where) {
  const name = endpoint.constructor.name;
  const n = (counts.get(name) || 0) + 1;
  counts.set(name, n);
  let label = null;
  labels.set(endpoint, () => {
    if (label === null) label = `${name}#${n} ${where()}`;
    return label;
  });
  const emit = endpoint.emit;
  Object.defineProperty(endpoint, 'emit', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function emitLogged(event, ...args) {
      try {
        logEvent(this, event, args);
      } catch {
        // Logging never changes what the endpoint does.
      }
      return emit.apply(this, arguments);
    },
  });
}

/** Logs `text` about `endpoint` (call only when `enabled`). */
function note(endpoint, text) {
  const label = labels.get(endpoint);
  debuglog('%s: %s', label === undefined ? endpoint.constructor.name : label(), text);
}

/** ': CODE' for an error that ended something, with its undelivered count. Never the text. */
function reason(err) {
  if (err === undefined || err === null) return '';
  return `: ${err.code}${undelivered(err)}`;
}

function undelivered(err) {
  return typeof err.undelivered === 'number' ? ` (${err.undelivered} undelivered)` : '';
}

/** Who is at the other end: process credentials on a Unix socket, the address on TCP. */
function who(info) {
  if (info === undefined || info === null) return 'unknown';
  if (info.pid !== undefined) return `pid ${info.pid}, uid ${info.uid}, gid ${info.gid}`;
  if (info.address !== undefined) return info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
  return 'unknown';
}

function address(value) {
  if (value !== null && typeof value === 'object') return who(value);
  return String(value);
}

function logEvent(endpoint, event, args) {
  switch (event) {
    case 'listening':
      note(endpoint, `listening on ${address(endpoint.address())}`);
      break;
    case 'connection':
      note(endpoint, `connection ${args[0]} (${who(endpoint.clientInfo(args[0]))})`);
      break;
    case 'connectionClose':
    case 'clientDisconnect':
      note(endpoint, `${event} ${args[0]}${reason(args[1])}`);
      break;
    case 'clientReconnect':
      note(endpoint, `clientReconnect ${args[0]}`);
      break;
    case 'slowClient':
      note(endpoint, `slowClient ${args[0]}: dropped, its buffer would pass maxBufferedBytes`);
      break;
    case 'authError':
      note(endpoint, `authError ${args[0] && args[0].code} (${who(args[1])})`);
      break;
    case 'messageError':
      // The text may quote the bytes received: only the code.
      note(endpoint, `messageError ${args[0] && args[0].code}${args[1] === undefined ? '' : ` from client ${args[1]}`}`);
      break;
    case 'connect':
    case 'reconnect':
    case 'close':
      note(endpoint, event);
      break;
    case 'disconnect':
      note(endpoint, `disconnect${reason(args[0])}`);
      break;
    case 'connectError':
    case 'error': {
      const err = args[0];
      if (err instanceof Error) note(endpoint, `${event} ${err.code}${undelivered(err)}: ${err.message}`);
      else note(endpoint, event);
      break;
    }
    case 'role':
      note(endpoint, `role ${args[0]}`);
      break;
    default:
      // 'message', 'message.<topic>', 'drain' and anything else: not logged.
      break;
  }
}

module.exports = { enabled, watch, note };
