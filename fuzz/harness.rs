//! What the fuzz targets do with one input. Shared by `fuzz/fuzz_targets/*.rs` (cargo fuzz) and
//! by `tests/fuzz_regressions.rs` (plain `cargo test --no-default-features`), which replays the
//! committed seeds and crashers, so a bug the fuzzer found stays fixed without a fuzzer.
//!
//! Each function must return normally for every input; a panic is a finding. Besides "no panic"
//! they check what the code promises:
//! - `frames`: the decoder agrees with itself (`peek_frame_size` vs `next_frame`), valid message
//!   frames split into topic and payload, and the records made for JS decode back to exactly the
//!   data frames of the valid prefix (one whose JSON is not UTF-8 as a `NOT_TEXT` record).
//! - `handshake`: a server with a secret never accepts forged bytes; one without accepts exactly
//!   the inputs whose first frame is a version-1 hello.
//! - `offer`: a client with a secret is never connected by a server that cannot prove it (the
//!   bytes cannot hold an HMAC over the client's fresh nonce); one without connects exactly on a
//!   version-1 hello.
//! - `stream`: after a valid hello, a real connection (`connection::run`, as the server runs it)
//!   delivers exactly the data frames before the first bad frame, in order, and ends as it should.
//! - `socket_ipc`: a real connection on the `@crussell52/socket-ipc` wire delivers exactly the
//!   texts between delimiters (as `String#split("\0\0")` would cut them) up to the first one over
//!   `maxMessageSize`, and any group of them handed to JS parses as one array element per text.
//!
//! The async targets run on one current-thread tokio runtime per thread, over a
//! `UnixStream::pair()`, with everything bounded by `LIMIT`: a run that takes longer is a hang,
//! reported as a panic.

#![allow(dead_code)]

use native_socket_ipc::auth::Secret;
use native_socket_ipc::codec::{self, kind, Frame, FrameError, Hello};
use native_socket_ipc::connection::{self, Ended, Link, Outbox};
use native_socket_ipc::events::{self, EventQueue, Wake};
use native_socket_ipc::inbound::{Inbound, DEFAULT_MAX_INBOUND};
use native_socket_ipc::handshake::{ClientSecurity, Conn, HandshakeFailure, ServerSecurity};
use native_socket_ipc::socket_ipc;
use native_socket_ipc::wire::Wire;
use native_socket_ipc::transport::Socket;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

/// The server's secret in the `handshake` target (20 bytes, as the JS API requires >= 16).
pub const SECRET: &[u8] = b"0123456789abcdef0123";

/// Longest a single input may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(5);

/// The frame-size limits `frames` decodes with: the hello's, a small one, and the default.
const MAX_SIZES: [usize; 3] = [codec::HELLO_MAX_LEN, 1024, codec::DEFAULT_MAX_MESSAGE_SIZE];

/// The `maxMessageSize` of the `stream` target, chosen by the input's first byte.
const STREAM_MAX_SIZES: [usize; 2] = [codec::DEFAULT_MAX_MESSAGE_SIZE, 256];

/// The client's hello, as `codec::encode_hello` writes it.
pub fn hello() -> Vec<u8> {
  let mut out = Vec::new();
  codec::encode_hello(&mut out);
  out
}

// ===== frames =====

/// Arbitrary bytes through the decoder, the way the reader and the handshake use it.
pub fn frames(data: &[u8]) {
  for max in MAX_SIZES {
    decode(data, max);
  }
  // As a server reads a connection: the first frame as a hello, then the stream.
  if let Ok(Some(first)) = codec::next_frame(data, codec::HELLO_MAX_LEN) {
    let _ = codec::parse_hello(&first);
    decode(&data[first.wire_len()..], codec::DEFAULT_MAX_MESSAGE_SIZE);
  }
  // The body helpers on raw bytes.
  if let Some(topic) = codec::message_topic(data) {
    let payload = codec::message_payload(data).expect("a body with a topic has a payload");
    assert_eq!(2 + topic.len() + payload.len(), data.len());
  }
  let _ = codec::stands_alone(data);
}

/// What the reader makes of a stream (after the hello).
pub struct Decoded<'a> {
  /// Every complete frame that passed `validate`, in order.
  pub frames: Vec<Frame<'a>>,
  /// Bytes those frames occupy.
  pub used: usize,
  /// Why decoding stopped, if a frame was bad (rather than incomplete or absent).
  pub error: Option<FrameError>,
  /// The peer said why it drops the connection (`CLOSE_REASON`); nothing after it is read.
  pub dropped: bool,
}

impl Decoded<'_> {
  /// As a connection without an at-least-once session reads it: an ACK or GOODBYE is an error
  /// there, so decoding stops at the first one.
  pub fn outside_session(mut self) -> Self {
    if let Some(at) = self.frames.iter().position(|f| codec::session_only(f.kind)) {
      self.used = self.frames[..at].iter().map(Frame::wire_len).sum();
      self.error = Some(FrameError::NotInSession(self.frames[at].kind));
      self.frames.truncate(at);
    }
    self
  }

  /// A `CLOSE_REASON` ends the connection: what follows it is never read.
  pub fn until_close_reason(mut self) -> Self {
    if let Some(at) = self.frames.iter().position(|f| f.kind == kind::CLOSE_REASON) {
      self.frames.truncate(at + 1);
      self.used = self.frames.iter().map(Frame::wire_len).sum();
      self.error = None;
      self.dropped = true;
    }
    self
  }

  /// The data frames a connection hands to JS, as `(kind, body)` records: a frame whose text
  /// is not UTF-8 as a `NOT_TEXT` record (`kind | body`).
  pub fn data(&self) -> Vec<(u8, Vec<u8>)> {
    self
      .frames
      .iter()
      .filter(|f| codec::carries_data(f.kind))
      .map(|f| match codec::payload_is_text(f.kind, f.body) {
        true => (f.kind, f.body.to_vec()),
        false => (events::kind::NOT_TEXT, [&[f.kind][..], f.body].concat()),
      })
      .collect()
  }
}

/// Loops `next_frame` with `max` and validates each frame, stopping at the first error, as the
/// connection's reader does; checks the decoder's own invariants on the way.
pub fn decode(data: &[u8], max: usize) -> Decoded<'_> {
  let mut frames = Vec::new();
  let mut used = 0;
  let error = loop {
    let rest = &data[used..];
    let peeked = codec::peek_frame_size(rest, max);
    match codec::next_frame(rest, max) {
      Ok(Some(frame)) => {
        assert_eq!(
          peeked,
          Ok(Some(frame.wire_len())),
          "peek_frame_size and next_frame disagree"
        );
        assert!(frame.wire_len() <= rest.len());
        assert!(
          frame.wire_len() - codec::LEN_PREFIX <= max,
          "a frame over the limit was returned"
        );
        if let Err(e) = codec::validate(&frame) {
          let _ = e.to_string();
          break Some(e);
        }
        check_valid_frame(&frame);
        used += frame.wire_len();
        frames.push(frame);
      }
      Ok(None) => {
        match peeked {
          Ok(None) => assert!(rest.len() < codec::LEN_PREFIX),
          Ok(Some(size)) => assert!(rest.len() < size),
          Err(e) => panic!("peek_frame_size failed ({e:?}) where next_frame did not"),
        }
        break None;
      }
      Err(e) => {
        assert_eq!(peeked, Err(e.clone()), "peek_frame_size and next_frame disagree");
        let _ = e.to_string();
        break Some(e);
      }
    }
  };
  // What the reader hands to JS for the valid prefix must decode back to its data frames.
  let decoded = Decoded { frames, used, error, dropped: false };
  let mut records = Vec::new();
  events::encode_messages(&mut records, 7, &data[..used]);
  let records: Vec<(u8, Vec<u8>)> = events::decode_records(&records)
    .into_iter()
    .map(|r| {
      assert_eq!(r.id, 7);
      (r.kind, r.body)
    })
    .collect();
  assert_eq!(
    records,
    decoded.data(),
    "records for JS differ from the frames received"
  );
  decoded
}

/// A frame that passed `validate` has the parts its kind promises.
fn check_valid_frame(frame: &Frame<'_>) {
  let topic_body = match frame.kind {
    kind::MESSAGE_JSON | kind::MESSAGE_BINARY => Some(frame.body),
    kind::REQUEST_JSON | kind::REQUEST_BINARY => Some(&frame.body[codec::REQUEST_ID..]),
    kind::REPLY_JSON | kind::REPLY_BINARY => {
      assert!(frame.body.len() >= codec::REQUEST_ID);
      None
    }
    kind::REPLY_ERROR => {
      assert!(frame.body.len() > codec::REQUEST_ID);
      None
    }
    kind::PING | kind::PONG | kind::GOODBYE => {
      assert!(frame.body.is_empty());
      None
    }
    kind::ACK => {
      assert_eq!(frame.body.len(), 8);
      None
    }
    kind::CLOSE_REASON => {
      assert!(!frame.body.is_empty() && frame.body.len() <= codec::CLOSE_REASON_MAX);
      None
    }
    other => panic!("validate accepted kind 0x{other:02x}"),
  };
  if let Some(body) = topic_body {
    let topic = codec::message_topic(body).expect("a valid message has a topic");
    std::str::from_utf8(topic).expect("a valid message's topic is UTF-8");
    let payload = codec::message_payload(body).expect("a valid message has a payload");
    assert_eq!(2 + topic.len() + payload.len(), body.len());
    let _ = codec::stands_alone(payload);
  }
}

// ===== handshake =====

/// Arbitrary bytes played as a client against the server side of the hello. The first byte picks
/// the server: odd, with a secret; even, without. The rest is what the client sends before it
/// shuts down its side.
pub fn handshake(data: &[u8]) {
  let Some((&selector, wire)) = data.split_first() else {
    return;
  };
  let with_secret = selector & 1 == 1;
  let security = ServerSecurity {
    tls: None,
    secret: with_secret.then(|| Secret::new(SECRET)),
  };
  let outcome = run(async {
    let (server_end, mut client_end) = UnixStream::pair().expect("socketpair");
    let serving = async {
      let mut conn = Conn::accept(Socket::Unix(server_end), &security).await?;
      conn.answer(None, &Default::default()).await
      // `conn` is dropped here, so a client still writing gets EPIPE instead of blocking.
    };
    let (outcome, ()) = tokio::join!(serving, send_and_shut(&mut client_end, wire));
    outcome
  });

  let first = codec::next_frame(wire, codec::HELLO_MAX_LEN);
  let hello_v1 = matches!(&first, Ok(Some(f)) if codec::parse_hello(f) == Some(Hello::Version(codec::VERSION)));
  if with_secret {
    assert!(
      outcome.is_err(),
      "a server with a secret accepted forged bytes: {wire:02x?}"
    );
    // After a good hello, whatever stands where the proof belongs (a complete frame of any kind,
    // or a length no handshake frame has) is an authentication failure, not a protocol one.
    if let (true, Ok(Some(hello))) = (hello_v1, &first) {
      if !matches!(codec::next_frame(&wire[hello.wire_len()..], codec::HELLO_MAX_LEN), Ok(None)) {
        assert!(
          matches!(outcome, Err(HandshakeFailure::Auth(_))),
          "a wrong proof, or something else in its place, must be an auth failure, got {outcome:?}"
        );
      }
    }
  } else {
    assert_eq!(
      outcome.is_ok(),
      hello_v1,
      "accept without a secret must succeed exactly for a version-1 hello: {outcome:?}"
    );
  }
}

// ===== offer =====

/// Arbitrary bytes played as a server against the client's side of the hello (a hostile or fake
/// server). The first byte picks the client: odd, with the secret; even, without. A client with
/// a secret must never be connected by bytes that were not computed from its own fresh nonce;
/// one without is connected exactly when the first frame is a version-1 hello.
pub fn offer(data: &[u8]) {
  let Some((&selector, wire)) = data.split_first() else {
    return;
  };
  let with_secret = selector & 1 == 1;
  let security = ClientSecurity {
    tls: None,
    secret: with_secret.then(|| Secret::new(SECRET)),
  };
  let outcome = run(async {
    let (client_end, mut server_end) = UnixStream::pair().expect("socketpair");
    let connecting = async {
      let conn = Conn::offer(Socket::Unix(client_end), &security, &Default::default()).await;
      conn.map(drop)
    };
    let (outcome, ()) = tokio::join!(connecting, send_and_shut(&mut server_end, wire));
    outcome
  });
  if with_secret {
    assert!(outcome.is_err(), "a client with a secret was connected by forged bytes: {wire:02x?}");
  } else {
    let first = codec::next_frame(wire, codec::HELLO_MAX_LEN);
    let hello_v1 = matches!(&first, Ok(Some(f)) if codec::parse_hello(f) == Some(Hello::Version(codec::VERSION)));
    assert_eq!(
      outcome.is_ok(),
      hello_v1,
      "offer without a secret must succeed exactly for a version-1 hello: {outcome:?}"
    );
  }
}

// ===== stream =====

/// Bytes after a valid hello through an established server connection: `Conn::accept`,
/// `answer`, then `connection::run` as `server.rs` runs it, and its events decoded as JS would.
/// The first byte picks `maxMessageSize` (see `STREAM_MAX_SIZES`); the rest follows the hello.
pub fn stream(data: &[u8]) {
  let Some((&selector, after)) = data.split_first() else {
    return;
  };
  let max = STREAM_MAX_SIZES[usize::from(selector & 1)];
  let expected = decode(after, max).outside_session().until_close_reason();
  let mut wire = hello();
  wire.extend_from_slice(after);

  let events = EventQueue::new(Box::new(NoWake));
  let outbox = Outbox::default();
  let inbound = std::sync::Arc::new(Inbound::new(DEFAULT_MAX_INBOUND));
  let shutdown = CancellationToken::new();
  let end = run(async {
    let (server_end, mut client_end) = UnixStream::pair().expect("socketpair");
    let serving = async {
      let mut conn = Conn::accept(Socket::Unix(server_end), &ServerSecurity::default())
        .await
        .expect("a valid hello is accepted");
      conn.answer(None, &Default::default()).await.expect("our hello is written");
      let link = Link {
        id: 1,
        events: &events,
        outbox: &outbox,
        inbound: &inbound,
        max_message_size: max,
        shutdown: &shutdown,
        heartbeat: None,
        frame_timeout: None,
        peer_received: None,
        wire: Default::default(),
        says_why: true,
        loop_host: None,
      };
      let end = connection::run(conn, link).await;
      connection::report_end(&events, events::kind::CONNECTION_CLOSE, 1, &end);
      end
    };
    let client = async {
      send_and_shut(&mut client_end, &wire).await;
      // The server's hello and pongs, until it closes.
      let mut sink = Vec::new();
      let _ = client_end.read_to_end(&mut sink).await;
    };
    tokio::join!(serving, client).0
  });

  let records = events.take().decode();
  let delivered: Vec<(u8, Vec<u8>)> = records
    .iter()
    .filter(|r| r.kind < 0x80)
    .map(|r| (r.kind, r.body.clone()))
    .collect();
  assert_eq!(
    delivered,
    expected.data(),
    "the connection delivered other frames than were sent"
  );
  assert!(records.iter().all(|r| r.id == 1));
  let clean = expected.error.is_none() && expected.used == after.len();
  match (&end, clean) {
    (Ended::Dropped(_), _) if expected.dropped => {}
    (Ended::PeerClosed, true) | (Ended::Failed(_) | Ended::Cut(_), false) if !expected.dropped => {}
    _ => panic!(
      "the connection ended as {end:?}; expected a {} end",
      if clean { "clean" } else { "failed" }
    ),
  }
  let last = records.last().expect("a close record");
  assert_eq!(last.kind, events::kind::CONNECTION_CLOSE);
}

/// Arbitrary bytes from a client through an established connection on the socket-ipc wire (no
/// hello), as `server.rs` runs it with `protocol: 'socket-ipc'`. The first byte picks
/// `maxMessageSize` (see `STREAM_MAX_SIZES`).
pub fn socket_ipc(data: &[u8]) {
  let Some((&selector, wire)) = data.split_first() else {
    return;
  };
  let max = STREAM_MAX_SIZES[usize::from(selector & 1)];
  // A native client's hello is refused as such (see `Splitter`); a stream that ends before
  // telling is cut.
  let mut hello = Vec::new();
  codec::encode_hello(&mut hello);
  let zeros = wire.len().min(3);
  let (expected, over_limit, trailing) =
    if wire.len() >= 10 && wire[..3] == [0, 0, 0] && wire[4..10] == hello[4..10] {
      (Vec::new(), true, false)
    } else if wire.len() < 10 && wire[..zeros] == [0, 0, 0][..zeros] {
      // Too short to tell a hello from texts: nothing is taken, so a non-empty stream is cut.
      (Vec::new(), false, !wire.is_empty())
    } else {
      let (texts, over_limit) = split_like_javascript(wire, max);
      (texts, over_limit, expected_rest(wire))
    };

  let events = EventQueue::new(Box::new(NoWake));
  let outbox = Outbox::new(Default::default(), None, Wire::SocketIpc);
  let inbound = std::sync::Arc::new(Inbound::new(DEFAULT_MAX_INBOUND));
  let shutdown = CancellationToken::new();
  let end = run(async {
    let (server_end, mut client_end) = UnixStream::pair().expect("socketpair");
    let serving = async {
      let link = Link {
        id: 1,
        events: &events,
        outbox: &outbox,
        inbound: &inbound,
        max_message_size: max,
        shutdown: &shutdown,
        heartbeat: None,
        frame_timeout: None,
        peer_received: None,
        wire: Wire::SocketIpc,
        says_why: true,
        loop_host: None,
      };
      let end = connection::run(Conn::plain(Socket::Unix(server_end)), link).await;
      connection::report_end(&events, events::kind::CONNECTION_CLOSE, 1, &end);
      end
    };
    let client = async {
      send_and_shut(&mut client_end, wire).await;
      let mut sink = Vec::new();
      let _ = client_end.read_to_end(&mut sink).await;
    };
    tokio::join!(serving, client).0
  });

  let records = events.take().decode();
  let mut delivered: Vec<Vec<u8>> = Vec::new();
  for record in records.iter().filter(|r| r.kind < 0x80) {
    match record.kind {
      socket_ipc::TEXT => {
        assert!(std::str::from_utf8(&record.body).is_ok(), "a TEXT record that is not UTF-8");
        delivered.push(record.body.clone());
      }
      socket_ipc::TEXT_GROUP => delivered.extend(text_group(&record.body)),
      // A text that is not UTF-8 comes as `TEXT | text`, and only such a text.
      events::kind::NOT_TEXT => {
        assert_eq!(record.body[0], socket_ipc::TEXT, "a NOT_TEXT record on the socket-ipc wire holds a TEXT");
        assert!(std::str::from_utf8(&record.body[1..]).is_err(), "a UTF-8 text came as NOT_TEXT");
        delivered.push(record.body[1..].to_vec());
      }
      k => panic!("record kind 0x{k:02x} on the socket-ipc wire"),
    }
  }
  assert_eq!(delivered, expected, "the connection delivered other texts than were sent");
  match (&end, over_limit, trailing) {
    (Ended::Failed(_), true, _) | (Ended::PeerClosed, false, false) | (Ended::Cut(_), false, true) => {}
    _ => panic!("the connection ended as {end:?} (over the limit: {over_limit}, unfinished text: {trailing})"),
  }
  assert_eq!(records.last().expect("a close record").kind, events::kind::CONNECTION_CLOSE);
}

/// What `"...".split("\0\0")` keeps before the last delimiter, up to the first text over `max`
/// (and whether there was one, counting an unfinished last text).
fn split_like_javascript(wire: &[u8], max: usize) -> (Vec<Vec<u8>>, bool) {
  let mut texts = Vec::new();
  let (mut start, mut i) = (0, 0);
  while i + 1 < wire.len() {
    if wire[i] == 0 && wire[i + 1] == 0 {
      if i - start > max {
        return (texts, true);
      }
      texts.push(wire[start..i].to_vec());
      i += 2;
      start = i;
    } else {
      i += 1;
    }
  }
  let rest = &wire[start..];
  let unfinished = rest.len() - usize::from(rest.last() == Some(&0));
  (texts, unfinished > max)
}

/// The wire ends in the middle of a text: bytes follow the last delimiter.
fn expected_rest(wire: &[u8]) -> bool {
  let mut start = 0;
  let mut i = 0;
  while i + 1 < wire.len() {
    if wire[i] == 0 && wire[i + 1] == 0 {
      i += 2;
      start = i;
    } else {
      i += 1;
    }
  }
  start < wire.len()
}

/// The texts of a `TEXT_GROUP` record, checking that its array holds exactly them.
fn text_group(body: &[u8]) -> Vec<Vec<u8>> {
  let count = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
  assert!(count >= 2, "a group of {count}");
  let lens: Vec<usize> = (0..count)
    .map(|i| u32::from_be_bytes(body[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
    .collect();
  let array = &body[4 + 4 * count..];
  let mut texts = Vec::new();
  let mut expected_array = b"[".to_vec();
  let mut at = 1;
  for (i, len) in lens.iter().enumerate() {
    let text = &array[at..at + len];
    assert!(codec::stands_alone(text), "a grouped text that does not stand alone: {text:?}");
    assert!(std::str::from_utf8(text).is_ok(), "a grouped text that is not UTF-8: {text:?}");
    if i > 0 {
      expected_array.push(b',');
    }
    expected_array.extend_from_slice(text);
    texts.push(text.to_vec());
    at += len + 1;
  }
  expected_array.push(b']');
  assert_eq!(array, &expected_array[..], "the group's array is its texts, comma-separated");
  texts
}

// ===== plumbing =====

struct NoWake;
impl Wake for NoWake {
  fn wake(&self) {}
}

/// Writes `bytes` and half-closes; errors (the server hung up first) are part of the game.
async fn send_and_shut(stream: &mut UnixStream, bytes: &[u8]) {
  let _ = stream.write_all(bytes).await;
  let _ = stream.shutdown().await;
}

thread_local! {
  static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
    .enable_all()
    .build()
    .expect("tokio runtime");
}

/// Runs `work` to completion on this thread's runtime, panicking if it takes longer than `LIMIT`.
fn run<T>(work: impl Future<Output = T>) -> T {
  ignore_sigpipe();
  RUNTIME.with(|rt| {
    rt.block_on(async {
      tokio::time::timeout(LIMIT, work)
        .await
        .unwrap_or_else(|_| panic!("hang: one input took more than {LIMIT:?}"))
    })
  })
}

/// Under libFuzzer, `main` is not Rust's, so SIGPIPE still kills the process; writing to a
/// socket the server already closed must be an EPIPE error instead (as under Node and `cargo test`).
fn ignore_sigpipe() {
  static ONCE: std::sync::Once = std::sync::Once::new();
  ONCE.call_once(|| {
    extern "C" {
      fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_IGN: usize = 1;
    // SAFETY: installs the "ignore" disposition; no Rust handler runs in signal context.
    unsafe {
      signal(SIGPIPE, SIG_IGN);
    }
  });
}
