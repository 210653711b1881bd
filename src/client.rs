//! The connecting side: connects, retries and reconnects by the `RetryPolicy`, and keeps one
//! outbox across connections so messages sent while disconnected go out after the reconnect.

use crate::connection::{self, Ended, Heartbeat, Link, Outbox};
use crate::error::IpcError;
use crate::events::{kind, EventQueue};
use crate::handshake::{connect_once, ClientSecurity};
use crate::reconnect::{Jitter, Retries, RetryPolicy};
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
  shutdown: CancellationToken,
}

impl Client {
  /// Starts connecting on the current tokio runtime; progress arrives as events.
  pub fn connect(options: ClientOptions, security: ClientSecurity, events: Arc<EventQueue>) -> Client {
    let shared = Arc::new(Shared {
      options,
      security,
      events,
      outbox: Outbox::default(),
      shutdown: CancellationToken::new(),
    });
    tokio::spawn(run(shared.clone()));
    Client { shared }
  }

  /// Queues wire frames encoded by JS; they are written now if connected, else after connecting.
  /// Returns how many messages were refused because the client has already finished (closed or
  /// gave up) — JS learns of that later than the core, and reports them instead of losing them.
  pub fn send(&self, frames: &[u8]) -> usize {
    self.shared.outbox.append(frames)
  }

  /// Queues one large frame (`head` then `payload`, copied once); returns 1 if refused, as `send`.
  pub fn send_piece(&self, head: &[u8], payload: &[u8]) -> usize {
    self.shared.outbox.append_piece(crate::connection::piece(head, payload))
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
    let attempt = tokio::select! {
      biased;
      _ = shared.shutdown.cancelled() => break,
      attempt = connect_once(&options.endpoint, &shared.security, options.handshake_timeout) => attempt,
    };
    let delay = match attempt {
      Ok(conn) => {
        retries.succeeded();
        shared.events.push(kind::CONNECT, 0, &[u8::from(connected_before)]);
        connected_before = true;
        let link = Link {
          id: 0,
          events: &shared.events,
          outbox: &shared.outbox,
          max_message_size: options.max_message_size,
          shutdown: &shared.shutdown,
          heartbeat: options.heartbeat,
          frame_timeout: options.frame_timeout,
        };
        let end = connection::run(conn, link).await;
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
