//! What the complete frames at the front of a receive buffer hold: data for JS, pings, the
//! peer's last `ACK`, a goodbye or a close reason, or the first bad frame. Pure: both readers
//! (the core's and the event loop's) use it.

use crate::codec::{self, kind};
use crate::error::IpcError;

/// Frames at least this large are handed to JS whole (see `EventQueue::push_attached`).
pub const ATTACH_FROM: usize = 64 * 1024;

/// What the reader found in the frames it parsed, besides data for JS.
#[derive(Default)]
pub struct Parsed {
  /// Bytes of complete, valid frames at the front of the buffer.
  pub complete: usize,
  pub data: usize,
  pub pings: usize,
  /// The highest `ACK` among them.
  pub ack: Option<u64>,
  pub goodbye: bool,
  /// The peer's `CLOSE_REASON`: it is dropping the connection.
  pub dropped: Option<IpcError>,
  pub failure: Option<IpcError>,
}

pub fn parse(buf: &[u8], max_message_size: usize, session: bool) -> Parsed {
  let mut found = Parsed::default();
  loop {
    match codec::next_frame(&buf[found.complete..], max_message_size) {
      Ok(Some(frame)) => {
        if let Err(e) = codec::validate(&frame) {
          found.failure = Some(e.into());
          break;
        }
        if !session && codec::session_only(frame.kind) {
          found.failure = Some(codec::FrameError::NotInSession(frame.kind).into());
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
        found.failure = Some(e.into());
        break;
      }
    }
  }
  found
}
