/// <reference types="node" />
// Hand-written public types of native-socket-ipc. (binding.d.ts is generated and internal.)
//
// Server, Client and Peer take two optional type arguments: a map of topic -> message type,
// and a map of request topic -> { request, reply }. Both default to "any topic, any payload",
// so code that passes none compiles as it always did. The maps are a compile-time contract that
// both ends share; nothing checks them at run time.
//
// The reference above pulls in @types/node (Buffer, node:events, Symbol.asyncDispose) even where
// the project's tsconfig does not list it (TypeScript 6 no longer includes @types by default).

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
   * a Windows named pipe ('\\\\.\\pipe\\name'), 'tcp://host:port', 'tcp4://…', 'tcp6://…',
   * 'tls://host:port', or a TcpAddress. `localEndpoint(name)` gives one that suits the platform.
   * One of address, socketFile or host/port is required.
   */
  address?: string | TcpAddress;
  /** Path of the Unix socket file, or the Windows pipe name (or any address string, as `address`). */
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
  /**
   * Bytes one connection's input may hold until the listeners are done with it: messages and
   * replies not yet delivered, and requests not yet answered. At the cap the connection is not
   * read until the listeners catch up, so the kernel pushes back on the sender; nothing is
   * dropped. Default 4 MiB.
   */
  maxInboundBytes?: number;
  /**
   * @crussell52/socket-ipc's pluggable codec for messages (its interface). Each encoder output
   * travels as one message frame, and the other side feeds those bytes, in order, to its own
   * transcoder's decoder: both ends need the same transcoder. Requests and replies are not
   * transcoded. Not with `protocol: 'socket-ipc'` (ERR_IPC_NOT_SUPPORTED). null: the default.
   */
  transcoder?: Transcoder | null;
}

/** socket-ipc's message as a transcoder sees it. */
export interface MessageWrapper {
  topic: string;
  message: any;
}

/** Turns one message into what goes on the wire: a string (sent as UTF-8) or bytes; null skips it. */
export type TranscoderEncoder = (wrapper: MessageWrapper, callback: (error: Error | null, data?: string | Uint8Array | null) => void) => void;

/** Reads the next chunk (a string in `socketEncoding`) and calls back with the messages it completes. */
export type TranscoderDecoder = (chunk: string, callback: (error: Error | null, wrappers?: MessageWrapper[]) => void) => void;

/** The `transcoder` option: socket-ipc's { socketEncoding, createEncoder, createDecoder }. */
export interface Transcoder {
  /** The encoding the decoder's chunks are read in. Default 'utf8'. */
  socketEncoding?: BufferEncoding | null;
  /** Called once per endpoint. */
  createEncoder(): TranscoderEncoder;
  /** Called once per connection. */
  createDecoder(): TranscoderDecoder;
}

/**
 * The wire protocol of a Server or Client. 'native' (default): this package's own. 'socket-ipc':
 * the @crussell52/socket-ipc 0.4 wire (`JSON.stringify({ topic, message }) + "\0\0"`), so a
 * native Server can serve socket-ipc clients and a native Client can talk to a socket-ipc server.
 * With 'socket-ipc': no `secret`, `tls` or `delivery: 'at-least-once'` (ERR_INVALID_ARG_VALUE),
 * no heartbeats, and request() rejects / handle() throws ERR_IPC_NOT_SUPPORTED.
 */
export type WireProtocol = 'native' | 'socket-ipc';

export interface ServerOptions extends EndpointOptions {
  /** Connections past this are refused in the hello (ERR_IPC_SERVER_FULL on the client). Default Infinity. */
  maxConnections?: number;
  /** Permissions of the socket file (e.g. 0o600), set before any client can connect. Socket files only. */
  mode?: number;
  /** Who may connect, checked before 'connection': uids/gids (Unix sockets) or a function. */
  allow?: { uids?: number[]; gids?: number[] } | ((info: ClientInfo) => boolean);
  /** With delivery 'at-least-once': how long a dropped client's session waits for it, in ms. Default 10000. */
  sessionTimeout?: number;
  /** 'native' (default) or 'socket-ipc' (to serve @crussell52/socket-ipc clients). See WireProtocol. */
  protocol?: WireProtocol;
}

/**
 * Who a client is, as the kernel saw it connect: the process (SO_PEERCRED; getpeereid and
 * LOCAL_PEEREPID on macOS) on a Unix socket, the process on a Windows named pipe (no uid or gid
 * there: null), the remote address on TCP.
 */
export type ClientInfo =
  | { pid: number; uid: number; gid: number }
  | { pid: number; uid: null; gid: null }
  | { address: string; family: 'IPv4' | 'IPv6'; port: number };

/** What a Server is bound to: the socket path ('unix:@name' for abstract, the pipe name on Windows), or the TCP address. */
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
  /** 'native' (default) or 'socket-ipc' (to talk to a @crussell52/socket-ipc server). See WireProtocol. */
  protocol?: WireProtocol;
}

/** A Peer takes a Client's options; `retryDelay` paces attempts to join a busy or hung peer. */
export interface PeerOptions extends ClientOptions {
  /** Permissions of the socket file while this peer listens. Socket files only. */
  mode?: number;
  /** A Peer speaks only the native protocol ('socket-ipc' throws ERR_INVALID_ARG_VALUE). */
  protocol?: 'native';
}

export interface RequestOptions {
  /** Reject with ERR_IPC_TIMEOUT after this many ms; 0 means never. Default: requestTimeout. */
  timeout?: number;
  /** Aborting rejects with ERR_IPC_ABORTED; a late reply is discarded. */
  signal?: AbortSignal;
}

/** Options of messages(). */
export interface MessagesOptions<Topic extends string = string> {
  /** Only messages on this topic. Default: every topic. */
  topic?: Topic;
  /**
   * Aborting ends the iteration: the pending (or next) step rejects with an `AbortError`
   * (`name` 'AbortError', `code` 'ABORT_ERR'), as with `events.on()`.
   */
  signal?: AbortSignal;
}

/** The stable `code` of every error the library emits, throws or rejects with. */
export type IpcErrorCode =
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
  | 'ERR_IPC_NOT_SUPPORTED'
  | 'ERR_IPC_UNSAFE_DIRECTORY'
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_OUT_OF_RANGE'
  | (string & {}); // Node's own codes: 'ENOENT', 'EADDRINUSE', 'EACCES', 'ABORT_ERR', …

/** Every error the library emits or throws carries a stable `code`. */
export interface IpcError extends Error {
  code: IpcErrorCode;
  clientId?: number;
  undelivered?: number;
  /** The topic of the request that failed. */
  topic?: string;
  /** ERR_IPC_TIMEOUT: the timeout that ran out, in ms. */
  timeout?: number;
  /** ERR_IPC_REMOTE: the `code` of the error the remote handler threw, if it had one. */
  remoteCode?: string;
  /** ERR_IPC_REMOTE: the status of a REPLY_ERROR this version does not know. */
  remoteStatus?: number;
  /** ERR_IPC_MESSAGE_TOO_LARGE (thrown): the encoded size, and the limit it passed. */
  size?: number;
  maxMessageSize?: number;
  errno?: number;
  syscall?: string;
  path?: string;
  /** OS errors: the same as `path` (the name @crussell52/socket-ipc gave it). */
  address?: string;
}

/** The events of a ConnectionSocket. */
export type ConnectionSocketEvents = {
  /** The connection ended without an error. */
  end: [];
  /** The connection was dropped for a reason (only emitted when something listens). */
  error: [error: IpcError];
  /** Always, last: `hadError` after an 'error'. */
  close: [hadError: boolean];
};

/**
 * The socket argument of a Server's 'connection' and a Client's 'connect' / 'reconnect', where
 * @crussell52/socket-ipc passes a net.Socket: an EventEmitter standing for one connection, whose
 * real socket the native core owns. Not a net.Socket: nothing is written through it (use send()),
 * and it has no 'data' event (use 'message').
 */
export declare class ConnectionSocket extends TypedEmitter<ConnectionSocketEvents> {
  private constructor();
  /** On a server, the client's id; undefined on a client. */
  readonly clientId: number | undefined;
  readonly destroyed: boolean;
  readonly readyState: 'open' | 'closed';
  /** Always false: the object exists once connected. */
  readonly pending: boolean;
  readonly connecting: boolean;
  /** A TCP peer's address; undefined on Unix sockets and named pipes. */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: 'IPv4' | 'IPv6' | undefined;
  /** Closes this connection after what was sent on it (on a Client: closes the Client). */
  end(): this;
  /** Closes this connection; `error` goes to an 'error' listener first (on a Client: closes the Client). */
  destroy(error?: Error): this;
}

// ----- Typed topics -----

/**
 * The message map of untyped code: any topic, any payload. Pass your own as the first type
 * argument (`new Server<Messages>(…)`): an interface or type whose keys are the topics and whose
 * values are the messages they carry. The same map types both directions.
 */
export interface AnyMessages {
  [topic: string]: any;
}

/** One request topic: what a request carries, and what its reply carries. */
export interface RequestSpec<Request = unknown, Reply = unknown> {
  request: Request;
  reply: Reply;
}

/** The request map of untyped code: any topic, any request, any reply. */
export interface AnyRequests {
  [topic: string]: RequestSpec<any, any>;
}

/** What a request map must be: every topic maps to `{ request, reply }` (see RequestSpec). */
export type RequestMap<Requests> = { [Topic in keyof Requests]: RequestSpec };

/** The topics of a map: its string keys (`string` for AnyMessages and AnyRequests). */
export type TopicOf<Map> = Extract<keyof Map, string>;

/** What a request on `Topic` carries. */
export type RequestOf<Requests extends RequestMap<Requests>, Topic extends keyof Requests> = Requests[Topic]['request'];

/** What the reply to a request on `Topic` carries. */
export type ReplyOf<Requests extends RequestMap<Requests>, Topic extends keyof Requests> = Requests[Topic]['reply'];

/** Where topics are not typed, a missing topic is allowed (it becomes 'none'); where they are, it is not. */
type MissingTopic<Map> = string extends TopicOf<Map> ? undefined : never;

/**
 * What request<Reply>() may name by hand: anything where requests are not typed; nothing where
 * they are (the map says what the reply is).
 */
type HandTypedReply<Requests> = string extends TopicOf<Requests> ? unknown : never;

/** The type a request() resolves with: the one given by hand, else the map's reply. */
type ReplyType<Requests extends RequestMap<Requests>, Topic extends keyof Requests, Reply> = [Reply] extends [never]
  ? ReplyOf<Requests, Topic>
  : Reply;

/** A message argument, and the arguments after it; the message may be left out where its type takes undefined. */
type MessageArgs<Payload, Rest extends unknown[] = []> = undefined extends Payload
  ? [message?: Payload, ...rest: Rest]
  : [message: Payload, ...rest: Rest];

/** A handler's reply: the value, or a promise of it. */
type ReplyValue<Reply> = Reply | PromiseLike<Reply>;

/**
 * For each topic of a map, `{ topic, message }` plus `Extra`: a union discriminated by `topic`.
 * Every key counts, an index signature too (`[topic: string]: unknown` next to known topics).
 */
type EachMessage<Messages, Topic, Extra> = string extends Topic
  ? { [T in keyof Messages]: T extends string ? { topic: T; message: Messages[T] } & Extra : never }[keyof Messages]
  : { [T in Topic & keyof Messages]: { topic: T; message: Messages[T] } & Extra }[Topic & keyof Messages];

/** An item of client.messages() and peer.messages(): one message and its topic, a union discriminated by `topic`. */
export type ReceivedMessage<Messages extends object = AnyMessages, Topic extends TopicOf<Messages> = TopicOf<Messages>> = Flat<
  EachMessage<Messages, Topic, {}>
>;

/** An item of server.messages(): one message, its topic, and the client that sent it. */
export type ServerReceivedMessage<Messages extends object = AnyMessages, Topic extends TopicOf<Messages> = TopicOf<Messages>> = Flat<
  EachMessage<Messages, Topic, { clientId: number }>
>;

/** Shows an intersection as one object type. */
type Flat<T> = T extends unknown ? { [K in keyof T]: T[K] } : never;

/** The `'message'` event's arguments: for each topic, `[message, topic, ...Rest]`. */
type MessageEventArgs<Messages, Rest extends unknown[]> = {
  [T in keyof Messages]: T extends string ? [message: Messages[T], topic: T, ...rest: Rest] : never;
}[keyof Messages];

/** The `'message.<topic>'` events of a message map. */
type TopicEvents<Messages, Rest extends unknown[]> = {
  [T in keyof Messages as T extends string ? `message.${T}` : never]: [message: Messages[T], ...rest: Rest];
};

/** A listener of event `Event` of an event map (ServerEvents, ClientEvents, PeerEvents). */
export type IpcListener<Events, Event extends keyof Events> = (...args: Extract<Events[Event], unknown[]>) => void;

/** The events of a Server and their listeners' arguments. */
export type ServerEvents<Messages extends object = AnyMessages> = {
  /** The socket is bound and accepting connections. */
  listening: [];
  /**
   * A client completed the hello. Ids are positive and never reused within one server. `socket`
   * stands for that connection (as socket-ipc's net.Socket did).
   */
  connection: [clientId: number, socket: ConnectionSocket];
  /** Any message from a client. With a typed map, a union discriminated by `topic`. */
  message: MessageEventArgs<Messages, [clientId: number]>;
  /** A client sent bytes that are not the protocol (that connection is closed), or JSON that does not parse. */
  messageError: [error: IpcError, clientId: number];
  /** A connection failed the secret, TLS or allow; it never became a 'connection'. */
  authError: [error: IpcError, info: ClientInfo];
  /** A client's connection ended; `reason` when this side dropped it. */
  connectionClose: [clientId: number, reason?: IpcError];
  /** That client's buffer, which had reached highWaterMark, is down to half of it. */
  drain: [clientId: number];
  /** The client's buffer would have passed maxBufferedBytes: it was dropped ('connectionClose' follows). */
  slowClient: [clientId: number];
  /** 'at-least-once' only: the client's connection dropped and its session waits sessionTimeout for it. */
  clientDisconnect: [clientId: number, reason?: IpcError];
  /** 'at-least-once' only: the client came back and resumed its session, with the same id. */
  clientReconnect: [clientId: number];
  /** After close(), once every connection has ended. Always the last event. */
  close: [];
  /** @deprecated socket-ipc's old name of 'close', emitted just before it. Use 'close'. */
  closed: [];
  error: [error: IpcError];
} & TopicEvents<Messages, [clientId: number]>;

/** The events of a Client and their listeners' arguments. */
export type ClientEvents<Messages extends object = AnyMessages> = {
  /** Every successful connection, including reconnects; `socket` stands for it. */
  connect: [socket: ConnectionSocket];
  /** Right after 'connect', when the connection was an automatic reconnect (the same socket). */
  reconnect: [socket: ConnectionSocket];
  /**
   * An established connection dropped without close(). `reason`: why this side dropped it, or the
   * reason the server gave for dropping this client (ERR_IPC_SLOW_CLIENT, ERR_IPC_PROTOCOL, …);
   * undefined when the server closed gracefully.
   */
  disconnect: [reason?: IpcError];
  /** One attempt to connect failed; the client retries. */
  connectError: [error: IpcError];
  /** The outgoing buffer, which had reached highWaterMark, is down to half of it. */
  drain: [];
  /** Any message from the server. With a typed map, a union discriminated by `topic`. */
  message: MessageEventArgs<Messages, []>;
  /** The server sent bytes that are not the protocol, or JSON that does not parse. */
  messageError: [error: IpcError];
  /** Once: after close(), or after giving up (maxRetries). Always the last event. */
  close: [];
  /** @deprecated socket-ipc's old name of 'close', emitted just before it. Use 'close'. */
  closed: [];
  error: [error: IpcError];
} & TopicEvents<Messages, []>;

/** The events of a Peer and their listeners' arguments. */
export type PeerEvents<Messages extends object = AnyMessages> = {
  /** The peer took a role: the first time, and each time it changes. */
  role: [role: 'server' | 'client'];
  /** A partner is connected (in either role). */
  connect: [];
  /** The partner left, or stopped answering. */
  disconnect: [reason?: IpcError];
  /** An attempt to join failed (ERR_IPC_PEER_BUSY, …); the peer retries. */
  connectError: [error: IpcError];
  /** In the server role: a would-be partner failed the secret or TLS. */
  authError: [error: IpcError, info: ClientInfo];
  /** The outgoing buffer, which had reached highWaterMark, is down to half of it. */
  drain: [];
  /** Any message from the partner. With a typed map, a union discriminated by `topic`. */
  message: MessageEventArgs<Messages, []>;
  /** The partner sent bytes that are not the protocol, or JSON that does not parse. */
  messageError: [error: IpcError];
  /** After close(), or after giving up (maxRetries). Always the last event. */
  close: [];
  error: [error: IpcError];
} & TopicEvents<Messages, []>;

/** EventEmitter whose listener methods know the events `Events` maps to their arguments. */
declare class TypedEmitter<Events> extends EventEmitter {
  on<Event extends keyof Events & string>(event: Event, listener: IpcListener<Events, Event>): this;
  once<Event extends keyof Events & string>(event: Event, listener: IpcListener<Events, Event>): this;
  off<Event extends keyof Events & string>(event: Event, listener: IpcListener<Events, Event>): this;
  addListener<Event extends keyof Events & string>(event: Event, listener: IpcListener<Events, Event>): this;
  removeListener<Event extends keyof Events & string>(event: Event, listener: IpcListener<Events, Event>): this;
  prependListener<Event extends keyof Events & string>(event: Event, listener: IpcListener<Events, Event>): this;
  prependOnceListener<Event extends keyof Events & string>(event: Event, listener: IpcListener<Events, Event>): this;
  emit<Event extends keyof Events & string>(event: Event, ...args: Extract<Events[Event], unknown[]>): boolean;
}

/** What a Client and a Peer share: one connection at a time, and a queue while there is none. */
declare class OneConnection<
  Messages extends object,
  Requests extends RequestMap<Requests>,
  Events,
> extends TypedEmitter<Events> {
  /** True while connected (a Client: from 'connect' to 'disconnect' or 'close'; a Peer: while a partner is there). */
  get connected(): boolean;
  /**
   * Sends to the other side; queued while disconnected. Throws ERR_IPC_ENCODE / ERR_IPC_MESSAGE_TOO_LARGE / ERR_IPC_TOPIC_TOO_LONG.
   * Returns false once the outgoing buffer has reached highWaterMark: wait for 'drain'.
   */
  send<Topic extends TopicOf<Messages>>(topic: Topic | MissingTopic<Messages>, ...args: MessageArgs<Messages[Topic]>): boolean;
  /** Resolves at the next 'drain' (at once if send() would return true). */
  drained(): Promise<void>;
  /**
   * Asks the other side; resolves with its handler's reply. Queued while disconnected. Never
   * throws. The reply's type comes from the request map; with untyped requests it may be given
   * by hand (`client.request<number>('sum', [1, 2])`).
   */
  request<Reply extends HandTypedReply<Requests> = never, Topic extends TopicOf<Requests> = TopicOf<Requests>>(
    topic: Topic | MissingTopic<Requests>,
    ...args: MessageArgs<RequestOf<Requests, Topic>, [options?: RequestOptions]>
  ): Promise<ReplyType<Requests, Topic, Reply>>;
  /** Answers the other side's requests on `topic`. Throws ERR_IPC_HANDLER_EXISTS if the topic has one. */
  handle<Topic extends TopicOf<Requests>>(
    topic: Topic | MissingTopic<Requests>,
    handler: (message: RequestOf<Requests, Topic>) => ReplyValue<ReplyOf<Requests, Topic>>,
  ): this;
  /** Removes the handler of `topic`; true if there was one. */
  removeHandler(topic: TopicOf<Requests> | MissingTopic<Requests>): boolean;
  /**
   * The messages from the other side (or on `options.topic` only), in order, across reconnects,
   * as an async iterator. Ends at 'close'; rejects with the error if it gave up (maxRetries),
   * or with an AbortError when `options.signal` aborts. Messages wait in an unbounded queue
   * until read.
   */
  messages<Topic extends TopicOf<Messages> = TopicOf<Messages>>(
    options?: MessagesOptions<Topic>,
  ): AsyncIterableIterator<ReceivedMessage<Messages, Topic>>;
  /** Stops retrying, flushes, disconnects (a Peer that listened removes its socket file). Idempotent; 'close' follows once. */
  close(): this;
  /** Resolves once 'close' has been emitted (at once if it has); does not itself close. */
  closed(): Promise<void>;
  /** For `await using`: close(), then closed(). */
  [Symbol.asyncDispose](): Promise<void>;
  ref(): this;
  unref(): this;
}

/**
 * Listens on a socket and exchanges messages and requests with any number of clients.
 *
 * @typeParam Messages  topic -> message type (default: any topic, any payload)
 * @typeParam Requests  request topic -> `{ request, reply }` (default: any topic, any values)
 */
export declare class Server<
  Messages extends object = AnyMessages,
  Requests extends RequestMap<Requests> = AnyRequests,
> extends TypedEmitter<ServerEvents<Messages>> {
  constructor(options: ServerOptions | string);
  /** Starts listening; 'listening' or 'error' follows. Throws ERR_IPC_ALREADY_LISTENING on a second call. */
  listen(): this;
  /** True from 'listening' until close() is called. */
  get listening(): boolean;
  /**
   * Sends to one client. Throws ERR_IPC_ENCODE / ERR_IPC_MESSAGE_TOO_LARGE / ERR_IPC_TOPIC_TOO_LONG.
   * Returns false once that client's buffer has reached highWaterMark ('drain' (clientId) follows).
   */
  send<Topic extends TopicOf<Messages>>(topic: Topic | MissingTopic<Messages>, message: Messages[Topic], clientId: number): boolean;
  /** Sends to every connected client. Returns false while any client is at highWaterMark. */
  broadcast<Topic extends TopicOf<Messages>>(topic: Topic | MissingTopic<Messages>, ...args: MessageArgs<Messages[Topic]>): boolean;
  /** Resolves once no client's buffer is at highWaterMark (drained, or gone). */
  drained(): Promise<void>;
  /**
   * Asks one client; resolves with its handler's reply. Never throws: every failure rejects.
   * The reply's type comes from the request map; with untyped requests it may be given by hand
   * (`server.request<number>(clientId, 'sum', [1, 2])`).
   */
  request<Reply extends HandTypedReply<Requests> = never, Topic extends TopicOf<Requests> = TopicOf<Requests>>(
    clientId: number,
    topic: Topic | MissingTopic<Requests>,
    ...args: MessageArgs<RequestOf<Requests, Topic>, [options?: RequestOptions]>
  ): Promise<ReplyType<Requests, Topic, Reply>>;
  /** Answers requests on `topic`. Throws ERR_IPC_HANDLER_EXISTS if the topic has one. */
  handle<Topic extends TopicOf<Requests>>(
    topic: Topic | MissingTopic<Requests>,
    handler: (message: RequestOf<Requests, Topic>, clientId: number) => ReplyValue<ReplyOf<Requests, Topic>>,
  ): this;
  /** Removes the handler of `topic`; true if there was one. */
  removeHandler(topic: TopicOf<Requests> | MissingTopic<Requests>): boolean;
  /**
   * The messages from every client (or on `options.topic` only), in order, as an async iterator.
   * Ends when the server emits 'close'; rejects with the error if listen() failed, or with an
   * AbortError when `options.signal` aborts. Messages wait in an unbounded queue until read.
   */
  messages<Topic extends TopicOf<Messages> = TopicOf<Messages>>(
    options?: MessagesOptions<Topic>,
  ): AsyncIterableIterator<ServerReceivedMessage<Messages, Topic>>;
  /** Who the client is (see ClientInfo), or undefined if it is not connected. */
  clientInfo(clientId: number): ClientInfo | undefined;
  /** What is bound once listening (port 0 resolved), else null. */
  address(): BoundAddress | null;
  /** Flushes, ends every connection, removes the socket file. Idempotent; 'close' follows once. */
  close(): this;
  /** Resolves once 'close' has been emitted (at once if it has); does not itself close. */
  closed(): Promise<void>;
  /** For `await using`: close(), then closed(). */
  [Symbol.asyncDispose](): Promise<void>;
  ref(): this;
  unref(): this;

}

/**
 * Connects to a Server, retrying and reconnecting, and queues what is sent while disconnected.
 *
 * @typeParam Messages  topic -> message type (default: any topic, any payload)
 * @typeParam Requests  request topic -> `{ request, reply }` (default: any topic, any values)
 */
export declare class Client<
  Messages extends object = AnyMessages,
  Requests extends RequestMap<Requests> = AnyRequests,
> extends OneConnection<Messages, Requests, ClientEvents<Messages>> {
  constructor(options: ClientOptions | string);
  /** Starts connecting (and retrying). Throws ERR_IPC_ALREADY_CONNECTING on a second call. */
  connect(): this;
}

/**
 * The symmetric connection: the same code in two processes; the first listens, the next connects.
 *
 * @typeParam Messages  topic -> message type (default: any topic, any payload)
 * @typeParam Requests  request topic -> `{ request, reply }` (default: any topic, any values)
 */
export declare class Peer<
  Messages extends object = AnyMessages,
  Requests extends RequestMap<Requests> = AnyRequests,
> extends OneConnection<Messages, Requests, PeerEvents<Messages>> {
  constructor(options: PeerOptions | string);
  /** Starts: listens if the socket file is free (or stale), else connects. Throws ERR_IPC_ALREADY_CONNECTING on a second call. */
  connect(): this;
  /** 'server' or 'client' once a role is taken, else null. */
  readonly role: 'server' | 'client' | null;
}

/**
 * One name for a local endpoint on every platform: a named pipe `\\.\pipe\<name>-<user>` on
 * Windows; elsewhere a socket file `<name>.sock` in $XDG_RUNTIME_DIR (Linux) or in a 0700
 * directory `<os.tmpdir()>/native-socket-ipc-<uid>` (created if missing). Pass it as `socketFile`
 * or `address`. Throws ERR_INVALID_ARG_VALUE for a name other than 1-64 of [A-Za-z0-9._-], and
 * ERR_IPC_UNSAFE_DIRECTORY when that directory is not this user's alone.
 */
export declare function localEndpoint(name: string): string;

// Only what is marked `export` above is public; the helper types without it stay internal.
export {};
