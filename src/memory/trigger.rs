//! The decision logic, in plain Rust: per-metric hysteresis levels and the leak trend.
//!
//! Both live on the native side so that one implementation decides for every metric, and so that
//! `critical` (and the `exit` it may carry) is decided by the sampler thread while the event loop
//! is blocked. Heap figures come from the JS thread (V8 can only be asked there) and are fed in.

/// How far a metric is over its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
  Ok = 0,
  Warn = 1,
  Critical = 2,
}

impl Level {
  pub fn as_str(self) -> &'static str {
    match self {
      Level::Ok => "ok",
      Level::Warn => "warn",
      Level::Critical => "critical",
    }
  }

  fn from_index(i: usize) -> Level {
    match i {
      0 => Level::Warn,
      _ => Level::Critical,
    }
  }
}

/// A limit as configured: bytes, or a fraction of a base (the effective memory limit, the heap
/// limit, the container limit) that is only known at run time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
  Bytes(f64),
  Ratio(f64),
}

impl Threshold {
  /// The threshold in bytes, or `None` when it is a ratio of a base that does not exist.
  pub fn resolve(self, base: Option<f64>) -> Option<f64> {
    match self {
      Threshold::Bytes(b) => Some(b),
      Threshold::Ratio(r) => base.filter(|b| *b > 0.0).map(|b| b * r),
    }
  }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelSpec {
  pub warn: Option<Threshold>,
  pub critical: Option<Threshold>,
  /// A level is left when the value stays below `enter * recover_below` (0 < r <= 1).
  pub recover_below: f64,
  /// A crossing (up or down) must hold this long before it counts.
  pub sustain_ms: f64,
}

/// A level change, with the threshold that was crossed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
  /// Entered `level` (warn or critical); `limit` is its enter threshold.
  Up { level: Level, limit: f64 },
  /// Fell from `from` to `to`; `limit` is the exit threshold of `from`.
  Down { from: Level, to: Level, limit: f64 },
}

/// Hysteresis state of one metric. A level is entered when the value stays at or above its
/// enter threshold for `sustain_ms`, and left when it stays below `enter * recover_below` for
/// `sustain_ms`; between the two thresholds nothing changes, so a value wandering around a
/// threshold fires at most once.
#[derive(Debug, Clone)]
pub struct Hysteresis {
  spec: LevelSpec,
  level: Level,
  above_since: [Option<f64>; 2],
  below_since: Option<f64>,
}

impl Hysteresis {
  pub fn new(spec: LevelSpec) -> Self {
    Hysteresis {
      spec,
      level: Level::Ok,
      above_since: [None, None],
      below_since: None,
    }
  }

  pub fn level(&self) -> Level {
    self.level
  }

  /// Feeds one sample taken at `now_ms`; pushes the level changes it causes to `out` (in order:
  /// a jump from ok to critical yields warn, then critical).
  pub fn update(&mut self, value: f64, base: Option<f64>, now_ms: f64, out: &mut Vec<Transition>) {
    let enter = [
      self.spec.warn.and_then(|t| t.resolve(base)),
      self.spec.critical.and_then(|t| t.resolve(base)),
    ];
    let sustain = self.spec.sustain_ms;
    let mut target = Level::Ok;
    for (i, threshold) in enter.iter().enumerate() {
      if threshold.is_some_and(|t| value >= t) {
        let since = *self.above_since[i].get_or_insert(now_ms);
        if now_ms - since >= sustain {
          target = Level::from_index(i);
        }
      } else {
        self.above_since[i] = None;
      }
    }
    if target > self.level {
      for (i, threshold) in enter.iter().enumerate() {
        let level = Level::from_index(i);
        if level > self.level && level <= target {
          if let Some(limit) = threshold {
            out.push(Transition::Up {
              level,
              limit: *limit,
            });
          }
        }
      }
      self.level = target;
      self.below_since = None;
      return;
    }
    if self.level == Level::Ok {
      return;
    }
    let exit_of = |level: Level| -> Option<f64> {
      enter[level as usize - 1].map(|t| t * self.spec.recover_below)
    };
    // A limit that disappeared (e.g. a ratio of a container limit that was lifted) counts as
    // exited.
    let exit = exit_of(self.level);
    if exit.is_none_or(|e| value < e) {
      let since = *self.below_since.get_or_insert(now_ms);
      if now_ms - since >= sustain {
        let to =
          if self.level == Level::Critical && exit_of(Level::Warn).is_some_and(|e| value >= e) {
            Level::Warn
          } else {
            Level::Ok
          };
        out.push(Transition::Down {
          from: self.level,
          to,
          limit: exit.unwrap_or(f64::NAN),
        });
        self.level = to;
        self.below_since = None;
      }
    } else {
      self.below_since = None;
    }
  }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakSpec {
  /// The regression looks at post-GC samples of the last `window_ms`.
  pub window_ms: f64,
  /// At least this many samples, spanning at least three quarters of the window, before
  /// deciding.
  pub min_samples: usize,
  /// Growth below this slope (bytes per minute) is not a leak.
  pub min_slope_per_min: f64,
}

/// A detected leak trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leak {
  /// Least-squares slope of post-GC heap over the window, bytes per minute.
  pub slope_per_min: f64,
  pub samples: usize,
  pub span_ms: f64,
  /// The lowest post-GC heap in the first and in the last third of the window.
  pub floor_start: f64,
  pub floor_end: f64,
}

/// Leak trend over post-GC heap samples. Fires when (1) the least-squares slope over the window
/// is at least `min_slope_per_min` and (2) the floor rises with it: split the window in thirds;
/// the lowest sample of each third must exceed the previous third's lowest by at least half of
/// what the slope predicts over a third (a linear leak gives all of it). A sawtooth that returns
/// to its baseline keeps the floor flat, so (2) fails even when the window's edges cut a rising
/// edge and the regression slope is steep (for any period up to a quarter of the window: each
/// third then holds a trough).
/// After firing the window starts over, so a leak is reported at most once per window.
#[derive(Debug, Clone)]
pub struct LeakDetector {
  spec: LeakSpec,
  samples: std::collections::VecDeque<(f64, f64)>,
}

impl LeakDetector {
  pub fn new(spec: LeakSpec) -> Self {
    LeakDetector {
      spec,
      samples: Default::default(),
    }
  }

  pub fn record(&mut self, t_ms: f64, bytes: f64) -> Option<Leak> {
    if let Some(&(last, _)) = self.samples.back() {
      if t_ms < last {
        self.samples.clear(); // the clock went back: start over
      }
    }
    self.samples.push_back((t_ms, bytes));
    while let Some(&(t0, _)) = self.samples.front() {
      if t_ms - t0 > self.spec.window_ms {
        self.samples.pop_front();
      } else {
        break;
      }
    }
    let n = self.samples.len();
    let t_first = self.samples.front()?.0;
    let span = t_ms - t_first;
    if n < self.spec.min_samples.max(3) || span < self.spec.window_ms * 0.75 || span <= 0.0 {
      return None;
    }
    let (mean_t, mean_b) = self
      .samples
      .iter()
      .fold((0.0, 0.0), |(a, b), &(t, v)| (a + t, b + v));
    let (mean_t, mean_b) = (mean_t / n as f64, mean_b / n as f64);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(t, v) in &self.samples {
      sxy += (t - mean_t) * (v - mean_b);
      sxx += (t - mean_t) * (t - mean_t);
    }
    if sxx <= 0.0 {
      return None;
    }
    let slope_per_ms = sxy / sxx;
    let slope_per_min = slope_per_ms * 60_000.0;
    if slope_per_min < self.spec.min_slope_per_min {
      return None;
    }
    let third = span / 3.0;
    let floor = |from: f64, to: f64| {
      self
        .samples
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|&(_, v)| v)
        .fold(f64::INFINITY, f64::min)
    };
    let floor_start = floor(t_first, t_first + third);
    let floor_mid = floor(t_first + third, t_ms - third);
    let floor_end = floor(t_ms - third, t_ms);
    // Each third's floor must sit above the previous one by half of what the slope predicts.
    let step = slope_per_ms * third / 2.0;
    let rising = floor_mid - floor_start >= step && floor_end - floor_mid >= step;
    if !rising || !floor_mid.is_finite() {
      return None;
    }
    self.samples.clear();
    Some(Leak {
      slope_per_min,
      samples: n,
      span_ms: span,
      floor_start,
      floor_end,
    })
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn spec(warn: f64, critical: f64, sustain_ms: f64) -> LevelSpec {
    LevelSpec {
      warn: Some(Threshold::Bytes(warn)),
      critical: Some(Threshold::Bytes(critical)),
      recover_below: 0.9,
      sustain_ms,
    }
  }

  fn run(h: &mut Hysteresis, values: &[f64], step_ms: f64) -> Vec<Transition> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
      h.update(*v, None, i as f64 * step_ms, &mut out);
    }
    out
  }

  #[test]
  fn steady_growth_fires_warn_then_critical_once_each() {
    let mut h = Hysteresis::new(spec(100.0, 200.0, 0.0));
    let values: Vec<f64> = (0..30).map(|i| i as f64 * 10.0).collect();
    let out = run(&mut h, &values, 100.0);
    assert_eq!(
      out,
      vec![
        Transition::Up {
          level: Level::Warn,
          limit: 100.0
        },
        Transition::Up {
          level: Level::Critical,
          limit: 200.0
        },
      ]
    );
    assert_eq!(h.level(), Level::Critical);
  }

  #[test]
  fn a_jump_straight_to_critical_reports_warn_first() {
    let mut h = Hysteresis::new(spec(100.0, 200.0, 0.0));
    let out = run(&mut h, &[0.0, 500.0], 100.0);
    assert_eq!(out.len(), 2);
    assert!(matches!(
      out[0],
      Transition::Up {
        level: Level::Warn,
        ..
      }
    ));
    assert!(matches!(
      out[1],
      Transition::Up {
        level: Level::Critical,
        ..
      }
    ));
  }

  #[test]
  fn oscillation_around_the_enter_threshold_does_not_flap() {
    let mut h = Hysteresis::new(spec(100.0, 200.0, 0.0));
    // 95..105 around warn=100, never below the exit threshold 90.
    let values: Vec<f64> = (0..100)
      .map(|i| if i % 2 == 0 { 95.0 } else { 105.0 })
      .collect();
    let out = run(&mut h, &values, 100.0);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(h.level(), Level::Warn);
  }

  #[test]
  fn spikes_shorter_than_sustain_do_not_fire() {
    let mut h = Hysteresis::new(spec(100.0, 200.0, 500.0));
    // 300 ms above, 100 ms below, repeated: never 500 ms above.
    let values: Vec<f64> = (0..100)
      .map(|i| if i % 4 == 3 { 50.0 } else { 150.0 })
      .collect();
    assert!(run(&mut h, &values, 100.0).is_empty());
    // Held above for 500 ms: fires.
    let mut h = Hysteresis::new(spec(100.0, 200.0, 500.0));
    let out = run(&mut h, &[150.0; 7], 100.0);
    assert_eq!(
      out,
      vec![Transition::Up {
        level: Level::Warn,
        limit: 100.0
      }]
    );
  }

  #[test]
  fn recovery_needs_the_exit_threshold_and_sustain() {
    let mut h = Hysteresis::new(spec(100.0, 200.0, 200.0));
    let mut out = Vec::new();
    let mut t = 0.0;
    let mut feed = |h: &mut Hysteresis, v: f64, n: usize, out: &mut Vec<Transition>| {
      for _ in 0..n {
        h.update(v, None, t, out);
        t += 100.0;
      }
    };
    feed(&mut h, 250.0, 4, &mut out);
    assert_eq!(h.level(), Level::Critical);
    out.clear();
    // Below critical's enter (200) but above its exit (180): stays critical.
    feed(&mut h, 190.0, 10, &mut out);
    assert!(out.is_empty());
    // Below 180 but above warn's exit (90): critical -> warn after the sustain time.
    feed(&mut h, 150.0, 4, &mut out);
    assert_eq!(
      out,
      vec![Transition::Down {
        from: Level::Critical,
        to: Level::Warn,
        limit: 180.0
      }]
    );
    out.clear();
    feed(&mut h, 10.0, 4, &mut out);
    assert_eq!(
      out,
      vec![Transition::Down {
        from: Level::Warn,
        to: Level::Ok,
        limit: 90.0
      }]
    );
  }

  #[test]
  fn ratios_resolve_against_the_base_and_no_base_disables_them() {
    let mut h = Hysteresis::new(LevelSpec {
      warn: Some(Threshold::Ratio(0.5)),
      critical: Some(Threshold::Ratio(0.9)),
      recover_below: 0.9,
      sustain_ms: 0.0,
    });
    let mut out = Vec::new();
    h.update(600.0, None, 0.0, &mut out);
    assert!(out.is_empty());
    h.update(600.0, Some(1000.0), 1.0, &mut out);
    assert_eq!(
      out,
      vec![Transition::Up {
        level: Level::Warn,
        limit: 500.0
      }]
    );
    assert_eq!(Threshold::Ratio(0.5).resolve(Some(0.0)), None);
  }

  fn leak_spec() -> LeakSpec {
    LeakSpec {
      window_ms: 60_000.0,
      min_samples: 5,
      min_slope_per_min: 1_000_000.0,
    }
  }

  #[test]
  fn steady_growth_is_a_leak_with_its_slope() {
    let mut d = LeakDetector::new(leak_spec());
    let mut found = None;
    // 2 MB per minute, a sample every second, a little noise.
    for i in 0..120 {
      let t = i as f64 * 1000.0;
      let noise = if i % 3 == 0 { 50_000.0 } else { 0.0 };
      if let Some(l) = d.record(t, 50e6 + t / 60_000.0 * 2e6 + noise) {
        found = Some((i, l));
        break;
      }
    }
    let (i, leak) = found.expect("leak not found");
    assert_eq!(i, 45, "fires once three quarters of a window are covered");
    assert!((leak.slope_per_min - 2e6).abs() < 0.1e6, "{leak:?}");
    assert!(leak.floor_end > leak.floor_start);
  }

  #[test]
  fn sawtooth_returning_to_baseline_is_not_a_leak() {
    let mut d = LeakDetector::new(leak_spec());
    // Rises 10 MB over 20 s, then drops back to the baseline, for 10 minutes.
    for i in 0..600 {
      let t = i as f64 * 1000.0;
      let phase = (i % 20) as f64 / 20.0;
      assert_eq!(d.record(t, 50e6 + phase * 10e6), None, "at {i}");
    }
  }

  #[test]
  fn short_window_sawtooth_with_a_settling_baseline_is_not_a_leak() {
    // Shape measured from a Node child: period ~400 ms, 2 MB tall, a sample every ~33 ms, and
    // a baseline that settles by 50 KB over the first 2 s (1.5 MB/min, below the 2 MB/min
    // minimum). Windows whose edges cut a rising edge regress to slopes far above the minimum;
    // only the floor test keeps them quiet.
    let mut d = LeakDetector::new(LeakSpec {
      window_ms: 2000.0,
      min_samples: 5,
      min_slope_per_min: 2e6,
    });
    let mut steepest: f64 = 0.0;
    for i in 0..300 {
      let t = i as f64 * 33.0;
      let drift = (t.min(2000.0) / 2000.0) * 50e3;
      let phase = (i % 12) as f64 / 12.0;
      assert_eq!(d.record(t, 2.85e6 + drift + phase * 2e6), None, "at {i}");
      steepest = steepest.max(window_slope(&d));
    }
    assert!(
      steepest > 4e6,
      "the regression alone would fire: {steepest}"
    );
  }

  fn window_slope(d: &LeakDetector) -> f64 {
    let n = d.samples.len() as f64;
    let mt = d.samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mb = d.samples.iter().map(|s| s.1).sum::<f64>() / n;
    let sxy: f64 = d.samples.iter().map(|s| (s.0 - mt) * (s.1 - mb)).sum();
    let sxx: f64 = d.samples.iter().map(|s| (s.0 - mt) * (s.0 - mt)).sum();
    if sxx > 0.0 {
      sxy / sxx * 60_000.0
    } else {
      0.0
    }
  }

  #[test]
  fn flat_heap_and_slow_growth_are_not_leaks_and_firing_restarts_the_window() {
    let mut d = LeakDetector::new(leak_spec());
    for i in 0..200 {
      assert_eq!(d.record(i as f64 * 1000.0, 80e6), None);
    }
    let mut d = LeakDetector::new(leak_spec());
    for i in 0..200 {
      // 0.5 MB/min: below the minimum slope.
      assert_eq!(
        d.record(i as f64 * 1000.0, 80e6 + i as f64 * 500e3 / 60.0),
        None
      );
    }
    let mut d = LeakDetector::new(leak_spec());
    let fired: Vec<usize> = (0..200)
      .filter(|i| {
        d.record(*i as f64 * 1000.0, 80e6 + *i as f64 * 5e6 / 60.0)
          .is_some()
      })
      .collect();
    // Every 45 s (3/4 of a window of fresh samples), never on consecutive samples.
    assert_eq!(&fired[..3], &[45, 91, 137]);
  }
}
