//! ECMAScript regex AST (oxc_regular_expression) → regex-syntax HIR over bytes.

use super::charset::{Set, LINE_TERMINATORS};
use crate::error::{BulwarkError, ErrorCode};
use oxc_allocator::Allocator;
use oxc_regular_expression::ast::{
  BoundaryAssertionKind, CharacterClass, CharacterClassContents, CharacterClassContentsKind,
  CharacterClassEscapeKind, Disjunction, LookAroundAssertionKind, Modifier, Term,
};
use oxc_regular_expression::{ConstructorParser, Options};
use regex_syntax::hir::{Capture, Hir, Look, Repetition};

/// Deepest group/class nesting accepted (the parser and this translator recurse).
pub const MAX_NEST: usize = 200;
/// Largest repetition count accepted in `{n,m}` (larger ones cannot fit the size limit anyway).
pub const MAX_REPEAT: u64 = 100_000;

#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
  pub ignore_case: bool,
  pub multiline: bool,
  pub dot_all: bool,
  pub unicode: bool,
  pub sets: bool,
}

#[derive(Debug, Clone)]
pub struct GroupMeta {
  /// Index of the group in the compiled regex.
  pub slot: usize,
  pub name: Option<String>,
  /// Hidden capture groups (compiled indexes) around the bodies of the repeated quantifiers
  /// that enclose this group, outermost first: a capture only counts if it was set during the
  /// last iteration of each of them (JS resets captures at each iteration).
  pub iterations: Vec<usize>,
}

pub struct Translated {
  pub hir: Hir,
  pub groups: Vec<GroupMeta>,
  pub framed: bool,
}

pub fn syntax_err(msg: impl Into<String>) -> BulwarkError {
  BulwarkError::new(ErrorCode::RegexSyntax, msg.into())
}

struct Ctx<'p> {
  flags: Flags,
  framed: bool,
  uses_multiline_anchor: bool,
  next_slot: usize,
  groups: Vec<GroupMeta>,
  iterations: Vec<usize>,
  pos_map: &'p [u32],
  source: &'p [u16],
  depth: usize,
}

fn source_display(source: &[u16]) -> String {
  String::from_utf16_lossy(source)
}

/// Quotes the pattern's code units as a JS string literal for oxc's `ConstructorParser`
/// (escaping only what a string literal needs, and lone surrogates, which `&str` cannot hold).
/// Returns the literal and, for every byte of it, the index of the source code unit it came
/// from (for error positions).
fn quote(source: &[u16]) -> (String, Vec<u32>) {
  let mut lit = String::with_capacity(source.len() + 2);
  let mut map = Vec::with_capacity(source.len() + 2);
  lit.push('"');
  map.push(0);
  let mut i = 0;
  while i < source.len() {
    let u = source[i];
    let start = lit.len();
    let mut width = 1;
    if (0xD800..0xDC00).contains(&u)
      && i + 1 < source.len()
      && (0xDC00..0xE000).contains(&source[i + 1])
    {
      let c = 0x10000 + (((u as u32) - 0xD800) << 10) + (source[i + 1] as u32 - 0xDC00);
      lit.push(char::from_u32(c).unwrap());
      width = 2;
    } else if (0xD800..0xE000).contains(&u) {
      lit.push_str(&format!("\\u{u:04X}"));
    } else {
      match u {
        0x22 => lit.push_str("\\\""),
        0x5C => lit.push_str("\\\\"),
        0x0A => lit.push_str("\\n"),
        0x0D => lit.push_str("\\r"),
        0x2028 => lit.push_str("\\u2028"),
        0x2029 => lit.push_str("\\u2029"),
        _ => lit.push(char::from_u32(u as u32).unwrap()),
      }
    }
    for _ in start..lit.len() {
      map.push(i as u32);
    }
    i += width;
  }
  lit.push('"');
  map.push(source.len() as u32);
  (lit, map)
}

/// Cheap pre-scan so a hostile pattern cannot overflow the parser's stack.
fn check_nesting(source: &[u16]) -> Result<(), BulwarkError> {
  let (mut depth, mut max, mut escaped) = (0usize, 0usize, false);
  for &u in source {
    if escaped {
      escaped = false;
      continue;
    }
    match u {
      0x5C => escaped = true,
      0x28 | 0x5B => {
        depth += 1;
        max = max.max(depth);
      }
      0x29 | 0x5D => depth = depth.saturating_sub(1),
      _ => {}
    }
  }
  if max > MAX_NEST {
    return Err(BulwarkError::new(
      ErrorCode::RegexTooLarge,
      format!("Invalid regular expression: nesting deeper than {MAX_NEST} levels is not supported"),
    ));
  }
  Ok(())
}

pub fn translate(source: &[u16], flags: Flags) -> Result<Translated, BulwarkError> {
  translate_with(source, flags, false)
}

/// Like [`translate`], with line terminators framed whether or not the pattern needs it (for
/// sets, whose members must share one haystack encoding).
pub fn translate_framed(source: &[u16], flags: Flags) -> Result<Translated, BulwarkError> {
  translate_with(source, flags, true)
}

fn translate_with(
  source: &[u16],
  flags: Flags,
  force_framed: bool,
) -> Result<Translated, BulwarkError> {
  check_nesting(source)?;
  let (lit, pos_map) = quote(source);
  let alloc = Allocator::default();
  let flag_text = if flags.sets {
    "\"v\""
  } else if flags.unicode {
    "\"u\""
  } else {
    "\"\""
  };
  let parsed = ConstructorParser::new(&alloc, &lit, Some(flag_text), Options::default()).parse();
  let pattern = parsed.map_err(|e| {
    let at = e
      .labels
      .first()
      .map(|l| pos_map.get(l.offset() as usize).copied().unwrap_or(0))
      .unwrap_or(0);
    syntax_err(format!(
      "Invalid regular expression: /{}/: {} (at index {at})",
      source_display(source),
      e.message
    ))
  })?;
  let mut framed = force_framed;
  loop {
    let mut ctx = Ctx {
      flags,
      framed,
      uses_multiline_anchor: false,
      next_slot: 1,
      groups: Vec::new(),
      iterations: Vec::new(),
      pos_map: &pos_map,
      source,
      depth: 0,
    };
    let hir = ctx.disjunction(&pattern.body)?;
    if ctx.uses_multiline_anchor && !framed {
      framed = true;
      continue;
    }
    return Ok(Translated {
      hir,
      groups: ctx.groups,
      framed,
    });
  }
}

impl Ctx<'_> {
  fn max(&self) -> u32 {
    if self.flags.unicode || self.flags.sets {
      0x10FFFF
    } else {
      0xFFFF
    }
  }
  fn pos(&self, byte: u32) -> u32 {
    self.pos_map.get(byte as usize).copied().unwrap_or(0)
  }
  fn unsupported(&self, what: &str, byte: u32) -> BulwarkError {
    BulwarkError::new(
      ErrorCode::RegexUnsupported,
      format!(
        "Invalid regular expression: /{}/: {what} is not supported by SafeRegExp (at index {}); it cannot run in linear time",
        source_display(self.source),
        self.pos(byte)
      ),
    )
  }
  fn unicode(&self) -> bool {
    self.flags.unicode || self.flags.sets
  }

  fn disjunction(&mut self, d: &Disjunction) -> Result<Hir, BulwarkError> {
    self.depth += 1;
    if self.depth > MAX_NEST * 2 {
      return Err(BulwarkError::new(
        ErrorCode::RegexTooLarge,
        "Invalid regular expression: nesting too deep",
      ));
    }
    let mut alts = Vec::with_capacity(d.body.len());
    for alt in &d.body {
      let mut seq = Vec::with_capacity(alt.body.len());
      for term in &alt.body {
        seq.push(self.term(term)?);
      }
      alts.push(Hir::concat(seq));
    }
    self.depth -= 1;
    Ok(Hir::alternation(alts))
  }

  fn set_hir(&self, set: Set) -> Hir {
    let set = if self.flags.ignore_case {
      set.case_close(self.unicode())
    } else {
      set
    };
    if let Some(c) = set.as_single() {
      let special = (0xD800..0xE000).contains(&c) || (self.framed && LINE_TERMINATORS.contains(&c));
      if !special {
        let mut b = Vec::with_capacity(4);
        super::charset::encode_unit(c, false, &mut b);
        return Hir::literal(b);
      }
    }
    set.to_hir(self.framed)
  }

  fn term(&mut self, t: &Term) -> Result<Hir, BulwarkError> {
    Ok(match t {
      Term::BoundaryAssertion(b) => match b.kind {
        BoundaryAssertionKind::Start if self.flags.multiline => {
          self.uses_multiline_anchor = true;
          Hir::look(Look::StartLF)
        }
        BoundaryAssertionKind::End if self.flags.multiline => {
          self.uses_multiline_anchor = true;
          Hir::look(Look::EndLF)
        }
        BoundaryAssertionKind::Start => Hir::look(Look::Start),
        BoundaryAssertionKind::End => Hir::look(Look::End),
        BoundaryAssertionKind::Boundary | BoundaryAssertionKind::NegativeBoundary => {
          if self.flags.ignore_case && self.unicode() {
            return Err(self.unsupported(
              "\\b or \\B with flags i and u/v (word characters then include U+017F and U+212A)",
              b.span.start,
            ));
          }
          if b.kind == BoundaryAssertionKind::Boundary {
            Hir::look(Look::WordAscii)
          } else {
            Hir::look(Look::WordAsciiNegate)
          }
        }
      },
      Term::LookAroundAssertion(l) => {
        let what = match l.kind {
          LookAroundAssertionKind::Lookahead => "lookahead (?=…)",
          LookAroundAssertionKind::NegativeLookahead => "negative lookahead (?!…)",
          LookAroundAssertionKind::Lookbehind => "lookbehind (?<=…)",
          LookAroundAssertionKind::NegativeLookbehind => "negative lookbehind (?<!…)",
        };
        return Err(self.unsupported(what, l.span.start));
      }
      Term::IndexedReference(r) => {
        return Err(self.unsupported(&format!("backreference \\{}", r.index), r.span.start))
      }
      Term::NamedReference(r) => {
        return Err(self.unsupported(
          &format!("backreference \\k<{}>", r.name.as_str()),
          r.span.start,
        ))
      }
      Term::Quantifier(q) => {
        if q.min > MAX_REPEAT || q.max.is_some_and(|m| m > MAX_REPEAT) {
          return Err(BulwarkError::new(
            ErrorCode::RegexTooLarge,
            format!(
              "Invalid regular expression: /{}/: repetition count above {MAX_REPEAT} (at index {})",
              source_display(self.source),
              self.pos(q.span.start)
            ),
          ));
        }
        let repeats = q.max.is_none_or(|m| m > 1);
        let hidden = if repeats && term_has_capture(&q.body) {
          let slot = self.next_slot;
          self.next_slot += 1;
          self.iterations.push(slot);
          Some(slot)
        } else {
          None
        };
        let mut sub = self.term(&q.body)?;
        if q.max.is_none_or(|m| m > q.min) && sub.properties().minimum_len() == Some(0) {
          // JS rejects an optional iteration that matches the empty string and backtracks into
          // the body's other choices; the automata accept it. The results differ (spans and
          // captures), so refuse rather than change the meaning.
          return Err(self.unsupported(
            "a quantifier with optional iterations over a group that can match the empty string",
            q.span.start,
          ));
        }
        if let Some(slot) = hidden {
          self.iterations.pop();
          sub = Hir::capture(Capture {
            index: slot as u32,
            name: None,
            sub: Box::new(sub),
          });
        }
        Hir::repetition(Repetition {
          min: q.min as u32,
          max: q.max.map(|m| m as u32),
          greedy: q.greedy,
          sub: Box::new(sub),
        })
      }
      Term::Character(c) => self.set_hir(Set::single(c.value)),
      Term::Dot(_) => {
        let all = Set::range(0, self.max());
        if self.flags.dot_all {
          all.to_hir(self.framed)
        } else {
          let lt = Set::from_ranges(LINE_TERMINATORS.iter().map(|&c| (c, c)).collect());
          all.minus(&lt, self.max()).to_hir(self.framed)
        }
      }
      Term::CharacterClassEscape(e) => self.set_hir(self.escape_set(e.kind)),
      Term::UnicodePropertyEscape(p) => {
        let s = self.property_set(
          p.negative,
          p.strings,
          p.name.as_str(),
          p.value.as_ref().map(|v| v.as_str()),
          p.span.start,
        )?;
        self.set_hir(s)
      }
      Term::CharacterClass(c) => {
        let s = self.class_set(c)?;
        s.to_hir(self.framed)
      }
      Term::CapturingGroup(g) => {
        let slot = self.next_slot;
        self.next_slot += 1;
        if let Some(name) = &g.name {
          if self
            .groups
            .iter()
            .any(|x| x.name.as_deref() == Some(name.as_str()))
          {
            return Err(self.unsupported(
              &format!("duplicate capture group name <{}> (ES2025)", name.as_str()),
              g.span.start,
            ));
          }
        }
        self.groups.push(GroupMeta {
          slot,
          name: g.name.as_ref().map(|n| n.as_str().to_string()),
          iterations: self.iterations.clone(),
        });
        let sub = self.disjunction(&g.body)?;
        Hir::capture(Capture {
          index: slot as u32,
          name: None,
          sub: Box::new(sub),
        })
      }
      Term::IgnoreGroup(g) => {
        let saved = self.flags;
        if let Some(m) = &g.modifiers {
          for (bit, on) in [(m.enabling, true), (m.disabling, false)] {
            if bit.contains(Modifier::I) {
              self.flags.ignore_case = on;
            }
            if bit.contains(Modifier::M) {
              self.flags.multiline = on;
            }
            if bit.contains(Modifier::S) {
              self.flags.dot_all = on;
            }
          }
        }
        let h = self.disjunction(&g.body);
        self.flags = saved;
        h?
      }
    })
  }

  fn escape_set(&self, kind: CharacterClassEscapeKind) -> Set {
    use CharacterClassEscapeKind as K;
    let max = self.max();
    let digit = Set::range(0x30, 0x39);
    let mut word = vec![(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];
    if self.flags.ignore_case && self.unicode() {
      word.extend([(0x17F, 0x17F), (0x212A, 0x212A)]);
    }
    let word = Set::from_ranges(word);
    let space = Set::from_ranges(vec![
      (0x09, 0x0D),
      (0x20, 0x20),
      (0xA0, 0xA0),
      (0x1680, 0x1680),
      (0x2000, 0x200A),
      (0x2028, 0x2029),
      (0x202F, 0x202F),
      (0x205F, 0x205F),
      (0x3000, 0x3000),
      (0xFEFF, 0xFEFF),
    ]);
    match kind {
      K::D => digit,
      K::NegativeD => digit.complement(max),
      K::S => space,
      K::NegativeS => space.complement(max),
      K::W => word,
      K::NegativeW => word.complement(max),
    }
  }

  fn property_set(
    &self,
    negative: bool,
    strings: bool,
    name: &str,
    value: Option<&str>,
    at: u32,
  ) -> Result<Set, BulwarkError> {
    if strings {
      return Err(self.unsupported("a property of strings", at));
    }
    let query = match value {
      Some(v) => format!("\\p{{{name}={v}}}"),
      None => format!("\\p{{{name}}}"),
    };
    // regex-syntax holds the Unicode property tables; oxc has already checked the name is one
    // ECMAScript accepts, so this only looks the table up.
    let hir = regex_syntax::ParserBuilder::new()
      .build()
      .parse(&query)
      .map_err(|_| self.unsupported(&format!("Unicode property {}", &query[1..]), at))?;
    let regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(cls)) = hir.kind()
    else {
      return Err(self.unsupported(&format!("Unicode property {}", &query[1..]), at));
    };
    let set = Set::from_ranges(
      cls
        .ranges()
        .iter()
        .map(|r| (r.start() as u32, r.end() as u32))
        .collect(),
    );
    Ok(if negative {
      set.complement(self.max())
    } else {
      set
    })
  }

  fn class_set(&mut self, c: &CharacterClass) -> Result<Set, BulwarkError> {
    self.depth += 1;
    if self.depth > MAX_NEST * 2 {
      return Err(BulwarkError::new(
        ErrorCode::RegexTooLarge,
        "Invalid regular expression: nesting too deep",
      ));
    }
    let max = self.max();
    let mut acc: Option<Set> = None;
    for item in &c.body {
      let s = match item {
        CharacterClassContents::CharacterClassRange(r) => Set::range(r.min.value, r.max.value),
        CharacterClassContents::CharacterClassEscape(e) => self.escape_set(e.kind),
        CharacterClassContents::UnicodePropertyEscape(p) => self.property_set(
          p.negative,
          p.strings,
          p.name.as_str(),
          p.value.as_ref().map(|v| v.as_str()),
          p.span.start,
        )?,
        CharacterClassContents::Character(ch) => Set::single(ch.value),
        CharacterClassContents::NestedCharacterClass(n) => self.class_set(n)?,
        CharacterClassContents::ClassStringDisjunction(d) => {
          let mut s = Set::empty();
          for string in &d.body {
            if string.body.len() != 1 {
              return Err(self.unsupported(
                "a \\q{…} string of other than one character",
                string.span.start,
              ));
            }
            s = s.union(&Set::single(string.body[0].value));
          }
          s
        }
      };
      acc = Some(match (acc, c.kind) {
        (None, _) => s,
        (Some(a), CharacterClassContentsKind::Union) => a.union(&s),
        (Some(a), CharacterClassContentsKind::Intersection) => a.intersect(&s, max),
        (Some(a), CharacterClassContentsKind::Subtraction) => a.minus(&s, max),
      });
    }
    self.depth -= 1;
    let mut set = acc.unwrap_or_default();
    if self.flags.ignore_case {
      set = set.case_close(self.unicode());
    }
    if c.negative {
      set = set.complement(max);
    }
    Ok(set)
  }
}

fn disjunction_has_capture(d: &Disjunction) -> bool {
  d.body.iter().any(|a| a.body.iter().any(term_has_capture))
}

fn term_has_capture(t: &Term) -> bool {
  match t {
    Term::CapturingGroup(_) => true,
    Term::IgnoreGroup(g) => disjunction_has_capture(&g.body),
    Term::Quantifier(q) => term_has_capture(&q.body),
    Term::LookAroundAssertion(l) => disjunction_has_capture(&l.body),
    _ => false,
  }
}
