//! What one connection's input holds until JS is done with it, and the cap on it
//! (`maxInboundBytes`).
//!
//! Bytes count from the moment the reader queues them for JS until JS is done with them: a
//! message or reply once its listeners ran (the slice it came in was dispatched), a request once
//! its reply was queued. Past the cap the reader stops reading, so the kernel's socket buffer
//! fills and pushes back on the sender: a flood costs the receiver at most the cap (plus the one
//! frame being read when it was reached), however fast JS takes events.

use crate::codec::{self, kind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// The default cap: a connection may have this much input waiting for, or held by, JS.
pub const DEFAULT_MAX_INBOUND: usize = 4 * 1024 * 1024;

pub struct Inbound {
  held: AtomicUsize,
  /// The part of `held` still queued for JS (not yet taken).
  queued: AtomicUsize,
  cap: usize,
  room: Notify,
  /// Requests handed to JS and not yet answered: request id → (how many, bytes). A peer may
  /// reuse an id while the first is still being handled; each reply releases one of them.
  requests: Mutex<HashMap<u32, (u32, usize)>>,
  /// How many requests are in `requests`, so that a send with nothing to answer skips the scan.
  open_requests: AtomicUsize,
}

impl Inbound {
  pub fn new(cap: usize) -> Self {
    Inbound {
      held: AtomicUsize::new(0),
      queued: AtomicUsize::new(0),
      cap: cap.max(1),
      room: Notify::new(),
      requests: Mutex::default(),
      open_requests: AtomicUsize::new(0),
    }
  }

  pub fn held(&self) -> usize {
    self.held.load(Ordering::Acquire)
  }

  pub fn queued(&self) -> usize {
    self.queued.load(Ordering::Acquire)
  }

  pub fn cap(&self) -> usize {
    self.cap
  }

  /// The reader queued `bytes` for JS.
  pub fn add(&self, bytes: usize) {
    self.queued.fetch_add(bytes, Ordering::AcqRel);
    self.held.fetch_add(bytes, Ordering::AcqRel);
  }

  /// JS took `bytes` of what was queued: a request's stay held until its reply (`request`), the
  /// rest is released.
  pub fn taken(&self, bytes: usize, request: Option<u32>) {
    let _ = self
      .queued
      .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(bytes)));
    match request {
      Some(request_id) => self.hold_request(request_id, bytes),
      None => self.release(bytes),
    }
  }

  /// JS is done with `bytes`; wakes the reader if that made room.
  pub fn release(&self, bytes: usize) {
    if bytes == 0 {
      return;
    }
    let before = self
      .held
      .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| Some(held.saturating_sub(bytes)))
      .expect("the closure always returns Some");
    // A reader stopped at the cap goes on once JS has taken it down to half (see
    // `wait_for_room`): one wake-up per half a cap, not one per slice JS takes.
    let low = self.cap / 2;
    if before > low && before.saturating_sub(bytes) <= low {
      self.room.notify_waiters();
    }
  }

  /// A request of `bytes` was handed to JS: it stays held until its reply is queued.
  fn hold_request(&self, request_id: u32, bytes: usize) {
    let mut requests = self.requests();
    let entry = requests.entry(request_id).or_insert((0, 0));
    entry.0 += 1;
    entry.1 += bytes;
    self.open_requests.fetch_add(1, Ordering::AcqRel);
  }

  /// JS queued `frames` (whole wire frames) to this connection: the replies among them release
  /// the requests they answer.
  pub fn replied(&self, mut frames: &[u8]) {
    if self.open_requests.load(Ordering::Acquire) == 0 {
      return;
    }
    let mut freed = 0;
    let mut requests = self.requests();
    while frames.len() > codec::LEN_PREFIX + 4 {
      let len = u32::from_be_bytes(frames[..4].try_into().unwrap()) as usize;
      if matches!(frames[4], kind::REPLY_JSON | kind::REPLY_BINARY | kind::REPLY_ERROR) {
        let request_id = u32::from_be_bytes(frames[5..9].try_into().unwrap());
        if let Some(entry) = requests.get_mut(&request_id) {
          let share = entry.1 / entry.0 as usize;
          entry.0 -= 1;
          entry.1 -= share;
          freed += share;
          if entry.0 == 0 {
            requests.remove(&request_id);
          }
          self.open_requests.fetch_sub(1, Ordering::AcqRel);
        }
      }
      frames = frames.get(codec::LEN_PREFIX + len..).unwrap_or_default();
    }
    drop(requests);
    self.release(freed);
  }

  /// The connection ended: the requests it brought are no longer held against the next one.
  pub fn forget_requests(&self) {
    let mut requests = self.requests();
    let (count, bytes) = requests.values().fold((0, 0), |(n, b), e| (n + e.0 as usize, b + e.1));
    requests.clear();
    drop(requests);
    self.open_requests.fetch_sub(count, Ordering::AcqRel);
    self.release(bytes);
  }

  /// Waits until the connection holds less than the cap (once it reached the cap: until it holds
  /// at most half), and `shared_room()` says the connection may add to what all connections have
  /// queued (see `EventQueue::wait_for_room`).
  pub async fn wait_for_room(&self, shared: &Notify, shared_room: impl Fn() -> bool) {
    // Checked first without registering as a waiter: that is the common case, and cheaper.
    if self.held() < self.cap && shared_room() {
      return;
    }
    // Stopped: at the cap, the reader waits until JS has taken the connection down to half of it.
    let limit = if self.held() >= self.cap { self.cap / 2 + 1 } else { self.cap };
    loop {
      let own = self.room.notified();
      let all = shared.notified();
      tokio::pin!(own, all);
      own.as_mut().enable();
      all.as_mut().enable();
      if self.held() < limit && shared_room() {
        return;
      }
      tokio::select! {
        _ = own => {}
        _ = all => {}
      }
    }
  }

  fn requests(&self) -> MutexGuard<'_, HashMap<u32, (u32, usize)>> {
    self.requests.lock().unwrap_or_else(|p| p.into_inner())
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn reply(request_id: u32) -> Vec<u8> {
    let mut frame = Vec::new();
    codec::encode_reply(&mut frame, kind::REPLY_JSON, request_id, b"1");
    frame
  }

  #[test]
  fn a_request_stays_held_until_its_reply_is_queued() {
    let inbound = Inbound::new(100);
    inbound.add(40);
    inbound.taken(40, Some(7));
    assert_eq!(inbound.queued(), 0);
    inbound.replied(&reply(8));
    assert_eq!(inbound.held(), 40, "a reply to another request releases nothing");
    let mut frames = Vec::new();
    codec::encode_message(&mut frames, kind::MESSAGE_JSON, "t", b"2");
    frames.extend_from_slice(&reply(7));
    inbound.replied(&frames);
    assert_eq!(inbound.held(), 0);
    inbound.replied(&reply(7));
    assert_eq!(inbound.held(), 0, "a second reply to the same id releases nothing more");
  }

  #[test]
  fn a_reused_request_id_is_released_once_per_reply() {
    let inbound = Inbound::new(100);
    inbound.add(30);
    inbound.taken(10, Some(1));
    inbound.taken(20, Some(1));
    inbound.replied(&reply(1));
    assert_eq!(inbound.held(), 15);
    inbound.replied(&reply(1));
    assert_eq!(inbound.held(), 0);
  }

  #[tokio::test]
  async fn a_reader_stopped_at_the_cap_resumes_once_js_took_it_down_to_half() {
    let inbound = std::sync::Arc::new(Inbound::new(10));
    inbound.add(12);
    let shared = std::sync::Arc::new(Notify::new());
    let waiter = tokio::spawn({
      let (inbound, shared) = (inbound.clone(), shared.clone());
      async move { inbound.wait_for_room(&shared, || true).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "at the cap the reader waits");
    inbound.release(5);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "below the cap but above half of it: still waiting");
    inbound.release(2);
    tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
      .await
      .expect("down to half the cap: the reader goes on")
      .unwrap();
  }
}
