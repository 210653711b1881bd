//! Keep-alives: when the peer was last heard from, and the pings that follow silence.

use crate::codec::{self, kind};
use crate::ended::Ended;
use crate::error::IpcError;
use crate::outbox::Outbox;
use crate::transport::Socket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Keep-alive settings: ping after `interval` of silence, give up after `timeout` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
  pub interval: Duration,
  pub timeout: Duration,
}

/// When the reader last heard from the peer, in ms since the connection started.
pub struct Liveness {
  start: Instant,
  heard_at: AtomicU64,
  /// The reader is not reading because JS has not caught up: our slowness, not the peer's.
  pub(crate) paused: AtomicBool,
}

impl Liveness {
  pub(crate) fn new() -> Self {
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
pub(crate) async fn watch_for_silence(
  heartbeat: Heartbeat,
  life: &Liveness,
  outbox: &Outbox,
  shutdown: &CancellationToken,
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
      outbox.append_with(|out| codec::encode_control(out, kind::PING));
      pinged_at = now;
    }
    let next = (heard_at.max(pinged_at) + interval).min(heard_at + timeout);
    tokio::select! {
      _ = dead.cancelled() => return None,
      _ = shutdown.cancelled() => return None,
      _ = tokio::time::sleep(Duration::from_millis(next.saturating_sub(now).max(1))) => {}
    }
  }
}
