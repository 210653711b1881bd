//! A Unix-domain or TCP socket that is registered with tokio only while a task of ours waits on
//! it. While the JS thread's event loop reads it (`loop_reads`), tokio must not be watching: each
//! byte that arrived would wake a core thread for nothing, the very context switch the loop's
//! reads are there to save. The writer registers when the socket's buffer is full and lets go
//! once it has caught up; a takeover by the core registers for good.

use bytes::BufMut;
use socket2::SockRef;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

#[derive(Debug)]
pub enum Stream {
  Unix(std::os::unix::net::UnixStream),
  Tcp(std::net::TcpStream),
}

/// The fd, for tokio's registration (which does not own it).
#[derive(Debug)]
struct Fd(RawFd);

impl AsRawFd for Fd {
  fn as_raw_fd(&self) -> RawFd {
    self.0
  }
}

/// tokio's registration of the fd: the one in use, and a weak one to a registration a waiting
/// future may still hold.
type Registration = (Option<Arc<AsyncFd<Fd>>>, Weak<AsyncFd<Fd>>);

#[derive(Debug)]
pub struct Polled {
  stream: Stream,
  /// The registration in use, and a weak one so that a future still holding it is reused
  /// instead of registering the fd twice (which epoll refuses).
  reg: Mutex<Registration>,
  /// The event loop reads this socket: tokio lets go of it whenever nobody waits.
  loop_reads: AtomicBool,
}

impl Polled {
  pub fn new(stream: Stream) -> Self {
    Polled {
      stream,
      reg: Mutex::new((None, Weak::new())),
      loop_reads: AtomicBool::new(false),
    }
  }

  pub fn fd(&self) -> RawFd {
    match &self.stream {
      Stream::Unix(s) => s.as_raw_fd(),
      Stream::Tcp(s) => s.as_raw_fd(),
    }
  }

  fn sock(&self) -> SockRef<'_> {
    match &self.stream {
      Stream::Unix(s) => SockRef::from(s),
      Stream::Tcp(s) => SockRef::from(s),
    }
  }

  fn registration(&self) -> io::Result<Arc<AsyncFd<Fd>>> {
    let mut reg = self.reg.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = &reg.0 {
      return Ok(r.clone());
    }
    let r = match reg.1.upgrade() {
      Some(r) => r,
      // SAFETY: the fd is ours and stays open while `self` lives; every registration is used
      // within `&self` methods, so none outlives it.
      None => Arc::new(unsafe { AsyncFd::register_with_interest(Fd(self.fd()), Interest::READABLE | Interest::WRITABLE) }?),
    };
    reg.0 = Some(r.clone());
    reg.1 = Arc::downgrade(&r);
    Ok(r)
  }

  /// The event loop reads from now on (`true`), or the core does (`false`).
  pub fn set_loop_reads(&self, on: bool) {
    self.loop_reads.store(on, Ordering::Release);
    if on {
      self.let_go();
    }
  }

  /// Nobody of ours waits: while the loop reads, tokio stops watching (once the last waiter is done).
  pub fn let_go(&self) {
    if self.loop_reads.load(Ordering::Acquire) {
      self.reg.lock().unwrap_or_else(|p| p.into_inner()).0 = None;
    }
  }

  /// Returns once input (or an EOF, or an error) is waiting.
  pub async fn readable(&self) -> io::Result<()> {
    self.ready(Interest::READABLE, libc_poll::POLLIN).await
  }

  /// Returns once there is room to write (or an error).
  pub async fn writable(&self) -> io::Result<()> {
    self.ready(Interest::WRITABLE, libc_poll::POLLOUT).await
  }

  /// tokio's readiness is only a hint here (the event loop may have read the socket since), so
  /// it is checked with poll(2) before it is believed.
  async fn ready(&self, interest: Interest, event: i16) -> io::Result<()> {
    let reg = self.registration()?;
    loop {
      let mut guard = reg.ready(interest).await?;
      if ready(self.fd(), event) {
        guard.retain_ready();
        return Ok(());
      }
      guard.clear_ready();
    }
  }

  pub fn try_read_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
    let chunk = buf.chunk_mut();
    // SAFETY: recv writes at most `len` initialised bytes into the chunk, and we advance by that.
    let room = unsafe { std::slice::from_raw_parts_mut(chunk.as_mut_ptr() as *mut std::mem::MaybeUninit<u8>, chunk.len()) };
    let n = self.sock().recv(room)?;
    unsafe { buf.advance_mut(n) };
    Ok(n)
  }

  pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
    // send(2) with MSG_NOSIGNAL: a peer that is gone is an error, not a SIGPIPE.
    self.sock().send(bytes)
  }

  pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
    self.sock().shutdown(how)
  }

  pub fn has_input(&self) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    self.sock().peek(&mut byte).is_ok()
  }
}

/// poll(2) with no wait: whether `events` hold for `fd` now (an error or hang-up counts).
fn ready(fd: RawFd, events: i16) -> bool {
  let mut pfd = libc_poll::PollFd { fd, events, revents: 0 };
  let n = unsafe { libc_poll::poll(&mut pfd, 1, 0) };
  n != 0
}

/// The few poll(2) definitions needed (the same on Linux and macOS).
pub(crate) mod libc_poll {
  use std::ffi::c_int;
  pub const POLLIN: i16 = 0x1;
  pub const POLLOUT: i16 = 0x4;
  pub const POLLERR: i16 = 0x8;
  pub const POLLHUP: i16 = 0x10;
  #[repr(C)]
  pub struct PollFd {
    pub fd: c_int,
    pub events: i16,
    pub revents: i16,
  }
  extern "C" {
    #[cfg(target_os = "macos")]
    pub fn poll(fds: *mut PollFd, nfds: std::ffi::c_uint, timeout: c_int) -> c_int;
    #[cfg(not(target_os = "macos"))]
    pub fn poll(fds: *mut PollFd, nfds: std::ffi::c_ulong, timeout: c_int) -> c_int;
  }
}
