//! The N-API surface, and the only module that knows about Node. `index.js` wraps these classes
//! in EventEmitters; they are not part of the documented API.
//!
//! A native object exists only while its server listens or its client runs: the constructor
//! starts it. Each owns one threadsafe function, held only by its event queue, so a running
//! object keeps Node alive and a finished one (its queue finished) lets Node exit.
//!
//! About 800 lines: every `#[napi]` item lives here, by design (one module is the whole N-API
//! surface), and their option structs with them. The loop's reader, also Node-facing, is
//! `loop_owner`.

use crate::auth::Secret;
use crate::client::{Client, ClientOptions};
use crate::connection::{Appended, Heartbeat, Limits};
use crate::error::IpcError;
use crate::events::{EventQueue, Taken, Wake};
use crate::loop_reads::LoopHost;
#[cfg(unix)]
use crate::loop_owner::LoopOwner;

/// The owner as the core sees it.
#[cfg(unix)]
fn loop_host(owner: &Option<Arc<LoopOwner>>) -> Option<Arc<dyn LoopHost>> {
  owner.clone().map(|owner| owner as Arc<dyn LoopHost>)
}

#[cfg(not(unix))]
fn loop_host(_: &Option<Arc<LoopOwner>>) -> Option<Arc<dyn LoopHost>> {
  None
}

/// Elsewhere the core reads every connection (see `loop_reads`).
#[cfg(not(unix))]
struct LoopOwner;

#[cfg(not(unix))]
impl LoopOwner {
  fn service(self: &Arc<Self>) -> bool {
    false
  }
  fn close(&self) {}
}
use crate::handshake::{ClientSecurity, ServerSecurity};
use crate::peer::{Peer, PeerOptions, PeerSecurity};
use crate::reconnect::{Delay, RetryPolicy};
use crate::server::{Allow, Server, ServerOptions};
use crate::wire::Wire;
use crate::tls::{TlsClient, TlsOptions, TlsServer};
use crate::transport::{Endpoint, Family};
use napi::bindgen_prelude::*;
use napi::{JsString, JsValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

type WakeFn = ThreadsafeFunction<u32, (), u32, Status, false>;

/// Wakes the JS thread; the callback then calls `takeEvents()` for the whole batch.
struct TsfnWake(Arc<WakeFn>);

impl Wake for TsfnWake {
  fn wake(&self) {
    // `Closing` means the environment is gone; the teardown hook stops the producers.
    let _ = self.0.call(0, ThreadsafeFunctionCallMode::NonBlocking);
  }
}

/// What `event_queue` makes: the queue, its waker, and the loop's reader when there is one.
type Queue = (Arc<EventQueue>, Weak<WakeFn>, Option<Arc<LoopOwner>>);

fn event_queue(env: &Env, on_events: Function<u32, ()>) -> Result<Queue> {
  let on_events_value = on_events.raw();
  let tsfn = Arc::new(
    on_events
      .build_threadsafe_function::<u32>()
      .callee_handled::<false>()
      .build()?,
  );
  let weak = Arc::downgrade(&tsfn);
  let events = EventQueue::new(Box::new(TsfnWake(tsfn)));
  #[cfg(unix)]
  let owner = LoopOwner::new(env.raw(), on_events_value, &events);
  #[cfg(not(unix))]
  let owner = {
    let _ = (env, on_events_value);
    None
  };
  Ok((events, weak, owner))
}

/// Like `net.Server#ref/unref`: whether the running object keeps the event loop alive.
fn set_referenced(env: &Env, wake: &Weak<WakeFn>, referenced: bool) -> Result<()> {
  let Some(tsfn) = wake.upgrade() else { return Ok(()) };
  let status = unsafe {
    if referenced {
      napi::sys::napi_ref_threadsafe_function(env.raw(), tsfn.raw())
    } else {
      napi::sys::napi_unref_threadsafe_function(env.raw(), tsfn.raw())
    }
  };
  match status {
    napi::sys::Status::napi_ok => Ok(()),
    other => Err(Error::new(
      Status::from(other),
      "could not change the threadsafe function's ref",
    )),
  }
}

fn millis(ms: f64) -> Duration {
  Duration::from_millis(if ms.is_finite() && ms > 0.0 { ms as u64 } else { 0 })
}

fn wire(socket_ipc: bool) -> Wire {
  if socket_ipc {
    Wire::SocketIpc
  } else {
    Wire::Native
  }
}

/// Interval 0 turns heartbeats off (the timeout is then unused).
fn heartbeat(interval: f64, timeout: f64) -> Option<Heartbeat> {
  (interval > 0.0).then(|| Heartbeat {
    interval: millis(interval),
    timeout: millis(timeout),
  })
}

/// A factor (JS checked it is finite and over 1) makes it exponential backoff, even with
/// `min == max`: it still means failed attempts after a drop follow `reconnectDelay`.
fn delay(min: f64, max: f64, factor: Option<f64>) -> Delay {
  match factor {
    Some(factor) => Delay::Exponential {
      min: millis(min),
      max: millis(max),
      factor,
    },
    None if min == max => Delay::Fixed(millis(min)),
    None => Delay::Uniform {
      min: millis(min),
      max: millis(max),
    },
  }
}

/// Frames a text batch of `chars` UTF-16 units, using buffers reused batch after batch, and
/// hands the frames to `send`. The text is converted to UTF-8 in one pass, into room for the
/// worst case (3 bytes a unit), instead of a pass to measure it and another to copy it.
fn with_framed_texts<R>(env: &Env, texts: JsString, chars: u32, runs: &[u32], targeted: bool, send: impl FnOnce(&[u8]) -> R) -> Result<R> {
  thread_local! {
    static TEXT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static FRAMES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
  }
  TEXT.with(|text| {
    FRAMES.with(|frames| {
      let (mut text, mut frames) = (text.borrow_mut(), frames.borrow_mut());
      let room = chars as usize * 3 + 1;
      text.clear();
      text.reserve(room);
      let mut written = 0usize;
      let status = unsafe {
        napi::sys::napi_get_value_string_utf8(env.raw(), texts.raw(), text.as_mut_ptr().cast(), room, &mut written)
      };
      if status != napi::sys::Status::napi_ok {
        return Err(Error::new(Status::from(status), "the text batch is not a string"));
      }
      // SAFETY: N-API wrote `written` bytes (and a NUL after them) into the reserved room.
      unsafe { text.set_len(written) };
      frames.clear();
      crate::json_batch::frame_texts(&text, runs, targeted, &mut frames)
        .map_err(|why| Error::new(Status::InvalidArg, format!("malformed text batch: {why}")))?;
      let result = send(&frames);
      // Buffers that grew for one huge batch are not kept.
      for buf in [&mut *text, &mut *frames] {
        if buf.capacity() > 4 * 1024 * 1024 {
          *buf = Vec::new();
        }
      }
      Ok(result)
    })
  })
}

// ===== Teardown hook =====

/// Runs `abandon` if the JS environment is torn down first (a terminated worker), so no task,
/// fd or socket file outlives it. Unregistered on close, freeing its slot.
struct TeardownHook {
  env: napi::sys::napi_env,
  slot: *const HookSlot,
}

struct HookSlot(Mutex<Option<Box<dyn FnOnce() + Send>>>);

unsafe extern "C" fn run_teardown(arg: *mut c_void) {
  // The hook owns one strong count of the slot; the object owns the other.
  let slot = unsafe { Arc::from_raw(arg as *const HookSlot) };
  let abandon = slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
  if let Some(abandon) = abandon {
    abandon();
  }
}

impl TeardownHook {
  fn register(env: &Env, abandon: Box<dyn FnOnce() + Send>) -> Result<Self> {
    let slot = Arc::new(HookSlot(Mutex::new(Some(abandon))));
    let for_hook = Arc::into_raw(slot.clone());
    let status =
      unsafe { napi::sys::napi_add_env_cleanup_hook(env.raw(), Some(run_teardown), for_hook as *mut c_void) };
    if status != napi::sys::Status::napi_ok {
      drop(unsafe { Arc::from_raw(for_hook) });
      return Err(Error::new(Status::from(status), "could not register the teardown hook"));
    }
    Ok(TeardownHook {
      env: env.raw(),
      slot: Arc::into_raw(slot),
    })
  }

  /// Called on the JS thread when the object closes normally.
  fn unregister(self) {
    let slot = unsafe { Arc::from_raw(self.slot) };
    let still_armed = slot.0.lock().unwrap_or_else(|p| p.into_inner()).take().is_some();
    if still_armed {
      // The hook has not run, so it still holds its count: remove it and drop that count too.
      unsafe {
        napi::sys::napi_remove_env_cleanup_hook(self.env, Some(run_teardown), self.slot as *mut c_void);
        Arc::decrement_strong_count(self.slot);
      }
    }
  }
}

/// The hook for a terminated environment: stop the core, and release the threadsafe function
/// here, on the JS thread while the environment still exists. Left to the background tasks, the
/// last release could run while Node frees the environment (a use-after-free, seen as SIGABRT
/// when workers were terminated in a loop).
fn teardown_hook(
  env: &Env,
  events: Arc<EventQueue>,
  owner: Option<Arc<LoopOwner>>,
  abandon: impl FnOnce() + Send + 'static,
) -> Result<TeardownHook> {
  TeardownHook::register(
    env,
    Box::new(move || {
      abandon();
      events.finish();
      if let Some(owner) = owner {
        owner.close();
      }
    }),
  )
}

// ===== What both classes hold =====

/// Added to `takeEvents`' result when records are still waiting after the slice (2^32: above
/// any slice length, and exact in a JS number).
const MORE: i64 = 1 << 32;

/// The parts of a running native object that are the same for server and client.
struct Running {
  events: Arc<EventQueue>,
  wake: Weak<WakeFn>,
  teardown: Option<TeardownHook>,
  /// Reads connections on this thread's event loop, where it can (see `loop_reads`).
  loop_owner: Option<Arc<LoopOwner>>,
}

impl Running {
  /// Copies the next slice of records into `slice` (see `EventQueue::take_into`). Returns the
  /// bytes written, plus `MORE` when records are still waiting; or, when the next record alone
  /// does not fit, minus the size it needs.
  fn take_events(&self, slice: &mut [u8]) -> i64 {
    if let Some(owner) = &self.loop_owner {
      owner.service();
    }
    let mut taken = self.events.take_into(slice);
    // A connection the core handed over while this took found a wake-up pending (this one) and
    // sent none: without a second look it would wait, unread, for the next event. What that
    // queues goes after what was taken, or to the next call.
    if let (Some(owner), Taken::Records { len, more: false }) = (&self.loop_owner, taken) {
      if owner.service() {
        taken = match self.events.take_more_into(&mut slice[len..]) {
          Taken::Records { len: added, more } => Taken::Records { len: len + added, more },
          Taken::NeedRoom(_) if len > 0 => Taken::Records { len, more: true },
          need => need,
        };
      }
    }
    match taken {
      Taken::Records { len, more } => len as i64 + if more { MORE } else { 0 },
      Taken::NeedRoom(size) => -(size as i64),
    }
  }

  fn take_attached(&self) -> Vec<Buffer> {
    self.events.take_attached().into_iter().map(Buffer::from).collect()
  }

  /// Closed normally: the teardown hook is no longer needed.
  fn closed(&mut self) {
    if let Some(hook) = self.teardown.take() {
      hook.unregister();
    }
    if let Some(owner) = &self.loop_owner {
      owner.close();
    }
  }
}

// ===== Transport and security options (shared) =====

/// Where to listen or connect, as `lib/address.js` parsed it.
#[napi(object)]
pub struct NativeAddress {
  /// "unix", "abstract", "pipe" or "tcp".
  pub transport: String,
  /// The socket path, the abstract name, or the pipe name.
  pub path: Option<String>,
  pub host: Option<String>,
  pub port: Option<u32>,
  /// 4, 6, or 0 for either.
  pub family: Option<u32>,
}

impl NativeAddress {
  fn endpoint(&self) -> Endpoint {
    match self.transport.as_str() {
      "tcp" => Endpoint::Tcp {
        host: self.host.clone().unwrap_or_default(),
        port: self.port.unwrap_or(0) as u16,
        family: match self.family {
          Some(4) => Family::V4,
          Some(6) => Family::V6,
          _ => Family::Any,
        },
      },
      "abstract" => Endpoint::Abstract(self.path.clone().unwrap_or_default()),
      "pipe" => Endpoint::Pipe(self.path.clone().unwrap_or_default()),
      _ => Endpoint::Unix(self.path.clone().unwrap_or_default()),
    }
  }
}

/// `options.tls`, PEM as Buffers.
#[napi(object)]
pub struct NativeTls {
  pub cert: Option<Buffer>,
  pub key: Option<Buffer>,
  pub ca: Option<Buffer>,
  pub request_cert: bool,
  pub reject_unauthorized: bool,
  pub servername: Option<String>,
}

impl NativeTls {
  fn options(&self) -> TlsOptions {
    TlsOptions {
      cert: self.cert.as_ref().map(|b| b.to_vec()),
      key: self.key.as_ref().map(|b| b.to_vec()),
      ca: self.ca.as_ref().map(|b| b.to_vec()),
      request_cert: self.request_cert,
      reject_unauthorized: self.reject_unauthorized,
      servername: self.servername.clone(),
    }
  }
}

/// A configuration error as the JSON `fromNative` reads (lib/endpoint.js rethrows it coded).
fn config_error(e: IpcError) -> Error {
  let mut json = Vec::new();
  e.write_json(&mut json);
  Error::new(Status::InvalidArg, String::from_utf8_lossy(&json).into_owned())
}

fn server_security(tls: &Option<NativeTls>, secret: &Option<Buffer>) -> Result<ServerSecurity> {
  Ok(ServerSecurity {
    tls: match tls {
      Some(t) => Some(TlsServer::new(&t.options()).map_err(config_error)?),
      None => None,
    },
    secret: secret.as_ref().map(|s| Secret::new(s)),
  })
}

fn client_security(tls: &Option<NativeTls>, secret: &Option<Buffer>, endpoint: &Endpoint) -> Result<ClientSecurity> {
  Ok(ClientSecurity {
    tls: match tls {
      Some(t) => Some(TlsClient::new(&t.options(), endpoint.default_server_name()).map_err(config_error)?),
      None => None,
    },
    secret: secret.as_ref().map(|s| Secret::new(s)),
  })
}

/// Builds the TLS configuration without starting anything, so a bad certificate or key throws
/// from the constructor rather than surfacing later.
// (A unit-test build registers no #[napi] exports, so nothing calls it there.)
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn check_tls(tls: NativeTls, server: bool, servername: String) -> Result<()> {
  let options = tls.options();
  if server {
    TlsServer::new(&options).map_err(config_error)?;
  } else {
    TlsClient::new(&options, &servername).map_err(config_error)?;
  }
  Ok(())
}

/// 0 (or less) turns a timeout off.
fn optional_millis(ms: f64) -> Option<Duration> {
  (ms > 0.0).then(|| millis(ms))
}

/// `highWaterMark`, `maxBufferedBytes` and `maxInboundBytes`.
fn limits(high_water_mark: f64, max_buffered_bytes: f64, max_inbound_bytes: f64) -> Limits {
  let bytes = |n: f64| if n.is_finite() { n.max(0.0) as usize } else { usize::MAX };
  Limits {
    high_water_mark: bytes(high_water_mark),
    max_buffered: bytes(max_buffered_bytes),
    evict: false,
    max_inbound: bytes(max_inbound_bytes),
  }
}

/// What became of a client's or peer's send (see `connection::Appended`).
#[napi(object)]
pub struct NativeSendOutcome {
  /// Messages refused because the client or peer has finished.
  pub refused: u32,
  /// Messages refused because they would pass `maxBufferedBytes`.
  pub full: u32,
  /// Non-zero: the buffer reached `highWaterMark`; the `DRAIN` event with this number ends it.
  pub over: u32,
}

impl From<Appended> for NativeSendOutcome {
  fn from(a: Appended) -> Self {
    NativeSendOutcome {
      refused: a.refused as u32,
      full: a.full as u32,
      over: a.over.unwrap_or(0),
    }
  }
}

/// `[client, spell, client, spell, …]` for the clients a send took past `highWaterMark`.
fn flatten(over: Vec<(u32, u32)>) -> Vec<u32> {
  over.into_iter().flat_map(|(id, spell)| [id, spell]).collect()
}

// ===== Server =====

#[napi(object)]
pub struct NativeServerConfig {
  pub address: NativeAddress,
  pub tls: Option<NativeTls>,
  pub secret: Option<Buffer>,
  /// Permissions for the socket file.
  pub mode: Option<u32>,
  pub allow_uids: Option<Vec<u32>>,
  pub allow_gids: Option<Vec<u32>>,
  /// An `allow` function: ask JS about each connection (answered with `admit`).
  pub allow_ask: bool,
  pub frame_timeout: f64,
  pub max_message_size: f64,
  pub handshake_timeout: f64,
  pub heartbeat_interval: f64,
  pub heartbeat_timeout: f64,
  /// `Infinity` (or any non-finite value) means no limit.
  pub max_connections: f64,
  pub high_water_mark: f64,
  pub max_buffered_bytes: f64,
  pub max_inbound_bytes: f64,
  pub at_least_once: bool,
  pub session_timeout: f64,
  /// `protocol: 'socket-ipc'` (see `socket_ipc`).
  pub socket_ipc: bool,
}

/// A listening server. Constructing it starts `listen()`.
#[napi(js_name = "NativeServer", custom_finalize)]
pub struct NativeServer {
  server: Server,
  running: Running,
}

#[napi]
impl NativeServer {
  #[napi(constructor)]
  pub fn new(env: Env, config: NativeServerConfig, on_events: Function<u32, ()>) -> Result<Self> {
    let security = server_security(&config.tls, &config.secret)?;
    let (events, wake, loop_owner) = event_queue(&env, on_events)?;
    let ids = (config.allow_uids.is_some() || config.allow_gids.is_some())
      .then(|| (config.allow_uids.unwrap_or_default(), config.allow_gids.unwrap_or_default()));
    let options = ServerOptions {
      endpoint: config.address.endpoint(),
      mode: config.mode,
      max_message_size: config.max_message_size as usize,
      handshake_timeout: millis(config.handshake_timeout),
      heartbeat: heartbeat(config.heartbeat_interval, config.heartbeat_timeout),
      frame_timeout: optional_millis(config.frame_timeout),
      max_connections: config
        .max_connections
        .is_finite()
        .then_some(config.max_connections as usize),
      allow: Allow {
        ids,
        ask: config.allow_ask,
      },
      limits: limits(config.high_water_mark, config.max_buffered_bytes, config.max_inbound_bytes),
      at_least_once: config.at_least_once,
      session_timeout: millis(config.session_timeout),
      wire: wire(config.socket_ipc),
      loop_host: loop_host(&loop_owner),
    };
    let server = within_runtime_if_available(|| Server::listen(options, security, events.clone()));
    let teardown = teardown_hook(&env, events.clone(), loop_owner.clone(), {
      let server = server.clone();
      move || server.abandon()
    })?;
    Ok(NativeServer {
      server,
      running: Running {
        events,
        wake,
        teardown: Some(teardown),
        loop_owner,
      },
    })
  }

  /// The next slice of events, copied into `slice` (see `Running::take_events`).
  #[napi]
  pub fn take_events(&self, mut slice: BufferSlice) -> i64 {
    self.running.take_events(&mut slice)
  }

  /// The large frames the slice just taken refers to, in the order of its ATTACHED records.
  #[napi]
  pub fn take_attached(&self) -> Vec<Buffer> {
    self.running.take_attached()
  }

  /// Queues encoded messages: records of `target: u32 BE | wire frame`, target 0 = broadcast.
  /// Returns `[client, spell, …]` for the clients whose buffer passed `highWaterMark`.
  #[napi]
  pub fn send(&self, records: BufferSlice) -> Vec<u32> {
    flatten(self.server.send(&records))
  }

  /// Queues JSON messages handed over as text (see `json_batch`), as `send` does.
  #[napi]
  pub fn send_texts(&self, env: Env, texts: JsString, chars: u32, runs: Uint32ArraySlice) -> Result<Vec<u32>> {
    with_framed_texts(&env, texts, chars, &runs, true, |records| flatten(self.server.send(records)))
  }

  /// Queues one large message as its own piece: `head` (length, kind, topic) then `payload`.
  #[napi]
  pub fn send_large(&self, target: u32, head: BufferSlice, payload: BufferSlice) -> Vec<u32> {
    flatten(self.server.send_piece(target, &head, &payload))
  }

  /// At-least-once: the listeners have run for everything taken so far; acknowledge it.
  #[napi]
  pub fn delivered(&self) {
    self.server.delivered(&self.running.events.take_delivered());
  }

  /// Closes one client's connection after what was sent to it (a ConnectionSocket's end() or
  /// destroy()); false if it is not connected.
  #[napi]
  pub fn disconnect(&self, client_id: u32) -> bool {
    self.server.disconnect(client_id)
  }

  /// The `allow` function's verdict on the connection an ADMIT event named.
  #[napi]
  pub fn admit(&self, client_id: u32, allowed: bool) {
    self.server.admit(client_id, allowed);
  }

  #[napi]
  pub fn close(&mut self) {
    self.server.close();
    self.running.closed();
  }

  #[napi]
  pub fn set_referenced(&self, env: Env, referenced: bool) -> Result<()> {
    set_referenced(&env, &self.running.wake, referenced)
  }
}

impl ObjectFinalize for NativeServer {
  fn finalize(mut self, _env: Env) -> Result<()> {
    self.close();
    Ok(())
  }
}

// ===== Client =====

#[napi(object)]
pub struct NativeClientConfig {
  pub address: NativeAddress,
  pub tls: Option<NativeTls>,
  pub secret: Option<Buffer>,
  /// A Peer's socket file permissions, while it listens.
  pub mode: Option<u32>,
  pub frame_timeout: f64,
  pub max_message_size: f64,
  pub handshake_timeout: f64,
  pub retry_delay_min: f64,
  pub retry_delay_max: f64,
  /// Exponential backoff from min to max; absent for a fixed or uniformly random delay.
  pub retry_delay_factor: Option<f64>,
  pub reconnect_delay_min: f64,
  pub reconnect_delay_max: f64,
  pub reconnect_delay_factor: Option<f64>,
  /// `Infinity` (or any non-finite value) retries forever.
  pub max_retries: f64,
  pub heartbeat_interval: f64,
  pub heartbeat_timeout: f64,
  /// A `Peer`: listen when the socket file is free or stale, connect otherwise.
  pub symmetric: bool,
  pub high_water_mark: f64,
  pub max_buffered_bytes: f64,
  pub max_inbound_bytes: f64,
  pub at_least_once: bool,
  /// `protocol: 'socket-ipc'` (see `socket_ipc`); never on a peer.
  pub socket_ipc: bool,
}

impl NativeClientConfig {
  fn retry(&self) -> RetryPolicy {
    RetryPolicy {
      retry_delay: delay(self.retry_delay_min, self.retry_delay_max, self.retry_delay_factor),
      reconnect_delay: delay(self.reconnect_delay_min, self.reconnect_delay_max, self.reconnect_delay_factor),
      max_retries: self
        .max_retries
        .is_finite()
        .then(|| self.max_retries.clamp(0.0, u32::MAX as f64) as u32),
    }
  }
}

/// The cores with one connection: a client, or a peer that may listen instead.
#[derive(Clone)]
enum Connector {
  Client(Client),
  Peer(Peer),
}

impl Connector {
  fn start(config: NativeClientConfig, events: Arc<EventQueue>, loop_host: Option<Arc<dyn LoopHost>>) -> Result<Self> {
    let (retry, heartbeat) = (
      config.retry(),
      heartbeat(config.heartbeat_interval, config.heartbeat_timeout),
    );
    let endpoint = config.address.endpoint();
    let max_message_size = config.max_message_size as usize;
    let handshake_timeout = millis(config.handshake_timeout);
    let frame_timeout = optional_millis(config.frame_timeout);
    let client_security = client_security(&config.tls, &config.secret, &endpoint)?;
    let limits = limits(config.high_water_mark, config.max_buffered_bytes, config.max_inbound_bytes);
    if !config.symmetric {
      let options = ClientOptions {
        endpoint,
        max_message_size,
        handshake_timeout,
        retry,
        heartbeat,
        frame_timeout,
        limits,
        at_least_once: config.at_least_once,
        wire: wire(config.socket_ipc),
        loop_host,
      };
      return Ok(within_runtime_if_available(|| {
        Connector::Client(Client::connect(options, client_security, events))
      }));
    }
    let security = PeerSecurity {
      // A peer's TLS options serve both roles; only its server role needs cert and key.
      server: server_security(&config.tls, &config.secret)?,
      client: client_security,
    };
    let options = PeerOptions {
      endpoint,
      mode: config.mode,
      frame_timeout,
      max_message_size,
      handshake_timeout,
      retry,
      heartbeat,
      limits,
      loop_host,
    };
    Ok(within_runtime_if_available(|| Connector::Peer(Peer::connect(options, security, events))))
  }

  fn send(&self, frames: &[u8]) -> Appended {
    match self {
      Connector::Client(c) => c.send(frames),
      Connector::Peer(p) => p.send(frames),
    }
  }

  fn send_piece(&self, head: &[u8], payload: &[u8]) -> Appended {
    match self {
      Connector::Client(c) => c.send_piece(head, payload),
      Connector::Peer(p) => p.send_piece(head, payload),
    }
  }

  fn delivered(&self, epoch: u32, count: u64) {
    if let Connector::Client(c) = self {
      c.delivered(epoch, count);
    }
  }

  fn close(&self) {
    match self {
      Connector::Client(c) => c.close(),
      Connector::Peer(p) => p.close(),
    }
  }

  /// The JS environment is going away: also remove a peer's socket file now.
  fn abandon(&self) {
    match self {
      Connector::Client(c) => c.close(),
      Connector::Peer(p) => p.abandon(),
    }
  }
}

/// A connecting client, or a peer (`symmetric`). Constructing it starts `connect()`.
#[napi(js_name = "NativeClient", custom_finalize)]
pub struct NativeClient {
  client: Connector,
  running: Running,
}

#[napi]
impl NativeClient {
  #[napi(constructor)]
  pub fn new(env: Env, config: NativeClientConfig, on_events: Function<u32, ()>) -> Result<Self> {
    let (events, wake, loop_owner) = event_queue(&env, on_events)?;
    let client = Connector::start(config, events.clone(), loop_host(&loop_owner))?;
    let teardown = teardown_hook(&env, events.clone(), loop_owner.clone(), {
      let client = client.clone();
      move || client.abandon()
    })?;
    Ok(NativeClient {
      client,
      running: Running {
        events,
        wake,
        teardown: Some(teardown),
        loop_owner,
      },
    })
  }

  /// The next slice of events, copied into `slice` (see `Running::take_events`).
  #[napi]
  pub fn take_events(&self, mut slice: BufferSlice) -> i64 {
    self.running.take_events(&mut slice)
  }

  /// The large frames the slice just taken refers to, in the order of its ATTACHED records.
  #[napi]
  pub fn take_attached(&self) -> Vec<Buffer> {
    self.running.take_attached()
  }

  /// Queues encoded wire frames.
  #[napi]
  pub fn send(&self, frames: BufferSlice) -> NativeSendOutcome {
    self.client.send(&frames).into()
  }

  /// Queues JSON messages handed over as text (see `json_batch`).
  #[napi]
  pub fn send_texts(&self, env: Env, texts: JsString, chars: u32, runs: Uint32ArraySlice) -> Result<NativeSendOutcome> {
    with_framed_texts(&env, texts, chars, &runs, false, |frames| self.client.send(frames).into())
  }

  /// Queues one large message as its own piece.
  #[napi]
  pub fn send_large(&self, head: BufferSlice, payload: BufferSlice) -> NativeSendOutcome {
    self.client.send_piece(&head, &payload).into()
  }

  /// At-least-once: the listeners have run for everything taken so far; acknowledge it.
  #[napi]
  pub fn delivered(&self) {
    for (_, epoch, count) in self.running.events.take_delivered() {
      self.client.delivered(epoch, count);
    }
  }

  #[napi]
  pub fn close(&mut self) {
    self.client.close();
    self.running.closed();
  }

  #[napi]
  pub fn set_referenced(&self, env: Env, referenced: bool) -> Result<()> {
    set_referenced(&env, &self.running.wake, referenced)
  }
}

impl ObjectFinalize for NativeClient {
  fn finalize(mut self, _env: Env) -> Result<()> {
    self.close();
    Ok(())
  }
}
