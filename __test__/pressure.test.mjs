import { describe, it, expect, afterEach } from 'vitest'
import { createRequire } from 'node:module'
import { spawn } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { repoRoot, runNode } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { pressure, OutOfRangeError, InvalidArgError, ClosedError, BulwarkError } = require('bulwark')

const fixture = path.join(repoRoot, '__test__/fixtures/pressure-server.cjs')
const children = new Set()

// Starts the fixture server (node:http, express or fastify) with gate options.
function startServer(kind, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, kind, JSON.stringify(options)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.add(child)
    child.on('error', reject)
    child.on('exit', (code) => reject(new Error(`server exited early (${code})`)))
    child.stdout.once('data', (d) => {
      const { port, healthPort } = JSON.parse(d.toString())
      resolve({ child, port, healthPort })
    })
  })
}

afterEach(() => {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
})

// One request with a fresh connection; resolves { status, headers, body }.
function get(port, pathname, { method = 'GET', timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathname, method, agent: false, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
    })
    req.on('timeout', () => req.destroy(new Error(`timeout on ${pathname}`)))
    req.on('error', reject)
    req.end()
  })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// Polls `pathname` until `predicate(response)` holds; returns the matching response.
async function pollUntil(port, pathname, predicate, { withinMs = 8000, everyMs = 25 } = {}) {
  const end = Date.now() + withinMs
  let last
  while (Date.now() < end) {
    last = await get(port, pathname)
    if (predicate(last)) return last
    await sleep(everyMs)
  }
  throw new Error(`condition not met within ${withinMs} ms; last: ${last?.status} ${last?.body}`)
}

function expectRejection(res) {
  expect(res.status).toBe(503)
  expect(res.headers['retry-after']).toBe('10')
  expect(res.headers.connection).toBe('close')
  expect(res.headers['content-type']).toMatch(/^application\/json/)
  const body = JSON.parse(res.body)
  expect(body).toMatchObject({ statusCode: 503, code: 'ERR_BULWARK_OVERLOADED', error: 'Service Unavailable' })
}

describe.each(['http', 'express', 'fastify'])('a CPU hog behind the gate (%s)', (kind) => {
  it('trips the gate within its window and recovers after it', async () => {
    const { port } = await startServer(kind, { maxEventLoopDelay: 100 })
    expect((await get(port, '/work')).status).toBe(200)
    await get(port, '/hog?ms=1500&slice=150')
    const started = Date.now()
    const rejected = await pollUntil(port, '/work', (r) => r.status === 503, { withinMs: 3000 })
    expectRejection(rejected)
    // Loose bound: the first long iteration trips the gate; the window is one second.
    expect(Date.now() - started).toBeLessThan(2500)
    // Recovers once the hog is over and a calm window has passed.
    await pollUntil(port, '/work', (r) => r.status === 200, { withinMs: 8000, everyMs: 100 })
  })
})

describe('hysteresis', () => {
  it('stays tripped while the delay sits between the exit threshold and the limit', async () => {
    const { port } = await startServer('http', { maxEventLoopDelay: 100, recoverBelow: 0.5 })
    await get(port, '/hog?ms=600&slice=150')
    await pollUntil(port, '/work', (r) => r.status === 503, { withinMs: 3000 })
    // 70 ms iterations: under the limit (100) but above the exit threshold (50).
    await get(port, '/hog?ms=2500&slice=70')
    const statuses = []
    const end = Date.now() + 2200
    while (Date.now() < end) {
      statuses.push((await get(port, '/work')).status)
      await sleep(50)
    }
    expect(statuses.length).toBeGreaterThan(5)
    expect(statuses.every((s) => s === 503)).toBe(true)
    await pollUntil(port, '/work', (r) => r.status === 200, { withinMs: 8000, everyMs: 100 })
  })
})

describe('readiness and liveness', () => {
  it('a failing custom check flips /ready and sheds load until it passes', async () => {
    const { port } = await startServer('http', { withHealthCheck: true, healthCheckInterval: 60_000 })
    expect((await get(port, '/ready')).status).toBe(200)
    expect(await (await get(port, '/check?healthy=false')).body).toBe('false')
    const notReady = await get(port, '/ready')
    expect(notReady.status).toBe(503)
    expect(JSON.parse(notReady.body)).toMatchObject({ status: 'overloaded', reasons: [{ metric: 'healthCheck' }] })
    expect((await get(port, '/work')).status).toBe(503)
    await get(port, '/check?healthy=true')
    expect((await get(port, '/ready')).status).toBe(200)
    expect((await get(port, '/work')).status).toBe(200)
  })

  it('the native /health answers 503 while the loop is stalled, 200 before and after', async () => {
    const { port, healthPort } = await startServer('http', { listenHealth: true, stallMs: 300 })
    const before = await get(healthPort, '/health')
    expect(before.status).toBe(200)
    expect(JSON.parse(before.body).status).toBe('ok')
    expect((await get(healthPort, '/ready')).status).toBe(200)
    await get(port, '/block?ms=2500')
    await sleep(800)
    // The main loop is blocked now: the native thread still answers.
    const during = await get(healthPort, '/health', { timeoutMs: 1000 })
    expect(during.status).toBe(503)
    const body = JSON.parse(during.body)
    expect(body.status).toBe('stalled')
    expect(body.blockedMs).toBeGreaterThanOrEqual(300)
    expect((await get(healthPort, '/ready', { timeoutMs: 1000 })).status).toBe(503)
    // After the stall the main server answers again and so does /health.
    expect((await get(port, '/work', { timeoutMs: 5000 })).status).toBe(200)
    expect((await get(healthPort, '/health')).status).toBe(200)
    expect((await get(healthPort, '/nope')).status).toBe(404)
    expect((await get(healthPort, '/health', { method: 'POST' })).status).toBe(405)
  })

  it('the same-port health handler reports the loop state', async () => {
    const { port } = await startServer('http', {})
    const res = await get(port, '/health')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ status: 'ok', loop: { blockedMs: expect.any(Number) } })
  })
})

describe('rejected requests', () => {
  it('are answered without reading their bodies', async () => {
    const { port } = await startServer('http', { withHealthCheck: true, healthCheckInterval: 60_000 })
    await get(port, '/check?healthy=false')
    const res = await new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port,
        path: '/work',
        method: 'POST',
        agent: false,
        headers: { 'content-length': String(50 * 1024 * 1024) },
      })
      req.on('response', (r) => {
        r.resume()
        resolve(r)
        req.destroy()
      })
      req.on('error', (e) => (e.code === 'ECONNRESET' ? undefined : reject(e)))
      req.flushHeaders()
      req.write('only a few bytes of 50 MiB')
    })
    expect(res.statusCode).toBe(503)
    expect(res.headers.connection).toBe('close')
  })
})

describe('the gate object', () => {
  it('validates its options with coded errors', () => {
    expect(() => pressure({ maxEventLoopDelay: -1 })).toThrow(OutOfRangeError)
    expect(() => pressure({ maxEventLoopUtilization: 2 })).toThrow(OutOfRangeError)
    expect(() => pressure({ recoverBelow: 1.5 })).toThrow(OutOfRangeError)
    expect(() => pressure({ retryAfter: 1.5 })).toThrow(OutOfRangeError)
    expect(() => pressure({ healthCheck: 'yes' })).toThrow(InvalidArgError)
    expect(() => pressure({ eventLoopDelayPercentile: 50 })).toThrow(InvalidArgError)
    expect(() => pressure('fast')).toThrow(InvalidArgError)
    try {
      pressure({ maxRssBytes: 'a lot' })
    } catch (err) {
      expect(err).toBeInstanceOf(BulwarkError)
      expect(err.code).toBe('ERR_BULWARK_INVALID_ARG')
      expect(err.message).toContain('maxRssBytes')
    }
  })

  it('reports status and Prometheus text, and refuses a health listener once closed', () => {
    const gate = pressure({ maxEventLoopDelay: 10_000 })
    expect(gate.isOverloaded()).toBe(false)
    const status = gate.status()
    expect(status).toMatchObject({ overloaded: false, ready: true, reasons: [], counts: { admitted: 0, rejected: 0 } })
    expect(status.values.eventLoopDelay).toEqual(expect.any(Number))
    const text = gate.toPrometheus()
    expect(text).toContain('# TYPE bulwark_pressure_overloaded gauge')
    expect(text).toMatch(/^bulwark_pressure_overloaded 0$/m)
    expect(text).toMatch(/^bulwark_pressure_limit\{metric="eventLoopDelay"\} 10000$/m)
    expect(() => gate.listenHealth({ port: 70000 })).toThrow(OutOfRangeError)
    gate.close()
    gate.close()
    expect(() => gate.listenHealth()).toThrow(ClosedError)
  })

  it('registers prom-client metrics fed by the gate', async () => {
    const promClient = require('prom-client')
    const register = new promClient.Registry()
    const gate = pressure({ maxEventLoopDelay: 10_000 })
    gate.registerMetrics({ register, prefix: 'app_' })
    const admit = gate.middleware()
    admit({}, {}, () => {})
    const text = await register.metrics()
    expect(text).toMatch(/^app_bulwark_pressure_overloaded 0$/m)
    expect(text).toMatch(/^app_bulwark_pressure_admitted_total 1$/m)
    expect(text).toMatch(/^app_bulwark_pressure_rejected_total 0$/m)
    expect(text).toMatch(/^app_bulwark_pressure_limit\{metric="eventLoopDelay"\} 10000$/m)
    admit({}, {}, () => {})
    expect(await register.metrics()).toMatch(/^app_bulwark_pressure_admitted_total 2$/m)
    expect(() => gate.registerMetrics({ promClient: 'nope' })).toThrow(InvalidArgError)
    gate.close()
  })

  it('sheds load on memory limits, read from the memory watchdog', async () => {
    const { memoryWatchdog } = require('bulwark')
    // Until the watchdog's first native sample (on its own thread, right after it starts).
    const sampled = async (g) => {
      for (const end = Date.now() + 5000; g.status().values.rssBytes === 0 && Date.now() < end; ) await sleep(10)
    }
    const gate = pressure({ maxRssBytes: 1024, maxHeapUsedBytes: 1e15 })
    await sampled(gate)
    expect(gate.isOverloaded()).toBe(true)
    const [reason] = gate.status().reasons
    expect(reason).toMatchObject({ metric: 'rssBytes', limit: 1024, unit: 'bytes' })
    expect(reason.value).toBeGreaterThan(1024 * 1024)
    expect(gate.toPrometheus()).toMatch(/^bulwark_pressure_rss_bytes \d+$/m)
    gate.close()

    // A caller's watchdog is read, not stopped, by the gate.
    const watchdog = memoryWatchdog({ limits: {}, leak: false })
    const roomy = pressure({ maxRssBytes: 1e15, memoryWatchdog: watchdog })
    await sampled(roomy)
    expect(roomy.isOverloaded()).toBe(false)
    expect(roomy.status().values.rssBytes).toBeGreaterThan(0)
    roomy.close()
    expect(watchdog.stats().rss).toBeGreaterThan(0)
    watchdog.stop()
  })

  it('does not keep the process alive, even with a health listener open', async () => {
    const script = `
      const { pressure } = require('bulwark')
      const gate = pressure({ maxEventLoopDelay: 100 })
      gate.listenHealth({ stallMs: 500 })
      console.log(gate.isOverloaded())
    `
    const { code, stdout, elapsedMs } = await runNode(['-e', script])
    expect(code).toBe(0)
    expect(stdout.trim()).toBe('false')
    expect(elapsedMs).toBeLessThan(10_000)
  })

  it('works inside a worker thread and cleans up when the worker ends', async () => {
    const script = `
      const { Worker } = require('node:worker_threads')
      const w = new Worker(\`
        const { parentPort } = require('node:worker_threads')
        const { pressure } = require(${JSON.stringify(repoRoot)})
        const gate = pressure({ maxEventLoopDelay: 50 })
        const h = gate.listenHealth({ stallMs: 100 })
        const end = performance.now() + 80; while (performance.now() < end);
        setImmediate(() => parentPort.postMessage({ overloaded: gate.isOverloaded(), port: h.port }))
      \`, { eval: true })
      w.on('message', (m) => { console.log(JSON.stringify(m)); w.terminate() })
      w.on('exit', () => console.log('worker gone'))
    `
    const { code, stdout } = await runNode(['-e', script])
    expect(code).toBe(0)
    const [first, second] = stdout.trim().split('\n')
    expect(JSON.parse(first)).toMatchObject({ overloaded: true, port: expect.any(Number) })
    expect(second).toBe('worker gone')
  })
})
