'use strict'
// Pressure gate benchmark: bulwark's Fastify plugin vs @fastify/under-pressure with its defaults,
// same limit (maxEventLoopDelay 100 ms), same server, same injected CPU hog, loaded by autocannon
// on loopback. Reports the time from the start of the overload to the first 503, how the
// admitted requests fared during the overload (p99 latency), and the cost of isOverloaded().
//
//   npm run bench -- pressure

const { spawn } = require('node:child_process')
const http = require('node:http')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const autocannon = require('autocannon')
const { pressure } = require('..')
const { percentile, printTable, fmt, nsPerCall, busyWait } = require('./common')

const LIMIT_MS = 100
const OVERLOAD_MS = 3000
const RUNS = 3

function startServer(kind) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures/pressure-server.cjs'), kind, String(LIMIT_MS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    child.on('error', reject)
    child.stdout.once('data', (d) => resolve({ child, port: JSON.parse(d).port }))
  })
}

function get(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      res.resume()
      res.on('end', resolve)
    }).on('error', reject)
  })
}

async function run(kind) {
  const { child, port } = await startServer(kind)
  try {
    const events = []
    const instance = autocannon({ url: `http://127.0.0.1:${port}/work`, connections: 20, duration: 2 + OVERLOAD_MS / 1000 + 3 })
    instance.on('response', (client, statusCode, bytes, responseTime) => {
      events.push({ at: performance.now(), statusCode, responseTime })
    })
    const done = new Promise((resolve) => instance.on('done', resolve))
    await new Promise((r) => setTimeout(r, 2000))
    const t0 = performance.now()
    await get(port, `/overload?ms=${OVERLOAD_MS}`)
    await done
    const during = events.filter((e) => e.at >= t0 && e.at <= t0 + OVERLOAD_MS)
    const first503 = events.find((e) => e.at >= t0 && e.statusCode === 503)
    const admitted = during.filter((e) => e.statusCode === 200).map((e) => e.responseTime).sort((a, b) => a - b)
    const after = events.filter((e) => e.at > t0 + OVERLOAD_MS)
    const lastShed = [...events].reverse().find((e) => e.statusCode === 503)
    return {
      firstShedMs: first503 ? first503.at - t0 : Infinity,
      shed: during.filter((e) => e.statusCode === 503).length,
      admitted: admitted.length,
      admittedP99: percentile(admitted, 99),
      recoveredMs: lastShed && after.length ? lastShed.at - (t0 + OVERLOAD_MS) : NaN,
    }
  } finally {
    child.kill()
  }
}

function median(values) {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function main() {
  const results = { bulwark: [], 'under-pressure': [] }
  for (let i = 0; i < RUNS; i++) {
    for (const kind of ['bulwark', 'under-pressure']) results[kind].push(await run(kind))
  }
  const rows = []
  for (const [kind, runs] of Object.entries(results)) {
    rows.push({
      gate: kind === 'bulwark' ? 'bulwark fastifyPressure' : '@fastify/under-pressure (defaults)',
      'first 503 after overload start (ms, median)': fmt(median(runs.map((r) => r.firstShedMs)), 0),
      'runs (first 503 ms)': runs.map((r) => fmt(r.firstShedMs, 0)).join(' / '),
      'admitted during overload': median(runs.map((r) => r.admitted)),
      'shed during overload': median(runs.map((r) => r.shed)),
      'p99 admitted latency (ms)': fmt(median(runs.map((r) => r.admittedP99)), 0),
    })
  }
  console.log(`Overload: ${OVERLOAD_MS} ms of 200 ms CPU slices; limit maxEventLoopDelay ${LIMIT_MS} ms; autocannon, 20 connections; median of ${RUNS} runs.\n`)
  printTable(rows)
  const b = median(results.bulwark.map((r) => r.firstShedMs))
  const u = median(results['under-pressure'].map((r) => r.firstShedMs))
  console.log(`\nTime to first 503: bulwark / under-pressure = ${fmt(b / u, 3)}`)

  // Cost of isOverloaded(): the call a server makes per request (4 limits: loop delay, loop
  // utilisation, rss, heapUsed).
  const gate = pressure({ maxEventLoopDelay: 200, maxEventLoopUtilization: 0.99, maxRssBytes: 1e12, maxHeapUsedBytes: 1e12 })
  await new Promise((r) => setTimeout(r, 300))
  const perCall = nsPerCall(() => gate.isOverloaded(), { ms: 500 })
  // One full evaluation (native read + comparisons): wait past the 1 ms cache each time.
  const evals = []
  for (let i = 0; i < 300; i++) {
    busyWait(1.05)
    const t = process.hrtime.bigint()
    gate.isOverloaded()
    evals.push(Number(process.hrtime.bigint() - t))
  }
  evals.sort((a, b) => a - b)
  // Every call evaluating, hot: the gate's clock (performance.now) is advanced 2 ms per call so
  // its 1 ms cache never answers; memory is then re-read every 25th call (its 50 ms cadence).
  const realNow = performance.now
  let fakeNow = realNow.call(performance)
  performance.now = () => (fakeNow += 2)
  const hotEval = nsPerCall(() => gate.isOverloaded(), { ms: 300, batch: 100 })
  performance.now = realNow
  gate.close()
  console.log()
  printTable([
    { measure: 'isOverloaded(), back-to-back calls (ns/call)', value: fmt(perCall, 0) },
    { measure: 'every call evaluates, hot (ns/call)', value: fmt(hotEval, 0) },
    { measure: 'one evaluation after 1 ms of other work, p50 (ns)', value: fmt(percentile(evals, 50), 0) },
    { measure: 'one evaluation after 1 ms of other work, p99 (ns)', value: fmt(percentile(evals, 99), 0) },
  ])
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
