'use strict'
// V8 RegExp vs the re2 package vs SafeRegExp, one process. Run: npm run bench -- regex
const { SafeRegExp } = require('..')
const { nsPerCall, printTable, fmt } = require('./common')

let RE2 = null
try {
  RE2 = require('re2')
} catch {
  console.log('(re2 not installed in bench/: run `npm install` in bench/ to add the anchor)')
}

const rows = []
function row(name, fns) {
  const t = {}
  for (const [k, fn] of Object.entries(fns)) t[k] = fn ? fn() : NaN
  rows.push({
    case: name,
    'V8 µs': fmt(t.v8 / 1e3, 3),
    're2 µs': fmt(t.re2 / 1e3, 3),
    'SafeRegExp µs': fmt(t.safe / 1e3, 3),
    'Safe/V8': fmt(t.safe / t.v8),
    're2/Safe': fmt(t.re2 / t.safe),
  })
}
const each = (make, use, opts) => ({
  v8: () => nsPerCall(use(make(RegExp)), opts),
  re2: RE2 && (() => nsPerCall(use(make(RE2)), opts)),
  safe: () => nsPerCall(use(make(SafeRegExp)), opts),
})

// 64 distinct strings per case, cycled, so no engine's last-input cache (re2 keeps the UTF-8
// copy of the last string) turns the per-call cost into a cache hit.
const cycle = (strings) => {
  let i = 0
  return () => strings[i++ & 63]
}
const s45 = Array.from({ length: 64 }, (_, i) => `The quick brown fox jumps over the lazy dog ${String(i).padStart(2, '0')}`)
row('test() on 45 chars (64 strings)', each((C) => new C('fox.*\\d+'), (re) => { const next = cycle(s45); return () => re.test(next()) }))
const mails = Array.from({ length: 64 }, (_, i) => `mail bob${i}@example.com now`)
row('exec, 3 captures (64 strings)', each((C) => new C('(\\w+)@(\\w+)\\.(\\w+)'), (re) => { const next = cycle(mails); return () => re.exec(next()) }))
const ascii = 'lorem ipsum dolor sit amet 12345 '.repeat(32 * 1024)
const mixed = 'héllo wörld 😀 ñandú 12345 '.repeat(40 * 1024)
row('global scan 1 MB ASCII', each((C) => new C('\\d+', 'g'), (re) => () => ascii.match(re).length, { ms: 1500, batch: 1 }))
row('global scan 1 MB mixed', each((C) => new C('\\d+', 'g'), (re) => () => mixed.match(re).length, { ms: 1500, batch: 1 }))
row('global replace 1 MB ASCII', each((C) => new C('\\d+', 'g'), (re) => () => ascii.replace(re, '#').length, { ms: 1500, batch: 1 }))
// A new string identity per call, so no engine can reuse a conversion of the previous input.
// `ascii + n` is a cons string: every engine (V8 too) must flatten its 1 MB first, so this row
// mostly measures V8's flattening. `ascii.slice(k)` is a sliced string: flat, nothing to copy
// unless an engine converts the whole text (re2 converts it to UTF-8).
let n = 0
row('first match, fresh cons 1 MB (all flatten)', each((C) => new C('ipsum'), (re) => () => re.test(ascii + n++), { ms: 1500, batch: 1 }))
row('first match, fresh flat 1 MB (sliced)', each((C) => new C('ipsum'), (re) => () => re.test(ascii.slice(n++ & 63)), { ms: 1500, batch: 1 }))
row('construction', each((C) => C, (C) => () => new C('(\\w+)@(\\w+)\\.(\\w+)', 'g'), { batch: 100 }))
const evil = 'a'.repeat(1e6) + '!'
row('/^(a+)+$/ on 10^6 chars', {
  v8: () => NaN, // catastrophic: does not finish
  re2: RE2 && (() => nsPerCall(() => new RE2('^(a+)+$').test(evil), { ms: 1000, batch: 1 })),
  safe: () => nsPerCall(() => new SafeRegExp('^(a+)+$').test(evil), { ms: 1000, batch: 1 }),
})
printTable(rows)
