//! Reads a connection on the JS thread's own event loop, so a message costs one wake-up of one
//! thread, as in `node:net`, instead of waking a core thread that then wakes the JS thread.
//!
//! The binding watches the socket with a libuv poll handle on the JS thread; when input is
//! waiting, `read_ready` reads it, frames it and queues the records, and the binding hands them
//! to JavaScript at once, in the same callback. Everything else about the connection (writing,
//! heartbeats, the end) stays with the core's task in `connection::run`.
//!
//! A stream (a callback that finds `STREAM` bytes or more waiting) goes to the core as well:
//! there the framing runs beside the JS thread instead of on it (bench oneway: the receiving JS
//! thread spends ~100 ns a message less), while a request/response exchange, a few bytes at a
//! time, stays on the loop.
//!
//! The core reads instead, as it always did, when the loop cannot: the input holds
//! `maxInboundBytes` (the core waits for room), a frame of `ATTACH_FROM` bytes or more is coming
//! (it reads it into memory of its own), or input has waited unread while the JS thread did not
//! turn its loop for 50–100 ms (a long listener, a blocking call). So a process whose event loop
//! is blocked still answers pings. The core gives reading back once the connection is quiet (no
//! input, no partial frame, nothing queued for JS) and the loop has turned since it took over.
//!
//! Only on the main thread of Node or Electron on Unix, for Unix-domain and plain TCP sockets
//! outside at-least-once sessions. TLS, Windows named pipes, sessions, worker threads and hosts
//! without libuv are read by the core as before.

use crate::ended::Ended;
use crate::error::IpcError;
use crate::events::EventQueue;
use crate::heartbeat::Liveness;
use crate::inbound::Inbound;
use crate::scan::ATTACH_FROM;
use crate::wire::{Reading, Wire};
use crate::handshake::FIRST_READ;
use crate::transport::Socket;
use std::collections::HashSet;
use bytes::{Buf, BytesMut};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What the binding provides: a way to ask the JS thread to start (or stop) watching a socket.
pub trait LoopHost: Send + Sync + std::fmt::Debug {
  /// Start reading `reads` on the event loop (the JS thread then calls `LoopReads::start`).
  fn adopt(&self, reads: Arc<LoopReads>);
  /// The connection is over: the JS thread stops watching and lets go of the socket.
  fn retire(&self, reads: Arc<LoopReads>);
}

/// Who reads the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
  /// Waiting for the JS thread to start watching.
  Pending,
  /// The event loop reads.
  Loop,
  /// The core reads, until it gives reading back (`give_back`).
  Core,
  /// The connection is over; `end` says why, if the loop found out.
  Over,
}

/// The reading state, handed whole from the loop to the core.
struct ReadState {
  mode: Mode,
  buf: BytesMut,
  reading: Reading,
  /// When the partial frame at the end of `buf` began to arrive (`frameTimeout`).
  partial_since: Option<Instant>,
  end: Option<Ended>,
  /// PINGs read that the core has not answered yet.
  pings: usize,
  /// The loop's turn count when the core took over: it gives reading back once the loop turns.
  taken_at_turn: u64,
  /// The JS thread holds a poll handle for this connection.
  watched: bool,
  /// The room the next read asks for.
  read_size: usize,
}

pub struct LoopReads {
  pub id: u32,
  socket: Arc<Socket>,
  events: Arc<EventQueue>,
  inbound: Arc<Inbound>,
  max_message_size: usize,
  frame_timeout: Option<Duration>,
  life: Arc<Liveness>,
  state: Mutex<ReadState>,
  /// Wakes the core's task: the mode changed, or PINGs want an answer.
  handover: Notify,
}

/// This much input in one callback is a stream: the core reads it from then on, until it is
/// quiet. Reads start as small as the core's (`FIRST_READ`: an idle connection holds 1 KiB) and
/// ask for four times more each time a read fills the room it had, up to this (the core's most).
const STREAM: usize = 64 * 1024;

/// Turns of the JS thread's loop (see `watchdog`), counted by the binding's libuv check hook.
static TURNS: AtomicU64 = AtomicU64::new(0);

/// The loop finished the I/O part of a turn.
pub fn turned() {
  TURNS.fetch_add(1, Ordering::AcqRel);
}

impl LoopReads {
  #[allow(clippy::too_many_arguments)]
  pub fn new(
    id: u32,
    socket: Arc<Socket>,
    buf: BytesMut,
    wire: Wire,
    events: Arc<EventQueue>,
    inbound: Arc<Inbound>,
    max_message_size: usize,
    frame_timeout: Option<Duration>,
    life: Arc<Liveness>,
  ) -> Arc<Self> {
    let reads = Arc::new(LoopReads {
      id,
      socket,
      events,
      inbound,
      max_message_size,
      frame_timeout,
      life,
      state: Mutex::new(ReadState {
        mode: Mode::Pending,
        buf,
        reading: Reading::new(wire),
        partial_since: None,
        end: None,
        pings: 0,
        taken_at_turn: 0,
        watched: false,
        read_size: FIRST_READ,
      }),
      handover: Notify::new(),
    });
    watch(&reads);
    reads
  }

  fn lock(&self) -> MutexGuard<'_, ReadState> {
    self.state.lock().unwrap_or_else(|p| p.into_inner())
  }

  #[cfg(unix)]
  pub fn fd(&self) -> i32 {
    self.socket.as_polled().map_or(-1, |p| p.fd())
  }

  /// The JS thread now watches the socket: from here on it reads. False if the core took over
  /// in the meantime (nothing to watch).
  pub fn start(self: &Arc<Self>) -> bool {
    let mut state = self.lock();
    if state.mode != Mode::Pending {
      return false;
    }
    state.mode = Mode::Loop;
    state.watched = true;
    true
  }

  /// The JS thread closed its poll handle.
  pub fn unwatched(&self) {
    self.lock().watched = false;
  }

  /// The JS thread: input is waiting (or may be: bytes read with the hello are parsed first).
  /// Reads, frames and queues it for JS; returns whether the loop keeps watching.
  pub fn read_ready(&self) -> bool {
    let mut state = self.lock();
    if state.mode != Mode::Loop {
      return false;
    }
    let state = &mut *state;
    // Before reading (see `watch_for_silence`): a heartbeat check that finds the socket drained
    // must find the peer heard.
    self.life.heard();
    let mut read = 0;
    let keep = loop {
      match self.consume(state) {
        Ok(()) => {}
        Err(end) => break self.over(state, end),
      }
      if self.needs_core(state) || read >= STREAM {
        break self.hand_to_core(state);
      }
      state.buf.reserve(state.read_size);
      let room = state.buf.capacity() - state.buf.len();
      match self.socket.try_read_buf(&mut state.buf) {
        Ok(0) if state.buf.is_empty() => break self.over(state, Ended::PeerClosed),
        Ok(0) => {
          let e = IpcError::Protocol(format!(
            "the peer closed the connection in the middle of a frame ({} bytes of it had arrived)",
            state.buf.len()
          ));
          break self.over(state, Ended::Cut(e));
        }
        Ok(n) => {
          read += n;
          if n == room {
            state.read_size = (state.read_size * 4).min(STREAM);
          } else {
            match self.consume(state) {
              Ok(()) => {}
              Err(end) => break self.over(state, end),
            }
            // Short read: the socket is drained; libuv calls again when more arrives.
            break if self.needs_core(state) { self.hand_to_core(state) } else { true };
          }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
        Err(_) => break self.over(state, Ended::PeerClosed),
      }
    };
    if keep {
      state.partial_since = match (state.buf.is_empty(), state.partial_since) {
        (true, _) => None,
        (false, None) => Some(Instant::now()),
        (false, since) => since,
      };
    } else {
      state.watched = false;
    }
    keep
  }

  /// The core reads from here on (it takes the state with `take_state`); the loop stops watching.
  fn hand_to_core(&self, state: &mut ReadState) -> bool {
    state.mode = Mode::Core;
    self.handover.notify_one();
    false
  }

  /// The JS thread could not watch the socket after all (no poll handle): the core reads.
  pub fn decline(&self) {
    let mut state = self.lock();
    state.watched = false;
    if state.mode == Mode::Loop {
      self.hand_to_core(&mut state);
    }
  }

  /// Queues the whole messages at the front of `buf` for JS (see `wire::Reading`).
  fn consume(&self, state: &mut ReadState) -> Result<(), Ended> {
    let found = state.reading.scan(&state.buf, self.max_message_size, false);
    if found.complete > 0 {
      state.reading.queue(&self.events, self.id, &state.buf[..found.complete], None);
      state.buf.advance(found.complete);
    }
    if found.pings > 0 {
      state.pings += found.pings;
      self.handover.notify_one();
    }
    if let Some(e) = found.failure {
      return Err(Ended::Failed(e));
    }
    if let Some(e) = found.dropped {
      return Err(Ended::Dropped(e));
    }
    Ok(())
  }

  /// The core must read from here on: the input is at its cap, or a large frame is coming.
  fn needs_core(&self, state: &ReadState) -> bool {
    if !self.events.room_for(&self.inbound) {
      return true;
    }
    matches!(state.reading.frame_size(&state.buf, self.max_message_size), Some(size) if size >= ATTACH_FROM && state.buf.len() < size)
  }

  fn over(&self, state: &mut ReadState, end: Ended) -> bool {
    state.mode = Mode::Over;
    state.end = Some(end);
    self.handover.notify_one();
    false
  }

  /// The watchdog's look at a connection the loop reads; false once it needs no more looks.
  /// `stalled`: input has waited unread while the loop did not turn.
  fn check(&self, stalled: bool, now: Instant) -> bool {
    let mut state = self.lock();
    match state.mode {
      Mode::Pending | Mode::Loop if stalled => self.hand_to_core(&mut state),
      Mode::Loop => {
        if let (Some(since), Some(limit)) = (state.partial_since, self.frame_timeout) {
          if now.duration_since(since) >= limit {
            self.over(&mut state, Ended::Cut(IpcError::FrameTimeout(limit.as_millis())));
            return false;
          }
        }
        true
      }
      Mode::Pending => true,
      Mode::Core | Mode::Over => false,
    }
  }

  /// The core's side, while the loop reads: answers PINGs, and returns when the loop handed
  /// reading over (`Ok(None)`: the caller reads from here on, with `take_state`) or found the end.
  pub async fn wait_for_handover(&self, answer_pings: impl Fn(usize)) -> Option<Ended> {
    loop {
      let notified = self.handover.notified();
      tokio::pin!(notified);
      notified.as_mut().enable();
      let (pings, mode) = {
        let mut state = self.lock();
        (std::mem::take(&mut state.pings), state.mode)
      };
      if pings > 0 {
        answer_pings(pings);
      }
      match mode {
        Mode::Over => return Some(self.lock().end.take().unwrap_or(Ended::PeerClosed)),
        Mode::Core => return None,
        Mode::Pending | Mode::Loop => {}
      }
      // The JS thread should start watching within a turn of its loop; if it does not (it is
      // busy), the core reads.
      let pending = mode == Mode::Pending;
      tokio::select! {
        _ = &mut notified => {}
        _ = tokio::time::sleep(STALL), if pending => {
          let mut state = self.lock();
          if state.mode == Mode::Pending {
            state.mode = Mode::Core;
          }
        }
      }
    }
  }

  /// The core reads from here on: the state the loop left.
  pub fn take_state(&self) -> (BytesMut, Reading, Option<Instant>) {
    let mut state = self.lock();
    state.mode = Mode::Core;
    state.taken_at_turn = TURNS.load(Ordering::Acquire);
    let reading = std::mem::replace(&mut state.reading, Reading::Native);
    (std::mem::take(&mut state.buf), reading, state.partial_since)
  }

  /// Whether the core may give reading back: the loop has turned since the core took over, and
  /// the connection's input has room (the caller checks that the socket is quiet).
  pub fn may_take_back(&self, events: &EventQueue, inbound: &Inbound) -> bool {
    TURNS.load(Ordering::Acquire) != self.lock().taken_at_turn && events.room_for(inbound) && inbound.queued() == 0
  }

  /// The core gives reading back (see `may_take_back`); the JS thread starts watching again.
  pub fn give_back(self: &Arc<Self>, buf: BytesMut, reading: Reading) {
    let mut state = self.lock();
    state.mode = Mode::Pending;
    state.buf = buf;
    state.reading = reading;
    state.partial_since = None;
    drop(state);
    watch(self);
  }

  /// The core ended the connection: the loop reads no more, and lets go of the socket.
  pub fn finish(&self) -> bool {
    let mut state = self.lock();
    state.mode = Mode::Over;
    state.watched
  }
}

/// How long the JS thread may go without a turn of its loop, input waiting, before the core
/// reads for it (the input must also still wait a tick later).
const STALL: Duration = Duration::from_millis(50);
const TICK: Duration = Duration::from_millis(50);

/// The connections the loop reads, and whether the watchdog runs.
static WATCHED: Mutex<(Vec<Weak<LoopReads>>, bool)> = Mutex::new((Vec::new(), false));

/// Called in the runtime (the watchdog is a task of it).
fn watch(reads: &Arc<LoopReads>) {
  let mut watched = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
  watched.0.push(Arc::downgrade(reads));
  if !watched.1 {
    watched.1 = true;
    drop(watched);
    tokio::spawn(watchdog());
  }
}

/// Every TICK while connections are read by the loop. A loop that has not turned for STALL is
/// either waiting for I/O or stuck; which one, its sockets tell: input that waits unread on two
/// looks in a row, the loop not turning in between, is not being read, and the core reads that
/// connection from then on. (An idle loop wakes for input within microseconds.) One poll(2)
/// over the connections' sockets per tick, and only while the loop does not turn.
/// A partial frame older than `frameTimeout` ends its connection.
async fn watchdog() {
  let mut last = TURNS.load(Ordering::Acquire);
  let mut still_since = Instant::now();
  // Connections (by address) whose input waited at the last look, the loop not having turned since.
  let mut waiting: HashSet<usize> = HashSet::new();
  loop {
    tokio::time::sleep(TICK).await;
    let now = Instant::now();
    let turns = TURNS.load(Ordering::Acquire);
    if turns != last {
      last = turns;
      still_since = now;
      waiting.clear();
    }
    let mut watched = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    let live: Vec<Arc<LoopReads>> = watched.0.iter().filter_map(Weak::upgrade).collect();
    let unread = if now.duration_since(still_since) >= STALL { with_input(&live) } else { Vec::new() };
    let stalled: HashSet<usize> = unread.iter().copied().filter(|r| waiting.contains(r)).collect();
    waiting = unread.into_iter().collect();
    // The list is rebuilt from the live connections that still need looks, once each (a
    // connection given back may have been listed again before its old entry went).
    let mut seen = HashSet::new();
    watched.0 = live
      .iter()
      .filter(|reads| seen.insert(Arc::as_ptr(reads) as usize))
      .filter(|reads| reads.check(stalled.contains(&(Arc::as_ptr(reads) as usize)), now))
      .map(Arc::downgrade)
      .collect();
    if watched.0.is_empty() {
      watched.1 = false;
      return;
    }
  }
}

/// The connections whose sockets have input (or an EOF, or an error) waiting, by one poll(2).
#[cfg(unix)]
fn with_input(live: &[Arc<LoopReads>]) -> Vec<usize> {
  use crate::polled::libc_poll::{poll, PollFd, POLLERR, POLLHUP, POLLIN};
  let mut fds: Vec<PollFd> = live.iter().map(|r| PollFd { fd: r.fd(), events: POLLIN, revents: 0 }).collect();
  if fds.is_empty() || unsafe { poll(fds.as_mut_ptr(), fds.len() as _, 0) } <= 0 {
    return Vec::new();
  }
  live
    .iter()
    .zip(&fds)
    .filter(|(_, fd)| fd.revents & (POLLIN | POLLHUP | POLLERR) != 0)
    .map(|(r, _)| Arc::as_ptr(r) as usize)
    .collect()
}

#[cfg(not(unix))]
fn with_input(_: &[Arc<LoopReads>]) -> Vec<usize> {
  Vec::new()
}
