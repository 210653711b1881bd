//! TLS (rustls) over any transport. After the TLS handshake the connection is bridged to one end
//! of a local socket pair (a Unix socketpair; on Windows, which has none in tokio, a loopback TCP
//! pair) by a small pump task, and the connection code runs on the other end as on
//! any plain socket: one code path for every transport, including its direct writes and
//! readiness-based reads. The price is one extra local copy per direction (see README).

use crate::error::IpcError;
use crate::transport::Socket;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring as provider, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The options of `node:tls` we take, PEM as bytes.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
  pub cert: Option<Vec<u8>>,
  pub key: Option<Vec<u8>>,
  pub ca: Option<Vec<u8>>,
  pub request_cert: bool,
  pub reject_unauthorized: bool,
  pub servername: Option<String>,
}

/// After our side of a TLS connection has ended, how long the other side gets to end its own.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The pump reads up to this much per direction at a time.
const PUMP_BUFFER: usize = 64 * 1024;

fn config_error(what: impl std::fmt::Display) -> IpcError {
  IpcError::TlsConfig(what.to_string())
}

fn provider() -> Arc<CryptoProvider> {
  Arc::new(provider::default_provider())
}

fn certificates(pem: &[u8], option: &str) -> Result<Vec<CertificateDer<'static>>, IpcError> {
  let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
    .collect::<Result<_, _>>()
    .map_err(|e| config_error(format!("tls.{option} is not valid PEM: {e}")))?;
  if certs.is_empty() {
    return Err(config_error(format!(
      "tls.{option} holds no certificate (expected PEM with '-----BEGIN CERTIFICATE-----')"
    )));
  }
  Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, IpcError> {
  // Never echo the key's bytes: only what kind of problem it has.
  PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
    config_error("tls.key holds no usable private key (expected PEM: PKCS#8, PKCS#1 or SEC1)")
  })
}

fn roots(pem: &[u8]) -> Result<RootCertStore, IpcError> {
  let mut store = RootCertStore::empty();
  for cert in certificates(pem, "ca")? {
    store
      .add(cert)
      .map_err(|e| config_error(format!("tls.ca has a certificate rustls cannot use: {e}")))?;
  }
  Ok(store)
}

/// The server side, built once per server.
pub struct TlsServer(tokio_rustls::TlsAcceptor);

impl TlsServer {
  pub fn new(options: &TlsOptions) -> Result<TlsServer, IpcError> {
    let (Some(cert), Some(key)) = (&options.cert, &options.key) else {
      return Err(config_error("a TLS server needs tls.cert and tls.key"));
    };
    let builder = ServerConfig::builder_with_provider(provider())
      .with_safe_default_protocol_versions()
      .map_err(config_error)?;
    let builder = if options.request_cert {
      let Some(ca) = &options.ca else {
        return Err(config_error(
          "tls.requestCert needs tls.ca: the CA certificates that sign the clients' certificates",
        ));
      };
      let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
      // Like node:tls: with rejectUnauthorized false a client may connect without a certificate
      // (one it does present must still verify).
      let verifier = if options.reject_unauthorized {
        verifier
      } else {
        verifier.allow_unauthenticated()
      };
      builder.with_client_cert_verifier(verifier.build().map_err(config_error)?)
    } else {
      builder.with_no_client_auth()
    };
    let config = builder
      .with_single_cert(certificates(cert, "cert")?, private_key(key)?)
      .map_err(|e| config_error(format!("tls.cert and tls.key do not make a usable pair: {e}")))?;
    Ok(TlsServer(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
  }

  /// `Ok(None)`: the client closed before a TLS hello (a port probe), nothing to report.
  /// Also returns where the pump leaves a TLS error that ends the session later (a corrupt record).
  pub async fn accept(&self, socket: Socket) -> Result<Option<(Socket, TlsFailure)>, IpcError> {
    match self.0.accept(socket).await {
      Ok(stream) => bridge(stream, "client").await.map(Some),
      Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !is_rustls_error(&e) => Ok(None),
      Err(e) => Err(handshake_error(e, "client")),
    }
  }
}

/// The client side, built once per client.
pub struct TlsClient {
  connector: tokio_rustls::TlsConnector,
  name: ServerName<'static>,
}

impl TlsClient {
  pub fn new(options: &TlsOptions, default_name: &str) -> Result<TlsClient, IpcError> {
    let builder = ClientConfig::builder_with_provider(provider())
      .with_safe_default_protocol_versions()
      .map_err(config_error)?;
    let builder = if !options.reject_unauthorized {
      builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider().signature_verification_algorithms)))
    } else {
      let roots = match &options.ca {
        Some(ca) => roots(ca)?,
        // As node:tls: without `ca`, the well-known public CAs (Mozilla's list).
        None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
      };
      builder.with_root_certificates(roots)
    };
    let config = match (&options.cert, &options.key) {
      (Some(cert), Some(key)) => builder
        .with_client_auth_cert(certificates(cert, "cert")?, private_key(key)?)
        .map_err(|e| config_error(format!("tls.cert and tls.key do not make a usable pair: {e}")))?,
      (None, None) => builder.with_no_client_auth(),
      _ => return Err(config_error("a client certificate needs both tls.cert and tls.key")),
    };
    let name = options.servername.as_deref().unwrap_or(default_name);
    let name = ServerName::try_from(name.to_owned())
      .map_err(|_| config_error(format!("'{name}' is not a valid server name for TLS (tls.servername)")))?;
    Ok(TlsClient {
      connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
      name,
    })
  }

  /// Also returns where the pump leaves the error that ends the TLS session, if one does: in
  /// TLS 1.3 the server refuses a client certificate only after the client's handshake is done,
  /// so the refusal arrives as an alert while the client waits for the hello.
  pub async fn connect(&self, socket: Socket) -> Result<(Socket, TlsFailure), IpcError> {
    let stream = self
      .connector
      .connect(self.name.clone(), socket)
      .await
      .map_err(|e| handshake_error(e, "server"))?;
    bridge(stream, "server").await
  }
}

fn is_rustls_error(error: &io::Error) -> bool {
  error.get_ref().is_some_and(|e| e.is::<rustls::Error>())
}

/// A failed TLS handshake, saying whether a certificate was refused (which retrying cannot fix).
fn handshake_error(error: io::Error, other: &str) -> IpcError {
  tls_error(error, &format!("the TLS handshake with the {other}"))
}

/// A TLS failure of `what` ("the TLS handshake with the server", …), saying whether a certificate
/// was refused.
fn tls_error(error: io::Error, what: &str) -> IpcError {
  let rustls_error = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
  let refused = matches!(
    rustls_error,
    Some(
      rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::AlertReceived(
          rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::CertificateUnknown
            | rustls::AlertDescription::CertificateExpired
            | rustls::AlertDescription::UnsupportedCertificate
            | rustls::AlertDescription::DecryptError
        )
    )
  );
  let message = match rustls_error {
    Some(e) if refused => format!("{what} failed: {e}; check tls.ca, tls.cert and tls.servername on both sides"),
    Some(e) => format!("{what} failed: {e}"),
    None => format!("{what} failed: {error} (is the other side speaking TLS?)"),
  };
  IpcError::Tls { message, refused }
}

/// `rejectUnauthorized: false` on a client: any server certificate is accepted (the handshake's
/// signatures are still checked, so the connection is encrypted, just not authenticated).
#[derive(Debug)]
struct AcceptAnyServer(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyServer {
  fn verify_server_cert(
    &self,
    _end_entity: &CertificateDer<'_>,
    _intermediates: &[CertificateDer<'_>],
    _server_name: &ServerName<'_>,
    _ocsp_response: &[u8],
    _now: UnixTime,
  ) -> Result<ServerCertVerified, rustls::Error> {
    Ok(ServerCertVerified::assertion())
  }

  fn verify_tls12_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
  }

  fn verify_tls13_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
  }

  fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
    self.0.supported_schemes()
  }
}

/// The TLS error that ended a bridged session, once there is one, and who was on the other end.
#[derive(Clone)]
pub struct TlsFailure(Arc<std::sync::Mutex<Option<io::Error>>>, &'static str);

impl TlsFailure {
  /// The error, explained, if the session ended with a TLS error (not a plain close).
  pub fn take(&self) -> Option<IpcError> {
    let error = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
    is_rustls_error(&error).then(|| tls_error(error, &format!("the TLS session with the {}", self.1)))
  }
}

/// Hands back a plain socket whose bytes a pump task carries through `tls`, and where the pump
/// will leave the TLS error that ends the session, if one does. `other`: who is at the far end.
async fn bridge<S>(tls: S, other: &'static str) -> Result<(Socket, TlsFailure), IpcError>
where
  S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
  let (ours, theirs_read, theirs_write) = socket_pair().await.map_err(|e| IpcError::io(e, "socketpair", "tls"))?;
  let failure = TlsFailure(Arc::default(), other);
  tokio::spawn(pump(tls, theirs_read, theirs_write, failure.clone()));
  Ok((ours, failure))
}

/// Our end, and the pump's end split into halves that need no lock between them.
#[cfg(unix)]
async fn socket_pair() -> io::Result<(Socket, impl AsyncRead + Unpin + Send, impl AsyncWrite + Unpin + Send)> {
  let (ours, theirs) = tokio::net::UnixStream::pair()?;
  let (read, write) = theirs.into_split();
  Ok((Socket::Unix(ours), read, write))
}

/// A connected loopback TCP pair. Only the connection we made ourselves is taken: another local
/// process that connects to the short-lived listener first is ignored.
#[cfg(not(unix))]
async fn socket_pair() -> io::Result<(Socket, impl AsyncRead + Unpin + Send, impl AsyncWrite + Unpin + Send)> {
  let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
  let ours = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
  let mine = ours.local_addr()?;
  loop {
    let (theirs, from) = listener.accept().await?;
    if from == mine {
      ours.set_nodelay(true)?;
      theirs.set_nodelay(true)?;
      let (read, write) = theirs.into_split();
      return Ok((Socket::Tcp(ours), read, write));
    }
  }
}

/// Copies both ways until both are done. The directions run independently, so a peer that is
/// not reading cannot stop us from reading (which would deadlock two busy ends).
async fn pump<S, R, W>(tls: S, plain_read: R, mut plain_write: W, failure: TlsFailure)
where
  S: AsyncRead + AsyncWrite + Unpin + Send,
  R: AsyncRead + Unpin + Send,
  W: AsyncWrite + Unpin + Send,
{
  let (tls_read, mut tls_write) = tokio::io::split(tls);
  let inbound = async move {
    let copied = tokio::io::copy_buf(&mut BufReader::with_capacity(PUMP_BUFFER, tls_read), &mut plain_write).await;
    if let Err(e) = copied {
      *failure.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
    // EOF, a TLS error or a dead socket: the connection reads EOF and ends.
    let _ = plain_write.shutdown().await;
  };
  let outbound = async move {
    let _ = tokio::io::copy_buf(&mut BufReader::with_capacity(PUMP_BUFFER, plain_read), &mut tls_write).await;
    // Our connection is done: close_notify, then FIN.
    let _ = tls_write.shutdown().await;
  };
  tokio::pin!(inbound, outbound);
  tokio::select! {
    () = &mut inbound => outbound.await,
    () = &mut outbound => {
      let _ = tokio::time::timeout(CLOSE_GRACE, inbound).await;
    }
  }
}
