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

const s45 = 'The quick brown fox jumps over the lazy dog 42'
row('test() on 45 chars', each((C) => new C('fox.*\\d+'), (re) => () => re.test(s45)))
row('exec, 3 captures', each((C) => new C('(\\w+)@(\\w+)\\.(\\w+)'), (re) => () => re.exec('mail bob@example.com now'))) 
const ascii = 'lorem ipsum dolor sit amet 12345 '.repeat(32 * 1024)
const mixed = 'héllo wörld 😀 ñandú 12345 '.repeat(40 * 1024)
row('global scan 1 MB ASCII', each((C) => new C('\\d+', 'g'), (re) => () => ascii.match(re).length, { ms: 1500, batch: 1 }))
row('global scan 1 MB mixed', each((C) => new C('\\d+', 'g'), (re) => () => mixed.match(re).length, { ms: 1500, batch: 1 }))
let n = 0
row('first match, fresh 1 MB', each((C) => new C('ipsum'), (re) => () => re.test(ascii + n++), { ms: 1500, batch: 1 }))
row('construction', each((C) => C, (C) => () => new C('(\\w+)@(\\w+)\\.(\\w+)', 'g'), { batch: 100 }))
const evil = 'a'.repeat(1e6) + '!'
row('/^(a+)+$/ on 10^6 chars', {
  v8: () => NaN, // catastrophic: does not finish
  re2: RE2 && (() => nsPerCall(() => new RE2('^(a+)+$').test(evil), { ms: 1000, batch: 1 })),
  safe: () => nsPerCall(() => new SafeRegExp('^(a+)+$').test(evil), { ms: 1000, batch: 1 }),
})
printTable(rows)
