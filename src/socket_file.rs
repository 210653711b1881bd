//! The socket file a listener binds: taken over when a dead server left it behind, never taken
//! from a live one, and removed on close only if it is still the file we created.
//!
//! Unix only. On Windows the local transport is a named pipe, which has no file and vanishes
//! with its server: `SocketFile` there remembers nothing and removes nothing.

#[cfg(unix)]
use crate::error::IpcError;
#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::os::unix::fs::{FileTypeExt, MetadataExt};
#[cfg(unix)]
use std::sync::Mutex;
#[cfg(unix)]
use std::time::Duration;
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};

/// How long the stale-socket probe waits for a live server to accept.
#[cfg(unix)]
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The file a listener was bound to, identified by device and inode.
#[derive(Default)]
pub struct SocketFile {
  #[cfg(unix)]
  bound: Mutex<Option<(String, u64, u64)>>,
}

impl SocketFile {
  /// Remembers the file now at `path` as ours.
  #[cfg(unix)]
  pub fn claim(&self, path: &str) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
      *self.lock() = Some((path.to_owned(), m.dev(), m.ino()));
    }
  }

  #[cfg(not(unix))]
  pub fn claim(&self, _path: &str) {}

  /// Removes the file if it is still the one we bound (a successor may have replaced it).
  #[cfg(unix)]
  pub fn remove(&self) {
    let Some((path, dev, ino)) = self.lock().take() else {
      return;
    };
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
      let _ = std::fs::remove_file(&path);
    }
  }

  #[cfg(not(unix))]
  pub fn remove(&self) {}

  #[cfg(unix)]
  fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, u64, u64)>> {
    self.bound.lock().unwrap_or_else(|p| p.into_inner())
  }
}

/// Binds `path`. An existing socket file is reclaimed only when nothing answers on it; a live
/// server is left alone (the probe connection closes at once, before its hello) and so is any
/// file that is not a socket. `AddrInUse` means a live server holds the path.
#[cfg(unix)]
pub async fn bind_reclaiming(path: &str, mode: Option<u32>) -> Result<UnixListener, IpcError> {
  // bind+listen, and probe+unlink+bind, must not interleave with another process doing the same
  // on this path: between someone's bind and listen a probe is refused and would take the file
  // from a server that is about to be live. An flock on the directory serialises them without
  // leaving a lock file behind.
  let _guard = lock_directory_of(path).await;
  let in_use = match listen_on(path, mode) {
    Ok(listener) => return Ok(listener),
    Err(e) if e.kind() == io::ErrorKind::AddrInUse => e,
    Err(e) => return Err(IpcError::io(e, "listen", path)),
  };
  match std::fs::symlink_metadata(path) {
    Ok(m) if m.file_type().is_socket() => {}
    Ok(_) => {
      return Err(
        IpcError::io(in_use, "listen", path).with_detail("the path exists and is not a socket; it was left untouched"),
      )
    }
    // Gone meanwhile (its server closed): take the path.
    Err(e) if e.kind() == io::ErrorKind::NotFound => {
      return listen_on(path, mode).map_err(|e| IpcError::io(e, "listen", path))
    }
    Err(_) => return Err(IpcError::io(in_use, "listen", path)),
  }
  match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
    Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
      // Nobody listens: a server died without cleaning up.
      match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(IpcError::io(e, "unlink", path)),
      }
      listen_on(path, mode).map_err(|e| IpcError::io(e, "listen", path))
    }
    Ok(Ok(_probe)) => Err(
      IpcError::io(in_use, "listen", path)
        .with_detail("another server is listening on this socket; it was left undisturbed"),
    ),
    _ => Err(IpcError::io(in_use, "listen", path)),
  }
}

/// bind, chmod, listen: between bind and listen a connect is refused, so no client can reach
/// the socket before it has `mode`. (`UnixListener::bind` does both at once, and the process
/// umask, which other threads share, is no place to set a mode.)
#[cfg(unix)]
fn listen_on(path: &str, mode: Option<u32>) -> io::Result<UnixListener> {
  use socket2::{Domain, SockAddr, Socket, Type};
  let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
  socket.bind(&SockAddr::unix(path)?)?;
  if let Some(mode) = mode {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
      let _ = std::fs::remove_file(path);
      return Err(e);
    }
  }
  socket.listen(1024)?;
  socket.set_nonblocking(true)?;
  UnixListener::from_std(std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(socket)))
}

/// Takes an exclusive flock on the socket's directory, released when the returned file drops.
/// Without a directory we can open, binding goes ahead unserialised.
#[cfg(unix)]
async fn lock_directory_of(path: &str) -> Option<std::fs::File> {
  let dir = match std::path::Path::new(path).parent() {
    Some(d) if !d.as_os_str().is_empty() => d,
    _ => std::path::Path::new("."),
  };
  let dir = std::fs::File::open(dir).ok()?;
  loop {
    match dir.try_lock() {
      Ok(()) => return Some(dir),
      Err(std::fs::TryLockError::WouldBlock) => tokio::time::sleep(Duration::from_millis(2)).await,
      Err(std::fs::TryLockError::Error(_)) => return None,
    }
  }
}
