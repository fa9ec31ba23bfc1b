'use strict'
// Memory watchdog benchmark (`npm run bench -- memory`).
// 1. Cost of one sample: bulwark's native sample (RSS + cgroup usage, published; the exact
//    `memory.stat` read is only done near the container thresholds and once a second) against the
//    `sysinfo` crate's refreshes and Node's `process.memoryUsage()`, plus what a request pays
//    to read the watchdog (`stats()`, `level`). Native costs are timed inside Rust (a loop of
//    N samples), so the napi call does not count.
// 2. Trigger latency while the loop is blocked: a child allocates 100 MB (its critical limit is
//    +60 MB) and then blocks its loop for 3 s; time from the start of the allocation to the
//    reaction (bulwark: the process has ended, seen by the parent; poller: it noticed), for
//    bulwark (`action: 'exit'`, graceMs 0) and for an on-loop poller in the manner of
//    @fastify/under-pressure (setInterval + process.memoryUsage(), 1 s).
const { execFileSync } = require('node:child_process')
const path = require('node:path')
const { nsPerCall, printTable, fmt, percentile } = require('./common')
const bulwark = require('..')
const binding = require('../binding.js')

const N = 200_000
const rows = []
const anchor = nsPerCall(() => process.memoryUsage())
const add = (what, where, ns) => rows.push({ what, where, 'ns/op': fmt(ns, 0), 'vs process.memoryUsage()': `${fmt(ns / anchor, 3)}x` })

add('bulwark native sample (statm + cgroup total, published; the usual sample under a container threshold)', 'sampler thread', binding.__memoryBench('sample', N))
add('bulwark native sample, no container threshold (statm alone, published)', 'sampler thread', binding.__memoryBench('sample-no-container-threshold', N))
add('bulwark native sample, exact (statm + cgroup memory.stat; near thresholds, and 1/s)', 'sampler thread', binding.__memoryBench('sample-exact', N / 10))
add('bulwark native RSS only (pread of kept-open statm)', 'sampler thread', binding.__memoryBench('rss', N))
add('a bare syscall (getppid): the floor under any kernel read', 'any thread', binding.__memoryBench('syscall', N))
add('sysinfo: refresh one process (memory)', 'any thread', binding.__memoryBench('sysinfo-process', N / 10))
add('sysinfo: cgroup_limits()', 'any thread', binding.__memoryBench('sysinfo-cgroup', N / 10))
add('sysinfo: refresh_memory (total/available)', 'any thread', binding.__memoryBench('sysinfo-memory', N / 10))
add('process.memoryUsage() (anchor)', 'event loop', anchor)
add('process.memoryUsage.rss()', 'event loop', nsPerCall(() => process.memoryUsage.rss()))
const w = bulwark.memoryWatchdog({ intervalMs: 100 })
add('watchdog.stats() (reads the published sample)', 'event loop', nsPerCall(() => w.stats()))
add('watchdog.level', 'event loop', nsPerCall(() => w.level))
w.stop()
console.log('### Cost of one sample\n')
printTable(rows)

// --- trigger latency while the loop is blocked
const child = (mode) => `
  const fs = require('node:fs')
  const MB = 1024 * 1024
  const limit = process.memoryUsage.rss() + 60 * MB
  const keep = []
  if (${mode === 'bulwark'}) {
    require(${JSON.stringify(path.join(__dirname, '..'))}).memoryWatchdog({
      intervalMs: 100, sustainMs: 0, graceMs: 0, exitCode: 3, action: 'exit', limits: { rss: { critical: limit } },
    })
  } else {
    setInterval(() => {
      if (process.memoryUsage().rss >= limit) { fs.writeSync(1, 'seen ' + Date.now() + '\\n'); process.exit(4) }
    }, 1000)
  }
  setTimeout(() => {
    fs.writeSync(1, 'start ' + Date.now() + '\\n')
    keep.push(Buffer.alloc(100 * MB, 1))
    fs.writeSync(1, 'crossed ' + Date.now() + '\\n')
    const end = Date.now() + 3000
    while (Date.now() < end);
  }, 50)
`
function latency(mode) {
  let out = ''
  let code = 0
  try {
    out = execFileSync(process.execPath, ['-e', child(mode)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch (err) {
    out = err.stdout
    code = err.status
  }
  const ended = Date.now()
  const start = Number(/start (\d+)/.exec(out)?.[1])
  const seen = Number(/seen (\d+)/.exec(out)?.[1])
  return { ms: (Number.isFinite(seen) ? seen : ended) - start, code }
}
const RUNS = 5
const lat = []
for (const [mode, label] of [
  ['bulwark', "bulwark (native thread, intervalMs 100, action 'exit', graceMs 0)"],
  ['poller', 'on-loop poller (setInterval 1 s + process.memoryUsage(), like under-pressure)'],
]) {
  const runs = Array.from({ length: RUNS }, () => latency(mode))
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b)
  lat.push({ reacting: label, 'median ms': fmt(percentile(ms, 50), 0), 'max ms': fmt(ms[ms.length - 1], 0), 'exit codes': [...new Set(runs.map((r) => r.code))].join(',') })
}
console.log(`\n### Trigger latency while the loop is blocked for 3 s (${RUNS} runs each; from the start of the 100 MB allocation)\n`)
printTable(lat)
