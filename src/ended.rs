//! How an established connection ended, what the peer is told about it, and how it is reported.

use crate::error::IpcError;
use crate::events::{kind as events_kind, EventQueue};
use std::time::Duration;

/// How long `close()` keeps writing what was sent before it, if the peer reads slowly.
pub const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a peer dropped for silence gets to take the reason (see `Ended::farewell`).
const FAREWELL_TO_SILENT_PEER: Duration = Duration::from_millis(200);

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
  pub(crate) fn farewell(&self) -> Option<(&IpcError, Duration)> {
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
