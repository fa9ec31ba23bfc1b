'use strict'
// Stall watchdog: detection latency (threshold crossed → native log line) and loopback HTTP
// throughput with the watchdog armed vs off. `npm run bench -- stall` (about 1 minute).
const { spawn } = require('node:child_process')
const { percentile, printTable, fmt } = require('./common')
const { reportOverhead } = require('./loop-shared/overhead')

const THRESHOLD = 50
const BLOCKS = 40

// A child blocks BLOCKS times for 120 ms and prints when each block started (epoch ms); the
// watchdog logs `at` (epoch ms) when it saw each stall. Latency = at − (start + threshold).
function detection() {
  const script = `
    const { watchdog } = require(${JSON.stringify(require.resolve('..'))})
    const wd = watchdog({ thresholdMs: ${THRESHOLD} })
    const starts = []
    let n = 0
    const next = () => {
      if (n++ === ${BLOCKS}) { console.log(JSON.stringify(starts)); wd.stop(); return }
      setTimeout(() => {
        const t0 = performance.now()
        starts.push(performance.timeOrigin + t0)
        while (performance.now() - t0 < 120);
        next()
      }, 30)
    }
    next()
  `
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script])
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('close', () => {
      try {
        const starts = JSON.parse(out)
        const seen = err
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l))
          .filter((l) => l.event === 'stall')
        const lat = seen.map((l, i) => l.at - (starts[i] + THRESHOLD)).sort((a, b) => a - b)
        resolve({ seen: seen.length, lat })
      } catch (e) {
        reject(new Error(`${e.message}\n${err}`))
      }
    })
  })
}

async function main() {
  console.log(`Node ${process.version}, ${new Date().toISOString()}`)
  console.log(`\n### Detection latency: ${BLOCKS} blocks of 120 ms, threshold ${THRESHOLD} ms\n`)
  const { seen, lat } = await detection()
  printTable([
    {
      'stalls logged': `${seen}/${BLOCKS}`,
      'p50 ms': fmt(percentile(lat, 50), 2),
      'p99 ms': fmt(percentile(lat, 99), 2),
      'max ms': fmt(lat.at(-1), 2),
    },
  ])

  await reportOverhead('watchdog', 'watchdog armed (threshold 100 ms)')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
