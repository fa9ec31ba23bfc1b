//! Code-point sets with JavaScript semantics, and their translation to byte-level HIR.
//!
//! A set is a sorted list of disjoint inclusive `u32` ranges over the pattern's universe:
//! UTF-16 code units (`0..=0xFFFF`) without `u`/`v`, code points (`0..=0x10FFFF`, surrogates
//! included: lone surrogates are matchable) with them. Case closure follows the spec's
//! `Canonicalize`: simple case folding with `u`/`v` (via regex-syntax's tables), `toUpperCase`
//! without (a hand-built table: no crate implements that legacy mapping).

use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir};
use std::sync::OnceLock;

pub const LINE_TERMINATORS: [u32; 4] = [0x0A, 0x0D, 0x2028, 0x2029];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set(pub Vec<(u32, u32)>);

impl Set {
  pub fn empty() -> Set {
    Set(Vec::new())
  }
  pub fn range(lo: u32, hi: u32) -> Set {
    Set(vec![(lo, hi)])
  }
  pub fn single(c: u32) -> Set {
    Set(vec![(c, c)])
  }
  pub fn from_ranges(mut v: Vec<(u32, u32)>) -> Set {
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
      if lo > hi {
        continue;
      }
      match out.last_mut() {
        Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
        _ => out.push((lo, hi)),
      }
    }
    Set(out)
  }
  pub fn union(&self, other: &Set) -> Set {
    let mut v = self.0.clone();
    v.extend_from_slice(&other.0);
    Set::from_ranges(v)
  }
  pub fn complement(&self, max: u32) -> Set {
    let mut out = Vec::new();
    let mut next = 0u32;
    for &(lo, hi) in &self.0 {
      if lo > max {
        break;
      }
      if lo > next {
        out.push((next, lo - 1));
      }
      next = hi.saturating_add(1);
    }
    if next <= max {
      out.push((next, max));
    }
    Set(out)
  }
  pub fn intersect(&self, other: &Set, max: u32) -> Set {
    self
      .complement(max)
      .union(&other.complement(max))
      .complement(max)
  }
  pub fn minus(&self, other: &Set, max: u32) -> Set {
    self.intersect(&other.complement(max), max)
  }
  pub fn contains(&self, c: u32) -> bool {
    let i = self.0.partition_point(|&(_, hi)| hi < c);
    i < self.0.len() && self.0[i].0 <= c
  }
  /// The only member, if the set has exactly one.
  pub fn as_single(&self) -> Option<u32> {
    match self.0.as_slice() {
      [(lo, hi)] if lo == hi => Some(*lo),
      _ => None,
    }
  }

  /// Closes the set under JS case-insensitive equivalence.
  pub fn case_close(&self, unicode: bool) -> Set {
    if unicode {
      // Simple case folding over scalar values; surrogates have no case.
      let mut scalar = ClassUnicode::new(self.scalar_ranges());
      scalar.case_fold_simple();
      let mut v = self.0.clone();
      v.extend(
        scalar
          .ranges()
          .iter()
          .map(|r| (r.start() as u32, r.end() as u32)),
      );
      Set::from_ranges(v)
    } else {
      let t = legacy_table();
      let mut v = self.0.clone();
      for &(member, group) in &t.members {
        if self.contains(member) {
          for &m in &t.groups[group as usize] {
            v.push((m, m));
          }
        }
      }
      Set::from_ranges(v)
    }
  }

  fn scalar_ranges(&self) -> Vec<ClassUnicodeRange> {
    let mut out = Vec::new();
    for &(lo, hi) in &self.0 {
      for (a, b) in [(lo, hi.min(0xD7FF)), (lo.max(0xE000), hi)] {
        if a <= b {
          if let (Some(a), Some(b)) = (char::from_u32(a), char::from_u32(b)) {
            out.push(ClassUnicodeRange::new(a, b));
          }
        }
      }
    }
    out
  }

  /// The set as HIR over this module's byte encoding (see `encode_unit`).
  pub fn to_hir(&self, framed: bool) -> Hir {
    let mut alts = Vec::new();
    let mut set = self.clone();
    if framed {
      for lt in LINE_TERMINATORS {
        if set.contains(lt) {
          let mut buf = Vec::new();
          encode_unit(lt, true, &mut buf);
          alts.push(Hir::literal(buf));
        }
      }
      set = set.minus(
        &Set::from_ranges(LINE_TERMINATORS.iter().map(|&c| (c, c)).collect()),
        0x10FFFF,
      );
    }
    let scalar = set.scalar_ranges();
    if !scalar.is_empty() {
      alts.insert(0, Hir::class(Class::Unicode(ClassUnicode::new(scalar))));
    }
    for &(lo, hi) in &set.0 {
      let (a, b) = (lo.max(0xD800), hi.min(0xDFFF));
      if a <= b {
        surrogate_hir(a, b, &mut alts);
      }
    }
    match alts.len() {
      0 => Hir::fail(),
      1 => alts.pop().unwrap(),
      _ => Hir::alternation(alts),
    }
  }
}

fn bytes(lo: u8, hi: u8) -> Hir {
  Hir::class(Class::Bytes(ClassBytes::new([ClassBytesRange::new(
    lo, hi,
  )])))
}

/// Surrogates are encoded like any 3-byte sequence: `ED`, `A0..=BF`, `80..=BF`.
fn surrogate_hir(lo: u32, hi: u32, alts: &mut Vec<Hir>) {
  let (lo2, lo3) = (((lo >> 6) & 0x3F) as u8, (lo & 0x3F) as u8);
  let (hi2, hi3) = (((hi >> 6) & 0x3F) as u8, (hi & 0x3F) as u8);
  let seq = |b2lo: u8, b2hi: u8, b3lo: u8, b3hi: u8| {
    Hir::concat(vec![
      Hir::literal([0xEDu8]),
      bytes(0x80 | b2lo, 0x80 | b2hi),
      bytes(0x80 | b3lo, 0x80 | b3hi),
    ])
  };
  if lo2 == hi2 {
    alts.push(seq(lo2, lo2, lo3, hi3));
    return;
  }
  alts.push(seq(lo2, lo2, lo3, 0x3F));
  if lo2 + 1 < hi2 {
    alts.push(seq(lo2 + 1, hi2 - 1, 0, 0x3F));
  }
  alts.push(seq(hi2, hi2, 0, hi3));
}

/// Encodes one unit (a UTF-16 code unit without `u`, a code point with it) the way haystacks
/// are encoded: generalized UTF-8 (surrogates as 3-byte sequences), and, when `framed`, the
/// four line terminators as `0A F8+k 0A` so `Look::StartLF`/`EndLF` see every JS line
/// terminator as a `\n` on both sides.
#[inline]
pub fn encode_unit(c: u32, framed: bool, out: &mut Vec<u8>) {
  if c < 0x80 {
    if framed && c == 0x0A {
      out.extend_from_slice(&[0x0A, 0xF8, 0x0A]);
    } else if framed && c == 0x0D {
      out.extend_from_slice(&[0x0A, 0xF9, 0x0A]);
    } else {
      out.push(c as u8);
    }
  } else if c < 0x800 {
    out.extend_from_slice(&[0xC0 | (c >> 6) as u8, 0x80 | (c & 0x3F) as u8]);
  } else if c < 0x10000 {
    if framed && (c == 0x2028 || c == 0x2029) {
      out.extend_from_slice(&[0x0A, 0xFA + (c - 0x2028) as u8, 0x0A]);
    } else {
      out.extend_from_slice(&[
        0xE0 | (c >> 12) as u8,
        0x80 | ((c >> 6) & 0x3F) as u8,
        0x80 | (c & 0x3F) as u8,
      ]);
    }
  } else {
    out.extend_from_slice(&[
      0xF0 | (c >> 18) as u8,
      0x80 | ((c >> 12) & 0x3F) as u8,
      0x80 | ((c >> 6) & 0x3F) as u8,
      0x80 | (c & 0x3F) as u8,
    ]);
  }
}

struct LegacyTable {
  /// (code unit, group index) for every unit whose equivalence class has 2+ members.
  members: Vec<(u32, u32)>,
  groups: Vec<Vec<u32>>,
}

/// Canonicalize(ch) without `u`: toUpperCase when it is one code unit, except non-ASCII → ASCII.
pub fn legacy_canonicalize(c: u32) -> u32 {
  let Some(ch) = char::from_u32(c) else {
    return c;
  };
  let mut up = ch.to_uppercase();
  let (Some(u), None) = (up.next(), up.next()) else {
    return c;
  };
  let u = u as u32;
  if u > 0xFFFF || (c >= 128 && u < 128) {
    c
  } else {
    u
  }
}

fn legacy_table() -> &'static LegacyTable {
  static TABLE: OnceLock<LegacyTable> = OnceLock::new();
  TABLE.get_or_init(|| {
    let mut by_canon: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for c in 0..=0xFFFFu32 {
      let k = legacy_canonicalize(c);
      by_canon.entry(k).or_default().push(c);
    }
    let mut members = Vec::new();
    let mut groups = Vec::new();
    for (_, g) in by_canon {
      if g.len() > 1 {
        for &m in &g {
          members.push((m, groups.len() as u32));
        }
        groups.push(g);
      }
    }
    members.sort_unstable();
    LegacyTable { members, groups }
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn set_algebra() {
    let a = Set::from_ranges(vec![(5, 10), (1, 3), (4, 4)]);
    assert_eq!(a.0, vec![(1, 10)]);
    assert_eq!(a.complement(20).0, vec![(0, 0), (11, 20)]);
    let b = Set::range(8, 15);
    assert_eq!(a.intersect(&b, 20).0, vec![(8, 10)]);
    assert_eq!(a.minus(&b, 20).0, vec![(1, 7)]);
    assert!(a.contains(10) && !a.contains(11));
  }

  #[test]
  fn legacy_case_mapping_matches_the_spec_rows() {
    // ß uppercases to "SS" (two units): no mapping; ſ → S is non-ASCII → ASCII: excluded.
    assert_eq!(legacy_canonicalize(0xDF), 0xDF);
    assert_eq!(legacy_canonicalize(0x17F), 0x17F);
    assert_eq!(legacy_canonicalize('a' as u32), 'A' as u32);
    let s = Set::single('s' as u32).case_close(false);
    assert_eq!(s.0, vec![(0x53, 0x53), (0x73, 0x73)]);
    let k = Set::single('k' as u32).case_close(true);
    assert!(k.contains(0x212A));
  }

  #[test]
  fn encodes_surrogates_and_frames_terminators() {
    let mut v = Vec::new();
    encode_unit(0xD83D, false, &mut v);
    assert_eq!(v, [0xED, 0xA0, 0xBD]);
    v.clear();
    encode_unit(0x2028, true, &mut v);
    assert_eq!(v, [0x0A, 0xFA, 0x0A]);
  }
}
