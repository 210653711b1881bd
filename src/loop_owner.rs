//! The JS thread's side of `loop_reads`: one per Server, Client or Peer on the main thread of
//! Node or Electron on Unix. It watches the owner's connections with libuv poll handles and,
//! after a read, calls the owner's `onEvents` function directly (no threadsafe-function hop).
//! Part of the binding: it holds N-API values, used only on the JS thread.

use crate::events::{deliver_now, EventQueue};
use crate::loop_reads::{self, LoopHost, LoopReads};
use crate::uv::{self, Uv};
use napi::sys;
use std::ffi::c_int;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

pub struct LoopOwner {
  uv: &'static Uv,
  lp: *mut uv::Loop,
  env: sys::napi_env,
  /// The owner's `onEvents`, the function its threadsafe function calls.
  on_events: sys::napi_ref,
  context: sys::napi_async_context,
  events: Weak<EventQueue>,
  /// Connections handed over by the core, to start or stop watching on the next turn.
  adopted: Mutex<Vec<Arc<LoopReads>>>,
  retired: Mutex<Vec<Arc<LoopReads>>>,
  /// The poll handles in use, by connection (`LoopReads` address); a handle's data is its `Watch`.
  handles: Mutex<HashMap<usize, Handle>>,
  closed: AtomicBool,
  /// `call_js` is running: a listener that closes the owner must not free the function and
  /// context the call is using; `close` leaves that to the end of the call.
  calling: AtomicBool,
  release_after_call: AtomicBool,
}

// The raw N-API and libuv pointers are used on the JS thread only; other threads only push to
// `adopted` and `retired`.
unsafe impl Send for LoopOwner {}
unsafe impl Sync for LoopOwner {}

/// Shows nothing: the fields are raw N-API and libuv pointers.
impl std::fmt::Debug for LoopOwner {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str("LoopOwner")
  }
}

struct Handle(*mut uv::Handle);
unsafe impl Send for Handle {}

/// What a poll handle's callback needs.
struct Watch {
  owner: Arc<LoopOwner>,
  reads: Arc<LoopReads>,
}

/// Whether reads may move to the event loop; `NATIVE_SOCKET_IPC_LOOP_READS=0` keeps them on the
/// core's threads (for comparison, or a host whose loop misbehaves).
fn enabled() -> bool {
  !matches!(std::env::var("NATIVE_SOCKET_IPC_LOOP_READS").as_deref(), Ok("0" | "off" | "false"))
}

impl LoopOwner {
  /// An owner for a native object made on `env`'s thread with `on_events`, if that thread is
  /// the main one and its loop can be used.
  pub fn new(env: sys::napi_env, on_events: sys::napi_value, events: &Arc<EventQueue>) -> Option<Arc<Self>> {
    if !enabled() {
      return None;
    }
    let uv = Uv::get()?;
    let mut lp: *mut sys::uv_loop_s = std::ptr::null_mut();
    let ok = unsafe { sys::napi_get_uv_event_loop(env, &mut lp) } == sys::Status::napi_ok;
    // Worker threads keep the core's reads: their loops end with the worker.
    if !ok || lp.is_null() || lp as *mut uv::Loop != uv.default_loop() {
      return None;
    }
    // The loop's turns are counted from the first owner on (see `loop_reads::watchdog`).
    static TURNS: OnceLock<bool> = OnceLock::new();
    let watching = *TURNS.get_or_init(|| unsafe { uv.watch_turns(lp as *mut uv::Loop, before_poll, after_poll) });
    if !watching {
      return None;
    }
    let mut on_events_ref = std::ptr::null_mut();
    let mut context = std::ptr::null_mut();
    unsafe {
      if sys::napi_create_reference(env, on_events, 1, &mut on_events_ref) != sys::Status::napi_ok {
        return None;
      }
      let mut resource = std::ptr::null_mut();
      let mut name = std::ptr::null_mut();
      let label = "NativeSocketIpcRead";
      sys::napi_create_object(env, &mut resource);
      sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name);
      if sys::napi_async_init(env, resource, name, &mut context) != sys::Status::napi_ok {
        sys::napi_delete_reference(env, on_events_ref);
        return None;
      }
    }
    let owner = Arc::new(LoopOwner {
      uv,
      lp: lp as *mut uv::Loop,
      env,
      on_events: on_events_ref,
      context,
      events: Arc::downgrade(events),
      adopted: Mutex::default(),
      retired: Mutex::default(),
      handles: Mutex::default(),
      closed: AtomicBool::new(false),
      calling: AtomicBool::new(false),
      release_after_call: AtomicBool::new(false),
    });
    Some(owner)
  }

  /// On the JS thread, when JS takes events: starts watching the connections the core handed
  /// over (reading what they already hold) and stops watching those that ended. Returns whether
  /// that queued records for JS (without waking it: the caller takes them).
  pub fn service(self: &Arc<Self>) -> bool {
    let mut queued = false;
    let retired = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|p| p.into_inner()));
    for reads in retired {
      self.unwatch_reads(&reads);
    }
    let adopted = std::mem::take(&mut *self.adopted.lock().unwrap_or_else(|p| p.into_inner()));
    for reads in adopted {
      if self.closed.load(Ordering::Acquire) || !reads.start() {
        continue;
      }
      // Given back after a takeover, the connection may still have its handle: libuv allows
      // one poll handle per socket.
      let handle = match self.handle_of(&reads) {
        Some(handle) => handle,
        None => {
          let watch = Box::into_raw(Box::new(Watch { owner: self.clone(), reads: reads.clone() }));
          match unsafe { self.uv.poll_readable(self.lp, reads.fd() as c_int, watch.cast(), on_readable) } {
            Some(handle) => {
              self.handles.lock().unwrap_or_else(|p| p.into_inner()).insert(key(&reads), Handle(handle));
              handle
            }
            None => {
              drop(unsafe { Box::from_raw(watch) });
              reads.decline();
              continue;
            }
          }
        }
      };
      // Bytes that came with the hello (or that the core had read) are framed now; this runs
      // inside takeEvents, which takes whatever it queues.
      let (keep, held_back) = deliver_now(|| reads.read_ready());
      queued |= held_back;
      if !keep {
        self.close_handle(handle);
      }
    }
    queued
  }

  fn handle_of(&self, reads: &Arc<LoopReads>) -> Option<*mut uv::Handle> {
    self.handles.lock().unwrap_or_else(|p| p.into_inner()).get(&key(reads)).map(|h| h.0)
  }

  /// Stops watching `reads`' socket, if a handle still watches it.
  fn unwatch_reads(&self, reads: &Arc<LoopReads>) {
    if let Some(handle) = self.handle_of(reads) {
      self.close_handle(handle);
    }
  }

  /// Closes a poll handle and frees its `Watch` (its callback never runs again).
  fn close_handle(&self, handle: *mut uv::Handle) {
    let watch = unsafe { Box::from_raw(Uv::data(handle) as *mut Watch) };
    self.handles.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(&watch.reads));
    watch.reads.unwatched();
    unsafe { self.uv.close_poll(handle) };
  }

  /// Hands the queued records to JS, as the threadsafe function would, from the loop's callback.
  fn call_js(&self) {
    let env = self.env;
    unsafe {
      let mut scope = std::ptr::null_mut();
      if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
        return;
      }
      let mut func = std::ptr::null_mut();
      let mut recv = std::ptr::null_mut();
      sys::napi_get_reference_value(env, self.on_events, &mut func);
      // make_callback wants an object as `this` (the function ignores it).
      sys::napi_get_global(env, &mut recv);
      if !func.is_null() {
        let mut result = std::ptr::null_mut();
        // make_callback runs the microtasks and nextTicks after it, as for any I/O callback.
        self.calling.store(true, Ordering::Release);
        let status = sys::napi_make_callback(env, self.context, recv, func, 0, std::ptr::null(), &mut result);
        self.calling.store(false, Ordering::Release);
        if status == sys::Status::napi_pending_exception {
          // A listener threw: uncaught, as from any EventEmitter.
          let mut error = std::ptr::null_mut();
          sys::napi_get_and_clear_last_exception(env, &mut error);
          sys::napi_fatal_exception(env, error);
        }
      }
      sys::napi_close_handle_scope(env, scope);
    }
    if self.release_after_call.swap(false, Ordering::AcqRel) {
      self.release_napi();
    }
  }

  /// The owner closed, or its environment is going away (on the JS thread): stop watching
  /// everything and release the N-API values.
  pub fn close(&self) {
    if self.closed.swap(true, Ordering::AcqRel) {
      return;
    }
    let handles: Vec<*mut uv::Handle> = self.handles.lock().unwrap_or_else(|p| p.into_inner()).values().map(|h| h.0).collect();
    for handle in handles {
      self.close_handle(handle);
    }
    self.adopted.lock().unwrap_or_else(|p| p.into_inner()).clear();
    self.retired.lock().unwrap_or_else(|p| p.into_inner()).clear();
    if self.calling.load(Ordering::Acquire) {
      self.release_after_call.store(true, Ordering::Release);
    } else {
      self.release_napi();
    }
  }

  fn release_napi(&self) {
    unsafe {
      sys::napi_async_destroy(self.env, self.context);
      sys::napi_delete_reference(self.env, self.on_events);
    }
  }

  fn wake_js(&self) {
    if let Some(events) = self.events.upgrade() {
      events.nudge();
    }
  }
}

impl LoopHost for LoopOwner {
  fn adopt(&self, reads: Arc<LoopReads>) {
    self.adopted.lock().unwrap_or_else(|p| p.into_inner()).push(reads);
    self.wake_js();
  }

  fn retire(&self, reads: Arc<LoopReads>) {
    self.retired.lock().unwrap_or_else(|p| p.into_inner()).push(reads);
    self.wake_js();
  }
}

fn key(reads: &Arc<LoopReads>) -> usize {
  Arc::as_ptr(reads) as usize
}

unsafe extern "C" fn on_readable(handle: *mut uv::Handle, _status: c_int, _events: c_int) {
  // An error status is read as the socket's error by `read_ready`.
  let watch = unsafe { &*(Uv::data(handle) as *const Watch) };
  let owner = watch.owner.clone();
  let (keep, held_back) = deliver_now(|| watch.reads.read_ready());
  if !keep {
    owner.close_handle(handle);
  }
  if held_back {
    owner.call_js();
  }
}

unsafe extern "C" fn before_poll(_: *mut uv::Handle) {}

unsafe extern "C" fn after_poll(_: *mut uv::Handle) {
  loop_reads::turned();
}
