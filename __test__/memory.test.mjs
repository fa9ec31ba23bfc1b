import { describe, it, expect } from 'vitest'
import { createRequire } from 'node:module'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { memoryCgroup, repoRoot, runNode, smallTmpfs, workerMessage } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bulwark = require('bulwark')
const { memoryWatchdog, MemoryWatchdog, InvalidArgError, OutOfRangeError, ClosedError, BulwarkError } = bulwark

const fixture = path.join(repoRoot, '__test__/fixtures/memory-scenarios.cjs')
const MB = 1024 * 1024

// Runs one scenario of the fixture in a child; returns its exit and its JSON lines.
// `scenarioIn` runs it inside a cgroup directory.
const scenario = (name, ...args) => scenarioIn(undefined, name, ...args)
async function scenarioIn(cgroup, name, ...args) {
  const res = await runNode(['--expose-gc', fixture, name, ...args], { timeoutMs: 25_000, cgroup })
  const lines = res.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
  const error = lines.find((l) => l.note === 'error')
  if (error) throw new Error(`child failed: ${error.stack}`)
  return { ...res, events: lines.filter((l) => l.ev), notes: lines.filter((l) => l.note) }
}

describe('memoryWatchdog in this process', () => {
  it('publishes O(1) stats from the native sampler', async () => {
    const w = memoryWatchdog({ intervalMs: 10 })
    try {
      expect(w).toBeInstanceOf(MemoryWatchdog)
      await new Promise((r) => setTimeout(r, 60))
      const s = w.stats()
      expect(s.samples).toBeGreaterThanOrEqual(1)
      expect(s.rss).toBeGreaterThan(10 * 1024 * 1024)
      expect(s.heapUsed).toBeGreaterThan(0)
      expect(s.heapLimit).toBeGreaterThan(s.heapUsed)
      expect(s.systemTotal).toBeGreaterThan(s.rss)
      expect(s.effectiveLimit).toBeLessThanOrEqual(s.systemTotal)
      expect(s.rssRatio).toBeCloseTo(s.rss / s.effectiveLimit, 10)
      expect(s.levels).toEqual({ rss: 'ok', heapUsed: 'ok', container: 'ok' })
      expect(w.level).toBe('ok')
      // This host runs cgroup v1 without a limit: usage is known, the limit is not.
      if (s.cgroupVersion !== null) {
        expect([1, 2]).toContain(s.cgroupVersion)
        expect(s.containerUsage).toBeGreaterThan(0)
      }
      if (s.containerLimit === null) expect(s.containerRatio).toBeNull()
      // The numbers move without any call on this thread: the sampler thread writes them.
      const before = w.stats().samples
      await new Promise((r) => setTimeout(r, 80))
      expect(w.stats().samples).toBeGreaterThan(before)
    } finally {
      w.stop()
    }
  })

  it('fires warn in order with values, once, and stop() ends it', async () => {
    const events = []
    const triggered = []
    const w = memoryWatchdog({
      intervalMs: 10,
      sustainMs: 0,
      limits: { rss: { warn: 1024, critical: '100%' } },
      onTrigger: (e) => triggered.push(e.type),
    })
    w.on('warn', (e) => events.push(e))
    w.on('critical', (e) => events.push(e))
    await new Promise((r) => setTimeout(r, 150))
    w.stop()
    expect(events).toHaveLength(1)
    const [e] = events
    expect(e).toMatchObject({ type: 'warn', level: 'warn', metric: 'rss', limit: 1024, from: 'ok', to: 'warn' })
    expect(e.value).toBeGreaterThan(1024)
    expect(e.stats.rss).toBeGreaterThan(1024)
    expect(triggered).toEqual(['warn'])
    expect(w.stopped).toBe(true)
    expect(() => w.stats()).toThrow(ClosedError)
    w.stop() // idempotent
  })

  it('validates its options with coded errors', () => {
    const bad = [
      [{ intervalMs: 0 }, OutOfRangeError],
      [{ intervalMs: 'fast' }, InvalidArgError],
      [{ limits: { swap: { warn: 1 } } }, InvalidArgError],
      [{ limits: { rss: { warn: '85 percent' } } }, InvalidArgError],
      [{ limits: { rss: { warn: '150%' } } }, OutOfRangeError],
      [{ limits: { rss: { warn: 200, critical: 100 } } }, OutOfRangeError],
      [{ limits: { rss: { warn: 1, typo: 1 } } }, InvalidArgError],
      [{ limits: { rss: { warn: 1, recoverBelow: 1.5 } } }, OutOfRangeError],
      [{ action: 'restart' }, InvalidArgError],
      [{ action: ['exit', 'nope'] }, InvalidArgError],
      [{ exitCode: 1.5 }, OutOfRangeError],
      [{ graceMs: -1 }, OutOfRangeError],
      [{ action: 'heapSnapshot', snapshotDir: '/definitely/not/here' }, InvalidArgError],
      [{ leak: { windowMs: 10 } }, OutOfRangeError],
      [{ onTrigger: 'x' }, InvalidArgError],
      ['nope', InvalidArgError],
    ]
    for (const [options, Class] of bad) {
      let caught
      try {
        memoryWatchdog(options).stop()
      } catch (err) {
        caught = err
      }
      expect(caught, JSON.stringify(options)).toBeInstanceOf(Class)
      expect(caught).toBeInstanceOf(BulwarkError)
      expect(caught.code).toMatch(/^ERR_BULWARK_(INVALID_ARG|OUT_OF_RANGE)$/)
    }
  })
})

describe('memoryWatchdog in child processes', () => {
  it.concurrent('a steadily allocating child crosses warn, then critical, in order with values', async () => {
    const { code, events, notes } = await scenario('grow')
    expect(code).toBe(0)
    expect(events.map((e) => e.ev)).toEqual(['warn', 'critical'])
    const [warn, critical] = events
    expect(warn).toMatchObject({ metric: 'rss', from: 'ok', to: 'warn' })
    expect(critical).toMatchObject({ metric: 'rss', from: 'warn', to: 'critical' })
    expect(warn.value).toBeGreaterThanOrEqual(warn.limit)
    expect(critical.value).toBeGreaterThanOrEqual(critical.limit)
    expect(critical.limit - warn.limit).toBe(60 * 1024 * 1024)
    expect(critical.value).toBeGreaterThan(warn.value)
    const done = notes.find((n) => n.note === 'done')
    expect(done.stats.levels.rss).toBe('critical')
  })

  it.concurrent('values oscillating across a threshold do not flap; a real drop recovers once', async () => {
    const { code, events, notes } = await scenario('oscillate')
    expect(code).toBe(0)
    const swung = notes.find((n) => n.note === 'swung')
    // The child really crossed the threshold both ways, several times...
    expect(swung.above).toBeGreaterThanOrEqual(4)
    expect(swung.below).toBeGreaterThanOrEqual(4)
    // ...and the level was entered once and never left while it swung.
    expect(swung.level).toBe('warn')
    // Freeing everything brings RSS under the exit threshold: one recover, to ok.
    expect(events.map((e) => e.ev)).toEqual(['warn', 'recover'])
    const recover = events[1]
    expect(recover).toMatchObject({ metric: 'rss', level: 'ok', from: 'warn', to: 'ok' })
    expect(recover.limit).toBeCloseTo(swung.exitThreshold, 0)
    expect(recover.value).toBeLessThan(recover.limit)
    expect(notes.find((n) => n.note === 'done').level).toBe('ok')
  })

  it.concurrent('exit ends a child whose loop is blocked, within interval + grace, with exitCode', async () => {
    const started = Date.now()
    const { code, notes, stderr, events } = await scenario('exit')
    const ended = Date.now()
    expect(code).toBe(42)
    expect(stderr).toContain('bulwark: memory critical (rss')
    // The loop never ran again after blocking, so the event could not be delivered.
    expect(events).toEqual([])
    const blocked = notes.find((n) => n.note === 'blocked')
    expect(blocked).toBeDefined()
    // Allocation + interval 50 + grace 300 ms; loose bound for a loaded machine.
    expect(ended - Math.max(blocked.at, started)).toBeLessThan(5000)
  })

  it.concurrent('writes the heap snapshot once per process and says why it skipped the other', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-snap-'))
    try {
      const { code, events } = await scenario('snapshot', dir)
      expect(code).toBe(0)
      // Both watchdogs cross critical. One may recover and cross it again while the snapshot is
      // written (its full GC frees the growth loop's garbage): every crossing asks for a snapshot.
      const criticals = events.filter((e) => e.ev === 'critical')
      expect(criticals.length).toBeGreaterThanOrEqual(2)
      // No warn threshold was set: critical comes straight from ok.
      for (const c of criticals) expect(c).toMatchObject({ metric: 'heapUsed', from: 'ok', to: 'critical' })
      const snaps = events.filter((e) => e.ev === 'heapSnapshot')
      expect(snaps).toHaveLength(criticals.length)
      const written = snaps.filter((s) => s.path)
      expect(written).toHaveLength(1)
      expect(path.dirname(written[0].path)).toBe(dir)
      for (const s of snaps.filter((s) => !s.path)) expect(s.skipped).toMatch(/already written/)
      const files = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot'))
      expect(files).toHaveLength(1)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it.concurrent('reports a leak trend of post-GC heap with its slope', async () => {
    const { code, events } = await scenario('leak')
    expect(code).toBe(0)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ ev: 'leak', level: 'leak', metric: 'heapUsed' })
    expect(events[0].slope).toBeGreaterThan(5 * 1024 * 1024)
  })

  it.concurrent('a sawtooth heap that returns to its baseline is not a leak', async () => {
    const { code, events, notes } = await scenario('sawtooth')
    expect(code).toBe(0)
    // Enough post-GC samples for several full windows.
    expect(notes.find((n) => n.note === 'done').gcs).toBeGreaterThanOrEqual(40)
    expect(events).toEqual([])
  })

  it.concurrent('a running watchdog does not keep the process alive', async () => {
    const { code, notes, elapsedMs } = await scenario('alive')
    expect(code).toBe(0)
    expect(notes[0]).toMatchObject({ note: 'started' })
    expect(elapsedMs).toBeLessThan(10_000)
  })
})

// Real kernel limits: a memory cgroup made for the child, and a tiny tmpfs. Both need root (or a
// delegated cgroup); where the kernel refuses, these cases report why and do not run. CI runs as
// root on a cgroup v1 host.
const probeCgroup = memoryCgroup(64 * MB)
probeCgroup?.remove()
const probeTmpfs = smallTmpfs(64 * 1024, path.join(tmpdir(), 'bulwark-tmpfs-'))
probeTmpfs?.remove()
if (!probeCgroup) console.warn(`memory cgroup cases not run: ${memoryCgroup.why}`)
if (!probeTmpfs) console.warn(`tmpfs case not run: ${smallTmpfs.why}`)

describe('memoryWatchdog against real kernel limits', () => {
  it.runIf(probeCgroup)('reads a real container limit and fires container thresholds as percentages of it', async () => {
    const cg = memoryCgroup(512 * MB)
    try {
      const { code, events, notes } = await scenarioIn(cg.dir, 'container')
      expect(code).toBe(0)
      const { first, stats } = notes.find((n) => n.note === 'done')
      expect(first.containerLimit).toBe(512 * MB)
      expect(first.cgroupVersion).toBe(cg.version)
      expect(first.effectiveLimit).toBe(512 * MB)
      expect(stats.containerUsage).toBeGreaterThan(0.6 * 512 * MB)
      expect(stats.containerRatio).toBeCloseTo(stats.containerUsage / (512 * MB), 6)
      expect(events.map((e) => [e.ev, e.metric])).toEqual([
        ['warn', 'container'],
        ['critical', 'container'],
      ])
      expect(events[0].limit).toBeCloseTo(0.4 * 512 * MB, 0)
      expect(events[1].limit).toBeCloseTo(0.6 * 512 * MB, 0)
      for (const e of events) expect(e.value).toBeGreaterThanOrEqual(e.limit)
    } finally {
      cg.remove()
    }
  })

  it.runIf(probeCgroup)('skips the heap snapshot when the container has less memory left than the heap', async () => {
    // Heap grows ~150 MB in a 256 MB cgroup: the snapshot would need the heap's size again.
    const cg = memoryCgroup(256 * MB)
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-snap-'))
    try {
      const { code, events, notes } = await scenarioIn(cg.dir, 'short', dir, '150')
      expect(code).toBe(0)
      expect(events.map((e) => e.ev)).toEqual(['critical', 'heapSnapshot'])
      const snap = events[1]
      expect(snap.path).toBeNull()
      expect(snap.skipped).toMatch(/^memory: \d+ bytes free, the snapshot needs about \d+$/)
      const [free, needs] = snap.skipped.match(/\d+/g).map(Number)
      expect(free).toBeLessThan(needs)
      expect(notes.find((n) => n.note === 'done').stats.containerLimit).toBe(256 * MB)
      expect(readdirSync(dir)).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
      cg.remove()
    }
  })

  it.runIf(probeTmpfs)('skips the heap snapshot when the snapshot directory has too little disk', async () => {
    const fsys = smallTmpfs(1024 * 1024, path.join(tmpdir(), 'bulwark-tmpfs-'))
    try {
      const { code, events } = await scenario('short', fsys.dir, '8')
      expect(code).toBe(0)
      expect(events.map((e) => e.ev)).toEqual(['critical', 'heapSnapshot'])
      expect(events[1].path).toBeNull()
      expect(events[1].skipped).toMatch(new RegExp(`^disk: \\d+ bytes free in ${fsys.dir}, the snapshot needs about \\d+$`))
      expect(readdirSync(fsys.dir)).toEqual([])
    } finally {
      fsys.remove()
    }
  })
})

describe('memoryWatchdog in a worker', () => {
  it('works in a worker and is released when the worker ends', async () => {
    const before = bulwark.runtimeInfo().liveInstances
    const { message, worker } = await workerMessage(path.join(repoRoot, '__test__/fixtures/memory-worker.cjs'))
    expect(message.warn.metric).toBe('rss')
    expect(message.stats.levels.rss).toBe('warn')
    expect(bulwark.runtimeInfo().liveInstances).toBe(before + 1)
    await worker.terminate()
    expect(bulwark.runtimeInfo().liveInstances).toBe(before)
  })
})
