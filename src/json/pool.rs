//! The pool: its own threads fed by a bounded crossbeam channel (not libuv's shared 4-thread
//! pool, which fs, dns and crypto also use). Plain Rust: results leave through a `deliver`
//! callback, which the napi layer wires to a thread-safe function and the unit tests to a
//! channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::scan::{position, scan, Failure, ScanOptions};
use crate::error::{BulwarkError, ErrorCode};

pub enum Input {
  Bytes(Vec<u8>),
  Utf16(Vec<u16>),
}

pub struct Job {
  pub id: u32,
  pub input: Input,
  pub options: ScanOptions,
}

/// A failure located for JavaScript: `position` is the JS string index (UTF-16 units) of the
/// decoded text, like `JSON.parse`'s, and `line`/`column` are 1-based.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
  pub code: ErrorCode,
  pub message: String,
  pub position: usize,
  pub line: usize,
  pub column: usize,
  pub limit: Option<f64>,
}

pub struct Outcome {
  pub id: u32,
  pub result: Result<Vec<u32>, Located>,
  pub wait_ns: f64,
  pub parse_ns: f64,
}

/// Runs the scan on any input and locates a failure.
pub fn run(
  input: &Input,
  options: &ScanOptions,
  cancel: Option<&AtomicBool>,
) -> Result<Vec<u32>, Located> {
  let locate = |f: Failure, pos: (usize, usize, usize)| Located {
    code: f.code,
    message: f.message,
    position: pos.0,
    line: pos.1,
    column: pos.2,
    limit: f.limit,
  };
  match input {
    Input::Bytes(b) => scan(b.as_slice(), options, cancel).map_err(|f| {
      let p = position(b.as_slice(), f.offset);
      locate(f, p)
    }),
    Input::Utf16(w) => scan(w.as_slice(), options, cancel).map_err(|f| {
      let p = position(w.as_slice(), f.offset);
      locate(f, p)
    }),
  }
}

/// Marks the calling pool thread as batch work (Linux `SCHED_BATCH`), so that waking it does not
/// preempt the JS thread that woke it. Without it, on a machine with few cores the kernel ran a
/// freshly woken pool thread on the JS thread's core at once: `submit` returned only after the
/// scan had run for a while (measured: 0.2–1.6 ms per parse on the JS thread, on 2 cores with
/// other load).
fn yield_to_js_thread() {
  #[cfg(target_os = "linux")]
  {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter block; failure
    // leaves the default policy, which is only slower.
    unsafe {
      libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
  }
}

struct Queued {
  job: Job,
  cancel: Arc<AtomicBool>,
  enqueued: Instant,
}

type Deliver = Arc<dyn Fn(Outcome) + Send + Sync>;

pub struct Pool {
  tx: Option<Sender<Queued>>,
  threads: Vec<JoinHandle<()>>,
  cancels: Arc<Mutex<HashMap<u32, Arc<AtomicBool>>>>,
  /// Keeps the channel connected even with no threads (tests).
  _rx: Receiver<Queued>,
}

impl Pool {
  pub fn start(threads: usize, max_queue: usize, deliver: Deliver) -> Result<Pool, BulwarkError> {
    let (tx, rx) = bounded::<Queued>(max_queue);
    let cancels: Arc<Mutex<HashMap<u32, Arc<AtomicBool>>>> = Arc::default();
    let mut handles = Vec::with_capacity(threads);
    for n in 0..threads {
      let rx = rx.clone();
      let deliver = deliver.clone();
      let cancels = cancels.clone();
      let handle = std::thread::Builder::new()
        .name(format!("bulwark-json-{n}"))
        .spawn(move || {
          yield_to_js_thread();
          while let Ok(q) = rx.recv() {
            let started = Instant::now();
            let wait_ns = started.duration_since(q.enqueued).as_nanos() as f64;
            if q.cancel.load(Ordering::Relaxed) {
              cancels.lock().unwrap().remove(&q.job.id);
              continue;
            }
            // A panic in the scan (a bug) fails this job only; the thread keeps serving.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
              run(&q.job.input, &q.job.options, Some(&q.cancel))
            }))
            .unwrap_or_else(|_| {
              Err(Located {
                code: ErrorCode::Internal,
                message: "bulwark internal error: the JSON scan panicked".to_string(),
                position: 0,
                line: 1,
                column: 1,
                limit: None,
              })
            });
            let parse_ns = started.elapsed().as_nanos() as f64;
            cancels.lock().unwrap().remove(&q.job.id);
            if q.cancel.load(Ordering::Relaxed) {
              continue;
            }
            drop(q.job.input);
            deliver(Outcome {
              id: q.job.id,
              result,
              wait_ns,
              parse_ns,
            });
          }
        })
        .map_err(|e| BulwarkError::new(ErrorCode::Internal, format!("cannot start thread: {e}")))?;
      handles.push(handle);
    }
    Ok(Pool {
      tx: Some(tx),
      threads: handles,
      cancels,
      _rx: rx,
    })
  }

  /// Queues a job; refuses when the queue holds `max_queue` jobs or the pool is closed.
  pub fn submit(&self, job: Job) -> Result<(), BulwarkError> {
    let Some(tx) = &self.tx else {
      return Err(BulwarkError::new(
        ErrorCode::Closed,
        "The JSON pool is closed",
      ));
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let id = job.id;
    self.cancels.lock().unwrap().insert(id, cancel.clone());
    let queued = Queued {
      job,
      cancel,
      enqueued: Instant::now(),
    };
    match tx.try_send(queued) {
      Ok(()) => Ok(()),
      Err(e) => {
        self.cancels.lock().unwrap().remove(&id);
        Err(match e {
          TrySendError::Full(_) => BulwarkError::new(
            ErrorCode::PoolOverloaded,
            "The JSON pool's queue is full (maxQueue)",
          ),
          TrySendError::Disconnected(_) => {
            BulwarkError::new(ErrorCode::Closed, "The JSON pool is closed")
          }
        })
      }
    }
  }

  /// Stops a queued or running job; its result is never delivered.
  pub fn cancel(&self, id: u32) {
    if let Some(c) = self.cancels.lock().unwrap().get(&id) {
      c.store(true, Ordering::Relaxed);
    }
  }

  pub fn queue_depth(&self) -> usize {
    self.tx.as_ref().map_or(0, |tx| tx.len())
  }

  /// Cancels everything, lets the threads drain the queue (cancelled jobs are skipped, a running
  /// scan stops within 65,536 values) and joins them.
  pub fn close(&mut self) {
    for c in self.cancels.lock().unwrap().values() {
      c.store(true, Ordering::Relaxed);
    }
    self.tx = None;
    for h in self.threads.drain(..) {
      let _ = h.join();
    }
  }
}

impl Drop for Pool {
  fn drop(&mut self) {
    self.close();
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::mpsc;
  use std::time::Duration;

  fn job(id: u32, text: &str) -> Job {
    Job {
      id,
      input: Input::Bytes(text.as_bytes().to_vec()),
      options: ScanOptions::default(),
    }
  }

  #[test]
  fn delivers_results_and_failures() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let mut pool =
      Pool::start(2, 8, Arc::new(move |o| tx.lock().unwrap().send(o).unwrap())).unwrap();
    pool.submit(job(1, "[1,2]")).unwrap();
    pool.submit(job(2, "{\"a\":\n x}")).unwrap();
    let mut got: Vec<Outcome> = (0..2)
      .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
      .collect();
    got.sort_by_key(|o| o.id);
    assert!(got[0].result.is_ok());
    let err = got[1].result.as_ref().unwrap_err();
    assert_eq!(err.code, ErrorCode::JsonSyntax);
    assert_eq!((err.position, err.line, err.column), (7, 2, 2));
    pool.close();
    assert_eq!(
      pool.submit(job(3, "1")).unwrap_err().code,
      ErrorCode::Closed
    );
  }

  #[cfg(target_os = "linux")]
  #[test]
  fn pool_threads_run_as_batch_work() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    // `deliver` runs on the pool thread: report that thread's policy.
    let pool = Pool::start(
      1,
      2,
      Arc::new(move |_| {
        let policy = unsafe { libc::sched_getscheduler(0) };
        tx.lock().unwrap().send(policy).unwrap();
      }),
    )
    .unwrap();
    pool.submit(job(1, "1")).unwrap();
    let policy = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(policy, libc::SCHED_BATCH);
  }

  #[test]
  fn a_full_queue_refuses_and_cancelled_jobs_are_not_delivered() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    // No threads: nothing drains the queue.
    let pool = Pool::start(0, 2, Arc::new(move |o| tx.lock().unwrap().send(o).unwrap())).unwrap();
    pool.submit(job(1, "1")).unwrap();
    pool.submit(job(2, "2")).unwrap();
    assert_eq!(pool.queue_depth(), 2);
    assert_eq!(
      pool.submit(job(3, "3")).unwrap_err().code,
      ErrorCode::PoolOverloaded
    );
    drop(pool);
    assert!(rx.try_recv().is_err());
  }
}
