//! Where connections go: a Unix socket file, a Linux abstract socket, or TCP. Everything above
//! this module sees one `Socket` and one `Listener` type, so the connection code is the same on
//! every transport (TLS is layered on by `tls.rs`).

use crate::error::IpcError;
use crate::socket_file;
use bytes::BufMut;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

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
  Tcp { host: String, port: u16, family: Family },
}

impl fmt::Display for Endpoint {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Endpoint::Unix(path) => f.write_str(path),
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
fn abstract_path(name: &str) -> String {
  format!("\0{name}")
}

/// Who is on the other end, as the kernel saw them connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerInfo {
  /// `SO_PEERCRED` of a Unix-socket peer; pid 0 when the kernel does not say.
  Process { pid: u32, uid: u32, gid: u32 },
  Remote(SocketAddr),
  Unknown,
}

impl PeerInfo {
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
  Unix(UnixStream),
  Tcp(TcpStream),
}

macro_rules! each {
  ($self:expr, $s:ident => $body:expr) => {
    match $self {
      Socket::Unix($s) => $body,
      Socket::Tcp($s) => $body,
    }
  };
}

impl Socket {
  pub async fn readable(&self) -> io::Result<()> {
    each!(self, s => s.readable().await)
  }

  pub async fn writable(&self) -> io::Result<()> {
    each!(self, s => s.writable().await)
  }

  pub fn try_read_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
    each!(self, s => s.try_read_buf(buf))
  }

  pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
    each!(self, s => s.try_write(bytes))
  }

  /// Half-close: the peer reads EOF after what was written.
  pub fn shutdown_write(&self) -> io::Result<()> {
    each!(self, s => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write))
  }

  /// Bytes (or an EOF) wait in the receive buffer: the peer was heard, even if we have not read
  /// it yet (our own process was paused, say). Never blocks: the socket is non-blocking.
  pub fn has_input(&self) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    each!(self, s => socket2::SockRef::from(s).peek(&mut byte).is_ok())
  }

  /// Ends both directions: our own reader sees EOF, as if the peer had gone.
  pub fn shutdown_both(&self) -> io::Result<()> {
    each!(self, s => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Both))
  }

  pub fn peer_info(&self) -> PeerInfo {
    match self {
      Socket::Unix(s) => PeerInfo::of_unix(s),
      Socket::Tcp(s) => s.peer_addr().map_or(PeerInfo::Unknown, PeerInfo::Remote),
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
  Unix(UnixListener),
  Tcp(TcpListener),
}

impl Listener {
  pub async fn accept(&self) -> io::Result<Socket> {
    match self {
      Listener::Unix(l) => l.accept().await.map(|(s, _)| Socket::Unix(s)),
      Listener::Tcp(l) => {
        let (s, _) = l.accept().await?;
        // We coalesce writes ourselves; Nagle would only add latency to each batch.
        let _ = s.set_nodelay(true);
        Ok(Socket::Tcp(s))
      }
    }
  }

  /// What is bound, as `server.address()` returns it: the path (or `unix:@name`) as a JSON
  /// string, or `{ address, family, port }` for TCP, with the port the kernel picked for 0.
  pub fn address_json(&self, endpoint: &Endpoint) -> Vec<u8> {
    let mut out = Vec::new();
    match (self, endpoint) {
      (Listener::Tcp(l), _) => match l.local_addr() {
        Ok(addr) => PeerInfo::Remote(addr).write_json(&mut out),
        Err(_) => out.extend_from_slice(b"null"),
      },
      (Listener::Unix(_), Endpoint::Abstract(name)) => crate::error::write_json_string(&mut out, &format!("unix:@{name}")),
      (Listener::Unix(_), other) => crate::error::write_json_string(&mut out, &other.to_string()),
    }
    out
  }
}

/// Binds and listens. A socket file left by a dead server is reclaimed (see `socket_file`), and
/// gets `mode` before anyone can connect.
pub async fn bind(endpoint: &Endpoint, mode: Option<u32>) -> Result<Listener, IpcError> {
  match endpoint {
    Endpoint::Unix(path) => socket_file::bind_reclaiming(path, mode).await.map(Listener::Unix),
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
  }
}

/// Connects (no hello yet).
pub async fn connect(endpoint: &Endpoint) -> Result<Socket, IpcError> {
  let failed = |e| IpcError::io(e, "connect", &endpoint.to_string());
  match endpoint {
    Endpoint::Unix(path) => UnixStream::connect(path).await.map(Socket::Unix).map_err(failed),
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
  }

  #[test]
  fn peer_info_is_the_json_client_info_returns() {
    let mut out = Vec::new();
    PeerInfo::Process { pid: 7, uid: 1000, gid: 100 }.write_json(&mut out);
    assert_eq!(out, br#"{"pid":7,"uid":1000,"gid":100}"#);
    out.clear();
    PeerInfo::Remote("[::1]:9".parse().unwrap()).write_json(&mut out);
    assert_eq!(out, br#"{"address":"::1","family":"IPv6","port":9}"#);
  }
}
