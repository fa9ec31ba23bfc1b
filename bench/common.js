'use strict'
// Helpers shared by the benchmarks: timing, statistics and the tables they print.

const { spawnSync } = require('node:child_process')
const { performance } = require('node:perf_hooks')

// Spins the CPU for `ms` milliseconds: a block of known length.
function busyWait(ms) {
  const end = performance.now() + ms
  while (performance.now() < end);
}

function percentile(sortedValues, p) {
  if (sortedValues.length === 0) return NaN
  const rank = Math.min(sortedValues.length - 1, Math.max(0, Math.ceil((p / 100) * sortedValues.length) - 1))
  return sortedValues[rank]
}

// Process CPU time (user + system) in milliseconds.
function cpuMs() {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

// Runs `fn` repeatedly for about `ms` milliseconds (after a warm-up) and returns ns per call.
function nsPerCall(fn, { ms = 300, batch = 1000 } = {}) {
  for (let i = 0; i < batch; i++) fn()
  let calls = 0
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(ms * 1e6)
  let now = start
  while (now < deadline) {
    for (let i = 0; i < batch; i++) fn()
    calls += batch
    now = process.hrtime.bigint()
  }
  return Number(now - start) / calls
}

// Prints rows (an array of objects with the same keys) as a Markdown table.
function printTable(rows) {
  if (rows.length === 0) return
  const keys = Object.keys(rows[0])
  const cells = rows.map((r) => keys.map((k) => String(r[k])))
  const widths = keys.map((k, i) => Math.max(k.length, ...cells.map((c) => c[i].length)))
  const line = (vals) => `| ${vals.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`
  console.log(line(keys))
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const c of cells) console.log(line(c))
}

const fmt = (value, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : String(value))

// Whether valgrind (for the benchmarks' instruction counts) is installed.
function valgrindAvailable() {
  return spawnSync('valgrind', ['--version']).status === 0
}

module.exports = { busyWait, percentile, cpuMs, nsPerCall, printTable, fmt, valgrindAvailable }
