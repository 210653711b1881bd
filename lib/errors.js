'use strict';
// One place that builds every error the package emits or throws, so codes stay stable.

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
  if (info.detail) message += ` (${info.detail})`;
  return withCode(Error, name, message, { errno, syscall: info.syscall, path: info.path });
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
