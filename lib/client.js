'use strict';
// Client: connects to a Server, retrying and reconnecting by its options, and queues what is sent
// while disconnected. States: new -> running -> closing -> closed. Peer (lib/peer.js) is the same
// one-connection endpoint with a different way of finding the other side, so both build on
// OneConnection here.

const net = require('node:net');
const { NativeClient } = require('../binding.js');
const { ipcError, fromNative } = require('./errors');
const { clientOptions } = require('./options');
const { Outgoing, topicOf } = require('./outgoing');
const { Calls, disconnectedError } = require('./calls');
const { EVENT, onMessage, onMessageError, onEvent } = require('./incoming');
const { Transcoding } = require('./transcoder');
const { ConnectionSocket, connectionEnded, kCloseConnection } = require('./connection-socket');
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
const { kFailure, kEmitClose, kTranscoding, kTranscode, kEmitsClosed } = require('./endpoint');

const kConnected = Symbol('connected');
const kQueued = Symbol('queued');
const kConnection = Symbol('connection');
const kQueueFull = Symbol('queueFull');
const kLifecycle = Symbol('lifecycle');
// The spell past highWaterMark the core reported (0: none); 'drain' ends it.
const kOver = Symbol('over');
// The ConnectionSocket of the current connection (a Client's), or null.
const kSocket = Symbol('socket');
const kEndSocket = Symbol('endSocket');
// With options.transcoder: the current connection's decoding state.
const kDecoder = Symbol('decoder');
const kEnqueue = Symbol('enqueue');
const kQueueRefuses = Symbol('queueRefuses');
// What a socket's remoteAddress, remotePort and remoteFamily say: a TCP peer's IP, when it is known.
const kRemote = Symbol('remote');
// Failed attempts in a row, and whether the warning about them was given.
const kFailedAttempts = Symbol('failedAttempts');
const kWarnIfUnheard = Symbol('warnIfUnheard');
const kWarned = Symbol('warned');
// A client that keeps failing where nobody listens says so once, after this many attempts.
const UNHEARD_FAILURES_BEFORE_WARNING = 5;

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
    this[kSocket] = null;
    this[kTranscoding] = this[kOptions].transcoder === undefined ? null : new Transcoding(this[kOptions].transcoder);
    this[kDecoder] = null;
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
      const name = this.constructor.name;
      const why = this[kState] === 'closed' && this[kNative] === null ? `this ${name} was closed` : `connect() was already called on this ${name}`;
      throw ipcError('ERR_IPC_ALREADY_CONNECTING', `${why}; create a new ${name} to connect again`);
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
    if (this[kRefuseIfClosed]() || this[kQueueRefuses](topic)) return false;
    if (this[kTranscoding] === null) this[kEnqueue](topic, message);
    // The queue may have filled up while a late encoder worked: it is checked again then.
    else this[kTranscode](topic, message, (bytes) => this[kQueueRefuses](topic) || this[kEnqueue](topic, bytes));
    return this[kOver] === 0;
  }

  /** While disconnected with maxQueue messages waiting: reports the refusal ('error') and says so. */
  [kQueueRefuses](topic) {
    if (this[kConnected] || this[kQueued] < this[kOptions].maxQueue) return false;
    this.emit('error', this[kQueueFull](topic, 'this message'));
    return true;
  }

  /** Hands a message (or a transcoder's bytes) to the batch; counted in the queue while disconnected. */
  [kEnqueue](topic, payload) {
    this[kOutgoing].append(BROADCAST, topic, payload);
    if (!this[kConnected]) this[kQueued]++;
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
    if (this[kTranscoding] === null) {
      this.emit('message', message, topic);
      this.emit(topicEvent(topic), message);
      return;
    }
    // Each message is the next chunk for the peer's encoding: this connection's decoder says what it holds.
    if (this[kDecoder] === null) this[kDecoder] = this[kTranscoding].connection();
    this[kDecoder].feed(
      message,
      (decoded, decodedTopic) => {
        this.emit('message', decoded, decodedTopic);
        this.emit(topicEvent(decodedTopic), decoded);
      },
      (err) => this[onMessageError](err),
    );
  }

  /** The current connection has ended: its socket emits 'end' or 'error', then 'close'. */
  [kEndSocket](reason) {
    const socket = this[kSocket];
    if (socket === null) return;
    this[kSocket] = null;
    connectionEnded(socket, reason);
  }

  [onMessageError](err) {
    this.emit('messageError', err);
  }

  /**
   * A client retries forever by default, so one pointed at the wrong place with no 'connectError'
   * or 'error' listener would fail in silence: after a few attempts it says so once, as a
   * process warning (which Node prints to stderr).
   */
  [kWarnIfUnheard](err) {
    this[kFailedAttempts] = (this[kFailedAttempts] || 0) + 1;
    if (this[kWarned] || this[kFailedAttempts] < UNHEARD_FAILURES_BEFORE_WARNING) return;
    if (this.listenerCount('connectError') > 0 || this.listenerCount('error') > 0) return;
    this[kWarned] = true;
    process.emitWarning(
      `${this.constructor.name} for ${err.address ?? err.path ?? 'its address'}: ${this[kFailedAttempts]} connection attempts failed, the last with ${err.message}. ` +
        "It keeps retrying. Listen to 'connectError' to see each failure, or set maxRetries to give up.",
      { type: 'NativeSocketIpcWarning', code: 'IPC_CONNECT_RETRYING' },
    );
  }

  [onEvent](kind, id, body) {
    // After close() only the outcome matters: no more connection lifecycle noise.
    const closing = this[kState] !== 'running';
    switch (kind) {
      case EVENT.CONNECT: {
        this[kFailedAttempts] = 0;
        const before = this[kConnection];
        this[kConnected] = true;
        this[kConnection]++;
        this[kQueued] = 0;
        // A new connection: a new decoder, as socket-ipc makes one per socket.
        this[kDecoder] = null;
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
        // As socket-ipc's socket 'close' came before its 'disconnect'; a close() in a socket
        // listener means no 'disconnect', as after any close().
        this[kEndSocket](reason);
        if (closing || this[kState] !== 'running') break;
        if (reason) this.emit('disconnect', reason);
        else this.emit('disconnect');
        break;
      }
      case EVENT.CONNECT_ERROR: {
        if (closing) break;
        const err = fromNative(body.toString());
        this.emit('connectError', err);
        this[kWarnIfUnheard](err);
        break;
      }
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
        this[kEndSocket](undefined);
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
    const { transport, host, port } = this[kOptions].address;
    const family = transport === 'tcp' ? net.isIP(host) : 0;
    this[kRemote] = family === 0 ? undefined : { address: host, family: family === 6 ? 'IPv6' : 'IPv4', port };
  }

  /** Starts connecting; retries until connected, 'close' or maxRetries. */
  connect() {
    return this[kStart](false);
  }

  [kLifecycle](event, reconnected) {
    if (event !== 'connect') return;
    // socket-ipc passed the connection's net.Socket; this stands for it (lib/connection-socket.js).
    const socket = new ConnectionSocket(this, undefined, this[kRemote]);
    this[kSocket] = socket;
    this.emit('connect', socket);
    if (reconnected) this.emit('reconnect', socket);
  }

  /**
   * A ConnectionSocket's end() / destroy(): the core can drop the connection only by closing the
   * Client, so that is what they do (no reconnect follows).
   */
  [kCloseConnection](socket) {
    if (socket === this[kSocket]) this.close();
  }
}

// socket-ipc's deprecated alias of 'close'.
Client.prototype[kEmitsClosed] = true;

module.exports = { Client, OneConnection, kLifecycle };
