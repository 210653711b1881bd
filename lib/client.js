'use strict';
// Client: connects to a Server, retrying and reconnecting by its options, and queues what is sent
// while disconnected. States: new -> running -> closing -> closed. Peer (lib/peer.js) is the same
// one-connection endpoint with a different way of finding the other side, so both build on
// OneConnection here.

const { NativeClient } = require('../binding.js');
const { ipcError, fromNative } = require('./errors');
const { clientOptions } = require('./options');
const { Outgoing, topicOf } = require('./outgoing');
const { Calls, disconnectedError } = require('./calls');
const { EVENT, onMessage, onMessageError, onEvent } = require('./incoming');
const {
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
  kWhenDrained,
  kReleaseDrained,
} = require('./endpoint');
const { kFailure, kEmitClose } = require('./endpoint');

const kConnected = Symbol('connected');
const kQueued = Symbol('queued');
const kConnection = Symbol('connection');
const kQueueFull = Symbol('queueFull');
const kLifecycle = Symbol('lifecycle');
// The spell past highWaterMark the core reported (0: none); 'drain' ends it.
const kOver = Symbol('over');

function bufferFullError(refused, maxBufferedBytes) {
  return ipcError(
    'ERR_IPC_BUFFER_FULL',
    `${refused} message(s) were not sent: the outgoing buffer would pass maxBufferedBytes (${maxBufferedBytes} bytes); wait for 'drain' when send() returns false`,
    { undelivered: refused },
  );
}

function sessionLost() {
  return ipcError(
    'ERR_IPC_DISCONNECTED',
    'the server that received the request is gone (it restarted or closed), so its reply will not come; if it had not yet acknowledged the request, the new server handles it too, and that reply is discarded',
  );
}

function undeliveredError(undelivered) {
  return ipcError(
    'ERR_IPC_CLOSED',
    `the client stopped (close() or maxRetries) with ${undelivered} message(s) not yet sent; they were not delivered`,
    { undelivered },
  );
}

/** One connection to one other side, with a queue for while there is none. */
class OneConnection extends Endpoint {
  constructor(options, className) {
    super();
    this[kOptions] = clientOptions(options, className);
    this[kConnected] = false;
    this[kQueued] = 0;
    // Counts connections: 1 for the first. A request is tagged with the one it travels on.
    this[kConnection] = 0;
    this[kOver] = 0;
    // The core may have stopped (maxRetries) before this side heard of it, or the buffer may be
    // full: what it refuses is reported, not lost.
    const settle = (outcome) => {
      if (outcome.refused > 0) this.emit('error', undeliveredError(outcome.refused));
      if (outcome.full > 0) this.emit('error', bufferFullError(outcome.full, this[kOptions].maxBufferedBytes));
      if (outcome.over !== 0) this[kOver] = outcome.over;
      return true;
    };
    this[kOutgoing] = new Outgoing(
      false,
      this[kOptions].maxMessageSize,
      (batch) => this[kNative] !== null && settle(this[kNative].send(batch)),
      (target, head, payload) => this[kNative] !== null && settle(this[kNative].sendLarge(head, payload)),
      this[kOptions].highWaterMark,
      this[kOptions].protocol === 'socket-ipc',
      (texts, runs) => this[kNative] !== null && settle(this[kNative].sendTexts(texts, texts.length, runs)),
    );
    // At-least-once: a request survives reconnects (it is re-sent), so its reply may come on a
    // later connection.
    const sameConnection = this[kOptions].atLeastOnce
      ? () => this[kConnected]
      : (from, connection) => this[kConnected] && this[kConnection] === connection;
    this[kCalls] = new Calls(this[kOutgoing], this[kOptions].requestTimeout, false, () => this[kConnection], sameConnection);
  }

  /** Starts the native side; `symmetric` makes it a peer (listen or connect, src/peer.rs). */
  [kStart](symmetric) {
    if (this[kState] !== 'new') {
      throw ipcError(
        'ERR_IPC_ALREADY_CONNECTING',
        `connect() was already called on this ${this.constructor.name}; create a new ${this.constructor.name} to connect again`,
      );
    }
    const o = this[kOptions];
    super[kStart](NativeClient, {
      retryDelayMin: o.retryDelay.min,
      retryDelayMax: o.retryDelay.max,
      retryDelayFactor: o.retryDelay.factor,
      reconnectDelayMin: o.reconnectDelay.min,
      reconnectDelayMax: o.reconnectDelay.max,
      reconnectDelayFactor: o.reconnectDelay.factor,
      maxRetries: o.maxRetries,
      symmetric,
    });
    this[kState] = 'running';
    // What was sent before connect() goes out first.
    this[kOutgoing].flush();
    return this;
  }

  /** True while connected (from 'connect' until 'disconnect', close() or 'close'). */
  get connected() {
    return this[kConnected] && this[kState] === 'running';
  }

  /**
   * Sends to the other side; while disconnected the message waits in a queue of maxQueue
   * messages. Returns false once the outgoing buffer has reached highWaterMark: wait for 'drain'.
   */
  send(topic, message) {
    topic = topicOf(topic);
    if (this[kRefuseIfClosed]()) return false;
    const connected = this[kConnected];
    if (!connected && this[kQueued] >= this[kOptions].maxQueue) {
      this.emit('error', this[kQueueFull](topic, 'this message'));
      return false;
    }
    this[kOutgoing].append(BROADCAST, topic, message);
    if (!connected) this[kQueued]++;
    return this[kOver] === 0;
  }

  /** Resolves at the next 'drain' (at once if send() would return true). */
  drained() {
    return this[kWhenDrained](this[kOver] === 0);
  }

  /** Asks the other side; resolves with the reply of its handler for `topic`. While disconnected,
   * the request waits in the send queue and its timeout runs. */
  request(topic, message, options = {}) {
    return promised(topic, () => {
      topic = topicOf(topic);
      if (this[kClosed]) throw closedError(this, 'make requests');
      const connected = this[kConnected];
      if (!connected && this[kQueued] >= this[kOptions].maxQueue) throw this[kQueueFull](topic, 'this request');
      // Not connected: it travels on the next connection.
      const connection = connected ? this[kConnection] : this[kConnection] + 1;
      const reply = this[kCalls].call(BROADCAST, topic, message, options, connection);
      if (!connected) this[kQueued]++;
      return reply;
    });
  }

  [kQueueFull](topic, which) {
    return ipcError(
      'ERR_IPC_QUEUE_FULL',
      `not connected and ${this[kQueued]} messages are already queued (maxQueue); ${which} on topic '${topic}' was dropped`,
      { topic },
    );
  }

  /** Stops retrying, flushes what was sent and disconnects; 'close' follows once. */
  close() {
    const state = this[kState];
    if (state === 'closing' || state === 'closed') return this;
    this[kCalls].rejectWhere(() => true, closedRequestError(this));
    if (state === 'new') {
      this[kState] = 'closed';
      const undelivered = this[kOutgoing].discard();
      process.nextTick(() => {
        if (undelivered > 0) this.emit('error', undeliveredError(undelivered));
        this[kEmitClose]();
      });
      return this;
    }
    this[kOutgoing].flush();
    this[kState] = 'closing';
    this[kNative].close();
    return this;
  }

  // ----- called by Incoming -----

  [onMessage](message, topic) {
    this.emit('message', message, topic);
    this.emit(topicEvent(topic), message);
  }

  [onMessageError](err) {
    this.emit('messageError', err);
  }

  [onEvent](kind, id, body) {
    // After close() only the outcome matters: no more connection lifecycle noise.
    const closing = this[kState] !== 'running';
    switch (kind) {
      case EVENT.CONNECT: {
        const before = this[kConnection];
        this[kConnected] = true;
        this[kConnection]++;
        this[kQueued] = 0;
        // At-least-once, and the server did not know the session (it restarted, or it closed):
        // a request it had acknowledged will not be answered, so none made before waits on.
        if (this[kOptions].atLeastOnce && body[1] === 0 && before > 0) {
          this[kCalls].rejectWhere(
            (connection) => connection <= before,
            (call) => disconnectedError(call.topic, 'the other side', sessionLost()),
          );
        }
        if (!closing) this[kLifecycle]('connect', body[0] === 1);
        break;
      }
      case EVENT.DISCONNECT: {
        this[kConnected] = false;
        const reason = body.length > 0 ? fromNative(body.toString()) : undefined;
        const ended = this[kConnection];
        // At-least-once: pending requests are re-sent on the next connection instead.
        if (!this[kOptions].atLeastOnce) {
          this[kCalls].rejectWhere(
            (connection) => connection <= ended,
            (call) => disconnectedError(call.topic, 'the other side', reason),
          );
        }
        if (closing) break;
        if (reason) this.emit('disconnect', reason);
        else this.emit('disconnect');
        break;
      }
      case EVENT.CONNECT_ERROR:
        if (!closing) this.emit('connectError', fromNative(body.toString()));
        break;
      case EVENT.ERROR: {
        const err = fromNative(body.toString());
        // The core stops after any error it reports, except an accept failure (a Peer listening)
        // and the count of messages it could not deliver, which comes after the cause.
        if (!closing && this[kFailure] === undefined && err.code !== 'ERR_IPC_CLOSED' && err.syscall !== 'accept') this[kFailure] = err;
        this.emit('error', err);
        break;
      }
      case EVENT.AUTH_ERROR:
        // A Peer in the server role refused a would-be partner.
        this[kAuthError](body);
        break;
      case EVENT.DRAIN:
        if (body.readUInt32BE(0) !== this[kOver]) break; // a later spell is still running
        this[kOver] = 0;
        this[kReleaseDrained]();
        this.emit('drain');
        break;
      case EVENT.CLOSE: {
        this[kState] = 'closed';
        this[kConnected] = false;
        this[kCalls].rejectWhere(() => true, closedRequestError(this));
        // Sent in this tick, after the core stopped: never reached it.
        const undelivered = this[kOutgoing].discard();
        if (undelivered > 0) this.emit('error', undeliveredError(undelivered));
        this[kReleaseDrained]();
        this[kEmitClose]();
        break;
      }
      default:
        if (!closing) this[kLifecycle](kind, body);
    }
  }
}

class Client extends OneConnection {
  constructor(options) {
    super(options, 'Client');
  }

  /** Starts connecting; retries until connected, 'close' or maxRetries. */
  connect() {
    return this[kStart](false);
  }

  [kLifecycle](event, reconnected) {
    if (event !== 'connect') return;
    this.emit('connect');
    if (reconnected) this.emit('reconnect');
  }
}

module.exports = { Client, OneConnection, kLifecycle };
