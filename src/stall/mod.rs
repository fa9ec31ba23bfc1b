//! Stall watchdog: a native thread that sees the event loop blocked *while* it is blocked.
//!
//! What: one OS thread per watchdog (main thread or worker loop). It reads the loop hook's
//! atomics (`src/loop_hooks.rs`, shared with the delay histograms: no second mechanism) plus
//! `uv_metrics_idle_time`, which is thread-safe, to compute "the current iteration has been busy
//! for X ns" without touching the loop. It sleeps until the moment the iteration would cross
//! `thresholdMs` if it stays busy, so it notices a stall within scheduler latency of the threshold
//! (measured in `bench/stall.js`) and never wakes the JS thread. An idle loop is told apart from a
//! blocked one by the idle-time metric: time spent in `epoll_wait` is idle, time in callbacks is
//! busy. (The ping-with-`uv_async_send` approach from the notes is not needed and would wake the
//! loop.)
//!
//! On a stall the thread writes JSON lines to stderr with one `write(2)` each (`stall` while
//! blocked, `stall-end` when it ends), asks the stack helper (a worker with an inspector session
//! on the main thread, lib/stall-worker.js) to pause the blocked thread and read its frames, and
//! after the stall queues `onStall` through a weak thread-safe function (it runs once the loop
//! resumes). Past `killAfterMs` it writes a final `stall-kill` line (with the stack if captured)
//! and calls `abort()` or `_exit(code)` itself: the loop never has to come back.
//!
//! No false stalls from suspension: the thread sleeps at most 25 ms at a time; when it wakes
//! more than 50 ms late, or CLOCK_BOOTTIME ran ahead of CLOCK_MONOTONIC, the process or machine
//! was stopped (SIGSTOP, paused VM, sleep) and that time is discounted from the iteration.
//! Limit: a genuine block during which the watchdog thread itself was starved of CPU for > 50 ms
//! is under-reported by that starvation.
//!
//! Lifetime: `stop()` or the environment's teardown wakes and joins the thread on the JS thread,
//! then drops the thread-safe functions there (Node < 24.14 aborts when a TSFN is released after
//! its worker environment is gone).

mod detector;

use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use crate::error::{BulwarkError, Result};
use crate::loop_hooks::{self, HookLease, LoopShared, Uv};
use detector::{Detector, Event, Observation};

type StringTsfn = ThreadsafeFunction<String, (), String, Status, false, true>;
type SeqTsfn = ThreadsafeFunction<u32, (), u32, Status, false, true>;

/// What to do when a stall passes `killAfterMs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAction {
  Abort,
  Exit(i32),
}

struct Config {
  threshold_ns: u64,
  kill_after_ns: Option<u64>,
  action: KillAction,
  log: bool,
  thread_id: u32,
}

/// State shared by the watchdog thread, its JS object and the stack helper.
struct Shared {
  stop: Mutex<bool>,
  wake: Condvar,
  /// Stall number in progress (0: none); the helper's report must match it.
  stall_seq: AtomicU64,
  /// Loop iteration the stall is in; a stack taken in another iteration is discarded.
  stall_iteration: AtomicU64,
  stack: Mutex<Option<(u64, String)>>,
  helper: Mutex<Option<SeqTsfn>>,
  loop_shared: Arc<LoopShared>,
}

fn registry() -> &'static Mutex<HashMap<u32, Weak<Shared>>> {
  static REGISTRY: OnceLock<Mutex<HashMap<u32, Weak<Shared>>>> = OnceLock::new();
  REGISTRY.get_or_init(Default::default)
}
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn boottime_ns() -> u64 {
  let mut ts = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
  };
  // SAFETY: valid pointer to a timespec; CLOCK_BOOTTIME exists on Linux >= 2.6.39.
  unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
  ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn epoch_ms() -> f64 {
  std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map(|d| d.as_secs_f64() * 1000.0)
    .unwrap_or(0.0)
}

/// Writes one line to stderr with a single write(2), so lines from threads do not interleave.
fn log_line(line: &str) {
  let mut buf = Vec::with_capacity(line.len() + 1);
  buf.extend_from_slice(line.as_bytes());
  buf.push(b'\n');
  let _ = std::io::stderr().lock().write_all(&buf);
}

fn fmt_ms(ns: u64) -> String {
  format!("{:.1}", ns as f64 / 1e6)
}

/// The JSON line for an event (`stack` is a JSON array or `null`).
fn event_line(event: &str, ns: u64, cfg: &Config, at_ms: f64, extra: &str) -> String {
  format!(
    "{{\"event\":\"{event}\",\"ms\":{},\"pid\":{},\"threadId\":{},\"at\":{:.1}{extra}}}",
    fmt_ms(ns),
    std::process::id(),
    cfg.thread_id,
    at_ms
  )
}

fn observe(uv: &Uv, loop_shared: &LoopShared, stall_ends_at: Option<u64>) -> Observation {
  let mono = uv.hrtime();
  let boot = boottime_ns();
  let (busy, reading) = loop_shared.busy_now(uv, mono);
  Observation {
    mono_ns: mono,
    boot_ns: boot,
    busy_ns: busy,
    iteration: reading.iterations,
    last_busy_ns: reading.last_busy_ns,
    stalled_busy_ns: stall_ends_at.and_then(|i| loop_shared.busy_of(i)),
  }
}

fn run(shared: Arc<Shared>, cfg: Config, on_stall: Option<StringTsfn>) -> Option<StringTsfn> {
  let Ok(uv) = loop_hooks::uv() else {
    return on_stall;
  };
  let first = observe(uv, &shared.loop_shared, None);
  let mut detector = Detector::new(cfg.threshold_ns, cfg.kill_after_ns, &first);
  let mono_to_epoch = |mono: u64| epoch_ms() - (uv.hrtime().saturating_sub(mono)) as f64 / 1e6;
  let mut seq: u64 = 0;
  let mut on_stall_closed = false;
  let mut sleep_ns = detector.next_sleep(first.mono_ns, first.busy_ns);
  loop {
    {
      let stopped = shared.stop.lock().unwrap_or_else(|e| e.into_inner());
      if *stopped {
        break;
      }
      let (stopped, _) = shared
        .wake
        .wait_timeout(stopped, Duration::from_nanos(sleep_ns))
        .unwrap_or_else(|e| e.into_inner());
      if *stopped {
        break;
      }
    }
    if !shared.loop_shared.active.load(Ordering::Acquire) {
      break;
    }
    let o = observe(uv, &shared.loop_shared, detector.stall_ends_at());
    for event in detector.observe(&o) {
      match event {
        Event::Start { busy_ns, .. } => {
          seq += 1;
          shared.stall_iteration.store(o.iteration, Ordering::Release);
          shared.stall_seq.store(seq, Ordering::Release);
          if cfg.log {
            log_line(&event_line("stall", busy_ns, &cfg, epoch_ms(), ""));
          }
          if let Some(helper) = shared
            .helper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
          {
            // Ok: requested. Closing: the helper's environment is ending (its teardown drops the
            // TSFN on its own thread, so it is left in place, not dropped here). Anything else:
            // no stack for this stall, and the kill/onStall paths go on without one.
            let status = helper.call(seq as u32, ThreadsafeFunctionCallMode::NonBlocking);
            if status != Status::Ok && cfg.log {
              log_line(&format!(
                "{{\"event\":\"stall-stack-unavailable\",\"status\":\"{status}\",\"pid\":{},\"threadId\":{}}}",
                std::process::id(),
                cfg.thread_id
              ));
            }
          }
        }
        Event::End {
          duration_ns,
          started_mono_ns,
        } => {
          let this = shared.stall_seq.swap(0, Ordering::AcqRel);
          if cfg.log {
            log_line(&event_line("stall-end", duration_ns, &cfg, epoch_ms(), ""));
          }
          let stack = take_stack(&shared, this);
          if let Some(tsfn) = on_stall.as_ref().filter(|_| !on_stall_closed) {
            let info = format!(
              "{{\"durationMs\":{},\"startedAt\":{:.3},\"stack\":{}}}",
              duration_ns as f64 / 1e6,
              mono_to_epoch(started_mono_ns),
              stack.as_deref().unwrap_or("null")
            );
            // Closing: the environment is ending; its teardown joins this thread and drops the
            // TSFN on the JS thread, so stop calling it and keep it until then.
            if tsfn.call(info, ThreadsafeFunctionCallMode::NonBlocking) == Status::Closing {
              on_stall_closed = true;
            }
          }
        }
        Event::Kill { busy_ns } => {
          let stack = take_stack(&shared, seq);
          let (action, code) = match cfg.action {
            KillAction::Abort => ("abort", String::new()),
            KillAction::Exit(c) => ("exit", format!(",\"exitCode\":{c}")),
          };
          let extra = format!(
            ",\"action\":\"{action}\"{code},\"stack\":{}",
            stack.as_deref().unwrap_or("null")
          );
          log_line(&event_line("stall-kill", busy_ns, &cfg, epoch_ms(), &extra));
          match cfg.action {
            // SAFETY: ending the process on purpose is the documented effect of killAfterMs.
            KillAction::Abort => unsafe { libc::abort() },
            KillAction::Exit(c) => unsafe { libc::_exit(c) },
          }
        }
      }
    }
    sleep_ns = detector.next_sleep(o.mono_ns, o.busy_ns);
  }
  on_stall
}

/// The stack the helper reported for stall `seq`, if any.
fn take_stack(shared: &Shared, seq: u64) -> Option<String> {
  let mut slot = shared.stack.lock().unwrap_or_else(|e| e.into_inner());
  match slot.take() {
    Some((s, stack)) if s == seq => Some(stack),
    _ => None,
  }
}

#[napi(object)]
pub struct WatchdogNativeOptions {
  pub threshold_ms: f64,
  /// 0: never.
  pub kill_after_ms: f64,
  /// "abort" or "exit".
  pub action: String,
  pub exit_code: i32,
  pub log: bool,
  pub thread_id: u32,
}

struct Running {
  shared: Arc<Shared>,
  thread: Option<JoinHandle<Option<StringTsfn>>>,
  _lease: HookLease,
}

impl Running {
  /// Wakes and joins the thread, then drops its TSFN here (on the JS thread).
  fn stop(&mut self) {
    *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
    self.shared.wake.notify_all();
    if let Some(thread) = self.thread.take() {
      let tsfn = thread.join().ok().flatten();
      drop(tsfn);
    }
  }
}

impl Drop for Running {
  // A watchdog collected without stop() (lib/stall.js keeps running ones reachable, so this is
  // the environment's teardown or a bug) still ends and joins its thread on the JS thread.
  fn drop(&mut self) {
    self.stop();
  }
}

/// Native half of `Watchdog` (lib/stall.js); not part of the public API.
#[napi]
pub struct WatchdogNative {
  id: u32,
  running: Rc<std::cell::RefCell<Option<Running>>>,
}

#[napi]
impl WatchdogNative {
  #[napi(constructor)]
  pub fn new(
    env: Env,
    options: WatchdogNativeOptions,
    on_stall: Option<Function<String, ()>>,
  ) -> Result<Self> {
    if !(options.threshold_ms >= 1.0 && options.threshold_ms.is_finite()) {
      return Err(BulwarkError::out_of_range("thresholdMs must be >= 1").into());
    }
    let action = match options.action.as_str() {
      "abort" => KillAction::Abort,
      "exit" => KillAction::Exit(options.exit_code),
      other => {
        return Err(BulwarkError::invalid_arg(format!("unknown action {other:?}")).into());
      }
    };
    let threshold_ns = (options.threshold_ms * 1e6) as u64;
    let kill_after_ns = if options.kill_after_ms > 0.0 {
      Some(((options.kill_after_ms * 1e6) as u64).max(threshold_ns))
    } else {
      None
    };
    let tsfn: Option<StringTsfn> = match on_stall {
      Some(f) => Some(
        f.build_threadsafe_function::<String>()
          .weak::<true>()
          .callee_handled::<false>()
          .build()
          .map_err(BulwarkError::from)?,
      ),
      None => None,
    };
    let lease = loop_hooks::acquire(&env, None)?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) as u32;
    let shared = Arc::new(Shared {
      stop: Mutex::new(false),
      wake: Condvar::new(),
      stall_seq: AtomicU64::new(0),
      stall_iteration: AtomicU64::new(0),
      stack: Mutex::new(None),
      helper: Mutex::new(None),
      loop_shared: lease.shared(),
    });
    let cfg = Config {
      threshold_ns,
      kill_after_ns,
      action,
      log: options.log,
      thread_id: options.thread_id,
    };
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new()
      .name("bulwark-watchdog".into())
      .spawn(move || run(thread_shared, cfg, tsfn))
      .map_err(|e| BulwarkError::new(crate::error::ErrorCode::Internal, format!("spawn: {e}")))?;
    registry()
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .insert(id, Arc::downgrade(&shared));
    let running = Rc::new(std::cell::RefCell::new(Some(Running {
      shared,
      thread: Some(thread),
      _lease: lease,
    })));
    let for_teardown = Rc::downgrade(&running);
    crate::env_state::state(&env)
      .map_err(BulwarkError::from)?
      .on_teardown(move || {
        if let Some(running) = for_teardown.upgrade() {
          stop_running(id, &running);
        }
      });
    Ok(WatchdogNative { id, running })
  }

  #[napi(getter)]
  pub fn id(&self) -> u32 {
    self.id
  }

  /// Ends the thread and releases everything. False if it was already stopped.
  #[napi]
  pub fn stop(&mut self) -> bool {
    stop_running(self.id, &self.running)
  }
}

fn stop_running(id: u32, running: &Rc<std::cell::RefCell<Option<Running>>>) -> bool {
  let taken = running.borrow_mut().take();
  match taken {
    Some(mut r) => {
      r.stop();
      registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
      // The helper's TSFN belongs to the helper worker's environment: its own teardown drops it.
      true
    }
    None => false,
  }
}

fn lookup(id: u32) -> Option<Arc<Shared>> {
  registry()
    .lock()
    .unwrap_or_else(|e| e.into_inner())
    .get(&id)
    .and_then(Weak::upgrade)
}

/// Called by the stack helper worker (in its own environment): `request(seq)` is called from the
/// watchdog thread when stall `seq` starts. False if the watchdog is gone.
#[napi]
pub fn stall_helper_attach(env: Env, id: u32, request: Function<u32, ()>) -> Result<bool> {
  let Some(shared) = lookup(id) else {
    return Ok(false);
  };
  let tsfn: SeqTsfn = request
    .build_threadsafe_function::<u32>()
    .weak::<true>()
    .callee_handled::<false>()
    .build()
    .map_err(BulwarkError::from)?;
  *shared.helper.lock().unwrap_or_else(|e| e.into_inner()) = Some(tsfn);
  let weak = Arc::downgrade(&shared);
  crate::env_state::state(&env)
    .map_err(BulwarkError::from)?
    .on_teardown(move || {
      // Dropped here, on the helper's JS thread, while its environment still exists.
      if let Some(shared) = weak.upgrade() {
        let tsfn = shared
          .helper
          .lock()
          .unwrap_or_else(|e| e.into_inner())
          .take();
        drop(tsfn);
      }
    });
  Ok(true)
}

/// Called by the stack helper with the frames (a JSON array) it read for stall `seq`. Kept only
/// if that stall is still in progress in the same loop iteration. Returns whether it was kept.
#[napi]
pub fn stall_helper_report(id: u32, seq: u32, frames_json: String) -> bool {
  let Some(shared) = lookup(id) else {
    return false;
  };
  let current = shared.stall_seq.load(Ordering::Acquire);
  let same_iteration =
    shared.loop_shared.reading().iterations == shared.stall_iteration.load(Ordering::Acquire);
  if current == 0 || current as u32 != seq || !same_iteration {
    return false;
  }
  *shared.stack.lock().unwrap_or_else(|e| e.into_inner()) = Some((current, frames_json));
  true
}
