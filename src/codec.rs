//! Wire framing, protocol version 1 (PROTOCOL.md is the normative description).
//!
//! Every frame is `len: u32 BE | kind: u8 | body`, where `len` counts the kind byte and the
//! body. The length is checked against the receiver's limit before a single byte of the body
//! is buffered, so a peer that announces 4 GiB costs nothing.
//!
//! About 620 lines, 200 of them tests: every frame layout of PROTOCOL.md, in one place.

use std::fmt;

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Bytes before a message's topic: length prefix, kind, topic length.
pub const MESSAGE_HEADER: usize = LEN_PREFIX + 1 + 2;
/// First bytes of every hello body, so a foreign peer is told apart at once.
pub const MAGIC: &[u8; 5] = b"NSIPC";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// A hello is small; anything longer in the hello position is not our protocol.
pub const HELLO_MAX_LEN: usize = 256;
/// Topics are prefixed by a u16 length.
pub const MAX_TOPIC_LEN: usize = u16::MAX as usize;
/// Default for `maxMessageSize`: the largest `len` a receiver accepts.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 8 * 1024 * 1024;

/// Frame kinds. Values 0x30–0x3F are for authentication and appear only in the hello exchange;
/// a v1 receiver treats any kind not listed here, after the hello, as a protocol error.
pub mod kind {
  pub const HELLO: u8 = 0x01;
  pub const PING: u8 = 0x02;
  pub const PONG: u8 = 0x03;
  /// At-least-once sessions: body `delivered: u64`, the data frames of this session handed to the
  /// listeners so far; the sender may forget them.
  pub const ACK: u8 = 0x04;
  /// At-least-once sessions, empty: the sender closes on purpose, so the session ends and will
  /// not be resumed.
  pub const GOODBYE: u8 = 0x05;
  /// Body: JSON `{"code", "message"}`, why the sender is dropping the connection; only EOF
  /// follows it (see `close_reason`).
  pub const CLOSE_REASON: u8 = 0x06;
  pub const REJECT: u8 = 0x0F;
  pub const MESSAGE_JSON: u8 = 0x10;
  pub const MESSAGE_BINARY: u8 = 0x11;
  /// Body: `request_id: u32 | topic_len: u16 | topic | payload`.
  pub const REQUEST_JSON: u8 = 0x20;
  pub const REQUEST_BINARY: u8 = 0x21;
  /// Body: `request_id: u32 | payload`.
  pub const REPLY_JSON: u8 = 0x22;
  pub const REPLY_BINARY: u8 = 0x23;
  /// Body: `request_id: u32 | status: u8 | JSON {"message", "code"}` (see `reply_status`).
  pub const REPLY_ERROR: u8 = 0x24;
  /// Server to client, instead of its hello, when it has a secret. Body: `server_nonce` (32 bytes).
  pub const AUTH_CHALLENGE: u8 = 0x30;
  /// Client to server. Body: `client_nonce (32) | HMAC (32)`, or empty: "I have no secret".
  pub const AUTH_PROOF: u8 = 0x31;
  /// Server to client, then its hello (or a reject). Body: the server's HMAC (32 bytes).
  pub const AUTH_OK: u8 = 0x32;
}

/// Why a request got a `REPLY_ERROR`.
pub mod reply_status {
  /// The handler threw or rejected; the JSON carries its message and code.
  pub const HANDLER_FAILED: u8 = 1;
  /// The receiver has no handler for the request's topic.
  pub const NO_HANDLER: u8 = 2;
  /// The receiver could not decode the request: its JSON does not parse, or is not UTF-8.
  pub const BAD_REQUEST: u8 = 3;
}

/// Bytes of the request id that starts request and reply bodies.
pub const REQUEST_ID: usize = 4;

/// The reason a Peer that already has a partner gives in its REJECT; the refused side reports
/// `ERR_IPC_PEER_BUSY` rather than a protocol error.
pub const PEER_BUSY: &str = "peer busy";
/// The reason a server at `maxConnections` gives in its REJECT (`ERR_IPC_SERVER_FULL`).
pub const SERVER_FULL: &str = "server full";
/// The reason for a wrong or missing secret (`ERR_IPC_AUTH_FAILED`; the client stops retrying).
pub const AUTH_FAILED: &str = "auth failed";
/// The reason for a client the `allow` option refused (`ERR_IPC_NOT_ALLOWED`; final too).
pub const NOT_ALLOWED: &str = "not allowed";
/// The reason for a client whose `delivery` differs from the server's (`ERR_IPC_DELIVERY_MISMATCH`;
/// final).
pub const DELIVERY_MISMATCH: &str = "delivery mismatch";

/// True for the frames that carry user data to JS (messages, requests, replies), as opposed to
/// the connection's own control frames.
pub fn carries_data(frame_kind: u8) -> bool {
  matches!(frame_kind, kind::MESSAGE_JSON..=kind::MESSAGE_BINARY | kind::REQUEST_JSON..=kind::REPLY_ERROR)
}

/// True for the frames only an at-least-once session may carry (ACK, GOODBYE).
pub fn session_only(frame_kind: u8) -> bool {
  matches!(frame_kind, kind::ACK | kind::GOODBYE)
}

/// Why bytes from a peer are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
  /// The length prefix announces more than the receiver's `maxMessageSize`.
  TooLarge {
    len: usize,
    max: usize,
  },
  /// A length prefix of zero: there is no kind byte.
  Empty,
  UnknownKind(u8),
  /// A message body shorter than its own topic length, or a topic that is not UTF-8.
  BadTopic,
  /// A request or reply too short to hold its request id (and status).
  BadRequest(u8),
  /// A hello, ping or pong with the wrong shape.
  BadControl(u8),
  /// An ACK or GOODBYE on a connection without an at-least-once session.
  NotInSession(u8),
  /// A frame of the hello exchange (HELLO, REJECT, AUTH_*) after it is over.
  OutOfPlace(u8),
}

impl fmt::Display for FrameError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      FrameError::TooLarge { len, max } => write!(
        f,
        "peer announced a {len}-byte frame, over maxMessageSize ({max} bytes); raise maxMessageSize on this side if such messages are expected"
      ),
      FrameError::Empty => f.write_str("peer sent a frame with length 0, which is not the native-socket-ipc protocol"),
      FrameError::UnknownKind(k) => write!(f, "peer sent unknown frame kind 0x{k:02x}; it may speak a newer protocol version"),
      FrameError::BadTopic => f.write_str("peer sent a message whose topic is truncated or not UTF-8"),
      FrameError::BadRequest(k) => write!(f, "peer sent a request or reply of kind 0x{k:02x} too short for its header"),
      FrameError::BadControl(k) => write!(f, "peer sent a malformed control frame of kind 0x{k:02x}"),
      FrameError::NotInSession(k) => write!(
        f,
        "peer sent a frame of kind 0x{k:02x} (ACK or GOODBYE), which only at-least-once sessions use; check that both ends set the same delivery option"
      ),
      FrameError::OutOfPlace(k) => write!(
        f,
        "peer sent a frame of kind 0x{k:02x} (HELLO, REJECT or AUTH), which belongs to the hello exchange, after that exchange was over; the peer does not follow the protocol"
      ),
    }
  }
}

/// One complete frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
  pub kind: u8,
  /// Everything after the kind byte.
  pub body: &'a [u8],
}

impl Frame<'_> {
  /// Bytes the frame occupies on the wire.
  pub fn wire_len(&self) -> usize {
    LEN_PREFIX + 1 + self.body.len()
  }
}

/// Reads the length prefix at the start of `buf` and checks it against `max_len`.
/// Returns the total wire size of the frame once the prefix is complete.
pub fn peek_frame_size(buf: &[u8], max_len: usize) -> Result<Option<usize>, FrameError> {
  let Some(prefix) = buf.get(..LEN_PREFIX) else {
    return Ok(None);
  };
  let len = u32::from_be_bytes(prefix.try_into().unwrap()) as usize;
  if len == 0 {
    return Err(FrameError::Empty);
  }
  if len > max_len {
    return Err(FrameError::TooLarge { len, max: max_len });
  }
  Ok(Some(LEN_PREFIX + len))
}

/// Returns the complete frame at the start of `buf`, or `None` if more bytes are needed.
pub fn next_frame(buf: &[u8], max_len: usize) -> Result<Option<Frame<'_>>, FrameError> {
  match peek_frame_size(buf, max_len)? {
    Some(size) if buf.len() >= size => Ok(Some(Frame {
      kind: buf[LEN_PREFIX],
      body: &buf[LEN_PREFIX + 1..size],
    })),
    _ => Ok(None),
  }
}

/// Checks a frame received after the hello: known kind, well-formed body.
pub fn validate(frame: &Frame<'_>) -> Result<(), FrameError> {
  match frame.kind {
    kind::MESSAGE_JSON | kind::MESSAGE_BINARY => valid_topic(frame.body),
    kind::REQUEST_JSON | kind::REQUEST_BINARY => match frame.body.get(REQUEST_ID..) {
      Some(rest) => valid_topic(rest),
      None => Err(FrameError::BadRequest(frame.kind)),
    },
    kind::REPLY_JSON | kind::REPLY_BINARY if frame.body.len() >= REQUEST_ID => Ok(()),
    kind::REPLY_ERROR if frame.body.len() > REQUEST_ID => Ok(()),
    kind::REPLY_JSON | kind::REPLY_BINARY | kind::REPLY_ERROR => Err(FrameError::BadRequest(frame.kind)),
    kind::PING | kind::PONG | kind::GOODBYE if frame.body.is_empty() => Ok(()),
    kind::ACK if frame.body.len() == 8 => Ok(()),
    kind::CLOSE_REASON if !frame.body.is_empty() && frame.body.len() <= CLOSE_REASON_MAX => Ok(()),
    kind::PING | kind::PONG | kind::GOODBYE | kind::ACK | kind::CLOSE_REASON => Err(FrameError::BadControl(frame.kind)),
    kind::HELLO | kind::REJECT | kind::AUTH_CHALLENGE..=kind::AUTH_OK => Err(FrameError::OutOfPlace(frame.kind)),
    other => Err(FrameError::UnknownKind(other)),
  }
}

fn valid_topic(body: &[u8]) -> Result<(), FrameError> {
  let topic = message_topic(body).ok_or(FrameError::BadTopic)?;
  std::str::from_utf8(topic).map_err(|_| FrameError::BadTopic)?;
  Ok(())
}

/// The topic bytes of a message body (`topic_len: u16 BE | topic | payload`).
pub fn message_topic(body: &[u8]) -> Option<&[u8]> {
  let len = u16::from_be_bytes(body.get(..2)?.try_into().unwrap()) as usize;
  body.get(2..2 + len)
}

/// The payload bytes of a message body.
pub fn message_payload(body: &[u8]) -> Option<&[u8]> {
  let topic = message_topic(body)?;
  Some(&body[2 + topic.len()..])
}

/// False for a validated data frame whose kind promises UTF-8 text (JSON messages, requests and
/// replies, a REPLY_ERROR's JSON) and whose payload is not: the receiver reports it as
/// undecodable (PROTOCOL.md, "Messages"), the connection stays. Binary kinds are always true.
pub fn payload_is_text(frame_kind: u8, body: &[u8]) -> bool {
  let payload = match frame_kind {
    kind::MESSAGE_JSON => message_payload(body),
    kind::REQUEST_JSON => body.get(REQUEST_ID..).and_then(message_payload),
    kind::REPLY_JSON => body.get(REQUEST_ID..),
    kind::REPLY_ERROR => body.get(REQUEST_ID + 1..),
    _ => return true,
  };
  // std's check runs a word at a time over ASCII, the common case.
  payload.is_none_or(|p| std::str::from_utf8(p).is_ok())
}

/// True when a JSON payload can stand as one element of a JSON array next to others: its brackets
/// and strings close within it, it has no top-level comma, and it is not blank. It does not check
/// that the payload is valid JSON (JSON.parse does); it guarantees that elements cannot bleed into
/// each other, so a parsed array has exactly one element per payload.
pub fn stands_alone(payload: &[u8]) -> bool {
  let (mut depth, mut in_string, mut any) = (0u32, false, false);
  let mut i = 0;
  while i < payload.len() {
    // Most bytes are letters and digits: skip runs of them with one table lookup each.
    if !STRUCTURAL[payload[i] as usize] {
      any |= !in_string;
      i += 1;
      continue;
    }
    let b = payload[i];
    i += 1;
    if in_string {
      match b {
        b'\\' => i += 1, // the escaped byte cannot end the string
        b'"' => in_string = false,
        _ => {}
      }
      continue;
    }
    match b {
      b'"' => (in_string, any) = (true, true),
      b'{' | b'[' => (depth, any) = (depth + 1, true),
      b'}' | b']' if depth == 0 => return false,
      b'}' | b']' => depth -= 1,
      b',' if depth == 0 => return false,
      _ => {} // whitespace, or a comma inside a container
    }
  }
  !in_string && depth == 0 && any
}

/// Bytes that matter to `stands_alone`; JSON whitespace is among them so a blank payload is
/// not mistaken for a value.
const STRUCTURAL: [bool; 256] = {
  let mut table = [false; 256];
  let mut k = 0;
  let special = *b"\"\\{}[], \t\n\r";
  while k < special.len() {
    table[special[k] as usize] = true;
    k += 1;
  }
  table
};

/// Appends one message frame. The caller guarantees `topic.len() <= MAX_TOPIC_LEN`.
pub fn encode_message(dst: &mut Vec<u8>, message_kind: u8, topic: &str, payload: &[u8]) {
  debug_assert!(topic.len() <= MAX_TOPIC_LEN);
  let len = 1 + 2 + topic.len() + payload.len();
  dst.reserve(LEN_PREFIX + len);
  dst.extend_from_slice(&(len as u32).to_be_bytes());
  dst.push(message_kind);
  dst.extend_from_slice(&(topic.len() as u16).to_be_bytes());
  dst.extend_from_slice(topic.as_bytes());
  dst.extend_from_slice(payload);
}

/// Appends one request frame (`request_kind` REQUEST_JSON or REQUEST_BINARY).
pub fn encode_request(dst: &mut Vec<u8>, request_kind: u8, request_id: u32, topic: &str, payload: &[u8]) {
  let len = 1 + REQUEST_ID + 2 + topic.len() + payload.len();
  dst.extend_from_slice(&(len as u32).to_be_bytes());
  dst.push(request_kind);
  dst.extend_from_slice(&request_id.to_be_bytes());
  dst.extend_from_slice(&(topic.len() as u16).to_be_bytes());
  dst.extend_from_slice(topic.as_bytes());
  dst.extend_from_slice(payload);
}

/// Appends one reply frame (`reply_kind` REPLY_JSON or REPLY_BINARY).
pub fn encode_reply(dst: &mut Vec<u8>, reply_kind: u8, request_id: u32, payload: &[u8]) {
  dst.extend_from_slice(&((1 + REQUEST_ID + payload.len()) as u32).to_be_bytes());
  dst.push(reply_kind);
  dst.extend_from_slice(&request_id.to_be_bytes());
  dst.extend_from_slice(payload);
}

/// Appends a frame with no body (ping, pong).
pub fn encode_control(dst: &mut Vec<u8>, control_kind: u8) {
  dst.extend_from_slice(&1u32.to_be_bytes());
  dst.push(control_kind);
}

/// Appends the hello both sides send first: magic, version, flags (none set).
pub fn encode_hello(dst: &mut Vec<u8>) {
  encode_hello_version(dst, VERSION);
}

/// The hello for an arbitrary version: lets tests play a peer from the future.
pub fn encode_hello_version(dst: &mut Vec<u8>, version: u8) {
  encode_hello_full(dst, version, 0, &[]);
}

/// A hello with flags and extension bytes (an at-least-once session, see `session`).
pub fn encode_hello_with(dst: &mut Vec<u8>, flags: u8, extension: &[u8]) {
  encode_hello_full(dst, VERSION, flags, extension);
}

fn encode_hello_full(dst: &mut Vec<u8>, version: u8, flags: u8, extension: &[u8]) {
  let len = 1 + MAGIC.len() + 2 + extension.len();
  dst.extend_from_slice(&(len as u32).to_be_bytes());
  dst.push(kind::HELLO);
  dst.extend_from_slice(MAGIC);
  dst.push(version);
  dst.push(flags);
  dst.extend_from_slice(extension);
}

/// A hello's flags and the extension bytes after them (empty when there are none).
pub fn hello_options<'a>(frame: &Frame<'a>) -> (u8, &'a [u8]) {
  match frame.body.get(MAGIC.len() + 1) {
    Some(flags) if frame.kind == kind::HELLO => (*flags, &frame.body[MAGIC.len() + 2..]),
    _ => (0, &[]),
  }
}

/// Appends a frame of any kind with `body`: the hello exchange's authentication frames.
pub fn encode_frame(dst: &mut Vec<u8>, frame_kind: u8, body: &[u8]) {
  dst.extend_from_slice(&((1 + body.len()) as u32).to_be_bytes());
  dst.push(frame_kind);
  dst.extend_from_slice(body);
}

/// The longest `CLOSE_REASON` body a receiver reads.
pub const CLOSE_REASON_MAX: usize = 4096;

/// Appends a `CLOSE_REASON` frame: `{"code": code, "message": message}` (the message cut to fit).
pub fn encode_close_reason(dst: &mut Vec<u8>, code: &str, message: &str) {
  let mut message = message;
  while message.len() > CLOSE_REASON_MAX - 64 - code.len() {
    let mut end = message.len() - 1;
    while !message.is_char_boundary(end) {
      end -= 1;
    }
    message = &message[..end];
  }
  let body = serde_json::json!({ "code": code, "message": message }).to_string();
  encode_frame(dst, kind::CLOSE_REASON, body.as_bytes());
}

/// A `CLOSE_REASON` body's code and message; `None` if it is not that JSON object.
pub fn close_reason(body: &[u8]) -> Option<(String, String)> {
  let value: serde_json::Value = serde_json::from_slice(body).ok()?;
  let code = value.get("code")?.as_str()?.to_owned();
  let message = value.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_owned();
  Some((code, message))
}

/// Appends a reject frame carrying a human-readable reason.
pub fn encode_reject(dst: &mut Vec<u8>, reason: &str) {
  dst.extend_from_slice(&((1 + reason.len()) as u32).to_be_bytes());
  dst.push(kind::REJECT);
  dst.extend_from_slice(reason.as_bytes());
}

/// What the first frame of a connection said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
  /// A hello of `version` (v1 ignores flag bits and trailing extension bytes).
  Version(u8),
  /// The peer refused us, with its reason.
  Rejected(String),
}

/// Parses the first frame of a connection. Anything but a hello (or a reject) with our
/// magic means the peer does not speak this protocol.
pub fn parse_hello(frame: &Frame<'_>) -> Option<Hello> {
  match frame.kind {
    kind::HELLO => {
      let body = frame.body;
      if body.len() < MAGIC.len() + 2 || &body[..MAGIC.len()] != MAGIC {
        return None;
      }
      Some(Hello::Version(body[MAGIC.len()]))
    }
    kind::REJECT => Some(Hello::Rejected(String::from_utf8_lossy(frame.body).into_owned())),
    _ => None,
  }
}

/// After `written` bytes of `frames` went out, how many more complete the frame they stopped in.
pub fn frame_remainder(frames: &[u8], written: usize) -> usize {
  let mut pos = 0;
  while pos + LEN_PREFIX <= frames.len() {
    let end = pos + LEN_PREFIX + u32::from_be_bytes(frames[pos..pos + 4].try_into().unwrap()) as usize;
    if end > written {
      return end - written;
    }
    pos = end;
  }
  0
}

/// Counts the message frames (not control frames) in a run of complete frames.
pub fn count_messages(mut frames: &[u8]) -> usize {
  let mut n = 0;
  while frames.len() > LEN_PREFIX {
    let len = u32::from_be_bytes(frames[..4].try_into().unwrap()) as usize;
    if matches!(frames[4], kind::MESSAGE_JSON | kind::MESSAGE_BINARY) {
      n += 1;
    }
    frames = frames.get(LEN_PREFIX + len..).unwrap_or_default();
  }
  n
}

#[cfg(test)]
mod tests {
  use super::*;

  // The documented vectors (vectors/*.json) are checked by tests/vectors.rs.

  #[test]
  fn incomplete_prefix_and_body_need_more_bytes() {
    let mut frame = Vec::new();
    encode_message(&mut frame, kind::MESSAGE_JSON, "t", b"1");
    for cut in 0..frame.len() {
      assert_eq!(next_frame(&frame[..cut], 1024), Ok(None), "cut at {cut}");
    }
    assert!(next_frame(&frame, 1024).unwrap().is_some());
  }

  #[test]
  fn oversized_length_is_rejected_from_the_prefix_alone() {
    let prefix = 0xffff_ffffu32.to_be_bytes();
    assert_eq!(
      peek_frame_size(&prefix, DEFAULT_MAX_MESSAGE_SIZE),
      Err(FrameError::TooLarge {
        len: 0xffff_ffff,
        max: DEFAULT_MAX_MESSAGE_SIZE
      })
    );
  }

  #[test]
  fn zero_length_is_rejected() {
    assert_eq!(peek_frame_size(&[0, 0, 0, 0], 10), Err(FrameError::Empty));
  }

  #[test]
  fn unknown_kind_and_bad_topics_are_rejected() {
    let f = Frame { kind: 0x7e, body: b"" };
    assert_eq!(validate(&f), Err(FrameError::UnknownKind(0x7e)));
    let truncated = Frame {
      kind: kind::MESSAGE_JSON,
      body: &[0, 9, b'a'],
    };
    assert_eq!(validate(&truncated), Err(FrameError::BadTopic));
    let not_utf8 = Frame {
      kind: kind::MESSAGE_JSON,
      body: &[0, 1, 0xff],
    };
    assert_eq!(validate(&not_utf8), Err(FrameError::BadTopic));
    let ping_with_body = Frame {
      kind: kind::PING,
      body: b"x",
    };
    assert_eq!(validate(&ping_with_body), Err(FrameError::BadControl(kind::PING)));
  }

  #[test]
  fn requests_and_replies_need_their_id_and_a_valid_topic() {
    let mut request = Vec::new();
    encode_request(&mut request, kind::REQUEST_JSON, 7, "sum", b"[1,2]");
    let f = next_frame(&request, 1024).unwrap().unwrap();
    assert_eq!(validate(&f), Ok(()));
    assert_eq!(&f.body[..REQUEST_ID], &7u32.to_be_bytes());
    assert_eq!(message_topic(&f.body[REQUEST_ID..]), Some(&b"sum"[..]));

    let short = |k, body: &'static [u8]| validate(&Frame { kind: k, body });
    assert_eq!(
      short(kind::REQUEST_JSON, &[0, 0, 0]),
      Err(FrameError::BadRequest(kind::REQUEST_JSON))
    );
    assert_eq!(
      short(kind::REQUEST_BINARY, &[0, 0, 0, 1, 0, 5, b'a']),
      Err(FrameError::BadTopic)
    );
    assert_eq!(
      short(kind::REPLY_JSON, &[0, 0, 1]),
      Err(FrameError::BadRequest(kind::REPLY_JSON))
    );
    assert_eq!(short(kind::REPLY_BINARY, &[0, 0, 0, 1]), Ok(()));
    assert_eq!(
      short(kind::REPLY_ERROR, &[0, 0, 0, 1]),
      Err(FrameError::BadRequest(kind::REPLY_ERROR))
    );
    assert_eq!(short(kind::REPLY_ERROR, &[0, 0, 0, 1, 2]), Ok(()));
    assert!(carries_data(kind::REPLY_ERROR) && carries_data(kind::MESSAGE_BINARY));
    assert!(!carries_data(kind::PING) && !carries_data(0x25));
  }

  #[test]
  fn hello_is_told_apart_from_foreign_bytes() {
    let garbage = Frame {
      kind: kind::HELLO,
      body: b"HTTP/1.1",
    };
    assert_eq!(parse_hello(&garbage), None);
    let message = Frame {
      kind: kind::MESSAGE_JSON,
      body: b"\0\0",
    };
    assert_eq!(parse_hello(&message), None);
    let mut future = Vec::new();
    encode_hello_version(&mut future, 9);
    let f = next_frame(&future, HELLO_MAX_LEN).unwrap().unwrap();
    assert_eq!(parse_hello(&f), Some(Hello::Version(9)));
    let mut reject = Vec::new();
    encode_reject(&mut reject, "nope");
    let f = next_frame(&reject, HELLO_MAX_LEN).unwrap().unwrap();
    assert_eq!(parse_hello(&f), Some(Hello::Rejected("nope".into())));
  }

  #[test]
  fn only_self_contained_json_may_share_an_array() {
    for ok in [
      &b"1"[..],
      b"\"a\\\\\"",
      b"[\"x,\", 2]",
      b"{\"a\":[1,2]}",
      b"\"x],[\"",
      b"\"\\\"\"",
      b" null ",
      b"{]",
    ] {
      assert!(stands_alone(ok), "{}", String::from_utf8_lossy(ok));
    }
    for bad in [&b""[..], b"  ", b"1,2", b"[1", b"1]", b"\"open", b"]["] {
      assert!(!stands_alone(bad), "{}", String::from_utf8_lossy(bad));
    }
  }

  #[test]
  fn hello_exchange_kinds_after_the_hello_are_out_of_place() {
    for k in [kind::HELLO, kind::REJECT, kind::AUTH_CHALLENGE, kind::AUTH_PROOF, kind::AUTH_OK] {
      assert_eq!(validate(&Frame { kind: k, body: b"" }), Err(FrameError::OutOfPlace(k)));
    }
    assert_eq!(validate(&Frame { kind: 0x33, body: b"" }), Err(FrameError::UnknownKind(0x33)));
  }

  #[test]
  fn only_the_json_kinds_promise_utf8_text() {
    let mut frame = Vec::new();
    encode_message(&mut frame, kind::MESSAGE_JSON, "t", b"\"\xff\"");
    let f = next_frame(&frame, 1024).unwrap().unwrap();
    assert_eq!(validate(&f), Ok(()), "the frame itself is well-formed");
    assert!(!payload_is_text(f.kind, f.body));
    assert!(payload_is_text(kind::MESSAGE_BINARY, f.body), "binary payloads are any bytes");
    let id = [0, 0, 0, 1];
    assert!(!payload_is_text(kind::REQUEST_JSON, &[&id[..], &[0, 1, b't', 0xc0, 0xaf]].concat()));
    assert!(!payload_is_text(kind::REPLY_JSON, &[&id[..], &[0xed, 0xa0, 0x80]].concat()));
    assert!(!payload_is_text(kind::REPLY_ERROR, &[&id[..], &[1, 0xff]].concat()));
    assert!(payload_is_text(kind::REPLY_ERROR, &[&id[..], &[1]].concat()), "an empty body is text");
    assert!(payload_is_text(kind::REQUEST_JSON, &[&id[..], &[0, 1, b't'], "\"ü\"".as_bytes()].concat()));
  }

  #[test]
  fn split_frames_decode_in_sequence() {
    let mut wire = Vec::new();
    encode_message(&mut wire, kind::MESSAGE_JSON, "a", b"1");
    encode_message(&mut wire, kind::MESSAGE_BINARY, "b", &[9; 300]);
    encode_control(&mut wire, kind::PONG);
    let mut pos = 0;
    let mut kinds = Vec::new();
    while let Some(f) = next_frame(&wire[pos..], 1024).unwrap() {
      validate(&f).unwrap();
      kinds.push(f.kind);
      pos += f.wire_len();
    }
    assert_eq!(pos, wire.len());
    assert_eq!(kinds, [kind::MESSAGE_JSON, kind::MESSAGE_BINARY, kind::PONG]);
  }
}
