//! One established connection (after `handshake`): a reader that turns frames into events, a
//! writer that drains the outbox, and the heartbeat. Every transport, both ends, run this code.

use crate::codec::{self, kind};
use crate::error::IpcError;
use crate::events::{kind as events_kind, EventQueue};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use crate::handshake::{Conn, FIRST_READ};
use crate::inbound::Inbound;
use crate::loop_reads::LoopReads;
use crate::session::{Session, SessionId};
use crate::socket_ipc::{self, Splitter, Wire};
use crate::transport::Socket;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The most asked of the kernel per read; also the largest batch a single read produces.
const READ_CHUNK: usize = 64 * 1024;

/// How long `close()` keeps writing what was sent before it, if the peer reads slowly.
pub const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a peer dropped for silence gets to take the reason (see `Ended::farewell`).
const FAREWELL_TO_SILENT_PEER: Duration = Duration::from_millis(200);

// ===== Outbox =====

/// How much one connection may hold: bytes queued and not yet written or, in an at-least-once
/// session, sent and not yet acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
  /// At or past this, `send()` returns false in JS; a `DRAIN` event follows once it is down to half.
  pub high_water_mark: usize,
  /// Never more than this (`maxBufferedBytes`).
  pub max_buffered: usize,
  /// Past `max_buffered`: drop the connection (a server's slow client) rather than refuse the
  /// new frames (a client's own sends).
  pub evict: bool,
  /// What the connection's input may hold until JS is done with it (`maxInboundBytes`, see
  /// `inbound`).
  pub max_inbound: usize,
}

impl Default for Limits {
  fn default() -> Self {
    Limits {
      high_water_mark: 1024 * 1024,
      max_buffered: 64 * 1024 * 1024,
      evict: false,
      max_inbound: crate::inbound::DEFAULT_MAX_INBOUND,
    }
  }
}

/// Frames waiting to be written. JS hands over whole batches, so one append usually carries
/// many frames and the writer sends them with one `write`.
///
/// A small append that finds the connection idle (nothing queued, the writer not writing) is
/// written straight from the calling thread: that saves waking the writer task for a lone
/// message. Larger batches still go to the writer task, so bulk sends do not put the kernel
/// copy on the JS thread.
///
/// A large message arrives as its own `Bytes` (shared, not copied, when broadcast) and is queued
/// as a piece of its own rather than copied into the coalescing buffer.
///
/// In an at-least-once session the outbox also keeps every data frame until the other side
/// acknowledges it (`session`), and refills the queue from those after a reconnect.
#[derive(Default)]
pub struct Outbox {
  state: Mutex<OutboxState>,
  ready: Notify,
  limits: Limits,
  /// Cancelled when a server drops this client for passing `max_buffered`.
  pub evicted: CancellationToken,
  /// Woken when acknowledgements arrive or are sent (a closing connection waits on both).
  progress: Notify,
  /// On the socket-ipc wire, JS's frames are unwrapped to that wire's bytes as they are queued.
  wire: Wire,
}

#[derive(Default)]
struct OutboxState {
  /// Earlier bytes, in order, before `buf`: large messages and the small frames sealed before them.
  pieces: VecDeque<Bytes>,
  /// Small frames being coalesced; the newest bytes.
  buf: Vec<u8>,
  /// Set once nothing will ever write it out again; appends are then refused, not lost.
  closed: bool,
  /// The current connection's socket, for direct writes; `None` while disconnected.
  direct: Option<Arc<Socket>>,
  /// The writer task holds bytes it took and is writing them.
  writing: bool,
  /// Leading bytes (of the first piece, or of `buf`) that finish a frame a direct write sent only
  /// part of. They belong to the current connection: if it ends before they are written, they
  /// are dropped, never sent as the start of the next connection's stream.
  tail_of_partial: usize,
  /// Bytes queued or taken by the writer and not yet written.
  unwritten: usize,
  /// Past the high-water mark, waiting to empty; `episode` numbers these spells so a `DRAIN`
  /// is matched to the spell it ends.
  over: bool,
  episode: u32,
  /// At-least-once: what was sent and is kept, and what was received.
  session: Option<Session>,
}

/// Appends up to this size may be written directly by the caller.
const DIRECT_WRITE_MAX: usize = 8 * 1024;

/// Buffers of written large frames, kept for the next ones: copying a megabyte into memory the
/// allocator just handed back to the OS costs a page fault per 4 KiB; into warm memory it is a
/// plain memcpy (bench `large`: the sender's main thread was bound by those faults).
static PIECE_POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const PIECE_POOL_MAX: usize = 8;
/// Frames smaller than this are not worth pooling.
const PIECE_POOL_MIN: usize = 64 * 1024;

/// One frame from its two parts, in a buffer of (about) its size.
pub fn piece(head: &[u8], payload: &[u8]) -> Bytes {
  let need = head.len() + payload.len();
  let reused = {
    let mut pool = PIECE_POOL.lock().unwrap_or_else(|p| p.into_inner());
    let fit = pool
      .iter()
      .position(|v| v.capacity() >= need && v.capacity() <= need.saturating_mul(2));
    fit.map(|i| pool.swap_remove(i))
  };
  let mut frame = reused.unwrap_or_else(|| Vec::with_capacity(need));
  frame.clear();
  frame.extend_from_slice(head);
  frame.extend_from_slice(payload);
  Bytes::from(frame)
}

/// Returns a fully written piece's buffer to the pool, unless someone else still holds it
/// (a broadcast shares one piece among clients, a session keeps it) or it is small or the pool
/// is full.
fn recycle(piece: Bytes) {
  let Ok(unique) = piece.try_into_mut() else { return };
  let buffer = Vec::from(unique);
  if buffer.capacity() < PIECE_POOL_MIN {
    return;
  }
  let mut pool = PIECE_POOL.lock().unwrap_or_else(|p| p.into_inner());
  if pool.len() < PIECE_POOL_MAX {
    pool.push(buffer);
  }
}

/// What the writer takes in one go.
struct Taken {
  pieces: VecDeque<Bytes>,
  buf: Vec<u8>,
  /// Leading bytes that end a frame a direct write began (see `tail_of_partial`).
  lead: usize,
}

/// A coalescing buffer larger than this is not kept for reuse once the traffic that filled it has
/// passed (see `Outbox::take`), so the memory a burst took goes back.
const KEEP_BUF: usize = 1024 * 1024;

/// What became of an append.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
  /// Messages refused because the outbox is closed (the client or peer has finished).
  pub refused: usize,
  /// Messages refused because they would pass `max_buffered` (client and peer).
  pub full: usize,
  /// The buffer just reached the high-water mark: the spell that a `DRAIN` with this number ends.
  pub over: Option<u32>,
}

impl OutboxState {
  fn is_empty(&self) -> bool {
    self.pieces.is_empty() && self.buf.is_empty()
  }

  fn queued_bytes(&self) -> usize {
    self.pieces.iter().map(Bytes::len).sum::<usize>() + self.buf.len()
  }

  fn queued_messages(&self, wire: Wire) -> usize {
    self.pieces.iter().map(|p| wire.count(p)).sum::<usize>() + wire.count(&self.buf)
  }

  /// What counts against the limits.
  fn buffered(&self) -> usize {
    match &self.session {
      Some(session) => session.sent.bytes(),
      None => self.unwritten,
    }
  }

  /// A session between connections: frames are kept, and queued only when it resumes.
  fn holding(&self) -> bool {
    self.session.is_some() && self.direct.is_none()
  }

  fn check_high_water(&mut self, limits: &Limits) -> Option<u32> {
    if self.over || self.buffered() < limits.high_water_mark {
      return None;
    }
    self.over = true;
    self.episode = self.episode.wrapping_add(1);
    Some(self.episode)
  }

  /// The spell past the high-water mark ends once the buffer is down to half the mark: the
  /// sender refills it while the rest is written, so the socket never idles between spells
  /// (waiting for empty cost a fifth of one-way throughput).
  fn check_drained(&mut self, limits: &Limits) -> Option<u32> {
    (self.over && self.buffered() <= limits.high_water_mark / 2).then(|| {
      self.over = false;
      self.episode
    })
  }
}

impl Outbox {
  pub fn new(limits: Limits, session: Option<SessionId>, wire: Wire) -> Self {
    debug_assert!(session.is_none() || wire == Wire::Native, "sessions are a native-wire feature");
    Outbox {
      limits,
      wire,
      state: Mutex::new(OutboxState {
        session: session.map(Session::new),
        ..Default::default()
      }),
      ..Default::default()
    }
  }

  fn lock(&self) -> MutexGuard<'_, OutboxState> {
    self.state.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// Refuses an append that is too late (closed) or too much (`max_buffered`); a server's slow
  /// client is dropped instead, which its connection reports.
  fn refusal(&self, state: &mut OutboxState, frames: &[u8]) -> Option<Appended> {
    if state.closed {
      return Some(Appended { refused: self.wire.count(frames), ..Default::default() });
    }
    if state.buffered() + frames.len() <= self.limits.max_buffered {
      return None;
    }
    if !self.limits.evict {
      return Some(Appended { full: self.wire.count(frames), ..Default::default() });
    }
    state.closed = true;
    // Only the end of a frame a direct write began is kept: the reason for the drop follows it.
    let tail = state.tail_of_partial;
    let kept = match state.pieces.front() {
      Some(first) => first[..tail.min(first.len())].to_vec(),
      None => state.buf[..tail.min(state.buf.len())].to_vec(),
    };
    state.pieces.clear();
    state.unwritten = kept.len();
    state.buf = kept;
    if let Some(session) = &mut state.session {
      session.sent = Default::default();
    }
    self.evicted.cancel();
    Some(Appended::default())
  }

  /// Queues frames (JS batches hold data frames only).
  pub fn append(&self, frames: &[u8]) -> Appended {
    if self.wire == Wire::SocketIpc {
      let mut wire = Vec::with_capacity(frames.len());
      socket_ipc::unwrap(frames, &mut wire);
      return self.append_wire(&wire);
    }
    self.append_wire(frames)
  }

  /// Queues bytes as they go on the wire.
  fn append_wire(&self, frames: &[u8]) -> Appended {
    let mut state = self.lock();
    if let Some(refused) = self.refusal(&mut state, frames) {
      return refused;
    }
    let holding = state.holding();
    if let Some(session) = &mut state.session {
      session.sent.push(Bytes::copy_from_slice(frames));
    }
    let mut rest = frames;
    if !holding && state.is_empty() && !state.writing && frames.len() <= DIRECT_WRITE_MAX {
      if let Some(stream) = &state.direct {
        // Any error (WouldBlock, a dead peer) leaves the frames to the writer, which handles it.
        let written = stream.try_write(frames).unwrap_or(0);
        rest = &frames[written..];
        if written > 0 && !rest.is_empty() {
          state.tail_of_partial = rest.len().min(self.wire.remainder(frames, written));
        }
      }
    }
    let queue = !holding && !rest.is_empty();
    if queue {
      state.buf.extend_from_slice(rest);
      state.unwritten += rest.len();
    }
    let over = state.check_high_water(&self.limits);
    drop(state);
    if queue {
      self.ready.notify_one();
    }
    Appended { over, ..Default::default() }
  }

  /// Queues one large frame as a piece of its own.
  pub fn append_piece(&self, frame: Bytes) -> Appended {
    let frame = match self.wire {
      Wire::Native => frame,
      Wire::SocketIpc => {
        let mut wire = Vec::with_capacity(frame.len());
        socket_ipc::unwrap(&frame, &mut wire);
        Bytes::from(wire)
      }
    };
    let mut state = self.lock();
    if let Some(refused) = self.refusal(&mut state, &frame) {
      return refused;
    }
    let holding = state.holding();
    if let Some(session) = &mut state.session {
      session.sent.push(frame.clone());
    }
    if !holding {
      if !state.buf.is_empty() {
        let sealed = Bytes::from(std::mem::take(&mut state.buf));
        state.pieces.push_back(sealed);
      }
      state.unwritten += frame.len();
      state.pieces.push_back(frame);
    }
    let over = state.check_high_water(&self.limits);
    drop(state);
    if !holding {
      self.ready.notify_one();
    }
    Appended { over, ..Default::default() }
  }

  /// Appends control frames under one lock; for callers that gather frames from several places.
  pub fn append_with(&self, write: impl FnOnce(&mut Vec<u8>)) {
    let mut state = self.lock();
    // Between a session's connections control frames are stale: the resume says it all.
    if state.closed || state.holding() {
      return;
    }
    let before = state.buf.len();
    write(&mut state.buf);
    state.unwritten += state.buf.len() - before;
    drop(state);
    self.ready.notify_one();
  }

  /// The writer takes everything queued, leaving `spare` (emptied) as the new coalescing buffer
  /// so its allocation is reused; direct writes pause until `written()`.
  fn take(&self, mut spare: Vec<u8>) -> Taken {
    spare.clear();
    let mut state = self.lock();
    // A large spare is kept while the traffic is as large (reallocating it for every batch
    // would cost a stream a tenth of its throughput), and given back once it is not.
    if spare.capacity() > KEEP_BUF && spare.capacity() > 4 * state.buf.len() {
      spare = Vec::new();
    }
    state.writing = true;
    Taken {
      lead: std::mem::take(&mut state.tail_of_partial),
      pieces: std::mem::take(&mut state.pieces),
      buf: std::mem::replace(&mut state.buf, spare),
    }
  }

  /// The connection is being dropped: no more direct writes; returns the bytes that end a frame
  /// a direct write left unfinished (the peer must read it whole to find what follows).
  fn seal(&self) -> Vec<u8> {
    let mut state = self.lock();
    state.writing = true;
    let tail = std::mem::take(&mut state.tail_of_partial);
    match state.pieces.front() {
      Some(first) => first[..tail.min(first.len())].to_vec(),
      None => state.buf[..tail.min(state.buf.len())].to_vec(),
    }
  }

  /// The writer wrote `n` bytes; returns the spell a `DRAIN` now ends, if the buffer is down to half the mark.
  fn wrote(&self, n: usize) -> Option<u32> {
    let mut state = self.lock();
    state.unwritten = state.unwritten.saturating_sub(n);
    state.check_drained(&self.limits)
  }

  /// The writer finished what it took.
  fn written(&self) {
    self.lock().writing = false;
  }

  /// A connection starts: direct writes go to it. In a session, the queue is rebuilt from what
  /// was kept: everything after the `peer_received` frames the other side already has.
  fn attach(&self, stream: Arc<Socket>, peer_received: Option<u64>) {
    let mut state = self.lock();
    if let (Some(received), Some(session)) = (peer_received, &state.session) {
      let mut resend = session.sent.after(received);
      // What the listeners handled while there was no connection was never acknowledged.
      if session.acked_out > 0 {
        codec::encode_frame(&mut resend, kind::ACK, &session.acked_out.to_be_bytes());
      }
      state.pieces.clear();
      state.tail_of_partial = 0;
      state.unwritten = resend.len();
      state.buf = resend;
    }
    state.direct = Some(stream);
    state.writing = false;
    drop(state);
    self.ready.notify_one();
  }

  /// The connection ended: no more direct writes, and the unsent end of a partly sent frame is
  /// dropped with it, as are the bytes the writer held. Returns the spell a `DRAIN` ends if
  /// that took the buffer down to half the mark.
  fn detach(&self) -> Option<u32> {
    let mut state = self.lock();
    state.direct = None;
    state.writing = false;
    let tail = std::mem::take(&mut state.tail_of_partial);
    match state.pieces.front_mut() {
      Some(first) => first.advance(tail),
      None => drop(state.buf.drain(..tail)),
    }
    state.unwritten = state.queued_bytes();
    state.check_drained(&self.limits)
  }

  /// Closes the outbox for good and returns how many messages it dropped: queued, or in a
  /// session, sent and never acknowledged.
  pub fn close(&self) -> usize {
    let mut state = self.lock();
    state.closed = true;
    let dropped = match state.session.as_mut() {
      Some(session) => {
        let kept = session.sent.after(session.sent.sent() - session.sent.unacknowledged());
        session.sent = Default::default();
        count_messages(&kept)
      }
      None => state.queued_messages(self.wire),
    };
    state.pieces.clear();
    state.buf = Vec::new();
    state.unwritten = 0;
    dropped
  }

  // ----- at-least-once sessions -----

  /// Ends the current connection, if any, as if the peer had gone: its client came back on
  /// another, which takes the session over.
  pub fn sever(&self) {
    if let Some(stream) = &self.lock().direct {
      let _ = stream.shutdown_both();
    }
  }

  pub fn has_session(&self) -> bool {
    self.lock().session.is_some()
  }

  /// What a client's hello says: its session and how many frames it has received.
  pub fn session_hello(&self) -> Option<(SessionId, u64)> {
    self.lock().session.as_ref().map(|s| (s.id, s.received))
  }

  /// Frames received in this session so far.
  pub fn session_received(&self) -> u64 {
    self.lock().session.as_ref().map_or(0, |s| s.received)
  }

  /// The other side does not know our session: start it afresh (see `Session::start_afresh`).
  pub fn start_afresh(&self) {
    if let Some(session) = self.lock().session.as_mut() {
      session.start_afresh();
    }
  }

  /// `n` more data frames arrived; returns the session's epoch and its received count, which
  /// JS acknowledges once it has handed them to the listeners.
  fn received(&self, n: usize) -> Option<(u32, u64)> {
    let mut state = self.lock();
    let session = state.session.as_mut()?;
    session.received += n as u64;
    Some((session.epoch, session.received))
  }

  /// An `ACK` arrived: forget what it covers. Returns the spell a `DRAIN` ends, if any.
  fn acknowledged(&self, delivered: u64) -> Result<Option<u32>, IpcError> {
    let mut state = self.lock();
    let Some(session) = state.session.as_mut() else {
      return Err(IpcError::Protocol("peer sent an ACK, which only at-least-once sessions use".into()));
    };
    if !session.sent.acknowledge(delivered) {
      return Err(IpcError::Protocol(format!(
        "peer acknowledged {delivered} messages, more than were sent ({})",
        session.sent.sent()
      )));
    }
    let drained = state.check_drained(&self.limits);
    drop(state);
    self.progress.notify_waiters();
    Ok(drained)
  }

  /// JS handed the session's frames up to `delivered` to the listeners: tell the other side.
  /// Marks of an earlier epoch (before the session started afresh) are ignored.
  pub fn deliver(&self, epoch: u32, delivered: u64) {
    let mut state = self.lock();
    let Some(session) = state.session.as_mut() else { return };
    if session.epoch != epoch || delivered <= session.acked_out {
      return;
    }
    session.acked_out = delivered;
    if !state.closed && !state.holding() {
      codec::encode_frame(&mut state.buf, kind::ACK, &delivered.to_be_bytes());
      state.unwritten += codec::LEN_PREFIX + 1 + 8;
      drop(state);
      self.ready.notify_one();
    } else {
      drop(state);
    }
    self.progress.notify_waiters();
  }

  /// Waits until `done` holds for the session (checked again after every acknowledgement).
  async fn wait_for(&self, done: impl Fn(&Session) -> bool) {
    loop {
      let notified = self.progress.notified();
      tokio::pin!(notified);
      notified.as_mut().enable();
      if self.lock().session.as_ref().is_none_or(&done) {
        return;
      }
      notified.await;
    }
  }
}

/// After `written` bytes of `frames` went out, how many more complete the frame they stopped in.
pub fn frame_remainder(frames: &[u8], written: usize) -> usize {
  let mut pos = 0;
  while pos + codec::LEN_PREFIX <= frames.len() {
    let end = pos + codec::LEN_PREFIX + u32::from_be_bytes(frames[pos..pos + 4].try_into().unwrap()) as usize;
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
  while frames.len() > codec::LEN_PREFIX {
    let len = u32::from_be_bytes(frames[..4].try_into().unwrap()) as usize;
    if matches!(frames[4], kind::MESSAGE_JSON | kind::MESSAGE_BINARY) {
      n += 1;
    }
    frames = frames.get(codec::LEN_PREFIX + len..).unwrap_or_default();
  }
  n
}

// ===== Established connection =====

/// How an established connection ended.
#[derive(Debug)]
pub enum Ended {
  /// EOF or a socket error: the peer went away.
  PeerClosed,
  /// `close()` on our side; queued frames were flushed (within `CLOSE_FLUSH_TIMEOUT`).
  Shutdown,
  /// The peer broke the protocol; frames before the bad one were delivered.
  Failed(IpcError),
  /// The connection ended, or stalled past `frameTimeout`, in the middle of a frame: the
  /// transport failed, not the peer's encoding (a session may resume and re-send the frame).
  Cut(IpcError),
  /// The peer fell silent for `heartbeatTimeout`: stopped, hung, or gone without a FIN.
  Unresponsive(IpcError),
  /// At-least-once: the peer closed on purpose (`GOODBYE`), so its session ends.
  Goodbye,
  /// A server dropped this client for passing `maxBufferedBytes`.
  TooSlow(IpcError),
  /// The other side dropped the connection and said why (`CLOSE_REASON`).
  Dropped(IpcError),
}

impl Ended {
  /// Why the connection was dropped, for the close event; `None` for an ordinary close.
  pub fn reason(&self) -> Option<&IpcError> {
    match self {
      Ended::Failed(e) | Ended::Cut(e) | Ended::Unresponsive(e) | Ended::TooSlow(e) | Ended::Dropped(e) => Some(e),
      Ended::PeerClosed | Ended::Shutdown | Ended::Goodbye => None,
    }
  }

  /// An at-least-once session may be resumed after this (the peer may come back).
  pub fn resumable(&self) -> bool {
    matches!(self, Ended::PeerClosed | Ended::Cut(_) | Ended::Unresponsive(_))
  }

  /// The peer is told why we drop the connection (a `CLOSE_REASON` frame), and how long we try
  /// to get that to it: a silent peer is probably not reading, a slow one may still be.
  fn farewell(&self) -> Option<(&IpcError, Duration)> {
    match self {
      Ended::Failed(e) | Ended::Cut(e) | Ended::TooSlow(e) => Some((e, CLOSE_FLUSH_TIMEOUT)),
      Ended::Unresponsive(e) => Some((e, FAREWELL_TO_SILENT_PEER)),
      Ended::PeerClosed | Ended::Shutdown | Ended::Goodbye | Ended::Dropped(_) => None,
    }
  }
}

/// Reports the end of an established connection: bad input as a `MESSAGE_ERROR` first (as for any
/// bad frame), then the close event, carrying the reason when there was one.
pub fn report_end(events: &EventQueue, close_kind: u8, id: u32, end: &Ended) {
  if let Ended::Failed(e) | Ended::Cut(e) = end {
    events.push_error(events_kind::MESSAGE_ERROR, id, e);
  }
  match end.reason() {
    Some(reason) => events.push_error(close_kind, id, reason),
    None => events.push(close_kind, id, b""),
  }
}

/// Keep-alive settings: ping after `interval` of silence, give up after `timeout` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
  pub interval: Duration,
  pub timeout: Duration,
}

pub struct Link<'a> {
  /// Tags every event of this connection (the client id on a server, 0 on a client).
  pub id: u32,
  pub events: &'a Arc<EventQueue>,
  pub outbox: &'a Outbox,
  /// The account of what this connection's input holds; the reader stops at its cap.
  pub inbound: &'a Arc<Inbound>,
  pub max_message_size: usize,
  pub shutdown: &'a CancellationToken,
  /// `None`: no pings of our own (PINGs from the peer are still answered).
  pub heartbeat: Option<Heartbeat>,
  /// A frame must arrive whole within this of its first byte (`None`: no limit).
  pub frame_timeout: Option<Duration>,
  /// In an at-least-once session: how many of our frames the other side already has (from its
  /// hello); we re-send what follows.
  pub peer_received: Option<u64>,
  pub wire: Wire,
  /// Tell the peer why we drop the connection (`CLOSE_REASON`): a server tells its clients. A
  /// client that gives up on its server does not: the server learns nothing from it that it can
  /// act on, and an at-least-once server must keep the session for the client's return.
  pub says_why: bool,
}

/// Runs the connection until the peer leaves, breaks the protocol, falls silent, or we shut down.
pub async fn run(conn: Conn, link: Link<'_>) -> Ended {
  // Shared by the reader, the writer and the outbox's direct writes; all use readiness-based
  // `try_read`/`try_write`, which take `&self`.
  let tls_failure = conn.tls_failure;
  let session = link.peer_received.is_some();
  let life = Arc::new(Liveness::new());
  let mut buf = Some(conn.buf);
  let Ok(stream) = loop_capable(conn.stream, &link, tls_failure.is_none()) else {
    return Ended::PeerClosed;
  };
  let stream = Arc::new(stream);
  let reads = loop_reads_for(&stream, &link, &mut buf, &life);
  link.outbox.attach(stream.clone(), link.peer_received);
  // Ends the other half early when one half finds the connection dead.
  let dead = CancellationToken::new();
  // The peer said goodbye: flush (our last ACK) and half-close.
  let finish = CancellationToken::new();
  let farewell: Farewell = Mutex::new(None);
  // Set before `dead` is cancelled, so the writer finds it (see `say_farewell`).
  let tell = |end: &Ended| {
    if let (true, Wire::Native, Some((e, patience))) = (link.says_why, link.wire, end.farewell()) {
      let mut frame = Vec::new();
      codec::encode_close_reason(&mut frame, e.code().unwrap_or("ERR_IPC_PROTOCOL"), &e.to_string());
      *farewell.lock().unwrap_or_else(|p| p.into_inner()) = Some((frame, patience));
    }
  };
  let reading = async {
    let end = match &reads {
      Some(reads) => read_with_loop(reads, &stream, &link, &dead, &life).await,
      None => match read_loop(&stream, buf.take().unwrap_or_default(), &link, &dead, &life, session, None, None, None).await {
        ReadEnd::Ended(end) | ReadEnd::Quiet(_, _, end) => end,
      },
    };
    if matches!(end, Ended::Goodbye) {
      // Our last ACK tells the leaving side that its listeners here saw everything it sent.
      let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, link.outbox.wait_for(|s| s.acked_out >= s.received)).await;
      finish.cancel();
    } else if session || !matches!(end, Ended::Shutdown) {
      // (A closing session's reader ends when the peer has gone: the writer stops waiting.)
      tell(&end);
      dead.cancel();
    }
    end
  };
  let writing = async {
    if write_loop(&stream, &link, &dead, &finish, session, &farewell).await.is_err() {
      dead.cancel();
    }
    // A closing session reads acknowledgements until the writer is done.
    if link.shutdown.is_cancelled() || finish.is_cancelled() {
      dead.cancel();
    }
  };
  let beating = async {
    let verdict = match link.heartbeat {
      Some(heartbeat) => watch_for_silence(heartbeat, &life, &link, &dead, &stream).await,
      None => None,
    };
    if let Some(verdict) = &verdict {
      tell(verdict);
      dead.cancel();
    }
    verdict
  };
  let (end, (), silent) = tokio::join!(reading, writing, beating);
  if let (Some(reads), Some(host)) = (&reads, link.events.loop_host()) {
    if reads.finish() {
      host.retire(reads.clone());
    }
  }
  link.inbound.forget_requests();
  if let Some(episode) = link.outbox.detach() {
    link.events.push(events_kind::DRAIN, link.id, &episode.to_be_bytes());
  }
  match (silent, end) {
    (Some(silent), _) => silent,
    // Under TLS a bad record ends the session; the bridge shows only EOF, the pump knows why.
    (None, Ended::PeerClosed) => match tls_failure.and_then(|f| f.take()) {
      Some(e) => Ended::Failed(e),
      None => Ended::PeerClosed,
    },
    (None, end) => end,
  }
}

/// When the reader last heard from the peer, in ms since the connection started.
pub struct Liveness {
  start: Instant,
  heard_at: AtomicU64,
  /// The reader is not reading because JS has not caught up: our slowness, not the peer's.
  paused: AtomicBool,
}

impl Liveness {
  fn new() -> Self {
    Liveness {
      start: Instant::now(),
      heard_at: AtomicU64::new(0),
      paused: AtomicBool::new(false),
    }
  }

  fn now(&self) -> u64 {
    self.start.elapsed().as_millis() as u64
  }

  pub(crate) fn heard(&self) {
    self.heard_at.store(self.now(), Ordering::SeqCst);
  }
}

/// Pings after each `interval` of silence and returns `Unresponsive` after `timeout` of it. Any
/// bytes count as life, so a busy connection never pings; the cost is one timer per interval.
async fn watch_for_silence(
  heartbeat: Heartbeat,
  life: &Liveness,
  link: &Link<'_>,
  dead: &CancellationToken,
  stream: &Socket,
) -> Option<Ended> {
  let interval = heartbeat.interval.as_millis().max(1) as u64;
  let timeout = heartbeat.timeout.as_millis().max(1) as u64;
  let mut pinged_at = 0;
  loop {
    let now = life.now();
    if life.paused.load(Ordering::Relaxed) {
      life.heard_at.store(now, Ordering::Relaxed);
    }
    // Bytes already waiting mean the peer spoke: if this process was paused (SIGSTOP, a
    // suspended laptop) the timer fires before the reader has had its turn. The reader may be
    // on the JS thread, draining the socket right now: it marks the peer heard before it reads,
    // so once the socket looks empty, a second look at `heard_at` sees that mark.
    if now - life.heard_at.load(Ordering::SeqCst) >= timeout && stream.has_input() {
      life.heard_at.store(now, Ordering::SeqCst);
    }
    let heard_at = life.heard_at.load(Ordering::SeqCst);
    if now - heard_at >= timeout {
      return Some(Ended::Unresponsive(IpcError::HeartbeatTimeout(
        heartbeat.timeout.as_millis(),
      )));
    }
    let quiet_since = heard_at.max(pinged_at);
    if now - quiet_since >= interval {
      link.outbox.append_with(|out| codec::encode_control(out, kind::PING));
      pinged_at = now;
    }
    let next = (heard_at.max(pinged_at) + interval).min(heard_at + timeout);
    tokio::select! {
      _ = dead.cancelled() => return None,
      _ = link.shutdown.cancelled() => return None,
      _ = tokio::time::sleep(Duration::from_millis(next.saturating_sub(now).max(1))) => {}
    }
  }
}

/// What the reader found in the frames it parsed, besides data for JS.
#[derive(Default)]
pub(crate) struct Parsed {
  /// Bytes of complete, valid frames at the front of the buffer.
  pub(crate) complete: usize,
  pub(crate) data: usize,
  pub(crate) pings: usize,
  /// The highest `ACK` among them.
  pub(crate) ack: Option<u64>,
  pub(crate) goodbye: bool,
  /// The peer's `CLOSE_REASON`: it is dropping the connection.
  pub(crate) dropped: Option<IpcError>,
  pub(crate) failure: Option<codec::FrameError>,
}

pub(crate) fn parse(buf: &[u8], max_message_size: usize, session: bool) -> Parsed {
  let mut found = Parsed::default();
  loop {
    match codec::next_frame(&buf[found.complete..], max_message_size) {
      Ok(Some(frame)) => {
        if let Err(e) = codec::validate(&frame) {
          found.failure = Some(e);
          break;
        }
        if !session && codec::session_only(frame.kind) {
          found.failure = Some(codec::FrameError::NotInSession(frame.kind));
          break;
        }
        found.complete += frame.wire_len();
        match frame.kind {
          kind::PING => found.pings += 1,
          kind::ACK => found.ack = Some(u64::from_be_bytes(frame.body.try_into().expect("validated"))),
          kind::GOODBYE => {
            // The last frame of the session; anything after it is not looked at.
            found.goodbye = true;
            break;
          }
          kind::CLOSE_REASON => {
            found.dropped = Some(IpcError::from_close_reason(frame.body));
            break;
          }
          k => found.data += usize::from(codec::carries_data(k)),
        }
      }
      Ok(None) => break,
      Err(e) => {
        found.failure = Some(e);
        break;
      }
    }
  }
  found
}

/// Hands complete frames to JS. In a session they are counted, and the count rides along so JS
/// acknowledges them once its listeners ran; while we close, what arrives is not delivered (the
/// other side keeps it, unacknowledged, for whoever it talks to next).
fn deliver(link: &Link<'_>, frames: &[u8], data: usize) {
  if closing_session(link) {
    return;
  }
  let mark = if data > 0 { link.outbox.received(data) } else { None };
  link.events.push_frames(link.id, frames, mark);
}

/// Applies an `ACK`; a `DRAIN` event follows if it took a buffer that had passed the mark down to half.
fn apply_ack(link: &Link<'_>, delivered: u64) -> Result<(), Ended> {
  match link.outbox.acknowledged(delivered) {
    Ok(Some(episode)) => {
      link.events.push(events_kind::DRAIN, link.id, &episode.to_be_bytes());
      Ok(())
    }
    Ok(None) => Ok(()),
    Err(e) => Err(Ended::Failed(e)),
  }
}

/// The socket as the event loop can read it, when this connection may be read there: a plain
/// (not TLS) Unix-domain or TCP socket, outside an at-least-once session, whose owner runs on a
/// JS thread that offers its loop. Other sockets as they are.
fn loop_capable(stream: Socket, link: &Link<'_>, plain: bool) -> io::Result<Socket> {
  #[cfg(unix)]
  if plain && link.peer_received.is_none() && link.events.loop_host().is_some() {
    return stream.into_polled();
  }
  let _ = (link, plain);
  Ok(stream)
}

/// Hands a polled socket's reads to the JS thread's loop (see `loop_reads`).
fn loop_reads_for(stream: &Arc<Socket>, link: &Link<'_>, buf: &mut Option<BytesMut>, life: &Arc<Liveness>) -> Option<Arc<LoopReads>> {
  #[cfg(unix)]
  if let (Some(polled), Some(host)) = (stream.as_polled(), link.events.loop_host()) {
    polled.set_loop_reads(true);
    let reads = LoopReads::new(
      link.id,
      stream.clone(),
      buf.take().unwrap_or_default(),
      link.wire,
      link.events.clone(),
      link.inbound.clone(),
      link.max_message_size,
      link.frame_timeout,
      life.clone(),
    );
    host.adopt(reads.clone());
    return Some(reads);
  }
  let _ = (stream, link, buf, life);
  None
}

/// Reading while the event loop does it: answers the PINGs it read, reads from where it
/// stopped if it hands over, and gives reading back once the connection is quiet and the loop
/// turns again (see `loop_reads`).
async fn read_with_loop(reads: &Arc<LoopReads>, stream: &Socket, link: &Link<'_>, dead: &CancellationToken, life: &Liveness) -> Ended {
  let ended = |peer_gone: Ended| if link.shutdown.is_cancelled() { Ended::Shutdown } else { peer_gone };
  let answer = |pings: usize| link.outbox.append_with(|out| (0..pings).for_each(|_| codec::encode_control(out, kind::PONG)));
  loop {
    let handed = tokio::select! {
      biased;
      _ = link.shutdown.cancelled() => return Ended::Shutdown,
      _ = dead.cancelled() => return ended(Ended::PeerClosed),
      _ = link.outbox.evicted.cancelled() => return too_slow(link),
      end = reads.wait_for_handover(&answer) => end,
    };
    match handed {
      Some(end @ (Ended::PeerClosed | Ended::Dropped(_))) => return ended(end),
      Some(end) => return end,
      None => {}
    }
    let (buf, splitter, since) = reads.take_state();
    set_loop_reads(stream, false);
    let frame_started = since.map(tokio::time::Instant::from_std);
    match read_loop(stream, buf, link, dead, life, false, splitter, frame_started, Some(reads)).await {
      ReadEnd::Ended(end) => return end,
      ReadEnd::Quiet(buf, splitter, _) => {
        set_loop_reads(stream, true);
        reads.give_back(buf, splitter);
        if let Some(host) = link.events.loop_host() {
          host.adopt(reads.clone());
        }
      }
    }
  }
}

fn set_loop_reads(stream: &Socket, on: bool) {
  #[cfg(unix)]
  if let Some(polled) = stream.as_polled() {
    polled.set_loop_reads(on);
  }
  let _ = (stream, on);
}

/// How the core's reading stopped.
enum ReadEnd {
  Ended(Ended),
  /// The connection is quiet and the event loop turns again: it reads from here on (the
  /// buffer holds no partial frame). The `Ended` is never used.
  Quiet(BytesMut, Option<Splitter>, Ended),
}

/// Reads until the connection ends. `splitter` and `frame_started` carry on from the event
/// loop's reads when the core takes over from it (see `loop_reads`).
#[allow(clippy::too_many_arguments)]
async fn read_loop(
  stream: &Socket,
  buf: BytesMut,
  link: &Link<'_>,
  dead: &CancellationToken,
  life: &Liveness,
  session: bool,
  splitter: Option<Splitter>,
  // When the partial frame at the end of `buf` began to arrive.
  frame_started: Option<tokio::time::Instant>,
  // The event loop's reads, which this takes over from and may give back to.
  reads: Option<&LoopReads>,
) -> ReadEnd {
  let mut carry = Some((buf, splitter));
  let end = read_frames(stream, &mut carry, link, dead, life, session, frame_started, reads).await;
  // The buffer comes back only when reading goes back to the event loop.
  match carry {
    Some((buf, splitter)) => ReadEnd::Quiet(buf, splitter, end),
    None => ReadEnd::Ended(end),
  }
}

#[allow(clippy::too_many_arguments)]
async fn read_frames(
  stream: &Socket,
  carry: &mut Option<(BytesMut, Option<Splitter>)>,
  link: &Link<'_>,
  dead: &CancellationToken,
  life: &Liveness,
  session: bool,
  mut frame_started: Option<tokio::time::Instant>,
  reads: Option<&LoopReads>,
) -> Ended {
  let (mut buf, mut splitter) = carry.take().expect("read_loop passes the buffer");
  // Grows (up to READ_CHUNK) each time a read fills all the room it was given.
  let mut read_size = FIRST_READ;
  // A closing session keeps reading, for the acknowledgements of what it sent.
  let stop_on_shutdown = !session;
  let ended = |peer_gone: Ended| if link.shutdown.is_cancelled() { Ended::Shutdown } else { peer_gone };
  // The socket-ipc wire is split at its delimiters instead of parsed as frames.
  if link.wire == Wire::SocketIpc && splitter.is_none() {
    splitter = Some(Splitter::default());
  }
  loop {
    // Everything intact before a bad frame is still delivered.
    let found = match &mut splitter {
      None => {
        let found = parse(&buf, link.max_message_size, session);
        if found.complete > 0 {
          deliver(link, &buf[..found.complete], found.data);
          buf.advance(found.complete);
          frame_started = None;
        }
        found
      }
      Some(splitter) => {
        let split = splitter.split(&buf, link.max_message_size);
        if split.complete > 0 {
          link.events.push_texts(link.id, &buf[..split.complete]);
          buf.advance(split.complete);
          frame_started = None;
        }
        if let Some(e) = split.failure {
          return Ended::Failed(e);
        }
        Parsed::default()
      }
    };
    if let Some(delivered) = found.ack {
      if let Err(end) = apply_ack(link, delivered) {
        return end;
      }
    }
    if let Some(e) = found.failure {
      return Ended::Failed(e.into());
    }
    if found.goodbye {
      return ended(Ended::Goodbye);
    }
    if let Some(e) = found.dropped {
      return ended(Ended::Dropped(e));
    }
    if found.pings > 0 {
      link
        .outbox
        .append_with(|out| (0..found.pings).for_each(|_| codec::encode_control(out, kind::PONG)));
    }

    // A large frame gets one allocation of its exact size, only once its size passed the limit.
    let frame_size = match splitter {
      None => codec::peek_frame_size(&buf, link.max_message_size).ok().flatten(),
      Some(_) => None,
    };
    let want = match frame_size {
      Some(size) => size.max(buf.len() + read_size),
      None => buf.len() + read_size,
    };
    if buf.capacity() < want {
      buf.reserve(want - buf.len());
    }
    let room = buf.capacity() - buf.len();

    // A partial frame starts the frame clock (slowloris); time spent waiting for JS is ours, not
    // the peer's, so it does not count.
    if buf.is_empty() {
      frame_started = None;
    } else if frame_started.is_none() {
      frame_started = Some(tokio::time::Instant::now());
    }
    // Quiet, at a frame boundary, and the event loop turns again: it reads from here on.
    if let Some(reads) = reads {
      if buf.is_empty() && reads.may_take_back(link.events, link.inbound) && !stream.has_input() {
        *carry = Some((buf, splitter));
        return Ended::Shutdown;
      }
    }
    let pause_began = tokio::time::Instant::now();
    life.paused.store(true, Ordering::Relaxed);
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled(), if stop_on_shutdown => return Ended::Shutdown,
      _ = dead.cancelled() => return ended(Ended::PeerClosed),
      _ = link.outbox.evicted.cancelled() => return too_slow(link),
      _ = link.events.wait_for_room(link.inbound) => {}
    }
    life.paused.store(false, Ordering::Relaxed);
    if let Some(started) = &mut frame_started {
      *started += pause_began.elapsed();
    }
    let deadline = frame_started.zip(link.frame_timeout).map(|(t, limit)| t + limit);
    // A large frame is read into memory of exactly its size and handed to JS whole: the bytes the
    // kernel copies in are the bytes the listener's Buffer shows, with no copy into the batch.
    if let Some(size) = frame_size {
      if size >= ATTACH_FROM && buf.len() < size {
        match read_whole_frame(stream, &mut buf, size, link, dead, life, deadline, stop_on_shutdown).await {
          Ok(frame) => match codec::next_frame(&frame, link.max_message_size).map(|f| f.map(|f| codec::validate(&f))) {
            Ok(Some(Ok(()))) => {
              if !closing_session(link) {
                let data = usize::from(codec::carries_data(frame[codec::LEN_PREFIX]));
                let mark = if data > 0 { link.outbox.received(data) } else { None };
                link.events.push_attached(link.id, frame, mark);
              }
            }
            Ok(Some(Err(e))) | Err(e) => return Ended::Failed(e.into()),
            Ok(None) => unreachable!("read_whole_frame returns a complete frame"),
          },
          Err(end) => return ended(end),
        }
        continue;
      }
    }
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled(), if stop_on_shutdown => return Ended::Shutdown,
      _ = dead.cancelled() => return ended(Ended::PeerClosed),
      _ = link.outbox.evicted.cancelled() => return too_slow(link),
      _ = expires(deadline) => return Ended::Cut(frame_timed_out(link)),
      ready = stream.readable() => {
        if ready.is_err() {
          return ended(Ended::PeerClosed);
        }
        match stream.try_read_buf(&mut buf) {
          Ok(0) if buf.is_empty() => return ended(Ended::PeerClosed),
          Ok(0) => {
            return Ended::Cut(IpcError::Protocol(format!(
              "the peer closed the connection in the middle of a frame ({} bytes of it had arrived)",
              buf.len()
            )))
          }
          Ok(n) => {
            life.heard();
            if n == room {
              read_size = (read_size * 4).min(READ_CHUNK);
            }
          }
          Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
          Err(_) => return ended(Ended::PeerClosed),
        }
      }
    }
  }
}

fn closing_session(link: &Link<'_>) -> bool {
  link.peer_received.is_some() && link.shutdown.is_cancelled()
}

fn too_slow(link: &Link<'_>) -> Ended {
  Ended::TooSlow(IpcError::SlowClient(link.outbox.limits.max_buffered))
}

/// Resolves at `deadline`; never without one.
async fn expires(deadline: Option<tokio::time::Instant>) {
  match deadline {
    Some(at) => tokio::time::sleep_until(at).await,
    None => std::future::pending().await,
  }
}

fn frame_timed_out(link: &Link<'_>) -> IpcError {
  IpcError::FrameTimeout(link.frame_timeout.unwrap_or_default().as_millis())
}

/// Frames at least this large are handed to JS whole (see `EventQueue::push_attached`).
pub(crate) const ATTACH_FROM: usize = 64 * 1024;

/// Reads the rest of a `size`-byte frame whose beginning is in `buf`, and nothing past it.
#[allow(clippy::too_many_arguments)]
async fn read_whole_frame(
  stream: &Socket,
  buf: &mut BytesMut,
  size: usize,
  link: &Link<'_>,
  dead: &CancellationToken,
  life: &Liveness,
  deadline: Option<tokio::time::Instant>,
  stop_on_shutdown: bool,
) -> Result<Vec<u8>, Ended> {
  let mut frame = Vec::with_capacity(size);
  frame.extend_from_slice(buf);
  buf.clear();
  while frame.len() < size {
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled(), if stop_on_shutdown => return Err(Ended::Shutdown),
      _ = dead.cancelled() => return Err(Ended::PeerClosed),
      _ = link.outbox.evicted.cancelled() => return Err(too_slow(link)),
      _ = expires(deadline) => return Err(Ended::Cut(frame_timed_out(link))),
      ready = stream.readable() => {
        if ready.is_err() {
          return Err(Ended::PeerClosed);
        }
        let remaining = size - frame.len();
        match stream.try_read_buf(&mut (&mut frame).limit(remaining)) {
          Ok(0) => {
            return Err(Ended::Cut(IpcError::Protocol(format!(
              "the peer closed the connection in the middle of a frame ({} of its {size} bytes had arrived)",
              frame.len()
            ))))
          }
          Ok(_) => life.heard(),
          Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
          Err(_) => return Err(Ended::PeerClosed),
        }
      }
    }
  }
  Ok(frame)
}

/// Why we drop the connection, as the `CLOSE_REASON` frame for the peer, and how long to try.
type Farewell = Mutex<Option<(Vec<u8>, Duration)>>;

/// The connection is being dropped. If there is a reason to give (see `Ended::farewell`), the
/// frame being written is finished (the peer can only find the reason after it), the reason
/// follows, then a half-close; the rest of what was queued is dropped at once.
///
/// That runs on a task of its own, which holds the socket open until it is done: the connection
/// ends now (its close event, the server's bookkeeping), whether or not the peer reads.
fn say_farewell(stream: &Arc<Socket>, hand: InHand, link: &Link<'_>, farewell: &Farewell) -> io::Result<()> {
  let Some((reason, patience)) = farewell.lock().unwrap_or_else(|p| p.into_inner()).take() else {
    return Ok(());
  };
  let mut bytes = match hand.next() {
    Some(_) => hand.unfinished_frame().to_vec(),
    // The writer was idle: a direct write may have begun a frame.
    None => link.outbox.seal(),
  };
  drop(hand);
  bytes.extend_from_slice(&reason);
  let stream = stream.clone();
  tokio::spawn(async move {
    let say = async {
      let mut rest = &bytes[..];
      while !rest.is_empty() {
        rest = &rest[write_some(&stream, rest).await?..];
      }
      stream.shutdown_write()
    };
    let _ = tokio::time::timeout(patience, say).await;
  });
  Ok(())
}

/// Writes some of `bytes` once the socket is writable.
async fn write_some(stream: &Socket, bytes: &[u8]) -> io::Result<usize> {
  loop {
    stream.writable().await?;
    match stream.try_write(bytes) {
      Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
      Ok(n) => return Ok(n),
      Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
      Err(e) => return Err(e),
    }
  }
}

/// Bytes the writer has taken and not yet written: pieces first, then the coalesced buffer.
#[derive(Default)]
struct InHand {
  pieces: VecDeque<Bytes>,
  /// Bytes of the first piece already written.
  piece_written: usize,
  buf: Vec<u8>,
  buf_written: usize,
  /// Leading bytes of the first piece (or of `buf`, without pieces) that end a frame a direct
  /// write began; frames start after them.
  lead: usize,
}

impl InHand {
  fn next(&self) -> Option<&[u8]> {
    match self.pieces.front() {
      Some(piece) => Some(&piece[self.piece_written..]),
      None if self.buf_written < self.buf.len() => Some(&self.buf[self.buf_written..]),
      None => None,
    }
  }

  fn consumed(&mut self, n: usize) {
    match self.pieces.front() {
      Some(piece) if self.piece_written + n < piece.len() => self.piece_written += n,
      Some(_) => {
        recycle(self.pieces.pop_front().expect("front exists"));
        self.piece_written = 0;
        self.lead = 0;
      }
      None => self.buf_written += n,
    }
  }

  fn refill(&mut self, outbox: &Outbox) {
    let taken = outbox.take(std::mem::take(&mut self.buf));
    self.pieces = taken.pieces;
    self.piece_written = 0;
    self.buf = taken.buf;
    self.buf_written = 0;
    self.lead = taken.lead;
  }

  /// The bytes that end the frame the stream is in the middle of (none at a frame boundary).
  fn unfinished_frame(&self) -> &[u8] {
    let (bytes, written) = match self.pieces.front() {
      Some(piece) => (&piece[..], self.piece_written),
      None => (&self.buf[..], self.buf_written),
    };
    if written < self.lead {
      return &bytes[written..self.lead];
    }
    let frames = &bytes[self.lead..];
    let at = written - self.lead;
    let rest = frame_remainder(frames, at);
    // At a boundary `frame_remainder` measures the whole next frame, which is not begun.
    let at_boundary = at == 0 || frame_remainder(frames, at - 1) == 1;
    if at_boundary {
      return &[];
    }
    &bytes[written..(written + rest).min(bytes.len())]
  }
}

/// Writes `n` more bytes off the hand; a `DRAIN` event follows if that emptied the buffer.
fn account(hand: &mut InHand, n: usize, link: &Link<'_>) {
  hand.consumed(n);
  if let Some(episode) = link.outbox.wrote(n) {
    link.events.push(events_kind::DRAIN, link.id, &episode.to_be_bytes());
  }
}

async fn write_loop(
  stream: &Arc<Socket>,
  link: &Link<'_>,
  dead: &CancellationToken,
  finish: &CancellationToken,
  session: bool,
  farewell: &Farewell,
) -> io::Result<()> {
  let mut hand = InHand::default();
  loop {
    let Some(bytes) = hand.next() else {
      link.outbox.written();
      stream.writer_idle();
      tokio::select! {
        biased;
        _ = dead.cancelled() => return say_farewell(stream, hand, link, farewell),
        _ = link.shutdown.cancelled() => break,
        _ = finish.cancelled() => break,
        _ = link.outbox.ready.notified() => {}
      }
      hand.refill(link.outbox);
      continue;
    };
    tokio::select! {
      biased;
      _ = dead.cancelled() => return say_farewell(stream, hand, link, farewell),
      _ = link.shutdown.cancelled() => break,
      _ = finish.cancelled() => break,
      n = write_some(stream, bytes) => account(&mut hand, n?, link),
    }
  }
  // Closing: what was sent before close() still goes out, then a half-close tells the peer
  // that was the last of it. A peer that stops reading cannot hold the close up for long. A
  // session says GOODBYE first and waits for the acknowledgement of everything it sent.
  let goodbye = session && !finish.is_cancelled();
  let flush = async {
    for refill in [false, true, goodbye] {
      if refill {
        hand.refill(link.outbox);
      }
      while let Some(bytes) = hand.next() {
        let n = write_some(stream, bytes).await?;
        account(&mut hand, n, link);
      }
      // Before the goodbye, acknowledge what our listeners handled (the last refill sends it):
      // the peer then need not re-send it to whoever it talks to next.
      if refill && goodbye {
        link.outbox.wait_for(|s| s.acked_out >= s.received).await;
      }
    }
    if goodbye {
      let mut frame = Vec::new();
      codec::encode_control(&mut frame, kind::GOODBYE);
      let mut rest = &frame[..];
      while !rest.is_empty() {
        rest = &rest[write_some(stream, rest).await?..];
      }
      link.outbox.wait_for(|s| s.sent.is_empty()).await;
    }
    stream.shutdown_write()
  };
  tokio::select! {
    _ = dead.cancelled() => Ok(()),
    r = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush) => r.unwrap_or(Ok(())),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn close_counts_the_dropped_messages_not_control_frames() {
    let outbox = Outbox::default();
    let mut frames = Vec::new();
    codec::encode_message(&mut frames, kind::MESSAGE_JSON, "a", b"1");
    codec::encode_control(&mut frames, kind::PONG);
    codec::encode_message(&mut frames, kind::MESSAGE_BINARY, "b", b"22");
    assert_eq!(outbox.append(&frames), Appended::default());
    assert_eq!(outbox.close(), 2);
    assert_eq!(outbox.close(), 0);
  }

  #[test]
  fn the_unsent_tail_of_a_partly_written_frame_is_dropped_with_its_connection() {
    let mut next = Vec::new();
    codec::encode_message(&mut next, kind::MESSAGE_JSON, "n", b"1");
    // As after a direct write that sent all but the last 3 bytes of a frame, with a whole frame
    // queued behind it: only the whole frame may go to the next connection.
    let outbox = Outbox::default();
    {
      let mut state = outbox.lock();
      state.buf = [&b"xyz"[..], &next].concat();
      state.tail_of_partial = 3;
    }
    outbox.detach();
    assert_eq!(outbox.lock().buf, next);

    // The same when a large piece sealed the queued bytes into the first piece.
    let outbox = Outbox::default();
    {
      let mut state = outbox.lock();
      state.buf = [&b"xyz"[..], &next].concat();
      state.tail_of_partial = 3;
    }
    outbox.append_piece(Bytes::from(next.clone()));
    outbox.detach();
    let taken = outbox.take(Vec::new());
    assert_eq!(
      taken.pieces.iter().flat_map(|p| p.to_vec()).collect::<Vec<_>>(),
      [next.clone(), next].concat()
    );
  }

  #[test]
  fn large_pieces_keep_their_place_among_small_frames() {
    let outbox = Outbox::default();
    let frame = |payload: &[u8]| {
      let mut f = Vec::new();
      codec::encode_message(&mut f, kind::MESSAGE_BINARY, "t", payload);
      f
    };
    outbox.append(&frame(b"1"));
    outbox.append_piece(Bytes::from(frame(&[2; 100])));
    outbox.append(&frame(b"3"));
    let taken = outbox.take(Vec::new());
    let mut stream: Vec<u8> = taken.pieces.iter().flat_map(|p| p.to_vec()).collect();
    stream.extend_from_slice(&taken.buf);
    assert_eq!(stream, [frame(b"1"), frame(&[2; 100]), frame(b"3")].concat());
    outbox.append_piece(Bytes::from(frame(b"4")));
    assert_eq!(outbox.close(), 1);
    assert_eq!(outbox.append_piece(Bytes::from(frame(b"5"))).refused, 1, "refused once closed");
  }

  #[test]
  fn the_remainder_of_a_partly_written_frame_is_measured_from_its_header() {
    let mut frames = Vec::new();
    codec::encode_message(&mut frames, kind::MESSAGE_JSON, "a", b"12"); // 10 bytes on the wire
    codec::encode_message(&mut frames, kind::MESSAGE_JSON, "a", b"345"); // 11 bytes
    assert_eq!(frame_remainder(&frames, 3), 7);
    assert_eq!(frame_remainder(&frames, 10), 11);
    assert_eq!(frame_remainder(&frames, 12), 9);
  }

  #[test]
  fn a_closed_outbox_refuses_and_counts_what_it_is_given() {
    let outbox = Outbox::default();
    outbox.close();
    let mut frames = Vec::new();
    codec::encode_message(&mut frames, kind::MESSAGE_JSON, "a", b"1");
    codec::encode_message(&mut frames, kind::MESSAGE_JSON, "a", b"2");
    assert_eq!(outbox.append(&frames).refused, 2);
    assert_eq!(outbox.close(), 0);
  }
}
