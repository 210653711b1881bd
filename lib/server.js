'use strict';
// Server: listens on a Unix socket file, an abstract socket or a TCP port (optionally with TLS)
// and exchanges messages and requests with any number of clients. States: new -> starting -> listening -> closing -> closed (or new -> starting -> failed).

const { NativeServer } = require('../binding.js');
const { ipcError, typeError, fromNative } = require('./errors');
const { serverOptions } = require('./options');
const { Outgoing, topicOf } = require('./outgoing');
const { Calls, disconnectedError } = require('./calls');
const { EVENT, onMessage, onMessageError, onEvent } = require('./incoming');
// A record target of BROADCAST_UP_TO + n reaches the clients with ids up to n.
const { BROADCAST_UP_TO } = require('./kinds');
const { Transcoding } = require('./transcoder');
const { ConnectionSocket, connectionEnded, kCloseConnection } = require('./connection-socket');
const {
  Endpoint,
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
} = require('./endpoint');
const { kFailure, kEmitClose, kTranscoding, kTranscode, kEmitsClosed } = require('./endpoint');

// clientId -> who it is ({ pid, uid, gid } on Unix sockets, { address, family, port } on TCP).
const kClients = Symbol('clients');
const kListened = Symbol('listened');
const kAddress = Symbol('address');
// The highest client id announced by 'connection' so far: a broadcast reaches only those.
const kLastAnnounced = Symbol('lastAnnounced');
// clientId -> what the allow function threw, until its refusal is reported.
const kAllowThrew = Symbol('allowThrew');
const kOnNativeError = Symbol('onNativeError');
// clientId -> the spell past highWaterMark the core reported; 'drain' (clientId) ends it.
const kOver = Symbol('over');
const kNoLongerOver = Symbol('noLongerOver');
// clientId -> its ConnectionSocket, for the connections whose 'connection' had a listener.
const kSockets = Symbol('sockets');
// clientId -> the decoding state of its connection, with options.transcoder.
const kDecoders = Symbol('decoders');
const kEmitMessage = Symbol('emitMessage');

/**
 * A client id as a method takes it: a number, or the decimal digits of one ('7'), which is what
 * code written for @crussell52/socket-ipc (whose ids were strings) hands back after keeping ids
 * as object keys. Anything else is refused rather than reported as a client not connected.
 */
function clientIdOf(clientId) {
  if (typeof clientId === 'number') return clientId;
  if (typeof clientId === 'string' && /^[1-9][0-9]{0,9}$/.test(clientId)) return Number(clientId);
  const shown = typeof clientId === 'string' ? `string ${JSON.stringify(clientId.slice(0, 64))}` : clientId === null ? 'null' : typeof clientId;
  throw typeError(
    'ERR_INVALID_ARG_TYPE',
    `clientId must be a number, the id that 'connection' and 'message' give (or its decimal digits as a string, such as '7'); got ${shown}`,
  );
}

class Server extends Endpoint {
  constructor(options) {
    super();
    this[kOptions] = serverOptions(options);
    this[kListened] = false;
    this[kAddress] = null;
    this[kLastAnnounced] = 0;
    this[kClients] = new Map();
    this[kAllowThrew] = new Map();
    this[kOver] = new Map();
    this[kSockets] = new Map();
    this[kTranscoding] = this[kOptions].transcoder === undefined ? null : new Transcoding(this[kOptions].transcoder);
    this[kDecoders] = new Map();
    // The core answers each batch with the clients it took past highWaterMark: [id, spell, …].
    const noteOver = (over) => {
      for (let i = 0; i < over.length; i += 2) this[kOver].set(over[i], over[i + 1]);
      return true;
    };
    // Before listen() nobody is connected, so a broadcast then reaches no one.
    this[kOutgoing] = new Outgoing(
      true,
      this[kOptions].maxMessageSize,
      (batch) => this[kNative] === null || noteOver(this[kNative].send(batch)),
      (target, head, payload) => this[kNative] === null || noteOver(this[kNative].sendLarge(target, head, payload)),
      this[kOptions].highWaterMark,
      this[kOptions].protocol === 'socket-ipc',
      (texts, runs) => this[kNative] === null || noteOver(this[kNative].sendTexts(texts, texts.length, runs)),
    );
    // A client id is never reused, so it names its connection.
    this[kCalls] = new Calls(
      this[kOutgoing],
      this[kOptions].requestTimeout,
      true,
      (clientId) => clientId,
      (clientId) => this[kClients].has(clientId),
    );
  }

  /** Starts listening; 'listening' or 'error' follows. */
  listen() {
    if (this[kState] !== 'new') {
      const why = this[kState] === 'closed' && !this[kListened] && this[kNative] === null ? 'this Server was closed' : 'listen() was already called on this Server';
      throw ipcError('ERR_IPC_ALREADY_LISTENING', `${why}; create a new Server to listen again`);
    }
    const { maxConnections, allowUids, allowGids, allowAsk, sessionTimeout } = this[kOptions];
    this[kStart](NativeServer, { maxConnections, allowUids, allowGids, allowAsk: allowAsk === true, sessionTimeout });
    this[kState] = 'starting';
    return this;
  }

  /** True from 'listening' until close() is called. */
  get listening() {
    return this[kState] === 'listening';
  }

  /** Sends to one client. Returns false once that client's buffer has reached highWaterMark. */
  send(topic, message, clientId) {
    topic = topicOf(topic);
    clientId = clientIdOf(clientId);
    if (this[kRefuseIfClosed]()) return false;
    if (!this[kClients].has(clientId)) {
      this.emit(
        'error',
        ipcError('ERR_IPC_UNKNOWN_CLIENT', `client ${clientId} is not connected; the message was not sent`, { clientId }),
      );
      return false;
    }
    if (this[kTranscoding] === null) this[kOutgoing].append(clientId, topic, message);
    else this[kTranscode](topic, message, (bytes) => this[kOutgoing].append(clientId, topic, bytes));
    return !this[kOver].has(clientId);
  }

  /**
   * Sends to every connected client; the message is encoded once. Returns false when any
   * client's buffer has reached highWaterMark (see drained()).
   */
  broadcast(topic, message) {
    topic = topicOf(topic);
    if (this[kRefuseIfClosed]()) return false;
    // Not to a client that connects before this tick's batch reaches the core: it was not here.
    const target = BROADCAST_UP_TO + this[kLastAnnounced];
    if (this[kTranscoding] === null) this[kOutgoing].append(target, topic, message);
    else this[kTranscode](topic, message, (bytes) => this[kOutgoing].append(target, topic, bytes));
    return this[kOver].size === 0;
  }

  /**
   * Resolves once no client's buffer is at highWaterMark: each has drained, or has gone. A client
   * that stops reading holds it up until the heartbeat drops it (heartbeatTimeout), or until more
   * sends take it past maxBufferedBytes.
   */
  drained() {
    return this[kWhenDrained](this[kOver].size === 0);
  }

  [kNoLongerOver](clientId) {
    this[kOver].delete(clientId);
    if (this[kOver].size === 0 || this[kState] === 'closed') this[kReleaseDrained]();
  }

  /** Asks one client; resolves with the reply of its handler for `topic`. */
  request(clientId, topic, message, options = {}) {
    return promised(topic, () => {
      topic = topicOf(topic);
      clientId = clientIdOf(clientId);
      if (this[kClosed]) throw closedError(this, 'make requests');
      if (!this[kClients].has(clientId)) {
        throw ipcError('ERR_IPC_UNKNOWN_CLIENT', `client ${clientId} is not connected; the request on topic '${topic}' was not sent`, {
          clientId,
          topic,
        });
      }
      return this[kCalls].call(clientId, topic, message, options, clientId);
    });
  }

  /**
   * What is bound, once listening (else null): the socket path (`'unix:@name'` for an abstract
   * socket), or `{ address, family, port }` for TCP, with the port picked when 0 was asked.
   */
  address() {
    const address = this[kAddress];
    return address !== null && typeof address === 'object' ? { ...address } : address;
  }

  /**
   * Who a connected client is, as the kernel saw it connect: `{ pid, uid, gid }` on a Unix
   * socket (SO_PEERCRED), `{ address, family, port }` on TCP; undefined if not connected.
   */
  clientInfo(clientId) {
    const info = this[kClients].get(clientIdOf(clientId));
    return info === undefined ? undefined : { ...info };
  }

  [kInspect]() {
    return { clients: this[kClients].size };
  }

  /** Flushes what was sent, ends every connection, removes the socket file; 'close' follows once. */
  close() {
    const state = this[kState];
    if (state === 'closing' || state === 'closed') return this;
    this[kCalls].rejectWhere(() => true, closedRequestError(this));
    if (state === 'new' || state === 'failed') {
      this[kState] = 'closed';
      process.nextTick(() => this[kEmitClose]());
      return this;
    }
    this[kOutgoing].flush();
    this[kState] = 'closing';
    this[kNative].close();
    return this;
  }

  // ----- called by Incoming -----

  [onMessage](message, topic, clientId) {
    if (this[kTranscoding] === null) {
      this[kEmitMessage](message, topic, clientId);
      return;
    }
    // Each message is the next chunk for the peer's encoding: its connection's decoder says what it holds.
    let decoder = this[kDecoders].get(clientId);
    if (decoder === undefined) {
      decoder = this[kTranscoding].connection();
      this[kDecoders].set(clientId, decoder);
    }
    decoder.feed(
      message,
      (decoded, decodedTopic) => this[kEmitMessage](decoded, decodedTopic, clientId),
      (err) => this[onMessageError](err, clientId),
    );
  }

  [kEmitMessage](message, topic, clientId) {
    this.emit('message', message, topic, clientId);
    this.emit(topicEvent(topic), message, clientId);
  }

  /** A ConnectionSocket's end() / destroy(): closes that one client's connection. */
  [kCloseConnection](socket) {
    const native = this[kNative];
    if (native === null) return; // the server is closing: every connection ends anyway
    // What was sent to this client in this tick goes out before the close, as on net.Socket.
    this[kOutgoing].flush();
    native.disconnect(socket.clientId);
  }

  [onMessageError](err, clientId) {
    // A hello that timed out after the allow function threw: its refusal will not be reported.
    this[kAllowThrew].delete(clientId);
    err.clientId = clientId;
    this.emit('messageError', err, clientId);
  }

  [onEvent](kind, id, body) {
    switch (kind) {
      case EVENT.LISTENING:
        this[kListened] = true;
        this[kAddress] = JSON.parse(body.toString());
        if (this[kState] !== 'starting') break; // close() came first
        this[kState] = 'listening';
        this.emit('listening');
        break;
      case EVENT.CONNECTION: {
        const info = JSON.parse(body.toString());
        this[kClients].set(id, info);
        if (id > this[kLastAnnounced]) this[kLastAnnounced] = id;
        // The socket argument costs only where a listener can take it.
        if (this.listenerCount('connection') === 0) {
          this.emit('connection', id);
          break;
        }
        const socket = new ConnectionSocket(this, id, info.address === undefined ? undefined : info);
        this[kSockets].set(id, socket);
        this.emit('connection', id, socket);
        break;
      }
      case EVENT.ADMIT: {
        // The allow function decides; a throw counts as "no", and is reported with the refusal.
        let allowed = false;
        try {
          allowed = this[kOptions].allowFunction(JSON.parse(body.toString())) === true;
        } catch (err) {
          this[kAllowThrew].set(id, err);
        }
        if (this[kNative] !== null) this[kNative].admit(id, allowed);
        break;
      }
      case EVENT.AUTH_ERROR: {
        const threw = this[kAllowThrew].get(id);
        this[kAllowThrew].delete(id);
        this[kAuthError](body, threw);
        break;
      }
      case EVENT.DRAIN:
        if (this[kOver].get(id) !== body.readUInt32BE(0)) break; // a later spell is still running
        this[kNoLongerOver](id);
        this.emit('drain', id);
        break;
      case EVENT.SLOW_CLIENT:
        this.emit('slowClient', id);
        break;
      case EVENT.CLIENT_DISCONNECT:
        // At-least-once: the session is kept; messages to it wait, requests stay pending.
        if (body.length > 0) this.emit('clientDisconnect', id, fromNative(body.toString()));
        else this.emit('clientDisconnect', id);
        break;
      case EVENT.CLIENT_RECONNECT:
        this.emit('clientReconnect', id);
        break;
      case EVENT.CONNECTION_CLOSE: {
        this[kClients].delete(id);
        this[kDecoders].delete(id);
        this[kNoLongerOver](id);
        const reason = body.length > 0 ? fromNative(body.toString()) : undefined;
        this[kCalls].rejectWhere(
          (clientId) => clientId === id,
          (call) => disconnectedError(call.topic, `client ${id}`, reason, { clientId: id }),
        );
        const socket = this[kSockets].get(id);
        if (socket !== undefined) {
          this[kSockets].delete(id);
          connectionEnded(socket, reason);
        }
        if (reason) this.emit('connectionClose', id, reason);
        else this.emit('connectionClose', id);
        break;
      }
      case EVENT.ERROR:
        this[kOnNativeError](fromNative(body.toString()));
        break;
      case EVENT.CLOSE:
        this[kState] = 'closed';
        this[kAddress] = null;
        this[kNoLongerOver](undefined);
        this[kEmitClose]();
        break;
    }
  }

  [kOnNativeError](err) {
    if (!this[kListened] && err.code !== 'ERR_IPC_UNKNOWN_CLIENT') {
      // listen() failed: the core has stopped and will send nothing more.
      const closeRequested = this[kState] === 'closing';
      this[kState] = closeRequested ? 'closed' : 'failed';
      this[kFailure] = err;
      this.emit('error', err);
      if (closeRequested) this[kEmitClose]();
      return;
    }
    this.emit('error', err);
  }
}

// socket-ipc's deprecated alias of 'close'.
Server.prototype[kEmitsClosed] = true;

module.exports = { Server };
