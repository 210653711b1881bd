// Hand-written public types of native-socket-ipc. (binding.d.ts is generated and internal.)

import { EventEmitter } from 'node:events';

/** Any value JSON can carry, or bytes. */
export type Message = unknown;

/** A delay in milliseconds, or a uniformly random delay between `min` and `max`. */
export type Delay = number | { min?: number; max?: number };

export interface ServerOptions {
  /** Path of the Unix socket file. Required. */
  socketFile: string;
  /** Largest encoded message accepted or sent, in bytes (3 + topic + payload). Default 8 MiB. */
  maxMessageSize?: number;
  /** Time a new connection has to complete the hello, in ms. Default 5000. */
  handshakeTimeout?: number;
}

export interface ClientOptions {
  /** Path of the Unix socket file. Required. */
  socketFile: string;
  /** Delay between connection attempts until a connection succeeds. Default 1000 ms. */
  retryDelay?: Delay;
  /** Delay before reconnecting after an established connection drops. Default 100 ms. */
  reconnectDelay?: Delay;
  /** Failed attempts in a row tolerated after the first before giving up. Default Infinity. */
  maxRetries?: number;
  /** Messages queued while not connected before send() reports ERR_IPC_QUEUE_FULL. Default 10000. */
  maxQueue?: number;
  /** Largest encoded message accepted or sent, in bytes. Default 8 MiB. */
  maxMessageSize?: number;
  /** Time the server has to answer the hello, in ms. Default 5000. */
  handshakeTimeout?: number;
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
    | 'ERR_INVALID_ARG_TYPE'
    | 'ERR_INVALID_ARG_VALUE'
    | 'ERR_OUT_OF_RANGE'
    | (string & {}); // Node's own errno codes: 'ENOENT', 'EADDRINUSE', 'EACCES', …
  clientId?: number;
  undelivered?: number;
  errno?: number;
  syscall?: string;
  path?: string;
}

export declare class Server extends EventEmitter {
  constructor(options: ServerOptions | string);
  /** Starts listening; 'listening' or 'error' follows. Throws ERR_IPC_ALREADY_LISTENING on a second call. */
  listen(): this;
  /** Sends to one client. Throws ERR_IPC_ENCODE / ERR_IPC_MESSAGE_TOO_LARGE / ERR_IPC_TOPIC_TOO_LONG. */
  send(topic: string | undefined, message: Message, clientId: number): void;
  /** Sends to every connected client. */
  broadcast(topic: string | undefined, message: Message): void;
  /** Flushes, ends every connection, removes the socket file. Idempotent; 'close' follows once. */
  close(): this;
  ref(): this;
  unref(): this;

  on(event: 'listening', listener: () => void): this;
  on(event: 'connection', listener: (clientId: number) => void): this;
  on(event: 'message', listener: (message: any, topic: string, clientId: number) => void): this;
  on(event: `message.${string}`, listener: (message: any, clientId: number) => void): this;
  on(event: 'messageError', listener: (error: IpcError, clientId: number) => void): this;
  on(event: 'connectionClose', listener: (clientId: number) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (error: IpcError) => void): this;
  once(event: 'listening', listener: () => void): this;
  once(event: 'connection', listener: (clientId: number) => void): this;
  once(event: 'message', listener: (message: any, topic: string, clientId: number) => void): this;
  once(event: `message.${string}`, listener: (message: any, clientId: number) => void): this;
  once(event: 'messageError', listener: (error: IpcError, clientId: number) => void): this;
  once(event: 'connectionClose', listener: (clientId: number) => void): this;
  once(event: 'close', listener: () => void): this;
  once(event: 'error', listener: (error: IpcError) => void): this;
}

export declare class Client extends EventEmitter {
  constructor(options: ClientOptions | string);
  /** Starts connecting (and retrying). Throws ERR_IPC_ALREADY_CONNECTING on a second call. */
  connect(): this;
  /** Sends to the server; queued while disconnected. Throws ERR_IPC_ENCODE / ERR_IPC_MESSAGE_TOO_LARGE / ERR_IPC_TOPIC_TOO_LONG. */
  send(topic: string | undefined, message: Message): void;
  /** Stops retrying, flushes, disconnects. Idempotent; 'close' follows once. */
  close(): this;
  ref(): this;
  unref(): this;

  on(event: 'connect' | 'reconnect' | 'disconnect' | 'close', listener: () => void): this;
  on(event: 'connectError', listener: (error: IpcError) => void): this;
  on(event: 'message', listener: (message: any, topic: string) => void): this;
  on(event: `message.${string}`, listener: (message: any) => void): this;
  on(event: 'messageError', listener: (error: IpcError) => void): this;
  on(event: 'error', listener: (error: IpcError) => void): this;
  once(event: 'connect' | 'reconnect' | 'disconnect' | 'close', listener: () => void): this;
  once(event: 'connectError', listener: (error: IpcError) => void): this;
  once(event: 'message', listener: (message: any, topic: string) => void): this;
  once(event: `message.${string}`, listener: (message: any) => void): this;
  once(event: 'messageError', listener: (error: IpcError) => void): this;
  once(event: 'error', listener: (error: IpcError) => void): this;
}
