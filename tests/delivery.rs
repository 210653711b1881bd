//! At-least-once sessions and backpressure, through the core's public API with real sockets.
//! The tests play the JS side: they take the event batches and, when they choose to, say the
//! listeners ran (`delivered`), which is what sends the acknowledgements.
//!
//! Unix only: these run over Unix sockets. The Windows transport (named pipes) is tested by the
//! node:test suite under Wine (`npm run test:windows`) and by `named_pipe`'s unit tests.
#![cfg(unix)]

mod common;
use common::*;

fn at_least_once_server(path: &str) -> ServerOptions {
  ServerOptions {
    at_least_once: true,
    ..server_options(path)
  }
}

fn at_least_once_client(path: &str) -> ClientOptions {
  ClientOptions {
    at_least_once: true,
    ..client_options(path)
  }
}

/// The payloads (as text) of the messages recorded so far.
fn payloads(rec: &Recorder) -> Vec<String> {
  rec
    .records
    .iter()
    .filter(|r| r.kind == kind::MESSAGE_JSON)
    .map(|r| String::from_utf8(payload_of(r).to_vec()).unwrap())
    .collect()
}

fn send_numbers(client: &Client, range: std::ops::Range<u32>) {
  let mut frames = Vec::new();
  for i in range {
    frames.extend(json_frame("n", &i.to_string()));
  }
  assert_eq!(client.send(&frames).refused, 0);
}

/// Takes the server's events until `n` messages arrived, acknowledging them as JS would.
async fn receive_and_acknowledge(server: &Server, rec: &mut Recorder, n: usize) {
  rec.wait_until(&format!("{n} messages"), |r| r.iter().filter(|x| x.kind == kind::MESSAGE_JSON).count() >= n).await;
  server.delivered(&rec.queue.take_delivered());
}

#[tokio::test]
async fn a_restarted_server_receives_exactly_what_the_first_never_acknowledged() {
  within_10s(async {
    let path = socket_path("alo-restart");
    let _cleanup = Cleanup(path.clone());
    let (first, mut first_rec) = start_server_with(at_least_once_server(&path)).await;
    let mut crec = Recorder::new();
    let client = Client::connect(at_least_once_client(&path), Default::default(), crec.queue());
    crec.wait_for(kind::CONNECT).await;

    // 0..5 are handled and acknowledged; 5..10 arrive, but the listeners never say they ran.
    send_numbers(&client, 0..5);
    receive_and_acknowledge(&first, &mut first_rec, 5).await;
    send_numbers(&client, 5..10);
    first_rec
      .wait_until("10 messages", |r| r.iter().filter(|x| x.kind == kind::MESSAGE_JSON).count() == 10)
      .await;
    close_server(&first, &mut first_rec).await;
    crec.wait_for(kind::DISCONNECT).await;

    let (second, mut second_rec) = start_server_with(at_least_once_server(&path)).await;
    let connect = crec.wait_for(kind::CONNECT).await;
    assert_eq!(connect.body, [1, 0], "a reconnect to a server that did not know the session");
    receive_and_acknowledge(&second, &mut second_rec, 5).await;
    second_rec.settle(Duration::from_millis(100)).await;
    assert_eq!(payloads(&second_rec), ["5", "6", "7", "8", "9"], "only the unacknowledged, in order");

    send_numbers(&client, 10..12);
    receive_and_acknowledge(&second, &mut second_rec, 7).await;
    assert_eq!(&payloads(&second_rec)[5..], ["10", "11"]);
    close_client(&client, &mut crec).await;
    assert_eq!(crec.count(kind::ERROR), 0, "everything was acknowledged:\n{}", dump(&crec.records));
    close_server(&second, &mut second_rec).await;
  })
  .await;
}

#[tokio::test]
async fn a_client_that_closes_reports_what_the_server_never_acknowledged() {
  within_10s(async {
    let path = socket_path("alo-unacked");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server_with(at_least_once_server(&path)).await;
    let mut crec = Recorder::new();
    let client = Client::connect(at_least_once_client(&path), Default::default(), crec.queue());
    crec.wait_for(kind::CONNECT).await;
    send_numbers(&client, 0..3);
    srec
      .wait_until("3 messages", |r| r.iter().filter(|x| x.kind == kind::MESSAGE_JSON).count() == 3)
      .await;
    // The server's listeners never finish (no `delivered`): the close waits its 2 s, then says so.
    close_client(&client, &mut crec).await;
    let error = crec.wait_for(kind::ERROR).await;
    let json = assert_code(&error, "ERR_IPC_CLOSED");
    assert!(json.contains("\"undelivered\":3"), "{json}");
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test]
async fn delivery_modes_that_differ_are_refused_and_the_client_stops() {
  within_10s(async {
    let path = socket_path("alo-mismatch");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let mut crec = Recorder::new();
    let _client = Client::connect(at_least_once_client(&path), Default::default(), crec.queue());
    let error = crec.wait_for(kind::ERROR).await;
    let json = assert_code(&error, "ERR_IPC_DELIVERY_MISMATCH");
    assert!(json.contains("at-most-once") && json.contains("at-least-once"), "{json}");
    crec.wait_for(kind::CLOSE).await;
    assert_eq!(crec.count(kind::CONNECT), 0);
    srec.settle(Duration::from_millis(50)).await;
    assert_eq!(srec.count(kind::CONNECTION), 0, "the server never announced it");
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_at_max_buffered_bytes_and_the_others_are_served() {
  within_10s(async {
    let path = socket_path("slow-client");
    let _cleanup = Cleanup(path.clone());
    let options = ServerOptions {
      limits: Limits {
        high_water_mark: 16 * 1024,
        max_buffered: 256 * 1024,
        evict: false, // the server forces eviction on for its clients
        ..Default::default()
      },
      ..server_options(&path)
    };
    let (server, mut srec) = start_server_with(options).await;
    let _stalled = raw_hello(&path).await; // completes the hello, then never reads
    let stalled_id = srec.wait_for(kind::CONNECTION).await.id;
    let (client, mut crec, healthy_id) = connect_client(&path, &mut srec).await;

    let chunk = vec![b'7'; 32 * 1024];
    let mut frame = Vec::new();
    codec::encode_message(&mut frame, frame_kind::MESSAGE_BINARY, "b", &chunk);
    let mut spells = Vec::new();
    for _ in 0..64 {
      spells.extend(server.send(&addressed(BROADCAST, &frame)));
      tokio::task::yield_now().await;
    }
    let slow = srec.wait_for(kind::SLOW_CLIENT).await;
    assert_eq!(slow.id, stalled_id);
    let close = srec.wait_for(kind::CONNECTION_CLOSE).await;
    assert_eq!(close.id, stalled_id);
    assert_code(&close, "ERR_IPC_SLOW_CLIENT");
    assert!(spells.iter().any(|(id, _)| *id == stalled_id), "the stalled client passed the mark first");

    crec
      .wait_until("64 messages", |r| r.iter().filter(|x| x.kind == kind::MESSAGE_BINARY).count() == 64)
      .await;
    assert!(crec.records.iter().filter(|r| r.kind == kind::MESSAGE_BINARY).all(|r| payload_of(r) == chunk));
    srec.settle(Duration::from_millis(50)).await;
    assert!(
      !srec.records.iter().any(|r| r.id == healthy_id && r.kind == kind::CONNECTION_CLOSE),
      "the healthy client stays"
    );
    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test]
async fn a_buffer_past_the_high_water_mark_is_reported_and_drain_follows_when_it_empties() {
  within_10s(async {
    let path = socket_path("drain");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server(&path).await;
    let mut crec = Recorder::new();
    let options = ClientOptions {
      limits: Limits {
        high_water_mark: 4 * 1024,
        max_buffered: 1024 * 1024,
        evict: false,
        ..Default::default()
      },
      ..client_options(&path)
    };
    let client = Client::connect(options, Default::default(), crec.queue());
    crec.wait_for(kind::CONNECT).await;
    srec.wait_for(kind::CONNECTION).await;
    let mut frames = Vec::new();
    for i in 0..200 {
      frames.extend(json_frame("t", &format!("\"{i:0>100}\"")));
    }
    let appended = client.send(&frames);
    let spell = appended.over.expect("20 KiB at once passes a 4 KiB mark");
    let drain = crec.wait_for(kind::DRAIN).await;
    assert_eq!(drain.body, spell.to_be_bytes());

    // Past maxBufferedBytes a client refuses (and counts) rather than buffers.
    let big = json_frame("t", &format!("\"{}\"", "x".repeat(2 * 1024 * 1024)));
    assert_eq!(client.send(&big).full, 1);
    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

/// A raw at-least-once client: sends its hello for `session` and returns the server's hello
/// (flags, extension).
async fn raw_session_hello(path: &str, session: [u8; 16]) -> (UnixStream, u8, Vec<u8>) {
  use native_socket_ipc::session::{encode_client_hello, FLAG_AT_LEAST_ONCE};
  let mut s = UnixStream::connect(path).await.unwrap();
  let mut hello = Vec::new();
  codec::encode_hello_with(&mut hello, FLAG_AT_LEAST_ONCE, &encode_client_hello(&session, 0));
  s.write_all(&hello).await.unwrap();
  let mut answer = [0u8; 4 + 8 + 8];
  s.read_exact(&mut answer).await.unwrap();
  assert_eq!(answer[4], frame_kind::HELLO);
  (s, answer[4 + 7], answer[12..].to_vec())
}

#[tokio::test]
async fn a_connection_cut_in_the_middle_of_a_frame_keeps_the_session_for_the_client_to_resume() {
  use native_socket_ipc::session::{FLAG_AT_LEAST_ONCE, FLAG_RESUMED};
  within_10s(async {
    let path = socket_path("alo-cut");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec) = start_server_with(at_least_once_server(&path)).await;
    let session = [9u8; 16];
    let (mut first, flags, received) = raw_session_hello(&path, session).await;
    assert_eq!(flags, FLAG_AT_LEAST_ONCE, "a new session");
    assert_eq!(received, 0u64.to_be_bytes());
    let id = srec.wait_for(kind::CONNECTION).await.id;
    let whole = json_frame("t", "1");
    let cut = json_frame("t", "\"this frame never ends\"");
    first.write_all(&[&whole[..], &cut[..cut.len() / 2]].concat()).await.unwrap();
    srec.wait_for(kind::MESSAGE_JSON).await;
    drop(first);
    let gone = srec.wait_for(kind::CLIENT_DISCONNECT).await;
    assert_eq!(gone.id, id);
    assert!(text(&gone).contains("in the middle of a frame"), "{}", text(&gone));

    let (_second, flags, received) = raw_session_hello(&path, session).await;
    assert_eq!(flags, FLAG_AT_LEAST_ONCE | FLAG_RESUMED, "the session survived the cut");
    assert_eq!(received, 1u64.to_be_bytes(), "the server has the whole frame, not the cut one");
    assert_eq!(srec.wait_for(kind::CLIENT_RECONNECT).await.id, id);
    assert_eq!(srec.count(kind::CONNECTION_CLOSE), 0);
    close_server(&server, &mut srec).await;
  })
  .await;
}
