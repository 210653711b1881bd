//! The connecting side: connects, retries and reconnects by the `RetryPolicy`, and keeps one
//! outbox across connections so messages sent while disconnected go out after the reconnect.

use crate::connection::{self, Appended, Ended, Heartbeat, Limits, Link, Outbox};
use crate::error::IpcError;
use crate::events::{kind, EventQueue};
use crate::inbound::Inbound;
use crate::loop_reads::LoopHost;
use crate::handshake::{connect_once, ClientSecurity, Conn, HelloOptions};
use crate::session::{self, delivery_name, FLAG_AT_LEAST_ONCE, FLAG_RESUMED};
use crate::reconnect::{Jitter, Retries, RetryPolicy};
use crate::wire::Wire;
use crate::transport::Endpoint;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ClientOptions {
  pub endpoint: Endpoint,
  pub max_message_size: usize,
  pub handshake_timeout: Duration,
  pub retry: RetryPolicy,
  pub heartbeat: Option<Heartbeat>,
  pub frame_timeout: Option<Duration>,
  pub limits: Limits,
  /// `delivery: 'at-least-once'`: a session that survives reconnects (see `session`).
  pub at_least_once: bool,
  /// `protocol: 'socket-ipc'`: no hello, and the messages of `@crussell52/socket-ipc`.
  pub wire: Wire,
  /// The JS thread's event loop may read the connections (see `loop_reads`).
  pub loop_host: Option<Arc<dyn LoopHost>>,
}

/// A handle to a running client; clones share it.
#[derive(Clone)]
pub struct Client {
  shared: Arc<Shared>,
}

struct Shared {
  options: ClientOptions,
  security: ClientSecurity,
  events: Arc<EventQueue>,
  outbox: Outbox,
  inbound: Arc<Inbound>,
  shutdown: CancellationToken,
}

impl Client {
  /// Starts connecting on the current tokio runtime; progress arrives as events.
  pub fn connect(options: ClientOptions, security: ClientSecurity, events: Arc<EventQueue>) -> Client {
    let session = options.at_least_once.then(session::new_id);
    let inbound = Arc::new(Inbound::new(options.limits.max_inbound));
    events.track(0, inbound.clone());
    let shared = Arc::new(Shared {
      outbox: Outbox::new(options.limits, session, options.wire),
      inbound,
      options,
      security,
      events,
      shutdown: CancellationToken::new(),
    });
    tokio::spawn(run(shared.clone()));
    Client { shared }
  }

  /// Queues wire frames encoded by JS; they are written now if connected, else after connecting.
  /// The outcome counts messages refused because the client has already finished (closed or
  /// gave up; JS learns of that later than the core, and reports them instead of losing them)
  /// or because they would pass `maxBufferedBytes`.
  pub fn send(&self, frames: &[u8]) -> Appended {
    self.shared.inbound.replied(frames);
    self.shared.outbox.append(frames)
  }

  /// Queues one large frame (`head` then `payload`, copied once), as `send`.
  pub fn send_piece(&self, head: &[u8], payload: &[u8]) -> Appended {
    self.shared.inbound.replied(head);
    self.shared.outbox.append_piece(crate::connection::piece(head, payload))
  }

  /// JS handed the frames it took up to `delivered` to the listeners (see `EventQueue::take_delivered`).
  pub fn delivered(&self, epoch: u32, delivered: u64) {
    self.shared.outbox.deliver(epoch, delivered);
  }

  /// Stops retrying, flushes and ends the connection, then the `CLOSE` event.
  pub fn close(&self) {
    self.shared.shutdown.cancel();
  }
}

async fn run(shared: Arc<Shared>) {
  let options = &shared.options;
  let mut retries = Retries::new(options.retry, Jitter::from_entropy());
  let mut connected_before = false;
  loop {
    let our_hello = (options.wire == Wire::Native).then(|| hello(&shared.outbox));
    let attempt = tokio::select! {
      biased;
      _ = shared.shutdown.cancelled() => break,
      attempt = connect_once(&options.endpoint, &shared.security, options.handshake_timeout, our_hello.as_ref()) => attempt,
    };
    let delay = match attempt.and_then(|conn| agree_on_delivery(conn, &shared.outbox)) {
      Ok((conn, peer_received, resumed)) => {
        retries.succeeded();
        shared.events.push(kind::CONNECT, 0, &[u8::from(connected_before), u8::from(resumed)]);
        connected_before = true;
        let link = Link {
          id: 0,
          events: &shared.events,
          outbox: &shared.outbox,
          inbound: &shared.inbound,
          max_message_size: options.max_message_size,
          shutdown: &shared.shutdown,
          heartbeat: options.heartbeat,
          frame_timeout: options.frame_timeout,
          peer_received,
          wire: options.wire,
          says_why: false,
          loop_host: options.loop_host.as_ref(),
        };
        let end = connection::run(conn, link).await;
        crate::trim::connection_ended();
        if matches!(end, Ended::Shutdown) {
          break;
        }
        connection::report_end(&shared.events, kind::DISCONNECT, 0, &end);
        retries.after_drop()
      }
      Err(e) if e.is_final() => {
        shared.events.push_error(kind::ERROR, 0, &e);
        break;
      }
      Err(e) => match failed_attempt(&shared.events, &mut retries, &e, &options.endpoint, "start the server") {
        Some(delay) => delay,
        None => break,
      },
    };
    tokio::select! {
      biased;
      _ = shared.shutdown.cancelled() => break,
      _ = tokio::time::sleep(delay) => {}
    }
  }
  wind_up(&shared.events, &shared.outbox);
}

/// Our hello: with at-least-once, our session and how much of the server's stream we have.
fn hello(outbox: &Outbox) -> HelloOptions {
  match outbox.session_hello() {
    Some((id, received)) => HelloOptions {
      flags: FLAG_AT_LEAST_ONCE,
      extension: session::encode_client_hello(&id, received),
    },
    None => HelloOptions::default(),
  }
}

/// Checks that the server uses our delivery mode. In a session, returns how many of our frames
/// the server has; a server that did not know the session (it restarted, or it ended the
/// session) starts it afresh, and everything it never acknowledged is sent again.
pub(crate) fn agree_on_delivery(conn: Conn, outbox: &Outbox) -> Result<(Conn, Option<u64>, bool), IpcError> {
  let theirs = conn.hello.flags & FLAG_AT_LEAST_ONCE != 0;
  let ours = outbox.has_session();
  if theirs != ours {
    return Err(IpcError::DeliveryMismatch(format!(
      "the server uses delivery '{}' and this client '{}'; set the same delivery option on both ends",
      delivery_name(theirs),
      delivery_name(ours)
    )));
  }
  if !ours {
    return Ok((conn, None, false));
  }
  let received = session::parse_server_hello(&conn.hello.extension)
    .ok_or_else(|| IpcError::Protocol("the server's hello lacks its session count".into()))?;
  if conn.hello.flags & FLAG_RESUMED == 0 {
    outbox.start_afresh();
    return Ok((conn, Some(0), false));
  }
  Ok((conn, Some(received), true))
}

/// Reports a failed attempt and returns the delay before the next one, or `None` once
/// `maxRetries` is used up (reported as `ERR_IPC_RETRIES_EXHAUSTED`).
pub(crate) fn failed_attempt(
  events: &EventQueue,
  retries: &mut Retries,
  error: &IpcError,
  endpoint: &Endpoint,
  advice: &str,
) -> Option<Duration> {
  events.push_error(kind::CONNECT_ERROR, 0, error);
  let delay = retries.failed();
  if delay.is_none() {
    let gave_up = IpcError::RetriesExhausted(format!(
      "gave up after {} failed connection attempts in a row to {endpoint} (maxRetries); {advice}, or raise maxRetries",
      retries.failures()
    ));
    events.push_error(kind::ERROR, 0, &gave_up);
  }
  delay
}

/// The last events of a client or peer: what its outbox still held, then `CLOSE`.
pub(crate) fn wind_up(events: &EventQueue, outbox: &Outbox) {
  let undelivered = outbox.close();
  if undelivered > 0 {
    events.push_error(kind::ERROR, 0, &IpcError::ClosedWithQueued(undelivered));
  }
  events.push(kind::CLOSE, 0, b"");
  events.finish();
}
