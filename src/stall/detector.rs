//! The watchdog's decisions, as plain logic over clock readings (unit-tested without Node).

/// A process (or machine) pause shorter than this is treated as scheduling noise, not a suspend.
pub const SUSPEND_SLACK_NS: u64 = 50_000_000;
/// Longest sleep between two looks while no stall is in progress: bounds how much of a SIGSTOP
/// (or VM pause) can go unnoticed.
pub const MAX_TICK_NS: u64 = 25_000_000;
/// Look this often while a stall is in progress, to notice its end.
pub const STALL_POLL_NS: u64 = 2_000_000;

/// One look at the loop.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
  /// CLOCK_MONOTONIC (uv_hrtime), ns.
  pub mono_ns: u64,
  /// CLOCK_BOOTTIME, ns (keeps running while the machine sleeps).
  pub boot_ns: u64,
  /// Busy time of the current iteration as the hook atomics say.
  pub busy_ns: u64,
  /// The hook's iteration counter.
  pub iteration: u64,
  /// Busy time of the iteration that ended at the last prepare call.
  pub last_busy_ns: u64,
  /// Busy time of the stalled iteration when the hook still has it (see `LoopShared::busy_of`).
  pub stalled_busy_ns: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
  /// The current iteration has been busy for `busy_ns` (≥ threshold); it began at `started_mono_ns`.
  Start { busy_ns: u64, started_mono_ns: u64 },
  /// The stall that began at `started_mono_ns` ended after `duration_ns`.
  End {
    duration_ns: u64,
    started_mono_ns: u64,
  },
  /// The stall passed `killAfterMs`.
  Kill { busy_ns: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Stall {
  iteration: u64,
  started_mono_ns: u64,
  max_busy_ns: u64,
  discount_ns: u64,
}

pub struct Detector {
  threshold_ns: u64,
  kill_after_ns: Option<u64>,
  iteration: u64,
  /// Time this iteration spent suspended (SIGSTOP, VM pause, machine sleep), not counted as busy.
  discount_ns: u64,
  last_mono: u64,
  last_boot: u64,
  expected_wake: u64,
  stall: Option<Stall>,
  killed: bool,
}

impl Detector {
  pub fn new(threshold_ns: u64, kill_after_ns: Option<u64>, first: &Observation) -> Self {
    Detector {
      threshold_ns,
      kill_after_ns,
      iteration: first.iteration,
      discount_ns: 0,
      last_mono: first.mono_ns,
      last_boot: first.boot_ns,
      expected_wake: first.mono_ns,
      stall: None,
      killed: false,
    }
  }

  /// Whether a stall is in progress.
  #[cfg(test)]
  pub fn in_stall(&self) -> bool {
    self.stall.is_some()
  }

  /// The hook iteration count whose busy time is the current stall's length (see `busy_of`).
  pub fn stall_ends_at(&self) -> Option<u64> {
    self.stall.map(|s| s.iteration + 1)
  }

  /// Feeds one look; returns what happened (at most an End then a Start, or a Kill).
  pub fn observe(&mut self, o: &Observation) -> Vec<Event> {
    let mut events = Vec::new();
    // Suspension: the watchdog woke far too late (SIGSTOP, VM pause), or boot time ran ahead of
    // monotonic time (the machine slept). Either way the loop did not run for that long.
    let late = o.mono_ns.saturating_sub(self.expected_wake);
    let mono_gap = o.mono_ns.saturating_sub(self.last_mono);
    let boot_gap = o.boot_ns.saturating_sub(self.last_boot);
    let slept = boot_gap.saturating_sub(mono_gap);
    let suspended = if late > SUSPEND_SLACK_NS { late } else { 0 }
      .max(if slept > SUSPEND_SLACK_NS { slept } else { 0 });
    self.last_mono = o.mono_ns;
    self.last_boot = o.boot_ns;

    if o.iteration != self.iteration {
      if let Some(stall) = self.stall.take() {
        // The prepare hook measured the stalled iteration exactly when it is the last one.
        let exact = if o.iteration == stall.iteration + 1 {
          Some(o.last_busy_ns)
        } else {
          o.stalled_busy_ns
        };
        let duration = exact
          .map(|b| b.saturating_sub(stall.discount_ns).max(stall.max_busy_ns))
          .unwrap_or(stall.max_busy_ns);
        events.push(Event::End {
          duration_ns: duration,
          started_mono_ns: stall.started_mono_ns,
        });
      }
      self.iteration = o.iteration;
      self.discount_ns = 0;
      self.killed = false;
    }
    // A suspension that ended inside the current iteration is not busy time (if the loop moved
    // on meanwhile, the new iteration may include part of it: discount at most its busy time).
    self.discount_ns = (self.discount_ns + suspended).min(o.busy_ns);
    let busy = o.busy_ns.saturating_sub(self.discount_ns);

    match self.stall.as_mut() {
      Some(stall) => {
        stall.max_busy_ns = stall.max_busy_ns.max(busy);
        stall.discount_ns = self.discount_ns;
      }
      None if busy >= self.threshold_ns => {
        let started = o.mono_ns.saturating_sub(busy);
        self.stall = Some(Stall {
          iteration: o.iteration,
          started_mono_ns: started,
          max_busy_ns: busy,
          discount_ns: self.discount_ns,
        });
        events.push(Event::Start {
          busy_ns: busy,
          started_mono_ns: started,
        });
      }
      None => {}
    }
    if let (Some(kill), true) = (self.kill_after_ns, self.stall.is_some()) {
      if busy >= kill && !self.killed {
        self.killed = true;
        events.push(Event::Kill { busy_ns: busy });
      }
    }
    events
  }

  /// How long to sleep after a look at `now` with the iteration busy for `busy_ns`; remembers
  /// when it expects to wake.
  pub fn next_sleep(&mut self, now: u64, busy_ns: u64) -> u64 {
    let busy = busy_ns.saturating_sub(self.discount_ns);
    let sleep = match (self.stall.is_some(), self.kill_after_ns) {
      (true, Some(kill)) if busy < kill => STALL_POLL_NS.min(kill - busy).max(100_000),
      (true, _) => STALL_POLL_NS,
      // Wake exactly when the iteration would cross the threshold if it stays busy.
      (false, _) => self
        .threshold_ns
        .saturating_sub(busy)
        .clamp(100_000, MAX_TICK_NS.min(self.threshold_ns)),
    };
    self.expected_wake = now + sleep;
    sleep
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  const MS: u64 = 1_000_000;

  fn obs(mono: u64, busy: u64, iteration: u64) -> Observation {
    Observation {
      mono_ns: mono,
      boot_ns: mono,
      busy_ns: busy,
      iteration,
      last_busy_ns: 0,
      stalled_busy_ns: None,
    }
  }

  #[test]
  fn idle_loop_never_stalls_and_sleeps_by_the_tick() {
    let mut d = Detector::new(100 * MS, None, &obs(0, 0, 1));
    let mut t = 0;
    for i in 0..100 {
      let sleep = d.next_sleep(t, 0);
      assert_eq!(sleep, 25 * MS);
      t += sleep;
      assert!(d.observe(&obs(t, 0, 1 + i % 3)).is_empty());
    }
  }

  /// Runs the detector like the watchdog thread does against a loop that is busy from
  /// `block_from` for `block_ms` (then idle, next iteration), until `until`. `stop` is a SIGSTOP
  /// window `(from, to)` in which the watchdog cannot run. Returns the events with their times.
  fn simulate(
    threshold: u64,
    kill: Option<u64>,
    block_from: u64,
    block_ms: u64,
    stop: Option<(u64, u64)>,
    until: u64,
  ) -> Vec<(u64, Event)> {
    let block_end = block_from + block_ms * MS;
    let at = |t: u64| {
      if t >= block_from && t < block_end {
        obs(t, t - block_from, 1)
      } else if t >= block_end {
        let mut o = obs(t, 0, 2);
        o.last_busy_ns = block_ms * MS;
        o
      } else {
        obs(t, 0, 0)
      }
    };
    let mut d = Detector::new(threshold, kill, &at(0));
    let mut t = 0;
    let mut out = Vec::new();
    while t < until {
      let o = at(t);
      t += d.next_sleep(t, o.busy_ns);
      if let Some((from, to)) = stop {
        if t > from && t < to {
          t = to;
        }
      }
      for e in d.observe(&at(t)) {
        out.push((t, e));
      }
    }
    out
  }

  #[test]
  fn wakes_at_the_threshold_and_reports_start_then_end() {
    let ev = simulate(100 * MS, None, 10 * MS, 300, None, 500 * MS);
    assert_eq!(ev.len(), 2, "{ev:?}");
    let (t, start) = ev[0];
    assert_eq!(t, 110 * MS);
    assert_eq!(
      start,
      Event::Start {
        busy_ns: 100 * MS,
        started_mono_ns: 10 * MS
      }
    );
    let (t, end) = ev[1];
    assert!((310 * MS..=312 * MS).contains(&t), "{t}");
    assert_eq!(
      end,
      Event::End {
        duration_ns: 300 * MS,
        started_mono_ns: 10 * MS
      }
    );
  }

  #[test]
  fn kills_once_past_kill_after() {
    let ev = simulate(100 * MS, Some(500 * MS), 0, 10_000, None, 2_000 * MS);
    assert!(matches!(ev[0].1, Event::Start { .. }));
    assert_eq!(ev[1], (500 * MS, Event::Kill { busy_ns: 500 * MS }));
    assert_eq!(ev.len(), 2);
  }

  #[test]
  fn a_late_wake_is_a_suspension_not_a_stall() {
    // SIGSTOP for 1 s while the loop is 20 ms into a 60 ms callback.
    let ev = simulate(
      100 * MS,
      None,
      100 * MS,
      60,
      Some((120 * MS, 1_120 * MS)),
      2_000 * MS,
    );
    assert!(ev.is_empty(), "{ev:?}");
    // Without the stop, a 150 ms block is a stall.
    assert_eq!(
      simulate(100 * MS, None, 100 * MS, 150, None, 2_000 * MS).len(),
      2
    );
  }

  #[test]
  fn machine_sleep_seen_through_boottime_is_discounted() {
    // Monotonic moved 25 ms, boot time 525 ms: the machine slept 500 ms inside this iteration.
    let mut d = Detector::new(100 * MS, None, &obs(0, 0, 1));
    d.next_sleep(0, 0);
    let mut o = obs(25 * MS, 120 * MS, 1);
    o.boot_ns = 525 * MS;
    assert!(d.observe(&o).is_empty());
    // Without the boot-time gap the same reading is a stall.
    let mut d = Detector::new(100 * MS, None, &obs(0, 0, 1));
    d.next_sleep(0, 0);
    assert_eq!(d.observe(&obs(25 * MS, 120 * MS, 1)).len(), 1);
  }
}
