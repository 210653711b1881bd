//! The core's large blocks are mappings of their own (Linux with glibc).
//!
//! glibc serves a large block from its arenas instead of a mapping of its own once a block that
//! size has been freed (its mmap threshold rises to the largest block freed, up to 32 MiB). A
//! flood's growing buffers (coalesced writes for clients that do not read, the queue for JS,
//! reads of big frames) then spread through the arenas, and after the flood they stay resident
//! even after `malloc_trim`. Measured with 200 hostile connections (`bench/flood.js --short
//! --only barrage`, 2 vCPUs): RSS after rest 93–108 MiB through the arenas, 73–93 MiB with the
//! core's blocks of `DIRECT` bytes or more mapped here (baseline 47 MiB, bound 111).
//!
//! A fresh mapping costs a page fault per 4 KiB on first touch, so freed mappings are kept for
//! the next large blocks, up to `CACHE_BYTES`. The cache is sized for a burst: a garbage
//! collection frees many messages' frames at once (bench `large`, 1 MiB messages: with a 32 MiB
//! cache 1,486 MB/s, with 64 MiB 2,406, through glibc's arenas 1,800–1,950). `release_cache`
//! empties it when `trim` gives memory back (connections have stopped ending).
//!
//! Only the core's own allocations come here; Node's and the application's keep glibc's
//! behaviour. Elsewhere (musl, macOS, Windows, and fuzzing builds, whose sanitizer must see
//! every block) the core uses the system allocator directly: those allocators return large
//! blocks by themselves.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Blocks this large or larger are mappings of their own: glibc's initial mmap threshold.
const DIRECT: usize = 128 * 1024;
const PAGE: usize = 4096;

/// The allocator of the core (see the module docs).
pub struct CoreAllocator;

fn direct(layout: &Layout) -> bool {
  layout.size() >= DIRECT && layout.align() <= PAGE
}

fn pages(size: usize) -> usize {
  (size + PAGE - 1) & !(PAGE - 1)
}

mod os {
  use std::os::raw::{c_int, c_long, c_void};
  pub const PROT_READ: c_int = 1;
  pub const PROT_WRITE: c_int = 2;
  pub const MAP_PRIVATE: c_int = 2;
  pub const MAP_ANONYMOUS: c_int = 0x20;
  pub const MREMAP_MAYMOVE: c_int = 1;
  pub const MAP_FAILED: *mut c_void = !0 as *mut c_void;
  extern "C" {
    pub fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: c_long) -> *mut c_void;
    pub fn munmap(addr: *mut c_void, len: usize) -> c_int;
    pub fn mremap(old: *mut c_void, old_len: usize, new_len: usize, flags: c_int, ...) -> *mut c_void;
  }
}

/// Mappings freed lately, kept for the next large blocks (see the module docs).
static CACHE: Mutex<Cache> = Mutex::new(Cache::new());
const CACHE_SLOTS: usize = 64;
const CACHE_BYTES: usize = 64 * 1024 * 1024;

struct Cache {
  /// (address, length) of kept mappings; length 0 marks a free slot.
  maps: [(usize, usize); CACHE_SLOTS],
  bytes: usize,
}

impl Cache {
  const fn new() -> Self {
    Cache { maps: [(0, 0); CACHE_SLOTS], bytes: 0 }
  }

  /// A kept mapping of exactly `len` bytes, else any kept one.
  fn take(&mut self, len: usize) -> Option<(usize, usize)> {
    let slot = self.maps.iter().position(|&(_, l)| l == len).or_else(|| self.maps.iter().position(|&(_, l)| l != 0))?;
    let taken = std::mem::take(&mut self.maps[slot]);
    self.bytes -= taken.1;
    Some(taken)
  }

  /// Keeps a mapping if there is room; false if the caller must unmap it.
  fn keep(&mut self, addr: usize, len: usize) -> bool {
    if self.bytes + len > CACHE_BYTES {
      return false;
    }
    let Some(slot) = self.maps.iter().position(|&(_, l)| l == 0) else { return false };
    self.maps[slot] = (addr, len);
    self.bytes += len;
    true
  }

  fn drain(&mut self) -> [(usize, usize); CACHE_SLOTS] {
    self.bytes = 0;
    std::mem::replace(&mut self.maps, [(0, 0); CACHE_SLOTS])
  }
}

fn cache() -> std::sync::MutexGuard<'static, Cache> {
  CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A kept mapping of `len` bytes: one of that length, else another resized (the kernel moves its
/// pages; those it had stay resident).
fn from_cache(len: usize) -> Option<*mut u8> {
  let (addr, had) = cache().take(len)?;
  if had == len {
    return Some(addr as *mut u8);
  }
  // SAFETY: `addr` is a mapping of `had` bytes that nothing else refers to.
  let p = unsafe { os::mremap(addr as *mut _, had, len, os::MREMAP_MAYMOVE) };
  if p == os::MAP_FAILED {
    unsafe { os::munmap(addr as *mut _, had) };
    return None;
  }
  Some(p.cast())
}

/// Keeps a freed mapping if there is room, else unmaps it.
unsafe fn unmap(ptr: *mut u8, len: usize) {
  if !cache().keep(ptr as usize, len) {
    unsafe { os::munmap(ptr.cast(), len) };
  }
}

/// Gives every kept mapping back to the OS.
pub fn release_cache() {
  let maps = cache().drain();
  for (addr, len) in maps {
    if len != 0 {
      // SAFETY: a kept mapping nothing else refers to.
      unsafe { os::munmap(addr as *mut _, len) };
    }
  }
}

unsafe fn map(size: usize, zeroed: bool) -> *mut u8 {
  let len = pages(size);
  if let Some(p) = from_cache(len) {
    if zeroed {
      unsafe { std::ptr::write_bytes(p, 0, size) };
    }
    return p;
  }
  // SAFETY: an anonymous private mapping touches no existing memory.
  let p = unsafe { os::mmap(std::ptr::null_mut(), len, os::PROT_READ | os::PROT_WRITE, os::MAP_PRIVATE | os::MAP_ANONYMOUS, -1, 0) };
  if p == os::MAP_FAILED {
    std::ptr::null_mut()
  } else {
    p.cast()
  }
}

// SAFETY: every block is either the system allocator's (small) or a mapping of its own (large),
// told apart by its layout, which the caller passes back unchanged on dealloc and realloc.
unsafe impl GlobalAlloc for CoreAllocator {
  unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
    if direct(&layout) {
      unsafe { map(layout.size(), false) }
    } else {
      unsafe { System.alloc(layout) }
    }
  }

  unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
    if direct(&layout) {
      unsafe { map(layout.size(), true) }
    } else {
      unsafe { System.alloc_zeroed(layout) }
    }
  }

  unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
    if direct(&layout) {
      unsafe { unmap(ptr, pages(layout.size())) };
    } else {
      unsafe { System.dealloc(ptr, layout) }
    }
  }

  unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
    match (direct(&layout), direct(&new_layout)) {
      (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
      (true, true) => {
        // The kernel moves the pages; nothing is copied.
        let p = unsafe { os::mremap(ptr.cast(), pages(layout.size()), pages(new_size), os::MREMAP_MAYMOVE) };
        if p == os::MAP_FAILED {
          std::ptr::null_mut()
        } else {
          p.cast()
        }
      }
      _ => {
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
          unsafe {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
          }
        }
        new
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
  }

  #[test]
  fn a_large_block_grows_and_shrinks_across_the_threshold_keeping_its_bytes() {
    let a = CoreAllocator;
    unsafe {
      let small = layout(1000);
      let p = a.alloc(small);
      for i in 0..1000 {
        *p.add(i) = i as u8;
      }
      // small -> large (a new mapping), large -> larger (mremap), larger -> small (back to malloc)
      let p = a.realloc(p, small, DIRECT + 10);
      let p = a.realloc(p, layout(DIRECT + 10), 4 * DIRECT);
      assert!(!p.is_null());
      *p.add(4 * DIRECT - 1) = 7;
      let p = a.realloc(p, layout(4 * DIRECT), 500);
      for i in 0..500 {
        assert_eq!(*p.add(i), i as u8);
      }
      a.dealloc(p, layout(500));
    }
  }

  #[test]
  fn a_zeroed_large_block_is_zero_even_when_it_reuses_a_kept_mapping() {
    let a = CoreAllocator;
    let l = layout(DIRECT * 2);
    unsafe {
      let p = a.alloc(l);
      std::ptr::write_bytes(p, 0xAB, l.size());
      a.dealloc(p, l);
      let q = a.alloc_zeroed(l);
      assert!((0..l.size()).all(|i| *q.add(i) == 0));
      a.dealloc(q, l);
    }
  }

  #[test]
  fn the_cache_prefers_a_mapping_of_the_same_length_and_keeps_at_most_its_budget() {
    let mut c = Cache::new();
    assert!(c.keep(0x10000, 3 * PAGE));
    assert!(c.keep(0x20000, 5 * PAGE));
    assert_eq!(c.take(5 * PAGE), Some((0x20000, 5 * PAGE)));
    assert_eq!(c.take(9 * PAGE), Some((0x10000, 3 * PAGE)), "any kept mapping when none fits exactly");
    assert_eq!(c.take(PAGE), None);
    assert!(c.keep(0x30000, CACHE_BYTES));
    assert!(!c.keep(0x40000, PAGE), "over the budget");
    assert_eq!(c.bytes, CACHE_BYTES);
    assert!(c.drain().contains(&(0x30000, CACHE_BYTES)));
    assert_eq!((c.bytes, c.take(PAGE)), (0, None));
  }
}
