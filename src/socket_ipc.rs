//! The wire of `@crussell52/socket-ipc` 0.4 (`protocol: 'socket-ipc'`), so a native Server can
//! serve that library's clients, and a native Client talk to its servers, during a migration.
//!
//! Each message is the UTF-8 text of `JSON.stringify({topic, message})` followed by two NUL
//! bytes. There is no hello, no length prefix and no ping. JSON escapes NUL, so a message's text
//! never contains the delimiter.
//!
//! Inside the core such a message travels as a frame of kind `TEXT`, which never appears on the
//! native wire: JS encodes outgoing ones (body: the text and its delimiter, so the outbox only
//! strips the frame header), and the reader hands incoming texts to JS in `TEXT` records, or
//! several at once in a `TEXT_GROUP`, which JS reads with one `JSON.parse`.

use crate::codec::{self, FrameError};
use crate::error::IpcError;

/// Outgoing (JS to core): one message, body = text + delimiter. Incoming (core to JS, record
/// kind): one message's text. Not a native frame kind: a native peer sending it breaks the protocol.
pub const TEXT: u8 = 0x14;
/// Record kind (core to JS): `count: u32 | count × text_len: u32 | [text, text, …]`, for texts
/// that each stand alone as an array element (`codec::stands_alone`), so the array parses to
/// exactly one value per message.
pub const TEXT_GROUP: u8 = 0x15;
pub const DELIMITER: &[u8; 2] = b"\0\0";

/// The wire bytes of JS's `TEXT` frames: their bodies, back to back.
pub fn unwrap(frames: &[u8], out: &mut Vec<u8>) {
  let mut rest = frames;
  while rest.len() > codec::LEN_PREFIX {
    let len = u32::from_be_bytes(rest[..codec::LEN_PREFIX].try_into().unwrap()) as usize;
    let Some(frame) = rest.get(codec::LEN_PREFIX..codec::LEN_PREFIX + len) else {
      break;
    };
    debug_assert_eq!(frame[0], TEXT, "JS sends only TEXT frames on the socket-ipc wire");
    out.extend_from_slice(&frame[1..]);
    rest = &rest[codec::LEN_PREFIX + len..];
  }
}

/// Messages in wire bytes we encoded: each ends with the only two NULs it has.
pub fn count(wire: &[u8]) -> usize {
  wire.iter().filter(|&&b| b == 0).count() / 2
}

/// After `written` bytes of `wire` went out, how many more complete the message they stopped in.
pub fn remainder(wire: &[u8], written: usize) -> usize {
  let mut nuls = 0;
  for (i, &b) in wire.iter().enumerate() {
    if b == 0 {
      nuls += 1;
      if nuls % 2 == 0 && i + 1 > written {
        return i + 1 - written;
      }
    }
  }
  0
}

/// Finds whole messages in what the reader has buffered, scanning each byte once however the
/// text arrives (a byte-by-byte trickle of a large message stays linear).
#[derive(Debug, Default)]
pub struct Splitter {
  /// Bytes at the front of the buffer already searched for a delimiter, without finding one.
  scanned: usize,
  /// The start of the stream was checked for a native hello.
  checked: bool,
}

/// What `Splitter::split` found.
#[derive(Debug, Default)]
pub struct Split {
  /// Bytes of whole messages, delimiters included, at the front of the buffer.
  pub complete: usize,
  /// The message in progress is already over `maxMessageSize`, or the peer speaks the native
  /// protocol.
  pub failure: Option<IpcError>,
}

/// A native hello starts with these: the length (three high bytes always 0), the HELLO kind and
/// the magic.
const NATIVE_HELLO_START: usize = codec::LEN_PREFIX + 1 + codec::MAGIC.len();

impl Splitter {
  /// The caller removes the `complete` bytes from the front of `buf` before the next call.
  pub fn split(&mut self, buf: &[u8], max_message_size: usize) -> Split {
    if !self.checked {
      // A socket-ipc text never starts with NUL; a native client's hello does. Tell that client
      // what is wrong instead of reporting its hello as broken messages.
      let zeros = buf.len().min(3);
      if buf[..zeros] == [0, 0, 0][..zeros] && buf.len() < NATIVE_HELLO_START {
        return Split::default();
      }
      self.checked = true;
      if buf.len() >= NATIVE_HELLO_START
        && buf[..3] == [0, 0, 0]
        && buf[codec::LEN_PREFIX] == codec::kind::HELLO
        && buf[codec::LEN_PREFIX + 1..NATIVE_HELLO_START] == codec::MAGIC[..]
      {
        let problem = "a native-socket-ipc client connected to this server, which has protocol 'socket-ipc'; set the same protocol option on both ends";
        return Split {
          complete: 0,
          failure: Some(IpcError::Protocol(problem.into())),
        };
      }
    }
    let mut found = Split::default();
    let mut from = self.scanned;
    loop {
      let start = found.complete;
      match find_delimiter(&buf[from..]) {
        Some(at) => {
          let end = from + at;
          if end - start > max_message_size {
            found.failure = Some(too_large(end - start, max_message_size).into());
            break;
          }
          found.complete = end + DELIMITER.len();
          from = found.complete;
        }
        None => {
          // A NUL at the very end may be the first half of the delimiter, not part of the text.
          let rest = &buf[start..];
          let pending = rest.len() - usize::from(rest.last() == Some(&0));
          if pending > max_message_size {
            found.failure = Some(too_large(pending, max_message_size).into());
          }
          // A NUL at the very end may be the first half of the next delimiter.
          self.scanned = (buf.len() - start).saturating_sub(1);
          break;
        }
      }
    }
    if found.failure.is_some() {
      self.scanned = 0;
    }
    found
  }
}

fn find_delimiter(bytes: &[u8]) -> Option<usize> {
  let mut i = 0;
  while let Some(nul) = bytes[i..].iter().position(|&b| b == 0) {
    let at = i + nul;
    match bytes.get(at + 1) {
      Some(0) => return Some(at),
      Some(_) => i = at + 1,
      None => return None,
    }
  }
  None
}

fn too_large(len: usize, max: usize) -> FrameError {
  FrameError::TooLarge { len, max }
}

/// The texts of the whole messages in `complete` (as `Splitter::split` measured it).
pub fn texts(complete: &[u8]) -> impl Iterator<Item = &[u8]> {
  let body = complete.strip_suffix(DELIMITER).unwrap_or(complete);
  let mut rest = (!complete.is_empty()).then_some(body);
  std::iter::from_fn(move || {
    let current = rest?;
    match find_delimiter(current) {
      Some(at) => {
        rest = Some(&current[at + DELIMITER.len()..]);
        Some(&current[..at])
      }
      None => {
        rest = None;
        Some(current)
      }
    }
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  fn text_frame(text: &str) -> Vec<u8> {
    let mut f = Vec::new();
    let body = [text.as_bytes(), DELIMITER].concat();
    codec::encode_frame(&mut f, TEXT, &body);
    f
  }

  #[test]
  fn unwrap_strips_frame_headers_and_keeps_delimiters() {
    let frames = [
      text_frame(r#"{"topic":"a","message":1}"#),
      text_frame(r#"{"topic":"b"}"#),
    ]
    .concat();
    let mut out = Vec::new();
    unwrap(&frames, &mut out);
    assert_eq!(out, b"{\"topic\":\"a\",\"message\":1}\0\0{\"topic\":\"b\"}\0\0");
    assert_eq!(count(&out), 2);
  }

  #[test]
  fn remainder_finishes_the_message_a_write_stopped_in() {
    let wire = b"ab\0\0cd\0\0";
    assert_eq!(remainder(wire, 1), 3);
    assert_eq!(remainder(wire, 3), 1, "between the two NULs");
    assert_eq!(remainder(wire, 4), 4, "at a boundary the next message counts");
    assert_eq!(remainder(wire, 8), 0);
  }

  #[test]
  fn messages_split_at_any_chunk_boundary_are_found_once() {
    let stream = b"{\"topic\":\"t\",\"message\":\"x\"}\0\0{\"message\":null}\0\0";
    for cut in 0..stream.len() {
      let mut splitter = Splitter::default();
      let mut buf = stream[..cut].to_vec();
      let mut seen = Vec::new();
      let first = splitter.split(&buf, 1024);
      seen.extend(texts(&buf[..first.complete]).map(<[u8]>::to_vec));
      buf.drain(..first.complete);
      buf.extend_from_slice(&stream[cut..]);
      let second = splitter.split(&buf, 1024);
      seen.extend(texts(&buf[..second.complete]).map(<[u8]>::to_vec));
      assert_eq!(second.complete, buf.len(), "cut at {cut}");
      assert_eq!(
        seen,
        vec![
          b"{\"topic\":\"t\",\"message\":\"x\"}".to_vec(),
          b"{\"message\":null}".to_vec()
        ],
        "cut at {cut}"
      );
    }
  }

  #[test]
  fn stray_nuls_split_as_the_javascript_library_splits() {
    // "a\0\0\0b\0\0" splits into "a" and "\0b", as String#split("\0\0") does.
    let buf = b"a\0\0\0b\0\0\0\0";
    let found = Splitter::default().split(buf, 1024);
    assert_eq!(found.complete, buf.len());
    let parts: Vec<&[u8]> = texts(buf).collect();
    assert_eq!(parts, vec![&b"a"[..], &b"\0b"[..], &b""[..]]);
  }

  fn too_large_by_one(found: Split) -> bool {
    matches!(found.failure, Some(IpcError::MessageTooLarge(m)) if m.contains("11-byte"))
  }

  #[test]
  fn a_message_over_the_limit_fails_before_its_end_arrives() {
    let mut splitter = Splitter::default();
    assert!(splitter.split(b"0123456789", 10).failure.is_none());
    assert!(too_large_by_one(splitter.split(b"0123456789a", 10)));
    assert!(too_large_by_one(Splitter::default().split(b"0123456789a\0\0", 10)));
    assert_eq!(Splitter::default().split(b"0123456789\0\0", 10).complete, 12);
    assert!(
      Splitter::default().split(b"0123456789\0", 10).failure.is_none(),
      "half a delimiter is not text"
    );
  }

  #[test]
  fn a_native_hello_is_named_for_what_it_is() {
    let mut hello = Vec::new();
    codec::encode_hello(&mut hello);
    let mut splitter = Splitter::default();
    let found = splitter.split(&hello[..6], 1024);
    assert_eq!(
      (found.complete, found.failure.is_none()),
      (0, true),
      "waits for the magic"
    );
    let found = splitter.split(&hello, 1024);
    assert!(matches!(found.failure, Some(IpcError::Protocol(m)) if m.contains("protocol 'socket-ipc'")));
  }
}
