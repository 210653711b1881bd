//! Which bytes go over a connection, and how each wire's bytes are read and written. The one
//! place that knows there are two wires: the readers (`reader`, `loop_reads`) and the outbox ask
//! it, and never branch on the wire themselves.
//!
//! - `Native` (PROTOCOL.md): a hello, then length-prefixed frames (`codec`, `scan`).
//! - `SocketIpc` (`socket_ipc`): `JSON.stringify({topic, message}) + "\0\0"`, nothing else.

use crate::codec;
use crate::events::EventQueue;
use crate::scan::{parse, Parsed};
use crate::socket_ipc::{self, Splitter};
use std::borrow::Cow;

/// Which bytes go over a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wire {
  #[default]
  Native,
  SocketIpc,
}

impl Wire {
  /// Messages in bytes queued for this wire.
  pub fn count(self, queued: &[u8]) -> usize {
    match self {
      Wire::Native => codec::count_messages(queued),
      Wire::SocketIpc => socket_ipc::count(queued),
    }
  }

  /// After `written` bytes of `queued` went out, how many more complete the message they
  /// stopped in.
  pub fn remainder(self, queued: &[u8], written: usize) -> usize {
    match self {
      Wire::Native => codec::frame_remainder(queued, written),
      Wire::SocketIpc => socket_ipc::remainder(queued, written),
    }
  }

  /// The bytes that go on this wire for frames JS encoded: native frames as they are, socket-ipc
  /// `TEXT` frames without their headers.
  pub fn outgoing(self, frames: &[u8]) -> Cow<'_, [u8]> {
    match self {
      Wire::Native => Cow::Borrowed(frames),
      Wire::SocketIpc => {
        let mut wire = Vec::with_capacity(frames.len());
        socket_ipc::unwrap(frames, &mut wire);
        Cow::Owned(wire)
      }
    }
  }
}

/// The reading side of a wire: what a reader keeps between reads to find whole messages.
#[derive(Debug)]
pub enum Reading {
  /// Frames say their length; nothing to keep.
  Native,
  /// Messages end at a delimiter; the splitter remembers how far it looked.
  SocketIpc(Splitter),
}

impl Reading {
  pub fn new(wire: Wire) -> Self {
    match wire {
      Wire::Native => Reading::Native,
      Wire::SocketIpc => Reading::SocketIpc(Splitter::default()),
    }
  }

  /// What the whole messages at the front of `buf` hold: their bytes (`complete`), data for JS,
  /// pings, an `ACK`, the end of the connection, or the first bad message. `session`: the
  /// connection is in an at-least-once session (native only).
  pub fn scan(&mut self, buf: &[u8], max_message_size: usize, session: bool) -> Parsed {
    match self {
      Reading::Native => parse(buf, max_message_size, session),
      Reading::SocketIpc(splitter) => {
        let split = splitter.split(buf, max_message_size);
        Parsed {
          complete: split.complete,
          failure: split.failure,
          ..Parsed::default()
        }
      }
    }
  }

  /// Queues for JS the whole messages `complete` that `scan` found. `mark`: the session's count
  /// once they are in (native only).
  pub fn queue(&self, events: &EventQueue, id: u32, complete: &[u8], mark: Option<(u32, u64)>) {
    match self {
      Reading::Native => events.push_frames(id, complete, mark),
      Reading::SocketIpc(_) => events.push_texts(id, complete),
    }
  }

  /// The size of the frame at the front of `buf`, when this wire announces it.
  pub fn frame_size(&self, buf: &[u8], max_message_size: usize) -> Option<usize> {
    match self {
      Reading::Native => codec::peek_frame_size(buf, max_message_size).ok().flatten(),
      Reading::SocketIpc(_) => None,
    }
  }
}
