'use strict'
// The direct cost of watching the loop: how long one event-loop iteration takes (a setImmediate
// chain, the cheapest iteration there is) with and without a monitor, in a fresh child per round.
// Shared by bench/loop-delay.js and bench/stall.js.
const { execFileSync } = require('node:child_process')

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

module.exports = { iterationCost }
