//! The sampler thread: reads RSS and the container figures every interval, publishes them in a
//! shared block of atomics, runs the hysteresis of every metric, and enforces `exit`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cgroup::{self, Cgroup};
use super::trigger::{Hysteresis, Level, LevelSpec, Transition};

/// The published state: one `f64` per slot (stored as bits in an `AtomicU64`), shared with JS as
/// a `Float64Array` over the same memory. Slots 1..=16 are written by the sampler under
/// a seqlock (slot 0 odd while writing; slots `SAMPLED_AT_MS..=EXIT_AT_MS`); the heap slots are written by the JS thread only.
/// `-1` means "not available". Keep in step with `SLOT_NAMES`.
pub mod slot {
  pub const SEQ: usize = 0;
  pub const SAMPLED_AT_MS: usize = 1;
  pub const SAMPLES: usize = 2;
  pub const RSS: usize = 3;
  pub const CONTAINER_USAGE: usize = 4;
  pub const CONTAINER_LIMIT: usize = 5;
  pub const EFFECTIVE_LIMIT: usize = 6;
  pub const SYSTEM_TOTAL: usize = 7;
  pub const SYSTEM_AVAILABLE: usize = 8;
  pub const OOM: usize = 9;
  pub const OOM_KILL: usize = 10;
  pub const LEVEL_RSS: usize = 11;
  pub const LEVEL_HEAP_USED: usize = 12;
  pub const LEVEL_CONTAINER: usize = 13;
  pub const CGROUP_VERSION: usize = 14;
  pub const SAMPLE_COST_NS: usize = 15;
  pub const EXIT_AT_MS: usize = 16;
  pub const HEAP_USED: usize = 17;
  pub const HEAP_TOTAL: usize = 18;
  pub const HEAP_LIMIT: usize = 19;
  pub const EXTERNAL: usize = 20;
  pub const HEAP_SAMPLED_AT_MS: usize = 21;
  pub const COUNT: usize = 22;
}

pub const SLOT_NAMES: [&str; slot::COUNT] = [
  "seq",
  "sampledAtMs",
  "samples",
  "rss",
  "containerUsage",
  "containerLimit",
  "effectiveLimit",
  "systemTotal",
  "systemAvailable",
  "oom",
  "oomKill",
  "levelRss",
  "levelHeapUsed",
  "levelContainer",
  "cgroupVersion",
  "sampleCostNs",
  "exitAtMs",
  "heapUsed",
  "heapTotal",
  "heapLimit",
  "external",
  "heapSampledAtMs",
];

pub struct Shared {
  slots: Box<[AtomicU64]>,
}

impl Shared {
  pub fn new() -> Self {
    let slots: Vec<AtomicU64> = (0..slot::COUNT)
      .map(|i| {
        let init = if i == slot::SEQ || i == slot::SAMPLES {
          0.0
        } else {
          -1.0
        };
        AtomicU64::new(f64::to_bits(init))
      })
      .collect();
    Shared {
      slots: slots.into_boxed_slice(),
    }
  }

  pub fn get(&self, i: usize) -> f64 {
    f64::from_bits(self.slots[i].load(Ordering::Acquire))
  }

  pub fn set(&self, i: usize, v: f64) {
    self.slots[i].store(v.to_bits(), Ordering::Release)
  }

  /// The slots as raw memory, for the JS `Float64Array` view. Valid while `self` lives.
  pub fn as_mut_ptr(&self) -> *mut f64 {
    self.slots.as_ptr() as *mut f64
  }

  /// Writes the sampler's slots as one consistent group (seqlock: readers retry while the
  /// sequence is odd or changed).
  fn publish(&self, values: &[(usize, f64)]) {
    let seq = self.get(slot::SEQ);
    self.set(slot::SEQ, seq + 1.0);
    std::sync::atomic::fence(Ordering::Release);
    for &(i, v) in values {
      self.set(i, v);
    }
    self.set(slot::SEQ, seq + 2.0);
  }
}

fn opt(v: Option<u64>) -> f64 {
  v.map_or(-1.0, |v| v as f64)
}

pub fn wall_ms() -> f64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Reads a whole small file from offset 0 with `pread` on a kept-open descriptor: no open/close
/// per sample, which is what makes one sample cost well under a microsecond for `statm`.
#[cfg(unix)]
fn pread_str<'b>(file: &File, buf: &'b mut Vec<u8>) -> Option<&'b str> {
  use std::os::unix::fs::FileExt;
  let mut len = 0;
  loop {
    if len == buf.len() {
      buf.resize(buf.len() * 2, 0);
    }
    let want = buf.len() - len;
    let n = file.read_at(&mut buf[len..], len as u64).ok()?;
    len += n;
    // A short read is the end of a /proc or cgroup file: one syscall per sample, not two.
    if n < want {
      break;
    }
  }
  std::str::from_utf8(&buf[..len]).ok()
}

#[cfg(not(unix))]
fn pread_str<'b>(file: &File, buf: &'b mut Vec<u8>) -> Option<&'b str> {
  use std::io::{Read, Seek, SeekFrom};
  let mut f = file;
  f.seek(SeekFrom::Start(0)).ok()?;
  buf.clear();
  f.read_to_end(buf).ok()?;
  std::str::from_utf8(buf).ok()
}

/// The data sources of one sampler, opened once.
pub struct Probe {
  #[cfg(target_os = "linux")]
  statm: Option<File>,
  page_size: f64,
  pub cgroup: Option<Cgroup>,
  stat: Option<File>,
  current: Option<File>,
  last_anon: Option<u64>,
  events: Option<File>,
  system: Option<sysinfo::System>,
  #[cfg(not(target_os = "linux"))]
  pid: Option<sysinfo::Pid>,
  buf: Vec<u8>,
  pub raw_limit: Option<u64>,
  pub total: u64,
  pub available: u64,
  pub oom: Option<u64>,
  pub oom_kill: Option<u64>,
}

impl Probe {
  /// Opens the sources under `root` (`/` in production).
  pub fn open(root: &Path) -> Probe {
    #[cfg(target_os = "linux")]
    let statm = File::open(root.join("proc/self/statm")).ok();
    // SAFETY: sysconf has no preconditions.
    #[cfg(unix)]
    let page_size = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
      n if n > 0 => n as f64,
      _ => 4096.0,
    };
    #[cfg(not(unix))]
    let page_size = 4096.0;
    let cgroup = cgroup::locate(root);
    let stat = cgroup.as_ref().and_then(|c| File::open(c.stat_file()).ok());
    let current = cgroup
      .as_ref()
      .and_then(|c| File::open(c.current_file()).ok());
    let events = cgroup
      .as_ref()
      .and_then(|c| c.events_file())
      .and_then(|p| File::open(p).ok());
    let mut probe = Probe {
      #[cfg(target_os = "linux")]
      statm,
      page_size,
      cgroup,
      stat,
      current,
      last_anon: None,
      events,
      system: sysinfo::System::new().ok(),
      #[cfg(not(target_os = "linux"))]
      pid: sysinfo::get_current_pid().ok(),
      buf: vec![0; 8192],
      raw_limit: None,
      total: 0,
      available: 0,
      oom: None,
      oom_kill: None,
    };
    probe.refresh_slow();
    probe
  }

  /// Resident set size of this process, in bytes.
  #[cfg(target_os = "linux")]
  pub fn rss(&mut self) -> Option<u64> {
    let text = pread_str(self.statm.as_ref()?, &mut self.buf)?;
    // statm: size resident shared text lib data dt (pages)
    let pages: f64 = text.split(' ').nth(1)?.parse().ok()?;
    Some((pages * self.page_size) as u64)
  }

  #[cfg(not(target_os = "linux"))]
  pub fn rss(&mut self) -> Option<u64> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
    let pid = self.pid?;
    let system = self.system.as_mut()?;
    system.refresh_processes_specifics(
      ProcessesToUpdate::Some(&[pid]),
      false,
      ProcessRefreshKind::nothing().with_memory(),
    );
    system.process(pid).map(|p| p.memory())
  }

  /// Anonymous memory of the cgroup (v2 `anon`, v1 `total_rss`): what the OOM killer weighs,
  /// without the page cache that `memory.current` / `usage_in_bytes` include.
  pub fn container_usage(&mut self) -> Option<u64> {
    let key = self.cgroup.as_ref()?.usage_key();
    let text = pread_str(self.stat.as_ref()?, &mut self.buf)?;
    cgroup::stat_value(text, key)
  }

  /// Container usage for thresholds, cheaply. `memory.stat` costs far more than one number to
  /// read (the kernel formats ~40 counters; v1 sums them over the hierarchy), so it is read only
  /// when `exact` (once a second, and on the first sample) or when the total usage
  /// (`memory.current` / `usage_in_bytes`, one number) reaches `floor`, the lowest threshold the
  /// value is compared with. Below it, anonymous memory is below too (it is part of the total),
  /// and the value reported is `min(last anon, total)`: never above the truth's bound, so no
  /// threshold can fire on it. With no container threshold to compare with (`floor` infinite:
  /// none set, or percentages of a limit the host does not have), not even the total is read:
  /// the last exact value is reported, and the usual sample is the RSS read alone.
  pub fn container_usage_bounded(&mut self, floor: f64, exact: bool) -> Option<u64> {
    if !exact && floor.is_infinite() && self.last_anon.is_some() {
      return self.last_anon;
    }
    if !exact {
      if let (Some(file), Some(last)) = (self.current.as_ref(), self.last_anon) {
        if let Some(total) = pread_str(file, &mut self.buf).and_then(cgroup::parse_number) {
          if (total as f64) < floor {
            return Some(last.min(total));
          }
        }
      }
    }
    let anon = self.container_usage();
    self.last_anon = anon;
    anon
  }

  /// The figures that change slowly: limits, OOM counters, system memory (about 20 µs with
  /// `sysinfo`, so once a second rather than every sample).
  pub fn refresh_slow(&mut self) {
    if let Some(system) = self.system.as_mut() {
      system.refresh_memory_specifics(sysinfo::MemoryRefreshKind::nothing().with_ram());
      self.total = system.total_memory();
      self.available = system.available_memory();
    }
    self.raw_limit = self.cgroup.as_ref().and_then(|c| c.raw_limit());
    if let Some(events) = self.events.as_ref() {
      if let Some(text) = pread_str(events, &mut self.buf) {
        self.oom = cgroup::stat_value(text, "oom");
        self.oom_kill = cgroup::stat_value(text, "oom_kill");
      }
    }
  }

  pub fn container_limit(&self) -> Option<u64> {
    cgroup::normalize_limit(self.raw_limit, self.total)
  }

  /// The smallest real limit: the container's, else physical memory.
  pub fn effective_limit(&self) -> Option<u64> {
    self
      .container_limit()
      .or((self.total > 0).then_some(self.total))
  }
}

/// The three watched metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
  Rss = 0,
  HeapUsed = 1,
  Container = 2,
}

impl Metric {
  pub const ALL: [Metric; 3] = [Metric::Rss, Metric::HeapUsed, Metric::Container];

  pub fn as_str(self) -> &'static str {
    match self {
      Metric::Rss => "rss",
      Metric::HeapUsed => "heapUsed",
      Metric::Container => "container",
    }
  }

  fn level_slot(self) -> usize {
    match self {
      Metric::Rss => slot::LEVEL_RSS,
      Metric::HeapUsed => slot::LEVEL_HEAP_USED,
      Metric::Container => slot::LEVEL_CONTAINER,
    }
  }
}

pub struct ExitSpec {
  pub grace: Duration,
  pub code: i32,
}

pub struct Config {
  pub interval: Duration,
  /// Limits per metric, indexed by `Metric as usize`.
  pub specs: [Option<LevelSpec>; 3],
  pub exit: Option<ExitSpec>,
}

/// A level change, for the JS thread.
#[derive(Debug, Clone)]
pub struct Event {
  /// "warn" | "critical" | "recover"
  pub kind: &'static str,
  pub metric: Metric,
  pub value: f64,
  pub limit: f64,
  pub from: Level,
  pub to: Level,
  pub at_ms: f64,
  /// Wall-clock time (ms) at which the process will be ended, when `exit` was triggered.
  pub exit_at_ms: Option<f64>,
}

/// Stop signal for the sampler thread.
#[derive(Default)]
pub struct Control {
  stopped: Mutex<bool>,
  wake: Condvar,
}

impl Control {
  pub fn stop(&self) {
    *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
    self.wake.notify_all();
  }

  /// Sleeps until `until` or until stopped; returns false when stopped.
  fn sleep_until(&self, until: Instant) -> bool {
    let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
    loop {
      if *stopped {
        return false;
      }
      let now = Instant::now();
      if now >= until {
        return true;
      }
      stopped = self
        .wake
        .wait_timeout(stopped, until - now)
        .unwrap_or_else(|e| e.into_inner())
        .0;
    }
  }
}

/// One sample of the hot path (RSS + container usage, see [`Probe::container_usage_bounded`]),
/// publishing it. Returns (rss, container).
pub fn sample(
  probe: &mut Probe,
  shared: &Shared,
  count: f64,
  container_floor: f64,
  exact: bool,
) -> (Option<u64>, Option<u64>) {
  let started = Instant::now();
  let rss = probe.rss();
  let container = probe.container_usage_bounded(container_floor, exact);
  let cost = started.elapsed().as_nanos() as f64;
  shared.publish(&[
    (slot::SAMPLED_AT_MS, wall_ms()),
    (slot::SAMPLES, count),
    (slot::RSS, opt(rss)),
    (slot::CONTAINER_USAGE, opt(container)),
    (slot::CONTAINER_LIMIT, opt(probe.container_limit())),
    (slot::EFFECTIVE_LIMIT, opt(probe.effective_limit())),
    (
      slot::SYSTEM_TOTAL,
      opt((probe.total > 0).then_some(probe.total)),
    ),
    (
      slot::SYSTEM_AVAILABLE,
      opt((probe.total > 0).then_some(probe.available)),
    ),
    (slot::OOM, opt(probe.oom)),
    (slot::OOM_KILL, opt(probe.oom_kill)),
    (
      slot::CGROUP_VERSION,
      probe
        .cgroup
        .as_ref()
        .map_or(0.0, |c| c.version.number() as f64),
    ),
    (slot::SAMPLE_COST_NS, cost),
  ]);
  (rss, container)
}

/// The sampler thread's body. `emit` delivers an event to JS (never blocks).
pub fn run(
  config: Config,
  shared: Arc<Shared>,
  control: Arc<Control>,
  mut emit: impl FnMut(Event),
) {
  let mut probe = Probe::open(Path::new("/"));
  let mut hysteresis: [Option<Hysteresis>; 3] = config.specs.map(|s| s.map(Hysteresis::new));
  let start = Instant::now();
  let slow_every = config.interval.max(Duration::from_secs(1));
  let mut next = start;
  let mut slow_due = start + slow_every;
  let mut exit_at: Option<(Instant, String)> = None;
  let mut count = 0.0;
  let mut transitions = Vec::new();
  loop {
    let wake = match &exit_at {
      Some((at, _)) => next.min(*at),
      None => next,
    };
    if !control.sleep_until(wake) {
      return;
    }
    let now = Instant::now();
    if let (Some((at, why)), Some(exit)) = (&exit_at, &config.exit) {
      if now >= *at {
        // Still alive after the grace period: the loop is stuck or cleanup hangs.
        let _ = writeln!(
          std::io::stderr(),
          "bulwark: memory critical ({why}); exiting with code {} after {} ms of grace",
          exit.code,
          exit.grace.as_millis()
        );
        hard_exit(exit.code);
      }
    }
    if now < next {
      continue;
    }
    next += config.interval;
    if next <= now {
      next = now + config.interval; // missed ticks (the machine was suspended): skip them
    }
    let slow = now >= slow_due || count == 0.0;
    if slow {
      probe.refresh_slow();
      slow_due = now + slow_every;
    }
    count += 1.0;
    let floor = config.specs[Metric::Container as usize].map_or(f64::INFINITY, |spec| {
      let base = probe.container_limit().map(|b| b as f64);
      [spec.warn, spec.critical]
        .into_iter()
        .flatten()
        .filter_map(|t| t.resolve(base))
        .fold(f64::INFINITY, f64::min)
        * spec.recover_below
    });
    let (rss, container) = sample(&mut probe, &shared, count, floor, slow);
    let now_ms = now.duration_since(start).as_secs_f64() * 1000.0;
    let heap_used = shared.get(slot::HEAP_USED);
    let heap_limit = shared.get(slot::HEAP_LIMIT);
    for metric in Metric::ALL {
      let Some(h) = hysteresis[metric as usize].as_mut() else {
        continue;
      };
      let (value, base) = match metric {
        Metric::Rss => (rss.map(|v| v as f64), probe.effective_limit()),
        Metric::HeapUsed => (
          (heap_used >= 0.0).then_some(heap_used),
          (heap_limit > 0.0).then_some(heap_limit as u64),
        ),
        Metric::Container => (container.map(|v| v as f64), probe.container_limit()),
      };
      let Some(value) = value else { continue };
      transitions.clear();
      h.update(value, base.map(|b| b as f64), now_ms, &mut transitions);
      shared.set(metric.level_slot(), h.level() as u8 as f64);
      for t in transitions.iter() {
        let (kind, from, to, limit) = match *t {
          Transition::Up { from, level, limit } => (level.as_str(), from, level, limit),
          Transition::Down { from, to, limit } => ("recover", from, to, limit),
        };
        let mut exit_at_ms = None;
        if to == Level::Critical && kind == "critical" {
          if let Some(exit) = &config.exit {
            if exit_at.is_none() {
              let why = format!("{} {} >= {}", metric.as_str(), value as u64, limit as u64);
              exit_at = Some((now + exit.grace, why));
              let at = wall_ms() + exit.grace.as_secs_f64() * 1000.0;
              shared.set(slot::EXIT_AT_MS, at);
            }
            exit_at_ms = Some(shared.get(slot::EXIT_AT_MS));
          }
        }
        emit(Event {
          kind,
          metric,
          value,
          limit,
          from,
          to,
          at_ms: wall_ms(),
          exit_at_ms,
        });
      }
    }
  }
}

/// Ends the process from the sampler thread. `_exit` rather than `exit`: running the atexit
/// handlers and static destructors on this thread while V8 runs JS on the main thread can crash;
/// `_exit` ends every thread at once with the code.
fn hard_exit(code: i32) -> ! {
  #[cfg(unix)]
  // SAFETY: `_exit` never returns and has no preconditions.
  unsafe {
    libc::_exit(code)
  }
  #[cfg(not(unix))]
  std::process::exit(code)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn probe_reads_this_process() {
    let mut probe = Probe::open(Path::new("/"));
    let rss = probe.rss().expect("rss");
    assert!(rss > 1 << 20, "{rss}");
    assert!(probe.total > rss);
    assert!(probe.effective_limit().unwrap() <= probe.total);
  }

  #[test]
  fn container_usage_reads_memory_stat_only_near_the_thresholds() {
    let mut probe = Probe::open(Path::new("/"));
    let Some(exact) = probe.container_usage_bounded(f64::INFINITY, true) else {
      return; // no cgroup visible here
    };
    // Far below the floor: bounded by the last exact value.
    let cheap = probe.container_usage_bounded(f64::MAX, false).unwrap();
    assert!(cheap <= exact, "{cheap} > {exact}");
    assert_eq!(probe.last_anon, Some(exact));
    // No threshold at all: nothing is read, the last exact value is reported as it is.
    probe.last_anon = Some(1);
    assert_eq!(probe.container_usage_bounded(f64::INFINITY, false), Some(1));
    // Floor 0: every sample is exact and refreshes the last value.
    probe.last_anon = Some(1);
    let again = probe.container_usage_bounded(0.0, false).unwrap();
    assert_eq!(probe.last_anon, Some(again));
    assert!(again > 1);
  }

  #[test]
  fn probe_without_sources_reports_nothing() {
    let dir = std::env::temp_dir().join(format!("bulwark-probe-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut probe = Probe::open(&dir);
    #[cfg(target_os = "linux")]
    assert_eq!(probe.rss(), None);
    assert_eq!(probe.container_usage(), None);
    assert_eq!(probe.container_limit(), None);
    std::fs::remove_dir_all(&dir).unwrap();
  }

  #[test]
  fn publish_keeps_the_sequence_even_and_values_readable() {
    let shared = Shared::new();
    let mut probe = Probe::open(Path::new("/"));
    sample(&mut probe, &shared, 1.0, f64::INFINITY, true);
    sample(&mut probe, &shared, 2.0, f64::INFINITY, false);
    assert_eq!(shared.get(slot::SEQ), 4.0);
    assert_eq!(shared.get(slot::SAMPLES), 2.0);
    assert!(shared.get(slot::RSS) > 0.0);
    assert_eq!(shared.get(slot::HEAP_USED), -1.0);
    assert_eq!(SLOT_NAMES.len(), slot::COUNT);
    assert_eq!(SLOT_NAMES[slot::HEAP_SAMPLED_AT_MS], "heapSampledAtMs");
  }

  #[test]
  fn thread_emits_warn_for_a_limit_below_current_rss_and_stops() {
    let shared = Arc::new(Shared::new());
    let control = Arc::new(Control::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let spec = LevelSpec {
      warn: Some(super::super::trigger::Threshold::Bytes(1.0)),
      critical: None,
      recover_below: 0.9,
      sustain_ms: 0.0,
    };
    let config = Config {
      interval: Duration::from_millis(5),
      specs: [Some(spec), None, None],
      exit: None,
    };
    let (s, c) = (shared.clone(), control.clone());
    let thread = std::thread::spawn(move || run(config, s, c, move |e| tx.send(e).unwrap()));
    let event = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(event.kind, "warn");
    assert_eq!(event.metric, Metric::Rss);
    assert!(event.value > 1.0);
    control.stop();
    thread.join().unwrap();
    assert_eq!(shared.get(slot::LEVEL_RSS), 1.0);
    // Only one event: the level does not re-fire on later samples.
    assert!(rx.try_recv().is_err());
  }
}
