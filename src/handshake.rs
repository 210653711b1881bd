//! Everything before a connection carries messages: TLS when configured, the hello with its
//! version check, the secret's challenge and response (`auth`), and the server's verdict, its
//! own hello or a REJECT with the reason. Server and client, and both roles of a Peer, use it.

use crate::auth::{self, Secret};
use crate::codec::{self, kind, Hello};
use crate::error::IpcError;
use crate::events::{kind as events_kind, EventQueue};
use crate::tls::{TlsClient, TlsFailure, TlsServer};
use crate::transport::{self, Endpoint, PeerInfo, Socket};
use bytes::{Buf, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// What a connection reads with until traffic shows it needs more: an idle connection (the
/// hello is 12 bytes) then holds ~1 KiB instead of 64 KiB.
pub const FIRST_READ: usize = 1024;

/// A socket plus the bytes read from it but not yet consumed (the peer may send its first
/// messages right behind its hello).
pub struct Conn {
  pub(crate) stream: Socket,
  pub(crate) buf: BytesMut,
  /// Who connected, read before any TLS layer hid the real socket.
  info: PeerInfo,
  /// Under TLS: why the session ended, if a TLS error ended it (the bridge hides it otherwise).
  pub(crate) tls_failure: Option<TlsFailure>,
  /// The flags and extension bytes of the peer's hello (`session`).
  pub hello: HelloOptions,
}

/// What a hello says besides its version: flags and extension bytes (see `session`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelloOptions {
  pub flags: u8,
  pub extension: Vec<u8>,
}

impl HelloOptions {
  fn encode(&self, dst: &mut Vec<u8>) {
    codec::encode_hello_with(dst, self.flags, &self.extension);
  }
}

/// Why a connection never became established.
#[derive(Debug)]
pub enum HandshakeFailure {
  /// The peer closed without sending a byte, or we refused it by policy: nothing to report.
  Silent,
  /// We are shutting down.
  Shutdown,
  /// The peer broke the protocol or took too long.
  Error(IpcError),
  /// The peer failed to authenticate (secret, certificate, `allow`): reported as `'authError'`.
  Auth(IpcError),
}

impl From<IpcError> for HandshakeFailure {
  fn from(e: IpcError) -> Self {
    HandshakeFailure::Error(e)
  }
}

impl HandshakeFailure {
  /// How the listening side reports a connection that never became established: bad input as a
  /// `MESSAGE_ERROR`, failed authentication as an `AUTH_ERROR` naming who it was, and nothing for
  /// a silent peer, a refusal by capacity or our own shutdown.
  pub fn report(&self, events: &EventQueue, id: u32, info: &PeerInfo) {
    match self {
      HandshakeFailure::Error(e) => events.push_error(events_kind::MESSAGE_ERROR, id, e),
      HandshakeFailure::Auth(e) => events.push_auth_error(id, e, info),
      HandshakeFailure::Silent | HandshakeFailure::Shutdown => {}
    }
  }
}

/// The listening side's checks: TLS, then the secret.
#[derive(Default)]
pub struct ServerSecurity {
  pub tls: Option<TlsServer>,
  pub secret: Option<Secret>,
}

/// The connecting side's: TLS (verifying the server), then the secret, proved both ways.
#[derive(Default)]
pub struct ClientSecurity {
  pub tls: Option<TlsClient>,
  pub secret: Option<Secret>,
}

impl Conn {
  fn with_info(stream: Socket, info: PeerInfo) -> Self {
    Conn {
      stream,
      buf: BytesMut::with_capacity(FIRST_READ),
      info,
      tls_failure: None,
      hello: HelloOptions::default(),
    }
  }

  /// A connection on the socket-ipc wire, which has no hello: established as soon as it is.
  pub fn plain(socket: Socket) -> Self {
    let info = socket.peer_info();
    Conn::with_info(socket, info)
  }

  pub fn peer_info(&self) -> PeerInfo {
    self.info
  }

  /// Bytes the peer sent behind its part of the hello exchange: the connection reads them first.
  pub fn buffered(&self) -> &[u8] {
    &self.buf
  }

  /// Reads one handshake frame (small: `HELLO_MAX_LEN`), as `(kind, body)`.
  async fn read_frame(&mut self, who: &str) -> Result<(u8, Vec<u8>), HandshakeFailure> {
    self.read_frame_or_header(who).await?.ok_or_else(|| not_our_protocol(who))
  }

  /// As `read_frame`, but a length prefix no handshake frame has (0, or over `HELLO_MAX_LEN`) is
  /// `None` instead of an error, so the caller decides what it means where it came.
  async fn read_frame_or_header(&mut self, who: &str) -> Result<Option<(u8, Vec<u8>)>, HandshakeFailure> {
    loop {
      match codec::next_frame(&self.buf, codec::HELLO_MAX_LEN) {
        Ok(Some(frame)) => {
          let out = (frame.kind, frame.body.to_vec());
          let used = frame.wire_len();
          self.buf.advance(used);
          return Ok(Some(out));
        }
        Ok(None) => {}
        Err(_) => return Ok(None),
      }
      match self.stream.read_buf(&mut self.buf).await {
        Ok(0) if self.buf.is_empty() => return Err(HandshakeFailure::Silent),
        Ok(0) => return Err(not_our_protocol(who)),
        Ok(_) => {}
        Err(_) => return Err(HandshakeFailure::Silent),
      }
    }
  }

  /// Reads the peer's hello (or a reject).
  async fn read_hello(&mut self, who: &str) -> Result<Hello, HandshakeFailure> {
    let (frame_kind, body) = self.read_frame(who).await?;
    let frame = codec::Frame { kind: frame_kind, body: &body };
    let (flags, extension) = codec::hello_options(&frame);
    self.hello = HelloOptions { flags, extension: extension.to_vec() };
    codec::parse_hello(&frame).ok_or_else(|| not_our_protocol(who))
  }

  async fn write_frame(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(), HandshakeFailure> {
    let mut frame = Vec::new();
    encode(&mut frame);
    self
      .stream
      .write_all(&frame)
      .await
      .map_err(|_| HandshakeFailure::Silent)
  }

  async fn refuse(&mut self, reason: &str) {
    let _ = self.write_frame(|f| codec::encode_reject(f, reason)).await;
  }

  /// Server side, first part: TLS, the client's hello, and its proof of the secret. The caller
  /// then decides (`allow`, `maxConnections`) and calls `answer`. Not time-bounded itself: the
  /// caller bounds the whole handshake with `bounded`.
  pub async fn accept(socket: Socket, security: &ServerSecurity) -> Result<Conn, HandshakeFailure> {
    Conn::accept_with(socket, security, None).await
  }

  /// `accept`, challenging with `server_nonce` if given (the test vectors' fixed one) instead of
  /// a fresh one.
  async fn accept_with(socket: Socket, security: &ServerSecurity, server_nonce: Option<[u8; auth::NONCE_LEN]>) -> Result<Conn, HandshakeFailure> {
    let info = socket.peer_info();
    let (socket, tls_failure) = match &security.tls {
      // A connect and nothing more (a port scan, a health check) is not worth an event.
      Some(tls) => {
        let (socket, failure) = tls.accept(socket).await.map_err(HandshakeFailure::Auth)?.ok_or(HandshakeFailure::Silent)?;
        (socket, Some(failure))
      }
      None => (socket, None),
    };
    let mut conn = Conn::with_info(socket, info);
    conn.tls_failure = tls_failure;
    match conn.read_hello("client").await? {
      Hello::Version(codec::VERSION) => {}
      Hello::Version(v) => {
        let reason = format!(
          "this server speaks native-socket-ipc protocol version {}, the client sent version {v}",
          codec::VERSION
        );
        conn.refuse(&reason).await;
        return Err(IpcError::Protocol(reason).into());
      }
      Hello::Rejected(_) => return Err(not_our_protocol("client")),
    }
    if let Some(secret) = &security.secret {
      conn.challenge(secret, server_nonce.unwrap_or_else(auth::nonce)).await?;
    }
    Ok(conn)
  }

  /// Asks the client to prove the secret, checks the proof and proves ourselves back.
  async fn challenge(&mut self, secret: &Secret, server_nonce: [u8; auth::NONCE_LEN]) -> Result<(), HandshakeFailure> {
    self
      .write_frame(|f| codec::encode_frame(f, kind::AUTH_CHALLENGE, &server_nonce))
      .await?;
    // Whatever stands where the proof belongs is judged as a proof: anything else (a client that
    // does not know about secrets and sends data at once) is refused as such, with a REJECT.
    let (problem, body) = match self.read_frame_or_header("client").await? {
      Some((kind::AUTH_PROOF, body)) => match body.len() {
        0 => (Some("the client has no secret; give it the server's secret (options.secret)"), body),
        n if n != auth::NONCE_LEN + auth::TAG_LEN => (Some("the client's proof of the secret is malformed"), body),
        _ => {
          let (client_nonce, tag) = body.split_at(auth::NONCE_LEN);
          let wrong = !secret.verify_client(&server_nonce, client_nonce, tag);
          (wrong.then_some("the client's secret does not match the server's (options.secret)"), body)
        }
      },
      _ => (
        Some("the client did not answer the challenge with its proof of the secret (AUTH_PROOF); give it the server's secret (options.secret)"),
        Vec::new(),
      ),
    };
    if let Some(problem) = problem {
      self.refuse(&format!("{}: {problem}", codec::AUTH_FAILED)).await;
      return Err(HandshakeFailure::Auth(IpcError::AuthFailed(format!(
        "a client failed authentication: {problem}"
      ))));
    }
    let proof = secret.server_proof(&server_nonce, &body[..auth::NONCE_LEN]);
    self.write_frame(|f| codec::encode_frame(f, kind::AUTH_OK, &proof)).await
  }

  /// Server side, the verdict: our hello, or a REJECT with `refusal`'s reason (then the
  /// connection ends, reported as the refusal says).
  pub async fn answer(&mut self, refusal: Option<Refusal>, hello: &HelloOptions) -> Result<(), HandshakeFailure> {
    match refusal {
      None => self.write_frame(|f| hello.encode(f)).await,
      Some(refusal) => {
        self.refuse(&refusal.reason).await;
        Err(match refusal.report {
          // A malformed hello is bad input, not a failed authentication.
          Some(e @ IpcError::Protocol(_)) => HandshakeFailure::Error(e),
          Some(e) => HandshakeFailure::Auth(e),
          None => HandshakeFailure::Silent,
        })
      }
    }
  }

  /// Client side: TLS, our hello, the secret if the server asks (and only then), the server's
  /// hello. Not time-bounded itself, and a server that just closes is `Silent`: see
  /// `connect_once`, which bounds it and reports that as a protocol error.
  pub async fn offer(socket: Socket, security: &ClientSecurity, hello: &HelloOptions) -> Result<Conn, HandshakeFailure> {
    let info = socket.peer_info();
    let (socket, tls_failure) = match &security.tls {
      Some(tls) => {
        let (socket, failure) = tls.connect(socket).await?;
        (socket, Some(failure))
      }
      None => (socket, None),
    };
    let mut conn = Conn::with_info(socket, info);
    conn.tls_failure = tls_failure.clone();
    // A server that ends the TLS session during the hello (refusing our certificate) says why.
    let tls_says = |failure: HandshakeFailure| match tls_failure.as_ref().and_then(|f| f.take()) {
      Some(e) => HandshakeFailure::Error(e),
      None => failure,
    };
    conn.offer_on(security, hello, auth::nonce()).await.map_err(tls_says)
  }

  /// The client's hello exchange, with `client_nonce` for the proof if the server asks for one.
  async fn offer_on(mut self, security: &ClientSecurity, hello: &HelloOptions, client_nonce: [u8; auth::NONCE_LEN]) -> Result<Conn, HandshakeFailure> {
    self.write_frame(|f| hello.encode(f)).await?;
    let (mut frame_kind, mut body) = self.read_frame("server").await?;
    match (frame_kind, &security.secret) {
      (kind::AUTH_CHALLENGE, Some(secret)) if body.len() == auth::NONCE_LEN => {
        let proof = [&client_nonce[..], &secret.client_proof(&body, &client_nonce)].concat();
        self.write_frame(|f| codec::encode_frame(f, kind::AUTH_PROOF, &proof)).await?;
        let server_nonce = body;
        (frame_kind, body) = self.read_frame("server").await?;
        // Only a valid AUTH_OK lets the exchange go on; a REJECT still says why (a wrong secret).
        // Anything else is a server that took our proof without proving itself.
        match frame_kind {
          kind::AUTH_OK if secret.verify_server(&server_nonce, &client_nonce, &body) => {
            (frame_kind, body) = self.read_frame("server").await?;
          }
          kind::REJECT => {}
          _ => {
            return Err(HandshakeFailure::Error(IpcError::AuthFailed(
              "the server could not prove it knows the secret; it is not the server you configured (or its secret differs)".into(),
            )))
          }
        }
      }
      (kind::AUTH_CHALLENGE, None) => {
        // Say so, so the server can report a missing (rather than a wrong) secret.
        let _ = self.write_frame(|f| codec::encode_frame(f, kind::AUTH_PROOF, b"")).await;
        return Err(HandshakeFailure::Error(IpcError::AuthFailed(
          "the server requires a secret; set options.secret to the server's secret".into(),
        )));
      }
      (kind::HELLO, Some(_)) => {
        return Err(HandshakeFailure::Error(IpcError::AuthFailed(
          "the server did not ask for the secret, so it cannot prove it knows it; refusing to talk to it (set the same options.secret on the server)".into(),
        )))
      }
      _ => {}
    }
    let frame = codec::Frame { kind: frame_kind, body: &body };
    let (flags, extension) = codec::hello_options(&frame);
    self.hello = HelloOptions { flags, extension: extension.to_vec() };
    match codec::parse_hello(&frame).ok_or_else(|| not_our_protocol("server"))? {
      Hello::Version(codec::VERSION) => Ok(self),
      Hello::Version(v) => Err(
        IpcError::Protocol(format!(
          "the server speaks native-socket-ipc protocol version {v}, this client speaks {}; upgrade the older side",
          codec::VERSION
        ))
        .into(),
      ),
      Hello::Rejected(reason) => Err(rejected(reason).into()),
    }
  }
}

/// The error a REJECT's reason stands for.
fn rejected(reason: String) -> IpcError {
  let rest = |prefix: &str| reason[prefix.len()..].trim_start_matches(':').trim().to_owned();
  if reason.starts_with(codec::PEER_BUSY) {
    IpcError::PeerBusy
  } else if reason.starts_with(codec::SERVER_FULL) {
    IpcError::ServerFull(reason)
  } else if reason.starts_with(codec::AUTH_FAILED) {
    IpcError::AuthFailed(format!("the server refused the secret: {}", rest(codec::AUTH_FAILED)))
  } else if reason.starts_with(codec::DELIVERY_MISMATCH) {
    IpcError::DeliveryMismatch(format!("the server refused the connection: {}", rest(codec::DELIVERY_MISMATCH)))
  } else if reason.starts_with(codec::NOT_ALLOWED) {
    IpcError::NotAllowed(format!("the server does not allow this client: {}", rest(codec::NOT_ALLOWED)))
  } else {
    IpcError::Protocol(format!("the server rejected the hello: {reason}"))
  }
}

/// A server's "no": the reason sent to the client, and what to report, if anything.
pub struct Refusal {
  pub reason: String,
  /// `None` for a refusal by capacity (not the client's fault, so not an event).
  pub report: Option<IpcError>,
}

/// A failed hello as the client reports it: a server that just closed broke the protocol.
fn client_error(failure: HandshakeFailure) -> IpcError {
  match failure {
    HandshakeFailure::Error(e) | HandshakeFailure::Auth(e) => e,
    HandshakeFailure::Silent | HandshakeFailure::Shutdown => {
      IpcError::Protocol(
        "the server closed the connection during the hello (it was stopping, or it has another protocol option)".into(),
      )
    }
  }
}

fn not_our_protocol(who: &str) -> HandshakeFailure {
  HandshakeFailure::Error(IpcError::Protocol(format!(
    "the {who} does not speak the native-socket-ipc protocol (its first bytes are not a hello); check that both ends use native-socket-ipc, with the same TLS setting and protocol option"
  )))
}

/// Runs a handshake step within `limit`, ending early on shutdown.
pub async fn bounded<T>(
  limit: Duration,
  shutdown: &CancellationToken,
  who: &str,
  work: impl std::future::Future<Output = Result<T, HandshakeFailure>>,
) -> Result<T, HandshakeFailure> {
  tokio::select! {
    _ = shutdown.cancelled() => Err(HandshakeFailure::Shutdown),
    r = tokio::time::timeout(limit, work) => r.unwrap_or_else(|_| Err(IpcError::HandshakeTimeout(format!(
      "the {who} did not complete the hello within {} ms (handshakeTimeout)", limit.as_millis()
    )).into())),
  }
}

/// One attempt: connect to `endpoint` and complete the handshake (`hello: None`: the
/// socket-ipc wire, which has none), each within `limit`.
pub async fn connect_once(
  endpoint: &Endpoint,
  security: &ClientSecurity,
  limit: Duration,
  hello: Option<&HelloOptions>,
) -> Result<Conn, IpcError> {
  const ETIMEDOUT: i32 = 110;
  let socket = match tokio::time::timeout(limit, transport::connect(endpoint)).await {
    Ok(connected) => connected?,
    Err(_) => {
      return Err(
        IpcError::io(std::io::Error::from_raw_os_error(ETIMEDOUT), "connect", &endpoint.to_string())
          .with_detail("no answer within handshakeTimeout"),
      )
    }
  };
  let Some(hello) = hello else { return Ok(Conn::plain(socket)) };
  let never = CancellationToken::new();
  bounded(limit, &never, "server", Conn::offer(socket, security, hello)).await.map_err(client_error)
}

/// The exchanges of `vectors/auth.json`, byte for byte: the real handshake code on one end of a
/// socket pair, with the file's fixed nonces injected, and the other end played from the file.
#[cfg(all(test, unix))]
mod vector_tests {
  use super::*;
  use serde_json::Value;
  use tokio::net::UnixStream;

  fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/auth.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors/auth.json is readable")).expect("vectors/auth.json is JSON")
  }

  fn bytes(hex: &str) -> Vec<u8> {
    let hex: String = hex.split_whitespace().collect();
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
  }

  fn nonce(doc: &Value, field: &str) -> [u8; auth::NONCE_LEN] {
    bytes(doc[field].as_str().unwrap()).try_into().unwrap()
  }

  /// Plays the side `me` of `steps`: writes its steps, and reads exactly the other side's,
  /// comparing; then expects EOF (the side under test wrote nothing more).
  async fn play(mut stream: UnixStream, steps: &[Value], me: &str, name: &str) {
    for (i, step) in steps.iter().enumerate() {
      let expected = bytes(step["hex"].as_str().unwrap());
      if step["from"] == me {
        // The side under test may have closed already (after a REJECT): a failed write is its answer.
        let _ = stream.write_all(&expected).await;
      } else {
        let mut got = vec![0; expected.len()];
        stream.read_exact(&mut got).await.unwrap_or_else(|e| panic!("{name}: step {i}: {e}"));
        assert_eq!(got, expected, "{name}: step {i} ({})", step["from"]);
      }
    }
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{name}: more bytes than the vector has: {rest:02x?}");
  }

  #[tokio::test]
  async fn the_auth_vectors_are_what_the_handshake_code_writes_and_how_it_reads_them() {
    let doc = load();
    let secret = doc["secret"].as_str().unwrap().as_bytes().to_vec();
    let (server_nonce, client_nonce) = (nonce(&doc, "server_nonce_hex"), nonce(&doc, "client_nonce_hex"));
    let mut checked = (0, 0);
    for v in doc["vectors"].as_array().unwrap() {
      let name = v["name"].as_str().unwrap();
      let steps = v["steps"].as_array().unwrap();
      let role = v["role"].as_str().unwrap();
      if role == "server" || role == "both" {
        let (server_end, peer) = UnixStream::pair().unwrap();
        let security = ServerSecurity { tls: None, secret: Some(Secret::new(&secret)) };
        let refusal = (v["server_options"]["allow"] == false).then(|| Refusal {
          reason: format!("{}: the server's allow function refused it", codec::NOT_ALLOWED),
          report: Some(IpcError::NotAllowed("refused".into())),
        });
        let serving = async {
          let mut conn = Conn::accept_with(Socket::Unix(server_end), &security, Some(server_nonce)).await?;
          conn.answer(refusal, &HelloOptions::default()).await
        };
        let (outcome, ()) = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(serving, play(peer, steps, "client", name)) })
          .await
          .unwrap_or_else(|_| panic!("{name}: hangs"));
        match (v["reports"]["server"].as_str().unwrap(), &outcome) {
          ("connection", Ok(())) => {}
          ("authError", Err(HandshakeFailure::Auth(e))) => assert_eq!(e.code(), v["reports"]["code"].as_str(), "{name}"),
          (want, got) => panic!("{name}: the server should report {want}, got {got:?}"),
        }
        checked.0 += 1;
      }
      if role == "client" || role == "both" {
        let (client_end, peer) = UnixStream::pair().unwrap();
        let with_secret = v["client_has_secret"] != false;
        let security = ClientSecurity { tls: None, secret: with_secret.then(|| Secret::new(&secret)) };
        let conn = Conn::plain(Socket::Unix(client_end));
        let offering = async { conn.offer_on(&security, &HelloOptions::default(), client_nonce).await.map(drop) };
        let (outcome, ()) = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(offering, play(peer, steps, "server", name)) })
          .await
          .unwrap_or_else(|_| panic!("{name}: hangs"));
        let reports = &v["reports"];
        match outcome.map_err(client_error) {
          Ok(()) => assert_eq!(reports["client"], "connect", "{name}"),
          Err(e) => {
            assert_eq!(e.code(), reports["code"].as_str(), "{name}: {e}");
            let stops = v["then"] == "stops";
            assert_eq!(e.is_final(), stops, "{name}: the client {} after {e}", if stops { "must stop" } else { "must retry" });
            assert_eq!(reports["client"], if stops { "error" } else { "connectError" }, "{name}");
          }
        }
        checked.1 += 1;
      }
    }
    assert!(checked.0 >= 7 && checked.1 >= 5, "vectors checked (server, client): {checked:?}");
  }
}
