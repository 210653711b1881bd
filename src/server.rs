//! The listening side: binds (reclaiming a stale socket file), accepts connections, decides who
//! may stay (secret, `allow`, `maxConnections`), routes outgoing messages to them, and on close
//! flushes, ends every connection and removes the file.
//!
//! About 610 lines: accepting, admitting, routing and closing share the server's state; split,
//! each part would reach into the others.

use crate::codec;
use crate::connection::{self, Ended, Heartbeat, Limits, Link, Outbox};
use crate::error::IpcError;
use crate::events::{kind, EventQueue};
use crate::inbound::Inbound;
use crate::loop_reads::LoopHost;
use crate::handshake::{bounded, Conn, HandshakeFailure, HelloOptions, Refusal, ServerSecurity};
use crate::session::{self, delivery_name, SessionId, FLAG_AT_LEAST_ONCE, FLAG_RESUMED};
use crate::wire::Wire;
use crate::socket_file::SocketFile;
use crate::transport::{self, Endpoint, Listener, PeerInfo, Socket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, Notify, OwnedMutexGuard};
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
  /// Per client; a client past `max_buffered` is dropped (`Limits::evict` is forced on).
  pub limits: Limits,
  /// `delivery: 'at-least-once'`: sessions that survive reconnects (see `session`).
  pub at_least_once: bool,
  /// How long a session waits for its client to reconnect.
  pub session_timeout: Duration,
  /// `protocol: 'socket-ipc'`: no hello, and the messages of `@crussell52/socket-ipc`.
  pub wire: Wire,
  /// The JS thread's event loop may read the connections (see `loop_reads`).
  pub loop_host: Option<Arc<dyn LoopHost>>,
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
  /// Every client that can be sent to: connected, or (at-least-once) waiting to resume.
  clients: Mutex<HashMap<u32, Arc<Slot>>>,
  /// At-least-once: which client id each session is.
  sessions: Mutex<HashMap<SessionId, u32>>,
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
      sessions: Mutex::default(),
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
  /// Returns `(client, spell)` for each client whose buffer this took past `highWaterMark`.
  pub fn send(&self, mut records: &[u8]) -> Vec<(u32, u32)> {
    let mut unknown = Vec::new();
    let mut over = Vec::new();
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
          clients.iter().filter(|(id, _)| **id <= last).for_each(|(id, slot)| {
            note_over(&mut over, *id, slot.outbox.append(frames));
          });
        } else if let Some(slot) = clients.get(&target) {
          slot.inbound.replied(frames);
          note_over(&mut over, target, slot.outbox.append(frames));
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
    over
  }

  /// Queues one large frame (`head` then `payload`, copied once into a shared piece) for a client,
  /// or for every client when `target` is `BROADCAST`.
  pub fn send_piece(&self, target: u32, head: &[u8], payload: &[u8]) -> Vec<(u32, u32)> {
    let piece = crate::connection::piece(head, payload);
    let clients = self.shared.clients();
    let mut over = Vec::new();
    if target == BROADCAST || target & BROADCAST_UP_TO != 0 {
      let last = if target == BROADCAST { u32::MAX } else { target & !BROADCAST_UP_TO };
      clients.iter().filter(|(id, _)| **id <= last).for_each(|(id, slot)| {
        note_over(&mut over, *id, slot.outbox.append_piece(piece.clone()));
      });
      return over;
    }
    match clients.get(&target) {
      Some(slot) => {
        slot.inbound.replied(head);
        note_over(&mut over, target, slot.outbox.append_piece(piece));
      }
      None => {
        drop(clients);
        if connection::count_messages(head) > 0 {
          self
            .shared
            .events
            .push_error(kind::ERROR, target, &IpcError::UnknownClient(target));
        }
      }
    }
    over
  }

  /// JS handed each client's frames up to the marked count to the listeners.
  pub fn delivered(&self, marks: &[crate::events::Mark]) {
    let clients = self.shared.clients();
    for (id, epoch, count) in marks {
      if let Some(slot) = clients.get(id) {
        slot.outbox.deliver(*epoch, *count);
      }
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
  /// Closes one client's connection as `close` closes them all: what was sent to it goes out
  /// first, then the connection ends and `CONNECTION_CLOSE` follows (with at-least-once, its
  /// session ends too). False if no such client is connected.
  pub fn disconnect(&self, id: u32) -> bool {
    match self.shared.clients().get(&id) {
      Some(slot) => {
        slot.close.cancel();
        true
      }
      None => false,
    }
  }

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

fn note_over(over: &mut Vec<(u32, u32)>, id: u32, appended: connection::Appended) {
  if let Some(spell) = appended.over {
    over.push((id, spell));
  }
}

fn split_record(records: &[u8]) -> Option<(u32, &[u8], &[u8])> {
  let target = u32::from_be_bytes(records.get(..4)?.try_into().unwrap());
  let len = u32::from_be_bytes(records.get(4..8)?.try_into().unwrap()) as usize;
  let frame = records.get(4..8 + len)?;
  Some((target, frame, &records[8 + len..]))
}

impl Shared {
  fn clients(&self) -> MutexGuard<'_, HashMap<u32, Arc<Slot>>> {
    self.clients.lock().unwrap_or_else(|p| p.into_inner())
  }

  fn sessions(&self) -> MutexGuard<'_, HashMap<SessionId, u32>> {
    self.sessions.lock().unwrap_or_else(|p| p.into_inner())
  }

  fn new_slot(&self, session: Option<SessionId>) -> Arc<Slot> {
    Arc::new(Slot {
      outbox: Outbox::new(Limits { evict: true, ..self.options.limits }, session, self.options.wire),
      inbound: Arc::new(Inbound::new(self.options.limits.max_inbound)),
      turn: Arc::default(),
      generation: AtomicU64::new(0),
      ended: AtomicBool::new(false),
      resumed: Notify::new(),
      close: self.shutdown.child_token(),
    })
  }

  /// Forgets a client for good: it can no longer be sent to, nor its session resumed.
  fn forget(&self, id: u32, session: Option<&SessionId>) {
    self.clients().remove(&id);
    self.events.untrack(id);
    if let Some(session) = session {
      let mut sessions = self.sessions();
      if sessions.get(session) == Some(&id) {
        sessions.remove(session);
      }
    }
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
    Listener::released(endpoint).await;
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
          let shared = shared.clone();
          connections.spawn(async move {
            serve_connection(shared, stream, id).await;
            crate::trim::connection_ended();
          });
        }
        Err(e) => {
          let e = IpcError::io(e, "accept", &shared.options.endpoint.to_string());
          shared.events.push_error(kind::ERROR, 0, &e);
          tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
      },
    }
  }
  // Stop answering before anything is reported closed: a successor may bind at once.
  listener.close().await;
  connections.close();
  connections.wait().await;
}

/// One client as the server sends to it: its outbox and, in a session, what lets the client
/// take the session over from a new connection.
struct Slot {
  outbox: Outbox,
  /// What the client's input holds until JS is done with it (see `inbound`).
  inbound: Arc<Inbound>,
  /// Held by the connection serving the session, and by whoever ends it or takes it over.
  turn: Arc<tokio::sync::Mutex<()>>,
  /// Bumped each time a new connection takes the session over.
  generation: AtomicU64,
  /// The session is over: a client naming it starts afresh.
  ended: AtomicBool,
  resumed: Notify,
  /// Cancelled to close this client's connection (`Server::disconnect`), and with the server.
  close: CancellationToken,
}

/// How an accepted connection joins: as a new client, or resuming a client's session.
struct Joined {
  id: u32,
  slot: Arc<Slot>,
  session: Option<SessionId>,
  resumed: bool,
  turn: Option<OwnedMutexGuard<()>>,
  /// In a session: how many of our frames the client has (from its hello).
  peer_received: Option<u64>,
}

impl Joined {
  /// Our hello: in a session, whether it was resumed and how many of the client's frames we have.
  fn hello(&self) -> HelloOptions {
    if self.session.is_none() {
      return HelloOptions::default();
    }
    HelloOptions {
      flags: FLAG_AT_LEAST_ONCE | if self.resumed { FLAG_RESUMED } else { 0 },
      extension: self.slot.outbox.session_received().to_be_bytes().to_vec(),
    }
  }
}

async fn serve_connection(shared: Arc<Shared>, stream: Socket, conn_id: u32) {
  let info = stream.peer_info();
  let mut place = Place { count: &shared.admitted, taken: false };
  let plain = shared.options.wire == Wire::SocketIpc;
  let handshake = async {
    let mut conn = if plain { Conn::plain(stream) } else { Conn::accept(stream, &shared.security).await? };
    let mut refusal = admission(&shared, conn_id, &info, &mut place).await;
    let mut joined = None;
    if refusal.is_none() {
      match join(&shared, conn_id, &conn).await {
        Ok(j) => joined = Some(j),
        Err(r) => refusal = Some(r),
      }
    }
    let hello = joined.as_ref().map(Joined::hello).unwrap_or_default();
    match (plain, refusal) {
      // Without a hello there is no REJECT to send: a refused client is just disconnected.
      (true, Some(refusal)) => return Err(refusal.report.map_or(HandshakeFailure::Silent, HandshakeFailure::Auth)),
      (true, None) => {}
      (false, refusal) => conn.answer(refusal, &hello).await?,
    }
    Ok((conn, joined.expect("an answered hello has joined")))
  };
  let outcome = bounded(shared.options.handshake_timeout, &shared.shutdown, "client", handshake).await;
  // A verdict still awaited (the handshake timed out first) must not linger.
  shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&conn_id);
  let (conn, mut joined) = match outcome {
    Ok(joined) => joined,
    Err(failure) => return failure.report(&shared.events, conn_id, &info),
  };
  let id = joined.id;
  if joined.resumed {
    joined.slot.generation.fetch_add(1, Ordering::AcqRel);
    joined.slot.resumed.notify_waiters();
    shared.events.push(kind::CLIENT_RECONNECT, id, b"");
  } else {
    shared.clients().insert(id, joined.slot.clone());
    shared.events.track(id, joined.slot.inbound.clone());
    if let Some(session) = joined.session {
      shared.sessions().insert(session, id);
    }
    let mut who = Vec::new();
    conn.peer_info().write_json(&mut who);
    shared.events.push(kind::CONNECTION, id, &who);
  }
  let link = Link {
    id,
    events: &shared.events,
    outbox: &joined.slot.outbox,
    inbound: &joined.slot.inbound,
    max_message_size: shared.options.max_message_size,
    shutdown: &joined.slot.close,
    heartbeat: shared.options.heartbeat,
    frame_timeout: shared.options.frame_timeout,
    peer_received: joined.peer_received,
    wire: shared.options.wire,
    says_why: true,
    loop_host: shared.options.loop_host.as_ref(),
  };
  let end = connection::run(conn, link).await;
  // A session waiting for its client does not hold a connection's place.
  drop(place);
  // A client disconnected on purpose does not get to resume: its session ends with it.
  if joined.session.is_some() && end.resumable() && !joined.slot.close.is_cancelled() {
    let mut reason = Vec::new();
    if let Some(e) = end.reason() {
      e.write_json(&mut reason);
    }
    shared.events.push(kind::CLIENT_DISCONNECT, id, &reason);
    let generation = joined.slot.generation.load(Ordering::Acquire);
    drop(joined.turn.take());
    return await_resume(&shared, &joined, generation).await;
  }
  end_client(&shared, &joined, &end);
}

/// Decides how a connection joins: checks the delivery mode, then in a session finds the
/// client's session (taking it over from a connection the server still thinks alive) or starts
/// one.
async fn join(shared: &Shared, conn_id: u32, conn: &Conn) -> Result<Joined, Refusal> {
  let theirs = conn.hello.flags & FLAG_AT_LEAST_ONCE != 0;
  let ours = shared.options.at_least_once;
  if theirs != ours {
    return Err(Refusal {
      reason: format!(
        "{}: the server uses delivery '{}' and the client '{}'; set the same delivery option on both ends",
        codec::DELIVERY_MISMATCH,
        delivery_name(ours),
        delivery_name(theirs)
      ),
      report: None,
    });
  }
  if !ours {
    return Ok(Joined {
      id: conn_id,
      slot: shared.new_slot(None),
      session: None,
      resumed: false,
      turn: None,
      peer_received: None,
    });
  }
  let Some((session, peer_received)) = session::parse_client_hello(&conn.hello.extension) else {
    return Err(Refusal {
      reason: "the client's hello lacks its session".into(),
      report: Some(IpcError::Protocol("an at-least-once client's hello lacks its session".into())),
    });
  };
  let known = shared.sessions().get(&session).copied();
  if let Some((id, slot)) = known.and_then(|id| shared.clients().get(&id).cloned().map(|slot| (id, slot))) {
    // The client came back before the server noticed it had gone: end the old connection.
    slot.outbox.sever();
    let turn = slot.turn.clone().lock_owned().await;
    if !slot.ended.load(Ordering::Acquire) {
      return Ok(Joined {
        id,
        slot,
        session: Some(session),
        resumed: true,
        turn: Some(turn),
        peer_received: Some(peer_received),
      });
    }
  }
  let slot = shared.new_slot(Some(session));
  let turn = slot.turn.clone().lock_owned().await;
  Ok(Joined {
    id: conn_id,
    slot,
    session: Some(session),
    resumed: false,
    turn: Some(turn),
    peer_received: Some(0),
  })
}

/// A session whose connection dropped waits `sessionTimeout` for its client; then it ends.
async fn await_resume(shared: &Shared, joined: &Joined, generation: u64) {
  let slot = &joined.slot;
  let deadline = tokio::time::Instant::now() + shared.options.session_timeout;
  let ending = loop {
    let notified = slot.resumed.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if slot.generation.load(Ordering::Acquire) != generation {
      return;
    }
    tokio::select! {
      _ = &mut notified => continue,
      _ = tokio::time::sleep_until(deadline) => break None,
      _ = shared.shutdown.cancelled() => break Some(Ended::Shutdown),
      _ = slot.outbox.evicted.cancelled() => break Some(Ended::TooSlow(IpcError::SlowClient(shared.options.limits.max_buffered))),
    }
  };
  // A client taking the session over at this very moment holds the turn; it wins.
  let _turn = slot.turn.clone().lock_owned().await;
  if slot.generation.load(Ordering::Acquire) != generation {
    return;
  }
  match ending {
    Some(end) => end_client(shared, joined, &end),
    None => {
      slot.ended.store(true, Ordering::Release);
      shared.forget(joined.id, joined.session.as_ref());
      let undelivered = slot.outbox.close();
      let expired = IpcError::SessionExpired {
        timeout_ms: shared.options.session_timeout.as_millis(),
        undelivered,
      };
      shared.events.push_error(kind::CONNECTION_CLOSE, joined.id, &expired);
    }
  }
}

/// The client is gone for good: `SLOW_CLIENT` if it was dropped for that, then `CONNECTION_CLOSE`.
fn end_client(shared: &Shared, joined: &Joined, end: &Ended) {
  joined.slot.ended.store(true, Ordering::Release);
  shared.forget(joined.id, joined.session.as_ref());
  joined.slot.outbox.close();
  if matches!(end, Ended::TooSlow(_)) {
    shared.events.push(kind::SLOW_CLIENT, joined.id, b"");
  }
  connection::report_end(&shared.events, kind::CONNECTION_CLOSE, joined.id, end);
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
