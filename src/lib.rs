//! native-socket-ipc: the Rust core of a socket IPC library for Node.js.
//!
//! The core knows nothing of N-API: `codec` frames bytes, `transport` opens Unix, abstract and
//! TCP sockets and Windows named pipes, `tls` layers rustls on any of them, `auth` proves a shared secret, `connection`
//! runs one socket, `server` and `client` manage many or one, `session` keeps at-least-once delivery across
//! reconnects, `reconnect` decides when to try again, and `events`
//! batches everything bound for JavaScript. `binding` (feature `napi`, on by default) is the one
//! module that talks to Node. See PROTOCOL.md for the wire format.
#![deny(clippy::all)]

pub mod auth;
pub mod client;
pub mod codec;
pub mod connection;
pub mod ended;
pub mod error;
pub mod events;
pub mod handshake;
pub mod heartbeat;
pub mod inbound;
pub mod json_batch;
#[cfg(all(target_os = "linux", target_env = "gnu", not(fuzzing)))]
pub mod large_alloc;
pub mod link;
pub mod loop_reads;
#[cfg(windows)]
pub mod named_pipe;
pub mod outbox;
pub mod peer;
#[cfg(unix)]
pub mod polled;
pub mod reader;
pub mod reconnect;
pub mod scan;
pub mod server;
pub mod session;
pub mod socket_file;
pub mod socket_ipc;
pub mod tls;
pub mod transport;
pub mod trim;
pub mod wire;
#[cfg(unix)]
pub mod uv;
pub mod writer;

#[cfg(feature = "napi")]
mod binding;
#[cfg(all(feature = "napi", unix))]
mod loop_owner;

// Large blocks as mappings of their own, so a flood's memory goes back (see `large_alloc`).
#[cfg(all(target_os = "linux", target_env = "gnu", not(fuzzing)))]
#[global_allocator]
static CORE_ALLOCATOR: large_alloc::CoreAllocator = large_alloc::CoreAllocator;
