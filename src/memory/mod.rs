//! Memory watchdog: RSS, V8 heap and container limits, sampled off the event loop, with
//! hysteresis triggers that still act when the loop is stuck.
//!
//! What: one native sampler thread per watchdog reads, every `intervalMs` (default 100 ms), the
//! process RSS (Linux: `pread` of a kept-open `/proc/self/statm`; elsewhere `sysinfo`) and the
//! container's anonymous memory (cgroup v2 `memory.stat` `anon`, v1 `memory.stat` `total_rss`),
//! and once a second the container limit (v2 `memory.max` up the tree, v1
//! `memory.limit_in_bytes` / `hierarchical_memory_limit`), the v2 `oom`/`oom_kill` counters and
//! the system total/available memory (`sysinfo`). The V8 heap can only be read on the JS thread:
//! `lib/memory.js` samples it and feeds it in with `setHeap`.
//!
//! Why off the loop: an on-loop poller (`@fastify/under-pressure`, a `setInterval` around
//! `process.memoryUsage()`) sees nothing while the allocation storm blocks the loop, which is
//! exactly when the process is about to be OOM-killed. PM2 polls from outside every 30 s.
//!
//! Guarantees:
//! - `stats()` is O(1) and makes no native call: the thread publishes every sample into a block
//!   of atomics ([`sampler::Shared`]) that JS reads through a `Float64Array` over the same
//!   memory, under a seqlock (slot 0 is odd while a sample is being written).
//! - Levels use hysteresis ([`trigger::Hysteresis`]): a level is entered after the value stays
//!   at or above its threshold for `sustainMs`, and left only below `threshold * recoverBelow`
//!   for `sustainMs`, so a value hovering around a threshold fires once.
//! - `exit` is enforced by the sampler thread: when `critical` fires it schedules the exit at
//!   `now + graceMs`; if JS has not exited by then (loop blocked, cleanup hanging) the thread
//!   calls `_exit(exitCode)`. `stop()` cancels it.
//! - The event callback is a weak thread-safe function (never keeps the process alive), released
//!   by `stop()` or by the environment's teardown (workers included); the thread is joined there.
//!
//! Limits: the effective limit is the smallest real one of the container limit and physical
//! memory; 0, "max", `UINT64_MAX` and values at or above physical memory mean "no limit".
//! `memory.current` / `usage_in_bytes` are not thresholded because they include page cache;
//! they serve as a cheap upper bound instead: `memory.stat` (what we threshold on) costs far
//! more to read (the kernel formats ~40 counters, v1 sums them over the hierarchy), so it is
//! read once a second, and on every sample only while the total usage is at or above the lowest
//! container threshold. `containerUsage` in `stats()` can therefore be up to 1 s old while the
//! container is far from its thresholds (never reported above the current total).
//!
//! Design choice: hysteresis and the leak trend live here rather than in JS so that one
//! implementation, unit-tested without Node, decides for every metric, and so that the
//! `critical` decision (and the exit it may carry) happens on the sampler thread. Measured here:
//! `pread` of `statm` 0.42 µs, `sysinfo` refresh of one process 16–18 µs, `cgroup_limits()`
//! 18–20 µs, `process.memoryUsage()` 4 µs on the loop.

mod cgroup;
mod sampler;
mod trigger;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{Float64ArraySlice, Function, JsValue, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use crate::env_state;
use crate::error::{BulwarkError, Result};
use sampler::{slot, Config, Control, ExitSpec, Shared};
use trigger::{LeakDetector, LeakSpec, LevelSpec, Threshold};

/// Limits of one metric, as `lib/memory.js` normalizes them.
#[napi(object)]
pub struct MemoryLevelOptions {
  /// Warn threshold in bytes (exclusive with `warnRatio`).
  pub warn_bytes: Option<f64>,
  /// Warn threshold as a fraction of the metric's base limit.
  pub warn_ratio: Option<f64>,
  pub critical_bytes: Option<f64>,
  pub critical_ratio: Option<f64>,
  /// Exit threshold = enter threshold × this (0 < r ≤ 1).
  pub recover_below: f64,
  /// How long a crossing must hold, ms.
  pub sustain_ms: f64,
}

#[napi(object)]
pub struct MemorySamplerOptions {
  pub interval_ms: f64,
  pub rss: Option<MemoryLevelOptions>,
  pub heap_used: Option<MemoryLevelOptions>,
  pub container: Option<MemoryLevelOptions>,
  /// Set when `action` includes `exit`: the grace period before the thread ends the process.
  pub exit_grace_ms: Option<f64>,
  pub exit_code: i32,
  /// Leak trend window, ms; no leak detection when absent.
  pub leak_window_ms: Option<f64>,
  pub leak_min_samples: u32,
  /// Minimum slope, bytes per minute.
  pub leak_min_slope: f64,
}

/// A level change, delivered to the JS callback.
#[napi(object)]
pub struct MemoryTransition {
  /// "warn" | "critical" | "recover"
  pub kind: String,
  /// "rss" | "heapUsed" | "container"
  pub metric: String,
  pub value: f64,
  /// The threshold crossed (enter threshold for warn/critical, exit threshold for recover).
  pub limit: f64,
  /// Level before and after: "ok" | "warn" | "critical".
  pub from: String,
  pub to: String,
  /// Wall-clock time of the decision, ms since the epoch.
  pub at_ms: f64,
  /// When `exit` was triggered: the wall-clock time at which the thread ends the process.
  pub exit_at_ms: Option<f64>,
}

/// A leak trend found by `recordPostGc`.
#[napi(object)]
pub struct MemoryLeak {
  /// Bytes per minute.
  pub slope: f64,
  pub samples: u32,
  pub span_ms: f64,
  pub floor_start: f64,
  pub floor_end: f64,
}

type EventFn = ThreadsafeFunction<MemoryTransition, (), MemoryTransition, Status, false, true>;

struct Running {
  control: Arc<Control>,
  thread: Mutex<Option<JoinHandle<()>>>,
}

impl Running {
  /// Stops and joins the thread; the thread drops (releases) the thread-safe function as it
  /// ends. Never blocks long: the thread only waits on `control`, and its calls never block.
  fn stop(&self) {
    self.control.stop();
    let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(thread) = thread {
      let _ = thread.join();
    }
  }
}

/// The native half of `MemoryWatchdog` (see lib/memory.js). Not part of the public API.
#[napi]
pub struct MemorySampler {
  running: Arc<Running>,
  shared: Arc<Shared>,
  leak: Option<LeakDetector>,
  view_taken: bool,
}

fn level_spec(o: &Option<MemoryLevelOptions>) -> Option<LevelSpec> {
  let o = o.as_ref()?;
  let threshold = |bytes: Option<f64>, ratio: Option<f64>| {
    bytes.map(Threshold::Bytes).or(ratio.map(Threshold::Ratio))
  };
  let spec = LevelSpec {
    warn: threshold(o.warn_bytes, o.warn_ratio),
    critical: threshold(o.critical_bytes, o.critical_ratio),
    recover_below: o.recover_below,
    sustain_ms: o.sustain_ms,
  };
  (spec.warn.is_some() || spec.critical.is_some()).then_some(spec)
}

fn convert(e: sampler::Event) -> MemoryTransition {
  MemoryTransition {
    kind: e.kind.to_string(),
    metric: e.metric.as_str().to_string(),
    value: e.value,
    limit: e.limit,
    from: e.from.as_str().to_string(),
    to: e.to.as_str().to_string(),
    at_ms: e.at_ms,
    exit_at_ms: e.exit_at_ms,
  }
}

#[napi]
impl MemorySampler {
  #[napi(constructor, catch_unwind)]
  pub fn new(
    env: Env,
    options: MemorySamplerOptions,
    on_event: Function<'_, MemoryTransition, ()>,
  ) -> Result<Self> {
    if options.interval_ms.is_nan() || options.interval_ms < 1.0 {
      return Err(BulwarkError::out_of_range("intervalMs must be >= 1").into());
    }
    let tsfn: EventFn = on_event
      .build_threadsafe_function()
      .weak::<true>()
      .callee_handled::<false>()
      .build_callback(|ctx| Ok(ctx.value))
      .map_err(BulwarkError::from)?;
    let config = Config {
      interval: Duration::from_secs_f64(options.interval_ms / 1000.0),
      specs: [
        level_spec(&options.rss),
        level_spec(&options.heap_used),
        level_spec(&options.container),
      ],
      exit: options.exit_grace_ms.map(|g| ExitSpec {
        grace: Duration::from_secs_f64(g.max(0.0) / 1000.0),
        code: options.exit_code,
      }),
    };
    let leak = options.leak_window_ms.map(|w| {
      LeakDetector::new(LeakSpec {
        window_ms: w,
        min_samples: options.leak_min_samples as usize,
        min_slope_per_min: options.leak_min_slope,
      })
    });
    let shared = Arc::new(Shared::new());
    let control = Arc::new(Control::default());
    let (s, c) = (shared.clone(), control.clone());
    let thread = std::thread::Builder::new()
      .name("bulwark-memory".into())
      .spawn(move || {
        let mut open = true;
        sampler::run(config, s, c, |event| {
          if open {
            // Closing: the environment is going away; stop delivering.
            let status = tsfn.call(convert(event), ThreadsafeFunctionCallMode::NonBlocking);
            open = status != Status::Closing;
          }
        });
        drop(tsfn);
      })
      .map_err(|e| BulwarkError::new(crate::error::ErrorCode::Internal, e.to_string()))?;
    let running = Arc::new(Running {
      control,
      thread: Mutex::new(Some(thread)),
    });
    let weak: Weak<Running> = Arc::downgrade(&running);
    env_state::state(&env)
      .map_err(BulwarkError::from)?
      .on_teardown(move || {
        if let Some(running) = weak.upgrade() {
          running.stop();
        }
      });
    Ok(MemorySampler {
      running,
      shared,
      leak,
      view_taken: false,
    })
  }

  /// The published state as a `Float64Array` over the sampler's memory (one per sampler; the
  /// memory lives as long as the array or the sampler). Slot names: `memorySlotNames()`.
  #[napi(catch_unwind)]
  pub fn view<'env>(&mut self, env: &'env Env) -> Result<Unknown<'env>> {
    if self.view_taken {
      return Err(
        BulwarkError::new(crate::error::ErrorCode::Internal, "view() called twice").into(),
      );
    }
    let keep = self.shared.clone();
    let ptr = self.shared.as_mut_ptr();
    // SAFETY: `ptr` points at `slot::COUNT` f64-sized atomics owned by `keep`, which the
    // finalizer drops only when the JS array is collected. One view per sampler (`view_taken`).
    let array = unsafe {
      Float64ArraySlice::from_external(env, ptr, slot::COUNT, keep, |_, keep| drop(keep))
    }
    .map_err(BulwarkError::from)?;
    self.view_taken = true;
    Ok(array.to_unknown())
  }

  /// Feeds the latest V8 heap figures (bytes) sampled on the JS thread.
  #[napi]
  pub fn set_heap(&self, used: f64, total: f64, limit: f64, external: f64, at_ms: f64) {
    self.shared.set(slot::HEAP_TOTAL, total);
    self.shared.set(slot::HEAP_LIMIT, limit);
    self.shared.set(slot::EXTERNAL, external);
    self.shared.set(slot::HEAP_SAMPLED_AT_MS, at_ms);
    self.shared.set(slot::HEAP_USED, used);
  }

  /// Feeds a post-GC `heapUsed`; returns the leak trend when one is found.
  #[napi]
  pub fn record_post_gc(&mut self, used: f64, at_ms: f64) -> Option<MemoryLeak> {
    let leak = self.leak.as_mut()?.record(at_ms, used)?;
    Some(MemoryLeak {
      slope: leak.slope_per_min,
      samples: leak.samples as u32,
      span_ms: leak.span_ms,
      floor_start: leak.floor_start,
      floor_end: leak.floor_end,
    })
  }

  /// Stops the thread (cancelling a pending exit) and releases the callback. Idempotent.
  #[napi]
  pub fn stop(&self) {
    self.running.stop();
  }
}

impl Drop for MemorySampler {
  fn drop(&mut self) {
    self.running.stop();
  }
}

/// Names of the slots of `MemorySampler#view()`, by index.
#[napi]
pub fn memory_slot_names() -> Vec<String> {
  sampler::SLOT_NAMES.iter().map(|s| s.to_string()).collect()
}

static HEAP_SNAPSHOT_CLAIMED: AtomicBool = AtomicBool::new(false);

/// True exactly once per process (across workers and addon instances): the caller may write
/// the one heap snapshot.
#[napi]
pub fn claim_heap_snapshot() -> bool {
  !HEAP_SNAPSHOT_CLAIMED.swap(true, Ordering::SeqCst)
}

/// Memory left for this process right now, in bytes, read fresh (not the last sample, whose
/// container figure may be up to a second old below the thresholds): the smaller of the system's
/// available memory and the container's limit minus its anonymous memory. `None` when neither
/// is known. Used once, before a heap snapshot, so its cost (~0.1 ms: opens the files) is fine.
#[napi(catch_unwind)]
pub fn memory_headroom() -> Option<f64> {
  let mut probe = sampler::Probe::open(std::path::Path::new("/"));
  let system = (probe.total > 0).then_some(probe.available as f64);
  let container = match (probe.container_limit(), probe.container_usage()) {
    (Some(limit), Some(used)) => Some(limit.saturating_sub(used) as f64),
    _ => None,
  };
  match (system, container) {
    (Some(a), Some(b)) => Some(a.min(b)),
    (a, b) => a.or(b),
  }
}

/// Benchmark hook: mean cost in ns of one `kind` operation over `iterations`, measured inside
/// Rust so the napi call does not count. Kinds: "sample" (RSS + cgroup total, published: the
/// usual sample when container thresholds apply), "sample-no-container-threshold" (RSS alone,
/// published: no container threshold set, or the host has no container limit), "sample-exact"
/// (RSS + cgroup `memory.stat`, published: a sample near the container thresholds, and once a
/// second), "rss", "syscall" (a bare `getppid`: the floor of any kernel read), "sysinfo-process",
/// "sysinfo-memory", "sysinfo-cgroup". Not part of the public JS API.
#[napi(js_name = "__memoryBench", catch_unwind)]
pub fn memory_bench(kind: String, iterations: u32) -> Result<f64> {
  let n = iterations.max(1);
  let time = |f: &mut dyn FnMut()| {
    f();
    let start = Instant::now();
    for _ in 0..n {
      f();
    }
    start.elapsed().as_nanos() as f64 / n as f64
  };
  let unavailable = || BulwarkError::invalid_arg(format!("{kind}: not available here"));
  match kind.as_str() {
    "sample" | "sample-exact" | "sample-no-container-threshold" => {
      let exact = kind == "sample-exact";
      // A threshold far above usage: the total is read every sample and memory.stat is not.
      let floor = match kind.as_str() {
        "sample-no-container-threshold" => f64::INFINITY,
        _ => f64::MAX,
      };
      let mut probe = sampler::Probe::open(std::path::Path::new("/"));
      let shared = Shared::new();
      sampler::sample(&mut probe, &shared, 0.0, floor, true);
      let mut i = 0.0;
      Ok(time(&mut || {
        i += 1.0;
        std::hint::black_box(sampler::sample(&mut probe, &shared, i, floor, exact));
      }))
    }
    "syscall" => Ok(time(&mut || {
      // SAFETY: getppid has no preconditions and cannot fail.
      std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    })),
    "rss" => {
      let mut probe = sampler::Probe::open(std::path::Path::new("/"));
      Ok(time(&mut || {
        std::hint::black_box(probe.rss());
      }))
    }
    "sysinfo-process" | "sysinfo-memory" | "sysinfo-cgroup" => {
      use sysinfo::{MemoryRefreshKind, ProcessRefreshKind, ProcessesToUpdate, System};
      let mut system = System::new().map_err(|_| unavailable())?;
      let pid = sysinfo::get_current_pid().map_err(|_| unavailable())?;
      Ok(match kind.as_str() {
        "sysinfo-process" => time(&mut || {
          system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
          );
          std::hint::black_box(system.process(pid).map(|p| p.memory()));
        }),
        "sysinfo-memory" => time(&mut || {
          system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
          std::hint::black_box(system.available_memory());
        }),
        _ => time(&mut || {
          std::hint::black_box(system.cgroup_limits().map(|c| c.rss));
        }),
      })
    }
    _ => Err(BulwarkError::invalid_arg(format!("unknown benchmark kind {kind:?}")).into()),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn heap_snapshot_is_claimed_once() {
    let first = claim_heap_snapshot();
    assert!(!claim_heap_snapshot());
    assert!(first);
  }

  #[test]
  fn level_options_without_thresholds_are_off() {
    let none = MemoryLevelOptions {
      warn_bytes: None,
      warn_ratio: None,
      critical_bytes: None,
      critical_ratio: None,
      recover_below: 0.9,
      sustain_ms: 0.0,
    };
    assert_eq!(level_spec(&Some(none)), None);
    let some = MemoryLevelOptions {
      warn_bytes: None,
      warn_ratio: Some(0.8),
      critical_bytes: Some(10.0),
      critical_ratio: Some(0.9),
      recover_below: 0.9,
      sustain_ms: 5.0,
    };
    let spec = level_spec(&Some(some)).unwrap();
    assert_eq!(spec.warn, Some(Threshold::Ratio(0.8)));
    assert_eq!(spec.critical, Some(Threshold::Bytes(10.0)));
  }

  #[test]
  fn bench_kinds_run() {
    for kind in ["sample", "sample-exact", "rss", "sysinfo-memory"] {
      let ns = memory_bench(kind.into(), 10).unwrap();
      assert!(ns > 0.0, "{kind}");
    }
    assert!(memory_bench("nope".into(), 1).is_err());
  }
}
