//! Node's own libuv, found at run time in the process that loaded us.
//!
//! Node and Electron export libuv's symbols; we look them up with `dlsym` instead of linking to
//! them, so the addon still loads in a host without libuv (Bun, Deno) or in `cargo test`, where
//! `Uv::get()` is `None` and connections are read by the core's own threads as before.
//!
//! Only what `loop_reads` needs: poll handles (one per connection whose reads the event loop
//! drives) and a prepare/check pair that tells whether the loop is waiting for I/O or busy.
//! Every call here must be made on the loop's own thread.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

pub type Loop = c_void;
pub type Handle = c_void;
pub type PollCb = unsafe extern "C" fn(handle: *mut Handle, status: c_int, events: c_int);
pub type CloseCb = unsafe extern "C" fn(handle: *mut Handle);
pub type HookCb = unsafe extern "C" fn(handle: *mut Handle);

/// `uv_handle_type` values (uv.h; stable across libuv 1.x).
const UV_CHECK: c_int = 2;
const UV_POLL: c_int = 8;
const UV_PREPARE: c_int = 9;
/// `uv_poll_event`.
pub const UV_READABLE: c_int = 1;

#[allow(non_snake_case)]
pub struct Uv {
  default_loop: unsafe extern "C" fn() -> *mut Loop,
  handle_size: unsafe extern "C" fn(c_int) -> usize,
  poll_init: unsafe extern "C" fn(*mut Loop, *mut Handle, c_int) -> c_int,
  poll_start: unsafe extern "C" fn(*mut Handle, c_int, PollCb) -> c_int,
  poll_stop: unsafe extern "C" fn(*mut Handle) -> c_int,
  prepare_init: unsafe extern "C" fn(*mut Loop, *mut Handle) -> c_int,
  prepare_start: unsafe extern "C" fn(*mut Handle, HookCb) -> c_int,
  check_init: unsafe extern "C" fn(*mut Loop, *mut Handle) -> c_int,
  check_start: unsafe extern "C" fn(*mut Handle, HookCb) -> c_int,
  close: unsafe extern "C" fn(*mut Handle, Option<CloseCb>),
  unref: unsafe extern "C" fn(*mut Handle),
}

extern "C" {
  fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `RTLD_DEFAULT`: search every object loaded into the process.
#[cfg(target_os = "macos")]
const RTLD_DEFAULT: *mut c_void = -2isize as *mut c_void;
#[cfg(not(target_os = "macos"))]
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

fn find(name: &CStr) -> Option<*mut c_void> {
  let found = unsafe { dlsym(RTLD_DEFAULT, name.as_ptr()) };
  (!found.is_null()).then_some(found)
}

macro_rules! symbol {
  ($name:literal as $ty:ty) => {
    // SAFETY: the symbol is libuv's function of that name, whose C signature `$ty` states.
    unsafe { std::mem::transmute::<*mut c_void, $ty>(find($name)?) }
  };
}

impl Uv {
  /// libuv, if the host process exports it.
  pub fn get() -> Option<&'static Uv> {
    static UV: OnceLock<Option<Uv>> = OnceLock::new();
    UV.get_or_init(Self::load).as_ref()
  }

  fn load() -> Option<Uv> {
    Some(Uv {
      default_loop: symbol!(c"uv_default_loop" as unsafe extern "C" fn() -> *mut Loop),
      handle_size: symbol!(c"uv_handle_size" as unsafe extern "C" fn(c_int) -> usize),
      poll_init: symbol!(c"uv_poll_init" as unsafe extern "C" fn(*mut Loop, *mut Handle, c_int) -> c_int),
      poll_start: symbol!(c"uv_poll_start" as unsafe extern "C" fn(*mut Handle, c_int, PollCb) -> c_int),
      poll_stop: symbol!(c"uv_poll_stop" as unsafe extern "C" fn(*mut Handle) -> c_int),
      prepare_init: symbol!(c"uv_prepare_init" as unsafe extern "C" fn(*mut Loop, *mut Handle) -> c_int),
      prepare_start: symbol!(c"uv_prepare_start" as unsafe extern "C" fn(*mut Handle, HookCb) -> c_int),
      check_init: symbol!(c"uv_check_init" as unsafe extern "C" fn(*mut Loop, *mut Handle) -> c_int),
      check_start: symbol!(c"uv_check_start" as unsafe extern "C" fn(*mut Handle, HookCb) -> c_int),
      close: symbol!(c"uv_close" as unsafe extern "C" fn(*mut Handle, Option<CloseCb>)),
      unref: symbol!(c"uv_unref" as unsafe extern "C" fn(*mut Handle)),
    })
  }

  /// The main thread's loop (a worker thread has a loop of its own).
  pub fn default_loop(&self) -> *mut Loop {
    unsafe { (self.default_loop)() }
  }

  /// Memory for a handle of `kind`, its first field (`data`) set; freed by `free_handle`.
  fn alloc_handle(&self, kind: c_int, data: *mut c_void) -> *mut Handle {
    let size = unsafe { (self.handle_size)(kind) };
    // u64 words: every handle's alignment is at most that of a pointer or a u64.
    let words = size.div_ceil(8).max(1);
    let memory = Box::into_raw(vec![0u64; words].into_boxed_slice()) as *mut u64 as *mut Handle;
    unsafe { *(memory as *mut *mut c_void) = data };
    memory
  }

  /// # Safety
  /// `handle` came from `alloc_handle(kind, …)` and libuv is done with it (closed).
  unsafe fn free_handle(&self, kind: c_int, handle: *mut Handle) {
    let words = unsafe { (self.handle_size)(kind) }.div_ceil(8).max(1);
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(handle as *mut u64, words)) });
  }

  /// The `data` pointer a handle was made with.
  ///
  /// # Safety
  /// `handle` is a live handle made here.
  pub unsafe fn data(handle: *mut Handle) -> *mut c_void {
    unsafe { *(handle as *mut *mut c_void) }
  }

  /// Starts watching `fd` for input; `on_ready` runs on the loop's thread. The handle does not
  /// keep the loop alive (the owner's threadsafe function decides that, as before).
  ///
  /// # Safety
  /// `lp` is the running loop of the calling thread.
  pub unsafe fn poll_readable(&self, lp: *mut Loop, fd: c_int, data: *mut c_void, on_ready: PollCb) -> Option<*mut Handle> {
    let handle = self.alloc_handle(UV_POLL, data);
    unsafe {
      if (self.poll_init)(lp, handle, fd) != 0 {
        self.free_handle(UV_POLL, handle);
        return None;
      }
      (self.unref)(handle);
      if (self.poll_start)(handle, UV_READABLE, on_ready) != 0 {
        (self.close)(handle, Some(free_poll));
        return None;
      }
    }
    Some(handle)
  }

  /// Stops watching and frees the handle once libuv lets go of it; `data` is the caller's to free.
  ///
  /// # Safety
  /// `handle` came from `poll_readable` and was not closed yet.
  pub unsafe fn close_poll(&self, handle: *mut Handle) {
    unsafe {
      (self.poll_stop)(handle);
      (self.close)(handle, Some(free_poll));
    }
  }

  /// Runs `before_poll` each time the loop is about to wait for I/O and `after_poll` each time
  /// it stops waiting. The handles last as long as the process and keep no loop alive.
  ///
  /// # Safety
  /// `lp` is the running loop of the calling thread.
  pub unsafe fn watch_turns(&self, lp: *mut Loop, before_poll: HookCb, after_poll: HookCb) -> bool {
    let prepare = self.alloc_handle(UV_PREPARE, std::ptr::null_mut());
    let check = self.alloc_handle(UV_CHECK, std::ptr::null_mut());
    unsafe {
      let ok = (self.prepare_init)(lp, prepare) == 0
        && (self.check_init)(lp, check) == 0
        && (self.prepare_start)(prepare, before_poll) == 0
        && (self.check_start)(check, after_poll) == 0;
      (self.unref)(prepare);
      (self.unref)(check);
      ok
    }
  }
}

unsafe extern "C" fn free_poll(handle: *mut Handle) {
  if let Some(uv) = Uv::get() {
    unsafe { uv.free_handle(UV_POLL, handle) };
  }
}
