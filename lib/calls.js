'use strict';
// Request/response on top of the message stream: ids, pending promises with their timeouts and
// AbortSignals, handlers by topic, and the replies they produce. Requests and replies are frames
// of their own (PROTOCOL.md, "Requests"), encoded into the same per-tick batch as messages, so
// they keep their order relative to messages and cost one boundary crossing per tick.

const { ipcError, typeError, rangeError } = require('./errors');
const {
  REPLY_STATUS: { HANDLER_FAILED, NO_HANDLER, BAD_REQUEST },
} = require('./kinds');

const MAX_TIMEOUT = 2 ** 31 - 1;
// A handler's error message is cut to this, so a long one cannot make the reply too large.
const MAX_REMOTE_MESSAGE = 4096;

function timeoutOf(options, fallback) {
  const timeout = options.timeout === undefined ? fallback : options.timeout;
  if (typeof timeout !== 'number') {
    throw typeError('ERR_INVALID_ARG_TYPE', `options.timeout must be a number of ms, got ${typeof timeout}`);
  }
  if (!Number.isInteger(timeout) || timeout < 0 || timeout > MAX_TIMEOUT) {
    throw rangeError('ERR_OUT_OF_RANGE', `options.timeout must be a whole number of ms from 0 (none) to ${MAX_TIMEOUT}, got ${String(timeout)}`);
  }
  return timeout;
}

function signalOf(options) {
  const { signal } = options;
  if (signal === undefined) return undefined;
  if (signal === null || typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw typeError('ERR_INVALID_ARG_TYPE', 'options.signal must be an AbortSignal');
  }
  return signal;
}

function abortedError(topic, signal) {
  return ipcError('ERR_IPC_ABORTED', `request on topic '${topic}' was aborted; any reply will be discarded`, { topic, cause: signal.reason });
}

function timeoutError(topic, timeout) {
  return ipcError(
    'ERR_IPC_TIMEOUT',
    `request on topic '${topic}' got no reply within ${timeout} ms; raise options.timeout (or requestTimeout), or check the other side's handler`,
    { topic, timeout },
  );
}

/** A request outstanding when its connection ended. */
function disconnectedError(topic, who, reason, props) {
  const why = reason ? ` (${reason.message})` : '';
  return ipcError(
    'ERR_IPC_DISCONNECTED',
    `the connection to ${who} ended before the reply to the request on topic '${topic}' arrived${why}; it may or may not have been handled`,
    { topic, ...props, ...(reason ? { cause: reason } : {}) },
  );
}

/** What a handler threw, reduced to what crosses the wire: message and code, never the stack. */
function remoteInfo(err) {
  if (err instanceof Error || (err !== null && typeof err === 'object' && 'message' in err)) {
    const info = { message: String(err.message).slice(0, MAX_REMOTE_MESSAGE) };
    if (typeof err.code === 'string' || typeof err.code === 'number') info.code = String(err.code).slice(0, 256);
    return info;
  }
  return { message: String(err).slice(0, MAX_REMOTE_MESSAGE) };
}

class Calls {
  /**
   * @param {import('./outgoing').Outgoing} outgoing  the owner's batch; requests join its messages
   * @param {number} defaultTimeout  requestTimeout
   * @param {boolean} withClientId  handlers get (message, clientId) (server) or (message)
   * @param {(from: number) => unknown} connectionOf  a token for the connection a request came on
   * @param {(from: number, token: unknown) => boolean} isCurrent  that connection still stands,
   *   so a late reply goes to the requester and not to whoever connects next
   */
  constructor(outgoing, defaultTimeout, withClientId, connectionOf, isCurrent) {
    this.outgoing = outgoing;
    this.defaultTimeout = defaultTimeout;
    this.withClientId = withClientId;
    this.connectionOf = connectionOf;
    this.isCurrent = isCurrent;
    this.pending = new Map();
    this.handlers = new Map();
    this.lastId = 0;
  }

  /**
   * Sends a request to `target` and returns the promise of its reply. `tag` marks the request
   * for `rejectWhere` (the client id, or the connection it will travel on). Throws only what the
   * caller turns into a rejection: bad options, a message that cannot be encoded.
   */
  call(target, topic, message, options, tag) {
    if (this.outgoing.socketIpc) throw notSupported('request()');
    if (options === null || typeof options !== 'object') {
      throw typeError('ERR_INVALID_ARG_TYPE', 'request options must be an object like { timeout, signal }');
    }
    const timeout = timeoutOf(options, this.defaultTimeout);
    const signal = signalOf(options);
    if (signal !== undefined && signal.aborted) return Promise.reject(abortedError(topic, signal));
    const id = this.lastId === 0xffffffff ? 1 : this.lastId + 1;
    this.outgoing.appendRequest(target, id, topic, message);
    this.lastId = id;
    return new Promise((resolve, reject) => {
      const call = { resolve, reject, target, topic, tag, timer: null, signal, onAbort: null };
      if (timeout > 0) {
        call.timer = setTimeout(() => this.fail(id, timeoutError(topic, timeout)), timeout);
        // The connection keeps the process alive while it is referenced; a lone timer does not.
        call.timer.unref();
      }
      if (signal !== undefined) {
        call.onAbort = () => this.fail(id, abortedError(topic, signal));
        signal.addEventListener('abort', call.onAbort, { once: true });
      }
      this.pending.set(id, call);
    });
  }

  /** Removes a pending request and its timer and abort listener; undefined if it is not pending. */
  take(id) {
    const call = this.pending.get(id);
    if (call === undefined) return undefined;
    this.pending.delete(id);
    if (call.timer !== null) clearTimeout(call.timer);
    if (call.onAbort !== null) call.signal.removeEventListener('abort', call.onAbort);
    return call;
  }

  fail(id, err) {
    const call = this.take(id);
    if (call !== undefined) call.reject(err);
  }

  /** Rejects every pending request whose tag matches, with the error `make(call)` builds. */
  rejectWhere(matches, make) {
    for (const [id, call] of this.pending) {
      if (matches(call.tag)) this.fail(id, make(call));
    }
  }

  get outstanding() {
    return this.pending.size;
  }

  // ----- replies arriving -----

  /** A reply from connection `from`; late replies (timed out, aborted) are discarded. */
  replied(requestId, message, from, decodeFailure) {
    const call = this.pending.get(requestId);
    if (call === undefined || call.target !== from) return;
    this.take(requestId);
    if (decodeFailure !== undefined) call.reject(Object.assign(decodeFailure, { topic: call.topic }));
    else call.resolve(message);
  }

  /**
   * A REPLY_ERROR from connection `from` (PROTOCOL.md, "Requests"): what each status means to the
   * requester. `infoJson` is its `{ message, code }` text, or null when it was not UTF-8.
   */
  replyFailed(requestId, status, infoJson, from) {
    const call = this.pending.get(requestId);
    if (call === undefined || call.target !== from) return;
    this.take(requestId);
    const { topic } = call;
    const info = remoteErrorOf(infoJson);
    if (status === NO_HANDLER) {
      call.reject(
        ipcError('ERR_IPC_NO_HANDLER', `the other side has no handler for topic '${topic}'; register one there with handle('${topic}', handler)`, { topic }),
      );
    } else if (status === BAD_REQUEST) {
      const why = info === null ? '' : `: ${info.message}`;
      call.reject(
        ipcError('ERR_IPC_DECODE', `the other side could not decode the request on topic '${topic}'${why}; check that both ends run native-socket-ipc or follow PROTOCOL.md`, { topic }),
      );
    } else if (status === HANDLER_FAILED) {
      const message = info === null ? 'the handler failed, and its error could not be read' : info.message;
      call.reject(ipcError('ERR_IPC_REMOTE', message, { topic, remoteCode: info?.code }));
    } else {
      // A status of a later version (or a broken peer): the request failed there, for a reason
      // this version cannot name.
      const why = info === null ? '' : `: ${info.message}`;
      call.reject(
        ipcError(
          'ERR_IPC_REMOTE',
          `the other side answered the request on topic '${topic}' with status ${status}, which this version of native-socket-ipc does not know${why}; upgrade this side`,
          { topic, remoteCode: info?.code, remoteStatus: status },
        ),
      );
    }
  }

  // ----- handlers -----

  handle(topic, handler) {
    if (this.outgoing.socketIpc) throw notSupported('handle()');
    if (typeof handler !== 'function') {
      throw typeError('ERR_INVALID_ARG_TYPE', `handle('${topic}', handler): handler must be a function, got ${typeof handler}`);
    }
    if (this.handlers.has(topic)) {
      throw ipcError('ERR_IPC_HANDLER_EXISTS', `a handler for topic '${topic}' is already registered; call removeHandler('${topic}') first`, { topic });
    }
    this.handlers.set(topic, handler);
  }

  removeHandler(topic) {
    return this.handlers.delete(topic);
  }

  /**
   * A request from connection `from`. The handler's result (or its failure) is the reply; one
   * that comes after the connection ended is dropped, since its requester was already told
   * ERR_IPC_DISCONNECTED.
   */
  requested(requestId, topic, message, from, decodeFailure) {
    if (decodeFailure !== undefined) {
      // Whatever the topic: a request that cannot be read cannot be handled.
      this.replyError(from, requestId, BAD_REQUEST, { message: decodeFailure.message, code: decodeFailure.code });
      return;
    }
    const handler = this.handlers.get(topic);
    if (handler === undefined) {
      this.replyError(from, requestId, NO_HANDLER, { message: `no handler for topic '${topic}'`, code: 'ERR_IPC_NO_HANDLER' });
      return;
    }
    let result;
    try {
      result = this.withClientId ? handler(message, from) : handler(message);
    } catch (err) {
      this.replyError(from, requestId, HANDLER_FAILED, remoteInfo(err));
      return;
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      const connection = this.connectionOf(from);
      const stillConnected = () => this.isCurrent(from, connection);
      result.then(
        (value) => stillConnected() && this.reply(from, requestId, value),
        (err) => stillConnected() && this.replyError(from, requestId, HANDLER_FAILED, remoteInfo(err)),
      );
    } else {
      this.reply(from, requestId, result);
    }
  }

  reply(target, requestId, value) {
    try {
      this.outgoing.appendReply(target, requestId, value);
    } catch (err) {
      // Not encodable (a BigInt, a cycle) or too large: the requester learns why, not a timeout.
      this.replyError(target, requestId, HANDLER_FAILED, {
        message: `the handler's reply cannot be sent: ${err.message}`,
        code: err.code,
      });
    }
  }

  replyError(target, requestId, status, info) {
    this.outgoing.appendReplyError(target, requestId, status, info);
  }
}

/**
 * A REPLY_ERROR's JSON as `{ message, code }` (code: a string, or undefined), or null when it
 * cannot be read: not UTF-8 (null), not JSON, not an object, or without a string message.
 */
function remoteErrorOf(infoJson) {
  if (infoJson === null) return null;
  let info;
  try {
    info = JSON.parse(infoJson);
  } catch {
    return null;
  }
  if (info === null || typeof info !== 'object' || typeof info.message !== 'string') return null;
  return { message: info.message, code: typeof info.code === 'string' ? info.code : undefined };
}

/** protocol 'socket-ipc' carries messages only, as @crussell52/socket-ipc does. */
function notSupported(what) {
  return ipcError(
    'ERR_IPC_NOT_SUPPORTED',
    `${what} needs protocol 'native': the socket-ipc wire has no requests; use send() and a reply topic, or move both ends to protocol 'native'`,
  );
}

module.exports = { Calls, disconnectedError };
