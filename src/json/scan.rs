//! The off-thread pass: one strict scan of the JSON text that validates the grammar (RFC 8259,
//! exactly what `JSON.parse` accepts), checks every limit, finds forbidden keys, and writes the
//! *build plan* the main thread follows.
//!
//! Hand-written rather than serde_json: serde_json would build values we then throw away, and it
//! cannot report the byte spans, key spellings (`"\u005f_proto__"`) and per-object facts the plan
//! needs. The scan is one pass, iterative (an explicit frame stack, so depth cannot overflow the
//! thread's stack), and generic over the code unit: `u8` for Buffers (UTF-8) and `u16` for JS
//! strings (UTF-16, copied as-is so positions are JS string indices).
//!
//! The plan is a flat `u32` op list (see the `OP_*` constants). Every value whose text is at most
//! `slice_units` long and needs no edit is left whole: the main thread hands its text to
//! `JSON.parse`. Only containers larger than that (or that need a key deleted) are "opened": the
//! plan then lists their members as runs of consecutive small members (each run ≤ `slice_units`,
//! parsed with one `JSON.parse('[' + run + ']')` / `JSON.parse('{' + run + '}')`) and nested opened
//! containers; a member of an opened container at least `slice_units / 16` long is a piece of its
//! own (`JSON.parse` of a slice of the text, which costs no concatenation and, for string input,
//! no copy). So the values are `JSON.parse`'s own (numbers, escapes, `-0`, lone surrogates,
//! duplicate keys all exactly as `JSON.parse` makes them) and each main-thread step is bounded.
//!
//! Speed (one thread, Buffer input). Instructions per byte, callgrind (repeatable; before → after
//! this module's fast paths): twitter 26.4 → 15.3, citm_catalog 21.7 → 13.8, canada 23.4 → 15.6
//! → 13.7, the benchmark's API-like document generated at 2 MB 47.2 → 21.7, its numbers document
//! 34.6 → 24.9 → 21.5 (the last step: arrays of scalars read without a frame by
//! `Scanner::flat_array`, and digit runs tried eight at a time before unit by unit, which also
//! spares the branch mispredictions of short runs: the 20 MB numbers document went from 460 to
//! 830 MB/s in a Rust loop over the scan).
//! Wall-clock on this shared 2-core VM varies ±40% with the other jobs; best of 15 in quiet
//! moments: 0.8–1.6 GB/s on the corpora, 0.9–1.1 GB/s on the 20 MB API document. What made the
//! difference: string content is skipped 8 bytes at a time (SWAR, `Unit::skip_plain`), and so
//! are digit runs (`Unit::skip_digits`); runs of non-ASCII bytes are counted in one loop; key
//! names are compared with `__proto__` / `constructor` / `prototype` in place (an allocation per
//! key was 20% of the API document's time); the per-member bookkeeping is inlined. The numbers
//! document is still the slowest per byte: ~8 bytes per value, ~170 instructions per value.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::ErrorCode;

/// A whole value: parse `text[a..b]`.
pub const OP_VALUE: u32 = 0;
/// Array members `text[a..b]`: parse `'[' + text + ']'` and append each element.
pub const OP_ARR_RUN: u32 = 1;
/// Object members `text[a..b]`: parse `'{' + text + '}'` and copy each property.
pub const OP_OBJ_RUN: u32 = 2;
pub const OP_BEGIN_ARR: u32 = 3;
pub const OP_BEGIN_OBJ: u32 = 4;
pub const OP_END: u32 = 5;
/// The key (quoted string `text[a..b]`) of the next value attached to the open object.
pub const OP_KEY: u32 = 6;
/// Delete an own property of the open object: operand 0 = `__proto__`, 1 = `constructor`.
pub const OP_DELETE: u32 = 7;
/// The value just completed is the next result (one per document, or one per `select` pointer).
pub const OP_ROOT: u32 = 8;
/// The next result is `undefined` (a `select` pointer that matched nothing).
pub const OP_MISSING: u32 = 9;

/// Flag on spans: the text contains non-ASCII units (decode as UTF-8, not Latin-1).
pub const FLAG_NON_ASCII: u32 = 1;
/// Flag on keys: the key contains escapes (decode with `JSON.parse`).
pub const FLAG_ESCAPES: u32 = 2;

/// What to do with a forbidden key (`__proto__`, or `constructor` whose value has `prototype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
  Error,
  Remove,
  Ignore,
}

#[derive(Debug, Clone)]
pub struct ScanOptions {
  pub max_bytes: u64,
  pub max_depth: u32,
  pub max_keys: u32,
  pub max_array_length: u32,
  pub max_string_length: u64,
  pub max_total_nodes: u64,
  pub proto_action: KeyAction,
  pub constructor_action: KeyAction,
  /// Buffer input: accept invalid UTF-8 (the main thread decodes it with U+FFFD like `toString`).
  pub utf8_replace: bool,
  /// Write a build plan (false for `validateOnly`).
  pub plan: bool,
  /// Largest text handed to one `JSON.parse` call when it can be split (code units).
  pub slice_units: u32,
  /// RFC 6901 pointers, already split into unescaped tokens.
  pub select: Option<Vec<Vec<String>>>,
  /// `input` is the head of a longer body (see [`scan`]).
  pub prefix: bool,
}

impl Default for ScanOptions {
  fn default() -> Self {
    ScanOptions {
      max_bytes: u64::MAX,
      max_depth: u32::MAX,
      max_keys: u32::MAX,
      max_array_length: u32::MAX,
      max_string_length: u64::MAX,
      max_total_nodes: u64::MAX,
      proto_action: KeyAction::Error,
      constructor_action: KeyAction::Error,
      utf8_replace: false,
      plan: true,
      slice_units: 64 * 1024,
      select: None,
      prefix: false,
    }
  }
}

/// Why a document was refused. `offset` is in input code units; the napi layer converts it to a
/// JS string index, line and column.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
  pub code: ErrorCode,
  pub message: String,
  pub offset: usize,
  pub limit: Option<f64>,
}

impl Failure {
  fn new(code: ErrorCode, message: impl Into<String>, offset: usize) -> Self {
    Failure {
      code,
      message: message.into(),
      offset,
      limit: None,
    }
  }
  fn limit(code: ErrorCode, message: String, offset: usize, limit: u64) -> Self {
    Failure {
      code,
      message,
      offset,
      limit: Some(limit as f64),
    }
  }
}

/// A code unit of the input text.
pub trait Unit: Copy + Send + Sync + 'static {
  fn get(self) -> u32;
  const WIDE: bool;
  /// The first index at or after `i` whose unit is not plain string content (printable ASCII
  /// other than `"` and `\`), or `s.len()`.
  fn skip_plain(s: &[Self], i: usize) -> usize;
  /// Skips whole blocks of ASCII digits from `i` (a fast path; the caller finishes the run).
  #[inline(always)]
  fn skip_digits(_s: &[Self], i: usize) -> usize {
    i
  }
}

#[inline(always)]
fn is_plain(c: u32) -> bool {
  (0x20..0x80).contains(&c) && c != 0x22 && c != 0x5C
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

impl Unit for u8 {
  #[inline(always)]
  fn get(self) -> u32 {
    self as u32
  }
  const WIDE: bool = false;
  /// Eight bytes at a time (SWAR): a byte is special when it is below 0x20, equals `"` or `\`,
  /// or has its high bit set. Borrows only carry upwards from a special byte, so the lowest
  /// flagged byte is exact.
  #[inline(always)]
  fn skip_plain(s: &[u8], mut i: usize) -> usize {
    while i + 8 <= s.len() {
      let v = u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
      let ctl = v.wrapping_sub(LO * 0x20) & !v;
      let q = v ^ (LO * 0x22);
      let q = q.wrapping_sub(LO) & !q;
      let b = v ^ (LO * 0x5C);
      let b = b.wrapping_sub(LO) & !b;
      let m = (ctl | q | b | v) & HI;
      if m != 0 {
        return i + (m.trailing_zeros() / 8) as usize;
      }
      i += 8;
    }
    while i < s.len() && is_plain(s[i] as u32) {
      i += 1;
    }
    i
  }
  /// Eight bytes at a time: `(v | 0x80) - 0x30` keeps the high bit only for bytes ≥ 0x30 and
  /// `(v & 0x7f) + 0x46` sets it for bytes ≥ 0x3a; neither borrows or carries across bytes.
  #[inline(always)]
  fn skip_digits(s: &[u8], mut i: usize) -> usize {
    while i + 8 <= s.len() {
      let v = u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
      let ge30 = (v | HI).wrapping_sub(LO * 0x30);
      let ge3a = (v & !HI).wrapping_add(LO * 0x46);
      let m = (!ge30 | ge3a | v) & HI;
      if m != 0 {
        return i + (m.trailing_zeros() / 8) as usize;
      }
      i += 8;
    }
    i
  }
}
impl Unit for u16 {
  #[inline(always)]
  fn get(self) -> u32 {
    self as u32
  }
  const WIDE: bool = true;
  #[inline(always)]
  fn skip_plain(s: &[u16], mut i: usize) -> usize {
    while i < s.len() && is_plain(s[i] as u32) {
      i += 1;
    }
    i
  }
}

/// Validates `input` and returns the plan (empty when `options.plan` is false).
///
/// With `options.prefix`, `input` is only the head of the body: the scan returns an empty plan
/// unless it finds a failure that no continuation can undo — one located before the end of the
/// head (a truncated value fails *at* the end: "Unexpected end", "Unterminated string",
/// "Expected ':'"), which is then exactly the failure the whole body's scan reports, since the
/// scan reads left to right and reports each failure as soon as the text read so far shows it.
/// `maxBytes` is not checked (the caller knows the whole size), a UTF-8 sequence cut by the end
/// of the head is dropped, and `select` and the plan are ignored.
pub fn scan<U: Unit>(
  input: &[U],
  options: &ScanOptions,
  cancel: Option<&AtomicBool>,
) -> Result<Vec<u32>, Failure> {
  if options.prefix {
    return scan_prefix(input, options, cancel);
  }
  // maxBytes is the UTF-8 size: exact for Buffers; for strings, counted here (the JS side already
  // refused strings whose length alone exceeds it).
  let bytes = utf8_len(input);
  if bytes > options.max_bytes {
    return Err(Failure::limit(
      ErrorCode::JsonTooLarge,
      format!(
        "JSON body is {bytes} bytes, more than maxBytes ({})",
        options.max_bytes
      ),
      0,
      options.max_bytes,
    ));
  }
  if !U::WIDE && !options.utf8_replace {
    // SAFETY: `U::WIDE` is false only for `u8`, so this is the same slice with its own type.
    let raw: &[u8] =
      unsafe { std::slice::from_raw_parts(input.as_ptr() as *const u8, input.len()) };
    if let Err(e) = std::str::from_utf8(raw) {
      return Err(Failure::new(
        ErrorCode::JsonInvalidUtf8,
        "JSON body is not valid UTF-8",
        e.valid_up_to(),
      ));
    }
  }
  match &options.select {
    None => {
      let mut s = Scanner::new(input, 0, options, cancel, options.plan, None);
      s.run()?;
      if options.plan {
        s.out.push(OP_ROOT);
      }
      Ok(s.out)
    }
    Some(pointers) => {
      let tokens: Vec<Vec<Token>> = pointers
        .iter()
        .map(|p| p.iter().map(|t| Token::new(t)).collect())
        .collect();
      let mut s = Scanner::new(input, 0, options, cancel, false, Some(tokens));
      s.run()?;
      let found = s.select.take().map(|sel| sel.found).unwrap_or_default();
      let mut out = Vec::new();
      if !options.plan {
        return Ok(out);
      }
      // Second pass over each selected span only: errors were all checked by the first pass.
      let mut sub = options.clone();
      sub.select = None;
      sub.max_depth = u32::MAX;
      sub.max_keys = u32::MAX;
      sub.max_array_length = u32::MAX;
      sub.max_string_length = u64::MAX;
      sub.max_total_nodes = u64::MAX;
      for span in found {
        match span {
          None => out.push(OP_MISSING),
          Some((a, b)) => {
            let mut s = Scanner::new(&input[a..b], a, &sub, cancel, true, None);
            s.out = out;
            s.run()?;
            out = s.out;
            out.push(OP_ROOT);
          }
        }
      }
      Ok(out)
    }
  }
}

fn scan_prefix<U: Unit>(
  input: &[U],
  options: &ScanOptions,
  cancel: Option<&AtomicBool>,
) -> Result<Vec<u32>, Failure> {
  let mut input = input;
  if !U::WIDE && !options.utf8_replace {
    // SAFETY: `U::WIDE` is false only for `u8`, so this is the same slice with its own type.
    let raw: &[u8] =
      unsafe { std::slice::from_raw_parts(input.as_ptr() as *const u8, input.len()) };
    if let Err(e) = std::str::from_utf8(raw) {
      if e.error_len().is_some() {
        return Err(Failure::new(
          ErrorCode::JsonInvalidUtf8,
          "JSON body is not valid UTF-8",
          e.valid_up_to(),
        ));
      }
      // A sequence cut by the end of the head: the rest of the body may complete it.
      input = &input[..e.valid_up_to()];
    }
  }
  let mut s = Scanner::new(input, 0, options, cancel, false, None);
  match s.run() {
    Err(f) if f.offset < input.len() => Err(f),
    _ => Ok(Vec::new()),
  }
}

/// UTF-8 length of the text.
fn utf8_len<U: Unit>(input: &[U]) -> u64 {
  if !U::WIDE {
    return input.len() as u64;
  }
  let mut n = 0u64;
  for &u in input {
    let c = u.get();
    n += if c < 0x80 {
      1
    } else if c < 0x800 {
      2
    } else if (0xD800..0xDC00).contains(&c) {
      // high surrogate: the pair is 4 bytes, 2 here and 2 for the low half (a lone one is 3)
      2
    } else if (0xDC00..0xE000).contains(&c) {
      2
    } else {
      3
    };
  }
  n
}

/// Which forbidden-key name `name` (decoded units) spells: 1 `__proto__`, 2 `constructor`,
/// 3 `prototype`, 0 none.
fn special_name<U: Unit>(name: &[U]) -> u8 {
  let is = |word: &[u8]| {
    name.len() == word.len() && name.iter().zip(word).all(|(u, &w)| u.get() == w as u32)
  };
  if is(b"__proto__") {
    1
  } else if is(b"constructor") {
    2
  } else if is(b"prototype") {
    3
  } else {
    0
  }
}

/// Converts an offset in code units to the JS string index (UTF-16 units) of the decoded text,
/// and the 1-based line and column there.
pub fn position<U: Unit>(input: &[U], offset: usize) -> (usize, usize, usize) {
  let offset = offset.min(input.len());
  let mut index = 0usize;
  let mut line = 1usize;
  let mut line_start = 0usize;
  for &u in &input[..offset] {
    let c = u.get();
    if U::WIDE {
      index += 1;
    } else if c & 0xC0 != 0x80 {
      index += if c >= 0xF0 { 2 } else { 1 };
    }
    if c == b'\n' as u32 {
      line += 1;
      line_start = index;
    }
  }
  (index, line, index - line_start + 1)
}

/// A JSON Pointer token, pre-encoded for both unit widths.
struct Token {
  utf8: Vec<u8>,
  utf16: Vec<u16>,
  index: Option<u64>,
}

impl Token {
  fn new(s: &str) -> Token {
    let canonical = s == "0" || (!s.is_empty() && !s.starts_with('0'));
    Token {
      utf8: s.as_bytes().to_vec(),
      utf16: s.encode_utf16().collect(),
      index: if canonical && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
      } else {
        None
      },
    }
  }
}

struct Select {
  tokens: Vec<Vec<Token>>,
  /// Tokens of each pointer matched by the current path.
  matched: Vec<usize>,
  found: Vec<Option<(usize, usize)>>,
}

#[derive(Clone, Copy, Default)]
struct Span {
  a: usize,
  b: usize,
  flags: u32,
}

/// A pending run of members extended by the member `next` (the members are consecutive).
#[inline(always)]
fn joined(run: Option<Span>, next: Span) -> Span {
  match run {
    None => next,
    Some(p) => Span {
      a: p.a,
      b: next.b,
      flags: p.flags | next.flags,
    },
  }
}

struct Frame {
  obj: bool,
  start: usize,
  count: u64,
  opened: bool,
  /// Consecutive complete members not yet written to the plan.
  pend: Option<Span>,
  /// The current member: its key span, and where the member starts (the key, for objects).
  key: Span,
  member_start: usize,
  key_is_ctor: bool,
  key_pos: usize,
  has_prototype: bool,
  del_proto: bool,
  ctor_flagged: bool,
  ctor_pos: usize,
}

struct Scanner<'a, U: Unit> {
  s: &'a [U],
  base: usize,
  pos: usize,
  o: &'a ScanOptions,
  cancel: Option<&'a AtomicBool>,
  plan: bool,
  out: Vec<u32>,
  frames: Vec<Frame>,
  nodes: u64,
  last_non_ascii: usize,
  select: Option<Select>,
  /// The last completed container's facts, read by its parent.
  child_has_prototype: bool,
  /// Arrays of scalars read without a frame ([`Scanner::flat_array`]); off only in tests that
  /// compare the two ways.
  flat_arrays: bool,
}

fn syntax(msg: impl Into<String>, at: usize) -> Failure {
  Failure::new(ErrorCode::JsonSyntax, msg, at)
}

impl<'a, U: Unit> Scanner<'a, U> {
  fn new(
    s: &'a [U],
    base: usize,
    o: &'a ScanOptions,
    cancel: Option<&'a AtomicBool>,
    plan: bool,
    tokens: Option<Vec<Vec<Token>>>,
  ) -> Self {
    let select = tokens.map(|tokens| Select {
      matched: vec![0; tokens.len()],
      found: vec![None; tokens.len()],
      tokens,
    });
    Scanner {
      s,
      base,
      pos: 0,
      o,
      cancel,
      plan,
      out: Vec::new(),
      frames: Vec::new(),
      nodes: 0,
      last_non_ascii: usize::MAX,
      select,
      child_has_prototype: false,
      flat_arrays: true,
    }
  }

  #[inline(always)]
  fn peek(&self) -> Option<u32> {
    self.s.get(self.pos).map(|u| u.get())
  }

  #[inline(always)]
  fn skip_ws(&mut self) {
    while let Some(c) = self.peek() {
      if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 {
        self.pos += 1;
      } else {
        break;
      }
    }
  }

  fn unexpected(&self) -> Failure {
    match self.peek() {
      None => syntax("Unexpected end of JSON input", self.pos),
      Some(c) => {
        let ch = char::from_u32(c)
          .map(String::from)
          .unwrap_or_else(|| format!("\\u{c:04x}"));
        syntax(format!("Unexpected token '{ch}'"), self.pos)
      }
    }
  }

  fn run(&mut self) -> Result<(), Failure> {
    self.skip_ws();
    'value: loop {
      // A value starts at self.pos (after whitespace).
      self.count_node(self.pos)?;
      let start = self.pos;
      match self.peek() {
        Some(0x7B) | Some(0x5B) => {
          let obj = self.peek() == Some(0x7B);
          if self.frames.len() as u64 >= self.o.max_depth as u64 {
            return Err(Failure::limit(
              ErrorCode::JsonTooDeep,
              format!("JSON nests deeper than maxDepth ({})", self.o.max_depth),
              self.pos,
              self.o.max_depth as u64,
            ));
          }
          self.pos += 1;
          if !obj && self.flat_arrays && self.select.is_none() {
            if self.flat_array(start)? {
              continue 'value;
            }
          } else {
            self.push_frame(obj, start, 0, None);
            self.skip_ws();
            let close = if obj { 0x7D } else { 0x5D };
            if self.peek() == Some(close) {
              self.pos += 1;
              self.close_container()?;
            } else if obj {
              self.member()?;
              continue 'value;
            } else {
              self.element_starts()?;
              continue 'value;
            }
          }
        }
        Some(0x22) => {
          self.string(false)?;
          let flags = self.flags_since(start);
          self.complete(start, self.pos, flags, false, false);
        }
        Some(c) if c == b'-' as u32 || (b'0' as u32..=b'9' as u32).contains(&c) => {
          self.number()?;
          self.complete(start, self.pos, 0, false, false);
        }
        Some(0x74) => self.literal(b"true", start)?,
        Some(0x66) => self.literal(b"false", start)?,
        Some(0x6E) => self.literal(b"null", start)?,
        _ => return Err(self.unexpected()),
      }
      // After a complete value: close containers or move to the next member.
      loop {
        let Some(top) = self.frames.last() else {
          self.skip_ws();
          if self.pos < self.s.len() {
            return Err(syntax(
              "Unexpected non-whitespace character after JSON",
              self.pos,
            ));
          }
          return Ok(());
        };
        let obj = top.obj;
        self.skip_ws();
        match self.peek() {
          Some(0x2C) => {
            self.pos += 1;
            self.skip_ws();
            if obj {
              self.member()?;
            } else {
              self.element_starts()?;
            }
            continue 'value;
          }
          Some(0x7D) if obj => {
            self.pos += 1;
            self.close_container()?;
          }
          Some(0x5D) if !obj => {
            self.pos += 1;
            self.close_container()?;
          }
          None => return Err(syntax("Unexpected end of JSON input", self.pos)),
          _ => {
            let msg = if obj {
              "Expected ',' or '}' after property value in JSON"
            } else {
              "Expected ',' or ']' after array element in JSON"
            };
            return Err(syntax(msg, self.pos));
          }
        }
      }
    }
  }

  #[inline(always)]
  fn push_frame(&mut self, obj: bool, start: usize, count: u64, pend: Option<Span>) {
    self.frames.push(Frame {
      obj,
      start,
      count,
      opened: false,
      pend,
      key: Span::default(),
      member_start: 0,
      key_is_ctor: false,
      key_pos: 0,
      has_prototype: false,
      del_proto: false,
      ctor_flagged: false,
      ctor_pos: 0,
    });
  }

  /// Counts the value starting at `at` against `maxTotalNodes`, and now and then looks whether
  /// the job was cancelled.
  #[inline(always)]
  fn count_node(&mut self, at: usize) -> Result<(), Failure> {
    self.nodes += 1;
    if self.nodes > self.o.max_total_nodes {
      return Err(Failure::limit(
        ErrorCode::JsonTooManyNodes,
        format!(
          "JSON has more than maxTotalNodes ({}) values",
          self.o.max_total_nodes
        ),
        at,
        self.o.max_total_nodes,
      ));
    }
    if self.nodes & 0xFFFF == 0 {
      if let Some(c) = self.cancel {
        if c.load(Ordering::Relaxed) {
          return Err(Failure::new(ErrorCode::Closed, "cancelled", at));
        }
      }
    }
    Ok(())
  }

  fn array_too_long(&self, at: usize) -> Failure {
    let max = self.o.max_array_length;
    Failure::limit(
      ErrorCode::JsonArrayTooLong,
      format!("JSON array has more than maxArrayLength ({max}) elements"),
      at,
      max as u64,
    )
  }

  /// Scans an array of scalars (numbers, strings, literals) with no frame, `self.pos` just past
  /// its `[`: the usual shape of numeric data (`[x, y]`, rows of numbers), where pushing and
  /// popping a frame and the per-member bookkeeping cost more than the values. It does what the
  /// general loop does for such an array, in the same order, with the same failures at the same
  /// positions. On anything else — a nested container, a member that would make the array longer
  /// than a slice, or a character the general loop reports — it pushes the frame the general
  /// loop would have at that point and hands over: `true` to go on at an element's value,
  /// `false` once the array (or its member just read) is complete.
  #[inline(always)]
  fn flat_array(&mut self, start: usize) -> Result<bool, Failure> {
    let slice = self.o.slice_units as usize;
    let mut count: u64 = 0;
    // Members read so far, as the general loop's pending run would hold them.
    let mut pend: Option<Span> = None;
    self.skip_ws();
    if self.peek() == Some(0x5D) {
      self.pos += 1;
      self.close_flat(start, count, pend)?;
      return Ok(false);
    }
    loop {
      let a = self.pos;
      let scalar = match self.peek() {
        Some(c) => {
          c == 0x22
            || c == b'-' as u32
            || c.wrapping_sub(b'0' as u32) < 10
            || c == 0x74
            || c == 0x66
            || c == 0x6E
        }
        None => false,
      };
      if !scalar {
        self.push_frame(false, start, count, pend);
        self.element_starts()?;
        return Ok(true);
      }
      // element_starts, then the value's node count, as the general loop does them.
      count += 1;
      if count > self.o.max_array_length as u64 {
        return Err(self.array_too_long(a));
      }
      self.count_node(a)?;
      let flags = match self.peek() {
        Some(0x22) => {
          self.string(false)?;
          self.flags_since(a)
        }
        Some(0x74) => {
          self.word(b"true")?;
          0
        }
        Some(0x66) => {
          self.word(b"false")?;
          0
        }
        Some(0x6E) => {
          self.word(b"null")?;
          0
        }
        _ => {
          self.number()?;
          0
        }
      };
      let b = self.pos;
      if b - start > slice {
        // This member makes the array longer than a slice: the general loop opens it.
        self.push_frame(false, start, count, pend);
        self.frames.last_mut().unwrap().member_start = a;
        self.complete(a, b, flags, false, false);
        return Ok(false);
      }
      pend = Some(joined(pend, Span { a, b, flags }));
      self.skip_ws();
      match self.peek() {
        Some(0x2C) => {
          self.pos += 1;
          self.skip_ws();
        }
        Some(0x5D) => {
          self.pos += 1;
          self.close_flat(start, count, pend)?;
          return Ok(false);
        }
        None => return Err(syntax("Unexpected end of JSON input", self.pos)),
        _ => {
          return Err(syntax(
            "Expected ',' or ']' after array element in JSON",
            self.pos,
          ))
        }
      }
    }
  }

  /// Closes an array read by [`Scanner::flat_array`] (`self.pos` just past `]`), as
  /// `close_container` closes an array frame that was never opened.
  #[inline(always)]
  fn close_flat(&mut self, start: usize, count: u64, pend: Option<Span>) -> Result<(), Failure> {
    if self.plan && self.pos - start > self.o.slice_units as usize {
      self.push_frame(false, start, count, pend);
      return self.close_container();
    }
    let flags = self.flags_since(start);
    self.child_has_prototype = false;
    self.complete(start, self.pos, flags, false, false);
    Ok(())
  }

  /// Reads `"key" :` at self.pos (whitespace skipped) and leaves self.pos at the value.
  fn member(&mut self) -> Result<(), Failure> {
    if self.peek() != Some(0x22) {
      if self.peek().is_none() {
        return Err(syntax("Unexpected end of JSON input", self.pos));
      }
      return Err(syntax("Expected property name or '}' in JSON", self.pos));
    }
    let ka = self.pos;
    let escapes = self.string(true)?;
    let kb = self.pos;
    let depth = self.frames.len() - 1;
    {
      let max_keys = self.o.max_keys;
      let f = self.frames.last_mut().unwrap();
      f.count += 1;
      if f.count > max_keys as u64 {
        return Err(Failure::limit(
          ErrorCode::JsonTooManyKeys,
          format!("JSON object has more than maxKeys ({max_keys}) keys"),
          ka,
          max_keys as u64,
        ));
      }
    }
    // Which of the three special names this key is, escapes decoded.
    let len = kb - ka - 2;
    // 1 __proto__, 2 constructor, 3 prototype. Unescaped keys are compared in place (no
    // allocation: most keys are 9 or 11 units long at most once per object); an escaped spelling
    // is at most 6 units per character, so only keys up to 66 units are decoded.
    let special = if escapes {
      if len <= 66 {
        special_name(&self.decode_key(ka, kb))
      } else {
        0
      }
    } else if len == 9 || len == 11 {
      special_name(&self.s[ka + 1..kb - 1])
    } else {
      0
    };
    if special == 1 {
      match self.o.proto_action {
        KeyAction::Error => {
          return Err(Failure::new(
            ErrorCode::JsonForbiddenKey,
            "JSON object contains a forbidden \"__proto__\" key",
            ka,
          ))
        }
        KeyAction::Remove => self.frames.last_mut().unwrap().del_proto = true,
        KeyAction::Ignore => {}
      }
    }
    let flags = self.flags_since(ka) | if escapes { FLAG_ESCAPES } else { 0 };
    {
      let f = self.frames.last_mut().unwrap();
      if special == 3 {
        f.has_prototype = true;
      }
      f.key = Span {
        a: ka,
        b: kb,
        flags,
      };
      f.member_start = ka;
      f.key_is_ctor = special == 2;
      f.key_pos = ka;
    }
    if self.select.is_some() {
      self.select_member(depth, Some((ka, kb, escapes)), 0, special);
    }
    self.skip_ws();
    if self.peek() != Some(0x3A) {
      return Err(syntax("Expected ':' after property name in JSON", self.pos));
    }
    self.pos += 1;
    self.skip_ws();
    Ok(())
  }

  #[inline(always)]
  fn element_starts(&mut self) -> Result<(), Failure> {
    let max = self.o.max_array_length;
    let depth = self.frames.len() - 1;
    let f = self.frames.last_mut().unwrap();
    f.member_start = self.pos;
    let index = f.count;
    f.count += 1;
    if f.count > max as u64 {
      return Err(self.array_too_long(self.pos));
    }
    if self.select.is_some() {
      self.select_member(depth, None, index, 0);
    }
    Ok(())
  }

  #[inline(always)]
  fn flags_since(&self, a: usize) -> u32 {
    if self.last_non_ascii != usize::MAX && self.last_non_ascii >= a {
      FLAG_NON_ASCII
    } else {
      0
    }
  }

  fn literal(&mut self, word: &[u8], start: usize) -> Result<(), Failure> {
    self.word(word)?;
    self.complete(start, self.pos, 0, false, false);
    Ok(())
  }

  #[inline(always)]
  fn word(&mut self, word: &[u8]) -> Result<(), Failure> {
    for &w in word {
      match self.peek() {
        Some(c) if c == w as u32 => self.pos += 1,
        _ => return Err(self.unexpected()),
      }
    }
    Ok(())
  }

  /// Reads a number at self.pos (on `-` or a digit).
  #[inline(always)]
  fn number(&mut self) -> Result<(), Failure> {
    let s = self.s;
    let n = s.len();
    let digit = |i: usize| i < n && s[i].get().wrapping_sub(b'0' as u32) < 10;
    let mut i = self.pos;
    if s[i].get() == b'-' as u32 {
      i += 1;
      if !digit(i) {
        return Err(self.no_digit(i, "No number after minus sign in JSON"));
      }
    }
    if s[i].get() == b'0' as u32 {
      i += 1;
    } else {
      i = self.digits_from(i + 1);
    }
    if i < n && s[i].get() == b'.' as u32 {
      i += 1;
      if !digit(i) {
        return Err(self.no_digit(i, "Unterminated fractional number in JSON"));
      }
      i = self.digits_from(i + 1);
    }
    if i < n && (s[i].get() | 0x20) == b'e' as u32 {
      i += 1;
      if i < n && (s[i].get() == b'+' as u32 || s[i].get() == b'-' as u32) {
        i += 1;
      }
      if !digit(i) {
        return Err(self.no_digit(i, "Exponent part is missing a number in JSON"));
      }
      i = self.digits_from(i + 1);
    }
    self.pos = i;
    Ok(())
  }

  /// A number missing a digit at `i`: the end of the input, or `missing`.
  fn no_digit(&mut self, i: usize, missing: &str) -> Failure {
    self.pos = i;
    if i >= self.s.len() {
      syntax("Unexpected end of JSON input", i)
    } else {
      syntax(missing, i)
    }
  }

  /// The first index at or after `i` that is not an ASCII digit.
  #[inline(always)]
  fn digits_from(&self, i: usize) -> usize {
    let s = self.s;
    let mut i = U::skip_digits(s, i);
    // Exact when found inside a whole block of eight; unit by unit otherwise (wide text, or the
    // last units of the input).
    if !U::WIDE && i + 8 <= s.len() {
      return i;
    }
    while i < s.len() && s[i].get().wrapping_sub(b'0' as u32) < 10 {
      i += 1;
    }
    i
  }

  /// Scans a string at self.pos (on the opening quote). Returns whether it had escapes.
  fn string(&mut self, is_key: bool) -> Result<bool, Failure> {
    let open = self.pos;
    self.pos += 1;
    let mut units: u64 = 0;
    let mut escapes = false;
    let s = self.s;
    let n = s.len();
    let mut i = self.pos;
    loop {
      // fast path over plain ASCII (one unit each)
      let j = U::skip_plain(s, i);
      units += (j - i) as u64;
      i = j;
      if i >= n {
        return Err(syntax("Unterminated string in JSON", n));
      }
      let c = s[i].get();
      if c == 0x22 {
        i += 1;
        break;
      } else if c == 0x5C {
        escapes = true;
        let Some(e) = s.get(i + 1).map(|u| u.get()) else {
          return Err(syntax("Unterminated string in JSON", n));
        };
        match e {
          0x22 | 0x5C | 0x2F | 0x62 | 0x66 | 0x6E | 0x72 | 0x74 => i += 2,
          0x75 => {
            for k in 0..4 {
              match s.get(i + 2 + k).map(|u| u.get()) {
                Some(h) if (h as u8 as u32 == h) && (h as u8).is_ascii_hexdigit() => {}
                None => return Err(syntax("Unterminated string in JSON", n)),
                _ => return Err(syntax("Bad Unicode escape in JSON", i + 2 + k)),
              }
            }
            i += 6;
          }
          _ => return Err(syntax("Bad escaped character in JSON", i + 1)),
        }
        units += 1;
      } else if c < 0x20 {
        return Err(syntax("Bad control character in string literal in JSON", i));
      } else {
        // a run of non-ASCII units (UTF-8: a leading byte is one UTF-16 unit, two for 4-byte
        // sequences; continuation bytes add none)
        while i < n {
          let c = s[i].get();
          if c < 0x80 {
            break;
          }
          if U::WIDE {
            units += 1;
          } else if c & 0xC0 != 0x80 {
            units += if c >= 0xF0 { 2 } else { 1 };
          }
          i += 1;
        }
        self.last_non_ascii = i - 1;
      }
    }
    self.pos = i;
    if units > self.o.max_string_length {
      return Err(Failure::limit(
        ErrorCode::JsonStringTooLong,
        format!(
          "JSON {} is longer than maxStringLength ({})",
          if is_key { "key" } else { "string" },
          self.o.max_string_length
        ),
        open,
        self.o.max_string_length,
      ));
    }
    Ok(escapes)
  }

  /// Decodes a quoted key with escapes into UTF-16 units (only used for short keys).
  fn decode_key(&self, a: usize, b: usize) -> Vec<u16> {
    let raw = &self.s[a + 1..b - 1];
    let mut out: Vec<u16> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
      let c = raw[i].get();
      if c == 0x5C {
        let e = raw[i + 1].get();
        let ch = match e {
          0x62 => 8,
          0x66 => 12,
          0x6E => 10,
          0x72 => 13,
          0x74 => 9,
          0x75 => {
            let mut v = 0u32;
            for k in 0..4 {
              v = v * 16
                + (raw[i + 2 + k].get() as u8 as char)
                  .to_digit(16)
                  .unwrap_or(0);
            }
            i += 4;
            v
          }
          other => other,
        };
        out.push(ch as u16);
        i += 2;
      } else if U::WIDE || c < 0x80 {
        out.push(c as u16);
        i += 1;
      } else {
        // a UTF-8 sequence: decode it (valid or replaced, it cannot equal an ASCII name)
        let len = if c >= 0xF0 {
          4
        } else if c >= 0xE0 {
          3
        } else {
          2
        };
        let end = (i + len).min(raw.len());
        let bytes: Vec<u8> = raw[i..end].iter().map(|u| u.get() as u8).collect();
        for u in String::from_utf8_lossy(&bytes).encode_utf16() {
          out.push(u);
        }
        i = end;
      }
    }
    out
  }

  fn key_units(&self, key: (usize, usize, bool)) -> Vec<u16> {
    let (a, b, escapes) = key;
    if escapes {
      return self.decode_key(a, b);
    }
    let raw = &self.s[a + 1..b - 1];
    if U::WIDE {
      raw.iter().map(|u| u.get() as u16).collect()
    } else {
      let bytes: Vec<u8> = raw.iter().map(|u| u.get() as u8).collect();
      String::from_utf8_lossy(&bytes).encode_utf16().collect()
    }
  }

  /// A member of frame `depth` starts (object key, or array index).
  fn select_member(
    &mut self,
    depth: usize,
    key: Option<(usize, usize, bool)>,
    index: u64,
    special: u8,
  ) {
    let proto_removed = special == 1 && self.o.proto_action == KeyAction::Remove;
    let mut units: Option<Vec<u16>> = None;
    // Taken out for the loop (no allocation per member), put back below.
    let mut sel = self.select.take().unwrap();
    for k in 0..sel.tokens.len() {
      if sel.matched[k] < depth || sel.tokens[k].len() <= depth {
        continue;
      }
      let t = &sel.tokens[k][depth];
      let hit = match key {
        None => t.index == Some(index),
        Some((a, b, escapes)) => {
          if proto_removed {
            false
          } else if !escapes && !U::WIDE {
            let raw = &self.s[a + 1..b - 1];
            raw.len() == t.utf8.len() && raw.iter().zip(&t.utf8).all(|(x, y)| x.get() == *y as u32)
          } else {
            let u = units.get_or_insert_with(|| self.key_units((a, b, escapes)));
            *u == t.utf16
          }
        }
      };
      sel.matched[k] = depth;
      if hit {
        sel.matched[k] = depth + 1;
        sel.found[k] = None;
      }
    }
    self.select = Some(sel);
  }

  /// A value `[a, b)` is complete (the parent frame, if any, is on top of the stack).
  #[inline(always)]
  fn complete(&mut self, a: usize, b: usize, flags: u32, opened: bool, is_obj: bool) {
    let has_prototype = is_obj && self.child_has_prototype;
    let depth = self.frames.len();
    if let Some(sel) = self.select.as_mut() {
      for k in 0..sel.tokens.len() {
        if sel.tokens[k].len() == depth && sel.matched[k] == depth {
          sel.found[k] = Some((a, b));
        }
      }
    }
    let Some(f) = self.frames.last_mut() else {
      if self.plan && !opened {
        self.emit(OP_VALUE, a, b, flags);
      }
      return;
    };
    if f.obj && f.key_is_ctor {
      f.ctor_flagged = has_prototype;
      if has_prototype {
        f.ctor_pos = f.key_pos;
      }
    }
    if !self.plan {
      return;
    }
    if opened {
      return;
    }
    let ms = f.member_start;
    let span = Span {
      a: ms,
      b,
      flags: flags
        | if f.obj {
          f.key.flags & FLAG_NON_ASCII
        } else {
          0
        },
    };
    // The common case: a member of a container still small enough to stay whole.
    if !f.opened && b - f.start <= self.o.slice_units as usize {
      f.pend = Some(joined(f.pend, span));
      return;
    }
    let i = self.frames.len() - 1;
    if !self.frames[i].opened {
      self.open(i);
    }
    // A large member of an opened container is a piece of its own: `JSON.parse` then reads a
    // slice of the text as it is, where a run costs a concatenation (`'[' + run + ']'`) and the
    // copy that flattens it.
    if b - a >= (self.o.slice_units as usize / 16).max(1) {
      self.flush_before_piece(i);
      self.emit(OP_VALUE, a, b, flags);
      return;
    }
    self.add_pending(i, span);
  }

  #[inline(always)]
  fn add_pending(&mut self, i: usize, span: Span) {
    let limit = self.o.slice_units as usize;
    let opened = self.frames[i].opened;
    if let Some(p) = self.frames[i].pend {
      if opened && span.b - p.a > limit {
        self.flush(i);
      }
    }
    let f = &mut self.frames[i];
    f.pend = Some(joined(f.pend, span));
  }

  /// Writes a plan op over the text `[a, b)` (offsets in the whole body).
  #[inline(always)]
  fn emit(&mut self, op: u32, a: usize, b: usize, flags: u32) {
    self
      .out
      .extend_from_slice(&[op, (a + self.base) as u32, (b + self.base) as u32, flags]);
  }

  fn flush(&mut self, i: usize) {
    if let Some(p) = self.frames[i].pend.take() {
      let op = if self.frames[i].obj {
        OP_OBJ_RUN
      } else {
        OP_ARR_RUN
      };
      self.emit(op, p.a, p.b, p.flags);
    }
  }

  /// What precedes a member of opened frame `i` that is a piece of its own (a large value or a
  /// nested opened container): the run pending before it, then its key if `i` is an object.
  fn flush_before_piece(&mut self, i: usize) {
    self.flush(i);
    if self.frames[i].obj {
      let k = self.frames[i].key;
      self.emit(OP_KEY, k.a, k.b, k.flags);
    }
  }

  /// Makes frame `i` (and its ancestors) built member by member.
  fn open(&mut self, i: usize) {
    if self.frames[i].opened {
      return;
    }
    if i > 0 {
      self.open(i - 1);
      self.flush_before_piece(i - 1);
    }
    self.out.push(if self.frames[i].obj {
      OP_BEGIN_OBJ
    } else {
      OP_BEGIN_ARR
    });
    self.frames[i].opened = true;
  }

  fn close_container(&mut self) -> Result<(), Failure> {
    let i = self.frames.len() - 1;
    let end = self.pos;
    let (obj, ctor_flagged, ctor_pos, del_proto, has_prototype, start) = {
      let f = &self.frames[i];
      (
        f.obj,
        f.ctor_flagged,
        f.ctor_pos,
        f.del_proto,
        f.has_prototype,
        f.start,
      )
    };
    let mut del_ctor = false;
    if obj && ctor_flagged {
      match self.o.constructor_action {
        KeyAction::Error => {
          return Err(Failure::new(
            ErrorCode::JsonForbiddenKey,
            "JSON object contains a forbidden \"constructor\" key with a \"prototype\"",
            ctor_pos,
          ))
        }
        KeyAction::Remove => del_ctor = true,
        KeyAction::Ignore => {}
      }
      if del_ctor {
        if let Some(sel) = self.select.as_mut() {
          for k in 0..sel.tokens.len() {
            if sel.matched[k] >= i
              && sel.tokens[k].len() > i
              && sel.tokens[k][i].utf8 == b"constructor"
            {
              sel.found[k] = None;
              sel.matched[k] = i;
            }
          }
        }
      }
    }
    let mut opened = self.frames[i].opened;
    if self.plan {
      if !opened && (del_proto || del_ctor || end - start > self.o.slice_units as usize) {
        self.open(i);
        opened = true;
      }
      if opened {
        self.flush(i);
        if del_proto {
          self.out.extend_from_slice(&[OP_DELETE, 0]);
        }
        if del_ctor {
          self.out.extend_from_slice(&[OP_DELETE, 1]);
        }
        self.out.push(OP_END);
      }
    }
    let flags = self.flags_since(start);
    self.frames.pop();
    if let Some(sel) = self.select.as_mut() {
      let d = self.frames.len();
      for m in sel.matched.iter_mut() {
        if *m > d + 1 {
          *m = d + 1;
        }
      }
    }
    self.child_has_prototype = has_prototype;
    self.complete(start, end, flags, opened, obj);
    Ok(())
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn check(text: &str, o: &ScanOptions) -> Result<Vec<u32>, Failure> {
    let a = scan(text.as_bytes(), o, None);
    let wide: Vec<u16> = text.encode_utf16().collect();
    let b = scan(wide.as_slice(), o, None);
    assert_eq!(a.is_ok(), b.is_ok(), "{text}");
    if let (Err(x), Err(y)) = (&a, &b) {
      assert_eq!(x.code, y.code, "{text}");
    }
    a
  }

  /// Random documents with many arrays of scalars (and some that are not), cut and corrupted:
  /// the frameless path for arrays of scalars gives the same plan, or the same failure at the
  /// same position, as the general loop, for every slice size and limit.
  #[test]
  fn flat_arrays_read_like_the_general_loop() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      seed % n
    };
    fn scalar(next: &mut impl FnMut(u64) -> u64) -> String {
      match next(7) {
        0 => "true".into(),
        1 => "null".into(),
        2 => "\"é\\n x\"".into(),
        3 => "-0.5e-3".into(),
        4 => format!("{}", next(1_000_000)),
        5 => "\"abc\"".into(),
        _ => format!("-{}.{}", next(1000), next(1_000_000)),
      }
    }
    fn value(next: &mut impl FnMut(u64) -> u64, depth: u32) -> String {
      let ws =
        |next: &mut dyn FnMut(u64) -> u64| [" ", "", "", "\n "][next(4) as usize].to_string();
      match next(if depth > 3 { 2 } else { 6 }) {
        0 => scalar(next),
        1..=3 => {
          let n = next(12);
          let items: Vec<String> = (0..n)
            .map(|_| {
              let v = if next(8) == 0 {
                value(next, depth + 1)
              } else {
                scalar(next)
              };
              format!("{}{}{}", ws(next), v, ws(next))
            })
            .collect();
          format!("[{}{}]", items.join(","), ws(next))
        }
        4 => {
          let n = next(5);
          let items: Vec<String> = (0..n)
            .map(|i| format!("\"k{i}\": {}", value(next, depth + 1)))
            .collect();
          format!("{{{}}}", items.join(","))
        }
        _ => {
          let n = next(4);
          let items: Vec<String> = (0..n).map(|_| value(next, depth + 1)).collect();
          format!("[{}]", items.join(","))
        }
      }
    }
    let run = |text: &[u8], o: &ScanOptions, flat: bool| {
      let mut s = Scanner::new(text, 0, o, None, o.plan, None);
      s.flat_arrays = flat;
      s.run()
        .map(|()| s.out)
        .map_err(|f| (f.code, f.offset, f.message))
    };
    let mut flat_ok = 0;
    for i in 0..3000 {
      let doc = value(&mut next, 0);
      let mut text = doc.clone().into_bytes();
      match i % 4 {
        0 => text.truncate(next(text.len() as u64 + 1) as usize),
        1 => {
          let at = next(text.len() as u64) as usize;
          text[at] = b"]},x 1[\"-"[next(9) as usize];
        }
        _ => {}
      }
      for slice_units in [16u32, 40, 100, 65536] {
        let o = ScanOptions {
          plan: i % 5 != 0,
          slice_units,
          max_array_length: if i % 7 == 0 { 3 } else { u32::MAX },
          max_total_nodes: if i % 11 == 0 { 20 } else { u64::MAX },
          ..ScanOptions::default()
        };
        let general = run(&text, &o, false);
        assert_eq!(
          run(&text, &o, true),
          general,
          "{}",
          String::from_utf8_lossy(&text)
        );
        flat_ok += general.is_ok() as u32;
      }
    }
    // Both outcomes were compared many times.
    assert!(flat_ok > 3000 && flat_ok < 12000, "{flat_ok}");
  }

  #[test]
  fn accepts_what_json_parse_accepts() {
    let o = ScanOptions::default();
    for text in [
      "0",
      "-0",
      "1e400",
      "-1.5E-3",
      " [ ] ",
      "{}",
      "\"\\ud800\"",
      "{\"a\":[1,{\"b\":null}],\"a\":2}",
      "\"é😀\"",
      "[true,false,null]",
      "12345678901234567890",
    ] {
      assert!(check(text, &o).is_ok(), "{text}");
    }
  }

  #[test]
  fn refuses_what_json_parse_refuses() {
    let o = ScanOptions::default();
    for text in [
      "",
      "[",
      "[1,]",
      "{\"a\"}",
      "01",
      "1.",
      "-",
      "+1",
      "1e",
      ".5",
      "\"\\x\"",
      "\"a\nb\"",
      "[1]x",
      "nul",
      "{'a':1}",
      "\"\\u12\"",
    ] {
      assert_eq!(
        check(text, &o).unwrap_err().code,
        ErrorCode::JsonSyntax,
        "{text:?}"
      );
    }
  }

  #[test]
  fn small_documents_are_one_value() {
    let plan = check(" [1, 2] ", &ScanOptions::default()).unwrap();
    assert_eq!(plan, vec![OP_VALUE, 1, 7, 0, OP_ROOT]);
  }

  #[test]
  fn large_containers_are_split_into_bounded_runs() {
    let o = ScanOptions {
      slice_units: 32,
      ..ScanOptions::default()
    };
    // Members shorter than slice_units / 16 are gathered into runs.
    let text = format!("[{}]", vec!["1"; 40].join(","));
    let plan = check(&text, &o).unwrap();
    assert_eq!(plan[0], OP_BEGIN_ARR);
    let mut i = 1;
    while plan[i] == OP_ARR_RUN {
      assert!(plan[i + 2] - plan[i + 1] <= 32);
      i += 4;
    }
    assert!(i > 5);
    assert_eq!(&plan[i..], &[OP_END, OP_ROOT]);
  }

  #[test]
  fn large_members_of_split_containers_are_pieces_of_their_own() {
    let o = ScanOptions {
      slice_units: 32,
      ..ScanOptions::default()
    };
    // The object outgrows 32 units at "e"; from then on, members of 2 units or more ("e", "f")
    // are slices of the text of their own, smaller ones ("g") go into runs.
    let text = r#"{"a":1,"b":1,"c":1,"d":1,"e":[12,3],"f":"xy","g":1}"#;
    let plan = check(text, &o).unwrap();
    let span = |a: usize, b: usize| text[a..b].to_string();
    let mut ops = Vec::new();
    let mut i = 0;
    while i < plan.len() {
      let op = plan[i];
      if matches!(op, OP_VALUE | OP_ARR_RUN | OP_OBJ_RUN | OP_KEY) {
        ops.push(format!(
          "{op}:{}",
          span(plan[i + 1] as usize, plan[i + 2] as usize)
        ));
        i += 4;
      } else {
        ops.push(op.to_string());
        i += 1;
      }
    }
    assert_eq!(
      ops,
      vec![
        "4",
        r#"2:"a":1,"b":1,"c":1,"d":1"#,
        r#"6:"e""#,
        "0:[12,3]",
        r#"6:"f""#,
        r#"0:"xy""#,
        r#"2:"g":1"#,
        "5",
        "8"
      ]
    );
  }

  #[test]
  fn finds_forbidden_keys_in_any_spelling() {
    let o = ScanOptions::default();
    for text in [
      "{\"__proto__\":1}",
      "[{\"\\u005f_proto__\":1}]",
      "{\"\\u005F\\u005F\\u0070roto__\":1}",
      "{\"constructor\":{\"prototype\":1}}",
      "{\"constructor\":{\"protot\\u0079pe\":1}}",
    ] {
      assert_eq!(
        check(text, &o).unwrap_err().code,
        ErrorCode::JsonForbiddenKey,
        "{text}"
      );
    }
    assert!(check("{\"constructor\":{\"name\":1}}", &o).is_ok());
    assert!(check("{\"constructor\":{\"prototype\":1},\"constructor\":2}", &o).is_ok());
    let remove = ScanOptions {
      proto_action: KeyAction::Remove,
      ..ScanOptions::default()
    };
    let plan = check("{\"__proto__\":1}", &remove).unwrap();
    assert_eq!(
      plan,
      vec![
        OP_BEGIN_OBJ,
        OP_OBJ_RUN,
        1,
        14,
        0,
        OP_DELETE,
        0,
        OP_END,
        OP_ROOT
      ]
    );
  }

  #[test]
  fn limits() {
    let lim = |f: fn(&mut ScanOptions)| {
      let mut o = ScanOptions::default();
      f(&mut o);
      o
    };
    let deep = lim(|o| o.max_depth = 2);
    assert!(check("[[1]]", &deep).is_ok());
    assert_eq!(
      check("[[[1]]]", &deep).unwrap_err().code,
      ErrorCode::JsonTooDeep
    );
    let keys = lim(|o| o.max_keys = 1);
    assert_eq!(
      check("{\"a\":1,\"a\":2}", &keys).unwrap_err().code,
      ErrorCode::JsonTooManyKeys
    );
    let arr = lim(|o| o.max_array_length = 2);
    assert_eq!(
      check("[1,2,3]", &arr).unwrap_err().code,
      ErrorCode::JsonArrayTooLong
    );
    let s = lim(|o| o.max_string_length = 2);
    assert!(check("\"\\u00e9\\n\"", &s).is_ok());
    assert_eq!(
      check("\"😀x\"", &s).unwrap_err().code,
      ErrorCode::JsonStringTooLong
    );
    // Runs of non-ASCII characters count as JS string length: é 1, 😀 2, ☃ 1.
    let five = lim(|o| o.max_string_length = 5);
    assert!(check("\"é😀a☃\"", &five).is_ok());
    let four = lim(|o| o.max_string_length = 4);
    assert_eq!(
      check("\"é😀a☃\"", &four).unwrap_err().code,
      ErrorCode::JsonStringTooLong
    );
    let nodes = lim(|o| o.max_total_nodes = 2);
    assert_eq!(
      check("[1,2]", &nodes).unwrap_err().code,
      ErrorCode::JsonTooManyNodes
    );
    let bytes = lim(|o| o.max_bytes = 3);
    assert_eq!(
      check("\"éé\"", &bytes).unwrap_err().code,
      ErrorCode::JsonTooLarge
    );
  }

  #[test]
  fn invalid_utf8_is_refused_unless_replaced() {
    let text = b"[\"a\xff\"]";
    let err = scan(&text[..], &ScanOptions::default(), None).unwrap_err();
    assert_eq!((err.code, err.offset), (ErrorCode::JsonInvalidUtf8, 3));
    let replace = ScanOptions {
      utf8_replace: true,
      ..ScanOptions::default()
    };
    assert!(scan(&text[..], &replace, None).is_ok());
  }

  #[test]
  fn swar_skips_match_the_unit_by_unit_definition() {
    // Every byte value at every offset of a 17-byte window (two SWAR blocks and a tail), after
    // plain / digit runs of every length.
    for fill in [b'a', b'7'] {
      for at in 0..17 {
        for c in 0..=255u8 {
          let mut text = vec![fill; 17];
          text[at] = c;
          for from in [0, 1, 5] {
            let plain = (from..text.len())
              .find(|&k| !is_plain(text[k] as u32))
              .unwrap_or(text.len());
            assert_eq!(u8::skip_plain(&text, from), plain, "plain {fill} {at} {c}");
            let digit = (from..text.len())
              .find(|&k| !text[k].is_ascii_digit())
              .unwrap_or(text.len());
            let got = u8::skip_digits(&text, from);
            assert!(got <= digit && digit - got < 8, "digits {fill} {at} {c}");
          }
        }
      }
    }
  }

  #[test]
  fn special_keys_are_found_with_and_without_escapes() {
    let o = ScanOptions::default();
    for (text, bad) in [
      ("{\"__proto_\":1,\"__proto__x\":1,\"_\":1}", false),
      ("{\"__proto__\":1}", true),
      ("{\"\\u005f\\u005fproto__\":1}", true),
      ("{\"constructor\":{\"prototype\":1}}", true),
      ("{\"constructor\":{\"prototypE\":1}}", false),
      ("{\"constructoR\":{\"prototype\":1}}", false),
    ] {
      assert_eq!(check(text, &o).is_err(), bad, "{text}");
    }
  }

  #[test]
  fn a_failure_in_a_head_is_the_failure_of_the_whole_body() {
    let lim = |f: fn(&mut ScanOptions)| {
      let mut o = ScanOptions::default();
      f(&mut o);
      o
    };
    let cases: Vec<(&[u8], ScanOptions)> = vec![
      (
        b"{\"a\":[1,-2.5e3,\"x\\u00e9y\",true,null],\"b\":{\"c\":\"\xc3\xa9\xf0\x9f\x98\x80\"}} ",
        ScanOptions::default(),
      ),
      (br#"[1,2,x]"#, ScanOptions::default()),
      (br#"[1,2] 3"#, ScanOptions::default()),
      (br#"{"a":1,"__proto__":{"b":2}}"#, ScanOptions::default()),
      (
        br#"{"constructor":{"prototype":1},"a":[1,2,3]}"#,
        ScanOptions::default(),
      ),
      (
        br#"{"constructor":{"prototype":1},"constructor":0}"#,
        ScanOptions::default(),
      ),
      (b"[\"\xc3\xa9\", 01]", ScanOptions::default()),
      (b"[\"a\xff\", 1]", ScanOptions::default()),
      (b"[\"a\xe2\x98\", 1]", ScanOptions::default()),
      (br#"[1,[2,[3,[4]]]]"#, lim(|o| o.max_depth = 3)),
      (br#"[1,2,3,4,5]"#, lim(|o| o.max_total_nodes = 3)),
      (br#"["abcdef","gh"]"#, lim(|o| o.max_string_length = 4)),
      (br#"{"a":1,"b":2,"c":3}"#, lim(|o| o.max_keys = 2)),
      (br#"[[1,2,3],[4,5,6,7]]"#, lim(|o| o.max_array_length = 3)),
    ];
    for (text, o) in cases {
      let whole = scan(text, &o, None);
      let head = ScanOptions {
        prefix: true,
        ..o.clone()
      };
      let mut refused = false;
      for k in 0..=text.len() {
        if let Err(f) = scan(&text[..k], &head, None) {
          let w = whole.as_ref().unwrap_err();
          assert_eq!(
            (f.code, f.offset),
            (w.code, w.offset),
            "{text:?} cut at {k}"
          );
          refused = true;
        }
      }
      // Every refused body is refused from its full text at the latest.
      assert_eq!(refused, whole.is_err(), "{text:?}");
      if let Ok(t) = std::str::from_utf8(text) {
        let wide: Vec<u16> = t.encode_utf16().collect();
        let whole = scan(wide.as_slice(), &o, None);
        for k in 0..=wide.len() {
          if let Err(f) = scan(&wide[..k], &head, None) {
            let w = whole.as_ref().unwrap_err();
            assert_eq!(
              (f.code, f.offset),
              (w.code, w.offset),
              "{t:?} cut at {k} (wide)"
            );
          }
        }
      }
    }
  }

  #[test]
  fn positions_are_js_string_indices() {
    let text = "{\n \"é😀\": x}";
    let err = scan(text.as_bytes(), &ScanOptions::default(), None).unwrap_err();
    assert_eq!(position(text.as_bytes(), err.offset), (10, 2, 9));
    let wide: Vec<u16> = text.encode_utf16().collect();
    let err = scan(wide.as_slice(), &ScanOptions::default(), None).unwrap_err();
    assert_eq!(position(wide.as_slice(), err.offset), (10, 2, 9));
  }
}
