// Hand-written public types of native-socket-ipc. (binding.d.ts is generated and internal.)

import { EventEmitter } from 'node:events';

/** Any value JSON can carry, or bytes. */
export type Message = unknown;

/**
 * A delay in milliseconds; `{ min, max }`: a uniformly random delay between them; or
 * `{ min, max, factor }` (factor finite and > 1, min > 0): exponential backoff with jitter, where
 * attempt n (0-based) waits a random time in `[max(min, d/2), d]`, `d = min(max, min * factor^n)`.
 * A missing `min` or `max` means the option's default.
 */
export type Delay = number | { min?: number; max?: number; factor?: number };

/** A TCP address, as in net.connect. */
export interface TcpAddress {
  host: string;
  /** 0 (Server only) picks a free port; see server.address(). */
  port: number;
  /** Force IPv4 or IPv6; 0 (default) takes either. */
  family?: 0 | 4 | 6 | 'IPv4' | 'IPv6';
}

/** node:tls-style options; PEM as a string, a Buffer, or an array of them. */
export interface TlsOptions {
  /** Certificate chain (PEM). Required on a Server (and a Peer); on a Client for mutual TLS. */
  cert?: string | Buffer | Array<string | Buffer>;
  /** Private key (PEM: PKCS#8, PKCS#1 or SEC1). Goes with `cert`. */
  key?: string | Buffer;
  /** CAs to trust. Client default: Mozilla's public CA list. Server: the CAs of client certificates. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Server: ask clients for a certificate (mutual TLS; needs `ca`). Default false. */
  requestCert?: boolean;
  /** Client: verify the server's certificate. Server with requestCert: refuse clients without one. Default true. */
  rejectUnauthorized?: boolean;
  /** Client: the name the server's certificate must carry. Default: the host ('localhost' on Unix sockets). */
  servername?: string;
}

/** Options every endpoint (Server, Client, Peer) takes. */
export interface EndpointOptions {
  /**
   * Where to listen or connect: a socket path, 'unix:///path', 'unix:@name' (Linux abstract),
   * 'tcp://host:port', 'tcp4://…', 'tcp6://…', 'tls://host:port', or a TcpAddress.
   * One of address, socketFile or host/port is required.
   */
  address?: string | TcpAddress;
  /** Path of the Unix socket file (or any address string, as `address`). */
  socketFile?: string;
  /** TCP host, as in net.connect (with `port`). */
  host?: string;
  port?: number;
  family?: 0 | 4 | 6 | 'IPv4' | 'IPv6';
  /** TLS; on when given, or when the address is tls://. Works over Unix sockets too. */
  tls?: TlsOptions;
  /** Shared secret (>= 16 bytes), proved by HMAC in the hello, never sent. Both sides must have it. */
  secret?: string | Buffer;
  /** A frame whose first byte arrived must be complete within this many ms; 0 means no limit. Default 30000. */
  frameTimeout?: number;
  /** Largest encoded message accepted or sent, in bytes (3 + topic + payload). Default 8 MiB. */
  maxMessageSize?: number;
  /** Time a new connection has to complete the hello, in ms. Default 5000. */
  handshakeTimeout?: number;
  /** Ping after this many ms in which nothing arrived; 0 turns heartbeats off. Default 5000. */
  heartbeatInterval?: number;
  /** Drop the connection after this many ms in which nothing arrived. Default 2 × heartbeatInterval. */
  heartbeatTimeout?: number;
  /** Default `timeout` of request(), in ms; 0 means none. Default 5000. */
  requestTimeout?: number;
  /**
   * 'at-most-once' (default) or 'at-least-once': every message kept until the receiver's
   * listeners have run, re-sent after reconnects, never duplicated while both processes live.
   * Both ends must agree. Not for a Peer.
   */
  delivery?: 'at-most-once' | 'at-least-once';
  /** send() returns false once a connection's buffer reaches this many bytes. Default 1 MiB. */
  highWaterMark?: number;
  /**
   * Hard cap on a connection's buffer, in bytes. A server drops a client that would pass it
   * ('slowClient'); a client refuses the send (ERR_IPC_BUFFER_FULL). Default 64 MiB.
   */
  maxBufferedBytes?: number;
}

export interface ServerOptions extends EndpointOptions {
  /** Connections past this are refused in the hello (ERR_IPC_SERVER_FULL on the client). Default Infinity. */
  maxConnections?: number;
  /** Permissions of the socket file (e.g. 0o600), set before any client can connect. Socket files only. */
  mode?: number;
  /** Who may connect, checked before 'connection': uids/gids (Unix sockets) or a function. */
  allow?: { uids?: number[]; gids?: number[] } | ((info: ClientInfo) => boolean);
  /** With delivery 'at-least-once': how long a dropped client's session waits for it, in ms. Default 10000. */
  sessionTimeout?: number;
}

/**
 * Who a client is, as the kernel saw it connect: the process (SO_PEERCRED) on a Unix socket,
 * the remote address on TCP.
 */
export type ClientInfo = { pid: number; uid: number; gid: number } | { address: string; family: 'IPv4' | 'IPv6'; port: number };

/** What a Server is bound to: the socket path ('unix:@name' for abstract), or the TCP address. */
export type BoundAddress = string | { address: string; family: 'IPv4' | 'IPv6'; port: number };

export interface ClientOptions extends EndpointOptions {
  /**
   * Delay between failed connection attempts. Default 1000 ms. With a factor, n counts the
   * failed attempts since the start or the last drop.
   */
  retryDelay?: Delay;
  /**
   * Delay before reconnecting after an established connection drops. Default 100 ms. With a
   * factor, the failed attempts after a drop follow this schedule (n = 1, 2, …) instead of
   * `retryDelay`, until a connection succeeds.
   */
  reconnectDelay?: Delay;
  /** Failed attempts in a row tolerated after the first before giving up. Default Infinity. */
  maxRetries?: number;
  /** Messages and requests queued while not connected before ERR_IPC_QUEUE_FULL. Default 10000. */
  maxQueue?: number;
}

/** A Peer takes a Client's options; `retryDelay` paces attempts to join a busy or hung peer. */
export interface PeerOptions extends ClientOptions {
  /** Permissions of the socket file while this peer listens. Socket files only. */
  mode?: number;
}

export interface RequestOptions {
  /** Reject with ERR_IPC_TIMEOUT after this many ms; 0 means never. Default: requestTimeout. */
  timeout?: number;
  /** Aborting rejects with ERR_IPC_ABORTED; a late reply is discarded. */
  signal?: AbortSignal;
}

/** Every error the library emits or throws carries a stable `code`. */
export interface IpcError extends Error {
  code:
    | 'ERR_IPC_ALREADY_LISTENING'
    | 'ERR_IPC_ALREADY_CONNECTING'
    | 'ERR_IPC_UNKNOWN_CLIENT'
    | 'ERR_IPC_CLOSED'
    | 'ERR_IPC_RETRIES_EXHAUSTED'
    | 'ERR_IPC_QUEUE_FULL'
    | 'ERR_IPC_ENCODE'
    | 'ERR_IPC_DECODE'
    | 'ERR_IPC_MESSAGE_TOO_LARGE'
    | 'ERR_IPC_TOPIC_TOO_LONG'
    | 'ERR_IPC_PROTOCOL'
    | 'ERR_IPC_HANDSHAKE_TIMEOUT'
    | 'ERR_IPC_INVALID_PATH'
    | 'ERR_IPC_TIMEOUT'
    | 'ERR_IPC_ABORTED'
    | 'ERR_IPC_NO_HANDLER'
    | 'ERR_IPC_DISCONNECTED'
    | 'ERR_IPC_REMOTE'
    | 'ERR_IPC_HANDLER_EXISTS'
    | 'ERR_IPC_HEARTBEAT_TIMEOUT'
    | 'ERR_IPC_PEER_BUSY'
    | 'ERR_IPC_SERVER_FULL'
    | 'ERR_IPC_AUTH_FAILED'
    | 'ERR_IPC_NOT_ALLOWED'
    | 'ERR_IPC_TLS'
    | 'ERR_IPC_TLS_CONFIG'
    | 'ERR_IPC_FRAME_TIMEOUT'
    | 'ERR_IPC_DELIVERY_MISMATCH'
    | 'ERR_IPC_BUFFER_FULL'
    | 'ERR_IPC_SLOW_CLIENT'
    | 'ERR_IPC_SESSION_EXPIRED'
    | 'ERR_INVALID_ARG_TYPE'
    | 'ERR_INVALID_ARG_VALUE'
    | 'ERR_OUT_OF_RANGE'
    | (string & {}); // Node's own errno codes: 'ENOENT', 'EADDRINUSE', 'EACCES', …
  clientId?: number;
  undelivered?: number;
  /** The topic of the request that failed. */
  topic?: string;
  /** ERR_IPC_TIMEOUT: the timeout that ran out, in ms. */
  timeout?: number;
  /** ERR_IPC_REMOTE: the `code` of the error the remote handler threw, if it had one. */
  remoteCode?: string | number;
  errno?: number;
  syscall?: string;
  path?: string;
}

export declare class Server extends EventEmitter {
  constructor(options: ServerOptions | string);
  /** Starts listening; 'listening' or 'error' follows. Throws ERR_IPC_ALREADY_LISTENING on a second call. */
  listen(): this;
  /**
   * Sends to one client. Throws ERR_IPC_ENCODE / ERR_IPC_MESSAGE_TOO_LARGE / ERR_IPC_TOPIC_TOO_LONG.
   * Returns false once that client's buffer has reached highWaterMark ('drain' (clientId) follows).
   */
  send(topic: string | undefined, message: Message, clientId: number): boolean;
  /** Sends to every connected client. Returns false while any client is at highWaterMark. */
  broadcast(topic: string | undefined, message: Message): boolean;
  /** Resolves once no client's buffer is at highWaterMark (drained, or gone). */
  drained(): Promise<void>;
  /** Asks one client; resolves with its handler's reply. Never throws: every failure rejects. */
  request<R = any>(clientId: number, topic: string | undefined, message: Message, options?: RequestOptions): Promise<R>;
  /** Answers requests on `topic`. Throws ERR_IPC_HANDLER_EXISTS if the topic has one. */
  handle(topic: string | undefined, handler: (message: any, clientId: number) => unknown): this;
  /** Removes the handler of `topic`; true if there was one. */
  removeHandler(topic: string | undefined): boolean;
  /** Who the client is (see ClientInfo), or undefined if it is not connected. */
  clientInfo(clientId: number): ClientInfo | undefined;
  /** What is bound once listening (port 0 resolved), else null. */
  address(): BoundAddress | null;
  /** Flushes, ends every connection, removes the socket file. Idempotent; 'close' follows once. */
  close(): this;
  ref(): this;
  unref(): this;

  on(event: 'listening', listener: () => void): this;
  on(event: 'connection', listener: (clientId: number) => void): this;
  on(event: 'message', listener: (message: any, topic: string, clientId: number) => void): this;
  on(event: `message.${string}`, listener: (message: any, clientId: number) => void): this;
  on(event: 'messageError', listener: (error: IpcError, clientId: number) => void): this;
  on(event: 'connectionClose', listener: (clientId: number, reason?: IpcError) => void): this;
  on(event: 'drain' | 'slowClient' | 'clientReconnect', listener: (clientId: number) => void): this;
  on(event: 'clientDisconnect', listener: (clientId: number, reason?: IpcError) => void): this;
  /** A connection failed the secret, TLS or allow; it never became a 'connection'. */
  on(event: 'authError', listener: (error: IpcError, info: ClientInfo) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (error: IpcError) => void): this;
  once(event: 'listening', listener: () => void): this;
  once(event: 'connection', listener: (clientId: number) => void): this;
  once(event: 'message', listener: (message: any, topic: string, clientId: number) => void): this;
  once(event: `message.${string}`, listener: (message: any, clientId: number) => void): this;
  once(event: 'messageError', listener: (error: IpcError, clientId: number) => void): this;
  once(event: 'connectionClose', listener: (clientId: number, reason?: IpcError) => void): this;
  once(event: 'drain' | 'slowClient' | 'clientReconnect', listener: (clientId: number) => void): this;
  once(event: 'clientDisconnect', listener: (clientId: number, reason?: IpcError) => void): this;
  once(event: 'authError', listener: (error: IpcError, info: ClientInfo) => void): this;
  once(event: 'close', listener: () => void): this;
  once(event: 'error', listener: (error: IpcError) => void): this;
}

export declare class Client extends EventEmitter {
  constructor(options: ClientOptions | string);
  /** Starts connecting (and retrying). Throws ERR_IPC_ALREADY_CONNECTING on a second call. */
  connect(): this;
  /** Sends to the server; queued while disconnected. Throws ERR_IPC_ENCODE / ERR_IPC_MESSAGE_TOO_LARGE / ERR_IPC_TOPIC_TOO_LONG. */
  /** Returns false once the outgoing buffer has reached highWaterMark: wait for 'drain'. */
  send(topic: string | undefined, message: Message): boolean;
  /** Resolves at the next 'drain' (at once if send() would return true). */
  drained(): Promise<void>;
  /** Asks the server; resolves with its handler's reply. Queued while disconnected. Never throws. */
  request<R = any>(topic: string | undefined, message: Message, options?: RequestOptions): Promise<R>;
  /** Answers the server's requests on `topic`. Throws ERR_IPC_HANDLER_EXISTS if the topic has one. */
  handle(topic: string | undefined, handler: (message: any) => unknown): this;
  /** Removes the handler of `topic`; true if there was one. */
  removeHandler(topic: string | undefined): boolean;
  /** Stops retrying, flushes, disconnects. Idempotent; 'close' follows once. */
  close(): this;
  ref(): this;
  unref(): this;

  on(event: 'disconnect', listener: (reason?: IpcError) => void): this;
  on(event: 'connect' | 'reconnect' | 'close' | 'drain', listener: () => void): this;
  on(event: 'connectError', listener: (error: IpcError) => void): this;
  on(event: 'message', listener: (message: any, topic: string) => void): this;
  on(event: `message.${string}`, listener: (message: any) => void): this;
  on(event: 'messageError', listener: (error: IpcError) => void): this;
  on(event: 'error', listener: (error: IpcError) => void): this;
  once(event: 'disconnect', listener: (reason?: IpcError) => void): this;
  once(event: 'connect' | 'reconnect' | 'close' | 'drain', listener: () => void): this;
  once(event: 'connectError', listener: (error: IpcError) => void): this;
  once(event: 'message', listener: (message: any, topic: string) => void): this;
  once(event: `message.${string}`, listener: (message: any) => void): this;
  once(event: 'messageError', listener: (error: IpcError) => void): this;
  once(event: 'error', listener: (error: IpcError) => void): this;
}

/** The symmetric connection: the same code in two processes; the first listens, the next connects. */
export declare class Peer extends EventEmitter {
  constructor(options: PeerOptions | string);
  /** Starts: listens if the socket file is free (or stale), else connects. Throws ERR_IPC_ALREADY_CONNECTING on a second call. */
  connect(): this;
  /** 'server' or 'client' once a role is taken, else null. */
  readonly role: 'server' | 'client' | null;
  /** Returns false once the outgoing buffer has reached highWaterMark: wait for 'drain'. */
  send(topic: string | undefined, message: Message): boolean;
  /** Resolves at the next 'drain' (at once if send() would return true). */
  drained(): Promise<void>;
  request<R = any>(topic: string | undefined, message: Message, options?: RequestOptions): Promise<R>;
  handle(topic: string | undefined, handler: (message: any) => unknown): this;
  removeHandler(topic: string | undefined): boolean;
  close(): this;
  ref(): this;
  unref(): this;

  on(event: 'role', listener: (role: 'server' | 'client') => void): this;
  /** In the server role: a would-be partner failed the secret or TLS. */
  on(event: 'authError', listener: (error: IpcError, info: ClientInfo) => void): this;
  on(event: 'disconnect', listener: (reason?: IpcError) => void): this;
  on(event: 'connect' | 'close' | 'drain', listener: () => void): this;
  on(event: 'connectError', listener: (error: IpcError) => void): this;
  on(event: 'message', listener: (message: any, topic: string) => void): this;
  on(event: `message.${string}`, listener: (message: any) => void): this;
  on(event: 'messageError', listener: (error: IpcError) => void): this;
  on(event: 'error', listener: (error: IpcError) => void): this;
  once(event: 'role', listener: (role: 'server' | 'client') => void): this;
  once(event: 'authError', listener: (error: IpcError, info: ClientInfo) => void): this;
  once(event: 'disconnect', listener: (reason?: IpcError) => void): this;
  once(event: 'connect' | 'close' | 'drain', listener: () => void): this;
  once(event: 'connectError', listener: (error: IpcError) => void): this;
  once(event: 'message', listener: (message: any, topic: string) => void): this;
  once(event: `message.${string}`, listener: (message: any) => void): this;
  once(event: 'messageError', listener: (error: IpcError) => void): this;
  once(event: 'error', listener: (error: IpcError) => void): this;
}
