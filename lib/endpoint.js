'use strict';
// What Server, Client and Peer share: the native object's lifetime, ref/unref, and the
// request/response API, whose bookkeeping lives in lib/calls.js.

const { EventEmitter } = require('node:events');
const util = require('node:util');
const { describe } = require('./address');
const { ipcError, fromNative, fromNativeThrow } = require('./errors');
const { sensitiveOf } = require('./options');
const { topicOf } = require('./outgoing');
const { BROADCAST } = require('./kinds');
const { Incoming, onRequest, onReply, onReplyError, onMessageError } = require('./incoming');
const { messageIterator } = require('./iterate');
const debug = require('./debug');

const kNative = Symbol('native');
const kState = Symbol('state');
const kOptions = Symbol('options');
const kOutgoing = Symbol('outgoing');
const kCalls = Symbol('calls');
const kReferenced = Symbol('referenced');
const kStart = Symbol('start');
const kRefuseIfClosed = Symbol('refuseIfClosed');
const kClosed = Symbol('closed');
const kAuthError = Symbol('authError');
const kInspect = Symbol('inspect');
const kDrainWaiters = Symbol('drainWaiters');
const kWhenDrained = Symbol('whenDrained');
const kReleaseDrained = Symbol('releaseDrained');
// The error the endpoint stopped with by itself (listen() failed, a Client gave up), else undefined.
const kFailure = Symbol('failure');
const kEmitClose = Symbol('emitClose');
const kCloseEmitted = Symbol('closeEmitted');
const kCloseWaiters = Symbol('closeWaiters');
// The Transcoding of options.transcoder (lib/transcoder.js), or null.
const kTranscoding = Symbol('transcoding');
// Set on the prototypes of Server and Client: 'closed', socket-ipc's deprecated alias, comes just before 'close'.
const kEmitsClosed = Symbol('emitsClosed');
const kTranscode = Symbol('transcode');

// 'message.<topic>' names, built once per topic (bounded, so hostile topics cannot grow it).
const topicEvents = new Map();
function topicEvent(topic) {
  let name = topicEvents.get(topic);
  if (name === undefined) {
    name = `message.${topic}`;
    if (topicEvents.size < 4096) topicEvents.set(topic, name);
  }
  return name;
}

class Endpoint extends EventEmitter {
  constructor() {
    super();
    this[kState] = 'new';
    this[kNative] = null;
    this[kReferenced] = true;
    // drained() promises, settled together when the subclass says the buffers are below the mark.
    this[kDrainWaiters] = [];
    this[kFailure] = undefined;
    this[kCloseEmitted] = false;
    // closed() promises, settled when 'close' is emitted.
    this[kCloseWaiters] = [];
    if (debug.enabled) debug.watch(this, () => describe(this[kOptions].address));
  }

  /** A drained() promise: settled now when `drained` holds, else at the next kReleaseDrained. */
  [kWhenDrained](drained) {
    if (drained || this[kState] === 'closed') return Promise.resolve();
    return new Promise((resolve) => this[kDrainWaiters].push(resolve));
  }

  [kReleaseDrained]() {
    for (const resolve of this[kDrainWaiters].splice(0)) resolve();
  }

  /** Creates the native object, which starts at once; its wake-ups drain into our listeners. */
  [kStart](NativeClass, config) {
    // At-least-once: once a batch's listeners have run, the core acknowledges it to the sender.
    const afterBatch = this[kOptions].atLeastOnce ? () => this[kNative].delivered() : null;
    const incoming = new Incoming(() => this[kNative], this, afterBatch);
    const { tls, secret } = sensitiveOf(this[kOptions]);
    const o = this[kOptions];
    const common = {
      address: o.address,
      tls,
      secret,
      mode: o.mode,
      frameTimeout: o.frameTimeout,
      maxMessageSize: o.maxMessageSize,
      handshakeTimeout: o.handshakeTimeout,
      heartbeatInterval: o.heartbeatInterval,
      heartbeatTimeout: o.heartbeatTimeout,
      highWaterMark: o.highWaterMark,
      maxBufferedBytes: o.maxBufferedBytes,
      maxInboundBytes: o.maxInboundBytes,
      atLeastOnce: o.atLeastOnce,
      socketIpc: o.protocol === 'socket-ipc',
    };
    try {
      this[kNative] = new NativeClass({ ...common, ...config }, () => incoming.drain());
    } catch (err) {
      throw fromNativeThrow(err);
    }
    if (!this[kReferenced]) this[kNative].setReferenced(false);
    if (debug.enabled) debug.note(this, this[kOptions].atLeastOnce ? 'started (at-least-once)' : 'started');
  }

  /**
   * Emits 'close', the last event: closed() promises settle (their callbacks run after it). A
   * Server or Client emits its deprecated alias 'closed' just before, as socket-ipc does.
   */
  [kEmitClose]() {
    this[kCloseEmitted] = true;
    for (const resolve of this[kCloseWaiters].splice(0)) resolve();
    if (this[kEmitsClosed] === true) this.emit('closed');
    this.emit('close');
  }

  /**
   * An async iterator of the messages received from now on: `{ topic, message, clientId }` on a
   * Server, `{ topic, message }` on a Client or Peer (lib/iterate.js).
   */
  messages(options) {
    const state = { closed: this[kCloseEmitted], failure: this[kFailure], isFailure: (err) => err === this[kFailure] };
    return messageIterator(this, options, state, topicEvent);
  }

  /**
   * Sends through options.transcoder: `append(bytes)` queues the encoder's output, now or when the
   * encoder calls back. A late outcome finds the endpoint as it is then: after close() it is
   * refused as a send after close() is, and after 'close' it is dropped (nothing follows 'close').
   */
  [kTranscode](topic, message, append) {
    this[kTranscoding].encode(
      topic,
      message,
      (bytes) => {
        if (this[kCloseEmitted] || this[kRefuseIfClosed]()) return;
        append(bytes);
      },
      (err) => {
        if (!this[kCloseEmitted]) this.emit('error', err);
      },
    );
  }

  /** Resolves once 'close' has been emitted (at once if it was). Does not itself close. */
  closed() {
    if (this[kCloseEmitted]) return Promise.resolve();
    return new Promise((resolve) => this[kCloseWaiters].push(resolve));
  }

  /** A connection failed authentication (AUTH_ERROR record): 'authError' (error, info). */
  [kAuthError](body, cause) {
    const { error, info } = JSON.parse(body.toString());
    const err = fromNative(error);
    if (cause !== undefined) err.cause = cause;
    this.emit('authError', err, info);
  }

  /**
   * What util.inspect and console.log show: the state and the address, never the internals,
   * where the secret's copy, the TLS key and the bytes of recent messages live.
   */
  [util.inspect.custom](depth, options, inspect) {
    const o = this[kOptions];
    const shown = { state: this[kState], address: describe(o.address), tls: o.tls, secret: sensitiveOf(o).secret !== undefined };
    Object.assign(shown, this[kInspect]());
    return `${this.constructor.name} ${inspect(shown, { ...options, depth: 1 })}`;
  }

  /** Extra fields for util.inspect, from the subclass. */
  [kInspect]() {
    return {};
  }

  /** Closing or closed: nothing more can be sent. */
  get [kClosed]() {
    return this[kState] === 'closing' || this[kState] === 'closed';
  }

  /** After close(): emits ERR_IPC_CLOSED and returns true. */
  [kRefuseIfClosed]() {
    if (!this[kClosed]) return false;
    this.emit('error', closedError(this));
    return true;
  }

  /** Like net.Server#ref: a running endpoint keeps the process alive (the default). */
  ref() {
    this[kReferenced] = true;
    if (this[kNative] !== null) this[kNative].setReferenced(true);
    return this;
  }

  /** Like net.Server#unref: lets the process exit even while this is running. */
  unref() {
    this[kReferenced] = false;
    if (this[kNative] !== null) this[kNative].setReferenced(false);
    return this;
  }

  /** Answers requests on `topic`: the handler's return value (or resolved Promise) is the reply. */
  handle(topic, handler) {
    this[kCalls].handle(topicOf(topic), handler);
    return this;
  }

  /** Removes the handler for `topic`; true if there was one. */
  removeHandler(topic) {
    return this[kCalls].removeHandler(topicOf(topic));
  }

  // ----- called by Incoming -----

  [onRequest](requestId, topic, message, from, decodeFailure) {
    if (decodeFailure !== undefined) this[onMessageError](decodeFailure, from);
    this[kCalls].requested(requestId, topic, message, from, decodeFailure);
  }

  [onReply](requestId, message, from, decodeFailure) {
    this[kCalls].replied(requestId, message, from, decodeFailure);
  }

  [onReplyError](requestId, status, infoJson, from) {
    this[kCalls].replyFailed(requestId, status, infoJson, from);
  }
}

function closedError(endpoint, what = 'send', props) {
  return ipcError('ERR_IPC_CLOSED', `the ${endpoint.constructor.name} was closed; create a new one to ${what} again`, props);
}

/** For requests pending when their endpoint closed. */
function closedRequestError(endpoint) {
  return (call) => closedError(endpoint, 'make requests', { topic: call.topic });
}

/**
 * Runs `start` and turns anything it throws into a rejected promise: request() never throws, and
 * every rejection names the request's topic.
 */
function promised(topic, start) {
  try {
    return start();
  } catch (err) {
    if (err !== null && typeof err === 'object' && err.topic === undefined) err.topic = topic;
    return Promise.reject(err);
  }
}

module.exports = {
  Endpoint,
  BROADCAST,
  topicEvent,
  closedError,
  closedRequestError,
  promised,
  kNative,
  kState,
  kOptions,
  kOutgoing,
  kCalls,
  kStart,
  kRefuseIfClosed,
  kClosed,
  kAuthError,
  kInspect,
  kWhenDrained,
  kReleaseDrained,
  kFailure,
  kEmitClose,
  kCloseEmitted,
  kTranscoding,
  kTranscode,
  kEmitsClosed,
};

// `await using server = …` (where the runtime has it): close(), then wait for 'close'.
if (typeof Symbol.asyncDispose === 'symbol') {
  Object.defineProperty(Endpoint.prototype, Symbol.asyncDispose, {
    configurable: true,
    writable: true,
    enumerable: false,
    value: async function asyncDispose() {
      this.close();
      await this.closed();
    },
  });
}
