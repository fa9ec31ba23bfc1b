//! Facts about the loaded addon, and the hook that proves a Rust panic cannot take Node down.

use napi::Env;
use napi_derive::napi;

use crate::env_state;
use crate::error::Result;

#[napi(object)]
pub struct RuntimeInfo {
  /// Version of the native addon (the crate version).
  pub addon_version: String,
  /// Process-unique id of this instance of the addon. Each worker, and each load after a
  /// `require.cache` reset, is its own instance.
  pub instance_id: u32,
  /// Instances alive in the process (their environment has not shut down).
  pub live_instances: u32,
}

#[napi]
pub fn runtime_info(env: Env) -> Result<RuntimeInfo> {
  let state = env_state::state(&env).map_err(crate::error::BulwarkError::from)?;
  Ok(RuntimeInfo {
    addon_version: env!("CARGO_PKG_VERSION").to_string(),
    instance_id: state.id as u32,
    live_instances: env_state::live_instances() as u32,
  })
}

/// Panics on purpose. Exists so the test suite can prove a panic surfaces as a JS `Error`
/// instead of aborting the process; not part of the public JS API.
#[napi(js_name = "__panicForTest", catch_unwind)]
pub fn panic_for_test(message: String) -> Result<()> {
  panic!("{message}");
}
