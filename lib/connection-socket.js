'use strict';
// ConnectionSocket: the socket argument of a Server's 'connection' (clientId, socket) and of a
// Client's 'connect' / 'reconnect' (socket), where @crussell52/socket-ipc passes a net.Socket.
//
// What it is: an EventEmitter that stands for one connection, whose real socket the Rust core
// owns. It emits, once the connection has ended:
//   - 'end' ()            the connection ended without an error (either side closed it, or the
//                         peer went away: a reset cannot be told from an end here);
//   - 'error' (err)       the connection was dropped for a reason (heartbeat timeout, bad bytes, a
//                         slow client, the server's own reason, …), with that reason. Only when
//                         something listens: an unheard 'error' never crashes the process;
//   - 'close' (hadError)  always, last, as net.Socket's: true after an 'error'.
// With delivery 'at-least-once' a server's socket stands for the client's session: it ends at
// 'connectionClose', not at 'clientDisconnect'.
// Read-only, as on net.Socket: destroyed, readyState ('open' / 'closed'), pending and connecting
// (always false: it exists once connected), remoteAddress / remotePort / remoteFamily (a TCP
// peer's; undefined on Unix sockets and named pipes, as net.Socket has them there), and, on a
// server, clientId.
// end() / destroy() close that one connection: on a Server, what was sent to that client goes out
// first, then its connection ends ('connectionClose' follows; with at-least-once its session
// ends too; the client reconnects if it is set to). destroy() does not discard what was already
// sent, unlike net.Socket's. On a Client they close the Client (client.close()), since a client
// has one connection and would otherwise retry.
//
// What it is not: a net.Socket. No write() / pipe() / Readable or Writable side (send with
// server.send() / client.send()), no 'data', 'timeout', 'drain', 'ready' or 'connect' events, no
// setEncoding(), setTimeout(), setKeepAlive(), setNoDelay(), pause() / resume(), address(),
// ref() / unref(), bytesRead / bytesWritten, localAddress / localPort.
//
// Cost: made only when a listener can receive it (Server: when 'connection' has a listener), kept
// in one Map entry per connection until it ends, and never touched by messages.

const { EventEmitter } = require('node:events');

const kEndpoint = Symbol('endpoint');
const kClientId = Symbol('clientId');
const kRemote = Symbol('remote');
const kState = Symbol('state');
const kDestroyError = Symbol('destroyError');
// Implemented by the endpoint: close this socket's connection.
const kCloseConnection = Symbol('closeConnection');

const OPEN = 0;
// destroy() was called: destroyed already reads true, 'close' follows when the connection ends.
const DESTROYING = 1;
const CLOSED = 2;

class ConnectionSocket extends EventEmitter {
  /**
   * @param {object} endpoint  the Server or Client; implements [kCloseConnection](socket)
   * @param {number | undefined} clientId  on a server, the client's id
   * @param {object | undefined} remote  `{ address, family, port }` of a TCP peer, else undefined
   */
  constructor(endpoint, clientId, remote) {
    super();
    this[kEndpoint] = endpoint;
    this[kClientId] = clientId;
    this[kRemote] = remote;
    this[kState] = OPEN;
    this[kDestroyError] = undefined;
  }

  /** On a server, the client's id (as 'connection' gave it); undefined on a client. */
  get clientId() {
    return this[kClientId];
  }

  get destroyed() {
    return this[kState] !== OPEN;
  }

  get readyState() {
    return this[kState] === OPEN ? 'open' : 'closed';
  }

  get pending() {
    return false;
  }

  get connecting() {
    return false;
  }

  get remoteAddress() {
    return this[kRemote] === undefined ? undefined : this[kRemote].address;
  }

  get remotePort() {
    return this[kRemote] === undefined ? undefined : this[kRemote].port;
  }

  get remoteFamily() {
    return this[kRemote] === undefined ? undefined : this[kRemote].family;
  }

  /** Closes the connection after what was sent on it; 'end' and 'close' follow. */
  end() {
    if (this[kState] === OPEN) this[kEndpoint][kCloseConnection](this);
    return this;
  }

  /** Closes the connection; 'close' follows (with 'error' first when `error` is given and heard). */
  destroy(error) {
    if (this[kState] !== OPEN) return this;
    // As on net.Socket, destroyed reads true at once.
    this[kState] = DESTROYING;
    if (error !== undefined && error !== null) this[kDestroyError] = error;
    // Both close the same way: what was already sent still goes out (see the header).
    this[kEndpoint][kCloseConnection](this);
    return this;
  }
}

/**
 * Called by the endpoint when the connection has ended; `reason` is why this side or the other
 * dropped it (undefined for an ordinary end). Emits 'end' or 'error', then 'close', once.
 */
function connectionEnded(socket, reason) {
  const state = socket[kState];
  if (state === CLOSED) return;
  socket[kState] = CLOSED;
  const error = reason !== undefined ? reason : socket[kDestroyError];
  socket[kDestroyError] = undefined;
  if (error !== undefined) {
    if (socket.listenerCount('error') > 0) socket.emit('error', error);
  } else if (state === OPEN) {
    // destroy() does not wait for the other side's end, so net.Socket emits no 'end' after it.
    socket.emit('end');
  }
  socket.emit('close', error !== undefined);
}

module.exports = { ConnectionSocket, connectionEnded, kCloseConnection };
