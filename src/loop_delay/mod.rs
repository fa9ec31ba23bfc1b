//! Event-loop delay as a histogram of per-iteration blocking time, in nanoseconds.
//!
//! What: every loop iteration's busy time (wall time between two libuv `prepare` calls minus the
//! loop's idle-time delta, see `src/loop_hooks.rs`) is recorded into an HdrHistogram. A block is
//! counted exactly once with its true length; an idle loop records nothing and is never woken.
//!
//! Why not a timer like `perf_hooks.monitorEventLoopDelay`: a timer of resolution R records whole
//! tick intervals (an idle loop reads ≈ R), misses most blocks shorter than R and costs a wake-up
//! every R ms. Measured on this machine (Node 20, see README): at `resolution: 10` 5 ms blocks were
//! seen 6–13 times out of 100; at `resolution: 1` the idle cost was 1.3% of a core. The prepare
//! hook costs two clock reads and one uncontended mutex per iteration and nothing while idle.
//!
//! Guarantees: values are nanoseconds (like Node's `IntervalHistogram`); `min`/`max` are exact
//! (tracked beside the histogram); percentiles have the configured significant figures and are
//! capped at the exact max. Values above `highestTrackableValue` are counted in `exceeds` and not
//! recorded (Node's behaviour). Recording and `snapshot({ reset })` run on the loop's own thread,
//! so a snapshot never loses or double-counts an iteration.
//!
//! Limits: the first sample after `enable()` covers the time from `enable()` to the end of that
//! iteration. A process stopped with SIGSTOP while busy records the stopped time as busy (the
//! stall watchdog discounts it, the histogram records what the loop saw). Encoding is the
//! HdrHistogram V2 compressed format (`hdrhistogram` crate, `V2DeflateSerializer`), base64.

use std::cell::RefCell;
use std::rc::Rc;

use base64::Engine;
use hdrhistogram::serialization::{
  DeserializeError, Deserializer, Serializer, V2DeflateSerializer,
};
use hdrhistogram::Histogram;
use napi::Env;
use napi_derive::napi;

use crate::error::{BulwarkError, ErrorCode, Result};
use crate::loop_hooks::{self, HookLease, Iteration};

/// Smallest value the histogram tells apart: 1 µs (iterations shorter than that are recorded as
/// 1 µs).
const LOWEST_NS: u64 = 1_000;

/// Node's value for `min` of an empty histogram (INT64_MAX as a JS number).
const EMPTY_MIN: f64 = 9_223_372_036_854_775_807.0;

/// The recording state of one monitor: plain Rust, unit-tested without Node.
pub struct Recorder {
  hist: Histogram<u64>,
  highest: u64,
  min: u64,
  max: u64,
  exceeds: u64,
}

impl Recorder {
  pub fn new(significant_figures: u8, highest: u64) -> std::result::Result<Self, BulwarkError> {
    if !(1..=5).contains(&significant_figures) {
      return Err(BulwarkError::out_of_range(format!(
        "significantFigures must be 1..5, got {significant_figures}"
      )));
    }
    if highest < 2 * LOWEST_NS {
      return Err(BulwarkError::out_of_range(format!(
        "highestTrackableValue must be >= {} ns, got {highest}",
        2 * LOWEST_NS
      )));
    }
    let hist = Histogram::new_with_bounds(LOWEST_NS, highest, significant_figures)
      .map_err(|e| BulwarkError::out_of_range(format!("histogram bounds: {e:?}")))?;
    Ok(Recorder {
      hist,
      highest,
      min: u64::MAX,
      max: 0,
      exceeds: 0,
    })
  }

  pub fn record_n(&mut self, value: u64, n: u64) {
    if n == 0 {
      return;
    }
    if value > self.highest {
      self.exceeds += n;
      return;
    }
    // Cannot fail: value <= highest, and the counter cannot overflow in practice (saturates).
    self.hist.saturating_record_n(value, n);
    self.min = self.min.min(value);
    self.max = self.max.max(value);
  }

  pub fn record(&mut self, value: u64) {
    self.record_n(value, 1);
  }

  pub fn reset(&mut self) {
    self.hist.reset();
    self.min = u64::MAX;
    self.max = 0;
    self.exceeds = 0;
  }

  pub fn count(&self) -> u64 {
    self.hist.len()
  }

  /// `[min, max, mean, stddev, count, exceeds]` with Node's values for an empty histogram.
  pub fn stats(&self) -> [f64; 6] {
    let count = self.count();
    if count == 0 {
      return [EMPTY_MIN, 0.0, f64::NAN, f64::NAN, 0.0, self.exceeds as f64];
    }
    [
      self.min as f64,
      self.max as f64,
      self.hist.mean(),
      self.hist.stdev(),
      count as f64,
      self.exceeds as f64,
    ]
  }

  /// Value at percentile `p` (0 < p <= 100), capped at the exact max; 0 when empty.
  pub fn percentile(&self, p: f64) -> u64 {
    if self.count() == 0 {
      return 0;
    }
    self.hist.value_at_quantile(p / 100.0).min(self.max)
  }

  /// `(percentile, value)` pairs like Node's `percentiles` map (ticks halving the distance to 100).
  pub fn percentiles(&self) -> Vec<(f64, u64)> {
    if self.count() == 0 {
      return vec![(100.0, 0)];
    }
    let mut out: Vec<(f64, u64)> = Vec::new();
    for v in self.hist.iter_quantiles(1) {
      let p = v.quantile_iterated_to() * 100.0;
      let value = self
        .hist
        .highest_equivalent(v.value_iterated_to())
        .min(self.max);
      match out.last_mut() {
        Some(last) if last.0 == p => last.1 = value,
        _ => out.push((p, value)),
      }
    }
    out
  }

  /// Recorded values at or below each bound (for Prometheus buckets).
  pub fn count_at_or_below(&self, bound: u64) -> u64 {
    if self.count() == 0 {
      return 0;
    }
    self.hist.count_between(0, bound.min(self.highest))
  }

  /// HdrHistogram V2 compressed encoding, base64.
  pub fn encode(&self) -> std::result::Result<String, BulwarkError> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
      .serialize(&self.hist, &mut buf)
      .map_err(|e| BulwarkError::new(ErrorCode::Internal, format!("encode failed: {e:?}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
  }

  /// Adds every value of another histogram. Values above this one's range count as `exceeds`.
  pub fn merge_hist(&mut self, other: &Histogram<u64>) {
    for v in other.iter_recorded() {
      let bucket = v.value_iterated_to();
      let mut value = other.median_equivalent(bucket);
      // The top bucket's midpoint can lie above `highest` although the value recorded in it did
      // not: keep such a count (at `highest`) rather than call it an exceed.
      if value > self.highest && other.lowest_equivalent(bucket) <= self.highest {
        value = self.highest;
      }
      self.record_n(value, v.count_at_value());
    }
  }

  pub fn merge(&mut self, other: &Recorder) {
    if other.count() > 0 {
      self.merge_hist(&other.hist);
      // The exact extremes survive a merge between two recorders.
      if other.max <= self.highest {
        self.max = self.max.max(other.max);
      }
      self.min = self.min.min(other.min);
    }
    self.exceeds += other.exceeds;
  }

  /// Decodes base64 of the V2 (compressed or not) encoding and adds it.
  pub fn merge_encoded(&mut self, encoded: &str) -> std::result::Result<(), BulwarkError> {
    let bytes = base64::engine::general_purpose::STANDARD
      .decode(encoded.trim())
      .map_err(|e| BulwarkError::invalid_arg(format!("not base64: {e}")))?;
    let other: Histogram<u64> = match Deserializer::new().deserialize(&mut bytes.as_slice()) {
      Ok(h) => h,
      Err(DeserializeError::UnsupportedFeature) => deserialize_patched(&bytes)?,
      Err(e) => {
        return Err(BulwarkError::invalid_arg(format!(
          "not an HdrHistogram V2 encoding: {e:?}"
        )))
      }
    };
    self.merge_hist(&other);
    Ok(())
  }

  fn empty_like(&self) -> Recorder {
    Recorder {
      hist: Histogram::new_from(&self.hist),
      highest: self.highest,
      min: u64::MAX,
      max: 0,
      exceeds: 0,
    }
  }
}

/// hdr-histogram-js (3.x) writes the header of integer histograms with a normalizing index offset
/// of 1 and the integer-to-double ratio as the raw bits `0x…01` (5e-324) instead of 0 and `1.0`;
/// its counts are not shifted (its own decoder ignores both). The `hdrhistogram` crate rejects
/// those fields as unsupported features: inflate, patch the two fields, read the plain V2 payload.
/// The tests check the values against what hdr-histogram-js recorded.
fn deserialize_patched(bytes: &[u8]) -> std::result::Result<Histogram<u64>, BulwarkError> {
  use std::io::Read;
  const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
  const OFFSET_AT: std::ops::Range<usize> = 8..12;
  const RATIO_AT: std::ops::Range<usize> = 32..40;
  let unsupported = || {
    BulwarkError::invalid_arg(
      "unsupported HdrHistogram encoding (normalizing offset or double histogram)",
    )
  };
  if bytes.len() < 8 || u32::from_be_bytes(bytes[0..4].try_into().unwrap()) != V2_COMPRESSED_COOKIE
  {
    return Err(unsupported());
  }
  let mut payload = Vec::new();
  flate2::read::ZlibDecoder::new(&bytes[8..])
    .take(64 << 20)
    .read_to_end(&mut payload)
    .map_err(|e| BulwarkError::invalid_arg(format!("corrupt HdrHistogram encoding: {e}")))?;
  if payload.len() < RATIO_AT.end {
    return Err(unsupported());
  }
  let offset = u32::from_be_bytes(payload[OFFSET_AT].try_into().unwrap());
  let ratio = u64::from_be_bytes(payload[RATIO_AT].try_into().unwrap());
  if offset > 1 || ratio != 1 {
    return Err(unsupported());
  }
  payload[OFFSET_AT].copy_from_slice(&0u32.to_be_bytes());
  payload[RATIO_AT].copy_from_slice(&1.0f64.to_be_bytes());
  Deserializer::new()
    .deserialize(&mut payload.as_slice())
    .map_err(|e| BulwarkError::invalid_arg(format!("not an HdrHistogram V2 encoding: {e:?}")))
}

/// Utilisation window: busy / wall between two (time, idle-time) readings.
#[derive(Clone, Copy)]
struct UtilWindow {
  start: (u64, u64),
  end: Option<(u64, u64)>,
}

fn utilization(w: UtilWindow, now: (u64, u64)) -> f64 {
  let end = w.end.unwrap_or(now);
  let wall = end.0.saturating_sub(w.start.0);
  if wall == 0 {
    return 0.0;
  }
  let busy = loop_hooks::busy_between(w.start.0, w.start.1, end.0, end.1);
  (busy as f64 / wall as f64).clamp(0.0, 1.0)
}

/// Native half of `EventLoopDelayHistogram` (lib/loop-delay.js): not part of the public API.
#[napi]
pub struct LoopDelayNative {
  core: Rc<RefCell<Recorder>>,
  lease: Option<HookLease>,
  loop_ptr: usize,
  window: UtilWindow,
}

fn now_reading(loop_ptr: usize) -> Result<(u64, u64)> {
  let uv = loop_hooks::uv()?;
  Ok((uv.hrtime(), loop_hooks::idle_time(uv, loop_ptr)))
}

impl LoopDelayNative {
  /// Empties the histogram and starts a new utilisation window at `now`: open while the hook is
  /// enabled, empty (closed at its start) while disabled.
  fn clear_from(&mut self, now: (u64, u64)) {
    self.core.borrow_mut().reset();
    self.window = UtilWindow {
      start: now,
      end: if self.lease.is_some() {
        None
      } else {
        Some(now)
      },
    };
  }
}

#[napi]
impl LoopDelayNative {
  #[napi(constructor)]
  pub fn new(env: Env, significant_figures: u32, highest_trackable_value: f64) -> Result<Self> {
    if !highest_trackable_value.is_finite() || highest_trackable_value < 0.0 {
      return Err(
        BulwarkError::out_of_range("highestTrackableValue must be a positive number").into(),
      );
    }
    let recorder = Recorder::new(
      significant_figures.min(255) as u8,
      highest_trackable_value as u64,
    )?;
    let loop_ptr = env.get_uv_event_loop().map_err(BulwarkError::from)? as usize;
    let start = now_reading(loop_ptr)?;
    Ok(LoopDelayNative {
      core: Rc::new(RefCell::new(recorder)),
      lease: None,
      loop_ptr,
      window: UtilWindow {
        start,
        end: Some(start),
      },
    })
  }

  /// Starts recording. False if it was already enabled.
  #[napi]
  pub fn enable(&mut self, env: Env) -> Result<bool> {
    if self.lease.as_ref().is_some_and(|l| l.is_active()) {
      return Ok(false);
    }
    let core = self.core.clone();
    let sub = Rc::new(move |it: &Iteration| core.borrow_mut().record(it.busy_ns));
    self.lease = Some(loop_hooks::acquire(&env, Some(sub))?);
    // The utilisation window resumes where it stopped, excluding the disabled time.
    let now = now_reading(self.loop_ptr)?;
    if let Some(end) = self.window.end.take() {
      self.window.start = (
        now.0 - end.0.saturating_sub(self.window.start.0).min(now.0),
        now.1 - end.1.saturating_sub(self.window.start.1).min(now.1),
      );
    }
    Ok(true)
  }

  /// Stops recording and releases the loop hook. False if it was not enabled.
  #[napi]
  pub fn disable(&mut self) -> Result<bool> {
    match self.lease.take() {
      Some(lease) => {
        if self.window.end.is_none() {
          self.window.end = Some(now_reading(self.loop_ptr)?);
        }
        Ok(lease.is_active())
      }
      None => Ok(false),
    }
  }

  #[napi(getter)]
  pub fn enabled(&self) -> bool {
    self.lease.as_ref().is_some_and(|l| l.is_active())
  }

  /// Clears the values and restarts the utilisation window.
  #[napi]
  pub fn reset(&mut self) -> Result<()> {
    let now = now_reading(self.loop_ptr)?;
    self.clear_from(now);
    Ok(())
  }

  /// `[min, max, mean, stddev, count, exceeds]`.
  #[napi]
  pub fn stats(&self) -> Vec<f64> {
    self.core.borrow().stats().to_vec()
  }

  #[napi]
  pub fn percentile(&self, percentile: f64) -> f64 {
    self.core.borrow().percentile(percentile) as f64
  }

  /// Flat `[p0, v0, p1, v1, …]`.
  #[napi]
  pub fn percentiles(&self) -> Vec<f64> {
    self
      .core
      .borrow()
      .percentiles()
      .into_iter()
      .flat_map(|(p, v)| [p, v as f64])
      .collect()
  }

  /// Values at or below each bound (ns), for Prometheus buckets.
  #[napi]
  pub fn counts_at_or_below(&self, bounds: Vec<f64>) -> Vec<f64> {
    let core = self.core.borrow();
    bounds
      .into_iter()
      .map(|b| core.count_at_or_below(b.max(0.0) as u64) as f64)
      .collect()
  }

  #[napi]
  pub fn encode(&self) -> Result<String> {
    Ok(self.core.borrow().encode()?)
  }

  #[napi]
  pub fn merge_encoded(&mut self, encoded: String) -> Result<()> {
    Ok(self.core.borrow_mut().merge_encoded(&encoded)?)
  }

  #[napi]
  pub fn merge_from(&mut self, other: &LoopDelayNative) -> Result<()> {
    // JS passes a snapshot when merging a histogram into itself (napi refuses the double borrow).
    self.core.borrow_mut().merge(&other.core.borrow());
    Ok(())
  }

  /// Event-loop utilisation (busy / wall, 0..1) since enable()/reset() (or over the snapshot's
  /// window).
  #[napi]
  pub fn utilization(&self) -> Result<f64> {
    let now = if self.window.end.is_some() {
      (0, 0)
    } else {
      now_reading(self.loop_ptr)?
    };
    Ok(utilization(self.window, now))
  }

  /// A detached copy of the current values (and window); with `reset`, this one starts over in
  /// the same step, so no iteration is lost between windows.
  #[napi]
  pub fn snapshot(&mut self, reset: bool) -> Result<LoopDelayNative> {
    let now = now_reading(self.loop_ptr)?;
    let copy = {
      let core = self.core.borrow();
      let mut c = core.empty_like();
      c.merge(&core);
      c
    };
    let window = UtilWindow {
      start: self.window.start,
      end: Some(self.window.end.unwrap_or(now)),
    };
    if reset {
      self.clear_from(now);
    }
    Ok(LoopDelayNative {
      core: Rc::new(RefCell::new(copy)),
      lease: None,
      loop_ptr: self.loop_ptr,
      window,
    })
  }
}

/// The loop's pressure, read in O(1) from the hook's atomics (for load gates): see
/// `LoopShared::pressure`. Starts the loop hook on first use in this environment; it stays until
/// the environment ends (a prepare hook, no cost while idle).
#[napi(object)]
pub struct LoopPressureInfo {
  /// How long the iteration in progress has been busy, in ms (0 while the loop waits for I/O).
  pub blocked_ms: f64,
  /// Longest iteration of the last completed window, ms.
  pub window_max_ms: f64,
  /// 99th percentile iteration of the last completed window, ms.
  pub window_p99_ms: f64,
  /// Event-loop utilisation of the last completed window (0..1).
  pub window_utilization: f64,
  /// Iterations in the last completed window.
  pub window_iterations: f64,
  /// Window length, ms.
  pub window_ms: f64,
  /// ms since that window ended: above 2 × `windowMs` the loop was idle (or is blocked).
  pub window_age_ms: f64,
}

thread_local! {
  static PRESSURE_LEASES: RefCell<std::collections::HashMap<u64, HookLease>> =
    RefCell::new(std::collections::HashMap::new());
}

#[napi]
pub fn loop_pressure(env: Env) -> Result<LoopPressureInfo> {
  let state = crate::env_state::state(&env).map_err(BulwarkError::from)?;
  let id = state.id;
  let existing = PRESSURE_LEASES.with(|m| m.borrow().get(&id).map(|l| l.shared()));
  let shared = match existing {
    Some(s) if s.active.load(std::sync::atomic::Ordering::Acquire) => s,
    _ => {
      let lease = loop_hooks::acquire(&env, None)?;
      let shared = lease.shared();
      let first = PRESSURE_LEASES.with(|m| m.borrow_mut().insert(id, lease).is_none());
      if first {
        state.on_teardown(move || {
          let lease = PRESSURE_LEASES.with(|m| m.borrow_mut().remove(&id));
          drop(lease);
        });
      }
      shared
    }
  };
  let p = shared.pressure(loop_hooks::uv()?);
  let ms = |ns: u64| ns as f64 / 1e6;
  Ok(LoopPressureInfo {
    blocked_ms: ms(p.blocked_ns),
    window_max_ms: ms(p.window_max_ns),
    window_p99_ms: ms(p.window_p99_ns),
    window_utilization: p.window_utilization,
    window_iterations: p.window_iterations as f64,
    window_ms: ms(loop_hooks::PRESSURE_WINDOW_NS),
    window_age_ms: ms(p.window_age_ns),
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  fn rec() -> Recorder {
    Recorder::new(3, 3_600_000_000_000).unwrap()
  }

  #[test]
  fn empty_matches_node() {
    let r = rec();
    let s = r.stats();
    assert_eq!(s[0], EMPTY_MIN);
    assert_eq!(s[1], 0.0);
    assert!(s[2].is_nan() && s[3].is_nan());
    assert_eq!(r.percentile(50.0), 0);
    assert_eq!(r.percentiles(), vec![(100.0, 0)]);
  }

  #[test]
  fn exact_extremes_and_capped_percentiles() {
    let mut r = rec();
    for _ in 0..99 {
      r.record(2_000_000);
    }
    r.record(250_000_123);
    let s = r.stats();
    assert_eq!(s[0], 2_000_000.0);
    assert_eq!(s[1], 250_000_123.0);
    assert_eq!(s[4], 100.0);
    assert_eq!(r.percentile(100.0), 250_000_123);
    let p50 = r.percentile(50.0) as f64;
    assert!((p50 - 2e6).abs() / 2e6 < 0.001, "{p50}");
    let ps = r.percentiles();
    assert_eq!(ps.last().unwrap().0, 100.0);
    assert_eq!(ps.last().unwrap().1, 250_000_123);
    assert!(ps.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
  }

  #[test]
  fn values_above_range_count_as_exceeds() {
    let mut r = Recorder::new(2, 1_000_000).unwrap();
    r.record(5_000_000);
    r.record(500_000);
    assert_eq!(r.stats()[5], 1.0);
    assert_eq!(r.count(), 1);
  }

  #[test]
  fn rejects_bad_options() {
    assert_eq!(
      Recorder::new(0, 1 << 40).err().unwrap().code,
      ErrorCode::OutOfRange
    );
    assert_eq!(
      Recorder::new(6, 1 << 40).err().unwrap().code,
      ErrorCode::OutOfRange
    );
    assert_eq!(
      Recorder::new(3, 10).err().unwrap().code,
      ErrorCode::OutOfRange
    );
  }

  #[test]
  fn encode_merge_round_trip() {
    let mut a = rec();
    for v in [1_000_000, 7_000_000, 50_000_000] {
      a.record(v);
    }
    let enc = a.encode().unwrap();
    let mut b = rec();
    b.merge_encoded(&enc).unwrap();
    b.merge_encoded(&enc).unwrap();
    assert_eq!(b.count(), 6);
    let max = b.stats()[1];
    assert!((max - 5e7).abs() / 5e7 < 0.001, "{max}");
    assert_eq!(
      b.merge_encoded("not base64!").unwrap_err().code,
      ErrorCode::InvalidArg
    );
    assert_eq!(
      b.merge_encoded("AAAA").unwrap_err().code,
      ErrorCode::InvalidArg
    );
    let mut c = rec();
    c.merge(&a);
    assert_eq!(c.stats()[1], 5e7);
    assert_eq!(c.count_at_or_below(7_000_000), 2);
  }

  #[test]
  fn values_in_the_top_bucket_survive_a_merge() {
    // 9_995_000 lies in the bucket [9_994_240, 10_002_431], whose midpoint is above it.
    let highest = 9_995_000;
    let mut a = Recorder::new(3, highest).unwrap();
    a.record(highest);
    a.record(highest + 1);
    assert_eq!((a.count(), a.exceeds), (1, 1));
    let mut b = Recorder::new(3, highest).unwrap();
    b.merge_encoded(&a.encode().unwrap()).unwrap();
    b.merge(&a);
    assert_eq!((b.count(), b.exceeds), (2, 1));
    assert!(b.stats()[1] <= highest as f64);
  }

  #[test]
  fn utilization_is_busy_over_wall() {
    let w = UtilWindow {
      start: (0, 0),
      end: Some((1_000, 250)),
    };
    assert_eq!(utilization(w, (0, 0)), 0.75);
    let open = UtilWindow {
      start: (0, 0),
      end: None,
    };
    assert_eq!(utilization(open, (2_000, 2_000)), 0.0);
  }
}
