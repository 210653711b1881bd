//! The symmetric connection (simple-ipc's idea): the same code runs in two processes. Whoever
//! finds the socket file free, or left behind by a dead process, listens; whoever finds a live
//! listener connects. When the listening side goes away, the one left takes the file over, so
//! the next process to start finds it listening. A peer has one partner at a time, and one outbox
//! that follows it from role to role.

use crate::client::{agree_on_delivery, failed_attempt, wind_up};
use crate::codec;
use crate::connection::{self, Appended, Ended, Heartbeat, Limits, Link, Outbox};
use crate::error::IpcError;
use crate::events::{kind, EventQueue};
use crate::inbound::Inbound;
use crate::loop_reads::LoopHost;
use crate::handshake::{bounded, connect_once, ClientSecurity, Conn, HelloOptions, Refusal, ServerSecurity};
use crate::reconnect::{Jitter, Retries, RetryPolicy};
use crate::socket_file::SocketFile;
use crate::wire::Wire;
use crate::transport::{self, Endpoint, Listener, Socket};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone)]
pub struct PeerOptions {
  pub endpoint: Endpoint,
  /// Permissions of the socket file while this peer holds it.
  pub mode: Option<u32>,
  pub frame_timeout: Option<Duration>,
  pub max_message_size: usize,
  pub handshake_timeout: Duration,
  pub heartbeat: Option<Heartbeat>,
  /// `retry_delay` paces failed attempts to join; `reconnect_delay` the new election after the
  /// partner in the server role went away.
  pub retry: RetryPolicy,
  pub limits: Limits,
  /// The JS thread's event loop may read the connections (see `loop_reads`).
  pub loop_host: Option<Arc<dyn LoopHost>>,
}

/// The role a peer took, as carried by the `ROLE` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
  Server = 0,
  Client = 1,
}

/// A handle to a running peer; clones share it.
#[derive(Clone)]
pub struct Peer {
  shared: Arc<Shared>,
}

/// A peer may take either role, so it carries both sides' checks (built from the same options).
#[derive(Default)]
pub struct PeerSecurity {
  pub server: ServerSecurity,
  pub client: ClientSecurity,
}

struct Shared {
  options: PeerOptions,
  security: PeerSecurity,
  events: Arc<EventQueue>,
  outbox: Outbox,
  inbound: Arc<Inbound>,
  shutdown: CancellationToken,
  socket_file: SocketFile,
  /// In the server role: a partner holds the one place.
  partnered: AtomicBool,
  /// A partner was connected before: the next `CONNECT` is a reconnect.
  had_partner: AtomicBool,
}

impl Peer {
  /// Starts the election on the current tokio runtime; what happens arrives as events.
  pub fn connect(options: PeerOptions, security: PeerSecurity, events: Arc<EventQueue>) -> Peer {
    let inbound = Arc::new(Inbound::new(options.limits.max_inbound));
    events.track(0, inbound.clone());
    let shared = Arc::new(Shared {
      outbox: Outbox::new(options.limits, None, Wire::Native),
      inbound,
      options,
      security,
      events,
      shutdown: CancellationToken::new(),
      socket_file: SocketFile::default(),
      partnered: AtomicBool::new(false),
      had_partner: AtomicBool::new(false),
    });
    tokio::spawn(run(shared.clone()));
    Peer { shared }
  }

  /// Queues wire frames for the partner (now, or the next one), as `Client::send`.
  pub fn send(&self, frames: &[u8]) -> Appended {
    self.shared.inbound.replied(frames);
    self.shared.outbox.append(frames)
  }

  /// Queues one large frame, as `send`.
  pub fn send_piece(&self, head: &[u8], payload: &[u8]) -> Appended {
    self.shared.inbound.replied(head);
    self.shared.outbox.append_piece(connection::piece(head, payload))
  }

  /// Flushes and ends the connection, removes the socket file if we listen, then `CLOSE`.
  pub fn close(&self) {
    self.shared.shutdown.cancel();
  }

  /// For when the JS environment is going away: close, and remove the socket file now.
  pub fn abandon(&self) {
    self.close();
    self.shared.socket_file.remove();
  }
}

async fn run(shared: Arc<Shared>) {
  let options = &shared.options;
  let mut retries = Retries::new(options.retry, Jitter::from_entropy());
  let mut role = None;
  // A listener that vanished between our bind and our connect is retried at once, once.
  let mut raced = false;
  loop {
    let bound = tokio::select! {
      biased;
      _ = shared.shutdown.cancelled() => break,
      bound = transport::bind(&options.endpoint, options.mode) => bound,
    };
    let delay = match bound {
      Ok(listener) => {
        if let Endpoint::Unix(path) = &options.endpoint {
          shared.socket_file.claim(path);
        }
        take_role(&shared, &mut role, Role::Server);
        serve_partners(&shared, listener).await;
        Listener::released(&options.endpoint).await;
        break;
      }
      Err(e) if e.is_addr_in_use() => {
        let plain = HelloOptions::default();
        let attempt = tokio::select! {
          biased;
          _ = shared.shutdown.cancelled() => break,
          attempt = connect_once(&options.endpoint, &shared.security.client, options.handshake_timeout, Some(&plain)) => attempt,
        };
        // (A peer has no at-least-once sessions; this refuses a partner that expects one.)
        match attempt.and_then(|conn| agree_on_delivery(conn, &shared.outbox)) {
          Ok((conn, ..)) => {
            raced = false;
            retries.succeeded();
            take_role(&shared, &mut role, Role::Client);
            let end = partner_with(&shared, conn).await;
            if matches!(end, Ended::Shutdown) {
              break;
            }
            retries.after_drop()
          }
          Err(e) if e.is_final() => {
            shared.events.push_error(kind::ERROR, 0, &e);
            break;
          }
          Err(e) if listener_vanished(&e) && !raced => {
            raced = true;
            Duration::ZERO
          }
          Err(e) => {
            raced = false;
            match failed_attempt(
              &shared.events,
              &mut retries,
              &e,
              &options.endpoint,
              "check the peer that holds the socket",
            ) {
              Some(delay) => delay,
              None => break,
            }
          }
        }
      }
      // Neither listening nor connecting can work (a bad directory, no permission).
      Err(e) => {
        shared.events.push_error(kind::ERROR, 0, &e);
        break;
      }
    };
    tokio::select! {
      biased;
      _ = shared.shutdown.cancelled() => break,
      _ = tokio::time::sleep(delay) => {}
    }
  }
  shared.socket_file.remove();
  wind_up(&shared.events, &shared.outbox);
}

fn listener_vanished(e: &IpcError) -> bool {
  matches!(e, IpcError::Io { error, .. }
    if matches!(error.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound))
}

fn take_role(shared: &Shared, role: &mut Option<Role>, now: Role) {
  if *role != Some(now) {
    *role = Some(now);
    shared.events.push(kind::ROLE, 0, &[now as u8]);
  }
}

/// Runs the connection to a partner, in either role, and reports its start and end.
async fn partner_with(shared: &Shared, conn: Conn) -> Ended {
  let again = shared.had_partner.swap(true, Ordering::Relaxed);
  shared.events.push(kind::CONNECT, 0, &[u8::from(again)]);
  let link = Link {
    id: 0,
    events: &shared.events,
    outbox: &shared.outbox,
    inbound: &shared.inbound,
    max_message_size: shared.options.max_message_size,
    shutdown: &shared.shutdown,
    heartbeat: shared.options.heartbeat,
    frame_timeout: shared.options.frame_timeout,
    peer_received: None,
    wire: Wire::Native,
    says_why: false,
    loop_host: shared.options.loop_host.as_ref(),
  };
  let end = connection::run(conn, link).await;
  crate::trim::connection_ended();
  if !matches!(end, Ended::Shutdown) {
    connection::report_end(&shared.events, kind::DISCONNECT, 0, &end);
  }
  end
}

/// The server role: accepts partners, one at a time, until we shut down. Others are refused with
/// a REJECT, so a third process learns the pair is complete instead of waiting in silence.
async fn serve_partners(shared: &Arc<Shared>, listener: Listener) {
  let connections = TaskTracker::new();
  loop {
    tokio::select! {
      _ = shared.shutdown.cancelled() => break,
      accepted = listener.accept() => match accepted {
        Ok(stream) => {
          connections.spawn(admit_partner(shared.clone(), stream));
        }
        Err(e) => {
          shared.events.push_error(kind::ERROR, 0, &IpcError::io(e, "accept", &shared.options.endpoint.to_string()));
          tokio::time::sleep(Duration::from_millis(100)).await;
        }
      },
    }
  }
  // Stop answering before anything is reported closed: a successor may bind at once.
  listener.close().await;
  connections.close();
  connections.wait().await;
}

async fn admit_partner(shared: Arc<Shared>, stream: Socket) {
  let info = stream.peer_info();
  let mut took_place = false;
  let handshake = async {
    let mut conn = Conn::accept(stream, &shared.security.server).await?;
    let refusal = if conn.hello.flags & crate::session::FLAG_AT_LEAST_ONCE != 0 {
      Some(Refusal {
        reason: format!(
          "{}: a Peer has no at-least-once delivery; connect with the default delivery",
          codec::DELIVERY_MISMATCH
        ),
        report: None,
      })
    } else if shared.partnered.swap(true, Ordering::AcqRel) {
      Some(Refusal {
        reason: format!(
          "{}: this native-socket-ipc Peer is already connected to another process",
          codec::PEER_BUSY
        ),
        report: None,
      })
    } else {
      took_place = true;
      None
    };
    conn.answer(refusal, &HelloOptions::default()).await?;
    Ok(conn)
  };
  match bounded(shared.options.handshake_timeout, &shared.shutdown, "client", handshake).await {
    Ok(conn) => {
      partner_with(&shared, conn).await;
    }
    Err(failure) => failure.report(&shared.events, 0, &info),
  }
  // Only after the partner's DISCONNECT is queued, so the next partner's CONNECT follows it.
  if took_place {
    shared.partnered.store(false, Ordering::Release);
  }
}
