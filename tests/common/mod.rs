//! The harness the integration tests share: a `Recorder` that plays the JS side of a Server or
//! Client, unique socket paths, and helpers to start, connect and close over real sockets.
#![allow(dead_code, unused_imports)]

pub use native_socket_ipc::client::{Client, ClientOptions};
pub use native_socket_ipc::codec::{self, kind as frame_kind};
pub use native_socket_ipc::connection::{Heartbeat, Limits};
pub use native_socket_ipc::events::{kind, EventQueue, Record, Wake};
pub use native_socket_ipc::peer::{Peer, PeerOptions};
pub use native_socket_ipc::reconnect::{Delay, RetryPolicy};
pub use native_socket_ipc::server::{Allow, Server, ServerOptions, BROADCAST};
pub use native_socket_ipc::wire::Wire;
pub use native_socket_ipc::transport::Endpoint;
pub use std::future::Future;
pub use std::path::{Path, PathBuf};
pub use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::sync::Arc;
pub use std::time::{Duration, Instant};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::UnixStream;
pub use tokio::sync::Notify;

// ===== Harness =====

/// Upper bound for a whole test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for one `wait_*` step, so a missing record fails with a dump of what did arrive.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(6);

pub async fn within_10s(body: impl Future<Output = ()>) {
  tokio::time::timeout(TEST_TIMEOUT, body)
    .await
    .expect("test did not finish within 10 s (hang?)");
}

/// A unique socket path per test: temp dir + pid + test name + counter.
pub fn socket_path(test: &str) -> String {
  static COUNTER: AtomicUsize = AtomicUsize::new(0);
  let n = COUNTER.fetch_add(1, Ordering::Relaxed);
  let path: PathBuf = std::env::temp_dir().join(format!("nsipc-{}-{test}-{n}.sock", std::process::id()));
  let _ = std::fs::remove_file(&path);
  path.to_str().unwrap().to_owned()
}

/// Removes a test's socket path on drop (also when the test panics).
pub struct Cleanup(pub String);
impl Drop for Cleanup {
  fn drop(&mut self) {
    let _ = std::fs::remove_file(&self.0);
  }
}

/// `Wake` backed by a Notify: `notify_one` stores a permit, so a wake-up that comes while
/// nobody waits is not lost.
pub struct NotifyWake(pub Arc<Notify>);
impl Wake for NotifyWake {
  fn wake(&self) {
    self.0.notify_one();
  }
}

/// Plays the JS side of one Server/Client: takes batches from the queue and keeps every decoded
/// record. `cursor` lets `wait_for` walk the records in order.
pub struct Recorder {
  pub queue: Arc<EventQueue>,
  pub notify: Arc<Notify>,
  pub records: Vec<Record>,
  pub cursor: usize,
}

impl Recorder {
  pub fn new() -> Self {
    let notify = Arc::new(Notify::new());
    let queue = EventQueue::new(Box::new(NotifyWake(notify.clone())));
    Recorder {
      queue,
      notify,
      records: Vec::new(),
      cursor: 0,
    }
  }

  pub fn queue(&self) -> Arc<EventQueue> {
    self.queue.clone()
  }

  /// Takes whatever is queued now; returns how many records that was.
  pub fn drain(&mut self) -> usize {
    let decoded = self.queue.take().decode();
    let n = decoded.len();
    self.records.extend(decoded);
    n
  }

  /// Waits for at least one new record and returns the new ones.
  pub async fn next_records(&mut self) -> Vec<Record> {
    let before = self.records.len();
    self.wait_until("any new record", |r| r.len() > before).await;
    self.records[before..].to_vec()
  }

  /// Accumulates records until `pred` holds over all of them.
  pub async fn wait_until(&mut self, what: &str, mut pred: impl FnMut(&[Record]) -> bool) {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
      self.drain();
      if pred(&self.records) {
        return;
      }
      if tokio::time::timeout_at(deadline, self.notify.notified()).await.is_err() {
        self.drain();
        panic!("timed out waiting for {what}; records so far:\n{}", dump(&self.records));
      }
    }
  }

  /// The next record of `kind` after the cursor; moves the cursor past it.
  pub async fn wait_for(&mut self, kind: u8) -> Record {
    let from = self.cursor;
    let mut found = None;
    self
      .wait_until(&format!("a {} record after #{from}", kind_name(kind)), |r| {
        found = r[from..].iter().position(|x| x.kind == kind).map(|i| from + i);
        found.is_some()
      })
      .await;
    let at = found.unwrap();
    self.cursor = at + 1;
    self.records[at].clone()
  }

  /// Lets things happen for `d`, then takes everything queued.
  pub async fn settle(&mut self, d: Duration) {
    tokio::time::sleep(d).await;
    self.drain();
  }

  pub fn count(&self, kind: u8) -> usize {
    self.records.iter().filter(|r| r.kind == kind).count()
  }

  pub fn index_of(&self, pred: impl Fn(&Record) -> bool) -> Option<usize> {
    self.records.iter().position(pred)
  }
}

pub fn kind_name(k: u8) -> &'static str {
  match k {
    kind::MESSAGE_JSON => "MESSAGE_JSON",
    kind::MESSAGE_BINARY => "MESSAGE_BINARY",
    kind::LISTENING => "LISTENING",
    kind::CONNECTION => "CONNECTION",
    kind::CONNECTION_CLOSE => "CONNECTION_CLOSE",
    kind::CONNECT => "CONNECT",
    kind::DISCONNECT => "DISCONNECT",
    kind::MESSAGE_ERROR => "MESSAGE_ERROR",
    kind::ERROR => "ERROR",
    kind::CONNECT_ERROR => "CONNECT_ERROR",
    kind::CLOSE => "CLOSE",
    kind::ROLE => "ROLE",
    kind::REQUEST_JSON => "REQUEST_JSON",
    kind::REPLY_JSON => "REPLY_JSON",
    kind::AUTH_ERROR => "AUTH_ERROR",
    kind::ADMIT => "ADMIT",
    kind::DRAIN => "DRAIN",
    kind::SLOW_CLIENT => "SLOW_CLIENT",
    kind::CLIENT_DISCONNECT => "CLIENT_DISCONNECT",
    kind::CLIENT_RECONNECT => "CLIENT_RECONNECT",
    _ => "UNKNOWN",
  }
}

pub fn dump(records: &[Record]) -> String {
  let mut out = String::new();
  for (i, r) in records.iter().enumerate().take(60) {
    let body = String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into_owned();
    out.push_str(&format!(
      "  #{i} {} id={} len={} {body:?}\n",
      kind_name(r.kind),
      r.id,
      r.body.len()
    ));
  }
  if records.len() > 60 {
    out.push_str(&format!("  ... {} more\n", records.len() - 60));
  }
  out
}

pub fn text(r: &Record) -> String {
  String::from_utf8(r.body.clone()).expect("error body is UTF-8")
}

/// Asserts an error record's JSON carries `"code":"<code>"` and returns the JSON.
pub fn assert_code(r: &Record, code: &str) -> String {
  let json = text(r);
  assert!(
    json.contains(&format!("\"code\":\"{code}\"")),
    "expected code {code} in {json}"
  );
  json
}

pub fn server_options(path: &str) -> ServerOptions {
  ServerOptions {
    endpoint: Endpoint::Unix(path.to_owned()),
    mode: None,
    max_message_size: codec::DEFAULT_MAX_MESSAGE_SIZE,
    handshake_timeout: Duration::from_secs(5),
    heartbeat: None,
    frame_timeout: None,
    max_connections: None,
    allow: Allow::default(),
    limits: Limits::default(),
    at_least_once: false,
    session_timeout: Duration::from_secs(10),
    wire: Wire::Native,
    loop_host: None,
  }
}

pub fn client_options(path: &str) -> ClientOptions {
  ClientOptions {
    endpoint: Endpoint::Unix(path.to_owned()),
    frame_timeout: None,
    max_message_size: codec::DEFAULT_MAX_MESSAGE_SIZE,
    handshake_timeout: Duration::from_secs(5),
    retry: RetryPolicy {
      retry_delay: Delay::Fixed(Duration::from_millis(20)),
      reconnect_delay: Delay::Fixed(Duration::from_millis(20)),
      max_retries: None,
    },
    heartbeat: None,
    limits: Limits::default(),
    at_least_once: false,
    wire: Wire::Native,
    loop_host: None,
  }
}

pub fn json_frame(topic: &str, payload: &str) -> Vec<u8> {
  let mut f = Vec::new();
  codec::encode_message(&mut f, frame_kind::MESSAGE_JSON, topic, payload.as_bytes());
  f
}

/// A `Server::send` record: `target: u32 BE | wire frame`.
pub fn addressed(target: u32, frame: &[u8]) -> Vec<u8> {
  let mut r = target.to_be_bytes().to_vec();
  r.extend_from_slice(frame);
  r
}

/// The body a message record carries: `topic_len: u16 BE | topic | payload`.
pub fn message_body(topic: &str, payload: &[u8]) -> Vec<u8> {
  let mut b = (topic.len() as u16).to_be_bytes().to_vec();
  b.extend_from_slice(topic.as_bytes());
  b.extend_from_slice(payload);
  b
}

pub fn payload_of(r: &Record) -> &[u8] {
  codec::message_payload(&r.body).expect("message record body has a topic")
}

pub fn topic_of(r: &Record) -> &str {
  std::str::from_utf8(codec::message_topic(&r.body).expect("topic")).unwrap()
}

pub async fn start_server(path: &str) -> (Server, Recorder) {
  start_server_with(server_options(path)).await
}

pub async fn start_server_with(options: ServerOptions) -> (Server, Recorder) {
  let mut rec = Recorder::new();
  let server = Server::listen(options, Default::default(), rec.queue());
  let first = rec.wait_for(kind::LISTENING).await;
  assert_eq!(first.id, 0);
  assert_eq!(
    rec.records[0].kind,
    kind::LISTENING,
    "LISTENING is the first record:\n{}",
    dump(&rec.records)
  );
  (server, rec)
}

/// Connects a client and waits until both sides have seen the connection; returns its server id.
pub async fn connect_client(path: &str, server_rec: &mut Recorder) -> (Client, Recorder, u32) {
  let mut rec = Recorder::new();
  let client = Client::connect(client_options(path), Default::default(), rec.queue());
  let connect = rec.wait_for(kind::CONNECT).await;
  assert_eq!(connect.body, [0, 0], "first connect: not a reconnect, no session resumed");
  let id = server_rec.wait_for(kind::CONNECTION).await.id;
  (client, rec, id)
}

/// A raw peer that completed a valid hello (and read the server's).
pub async fn raw_hello(path: &str) -> UnixStream {
  let mut s = UnixStream::connect(path).await.unwrap();
  let mut hello = Vec::new();
  codec::encode_hello(&mut hello);
  s.write_all(&hello).await.unwrap();
  let mut answer = vec![0u8; hello.len()];
  s.read_exact(&mut answer).await.unwrap();
  assert_eq!(answer, hello, "the server answers with its own v1 hello");
  s
}

pub async fn close_client(client: &Client, rec: &mut Recorder) {
  client.close();
  rec
    .wait_until("client CLOSE", |r| r.iter().any(|x| x.kind == kind::CLOSE))
    .await;
}

pub async fn close_server(server: &Server, rec: &mut Recorder) {
  server.close();
  rec
    .wait_until("server CLOSE", |r| r.iter().any(|x| x.kind == kind::CLOSE))
    .await;
}

