'use strict';
// Validation and defaults for constructor options. Bad options throw at construction time,
// naming the option, so mistakes surface where they are made.

const { typeError, rangeError } = require('./errors');

const DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024;
const MAX_MESSAGE_SIZE_LIMIT = 0xffffffff;
// sockaddr_un.sun_path is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH_BYTES = 107;

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
};
const MAX_MS = 2 ** 31 - 1;

function optionsObject(options, className) {
  if (typeof options === 'string') return { socketFile: options };
  if (options === null || typeof options !== 'object') {
    throw typeError('ERR_INVALID_ARG_TYPE', `new ${className}(options): options must be a socket path string or an object with a socketFile`);
  }
  if (options.transcoder !== undefined) {
    throw typeError('ERR_INVALID_ARG_VALUE', "options.transcoder is not supported: messages travel as JSON or, for Buffers, as raw bytes");
  }
  return options;
}

function socketFile(value) {
  if (value === undefined || value === null || value === '') {
    throw typeError('ERR_INVALID_ARG_VALUE', "Invalid value for 'options.socketFile': Is empty. Pass the path of the Unix socket, e.g. '/tmp/app.sock'");
  }
  if (typeof value !== 'string') {
    throw typeError('ERR_INVALID_ARG_TYPE', `Invalid value for 'options.socketFile': expected a string path, got ${typeof value}`);
  }
  if (value.includes('\0')) {
    throw typeError('ERR_INVALID_ARG_VALUE', "Invalid value for 'options.socketFile': contains a NUL byte");
  }
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw typeError(
      'ERR_INVALID_ARG_VALUE',
      `Invalid value for 'options.socketFile': ${bytes} bytes, over the ${MAX_SOCKET_PATH_BYTES}-byte limit of Unix socket paths on Linux. Use a shorter path (e.g. under /tmp or $XDG_RUNTIME_DIR)`,
    );
  }
  if (/^\d+$/.test(value)) {
    throw typeError('ERR_INVALID_ARG_VALUE', `Invalid value for 'options.socketFile' (${value}): Looks like a port. Pass the path of a Unix socket file`);
  }
  return value;
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

// A delay is a number of ms, or { min, max } for a uniformly random delay in that range.
function delay(options, name) {
  const value = options[name] === undefined ? DEFAULTS[name] : options[name];
  const fallback = DEFAULTS[name];
  const range = typeof value === 'object' && value !== null ? { min: value.min ?? fallback, max: value.max ?? fallback } : { min: value, max: value };
  for (const key of ['min', 'max']) {
    const ms = range[key];
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      throw rangeError('ERR_OUT_OF_RANGE', `options.${name} must be a number of ms >= 0 or { min, max }, got ${JSON.stringify(value)}`);
    }
  }
  if (range.min > range.max) {
    throw rangeError('ERR_OUT_OF_RANGE', `options.${name}.min (${range.min}) must not exceed options.${name}.max (${range.max})`);
  }
  return range;
}

// Heartbeats: interval 0 turns them off; the timeout defaults to two intervals.
function heartbeat(options) {
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

// The options both ends have.
function endpointOptions(options) {
  return {
    socketFile: socketFile(options.socketFile),
    maxMessageSize: integer(options, 'maxMessageSize', 16, MAX_MESSAGE_SIZE_LIMIT),
    handshakeTimeout: integer(options, 'handshakeTimeout', 1, MAX_MS),
    ...heartbeat(options),
    requestTimeout: integer(options, 'requestTimeout', 0, MAX_MS),
  };
}

function serverOptions(input) {
  const options = optionsObject(input, 'Server');
  return { ...endpointOptions(options), maxConnections: integer(options, 'maxConnections', 1, Infinity) };
}

// Client and Peer.
function clientOptions(input, className = 'Client') {
  const options = optionsObject(input, className);
  return {
    ...endpointOptions(options),
    retryDelay: delay(options, 'retryDelay'),
    reconnectDelay: delay(options, 'reconnectDelay'),
    maxRetries: integer(options, 'maxRetries', 0, Infinity),
    maxQueue: integer(options, 'maxQueue', 0, Infinity),
  };
}

module.exports = { serverOptions, clientOptions, DEFAULTS };
