//! At-least-once delivery (`delivery: 'at-least-once'`): a session outlives its connections.
//!
//! Each side numbers the data frames (messages, requests, replies) it sends in a session 1, 2, 3…
//! implicitly, by their order, and keeps each one until the other side acknowledges it with an
//! `ACK` (sent once the listeners have run). A reconnecting client names its session in its
//! hello along with how many frames it has received; the server answers with its own count. Each
//! side then re-sends exactly what the other has not received, in order, so within a session no
//! frame is lost or seen twice. A server that does not know the session (it restarted) starts a
//! fresh one, and the client re-sends everything the dead server never acknowledged.

use crate::codec;
use bytes::{Buf, Bytes};
use std::collections::VecDeque;

/// Hello flag: this side uses at-least-once delivery.
pub const FLAG_AT_LEAST_ONCE: u8 = 0x01;
/// Hello flag (server): the session the client named is resumed, not started afresh.
pub const FLAG_RESUMED: u8 = 0x02;

pub type SessionId = [u8; 16];

/// The `delivery` option's value, for messages about a mismatch.
pub fn delivery_name(at_least_once: bool) -> &'static str {
  if at_least_once {
    "at-least-once"
  } else {
    "at-most-once"
  }
}

/// A client's hello extension: `session_id[16] | received: u64`.
pub fn encode_client_hello(id: &SessionId, received: u64) -> Vec<u8> {
  [&id[..], &received.to_be_bytes()].concat()
}

pub fn parse_client_hello(extension: &[u8]) -> Option<(SessionId, u64)> {
  let id = extension.get(..16)?.try_into().ok()?;
  let received = u64::from_be_bytes(extension.get(16..24)?.try_into().ok()?);
  Some((id, received))
}

/// A server's hello extension: `received: u64`.
pub fn parse_server_hello(extension: &[u8]) -> Option<u64> {
  Some(u64::from_be_bytes(extension.get(..8)?.try_into().ok()?))
}

/// A fresh random session id.
pub fn new_id() -> SessionId {
  crate::auth::nonce()[..16].try_into().expect("nonces are 32 bytes")
}

/// One side's state in a session: what it sent and is keeping, and what it received.
#[derive(Debug)]
pub struct Session {
  pub id: SessionId,
  /// Bumped when the session starts afresh, so acknowledgements meant for the old one are ignored.
  pub epoch: u32,
  /// Data frames received (handed to the event queue) in this session.
  pub received: u64,
  /// The highest `delivered` count already sent in an `ACK`.
  pub acked_out: u64,
  pub sent: Retained,
}

impl Session {
  pub fn new(id: SessionId) -> Self {
    Session {
      id,
      epoch: 1,
      received: 0,
      acked_out: 0,
      sent: Retained::default(),
    }
  }

  /// The other side does not know the session (it restarted): what it never acknowledged is
  /// numbered from 1 again, and nothing of its old stream is expected.
  pub fn start_afresh(&mut self) {
    self.epoch = self.epoch.wrapping_add(1);
    self.received = 0;
    self.acked_out = 0;
    self.sent.renumber();
  }
}

/// Sent data frames kept until acknowledged, in runs as they were appended (a run is one batch
/// from JS, or one large frame), so keeping them costs one `Bytes` per batch, not per frame.
#[derive(Debug, Default)]
pub struct Retained {
  runs: VecDeque<Run>,
  /// Sequence number of the first frame of the first run.
  first_seq: u64,
  /// Frames of the first run already acknowledged (their bytes are still at its front).
  acked_in_first: u64,
  /// Sequence number the next frame gets (1 for the first frame of a session).
  next_seq: u64,
  bytes: usize,
}

#[derive(Debug)]
struct Run {
  frames: Bytes,
  count: u64,
}

impl Retained {
  /// Keeps a run of complete data frames; returns the sequence number of the last one.
  pub fn push(&mut self, frames: Bytes) -> u64 {
    let count = count_frames(&frames);
    if self.next_seq == 0 {
      self.next_seq = 1;
      self.first_seq = 1;
    }
    if self.runs.is_empty() {
      self.first_seq = self.next_seq;
      self.acked_in_first = 0;
    }
    self.bytes += frames.len();
    self.runs.push_back(Run { frames, count });
    self.next_seq += count;
    self.next_seq - 1
  }

  /// Bytes kept (whole runs, including acknowledged frames at the front of the first).
  pub fn bytes(&self) -> usize {
    self.bytes
  }

  pub fn is_empty(&self) -> bool {
    self.runs.is_empty()
  }

  /// Frames sent so far in the session (the highest sequence number used).
  pub fn sent(&self) -> u64 {
    self.next_seq.saturating_sub(1)
  }

  /// Frames not yet acknowledged.
  pub fn unacknowledged(&self) -> u64 {
    self.runs.iter().map(|r| r.count).sum::<u64>() - self.acked_in_first
  }

  /// The other side handed frames up to `delivered` to its listeners: forget them. Returns false
  /// when `delivered` is more than was ever sent (a broken peer).
  pub fn acknowledge(&mut self, delivered: u64) -> bool {
    if delivered > self.sent() {
      return false;
    }
    while let Some(first) = self.runs.front() {
      let acked = delivered.saturating_sub(self.first_seq - 1);
      if acked >= first.count {
        self.first_seq += first.count;
        self.bytes -= first.frames.len();
        self.runs.pop_front();
        self.acked_in_first = 0;
      } else {
        self.acked_in_first = self.acked_in_first.max(acked);
        break;
      }
    }
    true
  }

  /// The frames after the first `received`, in order, as one buffer: what to re-send to a side
  /// that has received that many.
  pub fn after(&self, received: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seq = self.first_seq;
    for run in &self.runs {
      if seq + run.count - 1 <= received {
        seq += run.count;
        continue;
      }
      let mut frames = &run.frames[..];
      while seq <= received {
        frames = &frames[frame_len(frames)..];
        seq += 1;
      }
      out.extend_from_slice(frames);
      seq += count_frames(frames);
    }
    out
  }

  /// Numbers what is unacknowledged from 1, dropping the acknowledged front of the first run.
  fn renumber(&mut self) {
    if let Some(first) = self.runs.front_mut() {
      let mut skip = self.acked_in_first;
      let before = first.frames.len();
      while skip > 0 {
        let len = frame_len(&first.frames);
        first.frames.advance(len);
        first.count -= 1;
        skip -= 1;
      }
      self.bytes -= before - first.frames.len();
    }
    self.first_seq = 1;
    self.acked_in_first = 0;
    self.next_seq = 1 + self.runs.iter().map(|r| r.count).sum::<u64>();
  }
}

fn frame_len(frames: &[u8]) -> usize {
  codec::LEN_PREFIX + u32::from_be_bytes(frames[..4].try_into().unwrap()) as usize
}

/// Data frames in a run of complete frames (the runs kept here hold nothing else).
fn count_frames(mut frames: &[u8]) -> u64 {
  let mut n = 0;
  while frames.len() >= codec::LEN_PREFIX {
    frames = &frames[frame_len(frames)..];
    n += 1;
  }
  n
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::codec::kind;

  fn frames(range: std::ops::Range<u8>) -> Bytes {
    let mut out = Vec::new();
    for i in range {
      codec::encode_message(&mut out, kind::MESSAGE_JSON, "t", &[b'0' + i % 10]);
    }
    Bytes::from(out)
  }

  fn payloads(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
      let len = frame_len(rest);
      out.push(rest[len - 1]);
      rest = &rest[len..];
    }
    out
  }

  #[test]
  fn acknowledged_runs_are_forgotten_and_the_rest_is_resent_from_where_the_peer_stopped() {
    let mut r = Retained::default();
    assert_eq!(r.push(frames(0..3)), 3);
    assert_eq!(r.push(frames(3..5)), 5);
    assert_eq!(payloads(&r.after(0)), b"01234");
    assert_eq!(payloads(&r.after(2)), b"234");
    assert!(r.acknowledge(2));
    assert_eq!(r.unacknowledged(), 3);
    assert_eq!(payloads(&r.after(2)), b"234");
    assert_eq!(payloads(&r.after(4)), b"4");
    assert!(r.acknowledge(3));
    assert_eq!(r.runs.len(), 1, "the first run is gone once all of it is acknowledged");
    assert_eq!(r.bytes(), frames(3..5).len());
    assert!(r.acknowledge(5));
    assert!(r.is_empty() && r.bytes() == 0);
    assert_eq!(r.push(frames(5..6)), 6, "numbering goes on");
    assert!(!r.acknowledge(7), "more than was sent is a broken peer");
  }

  #[test]
  fn a_fresh_session_renumbers_what_was_never_acknowledged() {
    let mut s = Session::new([7; 16]);
    s.sent.push(frames(0..4));
    s.sent.acknowledge(1);
    s.received = 9;
    s.start_afresh();
    assert_eq!(s.epoch, 2);
    assert_eq!(s.received, 0);
    assert_eq!(s.sent.sent(), 3);
    assert_eq!(payloads(&s.sent.after(0)), b"123");
    assert_eq!(s.sent.bytes(), s.sent.after(0).len());
    assert_eq!(s.sent.push(frames(4..5)), 4);
  }

  #[test]
  fn hello_extensions_round_trip() {
    let ext = encode_client_hello(&[3; 16], 42);
    assert_eq!(parse_client_hello(&ext), Some(([3; 16], 42)));
    assert_eq!(parse_client_hello(&ext[..20]), None);
    assert_eq!(parse_server_hello(&9u64.to_be_bytes()), Some(9));
  }
}
