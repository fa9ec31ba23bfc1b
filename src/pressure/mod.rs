//! The native half of the pressure gate (`lib/pressure.js`): a probe that reads the loop hook's
//! atomics, and a liveness responder that answers HTTP probes from its own thread.
//!
//! # Reading the loop without sampling it
//! The gate takes its loop readings from the shared libuv prepare hook (`crate::loop_hooks`),
//! which publishes per-iteration busy time and a rolling one-second window in atomics. The probe
//! copies them into a caller-owned `Float64Array` (zero-copy: no JS object is allocated, which is
//! what keeps `isOverloaded()` cheap) — see [`PressureProbe::read`] for the layout.
//!
//! # Liveness from outside the loop
//! A `/health` handler on the event loop cannot report a stall while it happens: it runs only once
//! the loop is free. [`HealthServer`] is a plain `std::net` listener on a native thread. For each
//! probe it computes "busy right now" from the hook's atomics and `uv_metrics_idle_time` (which
//! libuv makes safe to call from another thread) and answers at once: `/health` is 503 while the
//! loop has been blocked for `stallMs` or more; `/ready` is 503 while the gate last said
//! "overloaded" or the loop is stalled. The gate pushes its readiness into an atomic only when it
//! changes. Hand-written on `std::net` because an HTTP framework would bring an async runtime for
//! two fixed GET routes; requests are read with a size cap and a short timeout, one connection at a
//! time (probes are tiny and rare), and every answer closes the connection.
//!
//! The responder thread never keeps Node alive (it is not a libuv handle). It stops on `close()`
//! and, at the latest, when the environment ends (before the loop it reads is closed).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use napi::bindgen_prelude::Float64ArraySlice;
use napi::Env;
use napi_derive::napi;

use crate::error::{BulwarkError, ErrorCode, Result};
use crate::loop_hooks::{self, HookLease, LoopShared};

/// Number of values [`PressureProbe::read`] writes.
const READING_LEN: usize = 6;

/// Reads the calling thread's loop pressure for the gate.
#[napi]
pub struct PressureProbe {
  shared: Arc<LoopShared>,
  lease: Option<HookLease>,
}

#[napi]
impl PressureProbe {
  /// Starts (or shares) the loop hook of the calling thread.
  #[napi(constructor)]
  pub fn new(env: Env) -> Result<Self> {
    let lease = loop_hooks::acquire(&env, None)?;
    Ok(PressureProbe {
      shared: lease.shared(),
      lease: Some(lease),
    })
  }

  /// Writes into `out` (a `Float64Array` of length >= 6), all durations in milliseconds:
  /// `[blocked, lastIteration, windowMax, windowP99, windowUtilization, windowAge]` — how long the
  /// iteration in progress has been busy, the busy time of the last completed iteration, the
  /// longest and the p99 iteration and the utilisation of the last completed one-second window,
  /// and how long ago that window ended.
  #[napi]
  pub fn read(&self, mut out: Float64ArraySlice) -> Result<()> {
    // SAFETY: the call is synchronous on the JS thread, so no JS code runs (and touches the
    // array) while this slice is alive.
    let out = unsafe { out.as_mut() };
    if out.len() < READING_LEN {
      return Err(
        BulwarkError::invalid_arg(format!("the reading buffer needs {READING_LEN} elements"))
          .into(),
      );
    }
    let uv = loop_hooks::uv()?;
    let p = self.shared.pressure(uv);
    let last = self.shared.reading().last_busy_ns;
    let ms = |ns: u64| ns as f64 / 1e6;
    out[0] = ms(p.blocked_ns);
    out[1] = ms(last);
    out[2] = ms(p.window_max_ns);
    out[3] = ms(p.window_p99_ns);
    out[4] = p.window_utilization;
    out[5] = ms(p.window_age_ns);
    Ok(())
  }

  /// Starts the native liveness responder on `host:port` (port 0 picks a free one).
  #[napi]
  pub fn listen_health(
    &self,
    env: Env,
    host: String,
    port: u32,
    stall_ms: f64,
  ) -> Result<HealthServer> {
    let port =
      u16::try_from(port).map_err(|_| BulwarkError::out_of_range("port must be <= 65535"))?;
    let addr = (host.as_str(), port)
      .to_socket_addrs()
      .map_err(|e| BulwarkError::invalid_arg(format!("cannot resolve {host}: {e}")))?
      .next()
      .ok_or_else(|| BulwarkError::invalid_arg(format!("cannot resolve {host}")))?;
    let listener = TcpListener::bind(addr).map_err(|e| {
      BulwarkError::new(
        ErrorCode::InvalidArg,
        format!("cannot listen on {addr}: {e}"),
      )
    })?;
    let local = listener.local_addr().map_err(internal)?;
    let inner = Arc::new(ServerInner {
      stop: AtomicBool::new(false),
      ready: AtomicBool::new(true),
      stall_ns: (stall_ms * 1e6) as u64,
      thread: Mutex::new(None),
    });
    let thread = {
      let inner = inner.clone();
      let shared = self.shared.clone();
      std::thread::Builder::new()
        .name("bulwark-health".into())
        .spawn(move || serve(listener, &inner, &shared))
        .map_err(internal)?
    };
    *inner.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
    // The responder reads the loop's idle clock: it must stop before the loop goes away.
    let on_exit = inner.clone();
    crate::env_state::state(&env)
      .map_err(BulwarkError::from)?
      .on_teardown(move || on_exit.close(local.port()));
    Ok(HealthServer {
      inner,
      port: local.port(),
    })
  }

  /// Releases the loop hook (other users of the hook keep it). Idempotent.
  #[napi]
  pub fn close(&mut self) {
    self.lease = None;
  }
}

fn internal(e: impl std::fmt::Display) -> BulwarkError {
  BulwarkError::new(ErrorCode::Internal, e.to_string())
}

struct ServerInner {
  stop: AtomicBool,
  ready: AtomicBool,
  stall_ns: u64,
  thread: Mutex<Option<JoinHandle<()>>>,
}

impl ServerInner {
  /// Stops the responder and waits for its thread. Idempotent.
  fn close(&self, port: u16) {
    if self.stop.swap(true, Ordering::AcqRel) {
      return;
    }
    // Wake the blocking accept(); the thread sees `stop` and returns.
    let _ = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200));
    if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
      let _ = thread.join();
    }
  }
}

/// A running native liveness responder.
#[napi]
pub struct HealthServer {
  inner: Arc<ServerInner>,
  port: u16,
}

#[napi]
impl HealthServer {
  /// The port it listens on.
  #[napi(getter)]
  pub fn port(&self) -> u32 {
    self.port as u32
  }

  /// What `/ready` answers while the loop is not stalled (the gate calls this when it changes).
  #[napi]
  pub fn set_ready(&self, ready: bool) {
    self.inner.ready.store(ready, Ordering::Release);
  }

  /// Stops the responder thread and frees the port. Idempotent.
  #[napi]
  pub fn close(&self) {
    self.inner.close(self.port);
  }
}

fn serve(listener: TcpListener, inner: &ServerInner, shared: &LoopShared) {
  for conn in listener.incoming() {
    if inner.stop.load(Ordering::Acquire) {
      return;
    }
    if let Ok(stream) = conn {
      let _ = answer(stream, inner, shared);
    }
  }
}

/// Most a probe's request head may take; anything longer is answered 431 and closed.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

fn answer(mut stream: TcpStream, inner: &ServerInner, shared: &LoopShared) -> std::io::Result<()> {
  stream.set_read_timeout(Some(Duration::from_millis(500)))?;
  stream.set_write_timeout(Some(Duration::from_millis(500)))?;
  let mut head = Vec::with_capacity(512);
  let mut buf = [0u8; 1024];
  while !head.windows(4).any(|w| w == b"\r\n\r\n") {
    if head.len() > MAX_REQUEST_HEAD {
      return respond(
        &mut stream,
        431,
        r#"{"status":"error","error":"request head too large"}"#,
      );
    }
    let n = stream.read(&mut buf)?;
    if n == 0 {
      return Ok(());
    }
    head.extend_from_slice(&buf[..n]);
  }
  let loop_state = loop_hooks::uv().map(|uv| shared.pressure(uv)).ok();
  let blocked_ns = loop_state.map_or(0, |p| p.blocked_ns);
  let state = ProbeState {
    blocked_ms: blocked_ns as f64 / 1e6,
    window_max_ms: loop_state.map_or(0.0, |p| p.window_max_ns as f64 / 1e6),
    stalled: blocked_ns >= inner.stall_ns,
    gate_ready: inner.ready.load(Ordering::Acquire),
  };
  let (status, body) = route(request_target(&head), &state);
  respond(&mut stream, status, &body)?;
  let _ = stream.shutdown(Shutdown::Both);
  Ok(())
}

/// What a probe answer is computed from.
#[derive(Debug, Clone, Copy)]
struct ProbeState {
  blocked_ms: f64,
  window_max_ms: f64,
  stalled: bool,
  gate_ready: bool,
}

/// `(method, path)` of the request line, if it has one.
fn request_target(head: &[u8]) -> Option<(&str, &str)> {
  let line = head.split(|&b| b == b'\r').next()?;
  let line = std::str::from_utf8(line).ok()?;
  let mut parts = line.split(' ');
  let method = parts.next()?;
  let target = parts.next()?;
  let path = target.split('?').next()?;
  Some((method, path))
}

fn route(target: Option<(&str, &str)>, s: &ProbeState) -> (u16, String) {
  let loop_json = format!(
    r#""blockedMs":{:.3},"windowMaxMs":{:.3}"#,
    s.blocked_ms, s.window_max_ms
  );
  match target {
    Some(("GET" | "HEAD", "/health")) => {
      if s.stalled {
        (503, format!(r#"{{"status":"stalled",{loop_json}}}"#))
      } else {
        (200, format!(r#"{{"status":"ok",{loop_json}}}"#))
      }
    }
    Some(("GET" | "HEAD", "/ready")) => {
      if s.stalled {
        (503, format!(r#"{{"status":"stalled",{loop_json}}}"#))
      } else if !s.gate_ready {
        (503, format!(r#"{{"status":"overloaded",{loop_json}}}"#))
      } else {
        (200, format!(r#"{{"status":"ok",{loop_json}}}"#))
      }
    }
    Some(("GET" | "HEAD", _)) => (404, r#"{"status":"error","error":"not found"}"#.to_string()),
    Some(_) => (
      405,
      r#"{"status":"error","error":"method not allowed"}"#.to_string(),
    ),
    None => (
      400,
      r#"{"status":"error","error":"bad request"}"#.to_string(),
    ),
  }
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
  let reason = match status {
    200 => "OK",
    400 => "Bad Request",
    404 => "Not Found",
    405 => "Method Not Allowed",
    431 => "Request Header Fields Too Large",
    _ => "Service Unavailable",
  };
  let retry = if status == 503 {
    "Retry-After: 1\r\n"
  } else {
    ""
  };
  let response = format!(
    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{retry}Connection: close\r\n\r\n{body}",
    body.len()
  );
  stream.write_all(response.as_bytes())
}

#[cfg(test)]
mod tests {
  use super::*;

  fn state(stalled: bool, gate_ready: bool) -> ProbeState {
    ProbeState {
      blocked_ms: if stalled { 1500.0 } else { 0.0 },
      window_max_ms: 3.25,
      stalled,
      gate_ready,
    }
  }

  #[test]
  fn parses_the_request_line() {
    assert_eq!(
      request_target(b"GET /health?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
      Some(("GET", "/health"))
    );
    assert_eq!(request_target(b"garbage"), None);
    assert_eq!(request_target(b"\xff\xfe /x\r\n\r\n"), None);
  }

  #[test]
  fn health_is_503_only_while_stalled() {
    let (code, body) = route(Some(("GET", "/health")), &state(false, false));
    assert_eq!(code, 200);
    assert!(body.contains(r#""status":"ok""#) && body.contains(r#""windowMaxMs":3.250"#));
    let (code, body) = route(Some(("GET", "/health")), &state(true, true));
    assert_eq!(code, 503);
    assert!(body.contains(r#""blockedMs":1500.000"#));
  }

  #[test]
  fn ready_needs_the_gate_and_a_moving_loop() {
    assert_eq!(route(Some(("GET", "/ready")), &state(false, true)).0, 200);
    assert_eq!(route(Some(("GET", "/ready")), &state(false, false)).0, 503);
    assert_eq!(route(Some(("GET", "/ready")), &state(true, true)).0, 503);
  }

  #[test]
  fn other_requests_are_refused() {
    assert_eq!(route(Some(("GET", "/")), &state(false, true)).0, 404);
    assert_eq!(route(Some(("POST", "/health")), &state(false, true)).0, 405);
    assert_eq!(route(None, &state(false, true)).0, 400);
  }
}
