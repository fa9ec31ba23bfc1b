'use strict'
// SafeRegExp: a linear-time RegExp for untrusted patterns and inputs (src/regex/ for the engine).
//
// The class mirrors RegExp: same constructor forms, flags, `lastIndex` rules (RegExpBuiltinExec),
// exec results shaped like RegExp's (index, input, groups, indices). `replace`, `match`,
// `matchAll` and `search` reuse V8's own generic RegExp.prototype[Symbol.*] algorithms, which
// only call `exec`, so replacement patterns and function replacers behave exactly like RegExp's.
// `split` is implemented here with unanchored searches (the spec's sticky loop would cost one
// native call per input position). Global iteration stays linear: the native side keeps the
// encoding of the last searched string, and this module passes `null` while the string is the
// same (`===`).

const native = require('./native')
const { callNative } = require('./internal')
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
    const handle = callNative(() => new native.NativeRegex(source, f))
    const names = handle.groupNames
    const groupCount = handle.groupCount
    this[kNative] = {
      handle,
      raw: source,
      source: escapeSource(source),
      flags: canonicalFlags(f),
      groupCount,
      names: groupCount === 0 ? [] : names.split('\0'),
      hasNames: names.replace(/\0/g, '') !== '',
      out: new Int32Array(2 + 2 * groupCount),
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

  // Runs the native search; returns the shared offsets array or null.
  #search(s, from, sticky) {
    const n = this[kNative]
    const input = s === n.last ? null : s
    n.last = s
    const found = callNative(() => n.handle.exec(input, from, sticky, n.out))
    return found ? n.out : null
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

  #result(s, out) {
    const n = this[kNative]
    const result = [s.slice(out[0], out[1])]
    for (let i = 0; i < n.groupCount; i++) {
      const a = out[2 + 2 * i]
      result.push(a < 0 ? undefined : s.slice(a, out[3 + 2 * i]))
    }
    result.index = out[0]
    result.input = s
    let groups
    if (n.hasNames) {
      groups = Object.create(null)
      for (let i = 0; i < n.names.length; i++) {
        const name = n.names[i]
        if (name !== '' && (groups[name] === undefined || !Object.hasOwn(groups, name))) {
          groups[name] = result[i + 1]
        }
      }
    }
    result.groups = groups
    if (n.flags.includes('d')) {
      const indices = [[out[0], out[1]]]
      for (let i = 0; i < n.groupCount; i++) {
        const a = out[2 + 2 * i]
        indices.push(a < 0 ? undefined : [a, out[3 + 2 * i]])
      }
      let igroups
      if (n.hasNames) {
        igroups = Object.create(null)
        for (let i = 0; i < n.names.length; i++) {
          const name = n.names[i]
          if (name !== '' && (igroups[name] === undefined || !Object.hasOwn(igroups, name))) {
            igroups[name] = indices[i + 1]
          }
        }
      }
      indices.groups = igroups
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
    return this.exec(string) !== null
  }

  [Symbol.match](string) {
    if (Buffer.isBuffer(string)) {
      const r = RegExp.prototype[Symbol.match].call(this, string.toString('utf8'))
      return r && this.global ? r.map((x) => Buffer.from(x, 'utf8')) : r && this.#bufferize(r, string)
    }
    return RegExp.prototype[Symbol.match].call(this, string)
  }
  [Symbol.matchAll](string) {
    return RegExp.prototype[Symbol.matchAll].call(this, string)
  }
  [Symbol.search](string) {
    return RegExp.prototype[Symbol.search].call(this, Buffer.isBuffer(string) ? string.toString('utf8') : string)
  }
  [Symbol.replace](string, replacement) {
    if (Buffer.isBuffer(string)) {
      const r = Buffer.isBuffer(replacement) ? replacement.toString('utf8') : replacement
      return Buffer.from(RegExp.prototype[Symbol.replace].call(this, string.toString('utf8'), r), 'utf8')
    }
    return RegExp.prototype[Symbol.replace].call(this, string, replacement)
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
    const unicode = this.unicode || this.unicodeSets
    const groupCount = this[kNative].groupCount
    if (s.length === 0) {
      return this.#search(s, 0, true) === null ? [s] : result
    }
    let p = 0
    let q = 0
    while (q < s.length) {
      const out = this.#search(s, q, false)
      if (out === null || out[0] >= s.length) break
      q = out[0]
      const e = Math.min(out[1], s.length)
      if (e === p) {
        q = advance(s, q, unicode)
        continue
      }
      result.push(s.slice(p, q))
      if (result.length === lim) return result
      const groups = []
      for (let i = 0; i < groupCount; i++) {
        const a = out[2 + 2 * i]
        groups.push(a < 0 ? undefined : s.slice(a, out[3 + 2 * i]))
      }
      for (const g of groups) {
        result.push(g)
        if (result.length === lim) return result
      }
      p = e
      q = p
    }
    result.push(s.slice(p))
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

SafeRegExp.Set = SafeRegExpSet

module.exports = { SafeRegExp, RE2: SafeRegExp, SafeRegExpSet }
