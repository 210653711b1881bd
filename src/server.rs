//! The listening side: binds (reclaiming a stale socket file), accepts connections, decides who
//! may stay (secret, `allow`, `maxConnections`), routes outgoing messages to them, and on close
//! flushes, ends every connection and removes the file.

use crate::codec;
use crate::connection::{self, Heartbeat, Link, Outbox};
use crate::error::IpcError;
use crate::events::{kind, EventQueue};
use crate::handshake::{bounded, Conn, Refusal, ServerSecurity};
use crate::socket_file::SocketFile;
use crate::transport::{self, Endpoint, Listener, PeerInfo, Socket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (EMFILE and the like) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Target of a record in `Server::send` meaning "every connected client".
pub const BROADCAST: u32 = 0;
/// A target with this bit set is a broadcast to the clients whose id is at most the rest: the
/// ones JS had announced as connected when `broadcast()` was called. A client whose hello
/// completes between that call and the end of the tick never receives what was said before it
/// was known. (Ids therefore stay below 2^31.)
pub const BROADCAST_UP_TO: u32 = 0x8000_0000;

#[derive(Debug, Clone)]
pub struct ServerOptions {
  pub endpoint: Endpoint,
  /// Permissions of the socket file, set before anyone can connect.
  pub mode: Option<u32>,
  pub max_message_size: usize,
  pub handshake_timeout: Duration,
  pub heartbeat: Option<Heartbeat>,
  pub frame_timeout: Option<Duration>,
  /// Connections past this are refused in the hello (`ERR_IPC_SERVER_FULL` on the client).
  pub max_connections: Option<usize>,
  pub allow: Allow,
}

/// Who may connect, checked after the secret and before `CONNECTION`.
#[derive(Debug, Clone, Default)]
pub struct Allow {
  /// Unix peers whose uid is in the first list or gid in the second (`allow: { uids, gids }`).
  pub ids: Option<(Vec<u32>, Vec<u32>)>,
  /// Ask JS (`allow: (info) => boolean`) with an `ADMIT` event; answered by `Server::admit`.
  pub ask: bool,
}

impl Allow {
  fn by_ids(&self, info: &PeerInfo) -> bool {
    match (&self.ids, info.ids()) {
      (None, _) => true,
      (Some((uids, gids)), Some((uid, gid))) => uids.contains(&uid) || gids.contains(&gid),
      (Some(_), None) => false,
    }
  }
}

/// A handle to a running server; clones share it.
#[derive(Clone)]
pub struct Server {
  shared: Arc<Shared>,
}

struct Shared {
  options: ServerOptions,
  security: ServerSecurity,
  events: Arc<EventQueue>,
  /// Connections waiting for the `allow` function's verdict.
  pending: Mutex<HashMap<u32, oneshot::Sender<bool>>>,
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
  pub fn listen(options: ServerOptions, security: ServerSecurity, events: Arc<EventQueue>) -> Server {
    let shared = Arc::new(Shared {
      options,
      security,
      events,
      pending: Mutex::default(),
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
        if target == BROADCAST || target & BROADCAST_UP_TO != 0 {
          let last = if target == BROADCAST { u32::MAX } else { target & !BROADCAST_UP_TO };
          clients.iter().filter(|(id, _)| **id <= last).for_each(|(_, outbox)| {
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
    if target == BROADCAST || target & BROADCAST_UP_TO != 0 {
      let last = if target == BROADCAST { u32::MAX } else { target & !BROADCAST_UP_TO };
      clients.iter().filter(|(id, _)| **id <= last).for_each(|(_, outbox)| {
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

  /// The `allow` function's verdict on a connection announced by an `ADMIT` event.
  pub fn admit(&self, id: u32, allowed: bool) {
    let waiting = self.shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    if let Some(verdict) = waiting {
      let _ = verdict.send(allowed);
    }
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
  let endpoint = &shared.options.endpoint;
  let listener = tokio::select! {
    _ = shared.shutdown.cancelled() => None,
    bound = transport::bind(endpoint, shared.options.mode) => match bound {
      Ok(listener) => Some(listener),
      Err(e) => {
        shared.events.push_error(kind::ERROR, 0, &e);
        shared.events.finish();
        return;
      }
    },
  };
  if let Some(listener) = listener {
    if let Endpoint::Unix(path) = endpoint {
      shared.socket_file.claim(path);
    }
    shared.events.push(kind::LISTENING, 0, &listener.address_json(endpoint));
    accept_until_shutdown(&shared, listener).await;
  }
  shared.socket_file.remove();
  shared.events.push(kind::CLOSE, 0, b"");
  shared.events.finish();
}

async fn accept_until_shutdown(shared: &Arc<Shared>, listener: Listener) {
  let connections = TaskTracker::new();
  loop {
    tokio::select! {
      _ = shared.shutdown.cancelled() => break,
      accepted = listener.accept() => match accepted {
        Ok(stream) => {
          let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
          connections.spawn(serve_connection(shared.clone(), stream, id));
        }
        Err(e) => {
          let e = IpcError::io(e, "accept", &shared.options.endpoint.to_string());
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

async fn serve_connection(shared: Arc<Shared>, stream: Socket, id: u32) {
  let info = stream.peer_info();
  let mut place = Place { count: &shared.admitted, taken: false };
  let handshake = async {
    let mut conn = Conn::accept(stream, &shared.security).await?;
    let refusal = admission(&shared, id, &info, &mut place).await;
    conn.answer(refusal).await?;
    Ok(conn)
  };
  let outcome = bounded(shared.options.handshake_timeout, &shared.shutdown, "client", handshake).await;
  // A verdict still awaited (the handshake timed out first) must not linger.
  shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
  let conn = match outcome {
    Ok(conn) => conn,
    Err(failure) => return failure.report(&shared.events, id, &info),
  };
  let outbox = Arc::new(Outbox::default());
  shared.clients().insert(id, outbox.clone());
  let mut who = Vec::new();
  conn.peer_info().write_json(&mut who);
  shared.events.push(kind::CONNECTION, id, &who);
  let link = Link {
    id,
    events: &shared.events,
    outbox: &outbox,
    max_message_size: shared.options.max_message_size,
    shutdown: &shared.shutdown,
    heartbeat: shared.options.heartbeat,
    frame_timeout: shared.options.frame_timeout,
  };
  let end = connection::run(conn, link).await;
  shared.clients().remove(&id);
  connection::report_end(&shared.events, kind::CONNECTION_CLOSE, id, &end);
}

/// The server's policy on an authenticated client: `allow`, then `maxConnections`.
async fn admission(shared: &Shared, id: u32, info: &PeerInfo, place: &mut Place<'_>) -> Option<Refusal> {
  let not_allowed = |why: &str| Refusal {
    reason: format!("{}: {why}", codec::NOT_ALLOWED),
    report: Some(IpcError::NotAllowed(format!("a client was refused: {why}"))),
  };
  let allow = &shared.options.allow;
  if !allow.by_ids(info) {
    return Some(not_allowed("its uid and gid are not in the server's allow list"));
  }
  if allow.ask {
    let (verdict, answer) = oneshot::channel();
    shared.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, verdict);
    let mut who = Vec::new();
    info.write_json(&mut who);
    shared.events.push(kind::ADMIT, id, &who);
    // A dropped sender (the JS side went away) counts as a refusal.
    if !answer.await.unwrap_or(false) {
      return Some(not_allowed("the server's allow function refused it"));
    }
  }
  let before = place.take();
  match shared.options.max_connections {
    Some(max) if before >= max => Some(Refusal {
      reason: format!("{}: it already has {max} connections (maxConnections)", codec::SERVER_FULL),
      report: None,
    }),
    _ => None,
  }
}

/// A connection's place among `maxConnections`, counted in the hello so that racing hellos cannot
/// together pass the limit, and given back when the connection ends, however it ends.
struct Place<'a> {
  count: &'a AtomicUsize,
  taken: bool,
}

impl Place<'_> {
  /// Takes the place; returns how many were taken before.
  fn take(&mut self) -> usize {
    self.taken = true;
    self.count.fetch_add(1, Ordering::AcqRel)
  }
}

impl Drop for Place<'_> {
  fn drop(&mut self) {
    if self.taken {
      self.count.fetch_sub(1, Ordering::AcqRel);
    }
  }
}
