//! What a connection's reader, writer and heartbeat share: its owner's queue for JS, its
//! outbox and inbound account, and its settings.

use crate::events::EventQueue;
use crate::heartbeat::Heartbeat;
use crate::inbound::Inbound;
use crate::loop_reads::LoopHost;
use crate::outbox::Outbox;
use crate::wire::Wire;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Link<'a> {
  /// Tags every event of this connection (the client id on a server, 0 on a client).
  pub id: u32,
  pub events: &'a Arc<EventQueue>,
  pub outbox: &'a Outbox,
  /// The account of what this connection's input holds; the reader stops at its cap.
  pub inbound: &'a Arc<Inbound>,
  pub max_message_size: usize,
  pub shutdown: &'a CancellationToken,
  /// `None`: no pings of our own (PINGs from the peer are still answered).
  pub heartbeat: Option<Heartbeat>,
  /// A frame must arrive whole within this of its first byte (`None`: no limit).
  pub frame_timeout: Option<Duration>,
  /// In an at-least-once session: how many of our frames the other side already has (from its
  /// hello); we re-send what follows.
  pub peer_received: Option<u64>,
  pub wire: Wire,
  /// Tell the peer why we drop the connection (`CLOSE_REASON`): a server tells its clients. A
  /// client that gives up on its server does not: the server learns nothing from it that it can
  /// act on, and an at-least-once server must keep the session for the client's return.
  pub says_why: bool,
  /// The JS thread's event loop may read this connection (see `loop_reads`).
  pub loop_host: Option<&'a Arc<dyn LoopHost>>,
}
