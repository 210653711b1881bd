//! The core's reader: reads the socket, frames what arrives and queues it for JS, answers pings,
//! applies acknowledgements, and stops at the inbound cap. When the JS thread's event loop reads
//! the connection (`loop_reads`), it waits, and takes over when the loop hands reading back.

use crate::codec::{self, kind};
use crate::ended::Ended;
use crate::error::IpcError;
use crate::events::kind as events_kind;
use crate::handshake::FIRST_READ;
use crate::heartbeat::Liveness;
use crate::link::Link;
use crate::loop_reads::LoopReads;
use crate::scan::ATTACH_FROM;
use crate::wire::Reading;
use crate::transport::Socket;
use bytes::{Buf, BufMut, BytesMut};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The most asked of the kernel per read; also the largest batch a single read produces.
const READ_CHUNK: usize = 64 * 1024;

/// Hands complete messages to JS. In a session they are counted, and the count rides along so JS
/// acknowledges them once its listeners ran; while we close, what arrives is not delivered (the
/// other side keeps it, unacknowledged, for whoever it talks to next).
fn deliver(link: &Link<'_>, reading: &Reading, complete: &[u8], data: usize) {
  if closing_session(link) {
    return;
  }
  let mark = if data > 0 { link.outbox.received(data) } else { None };
  reading.queue(link.events, link.id, complete, mark);
}

/// Applies an `ACK`; a `DRAIN` event follows if it took a buffer that had passed the mark down to half.
fn apply_ack(link: &Link<'_>, delivered: u64) -> Result<(), Ended> {
  match link.outbox.acknowledged(delivered) {
    Ok(Some(episode)) => {
      link.events.push(events_kind::DRAIN, link.id, &episode.to_be_bytes());
      Ok(())
    }
    Ok(None) => Ok(()),
    Err(e) => Err(Ended::Failed(e)),
  }
}

/// Reading while the event loop does it: answers the PINGs it read, reads from where it
/// stopped if it hands over, and gives reading back once the connection is quiet and the loop
/// turns again (see `loop_reads`).
pub(crate) async fn read_with_loop(reads: &Arc<LoopReads>, stream: &Socket, link: &Link<'_>, dead: &CancellationToken, life: &Liveness) -> Ended {
  let ended = |peer_gone: Ended| if link.shutdown.is_cancelled() { Ended::Shutdown } else { peer_gone };
  loop {
    let handed = tokio::select! {
      biased;
      _ = link.shutdown.cancelled() => return Ended::Shutdown,
      _ = dead.cancelled() => return ended(Ended::PeerClosed),
      _ = link.outbox.evicted.cancelled() => return too_slow(link),
      end = reads.wait_for_handover(|pings| answer_pings(link, pings)) => end,
    };
    match handed {
      Some(end @ (Ended::PeerClosed | Ended::Dropped(_))) => return ended(end),
      Some(end) => return end,
      None => {}
    }
    let (buf, reading, since) = reads.take_state();
    set_loop_reads(stream, false);
    let frame_started = since.map(tokio::time::Instant::from_std);
    match read_loop(stream, buf, link, dead, life, false, reading, frame_started, Some(reads)).await {
      ReadEnd::Ended(end) => return end,
      ReadEnd::Quiet(buf, reading) => {
        set_loop_reads(stream, true);
        reads.give_back(buf, reading);
        if let Some(host) = link.loop_host {
          host.adopt(reads.clone());
        }
      }
    }
  }
}

/// Queues a PONG for each PING read.
fn answer_pings(link: &Link<'_>, pings: usize) {
  link.outbox.append_with(|out| (0..pings).for_each(|_| codec::encode_control(out, kind::PONG)));
}

fn set_loop_reads(stream: &Socket, on: bool) {
  #[cfg(unix)]
  if let Some(polled) = stream.as_polled() {
    polled.set_loop_reads(on);
  }
  let _ = (stream, on);
}

/// How the core's reading stopped.
pub(crate) enum ReadEnd {
  Ended(Ended),
  /// The connection is quiet and the event loop turns again: it reads from here on, with this
  /// buffer (no partial frame in it) and reading state.
  Quiet(BytesMut, Reading),
}

/// Reads until the connection ends. `reading` and `frame_started` carry on from the event
/// loop's reads when the core takes over from it (see `loop_reads`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read_loop(
  stream: &Socket,
  mut buf: BytesMut,
  link: &Link<'_>,
  dead: &CancellationToken,
  life: &Liveness,
  session: bool,
  mut reading: Reading,
  // When the partial frame at the end of `buf` began to arrive.
  mut frame_started: Option<tokio::time::Instant>,
  // The event loop's reads, which this takes over from and may give back to.
  reads: Option<&LoopReads>,
) -> ReadEnd {
  // Grows (up to READ_CHUNK) each time a read fills all the room it was given.
  let mut read_size = FIRST_READ;
  // A closing session keeps reading, for the acknowledgements of what it sent.
  let stop_on_shutdown = !session;
  let ended = |peer_gone: Ended| if link.shutdown.is_cancelled() { Ended::Shutdown } else { peer_gone };
  loop {
    // Everything intact before a bad frame is still delivered.
    let found = reading.scan(&buf, link.max_message_size, session);
    if found.complete > 0 {
      deliver(link, &reading, &buf[..found.complete], found.data);
      buf.advance(found.complete);
      frame_started = None;
    }
    if let Some(delivered) = found.ack {
      if let Err(end) = apply_ack(link, delivered) {
        return ReadEnd::Ended(end);
      }
    }
    if let Some(e) = found.failure {
      return ReadEnd::Ended(Ended::Failed(e));
    }
    if found.goodbye {
      return ReadEnd::Ended(ended(Ended::Goodbye));
    }
    if let Some(e) = found.dropped {
      return ReadEnd::Ended(ended(Ended::Dropped(e)));
    }
    if found.pings > 0 {
      answer_pings(link, found.pings);
    }

    // A large frame gets one allocation of its exact size, only once its size passed the limit.
    let frame_size = reading.frame_size(&buf, link.max_message_size);
    let want = match frame_size {
      Some(size) => size.max(buf.len() + read_size),
      None => buf.len() + read_size,
    };
    if buf.capacity() < want {
      buf.reserve(want - buf.len());
    }
    let room = buf.capacity() - buf.len();

    // A partial frame starts the frame clock (slowloris); time spent waiting for JS is ours, not
    // the peer's, so it does not count.
    if buf.is_empty() {
      frame_started = None;
    } else if frame_started.is_none() {
      frame_started = Some(tokio::time::Instant::now());
    }
    // Quiet, at a frame boundary, and the event loop turns again: it reads from here on.
    if let Some(reads) = reads {
      if buf.is_empty() && reads.may_take_back(link.events, link.inbound) && !stream.has_input() {
        return ReadEnd::Quiet(buf, reading);
      }
    }
    let pause_began = tokio::time::Instant::now();
    life.paused.store(true, Ordering::Relaxed);
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled(), if stop_on_shutdown => return ReadEnd::Ended(Ended::Shutdown),
      _ = dead.cancelled() => return ReadEnd::Ended(ended(Ended::PeerClosed)),
      _ = link.outbox.evicted.cancelled() => return ReadEnd::Ended(too_slow(link)),
      _ = link.events.wait_for_room(link.inbound) => {}
    }
    life.paused.store(false, Ordering::Relaxed);
    if let Some(started) = &mut frame_started {
      *started += pause_began.elapsed();
    }
    let deadline = frame_started.zip(link.frame_timeout).map(|(t, limit)| t + limit);
    // A large frame is read into memory of exactly its size and handed to JS whole: the bytes the
    // kernel copies in are the bytes the listener's Buffer shows, with no copy into the batch.
    if let Some(size) = frame_size {
      if size >= ATTACH_FROM && buf.len() < size {
        match read_whole_frame(stream, &mut buf, size, link, dead, life, deadline, stop_on_shutdown).await {
          Ok(frame) => match codec::next_frame(&frame, link.max_message_size).map(|f| f.map(|f| codec::validate(&f))) {
            Ok(Some(Ok(()))) => {
              if !closing_session(link) {
                let data = usize::from(codec::carries_data(frame[codec::LEN_PREFIX]));
                let mark = if data > 0 { link.outbox.received(data) } else { None };
                link.events.push_attached(link.id, frame, mark);
              }
            }
            Ok(Some(Err(e))) | Err(e) => return ReadEnd::Ended(Ended::Failed(e.into())),
            Ok(None) => unreachable!("read_whole_frame returns a complete frame"),
          },
          Err(end) => return ReadEnd::Ended(ended(end)),
        }
        continue;
      }
    }
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled(), if stop_on_shutdown => return ReadEnd::Ended(Ended::Shutdown),
      _ = dead.cancelled() => return ReadEnd::Ended(ended(Ended::PeerClosed)),
      _ = link.outbox.evicted.cancelled() => return ReadEnd::Ended(too_slow(link)),
      _ = expires(deadline) => return ReadEnd::Ended(Ended::Cut(frame_timed_out(link))),
      ready = stream.readable() => {
        if ready.is_err() {
          return ReadEnd::Ended(ended(Ended::PeerClosed));
        }
        match stream.try_read_buf(&mut buf) {
          Ok(0) if buf.is_empty() => return ReadEnd::Ended(ended(Ended::PeerClosed)),
          Ok(0) => {
            return ReadEnd::Ended(Ended::Cut(IpcError::Protocol(format!(
              "the peer closed the connection in the middle of a frame ({} bytes of it had arrived)",
              buf.len()
            ))))
          }
          Ok(n) => {
            life.heard();
            if n == room {
              read_size = (read_size * 4).min(READ_CHUNK);
            }
          }
          Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
          Err(_) => return ReadEnd::Ended(ended(Ended::PeerClosed)),
        }
      }
    }
  }
}

fn closing_session(link: &Link<'_>) -> bool {
  link.peer_received.is_some() && link.shutdown.is_cancelled()
}

fn too_slow(link: &Link<'_>) -> Ended {
  Ended::TooSlow(IpcError::SlowClient(link.outbox.limits.max_buffered))
}

/// Resolves at `deadline`; never without one.
async fn expires(deadline: Option<tokio::time::Instant>) {
  match deadline {
    Some(at) => tokio::time::sleep_until(at).await,
    None => std::future::pending().await,
  }
}

fn frame_timed_out(link: &Link<'_>) -> IpcError {
  IpcError::FrameTimeout(link.frame_timeout.unwrap_or_default().as_millis())
}


/// Reads the rest of a `size`-byte frame whose beginning is in `buf`, and nothing past it.
#[allow(clippy::too_many_arguments)]
async fn read_whole_frame(
  stream: &Socket,
  buf: &mut BytesMut,
  size: usize,
  link: &Link<'_>,
  dead: &CancellationToken,
  life: &Liveness,
  deadline: Option<tokio::time::Instant>,
  stop_on_shutdown: bool,
) -> Result<Vec<u8>, Ended> {
  let mut frame = Vec::with_capacity(size);
  frame.extend_from_slice(buf);
  buf.clear();
  while frame.len() < size {
    tokio::select! {
      biased;
      _ = link.shutdown.cancelled(), if stop_on_shutdown => return Err(Ended::Shutdown),
      _ = dead.cancelled() => return Err(Ended::PeerClosed),
      _ = link.outbox.evicted.cancelled() => return Err(too_slow(link)),
      _ = expires(deadline) => return Err(Ended::Cut(frame_timed_out(link))),
      ready = stream.readable() => {
        if ready.is_err() {
          return Err(Ended::PeerClosed);
        }
        let remaining = size - frame.len();
        match stream.try_read_buf(&mut (&mut frame).limit(remaining)) {
          Ok(0) => {
            return Err(Ended::Cut(IpcError::Protocol(format!(
              "the peer closed the connection in the middle of a frame ({} of its {size} bytes had arrived)",
              frame.len()
            ))))
          }
          Ok(_) => life.heard(),
          Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
          Err(_) => return Err(Ended::PeerClosed),
        }
      }
    }
  }
  Ok(frame)
}
