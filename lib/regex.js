'use strict'
// SafeRegExp: a linear-time RegExp for untrusted patterns and inputs (src/regex/ for the engine).
//
// The class mirrors RegExp: same constructor forms, flags, `lastIndex` rules (RegExpBuiltinExec),
// exec results shaped like RegExp's (index, input, groups, indices). Global iteration
// (`match`/`replace`/`replaceAll`/`matchAll` with `g`, and `split`) runs the spec's loops
// natively: one call returns up to MANY matches as offsets (`regexExecMany`), and this module
// builds the results with the spec's steps (GetSubstitution for `$` patterns, function replacers
// called after all matches are found, `lastIndex` left as RegExp leaves it). Non-global `match`,
// `replace` and `search` reuse V8's generic RegExp.prototype[Symbol.*], which call `exec`; so do
// the global ones when `exec` is overridden. `test` without `g`/`y` asks only whether a match
// exists (`regexTest`: no captures, prefix window first). The native side keeps the encoding of
// the last string `regexExec`/`regexExecMany` searched, and this module passes `null` while the
// string is the same (`===`); `exec` on a new long string may search a prefix window first (see
// `NativeRegex::exec`), which is not kept.

const native = require('./native')
const { regexExec, regexExecMany, regexTest } = native
const { callNative, fromNative } = require('./internal')
const { InvalidArgError } = require('./errors')

const FLAG_ORDER = 'dgimsuvy'
const kNative = Symbol('native')

// RegExp's `source`: `/` and line terminators escaped, `(?:)` for an empty pattern.
function escapeSource(src) {
  if (src === '') return '(?:)'
  let out = ''
  let inClass = false
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]
    if (ch === '\\') {
      const next = src[i + 1]
      if (next === '\n') out += '\\n'
      else if (next === '\r') out += '\\r'
      else if (next === '\u2028') out += '\\u2028'
      else if (next === '\u2029') out += '\\u2029'
      else if (next !== undefined) out += ch + next
      else out += ch
      i++
      continue
    }
    if (ch === '[') inClass = true
    else if (ch === ']') inClass = false
    if (ch === '/' && !inClass) out += '\\/'
    else if (ch === '\n') out += '\\n'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\u2028') out += '\\u2028'
    else if (ch === '\u2029') out += '\\u2029'
    else out += ch
  }
  return out
}

function canonicalFlags(flags) {
  let out = ''
  for (const f of FLAG_ORDER) if (flags.includes(f)) out += f
  return out
}

function advance(s, index, unicode) {
  if (!unicode || index + 1 >= s.length) return index + 1
  const c = s.charCodeAt(index)
  if (c < 0xd800 || c > 0xdbff) return index + 1
  const d = s.charCodeAt(index + 1)
  return d >= 0xdc00 && d <= 0xdfff ? index + 2 : index + 1
}

// Matches per native call in global iteration (fewer for patterns with more than 7 groups).
const MANY = 1024

// GetSubstitution (ECMA-262 22.1.3.19.1): `$$ $& $\` $' $n $nn $<name>` in a replacement.
function substitute(template, s, position, matched, captures, groups) {
  let out = ''
  let i = 0
  for (;;) {
    const d = template.indexOf('$', i)
    if (d < 0 || d + 1 >= template.length) break
    out += template.slice(i, d)
    const c = template.charCodeAt(d + 1)
    i = d + 2
    if (c === 0x24) out += '$'
    else if (c === 0x26) out += matched
    else if (c === 0x60) out += s.slice(0, position)
    else if (c === 0x27) out += s.slice(Math.min(position + matched.length, s.length))
    else if (c >= 0x30 && c <= 0x39) {
      const m = captures.length
      let index = c - 0x30
      const c2 = template.charCodeAt(d + 2)
      const twoDigits = index * 10 + (c2 - 0x30)
      // `$nn` when it names a group, else `$n` followed by a literal digit.
      if (c2 >= 0x30 && c2 <= 0x39 && twoDigits >= 1 && twoDigits <= m) {
        index = twoDigits
        i = d + 3
      }
      if (index >= 1 && index <= m) out += captures[index - 1] ?? ''
      else out += template.slice(d, i)
    } else if (c === 0x3c && groups !== undefined) {
      const gt = template.indexOf('>', d + 2)
      if (gt < 0) out += '$<'
      else {
        const v = groups[template.slice(d + 2, gt)]
        if (v !== undefined) out += String(v)
        i = gt + 1
      }
    } else out += template.slice(d, i)
  }
  return out + template.slice(i)
}

function toLength(v) {
  const n = Number(v)
  if (!(n > 0)) return 0
  return Math.min(Math.floor(n), Number.MAX_SAFE_INTEGER)
}

class SafeRegExp {
  /**
   * @param {string | RegExp | SafeRegExp | Buffer} pattern
   * @param {string} [flags]
   */
  constructor(pattern, flags) {
    let source
    let inherited
    if (pattern instanceof SafeRegExp || pattern instanceof RegExp) {
      source = pattern instanceof SafeRegExp ? pattern[kNative].raw : pattern.source
      inherited = pattern.flags
    } else if (Buffer.isBuffer(pattern)) {
      source = pattern.toString('utf8')
    } else {
      source = pattern === undefined ? '' : String(pattern)
    }
    const f = flags === undefined ? (inherited ?? '') : String(flags)
    const handle = callNative(() => native.regexNew(source, f))
    const names = native.regexGroupNames(handle)
    const groupCount = native.regexGroupCount(handle)
    this[kNative] = {
      handle,
      raw: source,
      source: escapeSource(source),
      flags: canonicalFlags(f),
      groupCount,
      names: groupCount === 0 ? [] : names.split('\0'),
      hasNames: names.replace(/\0/g, '') !== '',
      out: new Int32Array(2 + 2 * groupCount),
      many: null,
      // Whether the native side holds all of `last` (not only a prefix window).
      kept: false,
      // test() without g/y: existence only, no lastIndex.
      plainTest: !/[gy]/.test(f),
      last: undefined,
    }
    this.lastIndex = 0
  }

  static get [Symbol.species]() {
    return this
  }

  get source() {
    return this[kNative].source
  }
  get flags() {
    return this[kNative].flags
  }
  get global() {
    return this[kNative].flags.includes('g')
  }
  get ignoreCase() {
    return this[kNative].flags.includes('i')
  }
  get multiline() {
    return this[kNative].flags.includes('m')
  }
  get dotAll() {
    return this[kNative].flags.includes('s')
  }
  get unicode() {
    return this[kNative].flags.includes('u')
  }
  get unicodeSets() {
    return this[kNative].flags.includes('v')
  }
  get sticky() {
    return this[kNative].flags.includes('y')
  }
  get hasIndices() {
    return this[kNative].flags.includes('d')
  }
  /** The pattern as given (re2 compatibility; re2 returns its translated RE2 source here). */
  get internalSource() {
    return this[kNative].raw
  }

  toString() {
    return `/${this.source}/${this.flags}`
  }

  // What to hand the native side for `s`: null when it still holds all of `s` from the call
  // before (global iteration stays linear), else `s`. Marks nothing as kept until the native
  // call has returned; the caller sets `n.kept` from its outcome.
  #input(s) {
    const n = this[kNative]
    const input = s === n.last && n.kept ? null : s
    n.last = s
    n.kept = false
    return input
  }

  // Runs the native search; returns the shared offsets array or null.
  #search(s, from, sticky) {
    const n = this[kNative]
    // A string searched just before is read whole (a loop of exec calls then reuses it); a new
    // one may be searched in a prefix window first, which the native side does not keep.
    const same = s === n.last
    const input = this.#input(s)
    const found = callNative(() => regexExec(n.handle, input, from, sticky, same, n.out))
    n.kept = found !== 2
    return found === 0 ? null : n.out
  }

  // Up to MANY matches natively from `pos` (see `search_many` in src/regex/mod.rs) into the
  // shared buffer `n.many`; returns the count. Records are `stride` wide.
  #chunk(s, pos, split, captures) {
    const n = this[kNative]
    // At most 64 KiB per regex, and room for at least one record with every group.
    const stride = 2 + 2 * n.groupCount
    n.many ??= new Int32Array(Math.max(MANY * Math.min(stride, 16), stride))
    const input = this.#input(s)
    const sticky = !split && n.flags.includes('y')
    try {
      const count = regexExecMany(n.handle, input, pos, sticky, split, captures, n.many)
      n.kept = true
      return count
    } catch (err) {
      throw fromNative(err)
    }
  }

  // The whole walk from `pos`: `each(buf, count, stride)` per chunk; it returns true to stop.
  #walk(s, pos, split, captures, each) {
    const n = this[kNative]
    const stride = captures ? 2 + 2 * n.groupCount : 2
    const unicode = n.flags.includes('u') || n.flags.includes('v')
    for (;;) {
      const count = this.#chunk(s, pos, split, captures)
      const buf = n.many
      if (count === 0 || each(buf, count, stride) === true) return
      if (count < Math.floor(buf.length / stride)) return
      const a = buf[(count - 1) * stride]
      const e = buf[(count - 1) * stride + 1]
      pos = !split && a === e ? advance(s, e, unicode) : e
    }
  }

  // The captures of the record at `o` as strings (undefined where a group did not take part).
  #captures(s, buf, o) {
    const n = this[kNative]
    const caps = []
    for (let i = 0; i < n.groupCount; i++) {
      const a = buf[o + 2 + 2 * i]
      caps.push(a < 0 ? undefined : s.slice(a, buf[o + 3 + 2 * i]))
    }
    return caps
  }

  // A `groups` object as RegExpBuiltinExec builds it (the first participating duplicate wins).
  #groups(values) {
    const n = this[kNative]
    if (!n.hasNames) return undefined
    const groups = Object.create(null)
    for (let i = 0; i < n.names.length; i++) {
      const name = n.names[i]
      if (name !== '' && (groups[name] === undefined || !Object.hasOwn(groups, name))) {
        groups[name] = values[i]
      }
    }
    return groups
  }

  exec(string) {
    if (Buffer.isBuffer(string)) return this.#execBuffer(string)
    const s = String(string)
    const n = this[kNative]
    const flags = n.flags
    const globalOrSticky = flags.includes('g') || flags.includes('y')
    let lastIndex = toLength(this.lastIndex)
    if (!globalOrSticky) lastIndex = 0
    if (lastIndex > s.length) {
      if (globalOrSticky) this.lastIndex = 0
      return null
    }
    const out = this.#search(s, lastIndex, flags.includes('y'))
    if (out === null) {
      if (globalOrSticky) this.lastIndex = 0
      return null
    }
    if (globalOrSticky) this.lastIndex = out[1]
    return this.#result(s, out)
  }

  // An exec result from the record at `o` of `out`.
  #result(s, out, o = 0) {
    const n = this[kNative]
    const caps = this.#captures(s, out, o)
    const result = [s.slice(out[o], out[o + 1]), ...caps]
    result.index = out[o]
    result.input = s
    result.groups = this.#groups(caps)
    if (n.flags.includes('d')) {
      const indices = [[out[o], out[o + 1]]]
      for (let i = 0; i < n.groupCount; i++) {
        const a = out[o + 2 + 2 * i]
        indices.push(a < 0 ? undefined : [a, out[o + 3 + 2 * i]])
      }
      indices.groups = this.#groups(indices.slice(1))
      result.indices = indices
    }
    return result
  }

  // re2 compatibility: a Buffer is searched as UTF-8; `index` and `lastIndex` count bytes and
  // the matched parts come back as Buffers.
  #execBuffer(buf) {
    const s = buf.toString('utf8')
    const byteLastIndex = toLength(this.lastIndex)
    const prefix = buf.subarray(0, Math.min(byteLastIndex, buf.length)).toString('utf8')
    const saved = this.lastIndex
    this.lastIndex = byteLastIndex > buf.length ? s.length + 1 : prefix.length
    const r = this.exec(s)
    if (r === null) {
      if (this.lastIndex === 0 || saved === 0) this.lastIndex = 0
      return null
    }
    const toByte = (i) => Buffer.byteLength(s.slice(0, i), 'utf8')
    const start = toByte(r.index)
    const out = r.map((part) => (part === undefined ? undefined : Buffer.from(part, 'utf8')))
    out.index = start
    out.input = buf
    out.groups = r.groups
    if (r.groups) {
      for (const k of Object.keys(r.groups)) {
        out.groups[k] = r.groups[k] === undefined ? undefined : Buffer.from(r.groups[k], 'utf8')
      }
    }
    if (this.global || this.sticky) this.lastIndex = toByte(this.lastIndex)
    return out
  }

  test(string) {
    const n = this[kNative]
    if (!n.plainTest || this.exec !== ownExec || (typeof string !== 'string' && Buffer.isBuffer(string))) {
      return this.exec(string) !== null
    }
    try {
      return regexTest(n.handle, String(string))
    } catch (err) {
      throw fromNative(err)
    }
  }

  [Symbol.match](string) {
    if (Buffer.isBuffer(string)) {
      const r = RegExp.prototype[Symbol.match].call(this, string.toString('utf8'))
      return r && this.global ? r.map((x) => Buffer.from(x, 'utf8')) : r && this.#bufferize(r, string)
    }
    if (!this.global || this.exec !== ownExec) return RegExp.prototype[Symbol.match].call(this, string)
    // RegExp.prototype[Symbol.match] with `g`: every match's text; lastIndex ends at 0.
    const s = String(string)
    this.lastIndex = 0
    const out = []
    this.#walk(s, 0, false, false, (buf, count) => {
      for (let k = 0; k < 2 * count; k += 2) out.push(s.slice(buf[k], buf[k + 1]))
    })
    return out.length === 0 ? null : out
  }
  [Symbol.matchAll](string) {
    if (Buffer.isBuffer(string) || !this.global || this.exec !== ownExec) {
      return RegExp.prototype[Symbol.matchAll].call(this, string)
    }
    // %RegExpStringIterator% over a private matcher: this regex's lastIndex is not touched.
    const s = String(string)
    const n = this[kNative]
    const stride = 2 + 2 * n.groupCount
    const unicode = this.unicode || this.unicodeSets
    let pos = toLength(this.lastIndex)
    let chunk = null
    let k = 0
    let count = 0
    let last = false
    return new RegExpStringIterator(() => {
      if (k === count) {
        if (last) return { value: undefined, done: true }
        count = this.#chunk(s, pos, false, true)
        chunk = n.many.slice(0, count * stride)
        k = 0
        last = count < Math.floor(n.many.length / stride)
        if (count === 0) return { value: undefined, done: true }
        const a = chunk[(count - 1) * stride]
        const e = chunk[(count - 1) * stride + 1]
        pos = a === e ? advance(s, e, unicode) : e
      }
      return { value: this.#result(s, chunk, stride * k++), done: false }
    })
  }
  [Symbol.search](string) {
    return RegExp.prototype[Symbol.search].call(this, Buffer.isBuffer(string) ? string.toString('utf8') : string)
  }
  [Symbol.replace](string, replacement) {
    if (Buffer.isBuffer(string)) {
      const r = Buffer.isBuffer(replacement) ? replacement.toString('utf8') : replacement
      return Buffer.from(RegExp.prototype[Symbol.replace].call(this, string.toString('utf8'), r), 'utf8')
    }
    if (!this.global || this.exec !== ownExec) return RegExp.prototype[Symbol.replace].call(this, string, replacement)
    // RegExp.prototype[Symbol.replace] with `g`: all matches first, then the replacements in
    // order (a function replacer runs after every search, as in V8); lastIndex ends at 0.
    const s = String(string)
    const n = this[kNative]
    const functional = typeof replacement === 'function'
    const template = functional ? '' : String(replacement)
    const dollar = !functional && template.includes('$')
    const captures = n.groupCount > 0 && (functional || dollar)
    this.lastIndex = 0
    let acc = ''
    let next = 0
    const apply = (buf, count, stride) => {
      for (let o = 0; o < count * stride; o += stride) {
        const a = buf[o]
        const matched = s.slice(a, buf[o + 1])
        let rep = template
        if (functional || dollar) {
          const caps = captures ? this.#captures(s, buf, o) : []
          const groups = captures ? this.#groups(caps) : undefined
          if (functional) {
            rep = groups === undefined ? replacement(matched, ...caps, a, s) : replacement(matched, ...caps, a, s, groups)
            rep = String(rep)
          } else rep = substitute(template, s, a, matched, caps, groups)
        }
        if (a >= next) {
          acc += s.slice(next, a) + rep
          next = a + matched.length
        }
      }
    }
    if (functional) {
      const chunks = []
      this.#walk(s, 0, false, captures, (buf, count, stride) => {
        chunks.push([buf.slice(0, count * stride), count, stride])
      })
      for (const [buf, count, stride] of chunks) apply(buf, count, stride)
    } else this.#walk(s, 0, false, captures, apply)
    return acc + s.slice(next)
  }
  [Symbol.split](string, limit) {
    if (Buffer.isBuffer(string)) {
      return this[Symbol.split](string.toString('utf8'), limit).map((x) =>
        x === undefined ? undefined : Buffer.from(x, 'utf8'),
      )
    }
    const s = String(string)
    const lim = limit === undefined ? 2 ** 32 - 1 : limit >>> 0
    const result = []
    if (lim === 0) return result
    const groupCount = this[kNative].groupCount
    if (s.length === 0) {
      return this.#search(s, 0, true) === null ? [s] : result
    }
    // The spec's loop tries a sticky match at every position q; the native Split walk finds
    // the same matches with unanchored searches (see `Walk::Split`).
    let p = 0
    let full = false
    this.#walk(s, 0, true, groupCount > 0, (buf, count, stride) => {
      for (let o = 0; o < count * stride; o += stride) {
        result.push(s.slice(p, buf[o]))
        if (result.length === lim) return (full = true)
        for (let i = 0; i < groupCount; i++) {
          const a = buf[o + 2 + 2 * i]
          result.push(a < 0 ? undefined : s.slice(a, buf[o + 3 + 2 * i]))
          if (result.length === lim) return (full = true)
        }
        p = buf[o + 1]
      }
    })
    if (!full) result.push(s.slice(p))
    return result
  }

  #bufferize(r, buf) {
    const s = r.input
    const out = r.map((x) => (x === undefined ? undefined : Buffer.from(x, 'utf8')))
    out.index = Buffer.byteLength(s.slice(0, r.index), 'utf8')
    out.input = buf
    out.groups = r.groups
    return out
  }

  // re2's instance methods, with String.prototype's argument order.
  match(string) {
    return this[Symbol.match](string)
  }
  replace(string, replacement) {
    return this[Symbol.replace](string, replacement)
  }
  search(string) {
    return this[Symbol.search](string)
  }
  split(string, limit) {
    return this[Symbol.split](string, limit)
  }

  /** UTF-8 byte length of a string (re2 compatibility). */
  static getUtf8Length(string) {
    return Buffer.byteLength(String(string), 'utf8')
  }
  /** UTF-16 length of the text in a UTF-8 buffer (re2 compatibility). */
  static getUtf16Length(buffer) {
    if (!Buffer.isBuffer(buffer)) throw new InvalidArgError('The "buffer" argument must be a Buffer')
    return buffer.toString('utf8').length
  }
}

/** What `matchAll` returns: an iterator over exec results, like %RegExpStringIterator%. */
class RegExpStringIterator {
  #next
  constructor(next) {
    this.#next = next
  }
  next() {
    return this.#next()
  }
  [Symbol.iterator]() {
    return this
  }
}
Object.defineProperty(RegExpStringIterator.prototype, Symbol.toStringTag, {
  value: 'RegExp String Iterator',
  configurable: true,
})

/** Many patterns, one pass over the input: which of them match. */
class SafeRegExpSet {
  constructor(patterns, flags) {
    if (patterns == null || typeof patterns[Symbol.iterator] !== 'function') {
      throw new InvalidArgError('The "patterns" argument must be an iterable of strings or regexes')
    }
    const sources = []
    let inherited
    for (const p of patterns) {
      if (p instanceof SafeRegExp || p instanceof RegExp) {
        sources.push(p instanceof SafeRegExp ? p.internalSource : p.source)
        inherited ??= p.flags
      } else if (typeof p === 'string') sources.push(p)
      else throw new InvalidArgError('Each pattern must be a string, RegExp or SafeRegExp')
    }
    const f = (flags === undefined ? (inherited ?? '') : String(flags)).replace(/[gyd]/g, '')
    this.handle = callNative(() => new native.NativeRegexSet(sources, f))
    this.sources = sources
    this.flags = canonicalFlags(f)
    this.size = sources.length
  }
  /** Indexes (ascending) of the patterns that match somewhere in `string`. */
  match(string) {
    const s = Buffer.isBuffer(string) ? string.toString('utf8') : String(string)
    return Array.from(callNative(() => this.handle.matches(s)))
  }
  /** Whether any pattern matches. */
  test(string) {
    return this.match(string).length > 0
  }
  toString() {
    return this.sources.map((s) => `/${escapeSource(s)}/${this.flags}`).join(',')
  }
}

// The fast paths above run only while `exec` is this one: RegExp's algorithms call a
// user-defined `exec` (a subclass or an own property), and then so do ours.
const ownExec = SafeRegExp.prototype.exec

SafeRegExp.Set = SafeRegExpSet

module.exports = { SafeRegExp, RE2: SafeRegExp, SafeRegExpSet }
