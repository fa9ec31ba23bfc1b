'use strict'
// `npm run bench -- json`: what parsing a JSON body costs the event loop, side by side.
//
// For twitter / citm_catalog / canada and two generated 20 MB documents (API-like objects, and
// numbers), each method parses the document; we report
//   main ms   main-thread busy time (event-loop utilization `active`, i.e. everything the JS
//             thread did: decode, parse, deserialize, build), median of the runs
//   ratio     main ms / the baseline (JSON.parse(buf.toString()) for Buffer input, JSON.parse
//             for string input)
//   stall ms  longest gap seen by an independent setImmediate probe while the parse ran
//   GC ms     longest GC pause in that window (PerformanceObserver 'gc'), reported apart
//   cpu ms    main-thread CPU time per parse (Linux: /proc/thread-self/schedstat), averaged over
//             back-to-back parses for ~500 ms (as a busy server sees them). Unlike `main ms` it
//             does not count time the thread waited for a core, so it stays meaningful on a
//             loaded machine; `cpu ratio` is against the same baseline as `ratio`
//   heap MB   heap kept alive by the result (after a full GC)
//   wall ms   time until the value is available
// Methods: JSON.parse (string), JSON.parse(buf.toString()), secure-json-parse (anchor), a worker
// thread that parses and posts the object back (structured clone), bulwark (Buffer and string).
// Run with --expose-gc (run-all does). With BENCH_INSTRUCTIONS=1 (and valgrind installed), also
// main-thread instructions per parse for the corpora (json-shared/instructions.js; ~10 minutes).

const fs = require('node:fs')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { performance, PerformanceObserver } = require('node:perf_hooks')
const sjson = require('secure-json-parse')
const { createJsonPool } = require('..')
const { printTable, fmt } = require('./common')
const { instructionsPerParse, METHODS } = require('./json-shared/instructions')

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const CORPORA = ['twitter', 'citm_catalog', 'canada']
const dataDir = process.env.BULWARK_JSON_DATA ?? path.join(__dirname, '../data/json')
const gc = global.gc ?? (() => {})

function rng(seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function apiDoc(bytes) {
  const r = rng(7)
  const items = []
  let size = 0
  for (let i = 0; size < bytes; i++) {
    const item = {
      id: i,
      uuid: `${Math.floor(r() * 1e9).toString(16)}-${i.toString(16)}`,
      name: `user ${i} ${'é'.repeat(i % 3)}`,
      email: `user${i}@example.com`,
      active: r() < 0.5,
      score: Math.round(r() * 1e6) / 100,
      tags: ['a', 'bb', 'ccc'].slice(0, 1 + (i % 3)),
      address: { street: `${i} Main St`, city: 'Springfield', zip: String(10000 + (i % 90000)) },
      created: new Date(1.6e12 + i * 1000).toISOString(),
    }
    const s = JSON.stringify(item)
    size += s.length + 1
    items.push(s)
  }
  return `{"total":${items.length},"items":[${items.join(',')}]}`
}

function numbersDoc(bytes) {
  const r = rng(11)
  const parts = []
  let size = 0
  while (size < bytes) {
    const row = [r() * 360 - 180, r() * 180 - 90, Math.floor(r() * 1e6)].map((n) => String(Math.round(n * 1e6) / 1e6))
    const s = `[${row.join(',')}]`
    size += s.length + 1
    parts.push(s)
  }
  return `[${parts.join(',')}]`
}

// A worker that parses what it is sent and posts the object back (structured clone).
function startWorker() {
  const w = new Worker(
    `const { parentPort } = require('node:worker_threads')
     parentPort.on('message', (buf) => parentPort.postMessage(JSON.parse(Buffer.from(buf).toString())))`,
    { eval: true },
  )
  return w
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

// Runs `fn` (sync or async) and measures main-thread busy time, wall time, and with `probe`,
// the longest loop gap and GC pause.
async function measure(fn, probe) {
  await tick()
  gc()
  await tick()
  let maxGap = 0
  let maxGc = 0
  let running = true
  let obs
  if (probe) {
    obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.duration > maxGc) maxGc = e.duration
    })
    obs.observe({ entryTypes: ['gc'] })
    let last = performance.now()
    const loop = () => {
      const now = performance.now()
      if (now - last > maxGap) maxGap = now - last
      last = now
      if (running) setImmediate(loop)
    }
    setImmediate(loop)
    await tick()
  }
  const elu0 = performance.eventLoopUtilization()
  const t0 = performance.now()
  const value = await new Promise((resolve, reject) => setImmediate(() => Promise.resolve().then(fn).then(resolve, reject)))
  const wall = performance.now() - t0
  await tick()
  const elu = performance.eventLoopUtilization(elu0)
  running = false
  await tick()
  if (obs) {
    await new Promise((resolve) => setTimeout(resolve, 5))
    obs.disconnect()
  }
  return { value, wall, main: elu.active, maxGap, maxGc }
}

function heapOf(make) {
  return async () => {
    gc()
    await tick()
    gc()
    const before = process.memoryUsage().heapUsed
    const value = await make()
    gc()
    await tick()
    gc()
    const after = process.memoryUsage().heapUsed
    if (value == null) throw new Error('no value')
    return (after - before) / 1e6
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

// CPU time the calling thread spent on a core, in ms (the kernel's sum_exec_runtime; it is
// updated at scheduler ticks, hence the batches below). NaN where /proc has no schedstat.
let schedstat = null
function threadCpuMs() {
  try {
    schedstat ??= { fd: fs.openSync('/proc/thread-self/schedstat', 'r'), buf: Buffer.alloc(128) }
    const n = fs.readSync(schedstat.fd, schedstat.buf, 0, 128, 0)
    return Number(schedstat.buf.toString('latin1', 0, n).split(' ')[0]) / 1e6
  } catch {
    return NaN
  }
}

// Main-thread CPU ms per call of `fn`, over back-to-back calls for about `budgetMs` (at least 3).
async function cpuPerCall(fn, budgetMs = 500) {
  await fn()
  await tick()
  gc()
  await tick()
  const t0 = performance.now()
  const c0 = threadCpuMs()
  let n = 0
  while (n < 3 || performance.now() - t0 < budgetMs) {
    await fn()
    n++
  }
  await tick()
  return (threadCpuMs() - c0) / n
}

async function main() {
  const docs = []
  for (const f of CORPORA) {
    docs.push({ name: f, buf: fs.readFileSync(path.join(dataDir, `${f}.json`)) })
  }
  docs.push({ name: 'api 20MB', buf: Buffer.from(apiDoc(20e6)) })
  docs.push({ name: 'numbers 20MB', buf: Buffer.from(numbersDoc(20e6)) })
  const pool = createJsonPool({ threads: 2, maxBytes: 64e6, maxTotalNodes: Infinity, maxArrayLength: Infinity })
  const worker = startWorker()
  const viaWorker = (buf) =>
    new Promise((resolve) => {
      worker.once('message', resolve)
      worker.postMessage(buf)
    })

  const rows = []
  let results20 = null
  for (const doc of docs) {
    const { buf } = doc
    const str = buf.toString()
    const methods = [
      ['JSON.parse(string)', () => JSON.parse(str), 'string'],
      ['JSON.parse(buf.toString())', () => JSON.parse(buf.toString()), 'buffer'],
      ['secure-json-parse(buf)', () => sjson.parse(buf), 'buffer'],
      ['worker + structured clone', () => viaWorker(buf), 'buffer'],
      ['bulwark parse(buf)', () => pool.parse(buf), 'buffer'],
      ['bulwark parse(string)', () => pool.parse(str), 'string'],
    ]
    const results = {}
    for (const [name, fn] of methods) {
      const mains = []
      const walls = []
      const gaps = []
      const gcs = []
      for (let i = 0; i < RUNS; i++) {
        const a = await measure(fn, false)
        mains.push(a.main)
        walls.push(a.wall)
        const b = await measure(fn, true)
        gaps.push(b.maxGap)
        gcs.push(b.maxGc)
      }
      const heap = await heapOf(fn)()
      const cpu = await cpuPerCall(fn)
      results[name] = { main: median(mains), wall: median(walls), gap: median(gaps), gc: median(gcs), heap, cpu }
    }
    if (doc === docs[3]) results20 = results['JSON.parse(buf.toString())']
    for (const [name, , kind] of methods) {
      const r = results[name]
      const base = results[kind === 'string' ? 'JSON.parse(string)' : 'JSON.parse(buf.toString())']
      const heapBase = results['JSON.parse(string)'].heap
      rows.push({
        document: `${doc.name} (${fmt(buf.length / 1e6, 2)} MB)`,
        method: name,
        'main ms': fmt(r.main),
        ratio: fmt(r.main / base.main),
        'cpu ms': fmt(r.cpu),
        'cpu ratio': fmt(r.cpu / base.cpu),
        'stall ms': fmt(r.gap),
        'GC ms': fmt(r.gc),
        'heap MB': fmt(r.heap, 1),
        'heap ratio': fmt(r.heap / heapBase),
        'wall ms': fmt(r.wall),
      })
    }
  }
  printTable(rows)

  // Off-thread speed of one thread (scan + plan of a full parse, Buffer input): the pool's
  // off-thread time histogram, median of RUNS parses per document.
  const speeds = []
  for (const doc of docs) {
    const one = createJsonPool({ threads: 1, maxBytes: 64e6, maxTotalNodes: Infinity, maxArrayLength: Infinity, inlineBelow: 0 })
    for (let i = 0; i < RUNS; i++) await one.parse(doc.buf)
    speeds.push(`${doc.name} ${fmt(doc.buf.length / one.stats().parseTime.p50 * 1e3, 0)}`)
    await one.close()
  }
  console.log(`\noff-thread scan + plan, MB/s per thread: ${speeds.join(', ')}`)
  // A body refused by a limit: main-thread CPU per call over back-to-back refusals (the busy
  // time of one refusal is below what `measure` itself costs), next to an empty call's.
  const big = docs[3].buf
  const refuse = () => pool.parse(big, { maxTotalNodes: 1000 }).then(
    () => {
      throw new Error('the body was not refused')
    },
    (e) => e.code,
  )
  const refusedCpu = await cpuPerCall(refuse)
  const emptyCpu = await cpuPerCall(() => Promise.resolve(0))
  const parseCpu = results20.cpu
  console.log(
    `20 MB body refused by maxTotalNodes: main-thread CPU ${fmt(refusedCpu, 3)} ms per body ` +
      `(an empty async call: ${fmt(emptyCpu, 3)} ms; JSON.parse(buf.toString()) of it: ${fmt(parseCpu, 1)} ms)`,
  )
  await worker.terminate()
  await pool.close()

  if (process.env.BENCH_INSTRUCTIONS === '1') {
    const files = {}
    for (const f of CORPORA) files[f] = path.join(dataDir, `${f}.json`)
    const counts = await instructionsPerParse(files)
    if (counts === null) {
      console.log('\nmain-thread instructions: valgrind is not installed')
      return
    }
    const irows = []
    for (const [document, m] of Object.entries(counts)) {
      for (const method of METHODS) {
        const base = m[method.endsWith('(string)') ? 'JSON.parse(string)' : 'JSON.parse(buf.toString())']
        irows.push({ document, method, 'M instructions per parse': fmt(m[method] / 1e6, 1), ratio: fmt(m[method] / base) })
      }
    }
    console.log('\nmain-thread instructions per parse (callgrind, JS thread only, difference of 30 and 10 parses):')
    printTable(irows)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
