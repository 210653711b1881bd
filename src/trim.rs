//! Gives the memory a burst of connections used back to the OS once they are gone.
//!
//! glibc keeps freed memory in its arenas and hands back to the OS only what lies at the top of
//! each arena's heap. A flood's buffers (reads, writes, events for JS) are taken on several
//! threads and freed in another order, so after the flood most of that memory sits free in the
//! middle of the heaps, and RSS stays near its peak (measured with 200 hostile connections:
//! 155 MiB at rest instead of 95, baseline 47). `malloc_trim` returns those free pages. It runs
//! once connections have stopped ending for a moment (in a server, or in a process that closed
//! many clients), on a blocking thread, so it costs the JS thread nothing and a process whose
//! connections stay up never runs it.
//!
//! musl, macOS and Windows return freed memory by themselves; there it does nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long no connection must have ended before the memory is given back.
const QUIET: Duration = Duration::from_millis(100);

static SCHEDULED: AtomicBool = AtomicBool::new(false);
static LAST_END_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
  static START: OnceLock<Instant> = OnceLock::new();
  START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A connection ended (a server's, a client's or a peer's): once none has ended for `QUIET`, free
/// memory goes back to the OS.
pub fn connection_ended() {
  if !cfg!(all(target_os = "linux", target_env = "gnu")) {
    return;
  }
  LAST_END_MS.store(now_ms(), Ordering::Release);
  if SCHEDULED.swap(true, Ordering::AcqRel) {
    return;
  }
  tokio::spawn(async {
    loop {
      let since = now_ms().saturating_sub(LAST_END_MS.load(Ordering::Acquire));
      if since >= QUIET.as_millis() as u64 {
        break;
      }
      tokio::time::sleep(QUIET - Duration::from_millis(since)).await;
    }
    SCHEDULED.store(false, Ordering::Release);
    let _ = tokio::task::spawn_blocking(give_back).await;
  });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back() {
  extern "C" {
    fn malloc_trim(pad: usize) -> std::os::raw::c_int;
  }
  #[cfg(not(fuzzing))]
  crate::large_alloc::release_cache();
  // SAFETY: malloc_trim takes no pointers and may be called from any thread at any time.
  unsafe {
    malloc_trim(0);
  }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back() {}
