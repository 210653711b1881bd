//! JSON messages as JS hands them over in one call (`lib/outgoing.js`, `appendText`): one
//! string holding, per run of messages to the same target on the same topic, the topic and
//! then each message's JSON followed by '\n' (JSON never holds a raw newline), and the runs as
//! (target, topic bytes, count). Framing them here costs JS one UTF-8 conversion per batch
//! instead of one Buffer write per message.

use crate::codec::{kind, LEN_PREFIX};

/// Appends the messages as wire frames (`MESSAGE_JSON`, PROTOCOL.md), each preceded by its u32
/// target when `targeted` (a server's batch). Returns how many, or what is malformed.
pub fn frame_texts(texts: &[u8], runs: &[u32], targeted: bool, out: &mut Vec<u8>) -> Result<usize, &'static str> {
  if !runs.len().is_multiple_of(3) {
    return Err("runs are (target, topic bytes, count) triples");
  }
  let mut rest = texts;
  let mut count = 0;
  out.reserve(texts.len() + runs.len() / 3 * 16);
  for run in runs.chunks_exact(3) {
    let (target, topic_len, messages) = (run[0], run[1] as usize, run[2] as usize);
    if topic_len > u16::MAX as usize || rest.len() < topic_len {
      return Err("a run's topic is longer than the text or than a topic may be");
    }
    let (topic, after) = rest.split_at(topic_len);
    rest = after;
    for _ in 0..messages {
      let Some(end) = memchr::memchr(b'\n', rest) else {
        return Err("fewer messages in the text than the runs count");
      };
      let payload = &rest[..end];
      rest = &rest[end + 1..];
      // target | len | kind | topic length, written as one piece.
      let len = ((1 + 2 + topic.len() + payload.len()) as u32).to_be_bytes();
      let topic_len = (topic.len() as u16).to_be_bytes();
      let t = target.to_be_bytes();
      let head = [t[0], t[1], t[2], t[3], len[0], len[1], len[2], len[3], kind::MESSAGE_JSON, topic_len[0], topic_len[1]];
      out.extend_from_slice(if targeted { &head } else { &head[4..] });
      out.extend_from_slice(topic);
      out.extend_from_slice(payload);
      count += 1;
    }
  }
  if !rest.is_empty() {
    return Err("more text than the runs count");
  }
  debug_assert!(out.len() >= count * (LEN_PREFIX + 3));
  Ok(count)
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::codec;

  #[test]
  fn runs_of_texts_become_the_frames_js_would_have_written() {
    let texts = b"t{\"a\":1}\n2\nother\"x\"\n";
    let mut out = Vec::new();
    assert_eq!(frame_texts(texts, &[7, 1, 2, 9, 5, 1], true, &mut out), Ok(3));
    let mut expected = Vec::new();
    for (target, topic, payload) in [(7u32, "t", "{\"a\":1}"), (7, "t", "2"), (9, "other", "\"x\"")] {
      expected.extend_from_slice(&target.to_be_bytes());
      let mut body = vec![(topic.len() >> 8) as u8, topic.len() as u8];
      body.extend_from_slice(topic.as_bytes());
      body.extend_from_slice(payload.as_bytes());
      codec::encode_frame(&mut expected, kind::MESSAGE_JSON, &body);
    }
    assert_eq!(out, expected);
  }

  #[test]
  fn texts_that_do_not_match_their_runs_are_refused() {
    let mut out = Vec::new();
    assert!(frame_texts(b"t1\n", &[0, 1, 2], false, &mut out).is_err());
    assert!(frame_texts(b"t1\n2\n", &[0, 1, 1], false, &mut out).is_err());
    assert!(frame_texts(b"t", &[0, 5, 0], false, &mut out).is_err());
    assert!(frame_texts(b"", &[0, 0], false, &mut out).is_err());
  }
}
