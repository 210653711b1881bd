'use strict';
// Validation and defaults for constructor options. Bad options throw at construction time,
// naming the option, so mistakes surface where they are made.

const { ipcError, typeError, rangeError, fromNativeThrow } = require('./errors');
const { parseAddress } = require('./address');
const { checkTls } = require('../binding.js');
const { transcoderOption } = require('./transcoder');

const DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024;
const MAX_MESSAGE_SIZE_LIMIT = 0xffffffff;
// A shorter secret could be guessed offline from one recorded handshake (nonces and HMAC).
const MIN_SECRET_BYTES = 16;

const DEFAULTS = {
  maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
  handshakeTimeout: 5000,
  retryDelay: 1000,
  reconnectDelay: 100,
  maxRetries: Infinity,
  maxQueue: 10000,
  heartbeatInterval: 5000,
  maxConnections: Infinity,
  requestTimeout: 5000,
  frameTimeout: 30000,
  highWaterMark: 1024 * 1024,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxInboundBytes: 4 * 1024 * 1024,
  sessionTimeout: 10000,
};
const DELIVERY_MODES = ['at-most-once', 'at-least-once'];
const PROTOCOLS = ['native', 'socket-ipc'];
const MAX_MS = 2 ** 31 - 1;

function optionsObject(options, className) {
  // A string is a socket path or an address; errors then name the option it stands for.
  if (typeof options === 'string') return /^[a-z][a-z0-9+.-]*:/i.test(options) ? { address: options } : { socketFile: options };
  if (options === null || typeof options !== 'object') {
    throw typeError('ERR_INVALID_ARG_TYPE', `new ${className}(options): options must be a socket path string or an object with a socketFile`);
  }
  return options;
}

// Every option each class reads. Any other key is a mistake (a typo, or another library's name
// for an option) and throws, naming the closest known option: an ignored `maxRetry: 2` would
// silently retry forever.
const COMMON_OPTIONS = [
  'socketFile', 'address', 'host', 'port', 'family', 'tls', 'secret', 'maxMessageSize', 'handshakeTimeout',
  'frameTimeout', 'heartbeatInterval', 'heartbeatTimeout', 'requestTimeout', 'delivery', 'highWaterMark',
  'maxBufferedBytes', 'maxInboundBytes', 'protocol', 'transcoder',
];
const KNOWN_OPTIONS = {
  Server: [...COMMON_OPTIONS, 'maxConnections', 'sessionTimeout', 'mode', 'allow'],
  Client: [...COMMON_OPTIONS, 'retryDelay', 'reconnectDelay', 'maxRetries', 'maxQueue'],
  Peer: [...COMMON_OPTIONS, 'retryDelay', 'reconnectDelay', 'maxRetries', 'maxQueue', 'mode'],
};

function unknownOptions(options, className) {
  const known = KNOWN_OPTIONS[className];
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const owners = Object.keys(KNOWN_OPTIONS).filter((other) => KNOWN_OPTIONS[other].includes(name));
    if (owners.length > 0) {
      throw typeError('ERR_INVALID_ARG_VALUE', `options.${name} is ${owners.map((o) => `a ${o}'s`).join(' and ')} option, not a ${className}'s`);
    }
    const guess = closest(name, known);
    throw typeError(
      'ERR_INVALID_ARG_VALUE',
      `new ${className}(options): unknown option '${name}'${guess === undefined ? '' : `; did you mean '${guess}'?`} (the options are listed in docs/api.md)`,
    );
  }
}

// Other libraries' names for the same things (node:net, node-ipc, socket-ipc forks).
const ALIASES = { path: 'socketFile', socketPath: 'socketFile', retry: 'retryDelay', retries: 'maxRetries', maxRetry: 'maxRetries', stopRetrying: 'maxRetries', timeout: 'requestTimeout' };

/** The known name nearest to `name` (edit distance, ignoring case), if one is near enough. */
function closest(name, known) {
  if (ALIASES[name] !== undefined && known.includes(ALIASES[name])) return ALIASES[name];
  const lower = name.toLowerCase();
  let best;
  let bestScore = Infinity;
  for (const candidate of known) {
    const other = candidate.toLowerCase();
    // 'retries' for 'maxRetries', 'timeout' for 'requestTimeout': a part of the name.
    const score = other.includes(lower) || lower.includes(other) ? 1 : editDistance(lower, other);
    if (score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return bestScore <= (name.length >= 8 ? 3 : 2) ? best : undefined;
}

function editDistance(a, b) {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

function integer(options, name, min, max) {
  const value = options[name] === undefined ? DEFAULTS[name] : options[name];
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw typeError('ERR_INVALID_ARG_TYPE', `options.${name} must be a number, got ${typeof value}`);
  }
  if (value !== Infinity && !Number.isInteger(value)) {
    throw rangeError('ERR_OUT_OF_RANGE', `options.${name} must be a whole number, got ${value}`);
  }
  if (value < min || value > max) {
    throw rangeError('ERR_OUT_OF_RANGE', `options.${name} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

// A delay is a number of ms, { min, max } for a uniformly random delay in that range, or
// { min, max, factor } for exponential backoff with jitter (src/reconnect.rs). A missing min or
// max means the option's default.
function delay(options, name) {
  const value = options[name] === undefined ? DEFAULTS[name] : options[name];
  const fallback = DEFAULTS[name];
  const object = typeof value === 'object' && value !== null;
  const range = object ? { min: value.min ?? fallback, max: value.max ?? fallback } : { min: value, max: value };
  for (const key of ['min', 'max']) {
    const ms = range[key];
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      throw rangeError('ERR_OUT_OF_RANGE', `options.${name} must be a number of ms >= 0, { min, max } or { min, max, factor }, got ${show(value)}`);
    }
  }
  if (range.min > range.max) {
    const defaulted = ['min', 'max'].filter((key) => object && value[key] == null).map((key) => ` (a missing ${key} means ${fallback})`);
    throw rangeError('ERR_OUT_OF_RANGE', `options.${name}.min (${range.min}) must not exceed options.${name}.max (${range.max})${defaulted.join('')}`);
  }
  const factor = object ? value.factor : undefined;
  if (factor === undefined || factor === null) return range;
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 1) {
    throw rangeError('ERR_OUT_OF_RANGE', `options.${name}.factor must be a finite number greater than 1 (e.g. 2), got ${show(factor)}`);
  }
  // The delay grows as min * factor^n: from 0 it would never grow, and retry without pause.
  if (range.min === 0) {
    throw rangeError('ERR_OUT_OF_RANGE', `options.${name}.min must be greater than 0 with a factor (0 * factor^n stays 0), got 0`);
  }
  return { ...range, factor };
}

// JSON for what JSON can show (NaN and Infinity included), String() for the rest.
function show(value) {
  if (typeof value === 'number') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// Delivery and backpressure: what a connection may hold, and whether it keeps it until acknowledged.
function buffering(options, className) {
  const delivery = options.delivery === undefined ? 'at-most-once' : options.delivery;
  if (!DELIVERY_MODES.includes(delivery)) {
    throw typeError('ERR_INVALID_ARG_VALUE', `options.delivery must be 'at-most-once' or 'at-least-once', got ${show(delivery)}`);
  }
  if (delivery === 'at-least-once' && className === 'Peer') {
    throw typeError('ERR_INVALID_ARG_VALUE', "options.delivery 'at-least-once' is for a Server and its Clients; a Peer delivers at most once");
  }
  const highWaterMark = integer(options, 'highWaterMark', 1, Number.MAX_SAFE_INTEGER);
  const maxBufferedBytes = integer(options, 'maxBufferedBytes', 1, Infinity);
  if (maxBufferedBytes < highWaterMark) {
    throw rangeError(
      'ERR_OUT_OF_RANGE',
      `options.maxBufferedBytes (${maxBufferedBytes}) must be at least options.highWaterMark (${highWaterMark})`,
    );
  }
  // What one connection's input may hold until the listeners are done with it (src/inbound.rs).
  const maxInboundBytes = integer(options, 'maxInboundBytes', 1, Infinity);
  return { delivery, atLeastOnce: delivery === 'at-least-once', highWaterMark, maxBufferedBytes, maxInboundBytes };
}

// protocol 'socket-ipc' speaks @crussell52/socket-ipc 0.4's wire, which has no hello (so no
// secret, TLS or delivery agreement) and no pings.
function protocolOption(options, className, address) {
  const protocol = options.protocol === undefined ? 'native' : options.protocol;
  if (!PROTOCOLS.includes(protocol)) {
    throw typeError('ERR_INVALID_ARG_VALUE', `options.protocol must be 'native' or 'socket-ipc', got ${show(protocol)}`);
  }
  if (protocol === 'native') return protocol;
  const conflict =
    className === 'Peer'
      ? 'a Peer (the socket-ipc library has none)'
      : options.secret !== undefined
        ? 'options.secret'
        : (options.tls !== undefined && options.tls !== false) || address.tls
          ? 'TLS'
          : options.delivery === 'at-least-once'
            ? "delivery 'at-least-once'"
            : options.heartbeatInterval !== undefined && options.heartbeatInterval !== 0
              ? 'options.heartbeatInterval'
              : undefined;
  if (conflict !== undefined) {
    throw typeError(
      'ERR_INVALID_ARG_VALUE',
      `options.protocol 'socket-ipc' cannot be combined with ${conflict}: that wire has no hello, pings or acknowledgements; use protocol 'native' on both ends for it`,
    );
  }
  return protocol;
}

// socket-ipc's pluggable codec (lib/transcoder.js); unset (undefined or null, as socket-ipc's
// `options.transcoder || jsonTranscoder`) means this library's own encoding.
function transcoder(options, protocol) {
  if (options.transcoder === undefined || options.transcoder === null) return undefined;
  const option = transcoderOption(options.transcoder);
  if (protocol === 'socket-ipc') {
    // The core reads that wire itself (split at "\0\0", each piece checked as socket-ipc's JSON).
    throw ipcError(
      'ERR_IPC_NOT_SUPPORTED',
      "options.transcoder cannot be used with protocol 'socket-ipc': on that wire the core splits the stream at \"\\0\\0\" and reads each piece as socket-ipc's default JSON, so another encoding cannot pass. " +
        "Leave transcoder out while a socket-ipc program is on the other end (its default JSON is what this wire speaks), or move both ends to protocol 'native' and give both the same transcoder",
    );
  }
  return option;
}

// Heartbeats: interval 0 turns them off; the timeout defaults to two intervals.
function heartbeat(options, protocol) {
  if (protocol === 'socket-ipc') return { heartbeatInterval: 0, heartbeatTimeout: 0 };
  const interval = integer(options, 'heartbeatInterval', 0, MAX_MS);
  if (interval === 0) return { heartbeatInterval: 0, heartbeatTimeout: 0 };
  const timeout = options.heartbeatTimeout === undefined ? Math.min(interval * 2, MAX_MS) : integer(options, 'heartbeatTimeout', 1, MAX_MS);
  if (timeout <= interval) {
    throw rangeError(
      'ERR_OUT_OF_RANGE',
      `options.heartbeatTimeout (${timeout}) must be greater than options.heartbeatInterval (${interval}), or the connection would be dropped before a ping could be answered`,
    );
  }
  return { heartbeatInterval: interval, heartbeatTimeout: timeout };
}

// What must never show in util.inspect, logs or errors (the secret, the TLS key) is kept here,
// keyed by the validated options object, and handed only to the native core.
const sensitive = new WeakMap();

function bytesOf(value, name) {
  if (typeof value === 'string') return Buffer.from(value);
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw typeError('ERR_INVALID_ARG_TYPE', `${name} must be a string or a Buffer`);
}

// PEM as node:tls takes it: a string, a Buffer, or an array of them (concatenated).
function pem(value, name) {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return Buffer.concat(value.flatMap((v, i) => [bytesOf(v, `${name}[${i}]`), Buffer.from('\n')]));
  return bytesOf(value, name);
}

function tlsOptions(options, address, server) {
  const input = options.tls;
  if (input === undefined || input === false) {
    if (!address.tls) return undefined;
    if (server) {
      throw typeError('ERR_IPC_TLS_CONFIG', `a tls:// address needs options.tls with cert and key on the server`);
    }
    return { requestCert: false, rejectUnauthorized: true };
  }
  if (input === null || typeof input !== 'object') {
    throw typeError('ERR_INVALID_ARG_TYPE', 'options.tls must be an object: { cert, key, ca, requestCert, rejectUnauthorized, servername }');
  }
  for (const flag of ['requestCert', 'rejectUnauthorized']) {
    if (input[flag] !== undefined && typeof input[flag] !== 'boolean') {
      throw typeError('ERR_INVALID_ARG_TYPE', `options.tls.${flag} must be a boolean`);
    }
  }
  if (input.servername !== undefined && typeof input.servername !== 'string') {
    throw typeError('ERR_INVALID_ARG_TYPE', 'options.tls.servername must be a string');
  }
  return {
    cert: pem(input.cert, 'options.tls.cert'),
    key: pem(input.key, 'options.tls.key'),
    ca: pem(input.ca, 'options.tls.ca'),
    requestCert: input.requestCert === true,
    rejectUnauthorized: input.rejectUnauthorized !== false,
    servername: input.servername,
  };
}

function secretOption(options) {
  const value = options.secret;
  if (value === undefined) return undefined;
  const bytes = bytesOf(value, 'options.secret');
  if (bytes.length < MIN_SECRET_BYTES) {
    // Never echo the secret, not even its length's worth of it.
    throw rangeError(
      'ERR_OUT_OF_RANGE',
      `options.secret must be at least ${MIN_SECRET_BYTES} bytes; use a random one, e.g. crypto.randomBytes(32).toString('hex')`,
    );
  }
  return Buffer.from(bytes); // our own copy: later changes to the caller's Buffer do not apply
}

// Socket file permissions: only a socket file has them.
function modeOption(options, address) {
  if (options.mode === undefined) return undefined;
  const mode = options.mode;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    throw rangeError('ERR_OUT_OF_RANGE', `options.mode must be file permission bits from 0 to 0o777 (e.g. 0o600), got ${mode}`);
  }
  if (address.transport === 'pipe') {
    throw ipcError('ERR_IPC_NOT_SUPPORTED', `options.mode: a named pipe has no file permissions. Windows already lets only the user who started the server (and administrators and SYSTEM) open it for writing; to narrow that, use allow: (info) => … with info.pid, or a secret`);
  }
  if (address.transport !== 'unix') {
    throw typeError('ERR_INVALID_ARG_VALUE', 'options.mode applies to a socket file; an abstract socket or a TCP port has no file permissions (use secret or allow)');
  }
  return mode;
}

// allow: { uids, gids } (Unix sockets only) or (info) => boolean.
function allowOption(options, address) {
  const allow = options.allow;
  if (allow === undefined) return {};
  if (typeof allow === 'function') return { allowAsk: true, allowFunction: allow };
  if (allow === null || typeof allow !== 'object') {
    throw typeError('ERR_INVALID_ARG_TYPE', 'options.allow must be { uids, gids } or a function (info) => boolean');
  }
  if (address.transport === 'pipe') {
    throw ipcError('ERR_IPC_NOT_SUPPORTED', 'options.allow with uids/gids: Windows names no uid or gid for a pipe client; use a function (info) => boolean (info.pid is the client\'s process id) or a secret');
  }
  if (address.transport === 'tcp') {
    throw typeError('ERR_INVALID_ARG_VALUE', 'options.allow with uids/gids needs a Unix socket (TCP has no peer credentials); use a function (info) => boolean or a secret');
  }
  const ids = (name) => {
    const list = allow[name];
    if (list === undefined) return undefined;
    if (!Array.isArray(list) || !list.every((id) => Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) {
      throw typeError('ERR_INVALID_ARG_VALUE', `options.allow.${name} must be an array of numeric ids`);
    }
    return list.slice();
  };
  const allowUids = ids('uids');
  const allowGids = ids('gids');
  if (allowUids === undefined && allowGids === undefined) {
    throw typeError('ERR_INVALID_ARG_VALUE', 'options.allow needs uids or gids (or be a function)');
  }
  return { allowUids, allowGids };
}

// The options every class has, plus `extra` (the class's own), registered with their secrets.
function endpointOptions(options, className, extra) {
  unknownOptions(options, className);
  // Port 0 (any free port) only makes sense for a Server, which can tell it with address().
  const address = parseAddress(options, className === 'Server');
  // A Peer may end up in either role, so its TLS options must serve both.
  const sides = { Server: [true], Client: [false], Peer: [true, false] }[className];
  const protocol = protocolOption(options, className, address);
  const tls = tlsOptions(options, address, sides.includes(true));
  if (tls !== undefined) {
    // A bad certificate or key throws here, from the constructor, not at the first connection.
    try {
      for (const server of sides) checkTls(tls, server, address.host ?? 'localhost');
    } catch (err) {
      throw fromNativeThrow(err);
    }
  }
  const result = {
    address,
    protocol,
    tls: tls !== undefined,
    maxMessageSize: integer(options, 'maxMessageSize', 16, MAX_MESSAGE_SIZE_LIMIT),
    handshakeTimeout: integer(options, 'handshakeTimeout', 1, MAX_MS),
    frameTimeout: integer(options, 'frameTimeout', 0, MAX_MS),
    ...heartbeat(options, protocol),
    transcoder: transcoder(options, protocol),
    requestTimeout: integer(options, 'requestTimeout', 0, MAX_MS),
    ...buffering(options, className),
    ...extra(address),
  };
  sensitive.set(result, { tls, secret: secretOption(options) });
  return result;
}

/** The secret and TLS options of validated options, for the native core only. */
function sensitiveOf(options) {
  return sensitive.get(options);
}

function serverOptions(input) {
  const options = optionsObject(input, 'Server');
  return endpointOptions(options, 'Server', (address) => ({
    maxConnections: integer(options, 'maxConnections', 1, Infinity),
    sessionTimeout: integer(options, 'sessionTimeout', 0, MAX_MS),
    mode: modeOption(options, address),
    ...allowOption(options, address),
  }));
}

// Client and Peer (a Peer may listen, so it takes `mode` too).
function clientOptions(input, className = 'Client') {
  const options = optionsObject(input, className);
  const peer = className === 'Peer';
  for (const name of peer ? ['allow'] : ['mode', 'allow']) {
    if (options[name] !== undefined) {
      throw typeError('ERR_INVALID_ARG_VALUE', `options.${name} is a Server option, not a ${className}'s${peer ? ' (a Peer admits one partner; use secret or mode)' : ''}`);
    }
  }
  return endpointOptions(options, className, (address) => ({
    retryDelay: delay(options, 'retryDelay'),
    reconnectDelay: delay(options, 'reconnectDelay'),
    maxRetries: integer(options, 'maxRetries', 0, Infinity),
    maxQueue: integer(options, 'maxQueue', 0, Infinity),
    mode: peer ? modeOption(options, address) : undefined,
  }));
}

module.exports = { serverOptions, clientOptions, sensitiveOf, DEFAULTS };
