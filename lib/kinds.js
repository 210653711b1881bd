'use strict';
// The numbers JS shares with the Rust core: wire frame kinds, event-record kinds and the layouts
// around them. Defined here only; each names the Rust item that must hold the same value, and
// __test__/kinds.test.js reads the Rust sources and PROTOCOL.md to check that they do.

// ===== Wire frame kinds (PROTOCOL.md, "Frames"; src/codec.rs, mod kind) =====
// JS sends only data frames; the rest are here so this list is the protocol's whole table.
const KIND_HELLO = 0x01;
const KIND_PING = 0x02;
const KIND_PONG = 0x03;
const KIND_ACK = 0x04;
const KIND_GOODBYE = 0x05;
const KIND_CLOSE_REASON = 0x06;
const KIND_REJECT = 0x0f;
// MESSAGE_JSON and MESSAGE_BINARY. Each JSON kind's binary twin is the next value
// (lib/outgoing.js relies on that).
const KIND_JSON = 0x10;
const KIND_BINARY = 0x11;
const KIND_REQUEST_JSON = 0x20;
const KIND_REQUEST_BINARY = 0x21;
const KIND_REPLY_JSON = 0x22;
const KIND_REPLY_BINARY = 0x23;
const KIND_REPLY_ERROR = 0x24;
const KIND_AUTH_CHALLENGE = 0x30;
const KIND_AUTH_PROOF = 0x31;
const KIND_AUTH_OK = 0x32;

// ===== Record kinds below 0x80 that are not wire kinds (src/events.rs, mod kind) =====
// Data records otherwise carry their wire frame's kind.
// A run of JSON messages from one connection, parsed with one JSON.parse.
const KIND_JSON_GROUP = 0x12;
// A large frame handed over whole: takeAttached() returns it.
const KIND_ATTACHED = 0x13;
// protocol 'socket-ipc' (src/socket_ipc.rs, TEXT and TEXT_GROUP, re-exported by events::kind):
// JS to core, one message's text + TEXT_DELIMITER as a frame body; core to JS, one message's
// text. Never a native wire kind.
const KIND_TEXT = 0x14;
// Core to JS: a run of socket-ipc texts.
const KIND_TEXT_GROUP = 0x15;
// Core to JS: a data frame (or socket-ipc text) whose JSON is not UTF-8; body: its kind, then
// its body. Decoded as a failure of that message, request or reply.
const KIND_NOT_TEXT = 0x16;

// ===== Lifecycle record kinds, 0x80 and up (src/events.rs, mod kind) =====
// Bodies are described there.
const EVENT = Object.freeze({
  LISTENING: 0x81,
  CONNECTION: 0x82,
  CONNECTION_CLOSE: 0x83,
  CONNECT: 0x84,
  DISCONNECT: 0x85,
  MESSAGE_ERROR: 0x86,
  ERROR: 0x87,
  CONNECT_ERROR: 0x88,
  CLOSE: 0x89,
  ROLE: 0x8a,
  AUTH_ERROR: 0x8b,
  ADMIT: 0x8c,
  DRAIN: 0x8d,
  SLOW_CLIENT: 0x8e,
  CLIENT_DISCONNECT: 0x8f,
  CLIENT_RECONNECT: 0x90,
});

// ===== REPLY_ERROR status byte (src/codec.rs, mod reply_status) =====
const REPLY_STATUS = Object.freeze({
  // The handler threw or rejected.
  HANDLER_FAILED: 1,
  // No handler for the request's topic.
  NO_HANDLER: 2,
  // The request could not be decoded (its JSON does not parse, or is not UTF-8).
  BAD_REQUEST: 3,
});

// ===== Frame layout (PROTOCOL.md; src/codec.rs) =====
// Bytes of a frame's length prefix (codec::LEN_PREFIX).
const LEN_PREFIX = 4;
// Bytes before a frame's body: length prefix and kind.
const FRAME_START = LEN_PREFIX + 1;
// Bytes of the request id that starts request and reply bodies (codec::REQUEST_ID).
const REQUEST_ID = 4;
// Topics are prefixed by a u16 length (codec::MAX_TOPIC_LEN).
const MAX_TOPIC_BYTES = 0xffff;
// Ends each message on the socket-ipc wire (socket_ipc::DELIMITER).
const TEXT_DELIMITER = '\0\0';

// ===== Batch targets, the u32 before each frame a Server sends (src/server.rs) =====
// Every client on a server; the other side on a client or peer (server::BROADCAST).
const BROADCAST = 0;
// BROADCAST_UP_TO + n: the clients with ids up to n (server::BROADCAST_UP_TO).
const BROADCAST_UP_TO = 0x80000000;

// ===== Event records (src/events.rs) =====
// kind u8 | id u32 | len u32, then the body (events::RECORD_HEADER).
const RECORD_HEADER = 1 + 4 + 4;
// One entry of a JSON group's table: same_topic u8 | topic_len u16 | payload_len u32
// (events.rs, GROUP_ENTRY).
const GROUP_ENTRY = 1 + 2 + 4;
// Added to takeEvents()'s result when records are still waiting (src/binding.rs, MORE): above
// any slice length, and exact in a JS number.
const MORE = 2 ** 32;

module.exports = {
  KIND_HELLO,
  KIND_PING,
  KIND_PONG,
  KIND_ACK,
  KIND_GOODBYE,
  KIND_CLOSE_REASON,
  KIND_REJECT,
  KIND_JSON,
  KIND_BINARY,
  KIND_REQUEST_JSON,
  KIND_REQUEST_BINARY,
  KIND_REPLY_JSON,
  KIND_REPLY_BINARY,
  KIND_REPLY_ERROR,
  KIND_AUTH_CHALLENGE,
  KIND_AUTH_PROOF,
  KIND_AUTH_OK,
  KIND_JSON_GROUP,
  KIND_ATTACHED,
  KIND_TEXT,
  KIND_TEXT_GROUP,
  KIND_NOT_TEXT,
  EVENT,
  REPLY_STATUS,
  LEN_PREFIX,
  FRAME_START,
  REQUEST_ID,
  MAX_TOPIC_BYTES,
  TEXT_DELIMITER,
  BROADCAST,
  BROADCAST_UP_TO,
  RECORD_HEADER,
  GROUP_ENTRY,
  MORE,
};
