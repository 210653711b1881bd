//! Integration tests of the transports and the security options through the core's public API:
//! TCP and abstract sockets, TLS, the shared secret, `allow`, the socket file's mode, and the
//! frame timeout. Run with `cargo test --no-default-features`.
//!
//! Unix only: these run over Unix sockets. The Windows transport (named pipes) is tested by the
//! node:test suite under Wine (`npm run test:windows`) and by `named_pipe`'s unit tests.
#![cfg(unix)]

mod common;
use common::*;
use native_socket_ipc::auth::Secret;
use native_socket_ipc::handshake::{ClientSecurity, ServerSecurity};
use native_socket_ipc::tls::{TlsClient, TlsOptions, TlsServer};
use native_socket_ipc::transport::Family;

const SECRET: &[u8] = b"a test secret of some length";

fn fixture(name: &str) -> Vec<u8> {
  std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("__test__/fixtures/tls").join(name)).unwrap()
}

fn tcp_any_port() -> Endpoint {
  Endpoint::Tcp { host: "127.0.0.1".into(), port: 0, family: Family::V4 }
}

/// The port in a LISTENING record's `{ address, family, port }`.
fn listening_port(r: &Record) -> u16 {
  let json = text(r);
  let at = json.find("\"port\":").expect("a port") + 7;
  json[at..].trim_end_matches('}').parse().unwrap()
}

async fn listen(options: ServerOptions, security: ServerSecurity) -> (Server, Recorder, Record) {
  let mut rec = Recorder::new();
  let server = Server::listen(options, security, rec.queue());
  let listening = rec.wait_for(kind::LISTENING).await;
  (server, rec, listening)
}

fn client_to(endpoint: Endpoint) -> ClientOptions {
  ClientOptions { endpoint, ..client_options("unused") }
}

/// Connects, checks one message each way, closes the client.
async fn exchange(server: &Server, srec: &mut Recorder, options: ClientOptions, security: ClientSecurity) {
  let mut crec = Recorder::new();
  let client = Client::connect(options, security, crec.queue());
  crec.wait_for(kind::CONNECT).await;
  let id = srec.wait_for(kind::CONNECTION).await.id;
  client.send(&json_frame("up", "1"));
  let up = srec.wait_for(kind::MESSAGE_JSON).await;
  assert_eq!((up.id, topic_of(&up)), (id, "up"));
  server.send(&addressed(id, &json_frame("down", "2")));
  let down = crec.wait_for(kind::MESSAGE_JSON).await;
  assert_eq!(payload_of(&down), b"2");
  close_client(&client, &mut crec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_server_on_port_zero_reports_the_port_it_got_and_serves_clients_there() {
  within_10s(async {
    let options = ServerOptions { endpoint: tcp_any_port(), ..server_options("unused") };
    let (server, mut srec, listening) = listen(options, ServerSecurity::default()).await;
    let port = listening_port(&listening);
    assert_ne!(port, 0, "{}", text(&listening));
    assert!(text(&listening).contains("\"family\":\"IPv4\""), "{}", text(&listening));
    let to = Endpoint::Tcp { host: "localhost".into(), port, family: Family::V4 };
    exchange(&server, &mut srec, client_to(to), ClientSecurity::default()).await;
    let info = srec.records.iter().find(|r| r.kind == kind::CONNECTION).unwrap();
    assert!(text(info).contains("\"address\":\"127.0.0.1\""), "{}", text(info));
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abstract_socket_serves_clients_and_leaves_no_file() {
  within_10s(async {
    let name = format!("nsipc-core-{}", std::process::id());
    let endpoint = Endpoint::Abstract(name.clone());
    let options = ServerOptions { endpoint: endpoint.clone(), ..server_options("unused") };
    let (server, mut srec, listening) = listen(options, ServerSecurity::default()).await;
    assert_eq!(text(&listening), format!("\"unix:@{name}\""));
    assert!(!Path::new(&name).exists());
    exchange(&server, &mut srec, client_to(endpoint), ClientSecurity::default()).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

fn secret_server() -> ServerSecurity {
  ServerSecurity { tls: None, secret: Some(Secret::new(SECRET)) }
}

fn secret_client(secret: &[u8]) -> ClientSecurity {
  ClientSecurity { tls: None, secret: Some(Secret::new(secret)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_proves_the_secret_is_admitted() {
  within_10s(async {
    let path = socket_path("secret-ok");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec, _) = listen(server_options(&path), secret_server()).await;
    exchange(&server, &mut srec, client_options(&path), secret_client(SECRET)).await;
    assert_eq!(srec.count(kind::AUTH_ERROR), 0);
    close_server(&server, &mut srec).await;
  })
  .await;
}

/// Runs a client that must be refused for good and returns its records (ending in CLOSE). When
/// the server does the refusing (`expect_auth_error`), it reports it and never a CONNECTION; a
/// server the client refuses sees a connection open and close.
async fn refused(
  server: &Server,
  srec: &mut Recorder,
  options: ClientOptions,
  security: ClientSecurity,
  expect_auth_error: bool,
) -> Vec<Record> {
  let _ = server;
  srec.drain();
  let connections_before = srec.count(kind::CONNECTION);
  let mut crec = Recorder::new();
  let _client = Client::connect(options, security, crec.queue());
  crec.wait_for(kind::CLOSE).await;
  if expect_auth_error {
    srec.wait_for(kind::AUTH_ERROR).await;
  }
  // A refusal is final: no retry follows (retry_delay is 20 ms).
  srec.settle(Duration::from_millis(150)).await;
  if expect_auth_error {
    assert_eq!(srec.count(kind::CONNECTION), connections_before, "{}", dump(&srec.records));
  }
  assert_eq!(crec.count(kind::CONNECT), 0, "{}", dump(&crec.records));
  assert_eq!(crec.count(kind::CONNECT_ERROR), 0, "a final refusal is an ERROR: {}", dump(&crec.records));
  crec.records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_once_reported_on_both_sides_and_never_retried() {
  within_10s(async {
    let path = socket_path("secret-wrong");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec, _) = listen(server_options(&path), secret_server()).await;
    let records = refused(&server, &mut srec, client_options(&path), secret_client(b"not the right secret!"), true).await;
    let error = records.iter().find(|r| r.kind == kind::ERROR).expect("an ERROR");
    assert_code(error, "ERR_IPC_AUTH_FAILED");
    assert_eq!(srec.count(kind::AUTH_ERROR), 1, "{}", dump(&srec.records));
    let auth = srec.records.iter().find(|r| r.kind == kind::AUTH_ERROR).unwrap();
    let json = text(auth);
    assert!(json.contains("ERR_IPC_AUTH_FAILED") && json.contains(&format!("\"pid\":{}", std::process::id())), "{json}");
    assert!(!json.contains("secret of some length"), "the secret never appears: {json}");
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_secret_is_refused_and_told_the_server_needs_one() {
  within_10s(async {
    let path = socket_path("secret-none");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec, _) = listen(server_options(&path), secret_server()).await;
    let records = refused(&server, &mut srec, client_options(&path), ClientSecurity::default(), true).await;
    let error = records.iter().find(|r| r.kind == kind::ERROR).unwrap();
    assert!(assert_code(error, "ERR_IPC_AUTH_FAILED").contains("requires a secret"));
    assert!(text(srec.records.iter().find(|r| r.kind == kind::AUTH_ERROR).unwrap()).contains("no secret"));
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_secret_refuses_a_server_that_cannot_prove_it() {
  within_10s(async {
    let path = socket_path("secret-server-none");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec, _) = listen(server_options(&path), ServerSecurity::default()).await;
    let records = refused(&server, &mut srec, client_options(&path), secret_client(SECRET), false).await;
    let error = records.iter().find(|r| r.kind == kind::ERROR).unwrap();
    assert!(assert_code(error, "ERR_IPC_AUTH_FAILED").contains("did not ask for the secret"));
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_uid_and_gid_are_not_allowed_is_refused_before_connection() {
  within_10s(async {
    let path = socket_path("allow");
    let _cleanup = Cleanup(path.clone());
    let allow = Allow { ids: Some((vec![u32::MAX - 1], vec![u32::MAX - 1])), ask: false };
    let (server, mut srec, _) = listen(ServerOptions { allow, ..server_options(&path) }, ServerSecurity::default()).await;
    let records = refused(&server, &mut srec, client_options(&path), ClientSecurity::default(), true).await;
    assert_code(records.iter().find(|r| r.kind == kind::ERROR).unwrap(), "ERR_IPC_NOT_ALLOWED");
    assert_code(srec.records.iter().find(|r| r.kind == kind::AUTH_ERROR).unwrap(), "ERR_IPC_NOT_ALLOWED");
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_verdict_comes_from_admit_and_a_yes_connects() {
  within_10s(async {
    let path = socket_path("admit");
    let _cleanup = Cleanup(path.clone());
    let allow = Allow { ids: None, ask: true };
    let (server, mut srec, _) = listen(ServerOptions { allow, ..server_options(&path) }, ServerSecurity::default()).await;
    let mut crec = Recorder::new();
    let client = Client::connect(client_options(&path), ClientSecurity::default(), crec.queue());
    let ask = srec.wait_for(kind::ADMIT).await;
    assert!(text(&ask).contains(&format!("\"pid\":{}", std::process::id())), "{}", text(&ask));
    assert_eq!(srec.count(kind::CONNECTION), 0, "no CONNECTION before the verdict");
    server.admit(ask.id, true);
    assert_eq!(srec.wait_for(kind::CONNECTION).await.id, ask.id);
    crec.wait_for(kind::CONNECT).await;
    close_client(&client, &mut crec).await;
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_file_has_its_mode_when_listening_is_reported() {
  within_10s(async {
    use std::os::unix::fs::PermissionsExt;
    for mode in [0o600, 0o660, 0o666] {
      let path = socket_path("mode");
      let _cleanup = Cleanup(path.clone());
      let (server, mut srec, _) =
        listen(ServerOptions { mode: Some(mode), ..server_options(&path) }, ServerSecurity::default()).await;
      let bits = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
      assert_eq!(bits, mode, "{bits:o} != {mode:o}");
      close_server(&server, &mut srec).await;
    }
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_trickled_past_the_frame_timeout_drops_the_connection() {
  within_10s(async {
    let path = socket_path("slowloris");
    let _cleanup = Cleanup(path.clone());
    let options = ServerOptions { frame_timeout: Some(Duration::from_millis(200)), ..server_options(&path) };
    let (server, mut srec, _) = listen(options, ServerSecurity::default()).await;
    let mut raw = raw_hello(&path).await;
    let id = srec.wait_for(kind::CONNECTION).await.id;
    let frame = json_frame("t", &"1".repeat(100));
    let started = Instant::now();
    // A byte every 20 ms: bytes keep coming, the frame never completes in time.
    for byte in &frame[..30] {
      if raw.write_all(&[*byte]).await.is_err() {
        break;
      }
      tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let close = srec.wait_for(kind::CONNECTION_CLOSE).await;
    assert_eq!(close.id, id);
    assert_code(&close, "ERR_IPC_FRAME_TIMEOUT");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_code(srec.records.iter().find(|r| r.kind == kind::MESSAGE_ERROR).unwrap(), "ERR_IPC_FRAME_TIMEOUT");
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_frames_sent_slowly_one_by_one_are_never_a_frame_timeout() {
  within_10s(async {
    let path = socket_path("slow-whole");
    let _cleanup = Cleanup(path.clone());
    let options = ServerOptions { frame_timeout: Some(Duration::from_millis(100)), ..server_options(&path) };
    let (server, mut srec, _) = listen(options, ServerSecurity::default()).await;
    let mut raw = raw_hello(&path).await;
    srec.wait_for(kind::CONNECTION).await;
    for i in 0..5 {
      raw.write_all(&json_frame("t", &i.to_string())).await.unwrap();
      tokio::time::sleep(Duration::from_millis(80)).await;
    }
    srec.wait_until("5 messages", |r| r.iter().filter(|x| x.kind == kind::MESSAGE_JSON).count() == 5).await;
    assert_eq!(srec.count(kind::CONNECTION_CLOSE), 0, "{}", dump(&srec.records));
    close_server(&server, &mut srec).await;
  })
  .await;
}

fn tls_server(request_cert: bool) -> ServerSecurity {
  let options = TlsOptions {
    cert: Some(fixture("server.pem")),
    key: Some(fixture("server-key.pem")),
    ca: request_cert.then(|| fixture("ca.pem")),
    request_cert,
    reject_unauthorized: true,
    servername: None,
  };
  ServerSecurity { tls: Some(TlsServer::new(&options).unwrap()), secret: None }
}

fn tls_client(ca: &str, with_cert: bool) -> ClientSecurity {
  let options = TlsOptions {
    cert: with_cert.then(|| fixture("client.pem")),
    key: with_cert.then(|| fixture("client-key.pem")),
    ca: Some(fixture(ca)),
    request_cert: false,
    reject_unauthorized: true,
    servername: None,
  };
  ClientSecurity { tls: Some(TlsClient::new(&options, "localhost").unwrap()), secret: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_tcp_and_over_a_unix_socket_carries_messages_both_ways() {
  within_10s(async {
    let options = ServerOptions { endpoint: tcp_any_port(), ..server_options("unused") };
    let (server, mut srec, listening) = listen(options, tls_server(false)).await;
    let to = Endpoint::Tcp { host: "127.0.0.1".into(), port: listening_port(&listening), family: Family::Any };
    exchange(&server, &mut srec, client_to(to), tls_client("ca.pem", false)).await;
    close_server(&server, &mut srec).await;

    let path = socket_path("tls-unix");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec, _) = listen(server_options(&path), tls_server(false)).await;
    exchange(&server, &mut srec, client_options(&path), tls_client("ca.pem", false)).await;
    let info = srec.records.iter().find(|r| r.kind == kind::CONNECTION).unwrap();
    assert!(
      text(info).contains(&format!("\"pid\":{}", std::process::id())),
      "credentials come from the real socket, not the TLS bridge: {}",
      text(info)
    );
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_an_unknown_ca_is_refused_for_good() {
  within_10s(async {
    let path = socket_path("tls-unknown-ca");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec, _) = listen(server_options(&path), tls_server(false)).await;
    let records = refused(&server, &mut srec, client_options(&path), tls_client("other-ca.pem", false), false).await;
    assert_code(records.iter().find(|r| r.kind == kind::ERROR).unwrap(), "ERR_IPC_TLS");
    close_server(&server, &mut srec).await;
  })
  .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_a_client_certificate_and_refuses_its_absence() {
  within_10s(async {
    let path = socket_path("mtls");
    let _cleanup = Cleanup(path.clone());
    let (server, mut srec, _) = listen(server_options(&path), tls_server(true)).await;
    exchange(&server, &mut srec, client_options(&path), tls_client("ca.pem", true)).await;
    let records = refused(&server, &mut srec, client_options(&path), tls_client("ca.pem", false), true).await;
    assert_code(records.iter().find(|r| r.kind == kind::ERROR).unwrap(), "ERR_IPC_TLS");
    close_server(&server, &mut srec).await;
  })
  .await;
}
