'use strict';
// One place that builds every error the package emits or throws, so codes stay stable.

const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');

function withCode(Ctor, code, message, props) {
  const err = new Ctor(message);
  err.code = code;
  if (props) Object.assign(err, props);
  return err;
}

const ipcError = (code, message, props) => withCode(Error, code, message, props);
const typeError = (code, message, props) => withCode(TypeError, code, message, props);
const rangeError = (code, message, props) => withCode(RangeError, code, message, props);

/**
 * Turns the JSON error the native core reports into an Error. OS errors get Node's own code,
 * errno, syscall, path and wording (`listen EADDRINUSE: address already in use /tmp/a.sock`).
 */
function fromNative(json) {
  const info = typeof json === 'string' ? JSON.parse(json) : json;
  // On Windows the core names the error (`errname`: Node's errnos there are libuv's own numbers).
  if (info.errname !== undefined) info.errno = -errnoNamed(info.errname);
  if (info.errno === undefined) {
    const { message, ...props } = info;
    return ipcError(info.code, message, props);
  }
  const errno = -info.errno;
  const [name, description] = util.getSystemErrorMap().get(errno) || [`Unknown system error ${errno}`, 'unknown error'];
  let message = `${info.syscall} ${name}: ${description} ${info.path}`;
  const detail = info.detail || pathHint(info.syscall, name, info.path);
  if (detail) message += ` (${detail})`;
  // net's OS errors name the socket `address` (and @crussell52/socket-ipc hands them on as they
  // are); ours name it `path` too, with the same value.
  return withCode(Error, name, message, { errno, syscall: info.syscall, path: info.path, address: info.path });
}

/**
 * What an OS error on a socket path means for the user, where the errno alone is vague: which
 * part of the path is missing, whether something listens there, whether it is a socket at all.
 * Only for file paths (not TCP, abstract names or Windows pipes); undefined where nothing helps.
 */
function pathHint(syscall, name, where) {
  if (typeof where !== 'string' || !path.isAbsolute(where) || where.startsWith('\\\\')) return undefined;
  const dir = path.dirname(where);
  if (syscall === 'listen' || syscall === 'bind') {
    if (name === 'ENOENT') return `the directory ${dir} does not exist: create it first (fs.mkdirSync(dir, { recursive: true })), or use localEndpoint(name)`;
    if (name === 'EACCES' || name === 'EPERM') return `this process may not create a file in ${dir}: choose a directory it can write to, or use localEndpoint(name)`;
    return undefined;
  }
  if (syscall !== 'connect') return undefined;
  if (name === 'ENOENT') {
    return fs.existsSync(dir) ? 'no socket file there: the server is not running yet, or it listens on another path' : `the directory ${dir} does not exist: the server is not running, or it listens on another path`;
  }
  if (name === 'ECONNREFUSED') {
    let stat;
    try {
      stat = fs.statSync(where);
    } catch {
      return undefined;
    }
    if (!stat.isSocket()) return `the path is ${stat.isDirectory() ? 'a directory' : 'a regular file'}, not a socket: socketFile must name the socket the server listens on`;
    return 'a socket file is there but nothing listens on it: its server has exited (the next server to listen there reclaims it)';
  }
  if (name === 'EACCES' || name === 'EPERM') {
    return "permission denied: this process's user may not connect to the socket (its mode, or its directory's permissions; the server's mode option sets the socket's)";
  }
  return undefined;
}

/** Node's errno for a libuv error name such as 'ENOENT'. */
function errnoNamed(name) {
  for (const [errno, [known]] of util.getSystemErrorMap()) {
    if (known === name) return errno;
  }
  return -4094; // UV_UNKNOWN, the same number on every platform
}

/** A configuration error thrown by the native core (coded JSON as its message), as a TypeError. */
function fromNativeThrow(err) {
  if (typeof err.message === 'string' && err.message.startsWith('{')) {
    const { message, code } = JSON.parse(err.message);
    return withCode(TypeError, code, message);
  }
  return err;
}

/** A message send() cannot encode (JSON.stringify threw, or the value has no JSON form). */
function encodeError(message, cause) {
  return typeError('ERR_IPC_ENCODE', `message cannot be sent: ${message}`, cause ? { cause } : undefined);
}

/** A message that encodes to more than maxMessageSize. */
function tooLarge(size, max) {
  return rangeError(
    'ERR_IPC_MESSAGE_TOO_LARGE',
    `message encodes to ${size} bytes, over maxMessageSize (${max}); raise maxMessageSize on both ends or send less`,
    { size, maxMessageSize: max },
  );
}

module.exports = { ipcError, typeError, rangeError, fromNative, fromNativeThrow, encodeError, tooLarge };
