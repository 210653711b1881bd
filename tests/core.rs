//! Integration tests of the Rust core through its public API, over real Unix sockets.
//!
//! Run with `cargo test --no-default-features` (the default `napi` feature needs Node).
//! Every test body is bounded by `within_10s`, so a hang fails instead of stalling the run.
//!
//! Unix only: these run over Unix sockets. The Windows transport (named pipes) is tested by the
//! node:test suite under Wine (`npm run test:windows`) and by `named_pipe`'s unit tests.
#![cfg(unix)]

mod common;
use common::*;

// ===== 1. Connection and messages in both directions =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_exchange_json_messages_in_both_directions() {
  within_10s(async {
    let path = socket_path("basic");
    let _cleanup = Cleanup(path.clone());
    let mut srec = Recorder::new();
    let server = Server::listen(server_options(&path), Default::default(), srec.queue());
    let listening = srec.next_records().await;
    assert_eq!(listening[0].kind, kind::LISTENING, "{}", dump(&listening));
    assert!(
      Path::new(&path).exists(),
      "the socket file exists once LISTENING is reported"
    );

    let mut crec = Recorder::new();
    let client = Client::connect(client_options(&path), Default::default(), crec.queue());
    let connect = crec.wait_for(kind::CONNECT).await;
    assert_eq!(connect.id, 0);
    assert_eq!(connect.body, vec![0u8, 0]);
    let connection = srec.wait_for(kind::CONNECTION).await;
    assert!(connection.id >= 1, "client ids start at 1: {}", connection.id);
    // The body is the client's SO_PEERCRED as JSON. The client is this very process.
    let uid = std::fs::metadata("/proc/self")
      .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
      .unwrap();
    let body = String::from_utf8(connection.body.clone()).unwrap();
    assert!(
      body.starts_with(&format!("{{\"pid\":{},\"uid\":{uid},", std::process::id())),
      "{body}"
    );
    let id = connection.id;

    // Client -> server.
    client.send(&json_frame("hello", r#"{"a":1}"#));
    let msg = srec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!(msg.id, id);
    let mut expected = vec![0x00, 0x05];
    expected.extend_from_slice(b"hello");
    expected.extend_from_slice(br#"{"a":1}"#);
    assert_eq!(msg.body, expected, "body is topic_len|topic|payload");

    // Server -> client.
    server.send(&addressed(id, &json_frame("reply", r#"{"ok":true}"#)));
    let reply = crec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!(reply.id, 0);
    assert_eq!(reply.body, message_body("reply", br#"{"ok":true}"#));
    assert_eq!(server.client_count(), 1);

    let no_errors = |r: &Recorder| {
      r.records
        .iter()
        .all(|x| !matches!(x.kind, kind::ERROR | kind::MESSAGE_ERROR))
    };
    assert!(no_errors(&srec), "{}", dump(&srec.records));
    assert!(no_errors(&crec), "{}", dump(&crec.records));

    close_client(&client, &mut crec).await;
    srec.wait_for(kind::CONNECTION_CLOSE).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

// ===== 2. Broadcast =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_connected_client() {
  within_10s(async {
    let path = socket_path("bcast");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
      let (c, r, id) = connect_client(&path, &mut srec).await;
      clients.push((c, r));
      ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct client ids");
    assert_eq!(server.client_count(), 3);

    server.send(&addressed(BROADCAST, &json_frame("news", r#""to all""#)));
    for (_, rec) in clients.iter_mut() {
      let m = rec.wait_for(kind::MESSAGE_JSON).await;
      assert_eq!(m.body, message_body("news", br#""to all""#));
    }
    for (c, rec) in clients.iter_mut() {
      close_client(c, rec).await;
      assert_eq!(
        rec.count(kind::MESSAGE_JSON),
        1,
        "exactly one copy:\n{}",
        dump(&rec.records)
      );
    }
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_up_to_an_id_skips_clients_that_connected_after_it() {
  within_10s(async {
    let path = socket_path("broadcast-upto");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let (first, mut frec, first_id) = connect_client(&path, &mut srec).await;
    let (second, mut lrec, second_id) = connect_client(&path, &mut srec).await;
    assert!(second_id > first_id);
    // As JS sends it when it had announced only the first client.
    server.send(&addressed(native_socket_ipc::server::BROADCAST_UP_TO | first_id, &json_frame("b", "1")));
    server.send(&addressed(second_id, &json_frame("direct", "2")));
    let got = frec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!(topic_of(&got), "b");
    let got = lrec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!(topic_of(&got), "direct", "the later client never got the broadcast");
    close_client(&first, &mut frec).await;
    close_client(&second, &mut lrec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

// ===== 3. Unknown client =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_an_unknown_client_id_reports_err_ipc_unknown_client() {
  within_10s(async {
    let path = socket_path("unknown");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let (client, mut crec, id) = connect_client(&path, &mut srec).await;

    // One batch: a frame for a client that does not exist, then one for a real client.
    let mut batch = addressed(9999, &json_frame("lost", "1"));
    batch.extend(addressed(id, &json_frame("kept", "2")));
    server.send(&batch);

    let err = srec.wait_for(kind::ERROR).await;
    assert_eq!(err.id, 9999, "the error record is tagged with the unknown id");
    let json = assert_code(&err, "ERR_IPC_UNKNOWN_CLIENT");
    assert!(json.contains("\"clientId\":9999"), "{json}");

    let m = crec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!(
      m.body,
      message_body("kept", b"2"),
      "the valid frame in the same batch still goes out"
    );

    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

// ===== 4. Ordering =====

const ORDERED_COUNT: usize = 10_000;
const ORDERED_BATCHES: usize = 10;

fn numbered_batches() -> Vec<Vec<u8>> {
  let per = ORDERED_COUNT / ORDERED_BATCHES;
  (0..ORDERED_BATCHES)
    .map(|b| {
      let mut frames = Vec::new();
      for seq in b * per..(b + 1) * per {
        codec::encode_message(&mut frames, frame_kind::MESSAGE_JSON, "seq", seq.to_string().as_bytes());
      }
      frames
    })
    .collect()
}

fn sequence_numbers(records: &[Record], kind: u8, id: u32) -> Vec<usize> {
  records
    .iter()
    .filter(|r| r.kind == kind && r.id == id && topic_of(r) == "seq")
    .map(|r| std::str::from_utf8(payload_of(r)).unwrap().parse().unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_client_arrive_in_send_order() {
  within_10s(async {
    let path = socket_path("order");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let (client, mut crec, id) = connect_client(&path, &mut srec).await;

    for batch in numbered_batches() {
      client.send(&batch);
    }
    srec
      .wait_until("10,000 messages", |r| {
        r.iter().filter(|x| x.kind == kind::MESSAGE_JSON).count() >= ORDERED_COUNT
      })
      .await;
    let seqs = sequence_numbers(&srec.records, kind::MESSAGE_JSON, id);
    assert_eq!(seqs.len(), ORDERED_COUNT);
    assert!(
      seqs.iter().copied().eq(0..ORDERED_COUNT),
      "messages out of order or missing"
    );

    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_the_server_to_one_client_arrive_in_send_order() {
  within_10s(async {
    let path = socket_path("order-s");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let (client, mut crec, id) = connect_client(&path, &mut srec).await;

    for batch in numbered_batches() {
      // Re-address every frame of the batch to the client.
      let mut records = Vec::new();
      let mut pos = 0;
      while let Some(f) = codec::next_frame(&batch[pos..], usize::MAX).unwrap() {
        records.extend(addressed(id, &batch[pos..pos + f.wire_len()]));
        pos += f.wire_len();
      }
      server.send(&records);
    }
    crec
      .wait_until("10,000 messages", |r| {
        r.iter().filter(|x| x.kind == kind::MESSAGE_JSON).count() >= ORDERED_COUNT
      })
      .await;
    let seqs = sequence_numbers(&crec.records, kind::MESSAGE_JSON, 0);
    assert!(
      seqs.iter().copied().eq(0..ORDERED_COUNT),
      "messages out of order or missing"
    );

    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

// ===== 5. Hostile and broken peers =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_foreign_peer_is_a_protocol_error_and_the_server_keeps_serving() {
  within_10s(async {
    let path = socket_path("garbage");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;

    let mut raw = UnixStream::connect(&path).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let err = srec.wait_for(kind::MESSAGE_ERROR).await;
    assert!(err.id >= 1);
    assert_code(&err, "ERR_IPC_PROTOCOL");
    // The foreign peer never became a client.
    assert_eq!(srec.count(kind::CONNECTION), 0, "{}", dump(&srec.records));
    // And the server hangs up on it without answering.
    let mut rest = Vec::new();
    let r = raw.read_to_end(&mut rest).await;
    assert!(
      rest.is_empty(),
      "the server must not answer a foreign peer: {rest:?} ({r:?})"
    );

    // A real client is still served.
    let (client, mut crec, id) = connect_client(&path, &mut srec).await;
    assert_ne!(id, err.id);
    client.send(&json_frame("after", "true"));
    let m = srec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!((m.id, m.body.clone()), (id, message_body("after", b"true")));

    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_announced_over_max_message_size_is_rejected_and_the_connection_closed() {
  within_10s(async {
    let path = socket_path("toolarge");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server_with(ServerOptions {
      max_message_size: 1024,
      ..server_options(&path)
    })
    .await;

    let mut raw = raw_hello(&path).await;
    let id = srec.wait_for(kind::CONNECTION).await.id;
    // Announce 1025 bytes (kind + body) and send only the kind byte: the prefix alone must be refused.
    let mut prefix = 1025u32.to_be_bytes().to_vec();
    prefix.push(frame_kind::MESSAGE_BINARY);
    raw.write_all(&prefix).await.unwrap();

    let err = srec.wait_for(kind::MESSAGE_ERROR).await;
    assert_eq!(err.id, id);
    assert_code(&err, "ERR_IPC_MESSAGE_TOO_LARGE");
    let close = srec.wait_for(kind::CONNECTION_CLOSE).await;
    assert_eq!(close.id, id, "CONNECTION_CLOSE follows the MESSAGE_ERROR");

    // The peer is told why (a CLOSE_REASON frame), then hung up on.
    let mut told = Vec::new();
    // (Unread bytes of ours may turn the EOF into a reset, after what was sent.)
    let _ = raw.read_to_end(&mut told).await;
    let frame = codec::next_frame(&told, 8192).unwrap().expect("a whole frame before EOF");
    assert_eq!(frame.kind, frame_kind::CLOSE_REASON);
    let (code, message) = codec::close_reason(frame.body).expect("{code, message} JSON");
    assert_eq!(code, "ERR_IPC_MESSAGE_TOO_LARGE");
    assert!(message.contains("maxMessageSize"), "{message}");
    assert_eq!(told.len(), frame.wire_len(), "nothing follows the reason");
    assert_eq!(server.client_count(), 0);

    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_of_a_future_version_is_answered_with_a_reject_frame() {
  within_10s(async {
    let path = socket_path("v9");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;

    let mut raw = UnixStream::connect(&path).await.unwrap();
    let mut hello = Vec::new();
    codec::encode_hello_version(&mut hello, 9);
    raw.write_all(&hello).await.unwrap();

    let mut head = [0u8; 5];
    raw.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
    assert_eq!(
      head[4],
      frame_kind::REJECT,
      "a REJECT frame (0x0F) answers the v9 hello"
    );
    assert!((1..=4096).contains(&len));
    let mut reason = vec![0u8; len - 1];
    raw.read_exact(&mut reason).await.unwrap();
    let reason = String::from_utf8(reason).unwrap();
    assert!(
      reason.contains('9'),
      "the reason names the version the client sent: {reason}"
    );

    let err = srec.wait_for(kind::MESSAGE_ERROR).await;
    assert_code(&err, "ERR_IPC_PROTOCOL");
    assert_eq!(srec.count(kind::CONNECTION), 0, "{}", dump(&srec.records));

    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_followed_by_eof_is_a_protocol_error_after_the_intact_frames() {
  within_10s(async {
    let path = socket_path("trunc");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;

    let mut raw = raw_hello(&path).await;
    let id = srec.wait_for(kind::CONNECTION).await.id;
    let mut wire = json_frame("whole", "1");
    let cut = json_frame("cut", r#"{"never":"complete"}"#);
    wire.extend_from_slice(&cut[..cut.len() / 2]);
    raw.write_all(&wire).await.unwrap();
    raw.shutdown().await.unwrap(); // EOF, but keep the socket open until the server reacts

    let whole = srec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!((whole.id, whole.body.clone()), (id, message_body("whole", b"1")));
    let err = srec.wait_for(kind::MESSAGE_ERROR).await;
    assert_eq!(err.id, id);
    assert_code(&err, "ERR_IPC_PROTOCOL");
    let close = srec.wait_for(kind::CONNECTION_CLOSE).await;
    assert_eq!(close.id, id);
    assert_eq!(srec.count(kind::MESSAGE_JSON), 1, "{}", dump(&srec.records));

    drop(raw);
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_written_right_behind_the_hello_are_delivered() {
  within_10s(async {
    let path = socket_path("behind");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;

    let mut raw = UnixStream::connect(&path).await.unwrap();
    let mut wire = Vec::new();
    codec::encode_hello(&mut wire);
    wire.extend(json_frame("first", "1"));
    wire.extend(json_frame("second", "2"));
    raw.write_all(&wire).await.unwrap(); // one write: hello and two messages

    let id = srec.wait_for(kind::CONNECTION).await.id;
    let first = srec.wait_for(kind::MESSAGE_JSON).await;
    let second = srec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!((first.id, first.body), (id, message_body("first", b"1")));
    assert_eq!((second.id, second.body), (id, message_body("second", b"2")));

    drop(raw);
    srec.wait_for(kind::CONNECTION_CLOSE).await;
    assert_eq!(
      srec.count(kind::MESSAGE_ERROR),
      0,
      "a plain EOF is not an error:\n{}",
      dump(&srec.records)
    );
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_answered_with_a_pong_and_never_reaches_the_events() {
  within_10s(async {
    let path = socket_path("ping");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;

    let mut raw = raw_hello(&path).await;
    let id = srec.wait_for(kind::CONNECTION).await.id;
    let mut wire = Vec::new();
    codec::encode_control(&mut wire, frame_kind::PING);
    wire.extend(json_frame("after-ping", "0"));
    raw.write_all(&wire).await.unwrap();

    let mut pong = [0u8; 5];
    raw.read_exact(&mut pong).await.unwrap();
    let mut expected = Vec::new();
    codec::encode_control(&mut expected, frame_kind::PONG);
    assert_eq!(pong.to_vec(), expected);

    let m = srec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!((m.id, m.body.clone()), (id, message_body("after-ping", b"0")));
    let only_expected = srec
      .records
      .iter()
      .all(|r| matches!(r.kind, kind::LISTENING | kind::CONNECTION | kind::MESSAGE_JSON));
    assert!(
      only_expected,
      "the ping itself produced no record:\n{}",
      dump(&srec.records)
    );

    drop(raw);
    close_server(&server, &mut srec).await;
  })
  .await;
}

// ===== 6. Socket file handling =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_file_is_reclaimed() {
  within_10s(async {
    let path = socket_path("stale");
    let _cleanup = Cleanup(path.clone());
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(Path::new(&path).exists(), "dropping a listener leaves its file behind");

    let (server, mut srec) = start_server(&path).await;
    assert_eq!(srec.count(kind::ERROR), 0, "{}", dump(&srec.records));
    let (client, mut crec, _) = connect_client(&path, &mut srec).await;

    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
    assert!(!Path::new(&path).exists());
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_on_a_live_servers_path_fails_with_eaddrinuse_and_leaves_it_undisturbed() {
  within_10s(async {
    let path = socket_path("live");
    let _cleanup = Cleanup(path.clone());
    let (first, mut first_rec) = start_server(&path).await;

    let mut second_rec = Recorder::new();
    let _second = Server::listen(server_options(&path), Default::default(), second_rec.queue());
    let err = second_rec.wait_for(kind::ERROR).await;
    let json = text(&err);
    assert!(json.contains("\"errno\":98"), "EADDRINUSE expected: {json}");
    assert!(json.contains("\"syscall\":\"listen\""), "{json}");
    second_rec.settle(Duration::from_millis(100)).await;
    assert_eq!(
      second_rec.records.len(),
      1,
      "nothing after the ERROR:\n{}",
      dump(&second_rec.records)
    );

    // The probe did not show up as a client of the first server, and its file is intact.
    first_rec.settle(Duration::from_millis(200)).await;
    assert!(
      first_rec.records.iter().all(|r| r.kind == kind::LISTENING),
      "the first server saw only its LISTENING:\n{}",
      dump(&first_rec.records)
    );
    assert!(Path::new(&path).exists());

    // And it keeps working.
    let (client, mut crec, id) = connect_client(&path, &mut first_rec).await;
    client.send(&json_frame("still", "here"));
    let m = first_rec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!((m.id, m.body.clone()), (id, message_body("still", b"here")));

    close_client(&client, &mut crec).await;
    close_server(&first, &mut first_rec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_on_a_regular_file_fails_and_leaves_the_file_untouched() {
  within_10s(async {
    let path = socket_path("regular");
    let _cleanup = Cleanup(path.clone());
    std::fs::write(&path, b"precious data").unwrap();

    let mut rec = Recorder::new();
    let _server = Server::listen(server_options(&path), Default::default(), rec.queue());
    let err = rec.wait_for(kind::ERROR).await;
    let json = text(&err);
    assert!(json.contains("\"syscall\":\"listen\""), "{json}");
    assert!(json.contains("\"errno\":"), "{json}");
    assert!(json.contains("not a socket"), "{json}");
    assert_eq!(rec.count(kind::LISTENING), 0);

    assert_eq!(std::fs::read(&path).unwrap(), b"precious data");
  })
  .await;
}

// ===== 7. Graceful server close =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_flushes_sent_messages_ends_each_connection_and_removes_the_socket_file() {
  within_10s(async {
    let path = socket_path("sclose");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let (c1, mut r1, id1) = connect_client(&path, &mut srec).await;
    let (c2, mut r2, id2) = connect_client(&path, &mut srec).await;

    // Sent right before close(): every one of them must still arrive.
    let mut batch = Vec::new();
    for seq in 0..100 {
      for id in [id1, id2] {
        batch.extend(addressed(id, &json_frame("seq", &seq.to_string())));
      }
    }
    batch.extend(addressed(BROADCAST, &json_frame("bye", "null")));
    server.send(&batch);
    server.close();

    srec
      .wait_until("server CLOSE", |r| r.iter().any(|x| x.kind == kind::CLOSE))
      .await;
    assert!(!Path::new(&path).exists(), "the socket file is gone by CLOSE");
    assert_eq!(
      srec.records.last().unwrap().kind,
      kind::CLOSE,
      "CLOSE is last:\n{}",
      dump(&srec.records)
    );
    let close_at = srec.records.len() - 1;
    for id in [id1, id2] {
      let at = srec
        .index_of(|r| r.kind == kind::CONNECTION_CLOSE && r.id == id)
        .unwrap_or_else(|| panic!("no CONNECTION_CLOSE for {id}:\n{}", dump(&srec.records)));
      assert!(at < close_at);
    }
    assert_eq!(srec.count(kind::CONNECTION_CLOSE), 2);
    srec.settle(Duration::from_millis(50)).await;
    assert_eq!(
      srec.records.len(),
      close_at + 1,
      "nothing after CLOSE:\n{}",
      dump(&srec.records)
    );

    for (c, rec) in [(&c1, &mut r1), (&c2, &mut r2)] {
      let disconnect = rec.wait_for(kind::DISCONNECT).await;
      assert_eq!(disconnect.id, 0);
      let before: Vec<Record> = rec.records[..rec.cursor - 1].to_vec();
      assert_eq!(
        sequence_numbers(&before, kind::MESSAGE_JSON, 0),
        (0..100).collect::<Vec<_>>(),
        "{}",
        dump(&before)
      );
      let bye = before
        .iter()
        .filter(|r| r.kind == kind::MESSAGE_JSON && topic_of(r) == "bye")
        .count();
      assert_eq!(bye, 1, "the broadcast arrives before DISCONNECT");
      assert_eq!(rec.count(kind::MESSAGE_ERROR), 0, "{}", dump(&rec.records));
      close_client(c, rec).await;
    }
  })
  .await;
}

// ===== 8. Retry budget =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gives_up_after_max_retries_with_retries_exhausted_then_close() {
  within_10s(async {
    let path = socket_path("retries");
    let _cleanup = Cleanup(path.clone());
    let mut rec = Recorder::new();
    let mut options = client_options(&path);
    options.retry.max_retries = Some(2);
    options.retry.retry_delay = Delay::Fixed(Duration::from_millis(10));
    let _client = Client::connect(options, Default::default(), rec.queue());

    rec
      .wait_until("CLOSE", |r| r.iter().any(|x| x.kind == kind::CLOSE))
      .await;
    let kinds: Vec<u8> = rec.records.iter().map(|r| r.kind).collect();
    assert_eq!(
      kinds,
      [
        kind::CONNECT_ERROR,
        kind::CONNECT_ERROR,
        kind::CONNECT_ERROR,
        kind::ERROR,
        kind::CLOSE
      ],
      "{}",
      dump(&rec.records)
    );
    for r in &rec.records[..3] {
      let json = text(r);
      assert!(json.contains("\"errno\":2"), "ENOENT expected: {json}");
      assert!(json.contains("\"syscall\":\"connect\""), "{json}");
    }
    assert_code(&rec.records[3], "ERR_IPC_RETRIES_EXHAUSTED");
  })
  .await;
}

// ===== 9. Reconnect =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnects_to_a_new_server_and_delivers_what_was_sent_while_disconnected() {
  within_10s(async {
    let path = socket_path("reconn");
    let _cleanup = Cleanup(path.clone());
    let (first, mut first_rec) = start_server(&path).await;
    let (client, mut crec, _) = connect_client(&path, &mut first_rec).await;

    close_server(&first, &mut first_rec).await;
    crec.wait_for(kind::DISCONNECT).await;
    // Sent while no server exists; the client is retrying.
    client.send(&json_frame("queued", r#""while down""#));
    crec.wait_for(kind::CONNECT_ERROR).await;

    let (second, mut second_rec) = start_server(&path).await;
    let reconnect = crec.wait_for(kind::CONNECT).await;
    assert_eq!(reconnect.body, [1, 0], "a reconnect is flagged (no session to resume)");
    let disconnect_at = crec.index_of(|r| r.kind == kind::DISCONNECT).unwrap();
    let reconnect_at = crec.cursor - 1;
    assert!(disconnect_at < reconnect_at);

    let id = second_rec.wait_for(kind::CONNECTION).await.id;
    let m = second_rec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!((m.id, m.body.clone()), (id, message_body("queued", br#""while down""#)));

    // The reconnected link works both ways.
    second.send(&addressed(id, &json_frame("welcome", "back")));
    let back = crec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!(back.body, message_body("welcome", b"back"));

    close_client(&client, &mut crec).await;
    assert_eq!(
      crec.count(kind::ERROR),
      0,
      "nothing undelivered:\n{}",
      dump(&crec.records)
    );
    close_server(&second, &mut second_rec).await;
  })
  .await;
}

// ===== 10. Close while retrying =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_retrying_client_reports_the_undelivered_messages_then_close() {
  within_10s(async {
    let path = socket_path("undeliv");
    let _cleanup = Cleanup(path.clone());
    let mut rec = Recorder::new();
    let client = Client::connect(client_options(&path), Default::default(), rec.queue());
    let mut frames = json_frame("a", "1");
    frames.extend(json_frame("b", "2"));
    client.send(&frames);
    client.send(&json_frame("c", "3"));
    rec.wait_for(kind::CONNECT_ERROR).await;

    client.close();
    rec
      .wait_until("CLOSE", |r| r.iter().any(|x| x.kind == kind::CLOSE))
      .await;
    let n = rec.records.len();
    assert!(n >= 2);
    assert_eq!(rec.records[n - 1].kind, kind::CLOSE, "{}", dump(&rec.records));
    assert_eq!(rec.records[n - 2].kind, kind::ERROR, "{}", dump(&rec.records));
    let json = assert_code(&rec.records[n - 2], "ERR_IPC_CLOSED");
    assert!(json.contains("\"undelivered\":3"), "{json}");
    assert_eq!(rec.count(kind::ERROR), 1);
  })
  .await;
}

// ===== 11. Handshake timeout =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_dropped_with_handshake_timeout() {
  within_10s(async {
    let path = socket_path("hs-srv");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server_with(ServerOptions {
      handshake_timeout: Duration::from_millis(200),
      ..server_options(&path)
    })
    .await;

    let started = Instant::now();
    let mut raw = UnixStream::connect(&path).await.unwrap();
    let err = srec.wait_for(kind::MESSAGE_ERROR).await;
    let elapsed = started.elapsed();
    assert_code(&err, "ERR_IPC_HANDSHAKE_TIMEOUT");
    assert!(
      elapsed < Duration::from_secs(3),
      "took {elapsed:?} for a 200 ms handshake timeout"
    );
    assert_eq!(srec.count(kind::CONNECTION), 0);
    let mut buf = [0u8; 8];
    let r = raw.read(&mut buf).await;
    assert!(matches!(r, Ok(0) | Err(_)), "the silent peer is hung up on: {r:?}");

    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_facing_a_server_that_never_answers_gets_handshake_timeout() {
  within_10s(async {
    let path = socket_path("hs-cli");
    let _cleanup = Cleanup(path.clone());
    // Bound and listening, never accepting: connect() succeeds via the backlog, no hello ever comes.
    let _mute = tokio::net::UnixListener::bind(&path).unwrap();

    let mut rec = Recorder::new();
    let mut options = client_options(&path);
    options.handshake_timeout = Duration::from_millis(200);
    options.retry.max_retries = Some(0);
    let started = Instant::now();
    let _client = Client::connect(options, Default::default(), rec.queue());
    let err = rec.wait_for(kind::CONNECT_ERROR).await;
    let elapsed = started.elapsed();
    assert_code(&err, "ERR_IPC_HANDSHAKE_TIMEOUT");
    assert!(
      elapsed < Duration::from_secs(3),
      "took {elapsed:?} for a 200 ms handshake timeout"
    );

    rec
      .wait_until("CLOSE", |r| r.iter().any(|x| x.kind == kind::CLOSE))
      .await;
    assert_eq!(rec.count(kind::CONNECT), 0, "{}", dump(&rec.records));
  })
  .await;
}

// ===== 12. Large messages =====

fn big_payload() -> Vec<u8> {
  (0..2 * 1024 * 1024u32)
    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_mib_binary_message_arrives_intact_in_both_directions() {
  within_10s(async {
    let path = socket_path("big");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let (client, mut crec, id) = connect_client(&path, &mut srec).await;
    let payload = big_payload();
    let mut frame = Vec::new();
    codec::encode_message(&mut frame, frame_kind::MESSAGE_BINARY, "blob", &payload);

    client.send(&frame);
    let up = srec.wait_for(kind::MESSAGE_BINARY).await;
    assert_eq!(up.id, id);
    assert_eq!(topic_of(&up), "blob");
    assert_eq!(payload_of(&up).len(), payload.len());
    assert!(payload_of(&up) == payload.as_slice(), "client->server payload differs");

    server.send(&addressed(id, &frame));
    let down = crec.wait_for(kind::MESSAGE_BINARY).await;
    assert_eq!(topic_of(&down), "blob");
    assert_eq!(payload_of(&down).len(), payload.len());
    assert!(
      payload_of(&down) == payload.as_slice(),
      "server->client payload differs"
    );

    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

// ===== Heartbeats =====

fn heartbeat(interval_ms: u64, timeout_ms: u64) -> Option<Heartbeat> {
  Some(Heartbeat {
    interval: Duration::from_millis(interval_ms),
    timeout: Duration::from_millis(timeout_ms),
  })
}

/// Reads whole frames from a raw socket until one of `wanted` kind arrives; returns its kind.
async fn read_frame_kind(raw: &mut UnixStream) -> u8 {
  let mut prefix = [0u8; 4];
  raw.read_exact(&mut prefix).await.unwrap();
  let mut frame = vec![0u8; u32::from_be_bytes(prefix) as usize];
  raw.read_exact(&mut frame).await.unwrap();
  frame[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_pinged_then_dropped_with_a_heartbeat_timeout_reason() {
  within_10s(async {
    let path = socket_path("hb-silent-client");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server_with(ServerOptions {
      heartbeat: heartbeat(100, 300),
      ..server_options(&path)
    })
    .await;
    let started = Instant::now();
    let mut raw = raw_hello(&path).await;
    srec.wait_for(kind::CONNECTION).await;
    assert_eq!(
      read_frame_kind(&mut raw).await,
      frame_kind::PING,
      "the idle server pings first"
    );
    let close = srec.wait_for(kind::CONNECTION_CLOSE).await;
    let elapsed = started.elapsed();
    assert_code(&close, "ERR_IPC_HEARTBEAT_TIMEOUT");
    assert!(
      elapsed >= Duration::from_millis(290),
      "dropped after {elapsed:?}, before the timeout"
    );
    assert_eq!(
      srec.count(kind::MESSAGE_ERROR) + srec.count(kind::ERROR),
      0,
      "{}",
      dump(&srec.records)
    );
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_heartbeats_drops_a_server_that_stopped_answering() {
  within_10s(async {
    let path = socket_path("hb-silent-server");
    let _cleanup = Cleanup(path.clone());
    // A "server" that completes the hello and then never reads or writes again, like a SIGSTOPped one.
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let hung = tokio::spawn(async move {
      let (mut s, _) = listener.accept().await.unwrap();
      let mut hello = Vec::new();
      codec::encode_hello(&mut hello);
      let mut theirs = vec![0u8; hello.len()];
      s.read_exact(&mut theirs).await.unwrap();
      s.write_all(&hello).await.unwrap();
      tokio::time::sleep(Duration::from_secs(8)).await;
      drop(s);
    });
    let mut crec = Recorder::new();
    let client = Client::connect(
      ClientOptions {
        heartbeat: heartbeat(100, 300),
        ..client_options(&path)
      },
      Default::default(),
      crec.queue(),
    );
    crec.wait_for(kind::CONNECT).await;
    let connected = Instant::now();
    let disconnect = crec.wait_for(kind::DISCONNECT).await;
    assert_code(&disconnect, "ERR_IPC_HEARTBEAT_TIMEOUT");
    assert!(
      connected.elapsed() < Duration::from_millis(300 + 100 + 200),
      "{:?}",
      connected.elapsed()
    );
    close_client(&client, &mut crec).await;
    hung.abort();
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_and_never_reach_the_event_queue() {
  within_10s(async {
    let path = socket_path("hb-alive");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server_with(ServerOptions {
      heartbeat: heartbeat(30, 90),
      ..server_options(&path)
    })
    .await;
    // The client has no heartbeat of its own: its core still answers the server's pings.
    let (client, mut crec, _) = connect_client(&path, &mut srec).await;
    srec.settle(Duration::from_millis(600)).await;
    crec.settle(Duration::ZERO).await;
    assert_eq!(srec.count(kind::CONNECTION_CLOSE), 0, "{}", dump(&srec.records));
    assert_eq!(crec.count(kind::DISCONNECT), 0, "{}", dump(&crec.records));
    let only_lifecycle = |r: &Record| matches!(r.kind, kind::LISTENING | kind::CONNECTION | kind::CONNECT);
    assert!(srec.records.iter().all(only_lifecycle), "{}", dump(&srec.records));
    assert!(crec.records.iter().all(only_lifecycle), "{}", dump(&crec.records));
    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

// ===== Requests pass through the core =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_replies_reach_the_other_side_in_order_with_messages() {
  within_10s(async {
    let path = socket_path("req");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let (client, mut crec, id) = connect_client(&path, &mut srec).await;
    let mut frames = json_frame("m", "1");
    codec::encode_request(&mut frames, frame_kind::REQUEST_JSON, 41, "q", b"2");
    frames.extend_from_slice(&json_frame("m", "3"));
    client.send(&frames);
    srec
      .wait_until("3 data records", |r| r.iter().filter(|x| x.kind < 0x80).count() >= 3)
      .await;
    let data: Vec<u8> = srec.records.iter().filter(|x| x.kind < 0x80).map(|x| x.kind).collect();
    assert_eq!(data, [kind::MESSAGE_JSON, kind::REQUEST_JSON, kind::MESSAGE_JSON]);
    let request = srec.records.iter().find(|x| x.kind == kind::REQUEST_JSON).unwrap();
    assert_eq!(request.id, id);
    assert_eq!(
      request.body,
      [&41u32.to_be_bytes()[..], &message_body("q", b"2")].concat()
    );

    let mut reply = Vec::new();
    codec::encode_reply(&mut reply, frame_kind::REPLY_JSON, 41, b"\"ok\"");
    server.send(&addressed(id, &reply));
    let got = crec.wait_for(kind::REPLY_JSON).await;
    assert_eq!(got.body, [&41u32.to_be_bytes()[..], b"\"ok\""].concat());
    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

// ===== Peer =====

fn peer_options(path: &str) -> PeerOptions {
  PeerOptions {
    endpoint: Endpoint::Unix(path.to_owned()),
    mode: None,
    frame_timeout: None,
    max_message_size: codec::DEFAULT_MAX_MESSAGE_SIZE,
    handshake_timeout: Duration::from_secs(5),
    heartbeat: None,
    retry: RetryPolicy {
      retry_delay: Delay::Fixed(Duration::from_millis(50)),
      reconnect_delay: Delay::Fixed(Duration::from_millis(10)),
      max_retries: None,
    },
    limits: Default::default(),
    loop_host: None,
  }
}

async fn start_peer(path: &str) -> (Peer, Recorder) {
  let rec = Recorder::new();
  let peer = Peer::connect(peer_options(path), Default::default(), rec.queue());
  (peer, rec)
}

async fn close_peer(peer: &Peer, rec: &mut Recorder) {
  peer.close();
  rec
    .wait_until("peer CLOSE", |r| r.iter().any(|x| x.kind == kind::CLOSE))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_pair_as_server_and_client_and_a_third_is_refused_as_busy() {
  within_10s(async {
    let path = socket_path("peer-pair");
    let _cleanup = Cleanup(path.clone());
    let (a, mut arec) = start_peer(&path).await;
    assert_eq!(arec.wait_for(kind::ROLE).await.body, [0], "the first peer listens");
    let (b, mut brec) = start_peer(&path).await;
    assert_eq!(brec.wait_for(kind::ROLE).await.body, [1], "the second connects");
    arec.wait_for(kind::CONNECT).await;
    brec.wait_for(kind::CONNECT).await;

    b.send(&json_frame("t", "\"from b\""));
    let m = arec.wait_for(kind::MESSAGE_JSON).await;
    assert_eq!(payload_of(&m), b"\"from b\"");
    a.send(&json_frame("t", "\"from a\""));
    assert_eq!(payload_of(&brec.wait_for(kind::MESSAGE_JSON).await), b"\"from a\"");

    let (c, mut crec) = start_peer(&path).await;
    let refused = crec.wait_for(kind::CONNECT_ERROR).await;
    assert_code(&refused, "ERR_IPC_PEER_BUSY");
    assert_eq!(crec.count(kind::CONNECT), 0);
    assert_eq!(
      arec.count(kind::MESSAGE_ERROR) + arec.count(kind::ERROR),
      0,
      "{}",
      dump(&arec.records)
    );

    // The server peer leaves: one of the other two takes the socket file, the other joins it.
    close_peer(&a, &mut arec).await;
    brec.wait_for(kind::DISCONNECT).await;
    brec
      .wait_until("b connected again", |r| {
        r.iter().filter(|x| x.kind == kind::CONNECT).count() == 2
      })
      .await;
    crec.wait_for(kind::CONNECT).await;
    let roles = |rec: &Recorder| {
      rec
        .records
        .iter()
        .filter(|r| r.kind == kind::ROLE)
        .map(|r| r.body[0])
        .collect::<Vec<_>>()
    };
    let (b_roles, c_roles) = (roles(&brec), roles(&crec));
    assert!(
      (b_roles == [1, 0] && c_roles == [1]) || (b_roles == [1] && c_roles == [0]),
      "b {b_roles:?}, c {c_roles:?}"
    );
    close_peer(&b, &mut brec).await;
    close_peer(&c, &mut crec).await;
    assert!(
      !Path::new(&path).exists(),
      "the last server peer removed its socket file"
    );
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_started_together_always_end_as_one_server_and_one_client() {
  within_10s(async {
    for round in 0..20 {
      let path = socket_path(&format!("peer-race-{round}"));
      let _cleanup = Cleanup(path.clone());
      let ((a, mut arec), (b, mut brec)) = tokio::join!(start_peer(&path), start_peer(&path));
      let (ra, rb) = (
        arec.wait_for(kind::ROLE).await.body[0],
        brec.wait_for(kind::ROLE).await.body[0],
      );
      assert_eq!(ra + rb, 1, "round {round}: roles {ra} and {rb}");
      arec.wait_for(kind::CONNECT).await;
      brec.wait_for(kind::CONNECT).await;
      close_peer(&a, &mut arec).await;
      close_peer(&b, &mut brec).await;
    }
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_client_is_refused_as_server_full_and_admitted_once_a_place_frees() {
  within_10s(async {
    let path = socket_path("maxconn");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server_with(ServerOptions {
      max_connections: Some(1),
      ..server_options(&path)
    })
    .await;
    let (first, mut frec, _) = connect_client(&path, &mut srec).await;
    let mut rec = Recorder::new();
    let second = Client::connect(client_options(&path), Default::default(), rec.queue());
    let refused = rec.wait_for(kind::CONNECT_ERROR).await;
    assert_code(&refused, "ERR_IPC_SERVER_FULL");
    assert_eq!(srec.count(kind::CONNECTION), 1);
    assert_eq!(
      srec.count(kind::ERROR) + srec.count(kind::MESSAGE_ERROR),
      0,
      "{}",
      dump(&srec.records)
    );
    close_client(&first, &mut frec).await;
    rec.wait_for(kind::CONNECT).await;
    close_client(&second, &mut rec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_for_a_departed_client_is_dropped_quietly_but_a_message_is_reported() {
  within_10s(async {
    let path = socket_path("reply-gone");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let mut reply = Vec::new();
    codec::encode_reply(&mut reply, frame_kind::REPLY_JSON, 7, b"1");
    server.send(&addressed(4242, &reply));
    server.send(&addressed(4243, &json_frame("t", "1")));
    let err = srec.wait_for(kind::ERROR).await;
    assert_eq!(err.id, 4243, "only the message is reported:\n{}", dump(&srec.records));
    srec.settle(Duration::from_millis(50)).await;
    assert_eq!(srec.count(kind::ERROR), 1, "{}", dump(&srec.records));
    close_server(&server, &mut srec).await;
  })
  .await;
}
