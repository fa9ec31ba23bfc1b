import { describe, it, expect } from 'vitest'
import { createRequire } from 'node:module'
import path from 'node:path'
import { repoRoot, runNode } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bulwark = require('bulwark')
const { watchdog, Watchdog, InvalidArgError, OutOfRangeError } = bulwark
const child = path.join(repoRoot, '__test__/fixtures/stall-child.cjs')

const lines = (stderr) =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
const result = (stdout) => JSON.parse(stdout.split('\n').find((l) => l.startsWith('{')))

describe('watchdog: stalls (child processes)', () => {
  it('a 300 ms busy-wait with threshold 100: logs while blocked, onStall once with duration and stack', async () => {
    const opts = { thresholdMs: 100, captureStack: true, blockMs: 300 }
    const { code, stdout, stderr } = await runNode([child, 'busy', JSON.stringify(opts)])
    expect(code).toBe(0)
    const { stalls } = result(stdout)
    expect(stalls).toHaveLength(1)
    const [s] = stalls
    expect(s.durationMs).toBeGreaterThanOrEqual(299)
    expect(s.durationMs).toBeLessThan(400)
    expect(Math.abs(s.startedAt - Date.now())).toBeLessThan(60_000)
    expect(s.stack.length).toBeGreaterThan(0)
    // Innermost first; the pause may land inside performance.now() (JS functions of node:internal
    // on Node 24), so the first frame of user code is the one that must name the busy function.
    const frame = s.stack.find((f) => f.url.startsWith('file:'))
    expect(frame).toMatchObject({ functionName: 'blockingWork' })
    expect(frame.url).toContain('stall-child.cjs')
    expect(frame.lineNumber).toBeGreaterThan(0)
    expect(frame.columnNumber).toBeGreaterThan(0)
    const log = lines(stderr)
    expect(log.map((l) => l.event)).toEqual(['stall', 'stall-end'])
    expect(log[0]).toMatchObject({ pid: expect.any(Number), threadId: 0 })
    expect(log[0].ms).toBeGreaterThanOrEqual(100)
    expect(log[0].ms).toBeLessThan(300)
    expect(log[1].ms).toBeCloseTo(s.durationMs, 0)
  })

  it('an endless loop with killAfterMs 500 and action exit: exits with the code, stack in the last line', async () => {
    const opts = { thresholdMs: 100, killAfterMs: 500, action: 'exit', exitCode: 7, captureStack: true }
    let readyAt
    const { code, stderr, elapsedMs } = await runNode([child, 'endless', JSON.stringify(opts)], {
      onSpawn: (c) => c.stdout.on('data', () => (readyAt ??= performance.now())),
    })
    expect(code).toBe(7)
    const log = lines(stderr)
    expect(log.map((l) => l.event)).toEqual(['stall', 'stall-kill'])
    const kill = log[1]
    expect(kill).toMatchObject({ action: 'exit', exitCode: 7 })
    expect(kill.ms).toBeGreaterThanOrEqual(500)
    expect(kill.ms).toBeLessThan(550)
    expect(kill.at - log[0].at).toBeLessThan(550)
    expect(kill.stack[0]).toMatchObject({ functionName: 'endlessLoop' })
    expect(elapsedMs).toBeLessThan(15_000)
  })

  it('action abort: the process dies by SIGABRT', async () => {
    const opts = { thresholdMs: 50, killAfterMs: 200, log: false }
    const { code, signal, stderr } = await runNode([child, 'endless', JSON.stringify(opts)])
    expect(signal).toBe('SIGABRT')
    expect(code).toBe(null)
    const log = lines(stderr)
    // log: false silences the stall lines, never the final one.
    expect(log.map((l) => l.event)).toEqual(['stall-kill'])
    expect(log[0]).toMatchObject({ action: 'abort', stack: null })
  })

  it('2 s idle: no stall, nothing logged', async () => {
    const { code, stdout, stderr } = await runNode([child, 'idle', JSON.stringify({ thresholdMs: 50 })])
    expect(code).toBe(0)
    expect(result(stdout).stalls).toEqual([])
    expect(lines(stderr)).toEqual([])
  })

  it('SIGSTOP for 1 s then SIGCONT is not a stall', async () => {
    const { code, stdout, stderr } = await runNode([child, 'work', JSON.stringify({ thresholdMs: 200 })], {
      onSpawn: (c) => {
        c.stdout.once('data', () => {
          setTimeout(() => {
            c.kill('SIGSTOP')
            setTimeout(() => c.kill('SIGCONT'), 1000)
          }, 500)
        })
      },
    })
    expect(code).toBe(0)
    expect(result(stdout).stalls).toEqual([])
    expect(lines(stderr)).toEqual([])
  })

  it('watches a worker thread loop and never keeps the process alive', async () => {
    const script = `
      const { Worker } = require('node:worker_threads')
      const w = new Worker(\`
        const { watchdog } = require(${JSON.stringify(repoRoot)})
        const { parentPort } = require('node:worker_threads')
        const wd = watchdog({ thresholdMs: 50, log: true, onStall: (s) => parentPort.postMessage(s.durationMs) })
        setTimeout(() => { const e = Date.now() + 150; while (Date.now() < e); }, 10)
        setInterval(() => {}, 1000)
      \`, { eval: true })
      w.on('message', async (ms) => { console.log('worker stall', ms >= 140); await w.terminate() })
      const { watchdog } = require(${JSON.stringify(repoRoot)})
      watchdog({ thresholdMs: 1000, onStall: () => {} })  // never stopped: must not keep the process alive
    `
    const { code, stdout, stderr } = await runNode(['-e', script])
    expect(code).toBe(0)
    expect(stdout.trim()).toBe('worker stall true')
    const log = lines(stderr)
    expect(log[0]).toMatchObject({ event: 'stall' })
    expect(log[0].threadId).toBeGreaterThan(0)
  })
})

describe('watchdog: API', () => {
  it('keeps watching when the Watchdog object is not kept (and garbage collection runs)', async () => {
    const script = `
      const b = require('bulwark')
      b.watchdog({ thresholdMs: 100, log: false, onStall: (i) => console.log('stall', i.durationMs >= 240) })
      setTimeout(() => {
        globalThis.gc()
        setTimeout(() => { const e = Date.now() + 250; while (Date.now() < e); setTimeout(() => {}, 100) }, 10)
      }, 10)
    `
    const { code, stdout } = await runNode(['--expose-gc', '-e', script])
    expect(code).toBe(0)
    expect(stdout.trim()).toBe('stall true')
  })

  it('stop() ends it; stopping twice is fine', async () => {
    const wd = watchdog({ thresholdMs: 1000, log: false })
    expect(wd).toBeInstanceOf(Watchdog)
    expect(wd.stopped).toBe(false)
    await wd.ready
    await wd.stop()
    expect(wd.stopped).toBe(true)
    await wd.stop()
  })

  it('stops the stack helper too', async () => {
    const wd = watchdog({ thresholdMs: 1000, log: false, captureStack: true })
    await wd.ready
    await wd.stop()
    expect(wd.stopped).toBe(true)
  })

  it('validates options', () => {
    expect(() => watchdog({ thresholdMs: 0 })).toThrow(OutOfRangeError)
    expect(() => watchdog({ thresholdMs: '100' })).toThrow(InvalidArgError)
    expect(() => watchdog({ thresholdMs: 100, killAfterMs: 50 })).toThrow(OutOfRangeError)
    expect(() => watchdog({ killAfterMs: 500, action: 'crash' })).toThrow(InvalidArgError)
    expect(() => watchdog({ action: 'exit' })).toThrow(InvalidArgError)
    expect(() => watchdog({ killAfterMs: 500, action: 'exit', exitCode: 300 })).toThrow(OutOfRangeError)
    expect(() => watchdog({ onStall: 'x' })).toThrow(InvalidArgError)
    expect(() => watchdog({ log: 1 })).toThrow(InvalidArgError)
    expect(() => watchdog({ captureStack: 'yes' })).toThrow(InvalidArgError)
    expect(() => watchdog(null)).toThrow(InvalidArgError)
  })

  it('captureStack is refused in a worker', async () => {
    const script = `
      const { Worker } = require('node:worker_threads')
      const w = new Worker(\`
        const { watchdog } = require(${JSON.stringify(repoRoot)})
        try { watchdog({ captureStack: true }) } catch (e) { require('node:worker_threads').parentPort.postMessage(e.code) }
      \`, { eval: true })
      w.on('message', (c) => console.log(c))
    `
    const { code, stdout } = await runNode(['-e', script])
    expect(code).toBe(0)
    expect(stdout.trim()).toBe('ERR_BULWARK_INVALID_ARG')
  })
})
