//! Where connections go: a Unix socket file, a Linux abstract socket, a Windows named pipe, or
//! TCP. Everything above this module sees one `Socket` and one `Listener` type, so the
//! connection code is the same on every transport (TLS is layered on by `tls.rs`).
//!
//! Per platform: socket files on Unix (Linux and macOS), abstract sockets on Linux only, named
//! pipes on Windows only, TCP everywhere. An endpoint a platform lacks fails to bind or connect
//! with `ERR_IPC_NOT_SUPPORTED` (the JS constructor refuses it first).
//!
//! About 530 lines: one `Socket` and one `Listener` over every transport and platform, each
//! method a `match` over the same variants.

use crate::error::IpcError;
#[cfg(windows)]
use crate::named_pipe;
#[cfg(unix)]
use crate::socket_file;
use bytes::BufMut;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
#[cfg(windows)]
use tokio::net::windows::named_pipe::{NamedPipeClient, NamedPipeServer};

/// Which addresses a host name may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
  Any,
  V4,
  V6,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
  /// A socket file.
  Unix(String),
  /// A Linux abstract socket: a name with no file, gone when its listener closes.
  Abstract(String),
  /// A Windows named pipe, `\\.\pipe\name` (or `\\?\pipe\name`).
  Pipe(String),
  Tcp { host: String, port: u16, family: Family },
}

impl fmt::Display for Endpoint {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Endpoint::Unix(path) | Endpoint::Pipe(path) => f.write_str(path),
      Endpoint::Abstract(name) => write!(f, "@{name}"),
      Endpoint::Tcp { host, port, .. } if host.contains(':') => write!(f, "[{host}]:{port}"),
      Endpoint::Tcp { host, port, .. } => write!(f, "{host}:{port}"),
    }
  }
}

impl Endpoint {
  /// The name a TLS client checks the server's certificate against when none is given.
  pub fn default_server_name(&self) -> &str {
    match self {
      Endpoint::Tcp { host, .. } => host,
      _ => "localhost",
    }
  }

  /// Refuses an endpoint this platform does not have, saying what to use instead.
  fn check_supported(&self) -> Result<(), IpcError> {
    let missing = match self {
      Endpoint::Unix(_) if cfg!(not(unix)) => {
        "Unix socket files are not supported on this platform; use a named pipe ('\\\\.\\pipe\\name') or localEndpoint(name)"
      }
      Endpoint::Abstract(_) if cfg!(not(target_os = "linux")) => {
        "abstract Unix sockets exist only on Linux; use a socket file or localEndpoint(name)"
      }
      Endpoint::Pipe(_) if cfg!(not(windows)) => {
        "named pipes exist only on Windows; use a socket file or localEndpoint(name)"
      }
      _ => return Ok(()),
    };
    Err(IpcError::NotSupported(format!("{self}: {missing}")))
  }

  async fn resolve(&self, host: &str, port: u16, family: Family, syscall: &'static str) -> Result<Vec<SocketAddr>, IpcError> {
    let found = tokio::net::lookup_host((host, port))
      .await
      .map_err(|e| IpcError::Resolve(format!("{syscall} {self}: could not resolve '{host}': {e}")))?;
    let addrs: Vec<SocketAddr> = found
      .filter(|a| match family {
        Family::Any => true,
        Family::V4 => a.is_ipv4(),
        Family::V6 => a.is_ipv6(),
      })
      .collect();
    if addrs.is_empty() {
      let wanted = if family == Family::V6 { "IPv6" } else { "IPv4" };
      return Err(IpcError::Resolve(format!(
        "{syscall} {self}: '{host}' has no {wanted} address (the address forces the family)"
      )));
    }
    Ok(addrs)
  }
}

/// The abstract-namespace address of `name` (a leading NUL byte tells the kernel).
#[cfg(unix)]
fn abstract_path(name: &str) -> String {
  format!("\0{name}")
}

/// Who is on the other end, as the kernel saw them connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerInfo {
  /// `SO_PEERCRED` of a Unix-socket peer; pid 0 when the kernel does not say.
  Process { pid: u32, uid: u32, gid: u32 },
  /// The process at the other end of a named pipe: Windows names no uid or gid.
  PipeProcess { pid: u32 },
  Remote(SocketAddr),
  Unknown,
}

impl PeerInfo {
  #[cfg(unix)]
  fn of_unix(stream: &UnixStream) -> PeerInfo {
    match stream.peer_cred() {
      Ok(cred) => PeerInfo::Process {
        pid: cred.pid().map_or(0, |p| p as u32),
        uid: cred.uid(),
        gid: cred.gid(),
      },
      Err(_) => PeerInfo::Unknown,
    }
  }

  /// The JSON object `server.clientInfo()` returns.
  pub fn write_json(&self, dst: &mut Vec<u8>) {
    let text = match self {
      PeerInfo::Process { pid, uid, gid } => format!("{{\"pid\":{pid},\"uid\":{uid},\"gid\":{gid}}}"),
      PeerInfo::PipeProcess { pid } => format!("{{\"pid\":{pid},\"uid\":null,\"gid\":null}}"),
      PeerInfo::Remote(addr) => format!(
        "{{\"address\":\"{}\",\"family\":\"{}\",\"port\":{}}}",
        addr.ip(),
        if addr.is_ipv4() { "IPv4" } else { "IPv6" },
        addr.port()
      ),
      PeerInfo::Unknown => "{}".to_owned(),
    };
    dst.extend_from_slice(text.as_bytes());
  }

  /// For `allow: { uids, gids }`: the process's ids, when the transport knows them.
  pub fn ids(&self) -> Option<(u32, u32)> {
    match *self {
      PeerInfo::Process { uid, gid, .. } => Some((uid, gid)),
      _ => None,
    }
  }
}

/// A connected stream socket. Readiness-based `try_*` calls take `&self`, so the reader, the
/// writer and direct writes from the JS thread share one socket without a lock.
#[derive(Debug)]
pub enum Socket {
  #[cfg(unix)]
  Unix(UnixStream),
  /// Our end of a pipe we serve (the server's instance).
  #[cfg(windows)]
  PipeServer(NamedPipeServer),
  #[cfg(windows)]
  PipeClient(NamedPipeClient),
  Tcp(TcpStream),
  /// A Unix or TCP socket the JS thread's event loop may read (see `polled`).
  #[cfg(unix)]
  Polled(crate::polled::Polled),
}

macro_rules! each {
  ($self:expr, $s:ident => $body:expr) => {
    match $self {
      #[cfg(unix)]
      Socket::Unix($s) => $body,
      #[cfg(windows)]
      Socket::PipeServer($s) => $body,
      #[cfg(windows)]
      Socket::PipeClient($s) => $body,
      Socket::Tcp($s) => $body,
      #[cfg(unix)]
      Socket::Polled(_) => unreachable!("a polled socket never goes under TLS or an async read/write"),
    }
  };
}

impl Socket {
  pub async fn readable(&self) -> io::Result<()> {
    #[cfg(unix)]
    if let Socket::Polled(s) = self {
      return s.readable().await;
    }
    each!(self, s => s.readable().await)
  }

  pub async fn writable(&self) -> io::Result<()> {
    #[cfg(unix)]
    if let Socket::Polled(s) = self {
      return s.writable().await;
    }
    each!(self, s => s.writable().await)
  }

  pub fn try_read_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
    #[cfg(unix)]
    if let Socket::Polled(s) = self {
      return s.try_read_buf(buf);
    }
    each!(self, s => s.try_read_buf(buf))
  }

  pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
    #[cfg(unix)]
    if let Socket::Polled(s) = self {
      return s.try_write(bytes);
    }
    each!(self, s => s.try_write(bytes))
  }

  /// The writer has nothing left to write: a socket the event loop reads stops being watched.
  pub fn writer_idle(&self) {
    #[cfg(unix)]
    if let Socket::Polled(s) = self {
      s.let_go();
    }
  }

  /// A Unix-domain or TCP socket as one the event loop may read (see `polled`); others as they are.
  #[cfg(unix)]
  pub fn into_polled(self) -> io::Result<Socket> {
    use crate::polled::{Polled, Stream};
    match self {
      Socket::Unix(s) => Ok(Socket::Polled(Polled::new(Stream::Unix(s.into_std()?)))),
      Socket::Tcp(s) => Ok(Socket::Polled(Polled::new(Stream::Tcp(s.into_std()?)))),
      other => Ok(other),
    }
  }

  #[cfg(unix)]
  pub fn as_polled(&self) -> Option<&crate::polled::Polled> {
    match self {
      Socket::Polled(s) => Some(s),
      _ => None,
    }
  }

  /// Half-close: the peer reads EOF after what was written. A named pipe has no half-close:
  /// the peer reads EOF when our end closes, which follows as soon as the connection ends.
  pub fn shutdown_write(&self) -> io::Result<()> {
    match self {
      #[cfg(unix)]
      Socket::Unix(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
      #[cfg(windows)]
      Socket::PipeServer(_) | Socket::PipeClient(_) => Ok(()),
      Socket::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
      #[cfg(unix)]
      Socket::Polled(s) => s.shutdown(std::net::Shutdown::Write),
    }
  }

  /// Bytes (or an EOF) wait in the receive buffer: the peer was heard, even if we have not read
  /// it yet (our own process was paused, say). Never blocks: the socket is non-blocking.
  pub fn has_input(&self) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    match self {
      #[cfg(unix)]
      Socket::Unix(s) => socket2::SockRef::from(s).peek(&mut byte).is_ok(),
      #[cfg(windows)]
      Socket::PipeServer(s) => named_pipe::has_input(s),
      #[cfg(windows)]
      Socket::PipeClient(s) => named_pipe::has_input(s),
      Socket::Tcp(s) => socket2::SockRef::from(s).peek(&mut byte).is_ok(),
      #[cfg(unix)]
      Socket::Polled(s) => s.has_input(),
    }
  }

  /// Ends both directions: our own reader sees EOF (or an error), as if the peer had gone.
  /// A pipe client cannot do this without closing its handle; only servers sever connections.
  pub fn shutdown_both(&self) -> io::Result<()> {
    match self {
      #[cfg(unix)]
      Socket::Unix(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
      #[cfg(windows)]
      Socket::PipeServer(s) => s.disconnect(),
      #[cfg(windows)]
      Socket::PipeClient(_) => Ok(()),
      Socket::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both),
      #[cfg(unix)]
      Socket::Polled(s) => s.shutdown(std::net::Shutdown::Both),
    }
  }

  pub fn peer_info(&self) -> PeerInfo {
    match self {
      #[cfg(unix)]
      Socket::Unix(s) => PeerInfo::of_unix(s),
      #[cfg(windows)]
      Socket::PipeServer(s) => named_pipe::client_pid(s).map_or(PeerInfo::Unknown, |pid| PeerInfo::PipeProcess { pid }),
      #[cfg(windows)]
      Socket::PipeClient(s) => named_pipe::server_pid(s).map_or(PeerInfo::Unknown, |pid| PeerInfo::PipeProcess { pid }),
      Socket::Tcp(s) => s.peer_addr().map_or(PeerInfo::Unknown, PeerInfo::Remote),
      // Asked only during the handshake, before a socket becomes polled.
      #[cfg(unix)]
      Socket::Polled(_) => PeerInfo::Unknown,
    }
  }
}

impl AsyncRead for Socket {
  fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
  }
}

impl AsyncWrite for Socket {
  fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
  }

  fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
  }

  fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
  }
}

pub enum Listener {
  #[cfg(unix)]
  Unix(UnixListener),
  #[cfg(windows)]
  Pipe(named_pipe::PipeListener),
  Tcp(TcpListener),
}

impl Listener {
  pub async fn accept(&self) -> io::Result<Socket> {
    match self {
      #[cfg(unix)]
      Listener::Unix(l) => l.accept().await.map(|(s, _)| Socket::Unix(s)),
      #[cfg(windows)]
      Listener::Pipe(l) => l.accept().await.map(Socket::PipeServer),
      Listener::Tcp(l) => {
        let (s, _) = l.accept().await?;
        // We coalesce writes ourselves; Nagle would only add latency to each batch.
        let _ = s.set_nodelay(true);
        Ok(Socket::Tcp(s))
      }
    }
  }

  /// Stops listening, and returns once the address is free for someone else: a pipe's waiting
  /// instances are closed by their own tasks, which this waits for.
  pub async fn close(self) {
    match self {
      #[cfg(windows)]
      Listener::Pipe(l) => l.close().await,
      _ => {}
    }
  }

  /// Returns once the endpoint is free for a successor, after this listener and every
  /// connection it accepted are gone: at once, but for a pipe (see `named_pipe::released`).
  pub async fn released(endpoint: &Endpoint) {
    #[cfg(windows)]
    if let Endpoint::Pipe(name) = endpoint {
      named_pipe::released(name).await;
    }
    #[cfg(not(windows))]
    let _ = endpoint;
  }

  /// What is bound, as `server.address()` returns it: the path (or `unix:@name`, or the pipe
  /// name) as a JSON string, or `{ address, family, port }` for TCP, with the port the kernel
  /// picked for 0.
  pub fn address_json(&self, endpoint: &Endpoint) -> Vec<u8> {
    let mut out = Vec::new();
    match (self, endpoint) {
      (Listener::Tcp(l), _) => match l.local_addr() {
        Ok(addr) => PeerInfo::Remote(addr).write_json(&mut out),
        Err(_) => out.extend_from_slice(b"null"),
      },
      #[cfg(windows)]
      (Listener::Pipe(l), _) => crate::error::write_json_string(&mut out, l.name()),
      #[cfg(unix)]
      (Listener::Unix(_), Endpoint::Abstract(name)) => crate::error::write_json_string(&mut out, &format!("unix:@{name}")),
      #[cfg(unix)]
      (Listener::Unix(_), other) => crate::error::write_json_string(&mut out, &other.to_string()),
    }
    out
  }
}

/// Binds and listens. A socket file left by a dead server is reclaimed (see `socket_file`), and
/// gets `mode` before anyone can connect. A live pipe name is never taken (see `named_pipe`).
pub async fn bind(endpoint: &Endpoint, mode: Option<u32>) -> Result<Listener, IpcError> {
  endpoint.check_supported()?;
  // Only a socket file has permission bits (the JS side refuses `mode` elsewhere).
  #[cfg(not(unix))]
  let _ = mode;
  match endpoint {
    #[cfg(unix)]
    Endpoint::Unix(path) => socket_file::bind_reclaiming(path, mode).await.map(Listener::Unix),
    #[cfg(unix)]
    Endpoint::Abstract(name) => {
      let listen = || -> io::Result<UnixListener> {
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
        socket.bind(&socket2::SockAddr::unix(abstract_path(name))?)?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        UnixListener::from_std(std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(socket)))
      };
      listen().map(Listener::Unix).map_err(|e| IpcError::io(e, "listen", &endpoint.to_string()))
    }
    #[cfg(windows)]
    Endpoint::Pipe(name) => named_pipe::bind(name).map(Listener::Pipe).map_err(|e| {
      let in_use = e.kind() == io::ErrorKind::AddrInUse;
      let e = IpcError::io(e, "listen", name);
      if in_use {
        e.with_detail("another server is listening on this pipe; it was left undisturbed")
      } else {
        e
      }
    }),
    Endpoint::Tcp { host, port, family } => {
      let mut last = None;
      for addr in endpoint.resolve(host, *port, *family, "listen").await? {
        match TcpListener::bind(addr).await {
          Ok(l) => return Ok(Listener::Tcp(l)),
          Err(e) => last = Some(e),
        }
      }
      Err(IpcError::io(last.expect("resolve returns at least one address"), "listen", &endpoint.to_string()))
    }
    // Refused by check_supported above.
    #[allow(unreachable_patterns)]
    _ => unreachable!("{endpoint} is not supported here"),
  }
}

/// Connects (no hello yet).
pub async fn connect(endpoint: &Endpoint) -> Result<Socket, IpcError> {
  endpoint.check_supported()?;
  let failed = |e| IpcError::io(e, "connect", &endpoint.to_string());
  match endpoint {
    #[cfg(unix)]
    Endpoint::Unix(path) => UnixStream::connect(path).await.map(Socket::Unix).map_err(failed),
    #[cfg(unix)]
    Endpoint::Abstract(name) => {
      let socket = (|| -> io::Result<socket2::Socket> {
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        // Unix connects complete at once or fail (EAGAIN: the listener's backlog is full).
        socket.connect(&socket2::SockAddr::unix(abstract_path(name))?)?;
        Ok(socket)
      })()
      .map_err(failed)?;
      let std = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(socket));
      UnixStream::from_std(std).map(Socket::Unix).map_err(failed)
    }
    #[cfg(windows)]
    Endpoint::Pipe(name) => named_pipe::connect(name).await.map(Socket::PipeClient).map_err(failed),
    Endpoint::Tcp { host, port, family } => {
      let mut last = None;
      for addr in endpoint.resolve(host, *port, *family, "connect").await? {
        match TcpStream::connect(addr).await {
          Ok(s) => {
            let _ = s.set_nodelay(true);
            return Ok(Socket::Tcp(s));
          }
          Err(e) => last = Some(e),
        }
      }
      Err(failed(last.expect("resolve returns at least one address")))
    }
    #[allow(unreachable_patterns)]
    _ => unreachable!("{endpoint} is not supported here"),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn endpoints_name_themselves_as_users_wrote_them() {
    assert_eq!(Endpoint::Unix("/tmp/a.sock".into()).to_string(), "/tmp/a.sock");
    assert_eq!(Endpoint::Abstract("app".into()).to_string(), "@app");
    let v6 = Endpoint::Tcp { host: "::1".into(), port: 80, family: Family::Any };
    assert_eq!(v6.to_string(), "[::1]:80");
    assert_eq!(Endpoint::Pipe(r"\\.\pipe\app".into()).to_string(), r"\\.\pipe\app");
  }

  /// The core refuses what the platform lacks even when the JS checks are bypassed.
  #[tokio::test]
  async fn an_endpoint_the_platform_lacks_fails_with_err_ipc_not_supported() {
    let missing = if cfg!(windows) {
      Endpoint::Unix("/tmp/a.sock".into())
    } else {
      Endpoint::Pipe(r"\\.\pipe\app".into())
    };
    for attempt in [bind(&missing, None).await.err(), connect(&missing).await.err()] {
      let e = attempt.expect("refused");
      assert_eq!(e.code(), Some("ERR_IPC_NOT_SUPPORTED"), "{e}");
      assert!(e.to_string().contains("localEndpoint"), "says what to use instead: {e}");
    }
    if cfg!(not(target_os = "linux")) {
      let e = bind(&Endpoint::Abstract("app".into()), None).await.err().expect("refused");
      assert_eq!(e.code(), Some("ERR_IPC_NOT_SUPPORTED"));
    }
  }

  #[test]
  fn peer_info_is_the_json_client_info_returns() {
    let mut out = Vec::new();
    PeerInfo::Process { pid: 7, uid: 1000, gid: 100 }.write_json(&mut out);
    assert_eq!(out, br#"{"pid":7,"uid":1000,"gid":100}"#);
    out.clear();
    PeerInfo::Remote("[::1]:9".parse().unwrap()).write_json(&mut out);
    assert_eq!(out, br#"{"address":"::1","family":"IPv6","port":9}"#);
    out.clear();
    PeerInfo::PipeProcess { pid: 42 }.write_json(&mut out);
    assert_eq!(out, br#"{"pid":42,"uid":null,"gid":null}"#);
    assert_eq!(PeerInfo::PipeProcess { pid: 42 }.ids(), None, "allow: {{ uids, gids }} never matches a pipe client");
  }
}
