//! The writer: drains the outbox onto the socket, flushes on close (a session says goodbye), and
//! when the connection is dropped, finishes the frame in flight and tells the peer why.

use crate::codec::{self, kind};
use crate::ended::CLOSE_FLUSH_TIMEOUT;
use crate::events::kind as events_kind;
use crate::link::Link;
use crate::codec::frame_remainder;
use crate::outbox::{recycle, Outbox};
use crate::transport::Socket;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why we drop the connection, as the `CLOSE_REASON` frame for the peer, and how long to try.
pub(crate) type Farewell = Mutex<Option<(Vec<u8>, Duration)>>;

/// The connection is being dropped. If there is a reason to give (see `Ended::farewell`), the
/// frame being written is finished (the peer can only find the reason after it), the reason
/// follows, then a half-close; the rest of what was queued is dropped at once.
///
/// That runs on a task of its own, which holds the socket open until it is done: the connection
/// ends now (its close event, the server's bookkeeping), whether or not the peer reads.
fn say_farewell(stream: &Arc<Socket>, hand: InHand, link: &Link<'_>, farewell: &Farewell) -> io::Result<()> {
  let Some((reason, patience)) = farewell.lock().unwrap_or_else(|p| p.into_inner()).take() else {
    return Ok(());
  };
  let mut bytes = match hand.next() {
    Some(_) => hand.unfinished_frame().to_vec(),
    // The writer was idle: a direct write may have begun a frame.
    None => link.outbox.seal(),
  };
  drop(hand);
  bytes.extend_from_slice(&reason);
  let stream = stream.clone();
  tokio::spawn(async move {
    let say = async {
      let mut rest = &bytes[..];
      while !rest.is_empty() {
        rest = &rest[write_some(&stream, rest).await?..];
      }
      stream.shutdown_write()
    };
    let _ = tokio::time::timeout(patience, say).await;
  });
  Ok(())
}

/// Writes some of `bytes` once the socket is writable.
async fn write_some(stream: &Socket, bytes: &[u8]) -> io::Result<usize> {
  loop {
    stream.writable().await?;
    match stream.try_write(bytes) {
      Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
      Ok(n) => return Ok(n),
      Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
      Err(e) => return Err(e),
    }
  }
}

/// Bytes the writer has taken and not yet written: pieces first, then the coalesced buffer.
#[derive(Default)]
struct InHand {
  pieces: VecDeque<Bytes>,
  /// Bytes of the first piece already written.
  piece_written: usize,
  buf: Vec<u8>,
  buf_written: usize,
  /// Leading bytes of the first piece (or of `buf`, without pieces) that end a frame a direct
  /// write began; frames start after them.
  lead: usize,
}

impl InHand {
  fn next(&self) -> Option<&[u8]> {
    match self.pieces.front() {
      Some(piece) => Some(&piece[self.piece_written..]),
      None if self.buf_written < self.buf.len() => Some(&self.buf[self.buf_written..]),
      None => None,
    }
  }

  fn consumed(&mut self, n: usize) {
    match self.pieces.front() {
      Some(piece) if self.piece_written + n < piece.len() => self.piece_written += n,
      Some(_) => {
        recycle(self.pieces.pop_front().expect("front exists"));
        self.piece_written = 0;
        self.lead = 0;
      }
      None => self.buf_written += n,
    }
  }

  fn refill(&mut self, outbox: &Outbox) {
    let taken = outbox.take(std::mem::take(&mut self.buf));
    self.pieces = taken.pieces;
    self.piece_written = 0;
    self.buf = taken.buf;
    self.buf_written = 0;
    self.lead = taken.lead;
  }

  /// The bytes that end the frame the stream is in the middle of (none at a frame boundary).
  fn unfinished_frame(&self) -> &[u8] {
    let (bytes, written) = match self.pieces.front() {
      Some(piece) => (&piece[..], self.piece_written),
      None => (&self.buf[..], self.buf_written),
    };
    if written < self.lead {
      return &bytes[written..self.lead];
    }
    let frames = &bytes[self.lead..];
    let at = written - self.lead;
    let rest = frame_remainder(frames, at);
    // At a boundary `frame_remainder` measures the whole next frame, which is not begun.
    let at_boundary = at == 0 || frame_remainder(frames, at - 1) == 1;
    if at_boundary {
      return &[];
    }
    &bytes[written..(written + rest).min(bytes.len())]
  }
}

/// Writes `n` more bytes off the hand; a `DRAIN` event follows if that emptied the buffer.
fn account(hand: &mut InHand, n: usize, link: &Link<'_>) {
  hand.consumed(n);
  if let Some(episode) = link.outbox.wrote(n) {
    link.events.push(events_kind::DRAIN, link.id, &episode.to_be_bytes());
  }
}

pub(crate) async fn write_loop(
  stream: &Arc<Socket>,
  link: &Link<'_>,
  dead: &CancellationToken,
  finish: &CancellationToken,
  session: bool,
  farewell: &Farewell,
) -> io::Result<()> {
  let mut hand = InHand::default();
  loop {
    let Some(bytes) = hand.next() else {
      link.outbox.written();
      stream.writer_idle();
      tokio::select! {
        biased;
        _ = dead.cancelled() => return say_farewell(stream, hand, link, farewell),
        _ = link.shutdown.cancelled() => break,
        _ = finish.cancelled() => break,
        _ = link.outbox.ready.notified() => {}
      }
      hand.refill(link.outbox);
      continue;
    };
    tokio::select! {
      biased;
      _ = dead.cancelled() => return say_farewell(stream, hand, link, farewell),
      _ = link.shutdown.cancelled() => break,
      _ = finish.cancelled() => break,
      n = write_some(stream, bytes) => account(&mut hand, n?, link),
    }
  }
  // Closing: what was sent before close() still goes out, then a half-close tells the peer
  // that was the last of it. A peer that stops reading cannot hold the close up for long. A
  // session says GOODBYE first and waits for the acknowledgement of everything it sent.
  let goodbye = session && !finish.is_cancelled();
  let flush = async {
    for refill in [false, true, goodbye] {
      if refill {
        hand.refill(link.outbox);
      }
      while let Some(bytes) = hand.next() {
        let n = write_some(stream, bytes).await?;
        account(&mut hand, n, link);
      }
      // Before the goodbye, acknowledge what our listeners handled (the last refill sends it):
      // the peer then need not re-send it to whoever it talks to next.
      if refill && goodbye {
        link.outbox.wait_for(|s| s.acked_out >= s.received).await;
      }
    }
    if goodbye {
      let mut frame = Vec::new();
      codec::encode_control(&mut frame, kind::GOODBYE);
      let mut rest = &frame[..];
      while !rest.is_empty() {
        rest = &rest[write_some(stream, rest).await?..];
      }
      link.outbox.wait_for(|s| s.sent.is_empty()).await;
    }
    stream.shutdown_write()
  };
  tokio::select! {
    _ = dead.cancelled() => Ok(()),
    r = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush) => r.unwrap_or(Ok(())),
  }
}
