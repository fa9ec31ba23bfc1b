//! Per-environment state.
//!
//! Node runs one JavaScript environment per thread: the main thread and every `worker_threads`
//! worker each run `module_exports` again and each has its own event loop. Nothing JS-related
//! may live in a `static`; what a capability needs per environment hangs off [`EnvState`], which
//! is the environment's napi instance data.
//!
//! Teardown: a capability that owns threads or thread-safe functions registers a closure with
//! [`EnvState::on_teardown`]. The closures run from the environment's cleanup hook, while the
//! environment can still take napi calls (Node before 24.14 can abort if a native thread releases
//! a thread-safe function after its worker's environment is gone), newest first.
//!
//! Node gives every load of the addon its own napi environment: a worker, and also a second
//! `require` after `require.cache` was cleared, gets a fresh [`EnvState`], while objects made by
//! an earlier load keep using theirs. "Instance" below means one such load.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use napi::Env;

static NEXT_INSTANCE_ID: AtomicU64 = AtomicU64::new(1);
static LIVE_INSTANCES: AtomicUsize = AtomicUsize::new(0);

type Teardown = Box<dyn FnOnce()>;

pub struct EnvState {
  /// Process-unique id of this instance (1 for the first load in the process).
  pub id: u64,
  teardown: Rc<RefCell<Vec<Teardown>>>,
}

impl EnvState {
  /// Runs `f` when this environment shuts down (process exit or worker termination).
  pub fn on_teardown(&self, f: impl FnOnce() + 'static) {
    self.teardown.borrow_mut().push(Box::new(f));
  }
}

/// Called once per `module_exports` run, i.e. once per instance.
pub fn init(env: &Env) -> napi::Result<()> {
  let teardown: Rc<RefCell<Vec<Teardown>>> = Rc::default();
  let state = EnvState {
    id: NEXT_INSTANCE_ID.fetch_add(1, Ordering::Relaxed),
    teardown: teardown.clone(),
  };
  env.set_instance_data(state, (), |_| {})?;
  LIVE_INSTANCES.fetch_add(1, Ordering::SeqCst);
  env.add_env_cleanup_hook(teardown, |teardown| {
    // Take the list first: a closure may register more teardown work while it runs.
    loop {
      let next = teardown.borrow_mut().pop();
      match next {
        Some(f) => f(),
        None => break,
      }
    }
    LIVE_INSTANCES.fetch_sub(1, Ordering::SeqCst);
  })?;
  Ok(())
}

/// The state of the environment `env` belongs to. Only call on that environment's JS thread.
pub fn state(env: &Env) -> napi::Result<&'static mut EnvState> {
  env.get_instance_data::<EnvState>()?.ok_or_else(|| {
    napi::Error::new(
      napi::Status::GenericFailure,
      "bulwark: environment state missing (module_exports did not run)",
    )
  })
}

/// Instances whose environment has not shut down yet.
pub fn live_instances() -> usize {
  LIVE_INSTANCES.load(Ordering::SeqCst)
}
