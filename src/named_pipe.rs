//! Windows named pipes (`\\.\pipe\name`), the local transport there, as in `node:net`.
//!
//! A pipe server is a set of instances of one name: each instance takes one client, so the
//! listener keeps a few instances waiting and creates another as soon as a client takes one.
//! Pipes have no file: a name vanishes with the last instance of its server, so nothing is
//! ever stale and there is nothing to remove on close. Remote (SMB) clients are always refused.
//! On other platforms this module is not compiled; `transport` refuses pipe names there.

use std::io;
use std::os::windows::io::AsRawHandle;
use std::time::Duration;
use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_NO_DATA, ERROR_PIPE_BUSY, HANDLE};
use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId, PeekNamedPipe};

/// How long a client keeps trying while every instance of a live server is taken.
const BUSY_WAIT: Duration = Duration::from_secs(2);
const BUSY_POLL: Duration = Duration::from_millis(5);
/// How long `released` waits for the system to drop the name.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// "The name is taken", as an `io::Error` of kind `AddrInUse` that carries an OS code (Winsock's
/// WSAEADDRINUSE), so it reaches JS as Node's `EADDRINUSE`.
fn in_use() -> io::Error {
  io::Error::from_raw_os_error(10048)
}

/// Instances kept waiting for clients, as libuv keeps for `node:net`: while one is being
/// replaced after a client took it, the others still answer, so a burst of clients never finds
/// the name missing (which a client would take for "no server").
const WAITING_INSTANCES: usize = 4;
/// Pause before creating an instance again after the system refused one (out of handles).
const CREATE_RETRY: Duration = Duration::from_millis(100);
/// Connected instances the server has not yet accepted: the listen backlog of Unix sockets.
const BACKLOG: usize = 1024;

pub struct PipeListener {
  name: String,
  connected: tokio::sync::Mutex<mpsc::Receiver<io::Result<NamedPipeServer>>>,
  /// Each waits on one instance; aborting them closes the instances.
  waiters: JoinSet<()>,
}

/// Creates the first instance of `name`. A live server keeps its name: the probe (a client
/// open that is closed at once, before any hello) finds it and we answer `EADDRINUSE`;
/// `first_pipe_instance` closes the race between two servers starting together.
pub fn bind(name: &str) -> io::Result<PipeListener> {
  match ClientOptions::new().open(name) {
    Ok(_probe) => return Err(in_use()),
    Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => return Err(in_use()),
    Err(_) => {}
  }
  let first = create(name, true).map_err(|e| match e.raw_os_error() {
    // What CreateNamedPipe says when another process already owns the name.
    Some(code) if code == ERROR_ACCESS_DENIED as i32 => in_use(),
    _ => e,
  })?;
  let (tx, rx) = mpsc::channel(BACKLOG);
  let mut waiters = JoinSet::new();
  waiters.spawn(wait_for_clients(name.to_owned(), Some(first), tx.clone()));
  for _ in 1..WAITING_INSTANCES {
    waiters.spawn(wait_for_clients(name.to_owned(), None, tx.clone()));
  }
  Ok(PipeListener {
    name: name.to_owned(),
    connected: tokio::sync::Mutex::new(rx),
    waiters,
  })
}

fn create(name: &str, first: bool) -> io::Result<NamedPipeServer> {
  ServerOptions::new()
    .first_pipe_instance(first)
    .reject_remote_clients(true)
    .create(name)
}

/// Keeps one instance waiting: hands each connected instance over and creates the next.
async fn wait_for_clients(
  name: String,
  mut instance: Option<NamedPipeServer>,
  tx: mpsc::Sender<io::Result<NamedPipeServer>>,
) {
  loop {
    let pipe = match instance.take().map_or_else(|| create(&name, false), Ok) {
      Ok(pipe) => pipe,
      Err(e) => {
        if tx.send(Err(e)).await.is_err() {
          return;
        }
        tokio::time::sleep(CREATE_RETRY).await;
        continue;
      }
    };
    let outcome = match pipe.connect().await {
      Ok(()) => Ok(pipe),
      // The client came and went before we saw it (a probe, a port check): not an error.
      Err(e) if e.raw_os_error() == Some(ERROR_NO_DATA as i32) => continue,
      Err(e) => Err(e),
    };
    if tx.send(outcome).await.is_err() {
      return;
    }
  }
}

impl PipeListener {
  /// The next connected instance (cancel-safe: a client is never lost to a dropped call).
  pub async fn accept(&self) -> io::Result<NamedPipeServer> {
    match self.connected.lock().await.recv().await {
      Some(outcome) => outcome,
      None => Err(io::Error::other("the pipe listener stopped")),
    }
  }

  pub fn name(&self) -> &str {
    &self.name
  }

  /// Closes every instance, and returns once they are closed: the name is then free. (Only
  /// dropping the listener would close them later, on the runtime's own time.)
  pub async fn close(mut self) {
    self.waiters.shutdown().await;
    // Connected instances nobody accepted: their clients see the pipe end.
    self.connected.get_mut().close();
  }
}

/// Returns once no instance of `name` is left open (or after a second): call it when every
/// instance a server had, its connections' too, has been dropped. A dropped instance with a
/// wait or a read pending is closed only once the runtime has seen that I/O cancelled, a moment
/// later, and until the last one is closed a successor gets EADDRINUSE (found by the Windows
/// suite under Wine, where a server restarted on its name at once was refused).
pub async fn released(name: &str) {
  let started = tokio::time::Instant::now();
  while started.elapsed() < CLOSE_WAIT {
    match ClientOptions::new().open(name) {
      Err(e) if e.kind() == io::ErrorKind::NotFound => return,
      _ => tokio::time::sleep(BUSY_POLL).await,
    }
  }
}

/// Opens `name`, waiting while every instance of the server is taken (ERROR_PIPE_BUSY).
pub async fn connect(name: &str) -> io::Result<NamedPipeClient> {
  let started = tokio::time::Instant::now();
  loop {
    match ClientOptions::new().open(name) {
      Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) && started.elapsed() < BUSY_WAIT => {
        tokio::time::sleep(BUSY_POLL).await
      }
      other => return other,
    }
  }
}

/// The process id of the client connected to this instance (what `clientInfo()` reports).
pub fn client_pid(pipe: &NamedPipeServer) -> Option<u32> {
  let mut pid = 0u32;
  // SAFETY: the handle is open for as long as `pipe` lives; `pid` is a valid out pointer.
  let ok = unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle() as HANDLE, &mut pid) };
  (ok != 0).then_some(pid)
}

/// The process id of the server a client is connected to.
pub fn server_pid(pipe: &NamedPipeClient) -> Option<u32> {
  let mut pid = 0u32;
  // SAFETY: as in `client_pid`.
  let ok = unsafe { GetNamedPipeServerProcessId(pipe.as_raw_handle() as HANDLE, &mut pid) };
  (ok != 0).then_some(pid)
}

/// Bytes wait to be read, or the other end has gone (which a read would report): either way
/// the peer was heard. Never blocks.
pub fn has_input(pipe: &impl AsRawHandle) -> bool {
  let mut available = 0u32;
  // SAFETY: a zero-length peek with only the count requested; the handle is open.
  let ok = unsafe {
    PeekNamedPipe(
      pipe.as_raw_handle() as HANDLE,
      std::ptr::null_mut(),
      0,
      std::ptr::null_mut(),
      &mut available,
      std::ptr::null_mut(),
    )
  };
  ok == 0 || available > 0
}

#[cfg(test)]
mod tests {
  //! Run on Windows, or under Wine by `npm run test:windows`.
  use super::*;
  use tokio::io::{AsyncReadExt, AsyncWriteExt};

  fn unique(name: &str) -> String {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(r"\\.\pipe\nsipc-unit-{name}-{}-{n}", std::process::id())
  }

  /// Wine implements no FILE_FLAG_FIRST_PIPE_INSTANCE; ntdll exports `wine_get_version` there.
  fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: NUL-terminated names; ntdll is always loaded.
    unsafe {
      GetProcAddress(
        GetModuleHandleA(c"ntdll.dll".as_ptr().cast()),
        c"wine_get_version".as_ptr().cast(),
      )
      .is_some()
    }
  }

  #[tokio::test]
  async fn a_client_and_the_server_exchange_bytes_and_the_server_learns_the_client_pid() {
    let name = unique("echo");
    let listener = bind(&name).unwrap();
    let (accepted, client) = tokio::join!(listener.accept(), connect(&name));
    let (mut server, mut client) = (accepted.unwrap(), client.unwrap());
    assert_eq!(client_pid(&server), Some(std::process::id()));
    assert_eq!(server_pid(&client), Some(std::process::id()));
    client.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");
    assert!(!has_input(&server), "everything sent was read");
    server.write_all(b"pong").await.unwrap();
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"pong");
  }

  #[tokio::test]
  async fn a_burst_of_clients_all_connect_before_the_server_accepts_any() {
    let name = unique("burst");
    let listener = bind(&name).unwrap();
    let mut clients = Vec::new();
    for _ in 0..20 {
      clients.push(connect(&name).await.expect("an instance is waiting (or soon free)"));
    }
    for _ in 0..20 {
      listener.accept().await.unwrap();
    }
  }

  #[tokio::test]
  async fn a_second_server_on_a_live_name_gets_addr_in_use_and_the_first_keeps_serving() {
    let name = unique("taken");
    let listener = bind(&name).unwrap();
    let refused = bind(&name).err().expect("the name is live");
    assert_eq!(refused.kind(), io::ErrorKind::AddrInUse);
    let (accepted, client) = tokio::join!(listener.accept(), connect(&name));
    accepted.unwrap();
    client.unwrap();
  }

  #[test]
  fn two_servers_creating_one_name_at_once_one_is_refused_on_windows_but_not_under_wine() {
    if under_wine() {
      eprintln!("not shown here: Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE");
      return;
    }
    let name = unique("race");
    let _first = create(&name, true).unwrap();
    let second = create(&name, true).expect_err("a second first instance is refused");
    assert_eq!(second.raw_os_error(), Some(ERROR_ACCESS_DENIED as i32));
  }

  #[tokio::test]
  async fn once_released_returns_the_name_is_free_for_a_new_server() {
    let name = unique("reuse");
    for _ in 0..20 {
      let listener = bind(&name).expect("the name is free");
      let (accepted, client) = tokio::join!(listener.accept(), connect(&name));
      let (server_end, client_end) = (accepted.unwrap(), client.unwrap());
      listener.close().await;
      drop((server_end, client_end));
      released(&name).await;
    }
  }

  #[tokio::test]
  async fn connecting_to_a_name_nobody_serves_is_not_found() {
    let err = connect(&unique("nobody")).await.expect_err("nobody serves it");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
  }
}
