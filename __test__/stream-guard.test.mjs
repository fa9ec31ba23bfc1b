import { describe, it, expect, afterEach } from 'vitest'
import { createRequire } from 'node:module'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { pipeline, PassThrough, Readable, Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { repoRoot, runNode } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bulwark = require('bulwark')
const {
  guard,
  guardRequest,
  readBody,
  guardWebStream,
  withTimeout,
  budget,
  streamGuardStats,
  PayloadTooLargeError,
  RequestTimeoutError,
  DeadlineError,
  IdleTimeoutError,
  TooSlowError,
  TimeoutError,
  AbortError,
  BulwarkError,
  InvalidArgError,
  OutOfRangeError,
} = bulwark

// --- helpers -----------------------------------------------------------------------------------

const servers = []
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise((r) => s.close(r))
  }
})

async function serve(handler) {
  const server = http.createServer(handler)
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return server.address().port
}

// A raw TCP client, so the test controls every byte and its timing. `response` resolves with
// what the server sent and whether it closed the connection.
function rawClient(port) {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  let data = ''
  socket.setEncoding('latin1')
  socket.on('data', (d) => (data += d))
  const response = new Promise((resolve) => socket.on('close', () => resolve({ text: data, closed: true })))
  return { socket, response, write: (s) => socket.write(s) }
}

const statusOf = (text) => Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1])

function head(length, extra = '') {
  return `POST / HTTP/1.1\r\nHost: x\r\n${length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n${extra}\r\n`
}
const chunk = (buf) => `${buf.length.toString(16)}\r\n${buf}\r\n`

// Runs a guard over `src` into a sink; resolves with the pipeline's error and what got through.
function runPipeline(src, g, sink = new PassThrough()) {
  const got = []
  sink.on('data', (d) => got.push(d))
  return new Promise((resolve) =>
    pipeline(src, g, sink, (err) => resolve({ err, bytes: Buffer.concat(got).length, sink })),
  )
}

// Keeps a stream that only the test feeds open (the ticker itself is unref'd on purpose).
function trickle(stream, bytes, everyMs) {
  const timer = setInterval(() => stream.write(bytes), everyMs)
  return () => clearInterval(timer)
}

// --- errors --------------------------------------------------------------------------------------

describe('errors', () => {
  it('are typed, carry codes, statusCode and raw-body fields', () => {
    const tooLarge = new PayloadTooLargeError('x', { bytes: 11, elapsedMs: 1, limit: 10 })
    expect(tooLarge).toBeInstanceOf(BulwarkError)
    expect([tooLarge.code, tooLarge.statusCode, tooLarge.bytes, tooLarge.limit]).toEqual([
      'ERR_BULWARK_PAYLOAD_TOO_LARGE',
      413,
      11,
      10,
    ])
    for (const [Class, code] of [
      [DeadlineError, 'ERR_BULWARK_DEADLINE'],
      [IdleTimeoutError, 'ERR_BULWARK_IDLE'],
      [TooSlowError, 'ERR_BULWARK_TOO_SLOW'],
    ]) {
      const err = new Class()
      expect(err).toBeInstanceOf(RequestTimeoutError)
      expect(err).toBeInstanceOf(BulwarkError)
      expect(err.code).toBe(code)
      expect(err.statusCode).toBe(408)
      expect(err.name).toBe(Class.name)
    }
    expect(new TimeoutError().code).toBe('ERR_BULWARK_TIMEOUT')
    expect(new TimeoutError().name).toBe('TimeoutError')
  })
})

// --- guard(): the Transform ----------------------------------------------------------------------

describe('guard()', () => {
  it('passes exactly maxBytes and fails on the next byte without passing it on', async () => {
    const ok = await runPipeline(Readable.from([Buffer.alloc(600), Buffer.alloc(400)]), guard({ maxBytes: 1000 }))
    expect(ok.err).toBeUndefined()
    expect(ok.bytes).toBe(1000)

    const src = Readable.from([Buffer.alloc(600), Buffer.alloc(400), Buffer.alloc(1), Buffer.alloc(50)])
    const over = await runPipeline(src, guard({ maxBytes: 1000 }))
    expect(over.err).toBeInstanceOf(PayloadTooLargeError)
    expect(over.err.bytes).toBe(1001)
    expect(over.err.limit).toBe(1000)
    expect(over.err.type).toBe('entity.too.large')
    expect(over.bytes).toBe(1000)
  })

  it('drops the whole chunk that crosses the limit', async () => {
    const over = await runPipeline(Readable.from([Buffer.alloc(700), Buffer.alloc(700)]), guard({ maxBytes: 1000 }))
    expect(over.err.code).toBe('ERR_BULWARK_PAYLOAD_TOO_LARGE')
    expect(over.err.bytes).toBe(1400)
    expect(over.bytes).toBe(700)
  })

  it('propagates its error through pipeline: the upstream and downstream are destroyed', async () => {
    const src = new PassThrough()
    const stop = trickle(src, 'x', 20)
    const sink = new PassThrough()
    const { err } = await runPipeline(src, guard({ deadlineMs: 200 }), sink)
    stop()
    expect(err).toBeInstanceOf(DeadlineError)
    expect(err.statusCode).toBe(408)
    expect(err.bytes).toBeGreaterThan(0)
    expect(err.elapsedMs).toBeGreaterThanOrEqual(200)
    expect(err.limit).toBe(200)
    expect(src.destroyed).toBe(true)
    expect(sink.destroyed).toBe(true)
  })

  it('an error upstream destroys the guard and leaves the ticker', async () => {
    const src = new PassThrough()
    const g = guard({ idleTimeoutMs: 5000 })
    const done = runPipeline(src, g)
    expect(streamGuardStats().activeGuards).toBeGreaterThanOrEqual(1)
    src.destroy(new Error('upstream broke'))
    const { err } = await done
    expect(err.message).toBe('upstream broke')
    expect(g.destroyed).toBe(true)
    expect(streamGuardStats().activeGuards).toBe(0)
  })

  it('groups guards by tick period and stops a ticker when its last guard is gone', async () => {
    const short = guard({ idleTimeoutMs: 200 }) // 50 ms -> 32 ms period
    const long = guard({ deadlineMs: 60_000 }) // 1024 ms period
    const bytesOnly = guard({ maxBytes: 10 }) // no time limit: no ticker
    expect(streamGuardStats()).toEqual({ activeGuards: 2, tickPeriodsMs: [32, 1024] })
    short.destroy()
    long.destroy()
    bytesOnly.destroy()
    expect(streamGuardStats().activeGuards).toBe(0)
    await sleep(1100) // each interval notices it is empty on its next tick
    expect(streamGuardStats().tickPeriodsMs).toEqual([])
  })

  it('fails an idle stream with IdleTimeoutError, counting the bytes seen', async () => {
    const src = new PassThrough()
    const keep = setInterval(() => {}, 100)
    src.write(Buffer.alloc(10))
    const { err } = await runPipeline(src, guard({ idleTimeoutMs: 300 }))
    clearInterval(keep)
    expect(err).toBeInstanceOf(IdleTimeoutError)
    expect(err.bytes).toBe(10)
    expect(err.elapsedMs).toBeGreaterThanOrEqual(300)
  })

  it('does not count consumer backpressure as idle time, and preserves backpressure', async () => {
    const src = new PassThrough({ highWaterMark: 1024 })
    const g = guard({ idleTimeoutMs: 200, minBytesPerSecond: 1000, graceMs: 100 })
    const got = []
    const slow = new Writable({
      highWaterMark: 1024,
      write(c, e, cb) {
        got.push(c.length)
        // The consumer stalls on the first chunk for 3x the idle timeout.
        if (got.length === 1) setTimeout(cb, 600)
        else cb()
      },
    })
    const done = new Promise((resolve) => pipeline(src, g, slow, resolve))
    // 1 MiB: more than every buffer on the way can hold (the default highWaterMark differs
    // between Node versions), so the writer must wait for 'drain' while the consumer stalls.
    let refused = 0
    for (let i = 0; i < 64; i++) {
      if (!src.write(Buffer.alloc(16 * 1024))) {
        refused++
        await once(src, 'drain')
      }
    }
    src.end()
    expect(refused).toBeGreaterThan(0) // the writer saw backpressure
    expect(await done).toBeUndefined()
    expect(got.reduce((a, b) => a + b, 0)).toBe(64 * 16 * 1024)
  })

  it('cuts a 4 bytes/s sender with minBytesPerSecond 240, graceMs 1000', async () => {
    const src = new PassThrough()
    const stop = trickle(src, 'a', 250)
    const { err } = await runPipeline(src, guard({ minBytesPerSecond: 240, graceMs: 1000 }))
    stop()
    expect(err).toBeInstanceOf(TooSlowError)
    expect(err.rate).toBeLessThan(240)
    expect(err.limit).toBe(240)
    expect(err.elapsedMs).toBeGreaterThanOrEqual(1000)
    expect(err.elapsedMs).toBeLessThan(4000)
  })

  it('lets a sender above the minimum rate finish', async () => {
    const src = new PassThrough()
    const stop = trickle(src, Buffer.alloc(100), 50) // 2000 bytes/s
    setTimeout(() => (stop(), src.end()), 1500)
    const { err, bytes } = await runPipeline(src, guard({ minBytesPerSecond: 240, graceMs: 300 }))
    expect(err).toBeUndefined()
    expect(bytes).toBeGreaterThan(1000)
  })

  it('aborts through an AbortSignal (also one aborted before the start)', async () => {
    const src = new PassThrough()
    const ac = new AbortController()
    setTimeout(() => ac.abort(new Error('shutting down')), 50)
    const { err } = await runPipeline(src, guard({ signal: ac.signal }))
    expect(err).toBeInstanceOf(AbortError)
    expect(err.cause.message).toBe('shutting down')
    expect(src.destroyed).toBe(true)

    const early = await runPipeline(new PassThrough(), guard({ signal: AbortSignal.abort() }))
    expect(early.err.code).toBe('ERR_BULWARK_ABORTED')
  })

  it('validates its options', () => {
    expect(() => guard({ maxBytes: -1 })).toThrow(OutOfRangeError)
    expect(() => guard({ idleTimeoutMs: 'soon' })).toThrow(InvalidArgError)
    expect(() => guard({ signal: {} })).toThrow(InvalidArgError)
    expect(() => guard('x')).toThrow(InvalidArgError)
    expect(() => guard({ rateWindowMs: 10 })).toThrow(OutOfRangeError)
    expect(() => guardRequest(new PassThrough(), { limit: 'lots' })).toThrow(InvalidArgError)
  })

  it('never keeps the process alive by itself', async () => {
    const script = `
      const { guard } = require(${JSON.stringify(repoRoot)})
      const g = guard({ deadlineMs: 60000, idleTimeoutMs: 60000 })
      new (require('node:stream').PassThrough)().pipe(g)
      console.log('armed')
    `
    const { code, stdout, elapsedMs } = await runNode(['-e', script], { timeoutMs: 20_000 })
    expect(code).toBe(0)
    expect(stdout.trim()).toBe('armed')
    expect(elapsedMs).toBeLessThan(15_000)
  })
})

// --- guardRequest() and readBody() on a real node:http server --------------------------------------

describe('guardRequest() / readBody() on node:http', () => {
  it('rejects a declared oversize body with 413 before reading a byte, and closes the socket', async () => {
    let seen
    const port = await serve((req, res) => {
      const body = guardRequest(req, { maxBytes: 1000, res })
      let passed = 0
      body.on('data', (d) => (passed += d.length))
      body.on('error', (err) => (seen = { err, passed }))
    })
    const c = rawClient(port)
    c.write(head(100_000) + 'x'.repeat(2000))
    const { text, closed } = await c.response
    expect(statusOf(text)).toBe(413)
    expect(text).toMatch(/connection: close/i)
    expect(closed).toBe(true)
    expect(seen.err).toBeInstanceOf(PayloadTooLargeError)
    expect(seen.err.bytes).toBe(0)
    expect(seen.err.expected).toBe(100_000)
    expect(seen.passed).toBe(0)
  })

  it('chunked: accepts exactly maxBytes, answers 413 on byte maxBytes + 1', async () => {
    let reached
    const reachedLimit = new Promise((r) => (reached = r))
    let seen
    const port = await serve((req, res) => {
      const body = guardRequest(req, { maxBytes: 1000, res })
      let passed = 0
      body.on('data', (d) => {
        passed += d.length
        if (passed === 1000) reached()
      })
      body.on('error', (err) => (seen = { err, passed }))
      body.on('end', () => res.end(`got ${passed}`))
    })
    // Exactly the limit: accepted.
    const okRes = await fetch(`http://127.0.0.1:${port}/`, {
      method: 'POST',
      body: Readable.toWeb(Readable.from([Buffer.alloc(500, 'a'), Buffer.alloc(500, 'b')])),
      duplex: 'half',
    })
    expect(okRes.status).toBe(200)
    expect(await okRes.text()).toBe('got 1000')

    const c = rawClient(port)
    c.write(head('chunked') + chunk('a'.repeat(500)) + chunk('b'.repeat(500)))
    await reachedLimit
    c.write(chunk('c'))
    const { text, closed } = await c.response
    expect(statusOf(text)).toBe(413)
    expect(closed).toBe(true)
    expect(seen.passed).toBe(1000)
    expect(seen.err.bytes).toBe(1001)
  })

  it('cuts a slow-loris body (4 bytes/s) with 408 within about 2 s', async () => {
    let seen
    const port = await serve((req, res) => {
      readBody(req, { minBytesPerSecond: 240, graceMs: 1000, res }).catch((err) => (seen = err))
    })
    const c = rawClient(port)
    c.write(head(10_000))
    const stop = trickle(c.socket, 'a', 250)
    const started = Date.now()
    const { text, closed } = await c.response
    stop()
    expect(statusOf(text)).toBe(408)
    expect(text).toMatch(/ERR_BULWARK_TOO_SLOW/)
    expect(closed).toBe(true)
    expect(seen).toBeInstanceOf(TooSlowError)
    expect(Date.now() - started).toBeLessThan(5000) // loose: ~1.1 s expected
  })

  it('answers 408 on an idle body, and on a trickling body past its deadline', async () => {
    const errors = []
    const port = await serve((req, res) => {
      const deadline = req.headers['x-mode'] === 'deadline'
      const opts = deadline ? { deadlineMs: 400, idleTimeoutMs: 300 } : { idleTimeoutMs: 300 }
      readBody(req, { ...opts, res }).catch((err) => errors.push(err))
    })
    const idle = rawClient(port)
    idle.write(head(100) + 'x'.repeat(10))
    const idleRes = await idle.response
    expect(statusOf(idleRes.text)).toBe(408)
    expect(errors[0]).toBeInstanceOf(IdleTimeoutError)
    expect(errors[0].bytes).toBe(10)

    const late = rawClient(port)
    late.write(head(1000, 'X-Mode: deadline\r\n'))
    const stop = trickle(late.socket, 'y', 40) // never idle for 300 ms
    const lateRes = await late.response
    stop()
    expect(statusOf(lateRes.text)).toBe(408)
    expect(errors[1]).toBeInstanceOf(DeadlineError)
    expect(errors[1].bytes).toBeGreaterThan(0)
  })

  it('readBody returns a Buffer, or a string with encoding; accepts raw-body\'s limit', async () => {
    const port = await serve(async (req, res) => {
      try {
        const mode = req.headers['x-mode']
        const body =
          mode === 'string' ? await readBody(req, { encoding: 'utf8', limit: '1kb' }) : await readBody(req, { limit: 1024 })
        res.end(JSON.stringify({ isBuffer: Buffer.isBuffer(body), type: typeof body, length: body.length }))
      } catch (err) {
        res.writeHead(err.statusCode ?? 500, { connection: 'close' })
        res.end(err.code)
      }
    })
    const post = (mode, body) => fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { 'x-mode': mode }, body })
    expect(await (await post('buffer', 'héllo')).json()).toEqual({ isBuffer: true, type: 'object', length: 6 })
    expect(await (await post('string', 'héllo')).json()).toEqual({ isBuffer: false, type: 'string', length: 5 })
    const big = await post('string', 'z'.repeat(1025))
    expect(big.status).toBe(413)
    expect(await big.text()).toBe('ERR_BULWARK_PAYLOAD_TOO_LARGE')
  })

  it('a client abort fails the guarded body and destroys what it feeds', async () => {
    let result
    const settled = new Promise((resolve) => (result = resolve))
    let received
    const allReceived = new Promise((resolve) => (received = resolve))
    const port = await serve((req) => {
      let n = 0
      const sink = new Writable({ write: (c, e, cb) => ((n += c.length) === 100 && received(), cb()) })
      const body = guardRequest(req, { idleTimeoutMs: 10_000 })
      pipeline(body, sink, (err) => result({ err, sink, body }))
    })
    const c = rawClient(port)
    c.write(head(1000) + 'x'.repeat(100))
    // The abort comes once the server has passed on all 100 bytes (not after a fixed sleep, which
    // a loaded machine can outlast before the request even arrives).
    await allReceived
    c.socket.destroy()
    const { err, sink, body } = await settled
    expect(err).toBeInstanceOf(AbortError)
    expect(err.type).toBe('request.aborted')
    expect(err.bytes).toBe(100)
    expect(sink.destroyed).toBe(true)
    expect(body.destroyed).toBe(true)
  })

  it('guard() in pipeline(req, guard, sink): a client abort destroys the chain', async () => {
    let result
    const settled = new Promise((resolve) => (result = resolve))
    let received
    const allReceived = new Promise((resolve) => (received = resolve))
    const port = await serve((req) => {
      const g = guard({ idleTimeoutMs: 10_000 })
      let n = 0
      const sink = new Writable({ write: (c, e, cb) => ((n += c.length) === 10 && received(), cb()) })
      pipeline(req, g, sink, (err) => result({ err, g, sink }))
    })
    const c = rawClient(port)
    c.write(head(1000) + 'x'.repeat(10))
    await allReceived
    c.socket.destroy()
    const { err, g, sink } = await settled
    expect(err).toBeTruthy()
    expect(g.destroyed).toBe(true)
    expect(sink.destroyed).toBe(true)
    expect(streamGuardStats().activeGuards).toBe(0)
  })

  it('readBody rejects with AbortError when the client goes away; a signal with res destroys the request', async () => {
    const errors = []
    let arrived
    const handled = new Promise((resolve) => (arrived = resolve))
    const port = await serve((req, res) => {
      const opts = req.headers['x-mode'] === 'signal' ? { signal: AbortSignal.timeout(100), res } : {}
      readBody(req, opts).catch((err) => errors.push(err))
      arrived()
    })
    const c = rawClient(port)
    c.write(head(1000) + 'x'.repeat(100))
    // The request has reached the handler (its 100 bytes came in the same write, parsed in the
    // same pass); the sleep only lets readBody take them in.
    await handled
    await sleep(100)
    c.socket.destroy()
    await c.response
    while (errors.length < 1) await sleep(10)
    expect(errors[0]).toBeInstanceOf(AbortError)
    expect(errors[0].type).toBe('request.aborted')
    expect(errors[0].bytes).toBe(100)

    const s = rawClient(port)
    s.write(head(1000, 'X-Mode: signal\r\n') + 'x'.repeat(10))
    const { text, closed } = await s.response // the server destroys the connection, no answer
    expect(text).toBe('')
    expect(closed).toBe(true)
    expect(errors[1]).toBeInstanceOf(AbortError)
    expect(errors[1].cause.name).toBe('TimeoutError')
  })

  it('validates req and res', () => {
    expect(() => guardRequest({}, {})).toThrow(InvalidArgError)
    expect(() => guardRequest(new PassThrough(), { res: {} })).toThrow(InvalidArgError)
    return expect(readBody(new PassThrough(), { encoding: 'nope' })).rejects.toBeInstanceOf(InvalidArgError)
  })
})

// --- guardWebStream() ---------------------------------------------------------------------------

describe('guardWebStream()', () => {
  async function readAll(stream) {
    let n = 0
    for await (const c of stream) n += c.byteLength
    return n
  }

  it('passes a fetch body under the limit and fails one over it with 413', async () => {
    const port = await serve((req, res) => res.end(Buffer.alloc(Number(req.headers['x-size']))))
    const get = (size) => fetch(`http://127.0.0.1:${port}/`, { headers: { 'x-size': String(size) } })
    expect(await readAll((await get(1000)).body.pipeThrough(guardWebStream({ maxBytes: 1000 })))).toBe(1000)
    const err = await readAll((await get(5000)).body.pipeThrough(guardWebStream({ maxBytes: 1000 }))).catch((e) => e)
    expect(err).toBeInstanceOf(PayloadTooLargeError)
    expect(err.bytes).toBeGreaterThan(1000)
  })

  it('fails a stalled fetch body with IdleTimeoutError and respects an AbortSignal', async () => {
    const port = await serve((req, res) => {
      res.writeHead(200, { 'content-length': 1000 })
      res.write('x'.repeat(10)) // then stall
    })
    const res = await fetch(`http://127.0.0.1:${port}/`)
    const err = await readAll(res.body.pipeThrough(guardWebStream({ idleTimeoutMs: 300 }))).catch((e) => e)
    expect(err).toBeInstanceOf(IdleTimeoutError)
    expect(err.bytes).toBe(10)

    const ac = new AbortController()
    const res2 = await fetch(`http://127.0.0.1:${port}/`)
    setTimeout(() => ac.abort(), 50)
    const err2 = await readAll(res2.body.pipeThrough(guardWebStream({ signal: ac.signal }))).catch((e) => e)
    expect(err2).toBeInstanceOf(AbortError)
  })
})

// --- withTimeout() and budget() -------------------------------------------------------------------

describe('withTimeout() and budget()', () => {
  it('withTimeout settles like the promise when in time, else rejects with TimeoutError', async () => {
    expect(await withTimeout(sleep(10, 'ok'), 1000)).toBe('ok')
    await expect(withTimeout(Promise.reject(new Error('own')), 1000)).rejects.toThrow('own')
    const err = await withTimeout(sleep(2000), 50).catch((e) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    expect(err.timeoutMs).toBe(50)
    expect(err.elapsedMs).toBeGreaterThanOrEqual(49)
  })

  it('withTimeout gives a function form a signal that aborts when time is up', async () => {
    let inner
    const err = await withTimeout((signal) => {
      inner = signal
      return new Promise(() => {})
    }, 50).catch((e) => e)
    expect(err.code).toBe('ERR_BULWARK_TIMEOUT')
    expect(inner.aborted).toBe(true)
    expect(inner.reason).toBe(err)
  })

  it('withTimeout rejects with AbortError when its signal aborts', async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort('bye'), 20)
    const err = await withTimeout(sleep(2000), 5000, { signal: ac.signal }).catch((e) => e)
    expect(err).toBeInstanceOf(AbortError)
    expect(err.cause).toBe('bye')
    expect(() => withTimeout(42, 10)).toThrow(InvalidArgError)
  })

  it('budget counts down, check() throws once spent, its signal aborts at the deadline', async () => {
    const b = budget(100)
    expect(b.remaining()).toBeGreaterThan(0)
    expect(b.remaining()).toBeLessThanOrEqual(100)
    expect(() => b.check()).not.toThrow()
    const { signal } = b
    expect(signal.aborted).toBe(false)
    await once(signal, 'abort')
    expect(signal.reason).toBeInstanceOf(TimeoutError)
    expect(b.remaining()).toBe(0)
    expect(() => b.check()).toThrow(TimeoutError)

    const ac = new AbortController()
    const linked = budget(10_000, { signal: ac.signal })
    ac.abort()
    expect(() => linked.check()).toThrow(AbortError)
    expect(linked.signal.aborted).toBe(true)
  })

  it('budget bounds a loop', () => {
    const b = budget(30)
    let rounds = 0
    const err = (() => {
      try {
        for (;;) {
          b.check()
          rounds++
        }
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(TimeoutError)
    expect(rounds).toBeGreaterThan(0)
  })
})
