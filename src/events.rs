//! Events bound for JavaScript, batched so one wake-up of the JS thread carries every event
//! that is ready at that moment.
//!
//! Producers (connection readers, accept and connect loops) append records to one buffer per
//! Server/Client. The first record after a drain wakes the JS thread once; the JS callback then
//! takes the whole buffer. While JS is busy, records pile into the same buffer instead of into
//! more wake-ups, so batches grow with load and latency stays one wake-up when idle. Order is the
//! order of appends, so a connection's messages always sit between its `connection` and its
//! `connectionClose`.
//!
//! Record layout (big-endian), decoded by `lib/batch.js`:
//! `kind: u8 | id: u32 | len: u32 | body[len]`. For messages the body is the wire frame minus its
//! length prefix and kind (`topic_len: u16 | topic | payload`), copied once.

use crate::codec::{self, kind as frame_kind};
use crate::error::IpcError;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Record kinds. Messages reuse their wire kinds.
pub mod kind {
  pub use crate::codec::kind::{MESSAGE_BINARY, MESSAGE_JSON};
  pub const LISTENING: u8 = 0x21;
  pub const CONNECTION: u8 = 0x22;
  pub const CONNECTION_CLOSE: u8 = 0x23;
  /// Body: one byte, 1 when this connect is an automatic reconnect.
  pub const CONNECT: u8 = 0x24;
  pub const DISCONNECT: u8 = 0x25;
  /// Body: error JSON (see `IpcError::write_json`).
  pub const MESSAGE_ERROR: u8 = 0x26;
  pub const ERROR: u8 = 0x27;
  pub const CONNECT_ERROR: u8 = 0x28;
  pub const CLOSE: u8 = 0x29;
}

pub const RECORD_HEADER: usize = 9;

/// Readers stop reading once this many bytes wait for JS, so a busy JS thread bounds memory.
pub const BACKLOG_LIMIT: usize = 4 * 1024 * 1024;

/// Wakes the JS thread. The binding implements it with a threadsafe function; tests with a Notify.
pub trait Wake: Send + Sync + 'static {
  fn wake(&self);
}

pub struct EventQueue {
  state: Mutex<State>,
  room: Notify,
}

struct State {
  buf: Vec<u8>,
  /// A wake-up is on its way and will take everything appended until then.
  scheduled: bool,
  /// Dropped by `finish()`: releasing it is what lets Node exit.
  waker: Option<Box<dyn Wake>>,
}

impl EventQueue {
  pub fn new(waker: Box<dyn Wake>) -> Arc<Self> {
    Arc::new(EventQueue {
      state: Mutex::new(State {
        buf: Vec::new(),
        scheduled: false,
        waker: Some(waker),
      }),
      room: Notify::new(),
    })
  }

  fn lock(&self) -> MutexGuard<'_, State> {
    // A poisoned lock only means a producer panicked mid-append; the buffer is still usable.
    self.state.lock().unwrap_or_else(|p| p.into_inner())
  }

  /// Appends under the lock and wakes JS if no wake-up is pending. After `finish()` it is a no-op.
  fn append(&self, write: impl FnOnce(&mut Vec<u8>)) {
    let mut state = self.lock();
    let State { buf, scheduled, waker } = &mut *state;
    let Some(waker) = waker else { return };
    write(buf);
    if !*scheduled {
      *scheduled = true;
      waker.wake();
    }
  }

  pub fn push(&self, kind: u8, id: u32, body: &[u8]) {
    self.append(|buf| write_record(buf, kind, id, body));
  }

  pub fn push_error(&self, kind: u8, id: u32, error: &IpcError) {
    let mut body = Vec::with_capacity(128);
    error.write_json(&mut body);
    self.push(kind, id, &body);
  }

  /// Appends every message in `frames` (complete, validated wire frames) from connection `id`.
  /// Control frames are skipped: they are the connection's business, not the user's.
  pub fn push_frames(&self, id: u32, frames: &[u8]) {
    self.append(|buf| {
      let mut pos = 0;
      while pos < frames.len() {
        let len = u32::from_be_bytes(frames[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = frames[pos + codec::LEN_PREFIX];
        let body = &frames[pos + codec::LEN_PREFIX + 1..pos + codec::LEN_PREFIX + len];
        if kind == frame_kind::MESSAGE_JSON || kind == frame_kind::MESSAGE_BINARY {
          write_record(buf, kind, id, body);
        }
        pos += codec::LEN_PREFIX + len;
      }
    });
  }

  /// Called on the JS thread: everything appended so far, in order.
  pub fn take(&self) -> Vec<u8> {
    let mut state = self.lock();
    state.scheduled = false;
    let out = std::mem::take(&mut state.buf);
    drop(state);
    self.room.notify_waiters();
    out
  }

  fn backlog(&self) -> usize {
    self.lock().buf.len()
  }

  /// Waits until JS has taken the backlog below `BACKLOG_LIMIT`.
  pub async fn wait_for_room(&self) {
    loop {
      let notified = self.room.notified();
      if self.backlog() < BACKLOG_LIMIT {
        return;
      }
      notified.await;
    }
  }

  /// No more events: releases the waker (after the last wake-up it triggered is queued).
  pub fn finish(&self) {
    let waker = self.lock().waker.take();
    drop(waker);
    self.room.notify_waiters();
  }
}

fn write_record(buf: &mut Vec<u8>, kind: u8, id: u32, body: &[u8]) {
  buf.reserve(RECORD_HEADER + body.len());
  buf.push(kind);
  buf.extend_from_slice(&id.to_be_bytes());
  buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
  buf.extend_from_slice(body);
}

/// One decoded record, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
  pub kind: u8,
  pub id: u32,
  pub body: Vec<u8>,
}

/// Splits a taken buffer into records.
pub fn decode_records(mut buf: &[u8]) -> Vec<Record> {
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
    assert_eq!(decode_records(&q.take()).len(), 1000);
    q.push(kind::CLOSE, 0, b"");
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
  }

  #[test]
  fn message_frames_become_records_and_control_frames_vanish() {
    let q = EventQueue::new(Box::new(CountingWake(Default::default())));
    let mut wire = Vec::new();
    codec::encode_message(&mut wire, frame_kind::MESSAGE_JSON, "t", b"[1]");
    codec::encode_control(&mut wire, frame_kind::PING);
    codec::encode_message(&mut wire, frame_kind::MESSAGE_BINARY, "b", &[7, 8]);
    q.push_frames(5, &wire);
    let records = decode_records(&q.take());
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
      ]
    );
  }

  #[test]
  fn nothing_is_queued_after_finish() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let q = EventQueue::new(Box::new(CountingWake(wakes.clone())));
    q.push(kind::CLOSE, 0, b"");
    q.finish();
    q.push(kind::CONNECTION, 1, b"");
    assert_eq!(decode_records(&q.take()).len(), 1);
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
  }
}
