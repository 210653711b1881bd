//! The listening side: binds the socket file (reclaiming a stale one), accepts connections, routes
//! outgoing messages to them, and on close flushes, ends every connection and removes the file.

use crate::connection::{self, Conn, Ended, HandshakeFailure, Link, Outbox};
use crate::error::IpcError;
use crate::events::{kind, EventQueue};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the stale-socket probe waits for a live server to accept.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed accept (EMFILE and the like) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Target of a record in `Server::send` meaning "every connected client".
pub const BROADCAST: u32 = 0;

#[derive(Debug, Clone)]
pub struct ServerOptions {
  pub path: String,
  pub max_message_size: usize,
  pub handshake_timeout: Duration,
}

/// A handle to a running server; clones share it.
#[derive(Clone)]
pub struct Server {
  shared: Arc<Shared>,
}

struct Shared {
  options: ServerOptions,
  events: Arc<EventQueue>,
  clients: Mutex<HashMap<u32, Arc<Outbox>>>,
  /// Client ids start at 1 and are never reused (0 is `BROADCAST`).
  next_id: AtomicU32,
  shutdown: CancellationToken,
  /// Identity of the socket file we created, so we never unlink someone else's.
  socket_file: Mutex<Option<(u64, u64)>>,
}

impl Server {
  /// Starts binding and serving on the current tokio runtime. The outcome arrives as events:
  /// `LISTENING`, or an `ERROR` after which the queue is finished.
  pub fn listen(options: ServerOptions, events: Arc<EventQueue>) -> Server {
    let shared = Arc::new(Shared {
      options,
      events,
      clients: Mutex::default(),
      next_id: AtomicU32::new(1),
      shutdown: CancellationToken::new(),
      socket_file: Mutex::default(),
    });
    tokio::spawn(serve(shared.clone()));
    Server { shared }
  }

  /// Queues messages encoded by JS: records of `target: u32 BE | wire frame`.
  /// Frames for clients that are gone come back as `ERR_IPC_UNKNOWN_CLIENT` events.
  pub fn send(&self, mut records: &[u8]) {
    let mut unknown = Vec::new();
    let mut run = Vec::new();
    {
      let clients = self.shared.clients();
      while let Some((target, first, rest)) = split_record(records) {
        records = rest;
        // Consecutive frames for the same target go to each outbox in one append: one lock, and
        // one write (or one direct write) per connection, not one per frame.
        let mut frames = first;
        if matches!(split_record(records), Some((next, ..)) if next == target) {
          run.clear();
          run.extend_from_slice(first);
          while let Some((_, frame, rest)) = split_record(records).filter(|r| r.0 == target) {
            run.extend_from_slice(frame);
            records = rest;
          }
          frames = &run;
        }
        if target == BROADCAST {
          clients.values().for_each(|outbox| {
            outbox.append(frames);
          });
        } else if let Some(outbox) = clients.get(&target) {
          outbox.append(frames);
        } else {
          unknown.push(target);
        }
      }
    }
    for id in unknown {
      self
        .shared
        .events
        .push_error(kind::ERROR, id, &IpcError::UnknownClient(id));
    }
  }

  /// Queues one large frame (`head` then `payload`, copied once into a shared piece) for a client,
  /// or for every client when `target` is `BROADCAST`.
  pub fn send_piece(&self, target: u32, head: &[u8], payload: &[u8]) {
    let piece = crate::connection::piece(head, payload);
    let clients = self.shared.clients();
    if target == BROADCAST {
      clients.values().for_each(|outbox| {
        outbox.append_piece(piece.clone());
      });
      return;
    }
    let known = clients.get(&target).map(|outbox| outbox.append_piece(piece)).is_some();
    drop(clients);
    if !known {
      self
        .shared
        .events
        .push_error(kind::ERROR, target, &IpcError::UnknownClient(target));
    }
  }

  /// Graceful close: stop accepting, flush and end every connection, remove the socket file,
  /// then the `CLOSE` event.
  pub fn close(&self) {
    self.shared.shutdown.cancel();
  }

  /// For when the JS environment is going away (worker terminated): close, and remove the
  /// socket file now rather than when the background task gets to it.
  pub fn abandon(&self) {
    self.close();
    self.shared.remove_socket_file();
  }

  pub fn client_count(&self) -> usize {
    self.shared.clients().len()
  }
}

fn split_record(records: &[u8]) -> Option<(u32, &[u8], &[u8])> {
  let target = u32::from_be_bytes(records.get(..4)?.try_into().unwrap());
  let len = u32::from_be_bytes(records.get(4..8)?.try_into().unwrap()) as usize;
  let frame = records.get(4..8 + len)?;
  Some((target, frame, &records[8 + len..]))
}

impl Shared {
  fn clients(&self) -> MutexGuard<'_, HashMap<u32, Arc<Outbox>>> {
    self.clients.lock().unwrap_or_else(|p| p.into_inner())
  }

  fn remove_socket_file(&self) {
    let Some((dev, ino)) = self.socket_file.lock().unwrap_or_else(|p| p.into_inner()).take() else {
      return;
    };
    let path = &self.options.path;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
      let _ = std::fs::remove_file(path);
    }
  }
}

async fn serve(shared: Arc<Shared>) {
  let listener = tokio::select! {
    _ = shared.shutdown.cancelled() => None,
    bound = bind_reclaiming(&shared.options.path) => match bound {
      Ok(listener) => Some(listener),
      Err(e) => {
        shared.events.push_error(kind::ERROR, 0, &e);
        shared.events.finish();
        return;
      }
    },
  };
  if let Some(listener) = listener {
    if let Ok(m) = std::fs::symlink_metadata(&shared.options.path) {
      *shared.socket_file.lock().unwrap_or_else(|p| p.into_inner()) = Some((m.dev(), m.ino()));
    }
    shared.events.push(kind::LISTENING, 0, b"");
    accept_until_shutdown(&shared, listener).await;
  }
  shared.remove_socket_file();
  shared.events.push(kind::CLOSE, 0, b"");
  shared.events.finish();
}

async fn accept_until_shutdown(shared: &Arc<Shared>, listener: UnixListener) {
  let connections = TaskTracker::new();
  loop {
    tokio::select! {
      _ = shared.shutdown.cancelled() => break,
      accepted = listener.accept() => match accepted {
        Ok((stream, _)) => {
          let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
          connections.spawn(serve_connection(shared.clone(), stream, id));
        }
        Err(e) => {
          let e = IpcError::io(e, "accept", &shared.options.path);
          shared.events.push_error(kind::ERROR, 0, &e);
          tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
      },
    }
  }
  drop(listener);
  connections.close();
  connections.wait().await;
}

async fn serve_connection(shared: Arc<Shared>, stream: UnixStream, id: u32) {
  let mut conn = Conn::new(stream);
  match conn
    .accept_hello(shared.options.handshake_timeout, &shared.shutdown)
    .await
  {
    Ok(()) => {}
    Err(HandshakeFailure::Silent | HandshakeFailure::Shutdown) => return,
    Err(HandshakeFailure::Error(e)) => {
      shared.events.push_error(kind::MESSAGE_ERROR, id, &e);
      return;
    }
  }
  let outbox = Arc::new(Outbox::default());
  shared.clients().insert(id, outbox.clone());
  shared.events.push(kind::CONNECTION, id, b"");
  let link = Link {
    id,
    events: &shared.events,
    outbox: &outbox,
    max_message_size: shared.options.max_message_size,
    shutdown: &shared.shutdown,
  };
  let end = connection::run(conn, link).await;
  shared.clients().remove(&id);
  if let Ended::Failed(e) = end {
    shared.events.push_error(kind::MESSAGE_ERROR, id, &e);
  }
  shared.events.push(kind::CONNECTION_CLOSE, id, b"");
}

/// Binds `path`. An existing socket file is reclaimed only when nothing answers on it; a live
/// server is left alone (the probe connection closes at once, before its hello) and so is any
/// file that is not a socket.
async fn bind_reclaiming(path: &str) -> Result<UnixListener, IpcError> {
  let in_use = match UnixListener::bind(path) {
    Ok(listener) => return Ok(listener),
    Err(e) if e.kind() == io::ErrorKind::AddrInUse => e,
    Err(e) => return Err(IpcError::io(e, "listen", path)),
  };
  // Probe, unlink and bind must not interleave with another process reclaiming the same file,
  // or its unlink could remove the socket we just bound. An flock on the directory serialises
  // reclaimers without leaving a lock file behind.
  let _guard = lock_directory_of(path).await;
  match std::fs::symlink_metadata(path) {
    Ok(m) if m.file_type().is_socket() => {}
    Ok(_) => {
      return Err(
        IpcError::io(in_use, "listen", path).with_detail("the path exists and is not a socket; it was left untouched"),
      )
    }
    // Gone meanwhile (its server closed): take the path.
    Err(e) if e.kind() == io::ErrorKind::NotFound => {
      return UnixListener::bind(path).map_err(|e| IpcError::io(e, "listen", path))
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
      UnixListener::bind(path).map_err(|e| IpcError::io(e, "listen", path))
    }
    Ok(Ok(_probe)) => Err(
      IpcError::io(in_use, "listen", path)
        .with_detail("another server is listening on this socket; it was left undisturbed"),
    ),
    _ => Err(IpcError::io(in_use, "listen", path)),
  }
}

/// Takes an exclusive flock on the socket's directory, released when the returned file drops.
/// Without a directory we can open, reclaiming goes ahead unserialised.
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
