//! The test vectors of `vectors/*.json` (PROTOCOL.md, "Test vectors") against the Rust side:
//! every frame decodes to its fields and encodes back to its bytes with `codec`, invalid bytes
//! fail with their code (`scan`, as the reader uses it), payloads that are not text become
//! `NOT_TEXT` records, the hello exchange runs through the real handshake code over socket pairs
//! (`handshake::vector_tests` does the same with the secret's fixed nonces), the proofs come
//! from `auth`, sessions from `session`, and the socket-ipc wire from `socket_ipc`.
//! `__test__/vectors.test.js` checks the same files against the JS encoder and a real Server and
//! Client.
#![cfg(unix)]

mod common;

use common::*;
use native_socket_ipc::auth::Secret;
use native_socket_ipc::codec::{Frame, Hello};
use native_socket_ipc::events;
use native_socket_ipc::handshake::{self, ClientSecurity, Conn, HandshakeFailure, HelloOptions, ServerSecurity};
use native_socket_ipc::scan;
use native_socket_ipc::session::{self, Retained};
use native_socket_ipc::socket_ipc::{self, Splitter};
use native_socket_ipc::transport::Socket;
use serde_json::Value;

fn load(file: &str) -> Value {
  let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors").join(file);
  let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
  let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
  assert!(doc["vectors"].as_array().is_some_and(|v| !v.is_empty()), "{file} has no vectors");
  doc
}

fn vectors(doc: &Value) -> &Vec<Value> {
  doc["vectors"].as_array().unwrap()
}

fn bytes(hex: &str) -> Vec<u8> {
  let hex: String = hex.split_whitespace().collect();
  assert!(hex.len().is_multiple_of(2), "odd hex: {hex}");
  (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
}

fn name(v: &Value) -> &str {
  v["name"].as_str().expect("every vector has a name")
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
  v[field].as_str().unwrap_or_else(|| panic!("{}: no text field {field}", name(v)))
}

fn number(v: &Value, field: &str) -> u64 {
  v[field].as_u64().unwrap_or_else(|| panic!("{}: no number field {field}", name(v)))
}

/// The kind number of a name in PROTOCOL.md's table.
fn kind_named(name: &str) -> u8 {
  match name {
    "HELLO" => frame_kind::HELLO,
    "PING" => frame_kind::PING,
    "PONG" => frame_kind::PONG,
    "ACK" => frame_kind::ACK,
    "GOODBYE" => frame_kind::GOODBYE,
    "CLOSE_REASON" => frame_kind::CLOSE_REASON,
    "REJECT" => frame_kind::REJECT,
    "MESSAGE_JSON" => frame_kind::MESSAGE_JSON,
    "MESSAGE_BINARY" => frame_kind::MESSAGE_BINARY,
    "REQUEST_JSON" => frame_kind::REQUEST_JSON,
    "REQUEST_BINARY" => frame_kind::REQUEST_BINARY,
    "REPLY_JSON" => frame_kind::REPLY_JSON,
    "REPLY_BINARY" => frame_kind::REPLY_BINARY,
    "REPLY_ERROR" => frame_kind::REPLY_ERROR,
    "AUTH_CHALLENGE" => frame_kind::AUTH_CHALLENGE,
    "AUTH_PROOF" => frame_kind::AUTH_PROOF,
    "AUTH_OK" => frame_kind::AUTH_OK,
    other => panic!("unknown kind name {other}"),
  }
}

/// The payload field: `payload` (text) or `payload_hex` (bytes).
fn payload(fields: &Value) -> Vec<u8> {
  match fields["payload"].as_str() {
    Some(t) => t.as_bytes().to_vec(),
    None => bytes(fields["payload_hex"].as_str().expect("payload or payload_hex")),
  }
}

/// Encodes a frame of `kind` from its fields with the codec's encoders.
fn encode(kind: u8, fields: &Value, v: &Value) -> Vec<u8> {
  let mut out = Vec::new();
  let topic = || fields["topic"].as_str().unwrap();
  let id = || number(fields, "request_id") as u32;
  match kind {
    frame_kind::HELLO => {
      assert_eq!(text(fields, "magic").as_bytes(), codec::MAGIC);
      let (version, flags) = (number(fields, "version") as u8, number(fields, "flags") as u8);
      let extension = bytes(text(fields, "extension_hex"));
      if version == codec::VERSION {
        codec::encode_hello_with(&mut out, flags, &extension);
      } else {
        assert!(flags == 0 && extension.is_empty(), "{}: a foreign version's hello has no options here", name(v));
        codec::encode_hello_version(&mut out, version);
      }
    }
    frame_kind::PING | frame_kind::PONG | frame_kind::GOODBYE => codec::encode_control(&mut out, kind),
    frame_kind::ACK => codec::encode_frame(&mut out, kind, &number(fields, "delivered").to_be_bytes()),
    frame_kind::CLOSE_REASON => {
      let meaning = &v["meaning"];
      codec::encode_close_reason(&mut out, text(meaning, "code"), text(meaning, "message"));
    }
    frame_kind::REJECT => codec::encode_reject(&mut out, text(fields, "reason")),
    frame_kind::MESSAGE_JSON | frame_kind::MESSAGE_BINARY => codec::encode_message(&mut out, kind, topic(), &payload(fields)),
    frame_kind::REQUEST_JSON | frame_kind::REQUEST_BINARY => codec::encode_request(&mut out, kind, id(), topic(), &payload(fields)),
    frame_kind::REPLY_JSON | frame_kind::REPLY_BINARY => codec::encode_reply(&mut out, kind, id(), &payload(fields)),
    frame_kind::REPLY_ERROR => {
      let body = [&id().to_be_bytes()[..], &[number(fields, "status") as u8], &payload(fields)].concat();
      codec::encode_frame(&mut out, kind, &body);
    }
    frame_kind::AUTH_CHALLENGE => codec::encode_frame(&mut out, kind, &bytes(text(fields, "server_nonce_hex"))),
    frame_kind::AUTH_PROOF => {
      let body = [bytes(text(fields, "client_nonce_hex")), bytes(text(fields, "hmac_hex"))].concat();
      codec::encode_frame(&mut out, kind, &body);
    }
    frame_kind::AUTH_OK => codec::encode_frame(&mut out, kind, &bytes(text(fields, "hmac_hex"))),
    _ => unreachable!(),
  }
  out
}

/// Decodes a frame's fields and checks them against the vector's.
fn check_fields(frame: &Frame<'_>, fields: &Value, v: &Value) {
  let n = name(v);
  let body = frame.body;
  let check_payload = |got: &[u8]| assert_eq!(got, payload(fields), "{n}: payload");
  let check_topic = |message: &[u8]| {
    let topic = codec::message_topic(message).expect("a topic");
    assert_eq!(std::str::from_utf8(topic).unwrap(), text(fields, "topic"), "{n}: topic");
    check_payload(codec::message_payload(message).unwrap());
  };
  let id = || u32::from_be_bytes(body[..4].try_into().unwrap()) as u64;
  match frame.kind {
    frame_kind::HELLO => {
      let (flags, extension) = codec::hello_options(frame);
      assert_eq!(codec::parse_hello(frame), Some(Hello::Version(number(fields, "version") as u8)), "{n}");
      assert_eq!(flags as u64, number(fields, "flags"), "{n}: flags");
      assert_eq!(extension, bytes(text(fields, "extension_hex")), "{n}: extensions");
    }
    frame_kind::REJECT => assert_eq!(codec::parse_hello(frame), Some(Hello::Rejected(text(fields, "reason").into())), "{n}"),
    frame_kind::PING | frame_kind::PONG | frame_kind::GOODBYE => assert!(body.is_empty(), "{n}"),
    frame_kind::ACK => assert_eq!(u64::from_be_bytes(body.try_into().unwrap()), number(fields, "delivered"), "{n}"),
    frame_kind::CLOSE_REASON => {
      check_payload(body);
      let (code, message) = codec::close_reason(body).expect("a close reason");
      assert_eq!((code.as_str(), message.as_str()), (text(&v["meaning"], "code"), text(&v["meaning"], "message")), "{n}");
    }
    frame_kind::MESSAGE_JSON | frame_kind::MESSAGE_BINARY => check_topic(body),
    frame_kind::REQUEST_JSON | frame_kind::REQUEST_BINARY => {
      assert_eq!(id(), number(fields, "request_id"), "{n}: request_id");
      check_topic(&body[codec::REQUEST_ID..]);
    }
    frame_kind::REPLY_JSON | frame_kind::REPLY_BINARY => {
      assert_eq!(id(), number(fields, "request_id"), "{n}: request_id");
      check_payload(&body[codec::REQUEST_ID..]);
    }
    frame_kind::REPLY_ERROR => {
      assert_eq!(id(), number(fields, "request_id"), "{n}: request_id");
      assert_eq!(body[codec::REQUEST_ID] as u64, number(fields, "status"), "{n}: status");
      check_payload(&body[codec::REQUEST_ID + 1..]);
    }
    frame_kind::AUTH_CHALLENGE => assert_eq!(body, bytes(text(fields, "server_nonce_hex")), "{n}"),
    frame_kind::AUTH_PROOF => {
      let expected = [bytes(text(fields, "client_nonce_hex")), bytes(text(fields, "hmac_hex"))].concat();
      assert_eq!(body, expected, "{n}");
    }
    frame_kind::AUTH_OK => assert_eq!(body, bytes(text(fields, "hmac_hex")), "{n}"),
    k => panic!("{n}: kind 0x{k:02x}"),
  }
}

/// The JSON a meaning gives (`json`, or nothing for `undefined`/`bytes_hex`).
fn meaning_json(meaning: &Value) -> Option<&Value> {
  meaning.get("json")
}

#[test]
fn every_frame_vector_decodes_to_its_fields_and_encodes_back_to_its_bytes() {
  let doc = load("frames.json");
  let mut kinds = std::collections::BTreeSet::new();
  for v in vectors(&doc) {
    let n = name(v);
    let wire = bytes(text(v, "hex"));
    let kind = kind_named(text(v, "kind"));
    kinds.insert(kind);
    let phase = text(v, "phase");
    let max = if phase == "hello" { codec::HELLO_MAX_LEN } else { codec::DEFAULT_MAX_MESSAGE_SIZE };
    let frame = codec::next_frame(&wire, max).unwrap_or_else(|e| panic!("{n}: {e}")).unwrap_or_else(|| panic!("{n}: incomplete"));
    assert_eq!(frame.wire_len(), wire.len(), "{n}: one whole frame");
    assert_eq!(frame.kind, kind, "{n}: kind");
    match phase {
      "connected" => assert_eq!(codec::validate(&frame), Ok(()), "{n}"),
      "session" => {
        assert_eq!(codec::validate(&frame), Ok(()), "{n}");
        assert!(codec::session_only(kind), "{n}: only in sessions");
        assert!(scan::parse(&wire, max, false).failure.is_some(), "{n}: refused outside a session");
        assert!(scan::parse(&wire, max, true).failure.is_none(), "{n}: read in a session");
      }
      "hello" => assert_eq!(codec::validate(&frame), Err(codec::FrameError::OutOfPlace(kind)), "{n}: out of place after the hello"),
      other => panic!("{n}: phase {other}"),
    }
    let fields = &v["fields"];
    check_fields(&frame, fields, v);
    assert_eq!(encode(kind, fields, v), wire, "{n}: encoded from its fields");
    assert!(codec::payload_is_text(kind, frame.body), "{n}: a valid frame's text is UTF-8");
    if codec::carries_data(kind) {
      // The record JS gets is the frame's own body.
      let mut records = Vec::new();
      events::encode_messages(&mut records, 3, &wire);
      assert_eq!(events::decode_records(&records), vec![Record { kind, id: 3, body: frame.body.to_vec() }], "{n}");
      let meaning = &v["meaning"];
      if let Some(json) = meaning_json(meaning) {
        let payload = payload(fields);
        let parsed: Value = serde_json::from_slice(&payload).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(&parsed, json, "{n}: the payload is the meaning's JSON");
      }
      if let Some(topic) = fields["topic"].as_str() {
        // The empty topic is delivered as `none` (PROTOCOL.md, "Messages").
        let delivered = if topic.is_empty() { "none" } else { topic };
        assert_eq!(meaning["topic"].as_str(), Some(delivered), "{n}: topic delivered");
      }
    }
  }
  let all = [
    frame_kind::HELLO, frame_kind::PING, frame_kind::PONG, frame_kind::ACK, frame_kind::GOODBYE, frame_kind::CLOSE_REASON,
    frame_kind::REJECT, frame_kind::MESSAGE_JSON, frame_kind::MESSAGE_BINARY, frame_kind::REQUEST_JSON, frame_kind::REQUEST_BINARY,
    frame_kind::REPLY_JSON, frame_kind::REPLY_BINARY, frame_kind::REPLY_ERROR, frame_kind::AUTH_CHALLENGE, frame_kind::AUTH_PROOF,
    frame_kind::AUTH_OK,
  ];
  assert_eq!(kinds, all.into_iter().collect(), "frames.json has every kind of PROTOCOL.md's table");
}

#[test]
fn the_core_frames_json_sends_into_exactly_the_canonical_message_bytes() {
  // lib/outgoing.js hands most JSON sends over as text (`appendText`); the core frames them.
  let doc = load("frames.json");
  let mut checked = 0;
  for v in vectors(&doc).iter().filter(|v| v["canonical"] == true && v["kind"] == "MESSAGE_JSON") {
    let fields = &v["fields"];
    let (topic, payload) = (text(fields, "topic"), text(fields, "payload"));
    if payload.is_empty() {
      continue; // `undefined` is never sent as text
    }
    let texts = format!("{topic}{payload}\n");
    let mut out = Vec::new();
    let count = native_socket_ipc::json_batch::frame_texts(texts.as_bytes(), &[0, topic.len() as u32, 1], false, &mut out);
    assert_eq!(count, Ok(1), "{}", name(v));
    assert_eq!(out, bytes(text(v, "hex")), "{}", name(v));
    checked += 1;
  }
  assert!(checked >= 3, "{checked} vectors");
}

#[test]
fn invalid_bytes_fail_with_their_code_and_undecodable_payloads_cost_one_frame() {
  let doc = load("errors.json");
  for v in vectors(&doc) {
    let n = name(v);
    let wire = bytes(text(v, "hex"));
    let max = v["max_message_size"].as_u64().map_or(codec::DEFAULT_MAX_MESSAGE_SIZE, |m| m as usize);
    let found = scan::parse(&wire, max, false);
    if v["closes"] == true {
      if v["then_eof"] == true {
        // The reader finds the error at EOF: here, the frame is simply incomplete.
        assert!(found.failure.is_none() && found.complete == 0, "{n}: incomplete");
        assert!(codec::next_frame(&wire, max).unwrap().is_none(), "{n}");
        continue;
      }
      let failure = found.failure.unwrap_or_else(|| panic!("{n}: accepted"));
      assert_eq!(failure.code(), v["error"].as_str(), "{n}: {failure}");
      assert_eq!(found.complete, 0, "{n}: nothing before it");
      continue;
    }
    assert!(found.failure.is_none(), "{n}: {:?}", found.failure.map(|e| e.to_string()));
    assert_eq!(found.complete, wire.len(), "{n}: read whole");
    let frame = codec::next_frame(&wire, max).unwrap().unwrap();
    let not_utf8 = v["not_utf8"] == true;
    assert_eq!(codec::payload_is_text(frame.kind, frame.body), !not_utf8, "{n}: payload_is_text");
    let mut records = Vec::new();
    events::encode_messages(&mut records, 1, &wire);
    let records = events::decode_records(&records);
    if codec::carries_data(frame.kind) {
      let expected = match not_utf8 {
        true => Record { kind: events::kind::NOT_TEXT, id: 1, body: [&[frame.kind][..], frame.body].concat() },
        false => Record { kind: frame.kind, id: 1, body: frame.body.to_vec() },
      };
      assert_eq!(records, vec![expected], "{n}: the record JS gets");
    } else {
      assert!(records.is_empty(), "{n}: control frames make no records");
    }
    if v["error"] == "ERR_IPC_DECODE" && !not_utf8 {
      let payload = match frame.kind {
        frame_kind::REQUEST_JSON => codec::message_payload(&frame.body[codec::REQUEST_ID..]).unwrap(),
        _ => codec::message_payload(frame.body).unwrap(),
      };
      assert!(serde_json::from_slice::<Value>(payload).is_err(), "{n}: the payload is not JSON");
    }
    if let Some(reply) = v["reply"]["hex"].as_str() {
      let reply = bytes(reply);
      assert!(scan::parse(&reply, codec::DEFAULT_MAX_MESSAGE_SIZE, false).complete == reply.len(), "{n}: the reply is a frame");
    }
  }
}

#[test]
fn every_reply_vector_is_a_valid_frame_whose_text_is_utf8_exactly_where_the_vector_says() {
  let doc = load("replies.json");
  let request = bytes(text(&doc, "request"));
  let frame = codec::next_frame(&request, 1024).unwrap().unwrap();
  assert_eq!((frame.kind, &frame.body[..4]), (frame_kind::REQUEST_JSON, &1u32.to_be_bytes()[..]));
  for v in vectors(&doc) {
    let n = name(v);
    let wire = bytes(text(v, "hex"));
    let found = scan::parse(&wire, codec::DEFAULT_MAX_MESSAGE_SIZE, false);
    assert!(found.failure.is_none() && found.complete == wire.len(), "{n}: valid frames");
    let mut rest = &wire[..];
    let mut last = None;
    while let Some(frame) = codec::next_frame(rest, codec::DEFAULT_MAX_MESSAGE_SIZE).unwrap() {
      rest = &rest[frame.wire_len()..];
      last = Some(frame);
    }
    let last = last.unwrap();
    assert_eq!(&last.body[..4], &1u32.to_be_bytes(), "{n}: the last frame answers request 1");
    assert_eq!(codec::payload_is_text(last.kind, last.body), v["not_utf8"] != true, "{n}");
  }
}

/// Concatenated hex of the steps from `side`.
fn steps_from(steps: &[Value], side: &str) -> Vec<u8> {
  steps.iter().filter(|s| s["from"] == side).flat_map(|s| bytes(s["hex"].as_str().unwrap_or(""))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_vectors_run_through_the_real_handshake_on_both_sides() {
  let doc = load("hello.json");
  let mut checked = 0;
  for v in vectors(&doc) {
    let n = name(v).to_owned();
    let steps = v["steps"].as_array().unwrap();
    let (client_bytes, server_bytes) = (steps_from(steps, "client"), steps_from(steps, "server"));
    let reports = &v["reports"];
    match text(v, "role") {
      "server" => {
        let (server_end, mut peer) = UnixStream::pair().unwrap();
        let serving = async {
          let mut conn = Conn::accept(Socket::Unix(server_end), &ServerSecurity::default()).await?;
          conn.answer(None, &HelloOptions::default()).await?;
          Ok::<_, HandshakeFailure>(conn.buffered().to_vec())
        };
        let playing = async {
          peer.write_all(&client_bytes).await.unwrap();
          peer.shutdown().await.unwrap();
          let mut got = Vec::new();
          let _ = peer.read_to_end(&mut got).await;
          got
        };
        let (outcome, got) = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(serving, playing) }).await.expect("no hang");
        // The handshake writes the HELLO or REJECT; what follows (a PONG) is the connection's.
        assert!(!got.is_empty() || server_bytes.is_empty(), "{n}: the server wrote nothing");
        assert!(server_bytes.starts_with(&got), "{n}: the server wrote {got:02x?}");
        match (reports["event"].as_str().unwrap(), outcome) {
          ("connection", Ok(kept)) => {
            let hello_len = codec::next_frame(&client_bytes, codec::HELLO_MAX_LEN).unwrap().unwrap().wire_len();
            assert_eq!(kept, &client_bytes[hello_len..], "{n}: what follows the hello is kept for the connection");
          }
          ("messageError", Err(HandshakeFailure::Error(e))) => assert_eq!(e.code(), reports["code"].as_str(), "{n}"),
          (want, got) => panic!("{n}: the server should report {want}, got {got:?}"),
        }
      }
      "client" => {
        let path = socket_path("vectors-hello");
        let _cleanup = Cleanup(path.clone());
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let fake = async {
          let (mut s, _) = listener.accept().await.unwrap();
          let mut got = vec![0; client_bytes.len()];
          s.read_exact(&mut got).await.unwrap();
          s.write_all(&server_bytes).await.unwrap();
          got
          // `s` is dropped: a client still waiting sees EOF.
        };
        let endpoint = Endpoint::Unix(path.clone());
        let (security, hello) = (ClientSecurity::default(), HelloOptions::default());
        let connecting = handshake::connect_once(&endpoint, &security, Duration::from_secs(3), Some(&hello));
        let (got, outcome) = tokio::join!(fake, connecting);
        assert_eq!(got, client_bytes, "{n}: what the client writes");
        match outcome {
          Ok(_) => assert_eq!(reports["event"], "connect", "{n}"),
          Err(e) => {
            assert_eq!(e.code(), reports["code"].as_str(), "{n}: {e}");
            let stops = v["then"] == "stops";
            assert_eq!(e.is_final(), stops, "{n}: {e}");
            assert_eq!(reports["event"], if stops { "error" } else { "connectError" }, "{n}");
          }
        }
      }
      other => panic!("{n}: role {other}"),
    }
    checked += 1;
  }
  assert!(checked >= 20, "{checked} hello vectors");
}

#[test]
fn the_auth_vectors_proofs_are_hmac_sha256_over_the_label_and_both_nonces() {
  let doc = load("auth.json");
  let secret = Secret::new(text(&doc, "secret").as_bytes());
  assert_eq!(bytes(text(&doc, "secret_hex")), text(&doc, "secret").as_bytes());
  let (sn, cn) = (bytes(text(&doc, "server_nonce_hex")), bytes(text(&doc, "client_nonce_hex")));
  let (client, server) = (bytes(text(&doc, "client_hmac_hex")), bytes(text(&doc, "server_hmac_hex")));
  assert_eq!(secret.client_proof(&sn, &cn), client);
  assert_eq!(secret.server_proof(&sn, &cn), server);
  assert!(secret.verify_client(&sn, &cn, &client) && secret.verify_server(&sn, &cn, &server));
  assert!(!secret.verify_client(&sn, &cn, &server), "the labels keep the proofs apart");
  // The frames.json AUTH frames carry these proofs.
  let frames = load("frames.json");
  let hex_of = |kind: &str| -> Vec<Vec<u8>> {
    vectors(&frames).iter().filter(|v| v["kind"] == kind).map(|v| bytes(text(v, "hex"))).collect()
  };
  assert!(hex_of("AUTH_PROOF").iter().any(|f| f[5..] == [&cn[..], &client[..]].concat()));
  assert!(hex_of("AUTH_OK").iter().any(|f| f[5..] == server[..]));
  // Every step of every exchange is a hello-exchange frame, within its 256-byte limit, or a
  // header over it (the vector that shows that).
  for v in vectors(&doc) {
    for step in v["steps"].as_array().unwrap() {
      let wire = bytes(text(step, "hex"));
      match codec::next_frame(&wire, codec::HELLO_MAX_LEN) {
        Ok(Some(f)) => assert_eq!(f.wire_len(), wire.len(), "{}", name(v)),
        Err(codec::FrameError::TooLarge { .. }) => assert!(name(v).contains("longer than 256")),
        other => panic!("{}: {other:?}", name(v)),
      }
    }
  }
}

#[test]
fn the_session_vectors_hello_extensions_and_resends_are_what_session_reads_and_keeps() {
  let doc = load("session.json");
  for f in doc["frames"].as_array().unwrap() {
    let n = name(f);
    let wire = bytes(text(f, "hex"));
    let frame = codec::next_frame(&wire, codec::HELLO_MAX_LEN).unwrap().unwrap();
    match frame.kind {
      frame_kind::HELLO => {
        let (flags, extension) = codec::hello_options(&frame);
        assert_eq!(flags as u64, number(f, "flags"), "{n}");
        assert_eq!(flags & session::FLAG_AT_LEAST_ONCE, session::FLAG_AT_LEAST_ONCE, "{n}");
        match f["session_id_hex"].as_str() {
          Some(id) => {
            let (got_id, received) = session::parse_client_hello(extension).expect("a client extension");
            assert_eq!((got_id.to_vec(), received), (bytes(id), number(f, "received")), "{n}");
            let mut encoded = Vec::new();
            codec::encode_hello_with(&mut encoded, flags, &session::encode_client_hello(&got_id, received));
            assert_eq!(encoded, wire, "{n}");
          }
          None => {
            assert_eq!(session::parse_server_hello(extension), Some(number(f, "received")), "{n}");
            assert_eq!(flags & session::FLAG_RESUMED != 0, flags == 3, "{n}");
          }
        }
      }
      frame_kind::ACK => assert_eq!(u64::from_be_bytes(frame.body.try_into().unwrap()), number(f, "delivered")),
      frame_kind::GOODBYE => assert!(frame.body.is_empty()),
      k => panic!("{n}: kind 0x{k:02x}"),
    }
  }
  for v in vectors(&doc) {
    let n = name(v);
    let connections = v["connections"].as_array().unwrap();
    for steps in connections {
      for step in steps.as_array().unwrap() {
        if let Some(hex) = step["hex"].as_str() {
          let wire = bytes(hex);
          let frame = codec::next_frame(&wire, codec::DEFAULT_MAX_MESSAGE_SIZE).unwrap().unwrap();
          assert_eq!(frame.wire_len(), wire.len(), "{n}: one frame per step");
        }
      }
    }
    if text(v, "role") == "client" {
      // What the client keeps and re-sends: everything after the server's `received`.
      let first: Vec<u8> = steps_from(connections[0].as_array().unwrap(), "client");
      let server_hello = bytes(text(&connections[1][1], "hex"));
      let received = session::parse_server_hello(codec::hello_options(&codec::next_frame(&server_hello, 256).unwrap().unwrap()).1).unwrap();
      let mut kept = Retained::default();
      kept.push(first.clone().into());
      let resent = steps_from(&connections[1].as_array().unwrap()[2..], "client");
      assert_eq!(kept.after(received), resent, "{n}");
    }
  }
}

#[test]
fn the_socket_ipc_vectors_split_into_their_texts_and_fail_with_their_codes() {
  let doc = load("socket-ipc.json");
  for v in vectors(&doc) {
    let n = name(v);
    let wire = bytes(text(v, "hex"));
    let max = v["max_message_size"].as_u64().map_or(codec::DEFAULT_MAX_MESSAGE_SIZE, |m| m as usize);
    let split = Splitter::default().split(&wire, max);
    if let Some(code) = v["closes"]["error"].as_str() {
      assert_eq!(split.failure.and_then(|e| e.code()), Some(code), "{n}");
      continue;
    }
    assert!(split.failure.is_none(), "{n}");
    assert_eq!(split.complete, wire.len(), "{n}");
    let texts: Vec<String> = socket_ipc::texts(&wire[..split.complete]).map(|t| t.iter().map(|b| format!("{b:02x}")).collect()).collect();
    let expected: Vec<&str> = v["texts_hex"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(texts, expected, "{n}");
    // A text that is not UTF-8 reaches JS as NOT_TEXT, the others as TEXT or in a TEXT_GROUP.
    let queue = EventQueue::new(Box::new(NotifyWake(Arc::new(Notify::new()))));
    queue.push_texts(1, &wire);
    let kinds: Vec<u8> = queue.take().decode().iter().map(|r| r.kind).collect();
    let not_text = kinds.contains(&events::kind::NOT_TEXT);
    assert_eq!(not_text, v["not_utf8"] == true, "{n}: {kinds:02x?}");
  }
}
