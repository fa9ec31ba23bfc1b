//! SafeRegExp's engine: JavaScript regular expressions in linear time.
//!
//! **What.** A JS pattern (UTF-16 source, flags `dgimsuvy`) is parsed by `oxc_regular_expression`
//! (a complete ECMAScript parser: Annex B, `u`/`v`, named groups, modifiers) and its syntax tree
//! is translated node by node into `regex-syntax` HIR (`translate.rs`), compiled by
//! `regex-automata`'s meta engine (lazy DFA / one-pass / bounded backtracker / PikeVM: all
//! linear in the input). Pattern strings are never rewritten into another regex dialect.
//!
//! **Text encoding (the key design choice).** JS strings are UTF-16 with possible lone
//! surrogates; the engine runs over bytes. Haystacks are encoded per unit: without `u` every
//! UTF-16 code unit (each half of a pair too) becomes its own 1–3 byte generalized-UTF-8
//! sequence, so `.` and classes consume one code unit as V8 does; with `u`/`v`, pairs become one
//! 4-byte sequence and lone surrogates their 3-byte form (WTF-8). The HIR is built over the same
//! encoding (`charset.rs`), so lone surrogates are matchable and survive `replace`. When a
//! multiline `^`/`$` occurs, the four JS line terminators are encoded as `0A F8+k 0A`, so
//! regex-automata's `StartLF`/`EndLF` looks fire exactly at JS line starts/ends (no byte of any
//! other unit is `0A`, `F8..FB` never occur otherwise, so no match can start inside a unit; the
//! only false positives are empty matches inside a framed unit, skipped by `search`). Offsets map
//! back to UTF-16 through a `u16 → byte` table (searched backwards), skipped for ASCII text.
//!
//! **JS semantics.** `\d \w \b` ASCII; `\s` the JS set incl. U+FEFF; `.` without the four line
//! terminators unless `s`; case-insensitivity by the spec's `Canonicalize` (legacy
//! `toUpperCase` table without `u`, simple case folding with it), applied to whole classes
//! before negation; captures inside a repeated group are reset at each iteration as in JS (a
//! hidden capture around the repeated body records the last iteration; captures outside it are
//! dropped). Backreferences and lookaround are rejected (`ERR_BULWARK_REGEX_UNSUPPORTED`) with
//! the position, never approximated.
//!
//! **Per call.** JS holds a `NativeRegex` as an `External` and calls plain `regex_*`
//! functions (cheaper than a class method). Strings are read with raw
//! `napi_get_value_string_utf16` into buffers the regex reuses (one napi call for a short
//! string); the ASCII check and narrowing are branch-free loops that vectorize. Byte offsets map
//! back to UTF-16 by a galloping search from the match's lower bound, so a global scan's
//! consecutive matches stay cheap.
//!
//! **Global iteration in one call.** `regex_exec_many` runs the spec's global loop
//! (`Walk::Global`: after an empty match advance one unit, one code point with `u`/`v`; sticky
//! stops at the first miss) or `Symbol.split`'s loop (`Walk::Split`) natively and returns up to
//! a buffer's worth of `[start, end, groups…]` records; without captures only the lazy DFA
//! runs (no PikeVM). lib/regex.js builds `match`/`replace`/`matchAll`/`split` results from them.
//!
//! **Prefix windows.** `test()` without `g`/`y` asks only whether a match exists: no captures,
//! an earliest-match DFA search when no match can be empty, and first over a 16 Ki-unit prefix
//! (read alone: napi copies only what fits, and a flat or sliced string is not flattened; a cons
//! string is flattened whole by V8 first). A match inside `[0, w)` with the units after `w`
//! visible to look-around (`Input::range` keeps bytes outside the span for look-around, checked in
//! regex-automata's `hybrid::search::eoi_fwd`) is a match of the whole string; otherwise the whole
//! string is searched. `exec` on a new long string does the same when the pattern's match length
//! is bounded (`Properties::maximum_len` = L bytes) and accepts the window's leftmost-first match
//! at byte s only if s + L ≤ the window end: then every match starting at or before s also ends
//! inside the window, so the result (and captures) are the whole string's. The window is never
//! cut inside a surrogate pair.
//!
//! **Limits.** Compiled NFA ≤ 8 MiB, lazy-DFA cache ≤ 4 MiB per regex, repetition counts
//! ≤ 100 000, nesting ≤ 200 (`ERR_BULWARK_REGEX_TOO_LARGE`). Search time is O(pattern × input).
//!
//! **Known gap.** A capture that matched the empty string exactly where the last iteration of
//! its enclosing repetition begins is reported even if it was set in the previous iteration
//! (JS would report `undefined`): positions alone cannot tell the two apart.

mod charset;
mod translate;

use crate::error::{BulwarkError, ErrorCode};
use napi::bindgen_prelude::{External, Int32Array, Uint32Array};
use napi::{check_status, sys, JsString, JsValue};
use napi_derive::napi;
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::{meta, util::primitives::NonMaxUsize, Anchored, Input};
pub use translate::Flags;
use translate::GroupMeta;

const NFA_LIMIT: usize = 8 << 20;
const DFA_CACHE: usize = 4 << 20;

pub struct Compiled {
  re: meta::Regex,
  groups: Vec<GroupMeta>,
  framed: bool,
  unicode: bool,
  /// Whether some match can be empty (then empty matches inside a unit must be skipped).
  can_be_empty: bool,
  /// The longest possible match in bytes of the encoding, if bounded.
  max_len: Option<usize>,
}

fn config() -> meta::Config {
  meta::Config::new()
    .utf8_empty(false)
    .nfa_size_limit(Some(NFA_LIMIT))
    .onepass_size_limit(Some(NFA_LIMIT))
    .dfa_size_limit(Some(NFA_LIMIT))
    .hybrid_cache_capacity(DFA_CACHE)
}

fn too_large(e: impl std::fmt::Display) -> BulwarkError {
  BulwarkError::new(
    ErrorCode::RegexTooLarge,
    format!(
      "Invalid regular expression: the compiled pattern exceeds SafeRegExp's size limit ({e})"
    ),
  )
}

impl Compiled {
  pub fn new(source: &[u16], flags: Flags) -> Result<Compiled, BulwarkError> {
    let t = translate::translate(source, flags)?;
    let re = meta::Builder::new()
      .configure(config())
      .build_from_hir(&t.hir)
      .map_err(too_large)?;
    Ok(Compiled {
      re,
      can_be_empty: t.hir.properties().minimum_len() == Some(0),
      max_len: t.hir.properties().maximum_len(),
      groups: t.groups,
      framed: t.framed,
      unicode: flags.unicode || flags.sets,
    })
  }
  pub fn group_count(&self) -> usize {
    self.groups.len()
  }
}

/// A haystack in the engine's encoding. Its buffers are reused from one search to the next.
#[derive(Default)]
pub struct Hay {
  bytes: Vec<u8>,
  /// `map[i]` = byte offset of UTF-16 index `i` (len + 1 entries), when `mapped`.
  map: Vec<u32>,
  /// False when byte offsets equal UTF-16 offsets (ASCII text without framed terminators).
  mapped: bool,
  framed: bool,
}

impl Hay {
  #[cfg(test)]
  pub fn encode(units: &[u16], unicode: bool, framed: bool) -> Hay {
    let mut h = Hay::default();
    h.encode_into(units, unicode, framed);
    h
  }
  /// Re-encodes `units` into this haystack's buffers.
  pub fn encode_into(&mut self, units: &[u16], unicode: bool, framed: bool) {
    self.bytes.clear();
    self.map.clear();
    self.framed = framed;
    // Branch-free folds so the checks vectorize (`all` stops early and does not).
    let trivial = units.iter().fold(0, |a, &u| a | u) < 0x80
      && !(framed && units.iter().any(|&u| u == 0x0A || u == 0x0D));
    self.mapped = !trivial;
    if trivial {
      self.bytes.extend(units.iter().map(|&u| u as u8));
      return;
    }
    let (bytes, map) = (&mut self.bytes, &mut self.map);
    bytes.reserve(units.len() * 2);
    map.reserve(units.len() + 1);
    let mut i = 0;
    while i < units.len() {
      let u = units[i] as u32;
      map.push(bytes.len() as u32);
      if unicode
        && (0xD800..0xDC00).contains(&u)
        && i + 1 < units.len()
        && (0xDC00..0xE000).contains(&units[i + 1])
      {
        // The low half maps to the pair's start, as V8 steps back from the middle of a pair.
        map.push(bytes.len() as u32);
        let c = 0x10000 + ((u - 0xD800) << 10) + (units[i + 1] as u32 - 0xDC00);
        charset::encode_unit(c, framed, bytes);
        i += 2;
      } else {
        charset::encode_unit(u, framed, bytes);
        i += 1;
      }
    }
    map.push(bytes.len() as u32);
  }
  pub fn utf16_len(&self) -> usize {
    if self.mapped {
      self.map.len() - 1
    } else {
      self.bytes.len()
    }
  }
  fn to_byte(&self, i: usize) -> usize {
    if self.mapped {
      self.map[i] as usize
    } else {
      i
    }
  }
  /// The UTF-16 index of byte `b` (the first index whose byte offset is ≥ `b`), known to be at
  /// least `lo`: a galloping search from `lo`,
  /// so consecutive matches of a global scan cost O(log distance) in nearby memory instead of a
  /// binary search over the whole table.
  fn to_utf16_from(&self, b: usize, lo: usize) -> usize {
    if !self.mapped {
      return b;
    }
    let m = &self.map;
    let (mut lo, mut step) = (lo.min(m.len() - 1), 1);
    while lo + step < m.len() && (m[lo + step] as usize) < b {
      lo += step;
      step *= 2;
    }
    let end = (lo + step + 1).min(m.len());
    lo + m[lo..end].partition_point(|&x| (x as usize) < b)
  }
  /// Whether a match may begin at byte `p` (not inside a unit's encoding).
  fn is_boundary(&self, p: usize) -> bool {
    if p == 0 || p >= self.bytes.len() {
      return true;
    }
    let b = self.bytes[p];
    if (0x80..0xC0).contains(&b) || b >= 0xF8 {
      return false;
    }
    !(self.framed && b == 0x0A && self.bytes[p - 1] >= 0xF8)
  }
}

/// The leftmost-first match at or after byte `b` and before byte `end` (bytes after `end` are
/// still seen by look-around), skipping empty matches inside a unit's encoding. With `slots`,
/// capture slots are filled too (PikeVM / one-pass / backtracker); without, only the lazy DFA
/// runs (forward, then reverse for the start).
fn find_bytes(
  c: &Compiled,
  cache: &mut meta::Cache,
  slots: Option<&mut [Option<NonMaxUsize>]>,
  hay: &Hay,
  mut b: usize,
  end: usize,
  sticky: bool,
) -> Option<(usize, usize)> {
  let anchored = if sticky { Anchored::Yes } else { Anchored::No };
  match slots {
    Some(slots) => loop {
      let input = Input::new(&hay.bytes).range(b..end).anchored(anchored);
      c.re.search_slots_with(cache, &input, slots)?;
      let (s, e) = (slots[0].unwrap().get(), slots[1].unwrap().get());
      if s == e && !hay.is_boundary(s) {
        if sticky {
          return None;
        }
        b = s + 1;
        continue;
      }
      return Some((s, e));
    },
    None => loop {
      let input = Input::new(&hay.bytes).range(b..end).anchored(anchored);
      let m = c.re.search_with(cache, &input)?;
      if m.is_empty() && !hay.is_boundary(m.start()) {
        if sticky {
          return None;
        }
        b = m.start() + 1;
        continue;
      }
      return Some((m.start(), m.end()));
    },
  }
}

/// Whether the pattern matches somewhere in bytes `[0, end)` (bytes after `end` are seen by
/// look-around only). Without possible empty matches this is the lazy DFA's earliest-match
/// search alone: no start position, no captures.
fn exists(c: &Compiled, cache: &mut meta::Cache, hay: &Hay, end: usize) -> bool {
  if c.can_be_empty {
    return find_bytes(c, cache, None, hay, 0, end, false).is_some();
  }
  let input = Input::new(&hay.bytes).range(0..end).earliest(true);
  c.re.search_half_with(cache, &input).is_some()
}

/// Searches from UTF-16 index `start`; on a match writes `[start, end, g1s, g1e, …]` (UTF-16
/// offsets, -1 for groups that did not participate) into `out` and returns true. Without
/// `captures` only `[start, end]` is written and no capture engine runs.
#[allow(clippy::too_many_arguments)]
pub fn search(
  c: &Compiled,
  cache: &mut meta::Cache,
  slots: &mut Vec<Option<NonMaxUsize>>,
  hay: &Hay,
  start: usize,
  sticky: bool,
  captures: bool,
  out: &mut [i32],
) -> bool {
  let end = hay.bytes.len();
  search_to(c, cache, slots, hay, start, end, sticky, captures, out)
}

/// `search` for matches that end by byte `end` (bytes after it are seen by look-around only).
#[allow(clippy::too_many_arguments)]
fn search_to(
  c: &Compiled,
  cache: &mut meta::Cache,
  slots: &mut Vec<Option<NonMaxUsize>>,
  hay: &Hay,
  start: usize,
  end: usize,
  sticky: bool,
  captures: bool,
  out: &mut [i32],
) -> bool {
  if start > hay.utf16_len() {
    return false;
  }
  let b = hay.to_byte(start);
  if b > end {
    return false;
  }
  if !captures {
    let Some((s, e)) = find_bytes(c, cache, None, hay, b, end, sticky) else {
      return false;
    };
    let s16 = hay.to_utf16_from(s, start.saturating_sub(1));
    out[0] = s16 as i32;
    out[1] = hay.to_utf16_from(e, s16) as i32;
    return true;
  }
  slots.resize(c.re.group_info().slot_len(), None);
  if find_bytes(c, cache, Some(slots), hay, b, end, sticky).is_none() {
    return false;
  }
  let span = |k: usize| -> Option<(usize, usize)> {
    Some((
      slots.get(2 * k)?.as_ref()?.get(),
      slots.get(2 * k + 1)?.as_ref()?.get(),
    ))
  };
  // A match starts at or after `start`, or one unit before it (`start` inside a pair).
  let (s, e) = span(0).unwrap();
  let s16 = hay.to_utf16_from(s, start.saturating_sub(1));
  out[0] = s16 as i32;
  out[1] = hay.to_utf16_from(e, s16) as i32;
  for (i, g) in c.groups.iter().enumerate() {
    let mut valid = span(g.slot);
    let mut outer: Option<(usize, usize)> = None;
    for &it in g.iterations.iter().chain(std::iter::once(&g.slot)) {
      let here = span(it);
      valid = match (here, outer) {
        (None, _) => None,
        (Some(h), Some(o)) if h.0 < o.0 || h.1 > o.1 => None,
        (Some(h), _) => Some(h),
      };
      if valid.is_none() {
        break;
      }
      outer = valid;
    }
    let (gs, ge) = match valid {
      Some((a, b)) => (
        hay.to_utf16_from(a, s16) as i32,
        hay.to_utf16_from(b, s16) as i32,
      ),
      None => (-1, -1),
    };
    if let Some(slot) = out.get_mut(2 + 2 * i..4 + 2 * i) {
      slot[0] = gs;
      slot[1] = ge;
    }
  }
  true
}

/// RegExp's AdvanceStringIndex: one code unit, or one code point with `u`/`v`.
fn advance(units: &[u16], i: usize, unicode: bool) -> usize {
  if unicode
    && i + 1 < units.len()
    && (0xD800..0xDC00).contains(&units[i])
    && (0xDC00..0xE000).contains(&units[i + 1])
  {
    i + 2
  } else {
    i + 1
  }
}

/// How `search_many` walks the input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Walk {
  /// The global loop of `RegExp.prototype[Symbol.match]` / `[Symbol.replace]` / `matchAll`:
  /// after an empty match, advance one code unit (code point with `u`/`v`).
  Global,
  /// `RegExp.prototype[Symbol.split]`: matches that start at the end of the input, and empty
  /// matches ending where the previous piece ended, are skipped.
  Split,
}

/// Up to `out.len() / stride` consecutive matches from UTF-16 index `start`, written as
/// `stride`-sized records (`stride` = 2, or 2 + 2 × groups with `captures`); returns how many.
/// A full buffer means there may be more: call again from the last match's end (advanced past
/// it if it was empty, for `Walk::Global`).
#[allow(clippy::too_many_arguments)]
pub fn search_many(
  c: &Compiled,
  cache: &mut meta::Cache,
  slots: &mut Vec<Option<NonMaxUsize>>,
  hay: &Hay,
  units: &[u16],
  start: usize,
  sticky: bool,
  walk: Walk,
  captures: bool,
  out: &mut [i32],
) -> usize {
  let stride = if captures { 2 + 2 * c.groups.len() } else { 2 };
  let cap = out.len() / stride;
  let len = hay.utf16_len();
  let (mut p, mut q) = (start, start);
  let mut count = 0;
  while count < cap {
    let rec = &mut out[count * stride..(count + 1) * stride];
    match walk {
      Walk::Global => {
        if !search(c, cache, slots, hay, q, sticky, captures, rec) {
          break;
        }
        let (s, e) = (rec[0] as usize, rec[1] as usize);
        q = if s == e {
          advance(units, e, c.unicode)
        } else {
          e
        };
      }
      Walk::Split => {
        if q >= len || !search(c, cache, slots, hay, q, false, captures, rec) {
          break;
        }
        let (s, e) = (rec[0] as usize, rec[1] as usize);
        if s >= len {
          break;
        }
        if e == p {
          q = advance(units, s, c.unicode);
          continue;
        }
        p = e;
        q = e;
      }
    }
    count += 1;
  }
  count
}

pub fn parse_flags(flags: &str) -> Result<Flags, BulwarkError> {
  let mut f = Flags::default();
  let mut seen = String::new();
  for ch in flags.chars() {
    if seen.contains(ch) || !"dgimsuvy".contains(ch) {
      return Err(translate::syntax_err(format!(
        "Invalid flags supplied to RegExp constructor '{flags}'"
      )));
    }
    seen.push(ch);
    match ch {
      'i' => f.ignore_case = true,
      'm' => f.multiline = true,
      's' => f.dot_all = true,
      'u' => f.unicode = true,
      'v' => f.sets = true,
      _ => {}
    }
  }
  if f.unicode && f.sets {
    return Err(translate::syntax_err(format!(
      "Invalid flags supplied to RegExp constructor '{flags}'"
    )));
  }
  Ok(f)
}

/// The prefix window of `test()`, in UTF-16 units; after it the whole string is searched.
const WINDOW: usize = 16 * 1024;

/// Copies at most `max` UTF-16 units of `s` into `buf` (reused) and returns the string's full
/// length. `napi_get_value_string_utf16` copies only what fits, so a prefix of a flat or sliced
/// string costs only its own length (V8 flattens a cons string whole first).
fn read_units(s: &JsString, buf: &mut Vec<u16>, max: usize) -> napi::Result<usize> {
  let v = s.value();
  // First try the buffer's present capacity: a short string costs one napi call.
  buf.clear();
  buf.reserve(256);
  let room = buf.capacity().min(max.saturating_add(1));
  let mut copied = 0usize;
  // SAFETY: `v` is a live string handle of this call; `buf` has room for `room` units
  // (napi copies at most `room - 1` and a terminating NUL).
  check_status!(unsafe {
    sys::napi_get_value_string_utf16(v.env, v.value, buf.as_mut_ptr(), room, &mut copied)
  })?;
  let copied = copied.min(room - 1);
  // SAFETY: napi initialised `copied` units.
  unsafe { buf.set_len(copied) };
  if copied < room - 1 {
    return Ok(copied);
  }
  let mut len = 0usize;
  // SAFETY: a null buffer asks for the length only.
  check_status!(unsafe {
    sys::napi_get_value_string_utf16(v.env, v.value, std::ptr::null_mut(), 0, &mut len)
  })?;
  let want = len.min(max);
  if want > copied {
    buf.clear();
    buf.reserve(want + 1);
    let mut copied = 0usize;
    // SAFETY: `buf` has room for `want` units plus the terminating NUL.
    check_status!(unsafe {
      sys::napi_get_value_string_utf16(v.env, v.value, buf.as_mut_ptr(), want + 1, &mut copied)
    })?;
    // SAFETY: napi initialised `copied` ≤ `want` units.
    unsafe { buf.set_len(copied.min(want)) };
  }
  Ok(len)
}

/// One compiled pattern plus the last haystack it searched, in reused buffers (callers pass
/// `null` to search the same string again, which keeps global iteration linear). JS holds it
/// as an `External` and calls the `regex_*` functions below: a plain function with an external
/// argument costs less per call than a class method (napi-rs unwraps `this` with a type-tag
/// check and a re-entrancy borrow scope; measured 2026-11: ~180 ns vs ~260 ns for an empty call
/// with a string argument).
pub struct NativeRegex {
  c: Compiled,
  cache: meta::Cache,
  slots: Vec<Option<NonMaxUsize>>,
  units: Vec<u16>,
  hay: Hay,
  /// Whether `units`/`hay` hold a whole string that `null` may refer to.
  has_hay: bool,
}

impl NativeRegex {
  /// Loads `input` (or keeps the previous string for `None`).
  fn load(&mut self, input: Option<JsString>) -> crate::error::Result<()> {
    match input {
      Some(s) => {
        self.has_hay = false;
        read_units(&s, &mut self.units, usize::MAX).map_err(BulwarkError::from)?;
        self
          .hay
          .encode_into(&self.units, self.c.unicode, self.c.framed);
        self.has_hay = true;
      }
      None if !self.has_hay => {
        return Err(BulwarkError::new(ErrorCode::Internal, "no input to search").into())
      }
      None => {}
    }
    Ok(())
  }
}

impl NativeRegex {
  pub fn new(source: JsString, flags: String) -> crate::error::Result<Self> {
    let units = source.into_utf16().map_err(BulwarkError::from)?;
    let units = units.as_slice();
    let units = units.strip_suffix(&[0]).unwrap_or(units);
    let c = Compiled::new(units, parse_flags(&flags)?)?;
    let cache = c.re.create_cache();
    Ok(NativeRegex {
      c,
      cache,
      slots: Vec::new(),
      units: Vec::new(),
      hay: Hay::default(),
      has_hay: false,
    })
  }

  /// Number of capture groups (without group 0).
  pub fn group_count(&self) -> u32 {
    self.c.group_count() as u32
  }

  /// Group names in order (empty string for unnamed groups), joined with NUL.
  pub fn group_names(&self) -> String {
    self
      .c
      .groups
      .iter()
      .map(|g| g.name.clone().unwrap_or_default())
      .collect::<Vec<_>>()
      .join("\0")
  }

  /// Searches `input` (or, when `null`, the previous input again) from UTF-16 index `start`.
  /// Returns 0 (no match), 1 (a match; the input is kept for `null`) or 2 (a match found in a
  /// prefix window: the input is not kept). Unless `whole`, a string longer than the window is
  /// first searched in its prefix when the pattern's matches have a bounded length L: a match
  /// found at byte s with s + L ≤ the window end is exactly the whole string's leftmost-first
  /// match (any earlier-starting or same-start match ends inside the window too, and the units
  /// after the window are visible to look-around); otherwise the whole string is read.
  pub fn exec(
    &mut self,
    input: Option<JsString>,
    start: u32,
    sticky: bool,
    whole: bool,
    mut out: Int32Array,
  ) -> crate::error::Result<u32> {
    // SAFETY: the typed array is a scratch buffer owned by lib/regex.js; nothing else reads or
    // writes it during this synchronous call.
    let out = unsafe { out.as_mut() };
    let start = start as usize;
    let mut loaded = false;
    if let (Some(s), false, Some(max_len)) = (&input, whole, self.c.max_len) {
      if start < WINDOW / 2 {
        self.has_hay = false;
        let total = read_units(s, &mut self.units, WINDOW + 2).map_err(BulwarkError::from)?;
        let units = &self.units;
        self.hay.encode_into(units, self.c.unicode, self.c.framed);
        if total == units.len() {
          // The whole string fit: keep it for `null`.
          self.has_hay = true;
          loaded = true;
        } else {
          let mut w = WINDOW;
          if (0xD800..0xDC00).contains(&units[w - 1]) && (0xDC00..0xE000).contains(&units[w]) {
            w -= 1;
          }
          let end = self.hay.to_byte(w);
          let (c, hay) = (&self.c, &self.hay);
          if search_to(
            c,
            &mut self.cache,
            &mut self.slots,
            hay,
            start,
            end,
            sticky,
            true,
            out,
          ) && hay.to_byte(out[0] as usize).saturating_add(max_len) <= end
          {
            return Ok(2);
          }
        }
      }
    }
    if !loaded {
      self.load(input)?;
    }
    let found = search(
      &self.c,
      &mut self.cache,
      &mut self.slots,
      &self.hay,
      start,
      sticky,
      true,
      out,
    );
    Ok(found as u32)
  }

  /// Consecutive matches from `start` in one call (see `search_many`): `split` selects
  /// `Symbol.split`'s walk, `captures` whether group offsets are recorded. Returns the count.
  pub fn exec_many(
    &mut self,
    input: Option<JsString>,
    start: u32,
    sticky: bool,
    split: bool,
    captures: bool,
    mut out: Int32Array,
  ) -> crate::error::Result<u32> {
    self.load(input)?;
    // SAFETY: as in `exec`.
    let out = unsafe { out.as_mut() };
    let walk = if split { Walk::Split } else { Walk::Global };
    Ok(search_many(
      &self.c,
      &mut self.cache,
      &mut self.slots,
      &self.hay,
      &self.units,
      start as usize,
      sticky,
      walk,
      captures,
      out,
    ) as u32)
  }

  /// Whether `input` contains a match (RegExp `test` without `g`/`y`). Reads and searches a
  /// prefix window first (16 Ki units, then the whole string): a match inside the window, with
  /// the units after it visible to look-around, is a match of the whole string. Works in
  /// per-thread scratch buffers, so the input `exec` keeps for `null` is untouched, and a fresh
  /// regex does not fault in new pages for a large input.
  pub fn test(&mut self, input: JsString) -> crate::error::Result<bool> {
    SCRATCH.with_borrow_mut(|(units, hay)| {
      let found = self.test_in(&input, units, hay);
      if units.capacity() > SCRATCH_KEEP {
        *units = Vec::new();
        *hay = Hay::default();
      }
      found
    })
  }
}

thread_local! {
  /// `test()`'s buffers, shared by every regex on the thread (it never calls back into JS).
  static SCRATCH: std::cell::RefCell<(Vec<u16>, Hay)> = Default::default();
}

/// Scratch capacity (UTF-16 units) kept between `test()` calls; larger buffers are freed.
const SCRATCH_KEEP: usize = 4 << 20;

impl NativeRegex {
  fn test_in(
    &mut self,
    input: &JsString,
    units: &mut Vec<u16>,
    hay: &mut Hay,
  ) -> crate::error::Result<bool> {
    let mut window = WINDOW;
    loop {
      // Two units past the window: the look-around context, whole even if it is a pair.
      let total = read_units(input, units, window.saturating_add(2)).map_err(BulwarkError::from)?;
      hay.encode_into(units, self.c.unicode, self.c.framed);
      if total == units.len() {
        let end = hay.bytes.len();
        return Ok(exists(&self.c, &mut self.cache, hay, end));
      }
      // Never split a surrogate pair (with u/v it is one unit of the encoding).
      let mut w = window;
      if (0xD800..0xDC00).contains(&units[w - 1]) && (0xDC00..0xE000).contains(&units[w]) {
        w -= 1;
      }
      if exists(&self.c, &mut self.cache, hay, hay.to_byte(w)) {
        return Ok(true);
      }
      window = usize::MAX;
    }
  }
}

type Handle = External<NativeRegex>;

/// Compiles `source` with `flags` (a `SyntaxError` subclass if invalid or unsupported).
#[napi(catch_unwind)]
pub fn regex_new(source: JsString, flags: String) -> crate::error::Result<Handle> {
  Ok(External::new(NativeRegex::new(source, flags)?))
}

/// Number of capture groups (without group 0).
#[napi]
pub fn regex_group_count(h: &Handle) -> u32 {
  h.group_count()
}

/// Group names in order (empty string for unnamed groups), joined with NUL.
#[napi]
pub fn regex_group_names(h: &Handle) -> String {
  h.group_names()
}

/// `NativeRegex::exec`.
#[napi(catch_unwind)]
pub fn regex_exec(
  h: &mut Handle,
  input: Option<JsString>,
  start: u32,
  sticky: bool,
  whole: bool,
  out: Int32Array,
) -> crate::error::Result<u32> {
  h.exec(input, start, sticky, whole, out)
}

/// `NativeRegex::exec_many`.
#[napi(catch_unwind)]
pub fn regex_exec_many(
  h: &mut Handle,
  input: Option<JsString>,
  start: u32,
  sticky: bool,
  split: bool,
  captures: bool,
  out: Int32Array,
) -> crate::error::Result<u32> {
  h.exec_many(input, start, sticky, split, captures, out)
}

/// `NativeRegex::test`.
#[napi(catch_unwind)]
pub fn regex_test(h: &mut Handle, input: JsString) -> crate::error::Result<bool> {
  h.test(input)
}

/// Many patterns, one pass: which of them match.
#[napi]
pub struct NativeRegexSet {
  re: meta::Regex,
  unicode: bool,
  framed: bool,
  cache: meta::Cache,
  /// Members that can match the empty string, each also compiled alone: the set search may
  /// report an empty match inside a unit's encoding, which is not a match (see `confirm`).
  empties: Vec<(u32, meta::Regex, meta::Cache)>,
}

/// Whether `re` has a match in `hay` that is not an empty match inside a unit's encoding.
fn confirm(re: &meta::Regex, cache: &mut meta::Cache, hay: &Hay) -> bool {
  let mut b = 0;
  loop {
    let input = Input::new(&hay.bytes).range(b..);
    let Some(m) = re.search_with(cache, &input) else {
      return false;
    };
    if !m.is_empty() || hay.is_boundary(m.start()) {
      return true;
    }
    b = m.start() + 1;
  }
}

#[napi]
impl NativeRegexSet {
  #[napi(constructor, catch_unwind)]
  pub fn new(sources: Vec<String>, flags: String) -> crate::error::Result<Self> {
    let f = parse_flags(&flags)?;
    let mut hirs = Vec::with_capacity(sources.len());
    let mut framed = false;
    for s in &sources {
      let units: Vec<u16> = s.encode_utf16().collect();
      let t = translate::translate(&units, f)?;
      framed |= t.framed;
      hirs.push(t);
    }
    if framed {
      // Every member must share the haystack encoding.
      hirs.clear();
      for s in &sources {
        let units: Vec<u16> = s.encode_utf16().collect();
        hirs.push(translate::translate_framed(&units, f)?);
      }
    }
    let hir_refs: Vec<&regex_syntax::hir::Hir> = hirs.iter().map(|t| &t.hir).collect();
    let re = meta::Builder::new()
      .configure(
        config()
          .which_captures(WhichCaptures::None)
          .match_kind(regex_automata::MatchKind::All),
      )
      .build_many_from_hir(&hir_refs)
      .map_err(too_large)?;
    let cache = re.create_cache();
    let mut empties = Vec::new();
    for (i, t) in hirs.iter().enumerate() {
      if t.hir.properties().minimum_len() == Some(0) {
        let one = meta::Builder::new()
          // Implicit: the span of group 0 is needed to tell where an empty match is.
          .configure(config().which_captures(WhichCaptures::Implicit))
          .build_from_hir(&t.hir)
          .map_err(too_large)?;
        let c = one.create_cache();
        empties.push((i as u32, one, c));
      }
    }
    Ok(NativeRegexSet {
      re,
      unicode: f.unicode || f.sets,
      framed,
      cache,
      empties,
    })
  }

  /// Indexes of the patterns that match somewhere in `input`, ascending.
  #[napi(catch_unwind)]
  pub fn matches(&mut self, input: JsString) -> crate::error::Result<Uint32Array> {
    SCRATCH.with_borrow_mut(|(units, hay)| {
      read_units(&input, units, usize::MAX).map_err(BulwarkError::from)?;
      hay.encode_into(units, self.unicode, self.framed);
      let mut set = regex_automata::PatternSet::new(self.re.pattern_len());
      let whole = Input::new(&hay.bytes);
      self
        .re
        .which_overlapping_matches_with(&mut self.cache, &whole, &mut set);
      let mut found = Vec::with_capacity(set.len());
      for p in set.iter() {
        let p = p.as_u32();
        let real = match self.empties.iter_mut().find(|e| e.0 == p) {
          Some((_, re, cache)) => confirm(re, cache, hay),
          None => true,
        };
        if real {
          found.push(p);
        }
      }
      if units.capacity() > SCRATCH_KEEP {
        *units = Vec::new();
        *hay = Hay::default();
      }
      Ok(Uint32Array::new(found))
    })
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn run(pat: &str, flags: &str, hay: &str, start: usize) -> Option<Vec<i32>> {
    let src: Vec<u16> = pat.encode_utf16().collect();
    let f = parse_flags(flags).unwrap();
    let c = Compiled::new(&src, f).unwrap();
    let units: Vec<u16> = hay.encode_utf16().collect();
    let h = Hay::encode(&units, c.unicode, c.framed);
    let mut cache = c.re.create_cache();
    let mut out = vec![0; 2 + 2 * c.group_count()];
    search(
      &c,
      &mut cache,
      &mut Vec::new(),
      &h,
      start,
      flags.contains('y'),
      true,
      &mut out,
    )
    .then_some(out)
  }

  fn all(pat: &str, flags: &str, hay: &str, walk: Walk, cap: usize) -> Vec<i32> {
    let src: Vec<u16> = pat.encode_utf16().collect();
    let c = Compiled::new(&src, parse_flags(flags).unwrap()).unwrap();
    let units: Vec<u16> = hay.encode_utf16().collect();
    let h = Hay::encode(&units, c.unicode, c.framed);
    let mut cache = c.re.create_cache();
    let mut out = vec![0; 2 * cap];
    let n = search_many(
      &c,
      &mut cache,
      &mut Vec::new(),
      &h,
      &units,
      0,
      flags.contains('y'),
      walk,
      false,
      &mut out,
    );
    out.truncate(2 * n);
    out
  }

  #[test]
  fn global_walk_advances_past_empty_matches_by_unit_or_code_point() {
    assert_eq!(all("a*", "", "xa", Walk::Global, 9), vec![0, 0, 1, 2, 2, 2]);
    assert_eq!(all("", "", "😀", Walk::Global, 9), vec![0, 0, 1, 1, 2, 2]);
    assert_eq!(all("", "u", "😀", Walk::Global, 9), vec![0, 0, 2, 2]);
    assert_eq!(all("a", "y", "aab", Walk::Global, 9), vec![0, 1, 1, 2]);
    assert_eq!(all("a*", "", "xa", Walk::Global, 2), vec![0, 0, 1, 2]);
    // Split skips the empty match where the previous piece ended and matches at the end.
    assert_eq!(all("a*", "", "xa", Walk::Split, 9), vec![1, 2]);
    assert_eq!(all("", "", "ab", Walk::Split, 9), vec![1, 1]);
  }

  fn windowed(pat: &str, flags: &str, hay: &str, w: usize) -> bool {
    let src: Vec<u16> = pat.encode_utf16().collect();
    let c = Compiled::new(&src, parse_flags(flags).unwrap()).unwrap();
    let units: Vec<u16> = hay.encode_utf16().collect();
    let h = Hay::encode(&units[..(w + 2).min(units.len())], c.unicode, c.framed);
    let mut cache = c.re.create_cache();
    exists(&c, &mut cache, &h, h.to_byte(w))
  }

  #[test]
  fn a_window_sees_the_unit_after_it() {
    // "ab" straddles the window end: not inside [0, 1).
    assert!(!windowed("ab", "", "ab", 1));
    assert!(windowed("a", "", "ab", 1));
    // Look-around at the window end sees the real next unit.
    assert!(!windowed("a\\b", "", "ab", 1));
    assert!(windowed("a\\b", "", "a b", 1));
    assert!(!windowed("a$", "", "ab", 1));
    assert!(!windowed("a$", "m", "ab", 1));
    assert!(windowed("a$", "m", "a\r", 1));
    // An empty match inside a unit's encoding is not a match.
    assert!(!windowed("^\\B", "m", "a\ra", 2));
    assert!(!windowed("\\B", "", "aéa", 2));
  }

  #[test]
  fn rows_from_the_note() {
    assert_eq!(run("[^]", "", "\n", 0), Some(vec![0, 1]));
    assert_eq!(run("a[]", "", "a", 0), None);
    assert_eq!(run("\\u{2}", "", "uu", 0), Some(vec![0, 2]));
    assert_eq!(run("\\cJ", "", "\n", 0), Some(vec![0, 1]));
    assert_eq!(run("\\8", "", "8", 0), Some(vec![0, 1]));
    assert_eq!(run("a{,2}", "", "a{,2}", 0), Some(vec![0, 5]));
    assert_eq!(run("[a[b]]", "", "b]", 0), Some(vec![0, 2]));
    assert_eq!(run("\\w", "", "é", 0), None);
    assert_eq!(run("\\s", "", "\u{FEFF}", 0), Some(vec![0, 1]));
    assert_eq!(run("^.$", "", "😀", 0), None);
    assert_eq!(run("^.$", "u", "😀", 0), Some(vec![0, 2]));
    assert_eq!(run("a$", "m", "a\r", 0), Some(vec![0, 1]));
    assert_eq!(run("^b", "m", "a\u{2028}b", 0), Some(vec![2, 3]));
    assert_eq!(run("ß", "i", "ẞ", 0), None);
    assert_eq!(run("ß", "iu", "ẞ", 0), Some(vec![0, 1]));
    assert_eq!(
      run("(?:(a)|(b)|(c))+", "", "abc", 0),
      Some(vec![0, 3, -1, -1, -1, -1, 2, 3])
    );
  }

  #[test]
  fn rejects_backtracking_only_features_with_positions() {
    let src: Vec<u16> = "ab(?=c)".encode_utf16().collect();
    let err = Compiled::new(&src, Flags::default()).err().unwrap();
    assert_eq!(err.code, ErrorCode::RegexUnsupported);
    assert!(
      err.message.contains("lookahead") && err.message.contains("index 2"),
      "{}",
      err.message
    );
    let src: Vec<u16> = "((a{100}){100}){100}".encode_utf16().collect();
    assert_eq!(
      Compiled::new(&src, Flags::default()).err().unwrap().code,
      ErrorCode::RegexTooLarge
    );
    assert_eq!(
      parse_flags("gg").err().unwrap().code,
      ErrorCode::RegexSyntax
    );
  }

  #[test]
  fn multiline_empty_matches_skip_framing_bytes() {
    assert_eq!(run("$", "m", "\r\n", 0), Some(vec![0, 0]));
    assert_eq!(run("^", "m", "\r\n", 1), Some(vec![1, 1]));
    assert_eq!(run("^", "m", "\r\n", 2), Some(vec![2, 2]));
  }
}
