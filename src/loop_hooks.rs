//! One libuv `prepare` hook per event loop, shared by everything that watches the loop: the
//! event-loop delay histograms (`src/loop_delay`), the stall watchdog (`src/stall`) and the
//! pressure readings a load gate uses ([`LoopShared::pressure`]).
//!
//! # What the hook measures
//! libuv calls `prepare` callbacks right before it polls for I/O, once per loop iteration. The
//! time between two consecutive prepare calls is one iteration; it contains the idle wait in
//! `epoll_wait` *and* the callbacks that ran after it (I/O callbacks run inside the poll phase,
//! then `setImmediate`, close callbacks, timers). Node enables libuv's idle-time metric on every
//! loop (it backs `performance.eventLoopUtilization()`), so the hook subtracts the idle-time delta
//! and records what is left: how long the loop was busy before it could poll again. Every block
//! is therefore counted once, with its true length, and an idle loop records nothing at all (no
//! timer wakes it up, unlike `perf_hooks.monitorEventLoopDelay`).
//!
//! # Why no `check` hook and no probe thread
//! A `prepare → check` interval mixes idle waiting with callback work (the reason Node's own
//! precise mode, PRs #32018/#32102, was abandoned); with the idle-time delta a single prepare hook
//! is exact, and it halves the per-iteration cost. A probe thread that pings the loop would
//! measure scheduling delay, not blocking time, and would wake an idle process.
//!
//! # Watching from another thread
//! `uv_metrics_idle_time` takes the loop's metrics mutex and adds the idle wait in progress, so
//! it is safe to call from another thread (Node itself does so for
//! `worker.performance.eventLoopUtilization()`). With the prepare hook's last timestamp and idle
//! reading published in atomics (a seqlock), any thread can compute "busy right now for X ns"
//! without waking the loop: `now − last_prepare − (idle_now − idle_at_last_prepare)`.
//! That is what the stall watchdog polls and what [`LoopShared::pressure`] reports.
//!
//! # Lifetime
//! Hooks exist only while someone holds a [`HookLease`]. The handle is unref'd (it never keeps the
//! process alive), closed with `uv_close` when the last lease goes, and freed in the close
//! callback. If the environment ends first, an async napi cleanup hook closes it and tells Node
//! when the close has completed (a worker's loop must have no open handles when it is closed).
//!
//! libuv functions are resolved at run time from the host process with `dlsym` (the node binary
//! exports them), so unit tests link without Node, like napi's own `dyn-symbols`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hdrhistogram::Histogram;
use napi::{sys, Env};

use crate::error::{BulwarkError, ErrorCode};

/// Length of the rolling window behind [`LoopShared::pressure`].
pub const PRESSURE_WINDOW_NS: u64 = 1_000_000_000;

// uv_handle_type values (uv.h, UV_HANDLE_TYPE_MAP): stable across libuv 1.x.
const UV_PREPARE: i32 = 9;

type PrepareCb = unsafe extern "C" fn(*mut c_void);
type CloseCb = unsafe extern "C" fn(*mut c_void);

/// The libuv functions bulwark calls, looked up once in the host process.
pub struct Uv {
  prepare_init: unsafe extern "C" fn(*mut c_void, *mut c_void) -> i32,
  prepare_start: unsafe extern "C" fn(*mut c_void, PrepareCb) -> i32,
  prepare_stop: unsafe extern "C" fn(*mut c_void) -> i32,
  close: unsafe extern "C" fn(*mut c_void, CloseCb),
  unref: unsafe extern "C" fn(*mut c_void),
  handle_size: unsafe extern "C" fn(i32) -> usize,
  hrtime: unsafe extern "C" fn() -> u64,
  metrics_idle_time: unsafe extern "C" fn(*mut c_void) -> u64,
}

fn lookup<T: Copy>(name: &str) -> Result<T, BulwarkError> {
  let cname = std::ffi::CString::new(name).expect("symbol names have no NUL");
  // SAFETY: dlsym with RTLD_DEFAULT searches the already loaded objects; the pointer is only
  // transmuted to the function type declared in uv.h for that name.
  let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr()) };
  if ptr.is_null() {
    return Err(BulwarkError::new(
      ErrorCode::Internal,
      format!("libuv symbol {name} not found in the host process"),
    ));
  }
  debug_assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
  Ok(unsafe { std::mem::transmute_copy(&ptr) })
}

/// The libuv API of the host process (fails outside Node).
pub fn uv() -> Result<&'static Uv, BulwarkError> {
  static UV: OnceLock<Result<Uv, BulwarkError>> = OnceLock::new();
  UV.get_or_init(|| {
    Ok(Uv {
      prepare_init: lookup("uv_prepare_init")?,
      prepare_start: lookup("uv_prepare_start")?,
      prepare_stop: lookup("uv_prepare_stop")?,
      close: lookup("uv_close")?,
      unref: lookup("uv_unref")?,
      handle_size: lookup("uv_handle_size")?,
      hrtime: lookup("uv_hrtime")?,
      metrics_idle_time: lookup("uv_metrics_idle_time")?,
    })
  })
  .as_ref()
  .map_err(Clone::clone)
}

impl Uv {
  /// libuv's monotonic clock (CLOCK_MONOTONIC), in nanoseconds.
  pub fn hrtime(&self) -> u64 {
    unsafe { (self.hrtime)() }
  }
}

/// What the hook publishes for other threads. All fields are atomics; `seq` makes the group of
/// per-iteration fields a seqlock (odd while the loop thread writes).
pub struct LoopShared {
  loop_ptr: usize,
  seq: AtomicU64,
  iterations: AtomicU64,
  hook_ns: AtomicU64,
  hook_idle_ns: AtomicU64,
  last_busy_ns: AtomicU64,
  // Rolling window, published when a window completes.
  win_end_ns: AtomicU64,
  win_max_ns: AtomicU64,
  win_p99_ns: AtomicU64,
  win_elu_ppm: AtomicU64,
  win_count: AtomicU64,
  /// False once the hook is closed: readings stop moving.
  pub active: AtomicBool,
}

/// One consistent reading of the hook's per-iteration fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookReading {
  /// Prepare calls since the hook started.
  pub iterations: u64,
  /// `uv_hrtime` at the last prepare call.
  pub hook_ns: u64,
  /// `uv_metrics_idle_time` at the last prepare call.
  pub hook_idle_ns: u64,
  /// Busy time of the iteration that ended at the last prepare call.
  pub last_busy_ns: u64,
}

/// The loop's pressure, read in O(1) from atomics (see [`LoopShared::pressure`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopPressure {
  /// How long the iteration in progress has been busy (0 while the loop waits for I/O).
  pub blocked_ns: u64,
  /// Longest iteration in the last completed window.
  pub window_max_ns: u64,
  /// 99th percentile of iteration busy time in the last completed window.
  pub window_p99_ns: u64,
  /// Event-loop utilisation (busy / wall, 0..1) of the last completed window.
  pub window_utilization: f64,
  /// Iterations in the last completed window.
  pub window_iterations: u64,
  /// Nanoseconds since that window ended. A window older than 2 × the window length means the
  /// loop has been idle (no iteration completed) or is blocked (see `blocked_ns`).
  pub window_age_ns: u64,
  /// Loop iterations seen since the hook started.
  pub iterations: u64,
}

impl LoopShared {
  fn new(loop_ptr: usize, now: u64, idle: u64) -> Self {
    LoopShared {
      loop_ptr,
      seq: AtomicU64::new(0),
      iterations: AtomicU64::new(0),
      hook_ns: AtomicU64::new(now),
      hook_idle_ns: AtomicU64::new(idle),
      last_busy_ns: AtomicU64::new(0),
      win_end_ns: AtomicU64::new(now),
      win_max_ns: AtomicU64::new(0),
      win_p99_ns: AtomicU64::new(0),
      win_elu_ppm: AtomicU64::new(0),
      win_count: AtomicU64::new(0),
      active: AtomicBool::new(true),
    }
  }

  fn publish(&self, reading: HookReading) {
    self.seq.fetch_add(1, Ordering::AcqRel);
    self.iterations.store(reading.iterations, Ordering::Relaxed);
    self.hook_ns.store(reading.hook_ns, Ordering::Relaxed);
    self
      .hook_idle_ns
      .store(reading.hook_idle_ns, Ordering::Relaxed);
    self
      .last_busy_ns
      .store(reading.last_busy_ns, Ordering::Relaxed);
    self.seq.fetch_add(1, Ordering::AcqRel);
  }

  /// A consistent copy of the per-iteration fields (any thread).
  pub fn reading(&self) -> HookReading {
    loop {
      let before = self.seq.load(Ordering::Acquire);
      if before % 2 == 1 {
        std::hint::spin_loop();
        continue;
      }
      let reading = HookReading {
        iterations: self.iterations.load(Ordering::Relaxed),
        hook_ns: self.hook_ns.load(Ordering::Relaxed),
        hook_idle_ns: self.hook_idle_ns.load(Ordering::Relaxed),
        last_busy_ns: self.last_busy_ns.load(Ordering::Relaxed),
      };
      if self.seq.load(Ordering::Acquire) == before {
        return reading;
      }
    }
  }

  /// The loop's idle time so far (includes an idle wait in progress). Any thread, as long as the
  /// loop exists: callers stop before the environment's teardown completes.
  pub fn idle_now(&self, uv: &Uv) -> u64 {
    unsafe { (uv.metrics_idle_time)(self.loop_ptr as *mut c_void) }
  }

  /// How long the current iteration has been busy at `now`, with the reading it is based on.
  pub fn busy_now(&self, uv: &Uv, now: u64) -> (u64, HookReading) {
    let reading = self.reading();
    let idle = self.idle_now(uv);
    (
      busy_between(reading.hook_ns, reading.hook_idle_ns, now, idle),
      reading,
    )
  }

  /// The loop's pressure in O(1): no sampling on the loop, safe from any thread.
  pub fn pressure(&self, uv: &Uv) -> LoopPressure {
    let now = uv.hrtime();
    let (blocked_ns, reading) = if self.active.load(Ordering::Acquire) {
      self.busy_now(uv, now)
    } else {
      (0, self.reading())
    };
    let win_end = self.win_end_ns.load(Ordering::Acquire);
    LoopPressure {
      blocked_ns,
      window_max_ns: self.win_max_ns.load(Ordering::Relaxed),
      window_p99_ns: self.win_p99_ns.load(Ordering::Relaxed),
      window_utilization: self.win_elu_ppm.load(Ordering::Relaxed) as f64 / 1e6,
      window_iterations: self.win_count.load(Ordering::Relaxed),
      window_age_ns: now.saturating_sub(win_end),
      iterations: reading.iterations,
    }
  }
}

/// The loop's idle time so far (`uv_metrics_idle_time`): thread-safe while the loop exists.
pub fn idle_time(uv: &Uv, loop_ptr: usize) -> u64 {
  unsafe { (uv.metrics_idle_time)(loop_ptr as *mut c_void) }
}

/// Busy time between a hook reading and a later point: wall time minus idle time.
pub fn busy_between(t0: u64, idle0: u64, t1: u64, idle1: u64) -> u64 {
  t1.saturating_sub(t0)
    .saturating_sub(idle1.saturating_sub(idle0))
}

/// One completed loop iteration, as given to subscribers.
#[derive(Debug, Clone, Copy)]
pub struct Iteration {
  /// Busy time of the iteration (ns).
  pub busy_ns: u64,
  /// `uv_hrtime` at its end.
  pub now_ns: u64,
  /// The loop's idle time at its end.
  pub idle_ns: u64,
}

type Subscriber = Rc<dyn Fn(&Iteration)>;

/// The rolling window behind [`LoopPressure`]: a small histogram (2 significant figures).
struct Window {
  hist: Histogram<u64>,
  start_ns: u64,
  start_idle_ns: u64,
}

impl Window {
  fn new(now: u64, idle: u64) -> Self {
    Window {
      hist: Histogram::new_with_bounds(1_000, 3_600_000_000_000, 2).expect("valid bounds"),
      start_ns: now,
      start_idle_ns: idle,
    }
  }

  /// Records one iteration; returns the finished window's figures when it completes.
  fn record(&mut self, it: &Iteration) -> Option<(u64, u64, u64, u64)> {
    self.hist.saturating_record(it.busy_ns.max(1_000));
    let wall = it.now_ns.saturating_sub(self.start_ns);
    if wall < PRESSURE_WINDOW_NS {
      return None;
    }
    let busy = busy_between(self.start_ns, self.start_idle_ns, it.now_ns, it.idle_ns);
    let elu_ppm = (busy.min(wall) as u128 * 1_000_000 / wall.max(1) as u128) as u64;
    let out = (
      self.hist.max(),
      self.hist.value_at_quantile(0.99),
      elu_ppm,
      self.hist.len(),
    );
    self.hist.reset();
    self.start_ns = it.now_ns;
    self.start_idle_ns = it.idle_ns;
    Some(out)
  }
}

/// The hook of one loop. Lives on the loop's thread; the uv handle's `data` points at it.
struct LoopHooks {
  handle: *mut c_void,
  shared: Arc<LoopShared>,
  subscribers: RefCell<Vec<(u64, Subscriber)>>,
  next_id: Cell<u64>,
  leases: Cell<usize>,
  closed: Cell<bool>,
  window: RefCell<Window>,
  cleanup_hook: Cell<sys::napi_async_cleanup_hook_handle>,
}

thread_local! {
  // Keyed by the uv_loop_t address: two instances of the addon on one thread (after a module
  // cache reset) share one loop and one hook.
  static HOOKS: RefCell<HashMap<usize, Rc<LoopHooks>>> = RefCell::new(HashMap::new());
}

/// Keeps the loop's hook running; optionally subscribes to every iteration. Dropping it
/// unsubscribes and closes the hook when it was the last lease. JS thread only (not `Send`).
pub struct HookLease {
  hooks: Rc<LoopHooks>,
  sub: Option<u64>,
}

impl HookLease {
  /// Published state, for other threads.
  pub fn shared(&self) -> Arc<LoopShared> {
    self.hooks.shared.clone()
  }

  /// False once the environment's teardown closed the hook.
  pub fn is_active(&self) -> bool {
    !self.hooks.closed.get()
  }
}

impl Drop for HookLease {
  fn drop(&mut self) {
    if let Some(id) = self.sub {
      self
        .hooks
        .subscribers
        .borrow_mut()
        .retain(|(i, _)| *i != id);
    }
    let left = self.hooks.leases.get().saturating_sub(1);
    self.hooks.leases.set(left);
    if left == 0 {
      close_hooks(&self.hooks);
    }
  }
}

/// Starts (or joins) the prepare hook of `env`'s loop. `subscriber` is called on the loop
/// thread after every iteration, with its busy time.
pub fn acquire(env: &Env, subscriber: Option<Subscriber>) -> Result<HookLease, BulwarkError> {
  let uv = uv()?;
  let loop_ptr = env.get_uv_event_loop()? as usize;
  let existing = HOOKS.with(|h| h.borrow().get(&loop_ptr).cloned());
  let hooks = match existing {
    Some(h) => h,
    None => start_hooks(env, uv, loop_ptr)?,
  };
  hooks.leases.set(hooks.leases.get() + 1);
  let sub = subscriber.map(|s| {
    let id = hooks.next_id.get();
    hooks.next_id.set(id + 1);
    hooks.subscribers.borrow_mut().push((id, s));
    id
  });
  Ok(HookLease { hooks, sub })
}

fn start_hooks(env: &Env, uv: &'static Uv, loop_ptr: usize) -> Result<Rc<LoopHooks>, BulwarkError> {
  let size = unsafe { (uv.handle_size)(UV_PREPARE) };
  // u64 words: libuv handles need pointer alignment.
  let words = size.div_ceil(8).max(1);
  let handle = Box::into_raw(vec![0u64; words].into_boxed_slice()) as *mut c_void;
  let now = uv.hrtime();
  let idle = unsafe { (uv.metrics_idle_time)(loop_ptr as *mut c_void) };
  let hooks = Rc::new(LoopHooks {
    handle,
    shared: Arc::new(LoopShared::new(loop_ptr, now, idle)),
    subscribers: RefCell::new(Vec::new()),
    next_id: Cell::new(1),
    leases: Cell::new(0),
    closed: Cell::new(false),
    window: RefCell::new(Window::new(now, idle)),
    cleanup_hook: Cell::new(std::ptr::null_mut()),
  });
  let rc = unsafe { (uv.prepare_init)(loop_ptr as *mut c_void, handle) };
  if rc != 0 {
    unsafe { free_handle(handle, words) };
    return Err(BulwarkError::new(
      ErrorCode::Internal,
      format!("uv_prepare_init failed ({rc})"),
    ));
  }
  // uv_handle_t starts with `void* data`; it points at the hooks until the close callback.
  unsafe { *(handle as *mut *const LoopHooks) = Rc::into_raw(hooks.clone()) };
  unsafe {
    (uv.unref)(handle);
    (uv.prepare_start)(handle, on_prepare);
  }
  let mut cleanup: sys::napi_async_cleanup_hook_handle = std::ptr::null_mut();
  let status = unsafe {
    sys::napi_add_async_cleanup_hook(
      env.raw(),
      Some(on_env_cleanup),
      Rc::as_ptr(&hooks) as *mut c_void,
      &mut cleanup,
    )
  };
  if status != sys::Status::napi_ok {
    close_hooks(&hooks);
    return Err(BulwarkError::new(
      ErrorCode::Internal,
      format!("napi_add_async_cleanup_hook failed ({status})"),
    ));
  }
  hooks.cleanup_hook.set(cleanup);
  HOOKS.with(|h| h.borrow_mut().insert(loop_ptr, hooks.clone()));
  Ok(hooks)
}

unsafe fn free_handle(handle: *mut c_void, words: usize) {
  drop(unsafe {
    Box::from_raw(std::ptr::slice_from_raw_parts_mut(
      handle as *mut u64,
      words,
    ))
  });
}

unsafe extern "C" fn on_prepare(handle: *mut c_void) {
  let hooks = unsafe { &**(handle as *const *const LoopHooks) };
  let Ok(uv) = uv() else { return };
  let now = uv.hrtime();
  let idle = hooks.shared.idle_now(uv);
  let prev = hooks.shared.reading();
  let busy = busy_between(prev.hook_ns, prev.hook_idle_ns, now, idle);
  hooks.shared.publish(HookReading {
    iterations: prev.iterations + 1,
    hook_ns: now,
    hook_idle_ns: idle,
    last_busy_ns: busy,
  });
  let it = Iteration {
    busy_ns: busy,
    now_ns: now,
    idle_ns: idle,
  };
  if let Some((max, p99, elu, count)) = hooks.window.borrow_mut().record(&it) {
    let s = &hooks.shared;
    s.win_max_ns.store(max, Ordering::Relaxed);
    s.win_p99_ns.store(p99, Ordering::Relaxed);
    s.win_elu_ppm.store(elu, Ordering::Relaxed);
    s.win_count.store(count, Ordering::Relaxed);
    s.win_end_ns.store(now, Ordering::Release);
  }
  // Subscribers only record into histograms (no JS), so they cannot re-enter this list.
  for (_, sub) in hooks.subscribers.borrow().iter() {
    sub(&it);
  }
}

/// Stops and closes the handle (once). The close callback frees it and removes the async cleanup
/// hook, which also tells Node the close is complete when the environment is ending (Node keeps
/// running the loop until then).
fn close_hooks(hooks: &Rc<LoopHooks>) {
  if hooks.closed.replace(true) {
    return;
  }
  hooks.shared.active.store(false, Ordering::Release);
  HOOKS.with(|h| {
    let mut map = h.borrow_mut();
    if map
      .get(&hooks.shared.loop_ptr)
      .is_some_and(|x| Rc::ptr_eq(x, hooks))
    {
      map.remove(&hooks.shared.loop_ptr);
    }
  });
  let Ok(uv) = uv() else { return };
  unsafe {
    (uv.prepare_stop)(hooks.handle);
    (uv.close)(hooks.handle, on_close);
  }
}

unsafe extern "C" fn on_close(handle: *mut c_void) {
  let hooks = unsafe { Rc::from_raw(*(handle as *const *const LoopHooks)) };
  let cleanup = hooks.cleanup_hook.replace(std::ptr::null_mut());
  let words = uv()
    .map(|uv| unsafe { (uv.handle_size)(UV_PREPARE) }.div_ceil(8).max(1))
    .unwrap_or(1);
  unsafe { free_handle(handle, words) };
  drop(hooks);
  if !cleanup.is_null() {
    unsafe { sys::napi_remove_async_cleanup_hook(cleanup) };
  }
}

unsafe extern "C" fn on_env_cleanup(
  _handle: sys::napi_async_cleanup_hook_handle,
  data: *mut c_void,
) {
  let ptr = data as *const LoopHooks;
  // The handle still owns one strong count (its `data`), so the hooks are alive here.
  unsafe { Rc::increment_strong_count(ptr) };
  let hooks = unsafe { Rc::from_raw(ptr) };
  close_hooks(&hooks);
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn busy_is_wall_minus_idle_and_never_negative() {
    assert_eq!(busy_between(100, 10, 200, 40), 70);
    assert_eq!(busy_between(100, 10, 200, 500), 0);
    assert_eq!(busy_between(200, 10, 100, 10), 0);
  }

  #[test]
  fn seqlock_reading_round_trips() {
    let s = LoopShared::new(0, 5, 1);
    let r = HookReading {
      iterations: 3,
      hook_ns: 10,
      hook_idle_ns: 4,
      last_busy_ns: 2,
    };
    s.publish(r);
    assert_eq!(s.reading(), r);
  }

  #[test]
  fn window_reports_max_p99_and_utilisation_once_complete() {
    let mut w = Window::new(0, 0);
    // 100 iterations of 1 ms busy in 0.5 s: window not complete yet.
    let mut idle = 0;
    let mut now = 0;
    for _ in 0..100 {
      now += 5_000_000;
      idle += 4_000_000;
      assert!(w
        .record(&Iteration {
          busy_ns: 1_000_000,
          now_ns: now,
          idle_ns: idle
        })
        .is_none());
    }
    // One 500 ms block completes the window.
    now += 500_000_000;
    let (max, p99, elu, count) = w
      .record(&Iteration {
        busy_ns: 500_000_000,
        now_ns: now,
        idle_ns: idle,
      })
      .expect("window complete");
    assert_eq!(count, 101);
    assert!((max as f64 - 5e8).abs() / 5e8 < 0.01, "{max}");
    assert!((p99 as f64 - 1e6).abs() / 1e6 < 0.01, "{p99}");
    // busy = 100 ms + 500 ms over 1 s wall.
    assert_eq!(elu, 600_000);
  }
}
