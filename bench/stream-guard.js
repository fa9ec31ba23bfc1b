'use strict'
// Stream guards (`npm run bench -- stream-guard`):
//  1. throughput of guard() in a pipeline against a bare PassThrough, 16 KiB and 64 KiB chunks;
//  2. 10,000 concurrent guarded idle streams: memory and CPU of the shared ticker against the
//     obvious design (per-stream setTimeout/setInterval) and against no guard at all, both as
//     in-memory streams and as real node:http connections on 127.0.0.1;
//  3. readBody() against raw-body (the anchor) on the same 1 MiB body.
// Each 10k scenario runs in its own child process so heaps do not mix.
const { execFileSync } = require('node:child_process')
const { pipeline, PassThrough, Readable, Transform, Writable } = require('node:stream')
const { performance } = require('node:perf_hooks')
const http = require('node:http')
const net = require('node:net')
const { guard, readBody, streamGuardStats } = require('..')
const { printTable, fmt, cpuMs } = require('./common')

const LIMITS = { deadlineMs: 120_000, idleTimeoutMs: 60_000, minBytesPerSecond: 240, graceMs: 60_000 }

// The obvious design, for comparison: each stream owns a deadline timeout, an idle timeout
// refreshed on every chunk, and an interval that checks the rate.
class PerStreamTimerGuard extends Transform {
  constructor({ deadlineMs, idleTimeoutMs, minBytesPerSecond, graceMs }) {
    super()
    this.bytes = 0
    this.start = performance.now()
    const fail = (msg) => this.destroy(new Error(msg))
    this.deadline = setTimeout(() => fail('deadline'), deadlineMs)
    this.idle = setTimeout(() => fail('idle'), idleTimeoutMs)
    this.lastBytes = 0
    this.rate = setInterval(() => {
      const t = performance.now() - this.start
      if (t > graceMs && ((this.bytes - this.lastBytes) * 1000) / 250 < minBytesPerSecond) fail('slow')
      this.lastBytes = this.bytes
    }, 250)
  }
  _transform(chunk, enc, cb) {
    this.bytes += chunk.length
    this.idle.refresh()
    cb(null, chunk)
  }
  _destroy(err, cb) {
    clearTimeout(this.deadline)
    clearTimeout(this.idle)
    clearInterval(this.rate)
    cb(err)
  }
}

function makeGuard(kind) {
  if (kind === 'none') return new PassThrough()
  if (kind === 'shared') return guard(LIMITS)
  if (kind === 'per-stream') return new PerStreamTimerGuard(LIMITS)
  if (kind === 'bytes') return guard({ maxBytes: 2 ** 40 })
  throw new Error(kind)
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const gc = () => global.gc?.()
const mib = (n) => n / 1024 / 1024

// --- 1. throughput ---------------------------------------------------------------------------

function pump(kind, chunkSize, totalBytes) {
  const chunk = Buffer.alloc(chunkSize, 1)
  let left = Math.floor(totalBytes / chunkSize)
  const src = new Readable({
    highWaterMark: chunkSize * 4,
    read() {
      while (left > 0) {
        left--
        if (!this.push(chunk)) return
      }
      this.push(null)
    },
  })
  const sink = new Writable({ highWaterMark: chunkSize * 4, write: (c, e, cb) => cb() })
  const start = process.hrtime.bigint()
  return new Promise((resolve, reject) =>
    pipeline(src, makeGuard(kind), sink, (err) => {
      if (err) return reject(err)
      const s = Number(process.hrtime.bigint() - start) / 1e9
      resolve(mib(totalBytes) / s)
    }),
  )
}

const CHUNKS = 200_000 // per run
const ROUNDS = 7 // runs per variant, interleaved; the median is reported

async function throughput() {
  const rows = []
  for (const size of [16 * 1024, 64 * 1024]) {
    const total = CHUNKS * size
    const res = { none: [], bytes: [], shared: [], 'per-stream': [] }
    for (const k of Object.keys(res)) await pump(k, size, total / 4) // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const k of Object.keys(res)) res[k].push(await pump(k, size, total))
    }
    const median = (a) => a.sort((x, y) => x - y)[a.length >> 1]
    const base = median(res.none)
    rows.push({
      chunk: `${size / 1024} KiB`,
      'PassThrough MiB/s': fmt(base, 0),
      'guard(maxBytes) MiB/s': fmt(median(res.bytes), 0),
      'guard(all limits) MiB/s': fmt(median(res.shared), 0),
      'all limits / PassThrough': `${fmt((median(res.shared) / base) * 100, 1)} %`,
      'per-stream timers / PassThrough': `${fmt((median(res['per-stream']) / base) * 100, 1)} %`,
    })
  }
  return rows
}

// --- 2. 10,000 idle guarded streams / connections (child process per scenario) ----------------

async function idleStreams(kind, n) {
  gc()
  const heap0 = process.memoryUsage().heapUsed
  const rss0 = process.memoryUsage().rss
  const t0 = performance.now()
  const keep = []
  const guards = []
  for (let i = 0; i < n; i++) {
    const src = new PassThrough()
    const g = makeGuard(kind)
    const sink = new Writable({ write: (c, e, cb) => cb() })
    pipeline(src, g, sink, () => {})
    src.write('x') // one byte, then idle
    keep.push(src)
    guards.push(g)
  }
  const setupMs = performance.now() - t0
  const result = await measureIdle(kind, n, heap0, rss0, setupMs, () => {})
  if (kind === 'shared') result.tickNsPerGuard = tickCost(guards)
  keep.forEach((s) => s.destroy())
  return result
}

// What one tick of the shared ticker costs per guard: the meters' tick() over every live guard,
// timed directly (the meter hangs off each guard under a private symbol; reached here for
// measurement only).
function tickCost(guards) {
  const key = Object.getOwnPropertySymbols(guards[0]).find((s) => s.description === 'bulwark.meter')
  const meters = guards.map((g) => g[key])
  const rounds = 100
  const t0 = performance.now()
  for (let r = 0; r < rounds; r++) {
    const t = performance.now()
    for (const m of meters) m.tick(t)
  }
  return ((performance.now() - t0) * 1e6) / rounds / meters.length
}

async function measureIdle(kind, n, heap0, rss0, setupMs, teardown) {
  await sleep(2000) // let the set-up garbage be collected before measuring
  gc()
  await sleep(500)
  const mem = process.memoryUsage()
  const idleWindowMs = 5000
  const cpu0 = cpuMs()
  const w0 = performance.now()
  await sleep(idleWindowMs)
  const cpu = cpuMs() - cpu0
  const wall = performance.now() - w0
  const stats = streamGuardStats()
  await teardown()
  return {
    kind,
    n,
    setupMs,
    heapPerStream: (mem.heapUsed - heap0) / n,
    rssMiB: mib(mem.rss - rss0),
    cpuMsPerSec: (cpu * 1000) / wall,
    ticker: stats,
  }
}

// Server side in this process, clients in a separate one (file-descriptor limits are per process).
async function idleSockets(kind, n) {
  const server = http.createServer((req) => {
    const sink = new Writable({ write: (c, e, cb) => cb() })
    pipeline(req, makeGuard(kind), sink, () => {})
  })
  server.keepAliveTimeout = 0
  server.requestTimeout = 0
  server.headersTimeout = 0
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address()
  let arrived = 0
  server.on('request', () => arrived++)
  gc()
  const heap0 = process.memoryUsage().heapUsed
  const rss0 = process.memoryUsage().rss
  const t0 = performance.now()
  const client = require('node:child_process').spawn(process.execPath, [__filename, 'clients', String(port), String(n)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  while (arrived < n) {
    if (client.exitCode !== null) throw new Error(`client exited early (${arrived} of ${n} connected)`)
    await sleep(50)
  }
  const setupMs = performance.now() - t0
  return measureIdle(kind, n, heap0, rss0, setupMs, async () => {
    client.kill()
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })
}

async function clients(port, n) {
  const sockets = []
  const head = `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nx`
  for (let i = 0; i < n; i += 200) {
    const batch = []
    for (let j = i; j < Math.min(n, i + 200); j++) {
      batch.push(
        new Promise((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1', () => {
            s.write(head)
            resolve()
          })
          s.on('error', reject)
          sockets.push(s)
        }),
      )
    }
    await Promise.all(batch)
  }
  setInterval(() => {}, 1 << 30) // stay until killed
}

function runChild(mode, kind, n) {
  const out = execFileSync(process.execPath, ['--expose-gc', __filename, mode, kind, String(n)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  })
  return JSON.parse(out.trim().split('\n').pop())
}

function idleTable(mode, n) {
  const rows = []
  const results = ['none', 'shared', 'per-stream'].map((k) => runChild(mode, k, n))
  const base = results[0]
  for (const r of results) {
    rows.push({
      [mode === 'sockets' ? `${n} idle http connections` : `${n} idle streams`]:
        { none: 'no guard', shared: 'guard() (shared ticker)', 'per-stream': 'per-stream timers' }[r.kind],
      'setup ms': fmt(r.setupMs, 0),
      'heap bytes / stream': fmt(r.heapPerStream, 0),
      'heap over no guard / stream': r === base ? '-' : fmt(r.heapPerStream - base.heapPerStream, 0),
      'RSS growth MiB': fmt(r.rssMiB, 1),
      'idle CPU ms/s': fmt(r.cpuMsPerSec, 2),
      'CPU over no guard ms/s': r === base ? '-' : fmt(r.cpuMsPerSec - base.cpuMsPerSec, 2),
      'tick ms': r.kind === 'shared' ? r.ticker.tickPeriodsMs.join(', ') : '-',
    })
  }
  return { rows, tickNs: results[1].tickNsPerGuard }
}

// --- 3. readBody vs raw-body --------------------------------------------------------------------

async function readBodies() {
  const getRawBody = require('raw-body')
  const body = Buffer.alloc(1024 * 1024, 7)
  const source = () => Readable.from(Array.from({ length: 16 }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536)))
  const fns = {
    'raw-body': (s) => getRawBody(s, { limit: '2mb' }),
    readBody: (s) => readBody(s, { limit: '2mb' }),
    'readBody + time limits': (s) => readBody(s, { limit: '2mb', ...LIMITS }),
  }
  // Interleaved body by body, so the machine's load drifts equally over all three; the median
  // per-body time is reported (a GC pause lands on whichever body happens to be running).
  const times = Object.fromEntries(Object.keys(fns).map((k) => [k, []]))
  const iterations = 2000
  for (let i = -200; i < iterations; i++) {
    for (const [name, fn] of Object.entries(fns)) {
      const src = source()
      const t0 = performance.now()
      const buf = await fn(src)
      if (i >= 0) times[name].push(performance.now() - t0)
      if (buf.length !== body.length) throw new Error('short body')
    }
  }
  const median = (a) => a.sort((x, y) => x - y)[a.length >> 1]
  const rate = (name) => 1000 / median(times[name])
  return Object.keys(fns).map((name) => ({
    '1 MiB body in 64 KiB chunks': name,
    'bodies/s (median)': fmt(rate(name), 0),
    'vs raw-body': `${fmt((rate(name) / rate('raw-body')) * 100, 1)} %`,
  }))
}

// --- main ---------------------------------------------------------------------------------------

async function main() {
  const [mode, a, b] = process.argv.slice(2)
  if (mode === 'streams') return console.log(JSON.stringify(await idleStreams(a, Number(b))))
  if (mode === 'sockets') return console.log(JSON.stringify(await idleSockets(a, Number(b))))
  if (mode === 'clients') return clients(Number(a), Number(b))
  if (mode === 'readbody') return printTable(await readBodies())

  const N = Number(process.env.BENCH_STREAMS ?? 10_000)
  console.log(`Node ${process.version}, ${require('node:os').cpus().length} CPUs, ${new Date().toISOString()}\n`)
  console.log(`### Throughput in pipeline(source, X, sink), ${CHUNKS} chunks per run, median of ${ROUNDS} interleaved runs\n`)
  printTable(await throughput())
  console.log(`\n### ${N} concurrent idle streams (in memory), 5 s idle window\n`)
  const streamRows = idleTable('streams', N)
  printTable(streamRows.rows)
  console.log(`\nOne tick of the shared ticker: ${fmt(streamRows.tickNs, 1)} ns per guard (${N} guards).`)
  console.log(`\n### ${N} concurrent idle node:http connections on 127.0.0.1 (clients in another process), 5 s idle window\n`)
  printTable(idleTable('sockets', N).rows)
  console.log('\n### readBody() against raw-body (anchor), same process\n')
  printTable(await readBodies())
  console.log(`\nguard(all limits) = ${JSON.stringify(LIMITS)}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
