'use strict';
// Where to listen or connect. One of:
//   '/run/app.sock' or 'unix:///run/app.sock'   a socket file (Linux, macOS)
//   'unix:@name'                                a Linux abstract socket (no file)
//   '\\\\.\\pipe\\name' (or '\\\\?\\pipe\\…')       a Windows named pipe, as in node:net
//   'tcp://host:port', 'tcp4://…', 'tcp6://…'   TCP (the 4/6 forms force the address family)
//   'tls://host:port'                           TCP with TLS (options.tls)
//   { host, port, family }                      TCP, as in net.connect
// Parsed here so that a mistake throws from the constructor, naming the option.

const { ipcError, typeError } = require('./errors');

// sockaddr_un.sun_path, less the terminating NUL: 108 bytes on Linux, 104 on macOS and the BSDs
// (abstract names have no NUL, but their leading NUL byte takes its place).
const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;
const PLATFORM_NAME = { linux: 'Linux', darwin: 'macOS', win32: 'Windows' }[process.platform] || process.platform;
// A Windows pipe name: \\.\pipe\name or \\?\pipe\name (either slash), as libuv accepts.
const PIPE_PREFIX = /^[\\/]{2}[.?][\\/]pipe[\\/]/i;
// Windows limits a pipe name to 256 characters.
const MAX_PIPE_NAME_CHARS = 256;

const invalid = (message) => typeError('ERR_INVALID_ARG_VALUE', message);
const notSupported = (message) => ipcError('ERR_IPC_NOT_SUPPORTED', message);

function pipeName(value, option) {
  if (process.platform !== 'win32') {
    throw notSupported(`Invalid value for '${option}' (${value}): named pipes exist only on Windows; on ${PLATFORM_NAME} use a socket file path, or localEndpoint(name) for one name that works everywhere`);
  }
  if (value.length > MAX_PIPE_NAME_CHARS || value.replace(PIPE_PREFIX, '') === '' || value.includes('\0')) {
    throw invalid(`Invalid value for '${option}': a pipe name is '\\\\.\\pipe\\' and then 1 to ${MAX_PIPE_NAME_CHARS - 9} characters without NUL`);
  }
  return { transport: 'pipe', path: value, tls: false };
}

function socketPath(value, option) {
  if (PIPE_PREFIX.test(value)) return pipeName(value, option);
  if (process.platform === 'win32') {
    throw notSupported(`Invalid value for '${option}' (${value}): Unix socket files are not supported on Windows; use a named pipe such as '\\\\.\\pipe\\my-app', or localEndpoint('my-app') for one name that works everywhere`);
  }
  if (value === '') {
    throw invalid(`Invalid value for '${option}': Is empty. Pass the path of the Unix socket, e.g. '/tmp/app.sock'`);
  }
  if (value.includes('\0')) throw invalid(`Invalid value for '${option}': contains a NUL byte`);
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw invalid(
      `Invalid value for '${option}': ${bytes} bytes, over the ${MAX_SOCKET_PATH_BYTES}-byte limit of Unix socket paths on ${PLATFORM_NAME}. Use a shorter path (e.g. under /tmp or $XDG_RUNTIME_DIR), or localEndpoint(name)`,
    );
  }
  if (/^\d+$/.test(value)) {
    throw invalid(`Invalid value for '${option}' (${value}): Looks like a port. Pass the path of a Unix socket file, or 'tcp://host:${value}'`);
  }
  return { transport: 'unix', path: value, tls: false };
}

function abstractName(name, option) {
  if (process.platform !== 'linux') {
    throw notSupported(`Invalid value for '${option}': abstract Unix sockets exist only on Linux; on ${PLATFORM_NAME} use ${process.platform === 'win32' ? "a named pipe ('\\\\.\\pipe\\name')" : 'a socket file path'}, or localEndpoint(name) for one name that works everywhere`);
  }
  if (name === '' || name.includes('\0') || Buffer.byteLength(name) > MAX_SOCKET_PATH_BYTES) {
    throw invalid(`Invalid value for '${option}': an abstract socket name must be 1 to ${MAX_SOCKET_PATH_BYTES} bytes without NUL`);
  }
  return { transport: 'abstract', path: name, tls: false };
}

function port(value, option, server) {
  const min = server ? 0 : 1;
  if (!Number.isInteger(value) || value < min || value > 65535) {
    throw invalid(`Invalid value for '${option}': the port must be a whole number from ${min} to 65535${server ? ' (0 picks a free port)' : ''}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function family(value, option) {
  if (value === undefined || value === 0) return 0;
  if (value === 4 || value === 'IPv4') return 4;
  if (value === 6 || value === 'IPv6') return 6;
  throw invalid(`Invalid value for '${option}.family': expected 4, 6, 'IPv4', 'IPv6' or 0 (either), got ${JSON.stringify(value)}`);
}

function tcp(host, portValue, familyValue, tls, option, server) {
  if (typeof host !== 'string' || host === '') {
    throw invalid(`Invalid value for '${option}': a TCP address needs a host, e.g. '127.0.0.1' (listening on every interface is '0.0.0.0' or '::', never a default)`);
  }
  return { transport: 'tcp', host, port: port(portValue, option, server), family: familyValue, tls };
}

const SCHEMES = { 'tcp:': 0, 'tcp4:': 4, 'tcp6:': 6, 'tls:': 0 };

function fromString(value, option, server) {
  if (value.startsWith('unix:@')) return abstractName(value.slice('unix:@'.length), option);
  if (value.startsWith('unix://')) return socketPath(value.slice('unix://'.length), option);
  if (PIPE_PREFIX.test(value)) return pipeName(value, option);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value);
  if (scheme === null) return socketPath(value, option);
  const protocol = `${scheme[1].toLowerCase()}:`;
  if (!(protocol in SCHEMES)) {
    throw invalid(`Invalid value for '${option}' (${value}): unknown scheme '${protocol}//'; use unix://, tcp://, tcp4://, tcp6:// or tls://`);
  }
  let url;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`Invalid value for '${option}' (${value}): not a valid address; it needs a host and a port from 0 to 65535, e.g. '${protocol}//127.0.0.1:9000'`);
  }
  if (url.port === '') {
    throw invalid(`Invalid value for '${option}' (${value}): the address needs a port, e.g. '${protocol}//${url.hostname || '127.0.0.1'}:9000'`);
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search || url.hash || url.username) {
    throw invalid(`Invalid value for '${option}' (${value}): a TCP address is just host and port`);
  }
  // URL keeps the brackets of an IPv6 literal; the socket wants the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return tcp(host, Number(url.port || 0), SCHEMES[protocol], protocol === 'tls:', option, server);
}

/**
 * The address in `options`: `address` (a string or { host, port, family }), `socketFile`, or
 * `host`/`port` given directly as in net.connect.
 */
function parseAddress(options, server) {
  if (options.address !== undefined) {
    const value = options.address;
    if (typeof value === 'string') return fromString(value, 'options.address', server);
    if (value !== null && typeof value === 'object') {
      return tcp(value.host, value.port, family(value.family, 'options.address'), false, 'options.address', server);
    }
    throw typeError('ERR_INVALID_ARG_TYPE', `Invalid value for 'options.address': expected a string or { host, port, family }, got ${value === null ? 'null' : typeof value}`);
  }
  if (options.host !== undefined || options.port !== undefined) {
    return tcp(options.host, options.port, family(options.family, 'options'), false, 'options.host/port', server);
  }
  const value = options.socketFile;
  if (value === undefined || value === null || value === '') {
    throw invalid("Invalid value for 'options.socketFile': Is empty. Pass the path of the Unix socket (e.g. '/tmp/app.sock') or an address (e.g. 'tcp://127.0.0.1:9000')");
  }
  if (typeof value !== 'string') {
    throw typeError('ERR_INVALID_ARG_TYPE', `Invalid value for 'options.socketFile': expected a string path, got ${typeof value}`);
  }
  return fromString(value, 'options.socketFile', server);
}

/** How the address reads in messages and errors. */
function describe(address) {
  if (address.transport === 'unix' || address.transport === 'pipe') return address.path;
  if (address.transport === 'abstract') return `unix:@${address.path}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${address.tls ? 'tls' : 'tcp'}://${host}:${address.port}`;
}

module.exports = { parseAddress, describe };
