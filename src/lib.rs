//! bulwark: keeps production Node servers alive under pressure.
//!
//! This file only wires modules together. Each capability lives in its own folder under `src/`
//! with its docs and tests; shared pieces (errors, per-environment state) are single files.

#![deny(clippy::all)]
// napi-derive leaves out its export registration under `cfg(test)`, so in the unit-test build
// every export looks unused.
#![cfg_attr(test, allow(dead_code))]

mod env_state;
mod error;
mod json;
mod loop_delay;
mod loop_hooks;
mod memory;
mod pressure;
mod regex;
mod runtime;
mod stall;

use napi::{bindgen_prelude::Object, Env};
use napi_derive::napi;

#[napi(module_exports)]
pub fn init(_exports: Object, env: Env) -> napi::Result<()> {
  env_state::init(&env)
}
