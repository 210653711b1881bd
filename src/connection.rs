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
use crate::transport::Socket;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The most asked of the kernel per read; also the largest batch a single read produces.
const READ_CHUNK: usize = 64 * 1024;

/// How long `close()` keeps writing what was sent before it, if the peer reads slowly.
pub const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

// ===== Outbox =====

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
#[derive(Default)]
pub struct Outbox {
  state: Mutex<OutboxState>,
  ready: Notify,
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
/// (a broadcast shares one piece among clients) or it is small or the pool is full.
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
}

impl OutboxState {
  fn is_empty(&self) -> bool {
    self.pieces.is_empty() && self.buf.is_empty()
  }

  fn queued_messages(&self) -> usize {
    self.pieces.iter().map(|p| count_messages(p)).sum::<usize>() + count_messages(&self.buf)
  }
}

impl Outbox {
  fn lock(&self) -> MutexGuard<'_, OutboxState> {
    self.state.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// Queues frames; returns how many messages were refused because the outbox is closed.
  pub fn append(&self, frames: &[u8]) -> usize {
    let mut state = self.lock();
    if state.closed {
      return count_messages(frames);
    }
    let mut rest = frames;
    if state.is_empty() && !state.writing && frames.len() <= DIRECT_WRITE_MAX {
      if let Some(stream) = &state.direct {
        // Any error (WouldBlock, a dead peer) leaves the frames to the writer, which handles it.
        let written = stream.try_write(frames).unwrap_or(0);
        rest = &frames[written..];
        if written > 0 && !rest.is_empty() {
          state.tail_of_partial = rest.len().min(frame_remainder(frames, written));
        }
      }
    }
    if !rest.is_empty() {
      state.buf.extend_from_slice(rest);
      drop(state);
      self.ready.notify_one();
    }
    0
  }

  /// Queues one large frame as a piece of its own; returns 1 if refused (the outbox is closed).
  pub fn append_piece(&self, frame: Bytes) -> usize {
    let mut state = self.lock();
    if state.closed {
      return count_messages(&frame);
    }
    if !state.buf.is_empty() {
      let sealed = Bytes::from(std::mem::take(&mut state.buf));
      state.pieces.push_back(sealed);
    }
    state.pieces.push_back(frame);
    drop(state);
    self.ready.notify_one();
    0
  }

  /// Appends under one lock; for callers that gather frames from several places.
  pub fn append_with(&self, write: impl FnOnce(&mut Vec<u8>)) {
    let mut state = self.lock();
    if state.closed {
      return;
    }
    write(&mut state.buf);
    drop(state);
    self.ready.notify_one();
  }

  /// The writer takes everything queued, leaving `spare` (emptied) as the new coalescing buffer
  /// so its allocation is reused; direct writes pause until `written()`.
  fn take(&self, mut spare: Vec<u8>) -> Taken {
    spare.clear();
    let mut state = self.lock();
    state.writing = true;
    state.tail_of_partial = 0;
    Taken {
      pieces: std::mem::take(&mut state.pieces),
      buf: std::mem::replace(&mut state.buf, spare),
    }
  }

  /// The writer finished what it took.
  fn written(&self) {
    self.lock().writing = false;
  }

  fn attach(&self, stream: Arc<Socket>) {
    let mut state = self.lock();
    state.direct = Some(stream);
    state.writing = false;
  }

  /// The connection ended: no more direct writes, and the unsent end of a partly sent frame is
  /// dropped with it.
  fn detach(&self) {
    let mut state = self.lock();
    state.direct = None;
    state.writing = false;
    let tail = std::mem::take(&mut state.tail_of_partial);
    match state.pieces.front_mut() {
      Some(first) => first.advance(tail),
      None => drop(state.buf.drain(..tail)),
    }
  }

  /// Closes the outbox for good and returns how many queued messages it dropped.
  pub fn close(&self) -> usize {
    let mut state = self.lock();
    state.closed = true;
    let dropped = state.queued_messages();
    state.pieces.clear();
    state.buf = Vec::new();
    dropped
  }
}

/// After `written` bytes of `frames` went out, how many more complete the frame they stopped in.
fn frame_remainder(frames: &[u8], written: usize) -> usize {
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
  /// The peer fell silent for `heartbeatTimeout`: stopped, hung, or gone without a FIN.
  Unresponsive(IpcError),
}

impl Ended {
  /// Why the connection was dropped, for the close event; `None` for an ordinary close.
  pub fn reason(&self) -> Option<&IpcError> {
    match self {
      Ended::Failed(e) | Ended::Unresponsive(e) => Some(e),
      Ended::PeerClosed | Ended::Shutdown => None,
    }
  }
}

/// Reports the end of an established connection: bad input as a `MESSAGE_ERROR` first (as for any
/// bad frame), then the close event, carrying the reason when there was one.
pub fn report_end(events: &EventQueue, close_kind: u8, id: u32, end: &Ended) {
  if let Ended::Failed(e) = end {
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
  pub events: &'a EventQueue,
  pub outbox: &'a Outbox,
  pub max_message_size: usize,
  pub shutdown: &'a CancellationToken,
  /// `None`: no pings of our own (PINGs from the peer are still answered).
  pub heartbeat: Option<Heartbeat>,
  /// A frame must arrive whole within this of its first byte (`None`: no limit).
  pub frame_timeout: Option<Duration>,
}

/// Runs the connection until the peer leaves, breaks the protocol, falls silent, or we shut down.
pub async fn run(conn: Conn, link: Link<'_>) -> Ended {
  // Shared by the reader, the writer and the outbox's direct writes; all use readiness-based
  // `try_read`/`try_write`, which take `&self`.
  let tls_failure = conn.tls_failure;
  let stream = Arc::new(conn.stream);
  link.outbox.attach(stream.clone());
  // Ends the other half early when one half finds the connection dead.
  let dead = CancellationToken::new();
  let life = Liveness::new();
  let reading = async {
    let end = read_loop(&stream, conn.buf, &link, &dead, &life).await;
    if !matches!(end, Ended::Shutdown) {
      dead.cancel();
    }
    end
  };
  let writing = async {
    if write_loop(&stream, &link, &dead).await.is_err() {
      dead.cancel();
    }
  };
  let beating = async {
    let verdict = match link.heartbeat {
      Some(heartbeat) => watch_for_silence(heartbeat, &life, &link, &dead).await,
      None => None,
    };
    if verdict.is_some() {
      dead.cancel();
    }
    verdict
  };
  let (end, (), silent) = tokio::join!(reading, writing, beating);
  link.outbox.detach();
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
struct Liveness {
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

  fn heard(&self) {
    self.heard_at.store(self.now(), Ordering::Relaxed);
  }
}

/// Pings after each `interval` of silence and returns `Unresponsive` after `timeout` of it. Any
/// bytes count as life, so a busy connection never pings; the cost is one timer per interval.
async fn watch_for_silence(
  heartbeat: Heartbeat,
  life: &Liveness,
  link: &Link<'_>,
  dead: &CancellationToken,
) -> Option<Ended> {
  let interval = heartbeat.interval.as_millis().max(1) as u64;
  let timeout = heartbeat.timeout.as_millis().max(1) as u64;
  let mut pinged_at = 0;
  loop {
    let now = life.now();
    if life.paused.load(Ordering::Relaxed) {
      life.heard_at.store(now, Ordering::Relaxed);
    }
    let heard_at = life.heard_at.load(Ordering::Relaxed);
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

async fn read_loop(
  stream: &Socket,
  mut buf: BytesMut,
  link: &Link<'_>,
  dead: &CancellationToken,
  life: &Liveness,
) -> Ended {
  // Grows (up to READ_CHUNK) each time a read fills all the room it was given.
  let mut read_size = FIRST_READ;
  // When the partial frame at the end of `buf` began to arrive.
  let mut frame_started: Option<tokio::time::Instant> = None;
  loop {
    let mut complete = 0;
    let mut pings = 0;
    let mut failure = None;
    loop {
      match codec::next_frame(&buf[complete..], link.max_message_size) {
        Ok(Some(frame)) => {
          if let Err(e) = codec::validate(&frame) {
            failure = Some(e);
            break;
          }
          pings += usize::from(frame.kind == kind::PING);
          complete += frame.wire_len();
        }
        Ok(None) => break,
        Err(e) => {
          failure = Some(e);
          break;
        }
      }
    }
    // Everything intact before a bad frame is still delivered.
    if complete > 0 {
      link.events.push_frames(link.id, &buf[..complete]);
      buf.advance(complete);
      frame_started = None;
    }
    if let Some(e) = failure {
      return Ended::Failed(e.into());
    }
    if pings > 0 {
      link
        .outbox
        .append_with(|out| (0..pings).for_each(|_| codec::encode_control(out, kind::PONG)));
    }

    // A large frame gets one allocation of its exact size, only once its size passed the limit.
    let want = match codec::peek_frame_size(&buf, link.max_message_size) {
      Ok(Some(size)) => size.max(buf.len() + read_size),
      _ => buf.len() + read_size,
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
    let pause_began = tokio::time::Instant::now();
    life.paused.store(true, Ordering::Relaxed);
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled() => return Ended::Shutdown,
      _ = dead.cancelled() => return Ended::PeerClosed,
      _ = link.events.wait_for_room() => {}
    }
    life.paused.store(false, Ordering::Relaxed);
    if let Some(started) = &mut frame_started {
      *started += pause_began.elapsed();
    }
    let deadline = frame_started.zip(link.frame_timeout).map(|(t, limit)| t + limit);
    // A large frame is read into memory of exactly its size and handed to JS whole: the bytes the
    // kernel copies in are the bytes the listener's Buffer shows, with no copy into the batch.
    if let Ok(Some(size)) = codec::peek_frame_size(&buf, link.max_message_size) {
      if size >= ATTACH_FROM && buf.len() < size {
        match read_whole_frame(stream, &mut buf, size, link, dead, life, deadline).await {
          Ok(frame) => match codec::next_frame(&frame, link.max_message_size).map(|f| f.map(|f| codec::validate(&f))) {
            Ok(Some(Ok(()))) => link.events.push_attached(link.id, frame),
            Ok(Some(Err(e))) | Err(e) => return Ended::Failed(e.into()),
            Ok(None) => unreachable!("read_whole_frame returns a complete frame"),
          },
          Err(end) => return end,
        }
        continue;
      }
    }
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled() => return Ended::Shutdown,
      _ = dead.cancelled() => return Ended::PeerClosed,
      _ = expires(deadline) => return Ended::Failed(frame_timed_out(link)),
      ready = stream.readable() => {
        if ready.is_err() {
          return Ended::PeerClosed;
        }
        match stream.try_read_buf(&mut buf) {
          Ok(0) if buf.is_empty() => return Ended::PeerClosed,
          Ok(0) => {
            return Ended::Failed(IpcError::Protocol(format!(
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
          Err(_) => return Ended::PeerClosed,
        }
      }
    }
  }
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
const ATTACH_FROM: usize = 64 * 1024;

/// Reads the rest of a `size`-byte frame whose beginning is in `buf`, and nothing past it.
async fn read_whole_frame(
  stream: &Socket,
  buf: &mut BytesMut,
  size: usize,
  link: &Link<'_>,
  dead: &CancellationToken,
  life: &Liveness,
  deadline: Option<tokio::time::Instant>,
) -> Result<Vec<u8>, Ended> {
  let mut frame = Vec::with_capacity(size);
  frame.extend_from_slice(buf);
  buf.clear();
  while frame.len() < size {
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled() => return Err(Ended::Shutdown),
      _ = dead.cancelled() => return Err(Ended::PeerClosed),
      _ = expires(deadline) => return Err(Ended::Failed(frame_timed_out(link))),
      ready = stream.readable() => {
        if ready.is_err() {
          return Err(Ended::PeerClosed);
        }
        let remaining = size - frame.len();
        match stream.try_read_buf(&mut (&mut frame).limit(remaining)) {
          Ok(0) => {
            return Err(Ended::Failed(IpcError::Protocol(format!(
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
struct InHand {
  pieces: VecDeque<Bytes>,
  buf: Vec<u8>,
  buf_written: usize,
}

impl InHand {
  fn next(&self) -> Option<&[u8]> {
    match self.pieces.front() {
      Some(piece) => Some(piece),
      None if self.buf_written < self.buf.len() => Some(&self.buf[self.buf_written..]),
      None => None,
    }
  }

  fn consumed(&mut self, n: usize) {
    match self.pieces.front_mut() {
      Some(piece) if n < piece.len() => piece.advance(n),
      Some(_) => recycle(self.pieces.pop_front().expect("front exists")),
      None => self.buf_written += n,
    }
  }

  fn refill(&mut self, outbox: &Outbox) {
    let taken = outbox.take(std::mem::take(&mut self.buf));
    self.pieces = taken.pieces;
    self.buf = taken.buf;
    self.buf_written = 0;
  }
}

async fn write_loop(stream: &Socket, link: &Link<'_>, dead: &CancellationToken) -> io::Result<()> {
  let mut hand = InHand {
    pieces: VecDeque::new(),
    buf: Vec::new(),
    buf_written: 0,
  };
  loop {
    let Some(bytes) = hand.next() else {
      link.outbox.written();
      tokio::select! {
        biased;
        _ = dead.cancelled() => return Ok(()),
        _ = link.shutdown.cancelled() => break,
        _ = link.outbox.ready.notified() => {}
      }
      hand.refill(link.outbox);
      continue;
    };
    tokio::select! {
      biased;
      _ = dead.cancelled() => return Ok(()),
      _ = link.shutdown.cancelled() => break,
      n = write_some(stream, bytes) => hand.consumed(n?),
    }
  }
  // Closing: what was sent before close() still goes out, then a half-close tells the peer
  // that was the last of it. A peer that stops reading cannot hold the close up for long.
  let flush = async {
    for refill in [false, true] {
      if refill {
        hand.refill(link.outbox);
      }
      while let Some(bytes) = hand.next() {
        let n = write_some(stream, bytes).await?;
        hand.consumed(n);
      }
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
    assert_eq!(outbox.append(&frames), 0);
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
    assert_eq!(outbox.append_piece(Bytes::from(frame(b"5"))), 1, "refused once closed");
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
    assert_eq!(outbox.append(&frames), 2);
    assert_eq!(outbox.close(), 0);
  }
}
