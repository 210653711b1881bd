//! Kernel ceiling for the `large` benchmark: how fast 1 MiB chunks move through a Unix stream
//! socket when nothing but `write`/`read` system calls is involved (no framing, no encoding, no
//! JavaScript). Standard library only, so it builds with the crate's existing dependencies.
//!
//! Usage:
//!   kernel_copy [total_mib]                  both ends in two threads of this process
//!   kernel_copy recv <socket> <total_bytes>  receiving end only (prints the JSON result)
//!   kernel_copy send <socket> <total_bytes>  sending end only
//!
//! The bench runs `recv` and `send` as two processes, so `taskset` can place each end on a CPU
//! exactly as it places the JavaScript servers and clients. The receiver prints one JSON line:
//! `{"bytes":…,"seconds":…,"mbps":…}` where MB is 10^6 bytes. Its window runs from the first
//! byte read to the last, and the bytes of that first read are left out, the same as the
//! libraries' window, which opens at the first delivered message.

#[cfg(unix)]
fn main() {
  unix_socket::main()
}

#[cfg(not(unix))]
fn main() {
  eprintln!("kernel_copy measures Unix stream sockets; there are none to measure on this platform");
  std::process::exit(2);
}

#[cfg(unix)]
mod unix_socket {
  use std::env;
  use std::io::{self, Read, Write};
  use std::os::unix::net::{UnixListener, UnixStream};
  use std::path::{Path, PathBuf};
  use std::process;
  use std::thread;
  use std::time::Instant;

  const CHUNK: usize = 1 << 20;

  pub fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
      Some("recv") if args.len() == 3 => parse_total(&args[2]).and_then(|total| {
        let listener = bind(Path::new(&args[1]))?;
        // Tells the bench it may start the sender.
        println!("{{\"ready\":true}}");
        io::stdout().flush()?;
        receive(&listener, total)
      }),
      Some("send") if args.len() == 3 => parse_total(&args[2]).and_then(|total| send(Path::new(&args[1]), total)),
      None => in_threads(1024),
      Some(mib) if args.len() == 1 => match mib.parse::<u64>() {
        Ok(mib) => in_threads(mib),
        Err(_) => usage(),
      },
      _ => usage(),
    };
    if let Err(err) = result {
      eprintln!("kernel_copy: {err}");
      process::exit(1);
    }
  }

  fn usage() -> io::Result<()> {
    eprintln!("usage: kernel_copy [total_mib] | recv <socket> <total_bytes> | send <socket> <total_bytes>");
    process::exit(2);
  }

  fn parse_total(text: &str) -> io::Result<u64> {
    text
      .parse()
      .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("not a byte count: {text}")))
  }

  fn bind(path: &Path) -> io::Result<UnixListener> {
    // A leftover file from an earlier, killed run would make bind fail with EADDRINUSE.
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
  }

  /// Accepts one connection and reads until `total` bytes have arrived; prints the JSON result.
  fn receive(listener: &UnixListener, total: u64) -> io::Result<()> {
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; CHUNK];
    let mut received: u64 = 0;
    let mut first: Option<(Instant, u64)> = None;
    let mut last = Instant::now();
    while received < total {
      let n = stream.read(&mut buf)?;
      if n == 0 {
        break;
      }
      last = Instant::now();
      if first.is_none() {
        first = Some((last, n as u64));
      }
      received += n as u64;
    }
    if received < total {
      return Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the sender stopped after {received} of {total} bytes"),
      ));
    }
    let (start, first_read) = first.expect("at least one read when total > 0");
    let seconds = last.duration_since(start).as_secs_f64();
    let counted = (received - first_read) as f64;
    let mbps = if seconds > 0.0 { counted / seconds / 1e6 } else { 0.0 };
    println!("{{\"bytes\":{received},\"seconds\":{seconds:.6},\"mbps\":{mbps:.1}}}");
    Ok(())
  }

  /// Connects and writes `total` bytes in 1 MiB chunks.
  fn send(path: &Path, total: u64) -> io::Result<()> {
    let mut stream = UnixStream::connect(path)?;
    // Not all zeros, in case some layer ever special-cases them.
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let mut left = total;
    while left > 0 {
      let n = left.min(CHUNK as u64) as usize;
      stream.write_all(&chunk[..n])?;
      left -= n as u64;
    }
    Ok(())
  }

  /// Both ends in one process, for running by hand: `cargo run --release --example kernel_copy`.
  fn in_threads(mib: u64) -> io::Result<()> {
    let path: PathBuf = env::temp_dir().join(format!("kernel_copy-{}.sock", process::id()));
    let listener = bind(&path)?;
    let total = mib * CHUNK as u64;
    let sender_path = path.clone();
    let sender = thread::spawn(move || send(&sender_path, total));
    let received = receive(&listener, total);
    let sent = sender.join().expect("the sender thread panicked");
    let _ = std::fs::remove_file(&path);
    received.and(sent)
  }
}
