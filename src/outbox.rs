//! Frames waiting to be written to one connection, and what it may hold (`Limits`): the
//! coalescing buffer JS batches go into, large frames as pieces of their own, direct writes from
//! the calling thread when the connection is idle, and an at-least-once session's kept frames.
//!
//! About 620 lines, 130 of them tests: the outbox's state (buffer, pieces, direct writes, the
//! session's kept frames) changes under one lock, so its operations stay in one place.

use crate::codec::{self, kind};
use crate::error::IpcError;
use crate::session::{Session, SessionId};
use crate::wire::Wire;
use crate::transport::Socket;
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
  pub(crate) ready: Notify,
  pub(crate) limits: Limits,
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
pub(crate) fn recycle(piece: Bytes) {
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
pub(crate) struct Taken {
  pub(crate) pieces: VecDeque<Bytes>,
  pub(crate) buf: Vec<u8>,
  /// Leading bytes that end a frame a direct write began (see `tail_of_partial`).
  pub(crate) lead: usize,
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
    self.append_wire(&self.wire.outgoing(frames))
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
    let frame = match self.wire.outgoing(&frame) {
      std::borrow::Cow::Borrowed(_) => frame,
      std::borrow::Cow::Owned(wire) => Bytes::from(wire),
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
  pub(crate) fn take(&self, mut spare: Vec<u8>) -> Taken {
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
  pub(crate) fn seal(&self) -> Vec<u8> {
    let mut state = self.lock();
    state.writing = true;
    let tail = std::mem::take(&mut state.tail_of_partial);
    match state.pieces.front() {
      Some(first) => first[..tail.min(first.len())].to_vec(),
      None => state.buf[..tail.min(state.buf.len())].to_vec(),
    }
  }

  /// The writer wrote `n` bytes; returns the spell a `DRAIN` now ends, if the buffer is down to half the mark.
  pub(crate) fn wrote(&self, n: usize) -> Option<u32> {
    let mut state = self.lock();
    state.unwritten = state.unwritten.saturating_sub(n);
    state.check_drained(&self.limits)
  }

  /// The writer finished what it took.
  pub(crate) fn written(&self) {
    self.lock().writing = false;
  }

  /// A connection starts: direct writes go to it. In a session, the queue is rebuilt from what
  /// was kept: everything after the `peer_received` frames the other side already has.
  pub(crate) fn attach(&self, stream: Arc<Socket>, peer_received: Option<u64>) {
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
  pub(crate) fn detach(&self) -> Option<u32> {
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
        codec::count_messages(&kept)
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
  pub(crate) fn received(&self, n: usize) -> Option<(u32, u64)> {
    let mut state = self.lock();
    let session = state.session.as_mut()?;
    session.received += n as u64;
    Some((session.epoch, session.received))
  }

  /// An `ACK` arrived: forget what it covers. Returns the spell a `DRAIN` ends, if any.
  pub(crate) fn acknowledged(&self, delivered: u64) -> Result<Option<u32>, IpcError> {
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
  pub(crate) async fn wait_for(&self, done: impl Fn(&Session) -> bool) {
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
    assert_eq!(codec::frame_remainder(&frames, 3), 7);
    assert_eq!(codec::frame_remainder(&frames, 10), 11);
    assert_eq!(codec::frame_remainder(&frames, 12), 9);
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
