//! The fuzz targets' per-input checks (`fuzz/harness.rs`), replayed without a fuzzer on the
//! committed seeds (`fuzz/corpus/<target>/`), on every minimised crasher the fuzzer ever found
//! (`fuzz/regressions/<target>/`), and on hand-made hostile inputs.
//!
//! Run with `cargo test --no-default-features`. To add a crasher: minimise it
//! (`cargo fuzz tmin <target> <artifact>`) and copy it into `fuzz/regressions/<target>/`.
//! Each harness call runs its own current-thread runtime, so these are plain `#[test]`s.
//!
//! Unix only: the harness drives connections over Unix socketpairs.
#![cfg(unix)]

#[path = "../fuzz/harness.rs"]
mod harness;

use native_socket_ipc::codec::{self, kind};
use std::path::PathBuf;

/// A target's per-input check.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 5] = [
  ("frames", harness::frames),
  ("handshake", harness::handshake),
  ("offer", harness::offer),
  ("stream", harness::stream),
  ("socket_ipc", harness::socket_ipc),
];

fn fuzz_dir(sub: &str, target: &str) -> PathBuf {
  PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    .join("fuzz")
    .join(sub)
    .join(target)
}

/// Every file in `fuzz/<sub>/<target>/`, by name (none if the directory does not exist).
fn files(sub: &str, target: &str) -> Vec<(String, Vec<u8>)> {
  let Ok(entries) = std::fs::read_dir(fuzz_dir(sub, target)) else {
    return Vec::new();
  };
  let mut out: Vec<(String, Vec<u8>)> = entries
    .map(|e| e.expect("readable directory entry").path())
    .filter(|p| p.is_file())
    .map(|p| {
      (
        p.file_name().unwrap().to_string_lossy().into_owned(),
        std::fs::read(&p).expect("readable input"),
      )
    })
    .collect();
  out.sort();
  out
}

/// Runs `check` on `input`, naming the input if it panics.
fn replay(target: &str, name: &str, check: Check, input: &[u8]) {
  let outcome = std::panic::catch_unwind(|| check(input));
  if let Err(panic) = outcome {
    let message = panic
      .downcast_ref::<String>()
      .map(String::as_str)
      .or_else(|| panic.downcast_ref::<&str>().copied())
      .unwrap_or("(non-string panic)");
    panic!(
      "{target} failed on {name} ({} bytes: {input:02x?}): {message}",
      input.len()
    );
  }
}

#[test]
fn seed_corpus_passes() {
  for (target, check) in TARGETS {
    let seeds = files("corpus", target);
    assert!(
      !seeds.is_empty(),
      "no seeds in {}",
      fuzz_dir("corpus", target).display()
    );
    for (name, input) in seeds {
      replay(target, &format!("corpus/{target}/{name}"), check, &input);
    }
  }
}

#[test]
fn every_recorded_crasher_stays_fixed() {
  for (target, check) in TARGETS {
    for (name, input) in files("regressions", target) {
      replay(target, &format!("regressions/{target}/{name}"), check, &input);
    }
  }
}

// ===== Hand-made hostile inputs =====

fn frame(frame_kind: u8, body: &[u8]) -> Vec<u8> {
  let mut out = Vec::new();
  codec::encode_frame(&mut out, frame_kind, body);
  out
}

fn message(frame_kind: u8, topic: &str, payload: &[u8]) -> Vec<u8> {
  let mut out = Vec::new();
  codec::encode_message(&mut out, frame_kind, topic, payload);
  out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
  parts.concat()
}

/// Streams that follow a hello: each goes to `stream` as is, and to `frames` and `handshake`
/// behind a hello, so one list covers the three targets.
fn hostile_streams() -> Vec<(String, Vec<u8>)> {
  let mut out: Vec<(String, Vec<u8>)> = vec![
    (
      "4 GiB length header".into(),
      vec![0xff, 0xff, 0xff, 0xff, kind::MESSAGE_BINARY, 0, 1, b'x'],
    ),
    ("length u32::MAX alone".into(), vec![0xff; 4]),
    ("length 2^31".into(), vec![0x80, 0, 0, 0, kind::MESSAGE_JSON]),
    (
      "length just over 8 MiB".into(),
      ((8 << 20) + 1u32).to_be_bytes().to_vec(),
    ),
    ("zero length".into(), vec![0, 0, 0, 0]),
    (
      "zero length after a message".into(),
      cat(&[&message(kind::MESSAGE_JSON, "t", b"1"), &[0, 0, 0, 0]]),
    ),
    ("truncated length prefix".into(), vec![0, 0]),
    ("length with no kind byte".into(), vec![0, 0, 0, 1]),
    ("message with no topic length".into(), frame(kind::MESSAGE_JSON, &[])),
    (
      "message with half a topic length".into(),
      frame(kind::MESSAGE_JSON, &[0]),
    ),
    (
      "topic longer than the body".into(),
      frame(kind::MESSAGE_JSON, &[0xff, 0xff, b'a']),
    ),
    (
      "topic not UTF-8".into(),
      frame(kind::MESSAGE_BINARY, &[0, 2, 0xc3, 0x28, 1]),
    ),
    ("request without id".into(), frame(kind::REQUEST_JSON, &[0, 0, 0])),
    ("reply without id".into(), frame(kind::REPLY_BINARY, &[1, 2])),
    (
      "reply error without status".into(),
      frame(kind::REPLY_ERROR, &[0, 0, 0, 1]),
    ),
    ("ping with a body".into(), frame(kind::PING, b"x")),
    ("second hello".into(), {
      let mut v = Vec::new();
      codec::encode_hello(&mut v);
      v
    }),
    ("reject after the hello".into(), frame(kind::REJECT, b"nope")),
    ("many pings".into(), frame(kind::PING, b"").repeat(2000)),
    (
      "JSON group with a bleeding payload".into(),
      cat(&[
        &message(kind::MESSAGE_JSON, "a", b"1"),
        &message(kind::MESSAGE_JSON, "a", b"2,3"),
        &message(kind::MESSAGE_JSON, "b", b"[4]"),
        &message(kind::MESSAGE_JSON, "b", b"\"5\""),
      ]),
    ),
    (
      "large frame announced, then EOF".into(),
      cat(&[&(100_000u32).to_be_bytes()[..], &[kind::MESSAGE_BINARY, 0, 0]]),
    ),
    (
      "large binary message, whole".into(),
      message(kind::MESSAGE_BINARY, "big", &vec![0xab; 70_000]),
    ),
    (
      "large JSON message between small ones".into(),
      cat(&[
        &message(kind::MESSAGE_JSON, "s", b"1"),
        &message(
          kind::MESSAGE_JSON,
          "big",
          &[b"\"".as_slice(), &vec![b'x'; 70_000], b"\""].concat(),
        ),
        &message(kind::MESSAGE_JSON, "s", b"2"),
      ]),
    ),
    ("large unknown kind".into(), frame(0x7f, &vec![0; 70_000])),
  ];
  // Authentication kinds are for the hello only: after it, every one of them is a protocol error.
  for auth_kind in 0x30..=0x3f {
    out.push((
      format!("kind 0x{auth_kind:02x} after the hello"),
      frame(auth_kind, &[0; 64]),
    ));
    out.push((
      format!("empty kind 0x{auth_kind:02x} after the hello"),
      frame(auth_kind, b""),
    ));
  }
  for unknown in [0x00, 0x04, 0x0e, 0x12, 0x25, 0x2f, 0x40, 0x80, 0xff] {
    out.push((format!("unknown kind 0x{unknown:02x}"), frame(unknown, b"ab")));
  }
  out
}

#[test]
fn hostile_streams_after_the_hello() {
  let hello = harness::hello();
  for (name, after) in hostile_streams() {
    replay("frames", &name, harness::frames, &after);
    replay("frames", &name, harness::frames, &cat(&[&hello, &after]));
    for limit in [0u8, 1] {
      replay("stream", &name, harness::stream, &cat(&[&[limit], &after]));
    }
    for server in [0u8, 1] {
      replay(
        "handshake",
        &name,
        harness::handshake,
        &cat(&[&[server], &hello, &after]),
      );
    }
  }
}

/// First bytes of a connection that are not a good hello, against both servers.
#[test]
fn hostile_hellos() {
  let hello = harness::hello();
  let mut cases: Vec<(String, Vec<u8>)> = vec![
    ("nothing".into(), vec![]),
    ("truncated hello".into(), hello[..7].to_vec()),
    ("hello missing its last byte".into(), hello[..hello.len() - 1].to_vec()),
    ("hello with a short body".into(), frame(kind::HELLO, b"NSIPC")),
    ("hello with a wrong magic".into(), frame(kind::HELLO, b"NSIPX\x01\x00")),
    ("hello of version 0".into(), frame(kind::HELLO, b"NSIPC\x00\x00")),
    ("hello of version 2".into(), frame(kind::HELLO, b"NSIPC\x02\x00")),
    (
      "hello with extensions".into(),
      frame(kind::HELLO, b"NSIPC\x01\xff extension bytes"),
    ),
    (
      "hello at the size limit".into(),
      frame(kind::HELLO, &[&b"NSIPC\x01\x00"[..], &[0; 248]].concat()),
    ),
    (
      "hello one over the size limit".into(),
      frame(kind::HELLO, &[&b"NSIPC\x01\x00"[..], &[0; 249]].concat()),
    ),
    ("4 GiB hello".into(), vec![0xff, 0xff, 0xff, 0xff, kind::HELLO]),
    ("zero-length hello".into(), vec![0, 0, 0, 0, kind::HELLO]),
    (
      "a reject instead of a hello".into(),
      frame(kind::REJECT, b"\xff\xfe not UTF-8"),
    ),
    (
      "a message instead of a hello".into(),
      message(kind::MESSAGE_JSON, "t", b"1"),
    ),
    ("HTTP".into(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
    (
      "TLS ClientHello start".into(),
      vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03],
    ),
  ];
  // The secret's exchange: after a good hello, the client's proof in every wrong shape.
  for size in [0usize, 1, 31, 32, 33, 63, 64, 65, 251, 252] {
    let body = vec![0x5a; size];
    cases.push((
      format!("hello + AUTH_PROOF of {size} bytes"),
      cat(&[&hello, &frame(kind::AUTH_PROOF, &body)]),
    ));
  }
  cases.push((
    "hello + AUTH_PROOF over the hello limit".into(),
    cat(&[&hello, &frame(kind::AUTH_PROOF, &[0; 300])]),
  ));
  cases.push((
    "hello + truncated AUTH_PROOF".into(),
    cat(&[&hello, &frame(kind::AUTH_PROOF, &[0; 64])[..20]]),
  ));
  cases.push((
    "hello + 4 GiB AUTH_PROOF".into(),
    cat(&[&hello, &[0xff, 0xff, 0xff, 0xff, kind::AUTH_PROOF]]),
  ));
  cases.push((
    "hello + two proofs".into(),
    cat(&[
      &hello,
      &frame(kind::AUTH_PROOF, &[1; 64]),
      &frame(kind::AUTH_PROOF, &[2; 64]),
    ]),
  ));
  for auth_kind in 0x30..=0x3f {
    cases.push((
      format!("hello + kind 0x{auth_kind:02x} (64 bytes)"),
      cat(&[&hello, &frame(auth_kind, &[0; 64])]),
    ));
  }
  cases.push((
    "hello + a message instead of a proof".into(),
    cat(&[&hello, &message(kind::MESSAGE_JSON, "t", b"1")]),
  ));
  for (name, wire) in cases {
    for server in [0u8, 1] {
      replay("handshake", &name, harness::handshake, &cat(&[&[server], &wire]));
    }
    replay("frames", &name, harness::frames, &wire);
  }
}

#[test]
fn empty_inputs_are_fine() {
  for (_, check) in TARGETS {
    check(&[]);
    check(&[0]);
    check(&[1]);
  }
}

/// The fake server found by the JS security tests: it challenges, takes the proof, then sends a
/// plain HELLO instead of AUTH_OK. A client with a secret must refuse it.
#[test]
fn a_fake_server_that_skips_auth_ok_never_connects_a_client_with_a_secret() {
  let mut wire = vec![1u8]; // odd selector: the client has the secret
  wire.extend_from_slice(&[0, 0, 0, 33, 0x30]);
  wire.extend_from_slice(&[7u8; 32]);
  wire.extend_from_slice(&[0, 0, 0, 8, 1, b'N', b'S', b'I', b'P', b'C', 1, 0]);
  harness::offer(&wire);
}
