'use strict'
// The direct cost of watching the loop: how long one event-loop iteration takes (a setImmediate
// chain, the cheapest iteration there is) with and without a monitor, in a fresh child per round.
// Shared by bench/loop-delay.js and bench/stall.js, with the HTTP comparison: `reportOverhead`
// prints both for one way of watching the loop.
const { execFileSync } = require('node:child_process')
const { compare } = require('./http')
const { instructionsPerRequest } = require('./instructions')
const { printTable, fmt } = require('../common')

const script = (mode) => `
  const b = require(${JSON.stringify(require.resolve('../..'))})
  const mode = ${JSON.stringify(mode)}
  if (mode === 'monitor') { globalThis.m = b.monitorEventLoopDelay(); globalThis.m.enable() }
  if (mode === 'watchdog') globalThis.m = b.watchdog({ thresholdMs: 100, log: false })
  let n = 0
  const run = () => {
    const end = performance.now() + 1500
    const step = () => { n++; if (performance.now() < end) setImmediate(step); else console.log(1500e3 / n) }
    setImmediate(step)
  }
  setTimeout(run, 200)
`

// Median µs per iteration for 'off' and `mode`, over `rounds` alternating child runs.
function iterationCost(mode, { rounds = 5 } = {}) {
  const runs = { off: [], on: [] }
  for (let r = 0; r < rounds; r++) {
    for (const m of ['off', mode]) {
      const us = Number(execFileSync(process.execPath, ['-e', script(m)], { encoding: 'utf8' }).trim())
      runs[m === 'off' ? 'off' : 'on'].push(us)
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
  return { off: median(runs.off), on: median(runs.on), runs }
}

// Prints what watching the loop (`mode`: 'monitor' | 'watchdog', labelled `label`) costs a
// loopback HTTP server and one event-loop iteration.
async function reportOverhead(mode, label) {
  console.log('\n### Loopback HTTP throughput, 32 keep-alive connections (median of 7 alternating rounds of 3 s)\n')
  const { off, on, offCpu, onCpu } = await compare(mode)
  // Throughput ratio = req/s ratio; the CPU-based ratio (off µs/request ÷ on µs/request) is a
  // second estimate. On 2 cores shared by client and server both swing by several percent; the
  // per-iteration cost below is the direct measurement.
  printTable([
    { server: 'nothing watching', 'req/s': fmt(off, 0), ratio: '1.000', 'server CPU µs/req': fmt(offCpu, 1), 'CPU-based ratio': '1.000' },
    { server: label, 'req/s': fmt(on, 0), ratio: fmt(on / off, 3), 'server CPU µs/req': fmt(onCpu, 1), 'CPU-based ratio': fmt(offCpu / onCpu, 3) },
  ])

  console.log('\n### Server instructions per request (valgrind callgrind; 2000 and 6000 requests over 8 keep-alive connections, differenced)\n')
  const ir = await instructionsPerRequest(mode)
  if (!ir) console.log('(valgrind not installed: skipped)')
  else
    printTable([
      { server: 'nothing watching', 'instructions/request': fmt(ir.off, 0), 'throughput ratio (off/on)': '1.000' },
      { server: label, 'instructions/request': fmt(ir.on, 0), 'throughput ratio (off/on)': fmt(ir.off / ir.on, 3) },
    ])

  console.log('\n### Cost per event-loop iteration (setImmediate chain, median of 5 alternating child runs)\n')
  const it = iterationCost(mode)
  printTable([
    { loop: 'nothing watching', 'µs/iteration': fmt(it.off, 3), 'added µs': '-' },
    { loop: label, 'µs/iteration': fmt(it.on, 3), 'added µs': fmt(it.on - it.off, 3) },
  ])
}

module.exports = { iterationCost, reportOverhead }
