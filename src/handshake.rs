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

  /// Reads one handshake frame (small: `HELLO_MAX_LEN`), as `(kind, body)`.
  async fn read_frame(&mut self, who: &str) -> Result<(u8, Vec<u8>), HandshakeFailure> {
    loop {
      match codec::next_frame(&self.buf, codec::HELLO_MAX_LEN) {
        Ok(Some(frame)) => {
          let out = (frame.kind, frame.body.to_vec());
          let used = frame.wire_len();
          self.buf.advance(used);
          return Ok(out);
        }
        Ok(None) => {}
        Err(_) => return Err(not_our_protocol(who)),
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
      conn.challenge(secret).await?;
    }
    Ok(conn)
  }

  /// Asks the client to prove the secret, checks the proof and proves ourselves back.
  async fn challenge(&mut self, secret: &Secret) -> Result<(), HandshakeFailure> {
    let server_nonce = auth::nonce();
    self
      .write_frame(|f| codec::encode_frame(f, kind::AUTH_CHALLENGE, &server_nonce))
      .await?;
    let (frame_kind, body) = self.read_frame("client").await?;
    if frame_kind != kind::AUTH_PROOF {
      return Err(not_our_protocol("client"));
    }
    let problem = match body.len() {
      0 => Some("the client has no secret; give it the server's secret (options.secret)"),
      n if n != auth::NONCE_LEN + auth::TAG_LEN => Some("the client's proof of the secret is malformed"),
      _ => {
        let (client_nonce, tag) = body.split_at(auth::NONCE_LEN);
        (!secret.verify_client(&server_nonce, client_nonce, tag))
          .then_some("the client's secret does not match the server's (options.secret)")
      }
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
    conn.offer_on(security, hello).await.map_err(tls_says)
  }

  async fn offer_on(mut self, security: &ClientSecurity, hello: &HelloOptions) -> Result<Conn, HandshakeFailure> {
    self.write_frame(|f| hello.encode(f)).await?;
    let (mut frame_kind, mut body) = self.read_frame("server").await?;
    match (frame_kind, &security.secret) {
      (kind::AUTH_CHALLENGE, Some(secret)) if body.len() == auth::NONCE_LEN => {
        let client_nonce = auth::nonce();
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
