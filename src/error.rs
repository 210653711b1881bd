//! Errors the core reports to JavaScript. Each carries a stable code; OS errors carry the
//! errno, from which the JS side derives Node's own code (`ENOENT`, `EADDRINUSE`, …).

use crate::codec::FrameError;
use std::{fmt, io};

#[derive(Debug)]
pub enum IpcError {
  /// A system call failed; `path` is the socket path it was about, `detail` what we found there.
  Io {
    error: io::Error,
    syscall: &'static str,
    path: String,
    detail: Option<&'static str>,
  },
  /// The peer's bytes are not protocol v1 (`ERR_IPC_PROTOCOL`).
  Protocol(String),
  /// A frame longer than `maxMessageSize` was announced (`ERR_IPC_MESSAGE_TOO_LARGE`).
  MessageTooLarge(String),
  /// The peer did not complete the hello in time (`ERR_IPC_HANDSHAKE_TIMEOUT`).
  HandshakeTimeout(String),
  /// The client gave up reconnecting (`ERR_IPC_RETRIES_EXHAUSTED`).
  RetriesExhausted(String),
  /// A message was addressed to a client that is not connected (`ERR_IPC_UNKNOWN_CLIENT`).
  UnknownClient(u32),
  /// The client stopped (`close()` or `maxRetries`) with messages still queued (`ERR_IPC_CLOSED`).
  ClosedWithQueued(usize),
  /// Nothing arrived for `heartbeatTimeout` (`ERR_IPC_HEARTBEAT_TIMEOUT`); the value is in ms.
  HeartbeatTimeout(u128),
  /// A Peer that already has a partner refused us (`ERR_IPC_PEER_BUSY`).
  PeerBusy,
  /// The server is at its `maxConnections` (`ERR_IPC_SERVER_FULL`); the value is its reason.
  ServerFull(String),
  /// A host name did not resolve (Node's `ENOTFOUND`).
  Resolve(String),
  /// A wrong or missing secret, on either side (`ERR_IPC_AUTH_FAILED`).
  AuthFailed(String),
  /// The server's `allow` option refused the client (`ERR_IPC_NOT_ALLOWED`).
  NotAllowed(String),
  /// The TLS handshake failed (`ERR_IPC_TLS`); `refused` when a certificate was not accepted.
  Tls { message: String, refused: bool },
  /// The `tls` options cannot be used (`ERR_IPC_TLS_CONFIG`).
  TlsConfig(String),
  /// A frame began and did not finish within `frameTimeout` (`ERR_IPC_FRAME_TIMEOUT`).
  FrameTimeout(u128),
  /// The two ends use different `delivery` modes (`ERR_IPC_DELIVERY_MISMATCH`; final).
  DeliveryMismatch(String),
  /// A client passed the server's `maxBufferedBytes` (the value) and was dropped
  /// (`ERR_IPC_SLOW_CLIENT`).
  SlowClient(usize),
  /// An at-least-once client did not come back within `sessionTimeout` (ms);
  /// `ERR_IPC_SESSION_EXPIRED`, with the messages that were never acknowledged.
  SessionExpired { timeout_ms: u128, undelivered: usize },
  /// The endpoint does not exist on this platform (`ERR_IPC_NOT_SUPPORTED`); says what to use.
  NotSupported(String),
  /// The other side dropped the connection and said why (a `CLOSE_REASON` frame): its code,
  /// when it is one of ours, and its message.
  DroppedByPeer { code: &'static str, message: String },
}

impl IpcError {
  pub fn io(error: io::Error, syscall: &'static str, path: &str) -> Self {
    IpcError::Io {
      error,
      syscall,
      path: path.to_owned(),
      detail: None,
    }
  }

  /// The same OS error, explained: what the user should know about the path.
  pub fn with_detail(mut self, text: &'static str) -> Self {
    if let IpcError::Io { detail, .. } = &mut self {
      *detail = Some(text);
    }
    self
  }

  /// The stable code, or `None` for OS errors (whose code is Node's errno name).
  pub fn code(&self) -> Option<&'static str> {
    Some(match self {
      // std rejects an over-long path before any system call, so there is no errno to name it.
      IpcError::Io { error, .. } if error.raw_os_error().is_none() => "ERR_IPC_INVALID_PATH",
      IpcError::Io { .. } => return None,
      IpcError::Protocol(_) => "ERR_IPC_PROTOCOL",
      IpcError::MessageTooLarge(_) => "ERR_IPC_MESSAGE_TOO_LARGE",
      IpcError::HandshakeTimeout(_) => "ERR_IPC_HANDSHAKE_TIMEOUT",
      IpcError::RetriesExhausted(_) => "ERR_IPC_RETRIES_EXHAUSTED",
      IpcError::UnknownClient(_) => "ERR_IPC_UNKNOWN_CLIENT",
      IpcError::ClosedWithQueued(_) => "ERR_IPC_CLOSED",
      IpcError::HeartbeatTimeout(_) => "ERR_IPC_HEARTBEAT_TIMEOUT",
      IpcError::PeerBusy => "ERR_IPC_PEER_BUSY",
      IpcError::ServerFull(_) => "ERR_IPC_SERVER_FULL",
      IpcError::Resolve(_) => "ENOTFOUND",
      IpcError::AuthFailed(_) => "ERR_IPC_AUTH_FAILED",
      IpcError::NotAllowed(_) => "ERR_IPC_NOT_ALLOWED",
      IpcError::Tls { .. } => "ERR_IPC_TLS",
      IpcError::TlsConfig(_) => "ERR_IPC_TLS_CONFIG",
      IpcError::FrameTimeout(_) => "ERR_IPC_FRAME_TIMEOUT",
      IpcError::DeliveryMismatch(_) => "ERR_IPC_DELIVERY_MISMATCH",
      IpcError::SlowClient(_) => "ERR_IPC_SLOW_CLIENT",
      IpcError::SessionExpired { .. } => "ERR_IPC_SESSION_EXPIRED",
      IpcError::NotSupported(_) => "ERR_IPC_NOT_SUPPORTED",
      IpcError::DroppedByPeer { code, .. } => code,
    })
  }

  /// A listen error meaning someone already listens there (a live server, a taken port).
  pub fn is_addr_in_use(&self) -> bool {
    matches!(self, IpcError::Io { error, .. } if error.kind() == io::ErrorKind::AddrInUse)
  }

  /// A refusal that retrying cannot change: the client stops instead of hammering the server.
  pub fn is_final(&self) -> bool {
    matches!(
      self,
      IpcError::AuthFailed(_)
        | IpcError::NotAllowed(_)
        | IpcError::TlsConfig(_)
        | IpcError::Tls { refused: true, .. }
        | IpcError::DeliveryMismatch(_)
    )
  }

  /// Serialises the error as the small JSON object the JS side turns into an `Error`.
  pub fn write_json(&self, dst: &mut Vec<u8>) {
    dst.push(b'{');
    write_field(dst, "message", &self.to_string());
    if let Some(code) = self.code() {
      dst.push(b',');
      write_field(dst, "code", code);
    }
    match self {
      IpcError::Io {
        error,
        syscall,
        path,
        detail,
      } => {
        if let Some(text) = detail {
          dst.push(b',');
          write_field(dst, "detail", text);
        }
        write_os_error(dst, error);
        dst.push(b',');
        write_field(dst, "syscall", syscall);
        dst.push(b',');
        write_field(dst, "path", path);
      }
      IpcError::UnknownClient(id) => dst.extend_from_slice(format!(",\"clientId\":{id}").as_bytes()),
      IpcError::ClosedWithQueued(n) | IpcError::SessionExpired { undelivered: n, .. } => {
        dst.extend_from_slice(format!(",\"undelivered\":{n}").as_bytes())
      }
      _ => {}
    }
    dst.push(b'}');
  }
}

impl IpcError {
  /// What a peer's `CLOSE_REASON` says, with its code kept only if it is one a native-socket-ipc
  /// peer sends (anything else is reported as `ERR_IPC_PROTOCOL`, its code quoted).
  pub fn from_close_reason(body: &[u8]) -> IpcError {
    const SENT: [&str; 5] = [
      "ERR_IPC_SLOW_CLIENT",
      "ERR_IPC_PROTOCOL",
      "ERR_IPC_MESSAGE_TOO_LARGE",
      "ERR_IPC_HEARTBEAT_TIMEOUT",
      "ERR_IPC_FRAME_TIMEOUT",
    ];
    match crate::codec::close_reason(body) {
      Some((code, message)) => match SENT.iter().find(|known| **known == code) {
        Some(known) => IpcError::DroppedByPeer { code: known, message },
        None => IpcError::DroppedByPeer {
          code: "ERR_IPC_PROTOCOL",
          message: format!("{message} ({})", code.chars().take(64).collect::<String>()),
        },
      },
      None => IpcError::DroppedByPeer {
        code: "ERR_IPC_PROTOCOL",
        message: "it sent a close reason that is not {\"code\", \"message\"} JSON".into(),
      },
    }
  }
}

impl From<FrameError> for IpcError {
  fn from(e: FrameError) -> Self {
    match e {
      FrameError::TooLarge { .. } => IpcError::MessageTooLarge(e.to_string()),
      _ => IpcError::Protocol(e.to_string()),
    }
  }
}

impl fmt::Display for IpcError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      // Node's own wording is added on the JS side, which knows the errno's description.
      IpcError::Io { error, syscall, path, detail: None } => write!(f, "{syscall} {path}: {error}"),
      IpcError::Io { error, syscall, path, detail: Some(d) } => write!(f, "{syscall} {path}: {error}; {d}"),
      IpcError::Protocol(m)
      | IpcError::MessageTooLarge(m)
      | IpcError::HandshakeTimeout(m)
      | IpcError::RetriesExhausted(m)
      | IpcError::Resolve(m)
      | IpcError::AuthFailed(m)
      | IpcError::NotAllowed(m)
      | IpcError::Tls { message: m, .. }
      | IpcError::TlsConfig(m)
      | IpcError::DeliveryMismatch(m)
      | IpcError::NotSupported(m) => f.write_str(m),
      IpcError::SlowClient(max) => write!(
        f,
        "the client did not read fast enough: its unsent messages would have passed maxBufferedBytes ({max} bytes), so the server dropped it and them"
      ),
      IpcError::SessionExpired { timeout_ms, undelivered } => write!(
        f,
        "the client did not reconnect within {timeout_ms} ms (sessionTimeout), so its session ended; {undelivered} message(s) sent to it were never acknowledged"
      ),
      IpcError::FrameTimeout(ms) => write!(
        f,
        "a frame began arriving and was not complete within {ms} ms (frameTimeout), so the connection was dropped; a peer that trickles bytes holds resources (raise frameTimeout for very large messages on slow links)"
      ),
      IpcError::UnknownClient(id) => write!(
        f,
        "client {id} is not connected; the message was not sent (listen for 'connectionClose' to stop sending to departed clients)"
      ),
      IpcError::ClosedWithQueued(n) => write!(
        f,
        "the client stopped (close() or maxRetries) with {n} message(s) not yet sent; they were not delivered"
      ),
      IpcError::HeartbeatTimeout(ms) => write!(
        f,
        "nothing arrived from the other side for {ms} ms (heartbeatTimeout), so the connection was dropped as dead; the process may be stopped, hung or gone"
      ),
      IpcError::ServerFull(reason) => write!(f, "the server refused the connection: {reason}; retrying"),
      IpcError::DroppedByPeer { message, .. } => write!(f, "the other side dropped the connection, saying: {message}"),
      IpcError::PeerBusy => f.write_str(
        "the peer listening on this socket already has a partner (a Peer connects two processes); retrying until it is free",
      ),
    }
  }
}

impl std::error::Error for IpcError {}

/// The OS error as JS turns it into Node's code: the errno on Unix (Node's errnos are its
/// negation), and on Windows the libuv name (`ENOENT`, …), since Node's errnos there are
/// libuv's own numbers rather than Win32 codes.
#[cfg(unix)]
fn write_os_error(dst: &mut Vec<u8>, error: &io::Error) {
  if let Some(errno) = error.raw_os_error() {
    dst.extend_from_slice(format!(",\"errno\":{errno}").as_bytes());
  }
}

#[cfg(not(unix))]
fn write_os_error(dst: &mut Vec<u8>, error: &io::Error) {
  if error.raw_os_error().is_some() {
    dst.push(b',');
    write_field(dst, "errname", uv_name(error));
  }
}

/// The libuv error name Node would give this Windows error (libuv maps Win32 codes the same way).
#[cfg(not(unix))]
fn uv_name(error: &io::Error) -> &'static str {
  use io::ErrorKind as K;
  // Pipe-specific codes first: ERROR_PIPE_BUSY, ERROR_BROKEN_PIPE, ERROR_NO_DATA,
  // ERROR_PIPE_NOT_CONNECTED, ERROR_INVALID_NAME / ERROR_BAD_PATHNAME.
  match error.raw_os_error() {
    Some(231) => return "EBUSY",
    Some(109) | Some(232) => return "EPIPE",
    Some(233) => return "ENOTCONN",
    Some(123) | Some(161) => return "EINVAL",
    _ => {}
  }
  match error.kind() {
    K::NotFound => "ENOENT",
    K::PermissionDenied => "EACCES",
    K::ConnectionRefused => "ECONNREFUSED",
    K::ConnectionReset => "ECONNRESET",
    K::ConnectionAborted => "ECONNABORTED",
    K::NotConnected => "ENOTCONN",
    K::AddrInUse => "EADDRINUSE",
    K::AddrNotAvailable => "EADDRNOTAVAIL",
    K::BrokenPipe => "EPIPE",
    K::TimedOut => "ETIMEDOUT",
    K::InvalidInput => "EINVAL",
    K::HostUnreachable => "EHOSTUNREACH",
    K::NetworkUnreachable => "ENETUNREACH",
    K::ResourceBusy => "EBUSY",
    K::WouldBlock => "EAGAIN",
    _ => "EIO",
  }
}

fn write_field(dst: &mut Vec<u8>, key: &str, value: &str) {
  write_json_string(dst, key);
  dst.push(b':');
  write_json_string(dst, value);
}

pub(crate) fn write_json_string(dst: &mut Vec<u8>, s: &str) {
  dst.push(b'"');
  for c in s.chars() {
    match c {
      '"' => dst.extend_from_slice(b"\\\""),
      '\\' => dst.extend_from_slice(b"\\\\"),
      c if (c as u32) < 0x20 => dst.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
      c => {
        let mut tmp = [0u8; 4];
        dst.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
      }
    }
  }
  dst.push(b'"');
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn io_errors_carry_errno_syscall_and_path() {
    let e = IpcError::io(io::Error::from_raw_os_error(2), "connect", "/tmp/a \"b\".sock");
    let mut out = Vec::new();
    e.write_json(&mut out);
    let s = String::from_utf8(out).unwrap();
    // Unix: the errno itself. Windows: 2 is ERROR_FILE_NOT_FOUND, named as libuv names it.
    #[cfg(unix)]
    assert!(s.contains("\"errno\":2"), "{s}");
    #[cfg(not(unix))]
    assert!(s.contains("\"errname\":\"ENOENT\""), "{s}");
    assert!(s.contains("\"syscall\":\"connect\""), "{s}");
    assert!(s.contains("\"path\":\"/tmp/a \\\"b\\\".sock\""), "{s}");
    assert!(!s.contains("\"code\""), "{s}");
  }

  #[cfg(not(unix))]
  #[test]
  fn windows_errors_get_the_names_node_gives_them() {
    let name = |code| uv_name(&io::Error::from_raw_os_error(code));
    assert_eq!(name(2), "ENOENT"); // ERROR_FILE_NOT_FOUND: a pipe nobody serves
    assert_eq!(name(231), "EBUSY"); // ERROR_PIPE_BUSY
    assert_eq!(name(232), "EPIPE"); // ERROR_NO_DATA
    assert_eq!(name(5), "EACCES"); // ERROR_ACCESS_DENIED
    assert_eq!(name(10048), "EADDRINUSE"); // WSAEADDRINUSE
    assert_eq!(name(10061), "ECONNREFUSED"); // WSAECONNREFUSED
  }

  #[test]
  fn a_path_error_without_errno_has_its_own_code() {
    let e = IpcError::io(
      io::Error::new(io::ErrorKind::InvalidInput, "path too long"),
      "listen",
      "/x",
    );
    assert_eq!(e.code(), Some("ERR_IPC_INVALID_PATH"));
    let mut out = Vec::new();
    e.write_json(&mut out);
    assert!(String::from_utf8(out)
      .unwrap()
      .contains("\"code\":\"ERR_IPC_INVALID_PATH\""));
  }

  #[test]
  fn coded_errors_escape_control_characters() {
    let e = IpcError::Protocol("bad\nline".into());
    let mut out = Vec::new();
    e.write_json(&mut out);
    assert_eq!(
      String::from_utf8(out).unwrap(),
      "{\"message\":\"bad\\u000aline\",\"code\":\"ERR_IPC_PROTOCOL\"}"
    );
  }
}
