//! One established connection (after `handshake`): its reader (`reader`, or the JS thread's
//! event loop, `loop_reads`), its writer (`writer`) and its heartbeat (`heartbeat`), run together
//! until it ends (`ended`). Every transport, both ends, run this code.

use crate::codec;
use crate::events::kind as events_kind;
use crate::handshake::Conn;
use crate::heartbeat::{watch_for_silence, Liveness};
use crate::loop_reads::LoopReads;
use crate::reader::{read_loop, read_with_loop, ReadEnd};
use crate::wire::Reading;
use crate::wire::Wire;
use crate::transport::Socket;
use crate::writer::{write_loop, Farewell};
use bytes::BytesMut;
use std::io;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

pub use crate::ended::{report_end, Ended, CLOSE_FLUSH_TIMEOUT};
pub use crate::heartbeat::Heartbeat;
pub use crate::link::Link;
pub use crate::outbox::{piece, Appended, Limits, Outbox};
pub use crate::codec::{count_messages, frame_remainder};

/// Runs the connection until the peer leaves, breaks the protocol, falls silent, or we shut down.
pub async fn run(conn: Conn, link: Link<'_>) -> Ended {
  // Shared by the reader, the writer and the outbox's direct writes; all use readiness-based
  // `try_read`/`try_write`, which take `&self`.
  let tls_failure = conn.tls_failure;
  let session = link.peer_received.is_some();
  let life = Arc::new(Liveness::new());
  let mut buf = Some(conn.buf);
  let Ok(stream) = loop_capable(conn.stream, &link, tls_failure.is_none()) else {
    return Ended::PeerClosed;
  };
  let stream = Arc::new(stream);
  let reads = loop_reads_for(&stream, &link, &mut buf, &life);
  link.outbox.attach(stream.clone(), link.peer_received);
  // Ends the other half early when one half finds the connection dead.
  let dead = CancellationToken::new();
  // The peer said goodbye: flush (our last ACK) and half-close.
  let finish = CancellationToken::new();
  let farewell: Farewell = Mutex::new(None);
  // Set before `dead` is cancelled, so the writer finds it (see `say_farewell`).
  let tell = |end: &Ended| {
    if let (true, Wire::Native, Some((e, patience))) = (link.says_why, link.wire, end.farewell()) {
      let mut frame = Vec::new();
      codec::encode_close_reason(&mut frame, e.code().unwrap_or("ERR_IPC_PROTOCOL"), &e.to_string());
      *farewell.lock().unwrap_or_else(|p| p.into_inner()) = Some((frame, patience));
    }
  };
  let reading = async {
    let end = match &reads {
      Some(reads) => read_with_loop(reads, &stream, &link, &dead, &life).await,
      None => match read_loop(&stream, buf.take().unwrap_or_default(), &link, &dead, &life, session, Reading::new(link.wire), None, None).await {
        ReadEnd::Ended(end) => end,
        ReadEnd::Quiet(..) => unreachable!("only reads the event loop shares are given back"),
      },
    };
    if matches!(end, Ended::Goodbye) {
      // Our last ACK tells the leaving side that its listeners here saw everything it sent.
      let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, link.outbox.wait_for(|s| s.acked_out >= s.received)).await;
      finish.cancel();
    } else if session || !matches!(end, Ended::Shutdown) {
      // (A closing session's reader ends when the peer has gone: the writer stops waiting.)
      tell(&end);
      dead.cancel();
    }
    end
  };
  let writing = async {
    if write_loop(&stream, &link, &dead, &finish, session, &farewell).await.is_err() {
      dead.cancel();
    }
    // A closing session reads acknowledgements until the writer is done.
    if link.shutdown.is_cancelled() || finish.is_cancelled() {
      dead.cancel();
    }
  };
  let beating = async {
    let verdict = match link.heartbeat {
      Some(heartbeat) => watch_for_silence(heartbeat, &life, link.outbox, link.shutdown, &dead, &stream).await,
      None => None,
    };
    if let Some(verdict) = &verdict {
      tell(verdict);
      dead.cancel();
    }
    verdict
  };
  let (end, (), silent) = tokio::join!(reading, writing, beating);
  if let (Some(reads), Some(host)) = (&reads, link.loop_host) {
    if reads.finish() {
      host.retire(reads.clone());
    }
  }
  link.inbound.forget_requests();
  if let Some(episode) = link.outbox.detach() {
    link.events.push(events_kind::DRAIN, link.id, &episode.to_be_bytes());
  }
  match (silent, end) {
    (Some(silent), _) => silent,
    // Under TLS a bad record ends the session; the bridge shows only EOF, the pump knows why.
    (None, Ended::PeerClosed) => match tls_failure.and_then(|f| f.take()) {
      Some(e) => Ended::Failed(e),
      None => Ended::PeerClosed,
    },
    (None, end) => end,
  }
}

/// The socket as the event loop can read it, when this connection may be read there: a plain
/// (not TLS) Unix-domain or TCP socket, outside an at-least-once session, whose owner runs on a
/// JS thread that offers its loop. Other sockets as they are.
fn loop_capable(stream: Socket, link: &Link<'_>, plain: bool) -> io::Result<Socket> {
  #[cfg(unix)]
  if plain && link.peer_received.is_none() && link.loop_host.is_some() {
    return stream.into_polled();
  }
  let _ = (link, plain);
  Ok(stream)
}

/// Hands a polled socket's reads to the JS thread's loop (see `loop_reads`).
fn loop_reads_for(stream: &Arc<Socket>, link: &Link<'_>, buf: &mut Option<BytesMut>, life: &Arc<Liveness>) -> Option<Arc<LoopReads>> {
  #[cfg(unix)]
  if let (Some(polled), Some(host)) = (stream.as_polled(), link.loop_host) {
    polled.set_loop_reads(true);
    let reads = LoopReads::new(
      link.id,
      stream.clone(),
      buf.take().unwrap_or_default(),
      link.wire,
      link.events.clone(),
      link.inbound.clone(),
      link.max_message_size,
      link.frame_timeout,
      life.clone(),
    );
    host.adopt(reads.clone());
    return Some(reads);
  }
  let _ = (stream, link, buf, life);
  None
}
