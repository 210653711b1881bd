//! The listening side: binds the socket file (reclaiming a stale one), accepts connections, routes
//! outgoing messages to them, and on close flushes, ends every connection and removes the file.

use crate::codec;
use crate::connection::{self, Conn, HandshakeFailure, Heartbeat, Link, Outbox};
use crate::error::IpcError;
use crate::events::{kind, EventQueue};
use crate::socket_file::{bind_reclaiming, SocketFile};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (EMFILE and the like) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Target of a record in `Server::send` meaning "every connected client".
pub const BROADCAST: u32 = 0;

#[derive(Debug, Clone)]
pub struct ServerOptions {
  pub path: String,
  pub max_message_size: usize,
  pub handshake_timeout: Duration,
  pub heartbeat: Option<Heartbeat>,
  /// Connections past this are refused in the hello (`ERR_IPC_SERVER_FULL` on the client).
  pub max_connections: Option<usize>,
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
  /// Connections admitted and not yet ended, counted in the hello so that racing hellos cannot
  /// together pass `max_connections`.
  admitted: AtomicUsize,
  shutdown: CancellationToken,
  /// The socket file we created, so we never unlink someone else's.
  socket_file: SocketFile,
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
      admitted: AtomicUsize::new(0),
      shutdown: CancellationToken::new(),
      socket_file: SocketFile::default(),
    });
    tokio::spawn(serve(shared.clone()));
    Server { shared }
  }

  /// Queues messages encoded by JS: records of `target: u32 BE | wire frame`.
  /// Messages for clients that are gone come back as `ERR_IPC_UNKNOWN_CLIENT` events; requests
  /// and replies for them are dropped quietly (their requester learns of it by its own promise).
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
        } else if connection::count_messages(frames) > 0 {
          // Only lost messages are news: a request or reply to a departed client already fails
          // (or was already failed) on its own promise, as ERR_IPC_DISCONNECTED.
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
    if !known && connection::count_messages(head) > 0 {
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
    self.shared.socket_file.remove();
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
    shared.socket_file.claim(&shared.options.path);
    shared.events.push(kind::LISTENING, 0, b"");
    accept_until_shutdown(&shared, listener).await;
  }
  shared.socket_file.remove();
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
  let mut counted = false;
  let hello = conn
    .accept_hello(shared.options.handshake_timeout, &shared.shutdown, || {
      let before = shared.admitted.fetch_add(1, Ordering::AcqRel);
      counted = true;
      match shared.options.max_connections {
        Some(max) if before >= max => Some(format!(
          "{}: it already has {max} connections (maxConnections)",
          codec::SERVER_FULL
        )),
        _ => None,
      }
    })
    .await;
  let _release = Release(counted.then_some(&shared.admitted));
  match hello {
    Ok(()) => {}
    Err(HandshakeFailure::Silent | HandshakeFailure::Shutdown) => return,
    Err(HandshakeFailure::Error(e)) => {
      shared.events.push_error(kind::MESSAGE_ERROR, id, &e);
      return;
    }
  }
  let outbox = Arc::new(Outbox::default());
  shared.clients().insert(id, outbox.clone());
  shared.events.push(kind::CONNECTION, id, &conn.peer_credentials());
  let link = Link {
    id,
    events: &shared.events,
    outbox: &outbox,
    max_message_size: shared.options.max_message_size,
    shutdown: &shared.shutdown,
    heartbeat: shared.options.heartbeat,
  };
  let end = connection::run(conn, link).await;
  shared.clients().remove(&id);
  connection::report_end(&shared.events, kind::CONNECTION_CLOSE, id, &end);
}

/// Gives a connection's place back when it ends, however it ends.
struct Release<'a>(Option<&'a AtomicUsize>);

impl Drop for Release<'_> {
  fn drop(&mut self) {
    if let Some(count) = self.0 {
      count.fetch_sub(1, Ordering::AcqRel);
    }
  }
}
