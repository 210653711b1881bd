//! Events bound for JavaScript, batched so one wake-up of the JS thread carries every event
//! that is ready at that moment, and handed over in slices so a flood cannot hold the event loop.
//!
//! Producers (connection readers, accept and connect loops) append records to one buffer per
//! Server/Client. The first record after JS took everything wakes the JS thread once; JS then
//! copies the records into its own buffer a slice at a time (`take_into`), and between slices
//! lets the event loop turn (`lib/incoming.js`). While JS is busy, records pile into the same
//! buffer instead of into more wake-ups, so slices fill with load and latency stays one wake-up
//! when idle. Order is the order of appends, so a connection's messages always sit between its
//! `connection` and its `connectionClose`; each connection's readers stop at its inbound cap
//! (`inbound`), so no connection can be more than that ahead of the others.
//!
//! Record layout (big-endian), decoded by `lib/incoming.js`:
//! `kind: u8 | id: u32 | len: u32 | body[len]`. A single message's body is the wire frame minus
//! its length prefix and kind (`topic_len: u16 | topic | payload`), copied once. Two other
//! message records exist: `JSON_GROUP`, a run of JSON messages parsed as one array
//! (`encode_messages`), and `ATTACHED`, a large frame handed over whole (`push_attached`). A data
//! frame whose JSON is not UTF-8 comes as a `NOT_TEXT` record (`kind | body`), which JS reports
//! as undecodable.
//! Connections on the socket-ipc wire send `TEXT` and `TEXT_GROUP` records (`push_texts`).
//!
//! Longer than most files (about 880 lines, a third of them tests): the queue and the record
//! format it writes are one thing, what JS reads, and are kept together so the format has one home.

use crate::codec;
use crate::socket_ipc;
use crate::error::IpcError;
use crate::inbound::Inbound;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Record kinds. Data frames (messages, requests, replies) reuse their wire kinds, all below 0x80;
/// the events of the connection's life are 0x80 and up, so the two ranges never meet.
pub mod kind {
  pub use crate::codec::kind::{
    MESSAGE_BINARY, MESSAGE_JSON, REPLY_BINARY, REPLY_ERROR, REPLY_JSON, REQUEST_BINARY, REQUEST_JSON,
  };
  /// Two or more JSON messages from one connection, parsed by JS as one array (see `encode_messages`).
  pub const JSON_GROUP: u8 = 0x12;
  /// A large frame handed over whole; body: empty. The n-th `ATTACHED` record of a slice is the
  /// n-th frame `take_attached` returns.
  pub const ATTACHED: u8 = 0x13;
  /// socket-ipc messages: one text, or a run of them (see `encode_texts`).
  pub use crate::socket_ipc::{TEXT, TEXT_GROUP};
  /// A data frame (or socket-ipc text) whose payload should be UTF-8 text and is not
  /// (`codec::payload_is_text`). Body: its kind, then its body (`kind: u8 | body`), so JS can
  /// still name the topic and answer a request.
  pub const NOT_TEXT: u8 = 0x16;
  /// Body: what is bound, as JSON (see `Listener::address_json`).
  pub const LISTENING: u8 = 0x81;
  /// Body: who connected, as JSON (see `PeerInfo::write_json`).
  pub const CONNECTION: u8 = 0x82;
  /// Body: empty, or the error JSON of why the connection was dropped (see `IpcError::write_json`).
  pub const CONNECTION_CLOSE: u8 = 0x83;
  /// Body: two bytes: 1 when this connect is an automatic reconnect; 1 when it resumed an
  /// at-least-once session (0: the server did not know it, so it started afresh).
  pub const CONNECT: u8 = 0x84;
  /// Body: as `CONNECTION_CLOSE`.
  pub const DISCONNECT: u8 = 0x85;
  /// Body: error JSON (see `IpcError::write_json`).
  pub const MESSAGE_ERROR: u8 = 0x86;
  pub const ERROR: u8 = 0x87;
  pub const CONNECT_ERROR: u8 = 0x88;
  pub const CLOSE: u8 = 0x89;
  /// A Peer took a role. Body: one byte, 0 server, 1 client.
  pub const ROLE: u8 = 0x8A;
  /// A connection failed authentication. Body: `{"error": <error JSON>, "info": <peer JSON>}`.
  pub const AUTH_ERROR: u8 = 0x8B;
  /// The `allow` function must decide on a connection (answered by `Server::admit`). Body: peer JSON.
  pub const ADMIT: u8 = 0x8C;
  /// A buffer that had passed `highWaterMark` is down to half of it. Body: the spell's number (u32).
  pub const DRAIN: u8 = 0x8D;
  /// The server dropped a client for passing `maxBufferedBytes`; its `CONNECTION_CLOSE` follows.
  pub const SLOW_CLIENT: u8 = 0x8E;
  /// An at-least-once client's connection dropped; its session is kept for it to resume.
  /// Body: as `CONNECTION_CLOSE`.
  pub const CLIENT_DISCONNECT: u8 = 0x8F;
  /// An at-least-once client resumed its session (same id).
  pub const CLIENT_RECONNECT: u8 = 0x90;
}

/// In at-least-once sessions: connection id, the session's epoch, and how many of its data
/// frames have been appended (see `EventQueue::take_delivered`).
pub type Mark = (u32, u32, u64);

pub const RECORD_HEADER: usize = 9;

/// Below this, a drained queue keeps its buffer for the next records; above it the buffer is
/// given back once a spell of traffic no longer fills it, so memory a flood took returns once
/// the flood is over.
const KEEP_CAPACITY: usize = 256 * 1024;

/// Past this much queued for JS from all connections together, only connections with nothing
/// queued may add more (see `wait_for_room`): it keeps JS busy for a few slices, and bounds how
/// long a quiet connection's message waits behind floods (about 1 MiB of 10-byte requests is
/// 70 ms of JS here).
const SHARED_QUEUE: usize = 1024 * 1024;

thread_local! {
  /// Set on the JS thread while a loop read queues records it hands to JS itself (`deliver_now`).
  static DELIVERING_NOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
  /// A wake-up was held back while `DELIVERING_NOW`.
  static HELD_BACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `read` (on the JS thread) without waking JS for the records it queues. Returns its
/// result, and whether a wake-up was held back: the caller must then hand the records to JS
/// itself, in the same callback.
pub fn deliver_now<R>(read: impl FnOnce() -> R) -> (R, bool) {
  DELIVERING_NOW.with(|now| now.set(true));
  HELD_BACK.with(|held| held.set(false));
  let result = read();
  DELIVERING_NOW.with(|now| now.set(false));
  (result, HELD_BACK.with(|held| held.replace(false)))
}

/// Wakes the JS thread. The binding implements it with a threadsafe function; tests with a Notify.
pub trait Wake: Send + Sync + 'static {
  fn wake(&self);
}

pub struct EventQueue {
  state: Mutex<State>,
  /// Notified whenever JS takes records while readers wait for the shared queue to shrink.
  room: Notify,
  readers_waiting: AtomicUsize,
  /// Connections tracked: with one, there is nobody to share the queue with.
  connections: AtomicUsize,
}

struct State {
  /// Records appended and not yet taken start at `head`.
  buf: Vec<u8>,
  head: usize,
  /// Bytes ever appended and ever taken: where each mark sits in the stream of records.
  appended: u64,
  taken: u64,
  /// Large frames handed over whole, in the order of their `ATTACHED` records (see `push_attached`).
  attachments: VecDeque<Vec<u8>>,
  /// Those of the slice JS took last, until it asks for them (`take_attached`).
  handed: Vec<Vec<u8>>,
  /// A wake-up is on its way, or JS has not yet taken everything: either way JS will call
  /// `take_into` again, so producers need not wake it.
  scheduled: bool,
  /// Session counts of appended frames: (position after them, connection, epoch, count).
  marks: VecDeque<(u64, u32, u32, u64)>,
  /// Those of frames JS has taken: once it says its listeners ran, they are acknowledged.
  taken_marks: HashMap<u32, (u32, u64)>,
  /// Each connection's account of its input (see `inbound`), by connection id.
  inbounds: HashMap<u32, Arc<Inbound>>,
  /// Bytes of the large frames in `attachments`.
  attached_bytes: usize,
  /// The most that was queued at a take since JS last took everything (see `KEEP_CAPACITY`).
  peak: usize,
  /// Dropped by `finish()`: releasing it is what lets Node exit.
  waker: Option<Box<dyn Wake>>,
}

/// What one `take_into` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
  /// `len` bytes of whole records were written; `more` when records are still waiting.
  Records { len: usize, more: bool },
  /// The next record alone is larger than the room given: this much is needed.
  NeedRoom(usize),
}

impl EventQueue {
  pub fn new(waker: Box<dyn Wake>) -> Arc<Self> {
    Arc::new(EventQueue {
      state: Mutex::new(State {
        buf: Vec::new(),
        head: 0,
        appended: 0,
        taken: 0,
        attachments: VecDeque::new(),
        handed: Vec::new(),
        scheduled: false,
        marks: VecDeque::new(),
        taken_marks: HashMap::new(),
        inbounds: HashMap::new(),
        attached_bytes: 0,
        peak: 0,
        waker: Some(waker),
      }),
      room: Notify::new(),
      readers_waiting: AtomicUsize::new(0),
      connections: AtomicUsize::new(0),
    })
  }


  fn lock(&self) -> MutexGuard<'_, State> {
    // A poisoned lock only means a producer panicked mid-append; the buffer is still usable.
    self.state.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// Counts connection `id`'s data records against `inbound` from now on.
  pub fn track(&self, id: u32, inbound: Arc<Inbound>) {
    let mut state = self.lock();
    state.inbounds.insert(id, inbound);
    self.connections.store(state.inbounds.len(), Ordering::Release);
  }

  /// Connection `id` is gone for good; its records still queued are delivered uncounted.
  pub fn untrack(&self, id: u32) {
    let mut state = self.lock();
    state.inbounds.remove(&id);
    self.connections.store(state.inbounds.len(), Ordering::Release);
  }

  /// Appends under the lock and wakes JS if no wake-up is pending. After `finish()` it is a no-op.
  fn append(&self, write: impl FnOnce(&mut State)) {
    let mut state = self.lock();
    if state.waker.is_none() {
      return;
    }
    let before = state.buf.len();
    write(&mut state);
    state.appended += (state.buf.len() - before) as u64;
    if !state.scheduled {
      state.scheduled = true;
      // On the JS thread in a loop read, the caller hands the records to JS itself.
      if DELIVERING_NOW.with(|now| now.get()) {
        HELD_BACK.with(|held| held.set(true));
      } else if let Some(waker) = &state.waker {
        waker.wake();
      }
    }
  }

  /// Wakes JS even with nothing to take (it then also starts watching the sockets its event
  /// loop reads, see `loop_reads`).
  pub fn nudge(&self) {
    let mut state = self.lock();
    if !state.scheduled {
      state.scheduled = true;
      if let Some(waker) = &state.waker {
        waker.wake();
      }
    }
  }

  /// Appends connection `id`'s data records (and `attached` bytes of large frames), counted
  /// against its inbound account; `mark` (epoch, count) is its session's count once they are in.
  fn append_data(&self, id: u32, mark: Option<(u32, u64)>, write: impl FnOnce(&mut State) -> usize) {
    self.append(|state| {
      let before = state.buf.len();
      let attached = write(state);
      state.attached_bytes += attached;
      if let Some(inbound) = state.inbounds.get(&id) {
        inbound.add(state.buf.len() - before + attached);
      }
      if let Some((epoch, count)) = mark {
        let after = state.appended + (state.buf.len() - before) as u64;
        state.marks.push_back((after, id, epoch, count));
      }
    });
  }

  pub fn push(&self, kind: u8, id: u32, body: &[u8]) {
    self.append(|state| write_record(&mut state.buf, kind, id, body));
  }

  /// An `AUTH_ERROR` record: the error and who caused it.
  pub fn push_auth_error(&self, id: u32, error: &IpcError, info: &crate::transport::PeerInfo) {
    let mut body = b"{\"error\":".to_vec();
    error.write_json(&mut body);
    body.extend_from_slice(b",\"info\":");
    info.write_json(&mut body);
    body.push(b'}');
    self.push(kind::AUTH_ERROR, id, &body);
  }

  pub fn push_error(&self, kind: u8, id: u32, error: &IpcError) {
    let mut body = Vec::with_capacity(128);
    error.write_json(&mut body);
    self.push(kind, id, &body);
  }

  /// Appends every data frame in `frames` (complete, validated wire frames) from connection `id`.
  /// Control frames are skipped: they are the connection's business, not the user's. `mark`
  /// (epoch, count) is the session's count of data frames once these are in.
  pub fn push_frames(&self, id: u32, frames: &[u8], mark: Option<(u32, u64)>) {
    self.append_data(id, mark, |state| {
      encode_messages(&mut state.buf, id, frames);
      0
    });
  }

  /// Appends the messages of the socket-ipc wire whose bytes (delimiters included) are
  /// `complete` (see `socket_ipc`).
  pub fn push_texts(&self, id: u32, complete: &[u8]) {
    self.append_data(id, None, |state| {
      encode_texts(&mut state.buf, id, complete);
      0
    });
  }

  /// Hands one complete, validated large message frame (length prefix included) to JS as it is:
  /// the record only says where it goes, so the megabyte that was read from the socket is the
  /// very memory the listener's Buffer looks at.
  pub fn push_attached(&self, id: u32, frame: Vec<u8>, mark: Option<(u32, u64)>) {
    if !codec::payload_is_text(frame[codec::LEN_PREFIX], &frame[codec::LEN_PREFIX + 1..]) {
      // Rare, and JS only reads its header: a copy into the queue does.
      return self.push_frames(id, &frame, mark);
    }
    self.append_data(id, mark, |state| {
      write_record(&mut state.buf, kind::ATTACHED, id, &[]);
      let len = frame.len();
      state.attachments.push_back(frame);
      len
    });
  }

  /// The session counts of everything JS has taken, to acknowledge now that its listeners ran.
  pub fn take_delivered(&self) -> Vec<Mark> {
    let mut state = self.lock();
    state.taken_marks.drain().map(|(id, (epoch, count))| (id, epoch, count)).collect()
  }

  /// Called on the JS thread, which has dispatched the slice it took before: copies the next
  /// whole records, in order, into `out` (JS's own buffer, reused slice after slice, so nothing
  /// waits for a finalizer to be freed). The large frames among them follow with
  /// `take_attached`. Once it returns `more: false`, the next record appended wakes JS again.
  ///
  /// What is copied out no longer counts against its connection (JS's slice is one buffer of
  /// fixed size, whoever the records are from), except requests: they stay held until their
  /// reply is queued (`Inbound::replied`).
  pub fn take_into(&self, out: &mut [u8]) -> Taken {
    self.take_records(out, true)
  }

  /// `take_into` for the rest of the slice just taken, in the same call: the large frames of
  /// these records follow that slice's with the same `take_attached`.
  pub fn take_more_into(&self, out: &mut [u8]) -> Taken {
    self.take_records(out, false)
  }

  fn take_records(&self, out: &mut [u8], new_slice: bool) -> Taken {
    let mut guard = self.lock();
    let state = &mut *guard;
    if new_slice {
      state.handed.clear();
    }
    state.peak = state.peak.max(state.buf.len() - state.head);
    let queued = &state.buf[state.head..];
    let mut len = 0;
    while let Some(header) = queued.get(len..len + RECORD_HEADER) {
      let body_len = u32::from_be_bytes(header[5..9].try_into().unwrap()) as usize;
      let record_len = RECORD_HEADER + body_len;
      if len + record_len > out.len() {
        if len == 0 {
          return Taken::NeedRoom(record_len);
        }
        break;
      }
      let id = u32::from_be_bytes(header[1..5].try_into().unwrap());
      let kind = header[0];
      let mut bytes = record_len;
      let mut request = None;
      if kind == kind::ATTACHED {
        let frame = state.attachments.pop_front().expect("an ATTACHED record has its frame");
        bytes += frame.len();
        state.attached_bytes -= frame.len();
        if matches!(frame[codec::LEN_PREFIX], kind::REQUEST_JSON | kind::REQUEST_BINARY) {
          request = Some(u32::from_be_bytes(frame[5..9].try_into().unwrap()));
        }
        state.handed.push(frame);
      } else if matches!(kind, kind::REQUEST_JSON | kind::REQUEST_BINARY) {
        request = queued.get(len + RECORD_HEADER..len + RECORD_HEADER + 4).map(|b| u32::from_be_bytes(b.try_into().unwrap()));
      } else if kind == kind::NOT_TEXT && queued.get(len + RECORD_HEADER) == Some(&kind::REQUEST_JSON) {
        // It is answered (status BAD_REQUEST) like any request, and held until then.
        let at = len + RECORD_HEADER + 1;
        request = queued.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().unwrap()));
      }
      // Lifecycle records (0x80 and up) were never counted.
      if kind < 0x80 {
        if let Some(inbound) = state.inbounds.get(&id) {
          inbound.taken(bytes, request);
        }
      }
      len += record_len;
    }
    out[..len].copy_from_slice(&queued[..len]);
    state.head += len;
    state.taken += len as u64;
    while let Some(&(at, id, epoch, count)) = state.marks.front() {
      if at > state.taken {
        break;
      }
      // A connection's later count supersedes its earlier one.
      state.taken_marks.insert(id, (epoch, count));
      state.marks.pop_front();
    }
    let more = state.head < state.buf.len();
    if !more {
      state.buf.clear();
      state.head = 0;
      // Given back once a busy spell used less than a quarter of it: a flood is over. During a
      // flood it is kept (reallocating it for every spell costs a stream a tenth of its speed).
      if state.buf.capacity() > KEEP_CAPACITY && 4 * state.peak < state.buf.capacity() {
        state.buf = Vec::new();
      }
      state.peak = 0;
      state.scheduled = false;
    } else if state.head >= state.buf.len() - state.head {
      // Most of the buffer is taken: move the rest to the front (it is the smaller part).
      state.buf.drain(..state.head);
      state.head = 0;
    }
    drop(guard);
    if self.readers_waiting.load(Ordering::SeqCst) > 0 {
      self.room.notify_waiters();
    }
    Taken::Records { len, more }
  }

  /// Bytes waiting for JS, from every connection.
  fn queued(&self) -> usize {
    let state = self.lock();
    state.buf.len() - state.head + state.attached_bytes
  }

  /// Waits until connection `inbound` may read more: it holds less than its cap, and either
  /// everything queued for JS (from every connection) is under `SHARED_QUEUE` (or the cap, if
  /// lower; a lone connection has the whole cap), or nothing of its own is queued. A connection with nothing waiting may always add
  /// one read, so however many connections flood, a quiet one's message waits behind at most
  /// that much plus one read per connection, and the queue stays as small.
  pub async fn wait_for_room(&self, inbound: &Inbound) {
    let shared = self.shared_room(inbound);
    let room = || inbound.queued() == 0 || self.queued() < shared;
    // The common case, JS keeping up, without registering as a waiter.
    if inbound.held() < inbound.cap() && room() {
      return;
    }
    self.readers_waiting.fetch_add(1, Ordering::SeqCst);
    inbound
      .wait_for_room(&self.room, room)
      .await;
    self.readers_waiting.fetch_sub(1, Ordering::SeqCst);
  }

  fn shared_room(&self, inbound: &Inbound) -> usize {
    match self.connections.load(Ordering::Acquire) {
      0 | 1 => inbound.cap(),
      _ => SHARED_QUEUE.min(inbound.cap()),
    }
  }

  /// Whether connection `inbound` may read more now (what `wait_for_room` waits for).
  pub fn room_for(&self, inbound: &Inbound) -> bool {
    inbound.held() < inbound.cap() && (inbound.queued() == 0 || self.queued() < self.shared_room(inbound))
  }

  /// The large frames whose `ATTACHED` records are in the slice `take_into` just wrote, in order.
  pub fn take_attached(&self) -> Vec<Vec<u8>> {
    std::mem::take(&mut self.lock().handed)
  }

  /// Everything queued, in order, as one batch (tests and tools; JS takes slices).
  pub fn take(&self) -> Batch {
    let mut batch = Batch::default();
    let mut room = vec![0; 64 * 1024];
    loop {
      match self.take_into(&mut room) {
        Taken::NeedRoom(size) => room.resize(size, 0),
        Taken::Records { len, more } => {
          batch.records.extend_from_slice(&room[..len]);
          batch.attachments.extend(self.take_attached());
          if !more {
            return batch;
          }
        }
      }
    }
  }

  /// No more events: releases the waker (after the last wake-up it triggered is queued).
  pub fn finish(&self) {
    let waker = self.lock().waker.take();
    drop(waker);
  }
}

fn write_record(buf: &mut Vec<u8>, kind: u8, id: u32, body: &[u8]) {
  buf.reserve(RECORD_HEADER + body.len());
  buf.push(kind);
  buf.extend_from_slice(&id.to_be_bytes());
  buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
  buf.extend_from_slice(body);
}

/// Bytes of one entry in a JSON group's table: `same_topic: u8 | topic_len: u16 | payload_len: u32`.
const GROUP_ENTRY: usize = 7;

/// Turns message frames into records. Runs of two or more JSON messages whose payloads can stand
/// as array elements become one `JSON_GROUP` record, so JS parses the whole run with a single
/// `JSON.parse` — about half the main-thread cost of parsing each message on its own. Layout:
/// `count: u32 | array_at: u32 | count × entry | topics (only where not same_topic) | [p1,p2,…]`,
/// with `array_at` counted from the start of the body.
///
/// # Panics
/// If `frames` holds a frame that `codec::validate` would refuse: the reader passes only the
/// validated prefix of what it read (the fuzz target `frames` checks that contract).
pub fn encode_messages(buf: &mut Vec<u8>, id: u32, frames: &[u8]) {
  let mut messages = MessageFrames(frames).peekable();
  while let Some((kind, body)) = messages.next() {
    if kind != kind::MESSAGE_JSON || !groupable(body) {
      write_data_record(buf, kind, id, body);
      continue;
    }
    let mut run = vec![body];
    while let Some((_, next)) = messages.next_if(|(k, b)| *k == kind::MESSAGE_JSON && groupable(b)) {
      run.push(next);
    }
    if run.len() == 1 {
      write_data_record(buf, kind, id, body);
    } else if !write_group(buf, id, &run) {
      // Some payload is not UTF-8 (rare): each message on its own, so only that one fails.
      for body in run {
        write_data_record(buf, kind, id, body);
      }
    }
  }
}

/// A JSON message that may share a group's array (its UTF-8 is checked with the group's).
fn groupable(body: &[u8]) -> bool {
  codec::message_payload(body).is_some_and(codec::stands_alone)
}

/// One data frame as its own record: as it came, or as `NOT_TEXT` if its text is not UTF-8.
fn write_data_record(buf: &mut Vec<u8>, kind: u8, id: u32, body: &[u8]) {
  if codec::payload_is_text(kind, body) {
    write_record(buf, kind, id, body);
  } else {
    write_not_text(buf, kind, id, body);
  }
}

/// A `NOT_TEXT` record: `kind | body`.
fn write_not_text(buf: &mut Vec<u8>, kind: u8, id: u32, body: &[u8]) {
  buf.reserve(RECORD_HEADER + 1 + body.len());
  buf.push(kind::NOT_TEXT);
  buf.extend_from_slice(&id.to_be_bytes());
  buf.extend_from_slice(&((1 + body.len()) as u32).to_be_bytes());
  buf.push(kind);
  buf.extend_from_slice(body);
}

/// Writes a `JSON_GROUP`; false (and nothing written) if its payloads are not all UTF-8. They are
/// checked together, as the array they make: one pass over contiguous bytes costs less than a
/// check per message, and the commas between them are ASCII, so the array is UTF-8 exactly when
/// every payload is.
fn write_group(buf: &mut Vec<u8>, id: u32, bodies: &[&[u8]]) -> bool {
  let record_at = buf.len();
  buf.extend_from_slice(&[kind::JSON_GROUP, 0, 0, 0, 0, 0, 0, 0, 0]);
  buf[record_at + 1..record_at + 5].copy_from_slice(&id.to_be_bytes());
  let body_at = buf.len();
  buf.extend_from_slice(&(bodies.len() as u32).to_be_bytes());
  buf.extend_from_slice(&[0; 4]); // array_at, filled in below
  let mut previous: Option<&[u8]> = None;
  for body in bodies {
    let topic = codec::message_topic(body).unwrap_or_default();
    let payload = &body[2 + topic.len()..];
    buf.push(u8::from(previous == Some(topic)));
    buf.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    previous = Some(topic);
  }
  debug_assert_eq!(buf.len(), body_at + 8 + GROUP_ENTRY * bodies.len());
  let mut previous: Option<&[u8]> = None;
  for body in bodies {
    let topic = codec::message_topic(body).unwrap_or_default();
    if previous != Some(topic) {
      buf.extend_from_slice(topic);
    }
    previous = Some(topic);
  }
  let array_at = (buf.len() - body_at) as u32;
  buf[body_at + 4..body_at + 8].copy_from_slice(&array_at.to_be_bytes());
  let array_start = buf.len();
  buf.push(b'[');
  for (i, body) in bodies.iter().enumerate() {
    if i > 0 {
      buf.push(b',');
    }
    buf.extend_from_slice(codec::message_payload(body).unwrap_or_default());
  }
  buf.push(b']');
  if std::str::from_utf8(&buf[array_start..]).is_err() {
    buf.truncate(record_at);
    return false;
  }
  let len = (buf.len() - body_at) as u32;
  buf[record_at + 5..record_at + 9].copy_from_slice(&len.to_be_bytes());
  true
}

/// socket-ipc messages into records: runs of two or more texts that stand alone as array elements
/// become one `TEXT_GROUP` (`count: u32 | count × text_len: u32 | [t1,t2,…]`), parsed by JS at
/// once as `JSON_GROUP`s are; any other text is a `TEXT` record of its own.
fn encode_texts(buf: &mut Vec<u8>, id: u32, complete: &[u8]) {
  let mut texts = socket_ipc::texts(complete).peekable();
  while let Some(text) = texts.next() {
    if !codec::stands_alone(text) {
      write_text(buf, id, text);
      continue;
    }
    let mut run = vec![text];
    while let Some(next) = texts.next_if(|t| codec::stands_alone(t)) {
      run.push(next);
    }
    if run.len() == 1 {
      write_text(buf, id, text);
      continue;
    }
    let record_at = buf.len();
    buf.extend_from_slice(&[socket_ipc::TEXT_GROUP, 0, 0, 0, 0, 0, 0, 0, 0]);
    buf[record_at + 1..record_at + 5].copy_from_slice(&id.to_be_bytes());
    let body_at = buf.len();
    buf.extend_from_slice(&(run.len() as u32).to_be_bytes());
    for text in &run {
      buf.extend_from_slice(&(text.len() as u32).to_be_bytes());
    }
    let array_start = buf.len();
    buf.push(b'[');
    for (i, text) in run.iter().enumerate() {
      if i > 0 {
        buf.push(b',');
      }
      buf.extend_from_slice(text);
    }
    buf.push(b']');
    // As in `write_group`: the texts are checked together; if one is not UTF-8, each goes alone.
    if std::str::from_utf8(&buf[array_start..]).is_err() {
      buf.truncate(record_at);
      run.iter().for_each(|text| write_text(buf, id, text));
      continue;
    }
    let len = (buf.len() - body_at) as u32;
    buf[record_at + 5..record_at + 9].copy_from_slice(&len.to_be_bytes());
  }
}

/// One socket-ipc text as its own record: `TEXT`, or `NOT_TEXT` if it is not UTF-8.
fn write_text(buf: &mut Vec<u8>, id: u32, text: &[u8]) {
  match std::str::from_utf8(text) {
    Ok(_) => write_record(buf, socket_ipc::TEXT, id, text),
    Err(_) => write_not_text(buf, socket_ipc::TEXT, id, text),
  }
}

/// Iterates the data frames (kind, body) in a run of complete wire frames, skipping control frames.
struct MessageFrames<'a>(&'a [u8]);

impl<'a> Iterator for MessageFrames<'a> {
  type Item = (u8, &'a [u8]);

  fn next(&mut self) -> Option<Self::Item> {
    loop {
      let len = u32::from_be_bytes(self.0.get(..codec::LEN_PREFIX)?.try_into().unwrap()) as usize;
      let frame = &self.0[codec::LEN_PREFIX..codec::LEN_PREFIX + len];
      self.0 = &self.0[codec::LEN_PREFIX + len..];
      if codec::carries_data(frame[0]) {
        return Some((frame[0], &frame[1..]));
      }
    }
  }
}

/// One decoded record, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
  pub kind: u8,
  pub id: u32,
  pub body: Vec<u8>,
}

/// What one `take()` hands to JS: the records, and the large frames they refer to.
#[derive(Debug, Default)]
pub struct Batch {
  pub records: Vec<u8>,
  pub attachments: Vec<Vec<u8>>,
}

impl Batch {
  /// One record per event as JS emits them (see `decode_records`), attachments resolved.
  pub fn decode(&self) -> Vec<Record> {
    let mut attachments = self.attachments.iter();
    decode_records(&self.records)
      .into_iter()
      .map(|record| {
        if record.kind != kind::ATTACHED {
          return record;
        }
        let frame = attachments.next().expect("each ATTACHED record has its frame");
        Record {
          kind: frame[codec::LEN_PREFIX],
          id: record.id,
          body: frame[codec::LEN_PREFIX + 1..].to_vec(),
        }
      })
      .collect()
  }
}

/// Splits a taken buffer into records exactly as they are laid out.
pub fn split_records(mut buf: &[u8]) -> Vec<Record> {
  let mut out = Vec::new();
  while buf.len() >= RECORD_HEADER {
    let id = u32::from_be_bytes(buf[1..5].try_into().unwrap());
    let len = u32::from_be_bytes(buf[5..9].try_into().unwrap()) as usize;
    out.push(Record {
      kind: buf[0],
      id,
      body: buf[RECORD_HEADER..RECORD_HEADER + len].to_vec(),
    });
    buf = &buf[RECORD_HEADER + len..];
  }
  out
}

/// Splits a taken buffer into records, one per event as JS emits them: each message of a
/// `JSON_GROUP` becomes its own `MESSAGE_JSON` record (body `topic_len | topic | payload`).
pub fn decode_records(buf: &[u8]) -> Vec<Record> {
  let mut out = Vec::new();
  for record in split_records(buf) {
    if record.kind != kind::JSON_GROUP {
      out.push(record);
      continue;
    }
    let body = &record.body;
    let count = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
    let array_at = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
    let (mut topic_at, mut payload_at) = (8 + count * GROUP_ENTRY, array_at + 1);
    let mut topic: &[u8] = &[];
    for entry in body[8..8 + count * GROUP_ENTRY].chunks(GROUP_ENTRY) {
      let topic_len = u16::from_be_bytes([entry[1], entry[2]]) as usize;
      let payload_len = u32::from_be_bytes(entry[3..7].try_into().unwrap()) as usize;
      if entry[0] == 0 {
        topic = &body[topic_at..topic_at + topic_len];
        topic_at += topic_len;
      }
      let mut message = (topic.len() as u16).to_be_bytes().to_vec();
      message.extend_from_slice(topic);
      message.extend_from_slice(&body[payload_at..payload_at + payload_len]);
      payload_at += payload_len + 1;
      out.push(Record {
        kind: kind::MESSAGE_JSON,
        id: record.id,
        body: message,
      });
    }
  }
  out
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::{AtomicUsize, Ordering};

  struct CountingWake(Arc<AtomicUsize>);
  impl Wake for CountingWake {
    fn wake(&self) {
      self.0.fetch_add(1, Ordering::SeqCst);
    }
  }

  #[test]
  fn one_wake_up_per_batch_however_many_events() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let q = EventQueue::new(Box::new(CountingWake(wakes.clone())));
    for i in 0..1000 {
      q.push(kind::CONNECTION, i, b"");
    }
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
    assert_eq!(q.take().decode().len(), 1000);
    q.push(kind::CLOSE, 0, b"");
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
  }

  #[test]
  fn data_frames_become_records_and_control_frames_vanish() {
    let q = EventQueue::new(Box::new(CountingWake(Default::default())));
    let mut wire = Vec::new();
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "t", b"[1]");
    codec::encode_control(&mut wire, codec::kind::PING);
    codec::encode_message(&mut wire, kind::MESSAGE_BINARY, "b", &[7, 8]);
    codec::encode_control(&mut wire, codec::kind::PONG);
    codec::encode_request(&mut wire, kind::REQUEST_JSON, 9, "q", b"2");
    codec::encode_reply(&mut wire, kind::REPLY_JSON, 9, b"3");
    q.push_frames(5, &wire, None);
    let records = q.take().decode();
    assert_eq!(
      records,
      vec![
        Record {
          kind: kind::MESSAGE_JSON,
          id: 5,
          body: b"\0\x01t[1]".to_vec()
        },
        Record {
          kind: kind::MESSAGE_BINARY,
          id: 5,
          body: vec![0, 1, b'b', 7, 8]
        },
        Record {
          kind: kind::REQUEST_JSON,
          id: 5,
          body: vec![0, 0, 0, 9, 0, 1, b'q', b'2']
        },
        Record {
          kind: kind::REPLY_JSON,
          id: 5,
          body: vec![0, 0, 0, 9, b'3']
        },
      ]
    );
  }

  #[test]
  fn runs_of_json_messages_become_one_group_parsed_as_one_array() {
    let mut wire = Vec::new();
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "a", b"1");
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "a", b"{\"x\":2}");
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "bb", b"[3]");
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "bb", b"1,2"); // cannot share an array
    codec::encode_message(&mut wire, kind::MESSAGE_BINARY, "c", b"\x00");
    let mut out = Vec::new();
    encode_messages(&mut out, 7, &wire);
    let records = split_records(&out);
    assert_eq!(
      records.iter().map(|r| r.kind).collect::<Vec<_>>(),
      [kind::JSON_GROUP, kind::MESSAGE_JSON, kind::MESSAGE_BINARY]
    );
    let group = &records[0].body;
    assert_eq!(records[0].id, 7);
    assert_eq!(&group[..4], &3u32.to_be_bytes());
    let array_at = u32::from_be_bytes(group[4..8].try_into().unwrap()) as usize;
    let entries: Vec<&[u8]> = group[8..8 + 3 * GROUP_ENTRY].chunks(GROUP_ENTRY).collect();
    assert_eq!(entries[0], [0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(entries[1], [1, 0, 1, 0, 0, 0, 7], "same topic as before: not repeated");
    assert_eq!(entries[2], [0, 0, 2, 0, 0, 0, 3]);
    assert_eq!(&group[8 + 3 * GROUP_ENTRY..array_at], b"abb");
    assert_eq!(&group[array_at..], b"[1,{\"x\":2},[3]]");

    let expanded = decode_records(&out);
    assert_eq!(expanded.len(), 5);
    assert_eq!(
      expanded[1],
      Record {
        kind: kind::MESSAGE_JSON,
        id: 7,
        body: b"\0\x01a{\"x\":2}".to_vec()
      }
    );
    assert_eq!(
      expanded[2],
      Record {
        kind: kind::MESSAGE_JSON,
        id: 7,
        body: b"\0\x02bb[3]".to_vec()
      }
    );
  }

  #[test]
  fn json_that_is_not_utf8_comes_as_not_text_and_breaks_a_group_without_losing_its_neighbours() {
    let q = EventQueue::new(Box::new(CountingWake(Default::default())));
    let inbound = Arc::new(Inbound::new(1 << 20));
    q.track(1, inbound.clone());
    let mut wire = Vec::new();
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "a", b"1");
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "a", b"\"\xff\"");
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "a", b"2");
    codec::encode_message(&mut wire, kind::MESSAGE_BINARY, "b", b"\xff");
    codec::encode_request(&mut wire, kind::REQUEST_JSON, 9, "q", b"\xc0\xaf");
    q.push_frames(1, &wire, None);
    let records = q.take().decode();
    let kinds: Vec<u8> = records.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [kind::MESSAGE_JSON, kind::NOT_TEXT, kind::MESSAGE_JSON, kind::MESSAGE_BINARY, kind::NOT_TEXT]);
    assert_eq!(records[1].body, [&[kind::MESSAGE_JSON][..], b"\0\x01a\"\xff\""].concat(), "its kind, then its body");
    assert_eq!(records[4].body[0], kind::REQUEST_JSON);
    let request_record = RECORD_HEADER + 1 + 4 + 2 + 1 + 2;
    assert_eq!(inbound.held(), request_record, "the undecodable request is held until it is answered");
    let mut reply = Vec::new();
    codec::encode_frame(&mut reply, kind::REPLY_ERROR, &[0, 0, 0, 9, codec::reply_status::BAD_REQUEST, b'{', b'}']);
    inbound.replied(&reply);
    assert_eq!(inbound.held(), 0);

    let mut large = Vec::new();
    codec::encode_message(&mut large, kind::MESSAGE_JSON, "big", &[0xff; 100]);
    q.push_attached(1, large.clone(), None);
    let records = q.take().decode();
    assert_eq!(records, vec![Record { kind: kind::NOT_TEXT, id: 1, body: large[codec::LEN_PREFIX..].to_vec() }]);
  }

  #[test]
  fn a_large_frame_is_handed_over_whole_and_counts_toward_its_connection() {
    let q = EventQueue::new(Box::new(CountingWake(Default::default())));
    let inbound = Arc::new(Inbound::new(1 << 20));
    q.track(3, inbound.clone());
    let mut frame = Vec::new();
    codec::encode_message(&mut frame, kind::MESSAGE_BINARY, "big", &[5; 1000]);
    q.push(kind::CONNECTION, 3, b"");
    q.push_attached(3, frame.clone(), None);
    assert_eq!(inbound.held(), RECORD_HEADER + frame.len(), "lifecycle records are not counted");
    let mut out = vec![0; 1024];
    assert_eq!(q.take_into(&mut out), Taken::Records { len: 2 * RECORD_HEADER, more: false });
    assert_eq!(q.take_attached(), vec![frame.clone()], "the same bytes, not re-encoded");
    assert_eq!(inbound.held(), 0, "released once JS has it");
  }

  #[test]
  fn records_taken_more_into_the_same_slice_keep_the_large_frames_of_the_first_take() {
    let q = EventQueue::new(Box::new(CountingWake(Default::default())));
    let (mut first, mut second) = (Vec::new(), Vec::new());
    codec::encode_message(&mut first, kind::MESSAGE_BINARY, "a", &[1; 100]);
    codec::encode_message(&mut second, kind::MESSAGE_BINARY, "b", &[2; 100]);
    q.push_attached(1, first.clone(), None);
    let mut out = vec![0; 1024];
    assert_eq!(q.take_into(&mut out), Taken::Records { len: RECORD_HEADER, more: false });
    q.push_attached(1, second.clone(), None);
    assert_eq!(q.take_more_into(&mut out[RECORD_HEADER..]), Taken::Records { len: RECORD_HEADER, more: false });
    assert_eq!(q.take_attached(), vec![first, second], "both takes' frames, in order");
  }

  #[test]
  fn slices_hold_whole_records_in_order_and_js_is_woken_again_only_once_it_took_everything() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let q = EventQueue::new(Box::new(CountingWake(wakes.clone())));
    for i in 0..10 {
      q.push(kind::CONNECTION, i, b"abc");
    }
    let record = RECORD_HEADER + 3;
    let mut out = vec![0; 4 * record + 5];
    assert_eq!(q.take_into(&mut out), Taken::Records { len: 4 * record, more: true });
    assert_eq!(split_records(&out[..4 * record]).iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1, 2, 3]);
    q.push(kind::CONNECTION, 10, b"abc");
    assert_eq!(wakes.load(Ordering::SeqCst), 1, "JS still has records to take: no second wake-up");
    assert_eq!(q.take_into(&mut out), Taken::Records { len: 4 * record, more: true });
    assert_eq!(q.take_into(&mut out), Taken::Records { len: 3 * record, more: false });
    assert_eq!(split_records(&out[..3 * record]).iter().map(|r| r.id).collect::<Vec<_>>(), [8, 9, 10]);
    q.push(kind::CONNECTION, 11, b"abc");
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
    assert_eq!(q.take_into(&mut out[..3]), Taken::NeedRoom(record));
  }

  #[test]
  fn a_request_is_held_past_its_slice_until_its_reply_is_queued() {
    let q = EventQueue::new(Box::new(CountingWake(Default::default())));
    let inbound = Arc::new(Inbound::new(1 << 20));
    q.track(1, inbound.clone());
    let mut wire = Vec::new();
    codec::encode_request(&mut wire, kind::REQUEST_JSON, 42, "q", b"[1,2,3]");
    codec::encode_message(&mut wire, kind::MESSAGE_JSON, "m", b"1");
    q.push_frames(1, &wire, None);
    let queued = inbound.held();
    let mut out = vec![0; 1024];
    q.take_into(&mut out);
    let request_record = RECORD_HEADER + 4 + 2 + 1 + 7;
    assert_eq!(inbound.held(), request_record, "the message is released, the request is not");
    assert!(queued > request_record);
    let mut reply = Vec::new();
    codec::encode_reply(&mut reply, kind::REPLY_JSON, 42, b"6");
    inbound.replied(&reply);
    assert_eq!(inbound.held(), 0);
  }

  #[test]
  fn a_drained_queue_gives_back_the_memory_a_flood_took() {
    let q = EventQueue::new(Box::new(CountingWake(Default::default())));
    let body = vec![7; 1000];
    for i in 0..2000 {
      q.push(kind::MESSAGE_BINARY, i, &body);
    }
    assert!(q.lock().buf.capacity() > KEEP_CAPACITY);
    let mut out = vec![0; 256 * 1024];
    while let Taken::Records { more: true, .. } = q.take_into(&mut out) {}
    assert!(q.lock().buf.capacity() > KEEP_CAPACITY, "kept right after the spell that filled it");
    q.push(kind::MESSAGE_BINARY, 1, &body);
    q.take_into(&mut out);
    assert_eq!(q.lock().buf.capacity(), 0, "given back after a spell that used little of it");
  }

  #[test]
  fn nothing_is_queued_after_finish() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let q = EventQueue::new(Box::new(CountingWake(wakes.clone())));
    q.push(kind::CLOSE, 0, b"");
    q.finish();
    q.push(kind::CONNECTION, 1, b"");
    assert_eq!(q.take().decode().len(), 1);
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
  }
}
