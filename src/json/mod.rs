//! Off-thread JSON parsing for untrusted bodies, with the event loop's share bounded.
//!
//! What: a pool of native threads (`pool.rs`) validates JSON text strictly — grammar exactly as
//! `JSON.parse` accepts it, UTF-8 for Buffers, the size and shape limits (`maxBytes`, `maxDepth`,
//! `maxKeys`, `maxArrayLength`, `maxStringLength`, `maxTotalNodes`) and prototype-poisoning keys
//! (`__proto__`, and `constructor` holding `prototype`, in any escaped spelling) — and writes a
//! *build plan* (`scan.rs`). The main thread (lib/json.js) follows the plan in slices of about
//! `sliceMs` across event-loop turns. A body over 1 MB is first checked by a scan of its head
//! (64 Ki units, `ScanOptions::prefix`) before the main thread copies the rest, so a body refused
//! there costs the main thread the head's copy and the rejection (measured: 0.06 ms of
//! main-thread CPU for a 20 MB body refused by `maxTotalNodes`).
//!
//! Design choice, and the measurement behind it (the project notes on JSON, Node 20, this
//! machine): two prototypes were compared. (a) A compact binary tape decoded by JavaScript with
//! shape reuse spent 0.36–0.9× of `JSON.parse`'s main-thread time, but only with generated code
//! (`new Function`, which breaks under `--disallow-code-generation-from-strings` and puts
//! attacker-chosen keys into generated source), ran ±40% run to run, and pinned the input string
//! when it sliced strings out of it. (b) Validation and planning off-thread with `JSON.parse` on
//! ≤ 64 KB slices stitched together: longest stall 1.2–4 ms up to 2 MB, 0.39–1.05× of what a
//! server pays today (`JSON.parse(buf.toString())`), heap identical to `JSON.parse` because the
//! objects *are* `JSON.parse`'s. This module implements (b): it needs no code generation, makes
//! exact equality with `JSON.parse` true by construction (numbers, `-0`, escapes, lone
//! surrogates, duplicate keys are all decoded by `JSON.parse` itself), and its main-thread slices
//! are bounded by the slice size, not by the payload. Our own figures are in the README.
//!
//! Guarantees: no panic crosses into Node (`catch_unwind`); the scan is iterative (no recursion,
//! so no stack overflow at any depth); every job's input is copied into memory the job owns, so
//! a Buffer changed or transferred while a parse is in flight cannot make the threads read freed
//! memory (zero-copy was ruled out: napi-rs marks its `Buffer`'s `Send` as unsound, and a napi
//! reference keeps the Buffer object alive but not the memory of an `ArrayBuffer` that
//! `postMessage` or `transfer()` detaches); threads exit and join on `close()`, on GC of the pool, and on environment teardown
//! (main thread exit or worker end); results reach JavaScript through a *weak* thread-safe
//! function that lib/json.js refs only while work is in flight, so an idle pool never keeps the
//! process alive.
//!
//! Limits: one value's text is never split, so a single string longer than the slice size is one
//! `JSON.parse` call (bound it with `maxStringLength`); a scan of a cancelled job stops within
//! 65,536 values.

mod pool;
mod scan;

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Either, Function, Uint32Array, Uint8Array, Utf16String};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsString, JsValue, Status};
use napi_derive::napi;

use crate::env_state;
use crate::error::{BulwarkError, ErrorCode, Result};
use pool::{Input, Job, Located, Outcome, Pool};
use scan::{KeyAction, ScanOptions};

/// Options of one scan, already validated and merged by lib/json.js.
#[napi(object)]
pub struct NativeScanOptions {
  pub max_bytes: f64,
  pub max_depth: u32,
  pub max_keys: u32,
  pub max_array_length: u32,
  pub max_string_length: f64,
  pub max_total_nodes: f64,
  /// 0 error, 1 remove, 2 ignore.
  pub proto_action: u32,
  pub constructor_action: u32,
  pub utf8_replace: bool,
  pub plan: bool,
  pub slice_units: u32,
  /// JSON Pointers split into unescaped tokens.
  pub select: Option<Vec<Vec<String>>>,
  /// The text is the head of a longer body: report only failures the rest cannot change.
  pub prefix: bool,
}

fn action(n: u32) -> KeyAction {
  match n {
    1 => KeyAction::Remove,
    2 => KeyAction::Ignore,
    _ => KeyAction::Error,
  }
}

fn to_u64(v: f64) -> u64 {
  if v.is_finite() && v >= 0.0 {
    v as u64
  } else {
    u64::MAX
  }
}

impl From<NativeScanOptions> for ScanOptions {
  fn from(o: NativeScanOptions) -> Self {
    ScanOptions {
      max_bytes: to_u64(o.max_bytes),
      max_depth: o.max_depth,
      max_keys: o.max_keys,
      max_array_length: o.max_array_length,
      max_string_length: to_u64(o.max_string_length),
      max_total_nodes: to_u64(o.max_total_nodes),
      proto_action: action(o.proto_action),
      constructor_action: action(o.constructor_action),
      utf8_replace: o.utf8_replace,
      plan: o.plan,
      slice_units: o.slice_units.max(16),
      select: o.select,
      prefix: o.prefix,
    }
  }
}

/// The result of one scan as JavaScript sees it.
#[napi(object)]
pub struct NativeOutcome {
  pub id: u32,
  pub plan: Option<Uint32Array>,
  pub code: Option<String>,
  pub message: Option<String>,
  pub position: Option<f64>,
  pub line: Option<f64>,
  pub column: Option<f64>,
  pub limit: Option<f64>,
  pub wait_ns: f64,
  pub parse_ns: f64,
}

fn outcome_to_js(
  id: u32,
  result: std::result::Result<Vec<u32>, Located>,
  wait_ns: f64,
  parse_ns: f64,
) -> NativeOutcome {
  match result {
    Ok(plan) => NativeOutcome {
      id,
      plan: Some(Uint32Array::new(plan)),
      code: None,
      message: None,
      position: None,
      line: None,
      column: None,
      limit: None,
      wait_ns,
      parse_ns,
    },
    Err(l) => NativeOutcome {
      id,
      plan: None,
      code: Some(l.code.as_str().to_string()),
      message: Some(l.message),
      position: Some(l.position as f64),
      line: Some(l.line as f64),
      column: Some(l.column as f64),
      limit: l.limit,
      wait_ns,
      parse_ns,
    },
  }
}

/// Input text gathered in chunks on the JS thread (so copying a large body is sliced too).
#[napi]
pub struct JsonInput {
  input: Option<Input>,
}

#[napi]
impl JsonInput {
  /// `wide`: the text is a JS string (UTF-16 units); otherwise UTF-8 bytes.
  #[napi(constructor, catch_unwind)]
  pub fn new(wide: bool, capacity: u32) -> Self {
    let input = if wide {
      // One unit more than the text: napi writes a terminator after each pushed chunk, and
      // without room for it the last chunk would reallocate (and copy) the whole buffer.
      Input::Utf16(Vec::with_capacity(capacity as usize + 1))
    } else {
      Input::Bytes(Vec::with_capacity(capacity as usize))
    };
    JsonInput { input: Some(input) }
  }

  #[napi(catch_unwind)]
  pub fn push_bytes(&mut self, chunk: Uint8Array) -> Result<()> {
    match &mut self.input {
      Some(Input::Bytes(v)) => {
        v.extend_from_slice(&chunk);
        Ok(())
      }
      _ => Err(BulwarkError::invalid_arg("JsonInput does not take bytes").into()),
    }
  }

  /// Appends a string's UTF-16 units, written straight into the job's buffer (one copy).
  #[napi(catch_unwind)]
  pub fn push_string(&mut self, env: Env, chunk: JsString) -> Result<()> {
    let Some(Input::Utf16(v)) = &mut self.input else {
      return Err(BulwarkError::invalid_arg("JsonInput does not take strings").into());
    };
    let fail = |what: &str| {
      BulwarkError::new(
        ErrorCode::Internal,
        format!("napi_get_value_string_utf16 failed ({what})"),
      )
    };
    // SAFETY: `chunk` is a live string of this environment (we are on its JS thread); the
    // buffer handed to napi has room for `len` units plus the terminator napi writes.
    unsafe {
      let raw = chunk.raw();
      let mut len = 0usize;
      if napi::sys::napi_get_value_string_utf16(env.raw(), raw, std::ptr::null_mut(), 0, &mut len)
        != napi::sys::Status::napi_ok
      {
        return Err(fail("length").into());
      }
      v.reserve(len + 1);
      let mut written = 0usize;
      let dst = v.as_mut_ptr().add(v.len());
      if napi::sys::napi_get_value_string_utf16(env.raw(), raw, dst, len + 1, &mut written)
        != napi::sys::Status::napi_ok
      {
        return Err(fail("copy").into());
      }
      v.set_len(v.len() + written.min(len));
    }
    Ok(())
  }
}

/// Scans on the calling (JS) thread: the inline path for small bodies.
#[napi(catch_unwind)]
pub fn json_scan_sync(
  input: Either<Uint8Array, Utf16String>,
  options: NativeScanOptions,
) -> NativeOutcome {
  let started = std::time::Instant::now();
  let options: ScanOptions = options.into();
  let input = match input {
    Either::A(b) => Input::Bytes(b.to_vec()),
    Either::B(s) => Input::Utf16(s.to_vec()),
  };
  let result = pool::run(&input, &options, None);
  outcome_to_js(0, result, 0.0, started.elapsed().as_nanos() as f64)
}

type Tsfn = ThreadsafeFunction<Outcome, (), NativeOutcome, Status, false, true, 0>;

struct Core {
  pool: Option<Pool>,
  tsfn: Option<Arc<Tsfn>>,
}

impl Core {
  fn close(&mut self) {
    if let Some(mut pool) = self.pool.take() {
      pool.close();
    }
    // Released on the JS thread, after every thread that held a clone has exited.
    self.tsfn.take();
  }
}

/// The native half of `JsonPool` (lib/json.js holds the public API).
#[napi]
pub struct NativeJsonPool {
  core: Arc<Mutex<Core>>,
}

#[napi]
impl NativeJsonPool {
  /// `on_outcome` receives every finished, non-cancelled job.
  #[napi(constructor, catch_unwind)]
  pub fn new(
    env: Env,
    threads: u32,
    max_queue: u32,
    on_outcome: Function<'_, NativeOutcome, ()>,
  ) -> Result<Self> {
    let tsfn: Tsfn = on_outcome
      .build_threadsafe_function::<Outcome>()
      .weak::<true>()
      .callee_handled::<false>()
      .build_callback(|ctx| {
        Ok(outcome_to_js(
          ctx.value.id,
          ctx.value.result,
          ctx.value.wait_ns,
          ctx.value.parse_ns,
        ))
      })
      .map_err(BulwarkError::from)?;
    let tsfn = Arc::new(tsfn);
    let deliver_tsfn = tsfn.clone();
    let deliver = Arc::new(move |o: Outcome| {
      deliver_tsfn.call(o, ThreadsafeFunctionCallMode::NonBlocking);
    });
    let pool = Pool::start(threads.max(1) as usize, max_queue.max(1) as usize, deliver)?;
    let core = Arc::new(Mutex::new(Core {
      pool: Some(pool),
      tsfn: Some(tsfn),
    }));
    let on_end = core.clone();
    env_state::state(&env)
      .map_err(BulwarkError::from)?
      .on_teardown(move || on_end.lock().unwrap().close());
    Ok(NativeJsonPool { core })
  }

  /// Queues a scan of `input` (its text moves into the job). Throws `ERR_BULWARK_POOL_OVERLOADED`
  /// when the queue is full and `ERR_BULWARK_CLOSED` after `close()`.
  #[napi(catch_unwind)]
  pub fn submit(&self, id: u32, input: &mut JsonInput, options: NativeScanOptions) -> Result<()> {
    let Some(text) = input.input.take() else {
      return Err(BulwarkError::invalid_arg("JsonInput was already submitted").into());
    };
    let core = self.core.lock().unwrap();
    let Some(pool) = &core.pool else {
      return Err(BulwarkError::new(ErrorCode::Closed, "The JSON pool is closed").into());
    };
    pool.submit(Job {
      id,
      input: text,
      options: options.into(),
    })?;
    Ok(())
  }

  #[napi(catch_unwind)]
  pub fn cancel(&self, id: u32) {
    if let Some(pool) = &self.core.lock().unwrap().pool {
      pool.cancel(id);
    }
  }

  /// Keeps the process alive while work is in flight (`true`) or not (`false`).
  #[napi(catch_unwind)]
  pub fn set_ref(&self, env: Env, referred: bool) -> Result<()> {
    let core = self.core.lock().unwrap();
    if let Some(tsfn) = core.tsfn.as_ref() {
      // SAFETY: called on the JS thread of the environment that created the function, which is
      // alive (the core releases the function before that environment ends).
      let status = unsafe {
        if referred {
          napi::sys::napi_ref_threadsafe_function(env.raw(), tsfn.raw())
        } else {
          napi::sys::napi_unref_threadsafe_function(env.raw(), tsfn.raw())
        }
      };
      if status != napi::sys::Status::napi_ok {
        return Err(
          BulwarkError::new(
            ErrorCode::Internal,
            format!("napi_(un)ref_threadsafe_function failed: {status}"),
          )
          .into(),
        );
      }
    }
    Ok(())
  }

  #[napi(catch_unwind)]
  pub fn queue_depth(&self) -> u32 {
    self
      .core
      .lock()
      .unwrap()
      .pool
      .as_ref()
      .map_or(0, |p| p.queue_depth() as u32)
  }

  /// Stops the threads (cancelling queued and running scans) and releases the callback.
  #[napi(catch_unwind)]
  pub fn close(&self) {
    self.core.lock().unwrap().close();
  }
}

impl Drop for NativeJsonPool {
  fn drop(&mut self) {
    if let Ok(mut core) = self.core.lock() {
      core.close();
    }
  }
}
