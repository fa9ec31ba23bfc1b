'use strict'
// Event-loop delay: bulwark's per-iteration histogram vs perf_hooks.monitorEventLoopDelay at
// resolution 10 and 1, over busy-waits of known length with idle gaps, idle CPU, and loopback
// HTTP throughput with the monitor on vs off. `npm run bench -- loop-delay` (about 1.5 minutes).
const { monitorEventLoopDelay: nodeMonitor } = require('node:perf_hooks')
const { execFileSync } = require('node:child_process')
const { busyWait, percentile, printTable, fmt } = require('./common')
const bulwark = require('..')
const { reportOverhead } = require('./loop-shared/overhead')

const PHASES = [
  [100, 2],
  [50, 7],
  [20, 50],
  [5, 250],
]
const METHODS = [
  { name: 'perf_hooks res 10', make: () => nodeMonitor({ resolution: 10 }), offset: 10 },
  { name: 'perf_hooks res 1', make: () => nodeMonitor({ resolution: 1 }), offset: 1 },
  { name: 'bulwark', make: () => bulwark.monitorEventLoopDelay(), offset: 0 },
]
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function accuracy(idleBeforeMs) {
  const rows = []
  for (const [count, ms] of PHASES) {
    // One histogram per method per block: reset, idle gap, block, idle gap (so a timer-based
    // monitor ticks after the block), read. "Seen" = the block's window shows a delay >= 80%
    // of the block (perf_hooks values minus their resolution, as they record whole ticks).
    // The idle gap before the block is a parameter: the loop's own work around a callback
    // grows with the idle time before it on this machine (see wakeCost()).
    const hists = METHODS.map((m) => m.make())
    for (const h of hists) h.enable()
    const truth = []
    const maxes = METHODS.map(() => [])
    let seenOnce = 0
    for (let i = 0; i < count; i++) {
      for (const h of hists) h.reset()
      const once = bulwark.monitorEventLoopDelay({ highestTrackableValue: Math.round(ms * 0.8e6) })
      await sleep(idleBeforeMs)
      once.enable()
      const start = performance.now()
      busyWait(ms)
      truth.push(performance.now() - start)
      await sleep(25)
      once.disable()
      if (once.exceeds === 1) seenOnce++
      METHODS.forEach((m, k) => maxes[k].push(Math.max(0, hists[k].max / 1e6 - m.offset)))
    }
    for (const h of hists) h.disable()
    const truthSorted = [...truth].sort((a, b) => a - b)
    const tMax = truthSorted.at(-1)
    const tP99 = percentile(truthSorted, 99)
    METHODS.forEach((m, k) => {
      const sorted = [...maxes[k]].sort((a, b) => a - b)
      rows.push({
        'idle before': `${idleBeforeMs} ms`,
        blocks: `${count} × ${ms} ms`,
        method: m.name,
        'seen': `${sorted.filter((v, j) => v >= 0.8 * ms).length}/${count}`,
        'seen exactly once': m.name === 'bulwark' ? `${seenOnce}/${count}` : 'n/a',
        'max error ms': fmt(sorted.at(-1) - tMax, 3),
        'p99 error ms': fmt(percentile(sorted, 99) - tP99, 3),
      })
    })
  }
  return rows
}

// Idle CPU: a child that only has the monitor enabled and a 3 s timer (the timer itself is the
// baseline, measured alone and subtracted).
function idleCpu(kind) {
  const script = `
    const { monitorEventLoopDelay } = require('node:perf_hooks')
    const b = require(${JSON.stringify(require.resolve('..'))})
    const kind = ${JSON.stringify(kind)}
    // Keep the monitors referenced: a collected perf_hooks histogram stops its timer.
    globalThis.monitors = []
    if (kind === 'res10') globalThis.monitors.push(monitorEventLoopDelay({ resolution: 10 }))
    if (kind === 'res1') globalThis.monitors.push(monitorEventLoopDelay({ resolution: 1 }))
    if (kind === 'bulwark') globalThis.monitors.push(b.monitorEventLoopDelay())
    for (const m of globalThis.monitors) m.enable()
    setTimeout(() => {
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      setTimeout(() => {
        const c = process.cpuUsage(c0)
        console.log(((c.user + c.system) / 1000) / (performance.now() - t0) * 100)
      }, 3000)
    }, 300)
  `
  return Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim())
}

// Busy time of each of the empty timer ticks after `gap` ms idle, by eventLoopUtilization(),
// sorted. Self-contained: wakeCost() also runs its source in a process without bulwark.
async function tickActiveTimes(gap) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
  const active = []
  let last = performance.eventLoopUtilization()
  for (let i = 0; i < (gap >= 20 ? 50 : 200); i++) {
    await sleep(gap)
    const now = performance.eventLoopUtilization()
    active.push(performance.eventLoopUtilization(now, last).active)
    last = now
  }
  return active.sort((a, b) => a - b)
}
const TICK_SCRIPT = `(${tickActiveTimes})(Number(process.argv[1])).then((a) => console.log(JSON.stringify(a)))`

// What one loop iteration costs when a timer wakes an idle loop and the callback does nothing,
// by the idle time before it: by bulwark, by Node's own performance.eventLoopUtilization() (same
// libuv idle metric) in this process, and by eventLoopUtilization() in a child process that
// never loads bulwark (so no hook of ours is in the loop at all).
async function wakeCost() {
  const rows = []
  for (const gap of [1, 5, 20]) {
    const h = bulwark.monitorEventLoopDelay()
    h.enable()
    const elu = await tickActiveTimes(gap)
    h.disable()
    const alone = percentile(JSON.parse(execFileSync(process.execPath, ['-e', TICK_SCRIPT, String(gap)], { encoding: 'utf8' })), 50)
    rows.push({
      'idle before the tick': `${gap} ms`,
      'bulwark p50 ms': fmt(h.percentile(50) / 1e6, 3),
      'eventLoopUtilization() active p50 ms': fmt(percentile(elu, 50), 3),
      'same, process without bulwark ms': fmt(alone, 3),
    })
  }
  return rows
}

async function main() {
  console.log(`Node ${process.version}, ${new Date().toISOString()}`)
  console.log('\n### Busy time of an empty timer tick, by the idle time before it\n')
  printTable(await wakeCost())
  console.log('\n### Accuracy over busy-waits of known length (errors vs the measured block length)\n')
  printTable([...(await accuracy(10)), ...(await accuracy(1))])

  console.log('\n### Idle CPU (% of one core, baseline process subtracted)\n')
  const base = idleCpu('none')
  const idleRows = [
    ['perf_hooks res 10', 'res10'],
    ['perf_hooks res 1', 'res1'],
    ['bulwark', 'bulwark'],
  ].map(([name, kind]) => ({ method: name, 'idle CPU %': fmt(Math.max(0, idleCpu(kind) - base), 3) }))
  printTable([{ method: 'baseline (no monitor)', 'idle CPU %': fmt(base, 3) }, ...idleRows])


  await reportOverhead('monitor', 'bulwark monitor on')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
