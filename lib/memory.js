'use strict'
// Memory watchdog: the EventEmitter over the native sampler thread (src/memory/).
//
// Split of work, and why:
// - Native (sampler thread): RSS, cgroup usage/limit, system memory, the hysteresis of every
//   metric and the enforced `exit`. It must decide while the event loop is blocked.
// - JS (this file): the V8 heap, which can only be read on the JS thread (a timer plus a
//   PerformanceObserver on major GCs), fed to the native side with `setHeap`/`recordPostGc`;
//   emitting events; the heap snapshot (v8.writeHeapSnapshot runs on the JS thread); the
//   graceful half of `exit` (process.exit once listeners had `graceMs`).
// - `stats()` reads a Float64Array over the sampler's own memory: no native call, O(1).

const { EventEmitter } = require('node:events')
const fs = require('node:fs')
const path = require('node:path')
const v8 = require('node:v8')
const { isMainThread } = require('node:worker_threads')
const { PerformanceObserver, constants: perfConstants } = require('node:perf_hooks')
const native = require('./native')
const { callNative } = require('./internal')
const { InvalidArgError, OutOfRangeError, ClosedError } = require('./errors')
const {
  validateObject,
  validateNumber,
  validateString,
  validateFunction,
  validateOneOf,
} = require('./validate')

const SLOT = Object.fromEntries(native.memorySlotNames().map((name, i) => [name, i]))
const LEVELS = ['ok', 'warn', 'critical']
const METRICS = ['rss', 'heapUsed', 'container']
const ACTIONS = ['heapSnapshot', 'exit']
const DEFAULT_LIMITS = {
  rss: { warn: '85%', critical: '95%' },
  heapUsed: { warn: '85%', critical: '95%' },
  container: { warn: '85%', critical: '95%' },
}
const MiB = 1024 * 1024

// Running watchdogs. A watchdog nobody references keeps watching (and acting) until stop():
// `memoryWatchdog({ action: 'exit' })` without keeping the result is a valid use.
const running = new Set()

// A limit: bytes (a number) or a percentage string ('85%') of the metric's base limit.
function parseLimit(value, name) {
  if (value === undefined) return {}
  if (typeof value === 'number') return { bytes: validateNumber(value, name, { min: 1 }) }
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value)
    if (m === null) {
      throw new InvalidArgError(`The "${name}" option must be a number of bytes or a percentage like '85%'. Received ${JSON.stringify(value)}`)
    }
    const pct = Number(m[1])
    if (pct <= 0 || pct > 100) {
      throw new OutOfRangeError(`The "${name}" option must be a percentage > 0% and <= 100%. Received ${value}`)
    }
    return { ratio: pct / 100 }
  }
  throw new InvalidArgError(`The "${name}" option must be a number of bytes or a percentage like '85%'. Received ${typeof value}`)
}

function parseLevels(value, name, defaults) {
  if (value === false || value === null) return undefined
  const o = validateObject(value, name)
  for (const key of Object.keys(o)) {
    if (!['warn', 'critical', 'recoverBelow', 'sustainMs'].includes(key)) {
      throw new InvalidArgError(`Unknown option "${name}.${key}" (expected warn, critical, recoverBelow, sustainMs)`)
    }
  }
  const warn = parseLimit(o.warn, `${name}.warn`)
  const critical = parseLimit(o.critical, `${name}.critical`)
  if (warn.bytes !== undefined && critical.bytes !== undefined && warn.bytes > critical.bytes) {
    throw new OutOfRangeError(`"${name}.warn" (${warn.bytes}) must not be above "${name}.critical" (${critical.bytes})`)
  }
  if (warn.ratio !== undefined && critical.ratio !== undefined && warn.ratio > critical.ratio) {
    throw new OutOfRangeError(`"${name}.warn" must not be above "${name}.critical"`)
  }
  const recoverBelow = validateNumber(o.recoverBelow, `${name}.recoverBelow`, {
    min: 0.01,
    max: 1,
    fallback: defaults.recoverBelow,
  })
  const sustainMs = validateNumber(o.sustainMs, `${name}.sustainMs`, { min: 0, max: 3_600_000, fallback: defaults.sustainMs })
  if (warn.bytes === undefined && warn.ratio === undefined && critical.bytes === undefined && critical.ratio === undefined) {
    return undefined
  }
  return {
    warnBytes: warn.bytes,
    warnRatio: warn.ratio,
    criticalBytes: critical.bytes,
    criticalRatio: critical.ratio,
    recoverBelow,
    sustainMs,
  }
}

function parseOptions(options) {
  const o = validateObject(options, 'options')
  const intervalMs = validateNumber(o.intervalMs, 'intervalMs', { min: 1, max: 60_000, fallback: 100 })
  const heapIntervalMs = validateNumber(o.heapIntervalMs, 'heapIntervalMs', { min: 1, max: 600_000, fallback: 500 })
  const recoverBelow = validateNumber(o.recoverBelow, 'recoverBelow', { min: 0.01, max: 1, fallback: 0.9 })
  const sustainMs = validateNumber(o.sustainMs, 'sustainMs', { min: 0, max: 3_600_000, fallback: 500 })
  const limits = validateObject(o.limits, 'limits', DEFAULT_LIMITS)
  for (const key of Object.keys(limits)) {
    if (!METRICS.includes(key)) {
      throw new InvalidArgError(`Unknown option "limits.${key}" (expected ${METRICS.join(', ')})`)
    }
  }
  const levels = {}
  for (const metric of METRICS) {
    levels[metric] = limits[metric] === undefined ? undefined : parseLevels(limits[metric], `limits.${metric}`, { recoverBelow, sustainMs })
  }
  const actionList = o.action === undefined ? [] : Array.isArray(o.action) ? o.action : [o.action]
  for (const [i, a] of actionList.entries()) validateOneOf(a, Array.isArray(o.action) ? `action[${i}]` : 'action', ACTIONS)
  const actions = new Set(actionList)
  const graceMs = validateNumber(o.graceMs, 'graceMs', { min: 0, max: 600_000, fallback: 3000 })
  const exitCode = validateNumber(o.exitCode, 'exitCode', { min: 0, max: 255, integer: true, fallback: 1 })
  const snapshotDir = path.resolve(validateString(o.snapshotDir, 'snapshotDir', process.cwd()))
  if (actions.has('heapSnapshot')) {
    let ok = false
    try {
      ok = fs.statSync(snapshotDir).isDirectory()
    } catch {}
    if (!ok) throw new InvalidArgError(`The "snapshotDir" option must be an existing directory. Received ${JSON.stringify(snapshotDir)}`)
  }
  let leak
  if (o.leak !== false) {
    const l = validateObject(o.leak, 'leak')
    leak = {
      windowMs: validateNumber(l.windowMs, 'leak.windowMs', { min: 100, max: 86_400_000, fallback: 600_000 }),
      minSamples: validateNumber(l.minSamples, 'leak.minSamples', { min: 3, max: 100_000, integer: true, fallback: 10 }),
      minSlope: validateNumber(l.minSlope, 'leak.minSlope', { min: 1, fallback: MiB }),
    }
  }
  const onTrigger = validateFunction(o.onTrigger, 'onTrigger', { optional: true })
  return { intervalMs, heapIntervalMs, levels, actions, graceMs, exitCode, snapshotDir, leak, onTrigger }
}

const nullable = (v) => (v < 0 ? null : v)
const ratio = (a, b) => (a >= 0 && b > 0 ? a / b : null)

class MemoryWatchdog extends EventEmitter {
  #options
  #sampler
  #view
  #timer
  #observer
  #exitTimer
  #stopped = false

  constructor(options) {
    super()
    const opts = parseOptions(options)
    this.#options = opts
    const { levels, leak } = opts
    this.#sampler = callNative(
      () =>
        new native.MemorySampler(
          {
            intervalMs: opts.intervalMs,
            rss: levels.rss,
            heapUsed: levels.heapUsed,
            container: levels.container,
            exitGraceMs: opts.actions.has('exit') ? opts.graceMs : undefined,
            exitCode: opts.exitCode,
            leakWindowMs: leak?.windowMs,
            leakMinSamples: leak?.minSamples ?? 0,
            leakMinSlope: leak?.minSlope ?? 0,
          },
          (t) => this.#onTransition(t),
        ),
    )
    this.#view = this.#sampler.view()
    this.#sampleHeap()
    this.#timer = setInterval(() => this.#sampleHeap(), opts.heapIntervalMs)
    this.#timer.unref()
    this.#observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        if ((entry.detail?.kind ?? entry.kind) === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
          this.#afterMajorGc()
          break
        }
      }
    })
    this.#observer.observe({ entryTypes: ['gc'] })
    running.add(this)
  }

  // The latest figures, O(1): reads what the sampler thread published (no sampling, no native
  // call). Bytes; `null` where a figure is not available (no cgroup, no limit, heap not sampled).
  stats() {
    if (this.#stopped) throw new ClosedError('The memory watchdog is stopped')
    const v = this.#view
    let s
    for (let tries = 0; ; tries++) {
      const seq = v[SLOT.seq]
      s = {
        rss: nullable(v[SLOT.rss]),
        heapUsed: nullable(v[SLOT.heapUsed]),
        heapTotal: nullable(v[SLOT.heapTotal]),
        heapLimit: nullable(v[SLOT.heapLimit]),
        external: nullable(v[SLOT.external]),
        containerUsage: nullable(v[SLOT.containerUsage]),
        containerLimit: nullable(v[SLOT.containerLimit]),
        effectiveLimit: nullable(v[SLOT.effectiveLimit]),
        systemTotal: nullable(v[SLOT.systemTotal]),
        systemAvailable: nullable(v[SLOT.systemAvailable]),
        rssRatio: ratio(v[SLOT.rss], v[SLOT.effectiveLimit]),
        heapRatio: ratio(v[SLOT.heapUsed], v[SLOT.heapLimit]),
        containerRatio: ratio(v[SLOT.containerUsage], v[SLOT.containerLimit]),
        oom: nullable(v[SLOT.oom]),
        oomKill: nullable(v[SLOT.oomKill]),
        cgroupVersion: v[SLOT.cgroupVersion] > 0 ? v[SLOT.cgroupVersion] : null,
        levels: {
          rss: LEVELS[v[SLOT.levelRss]] ?? 'ok',
          heapUsed: LEVELS[v[SLOT.levelHeapUsed]] ?? 'ok',
          container: LEVELS[v[SLOT.levelContainer]] ?? 'ok',
        },
        level: this.level,
        samples: v[SLOT.samples],
        sampledAtMs: nullable(v[SLOT.sampledAtMs]),
        heapSampledAtMs: nullable(v[SLOT.heapSampledAtMs]),
        exitAtMs: nullable(v[SLOT.exitAtMs]),
      }
      // Seqlock: retry if the sampler wrote while we read (odd or changed sequence).
      if ((seq % 2 === 0 && v[SLOT.seq] === seq) || tries >= 100) break
    }
    return s
  }

  // The worst level over all metrics: 'ok' | 'warn' | 'critical'. Three array reads.
  get level() {
    const v = this.#view
    return LEVELS[Math.max(0, v[SLOT.levelRss], v[SLOT.levelHeapUsed], v[SLOT.levelContainer])] ?? 'ok'
  }

  get stopped() {
    return this.#stopped
  }

  // Stops the sampler thread and the heap sampling, cancels a pending `exit`. Idempotent.
  stop() {
    if (this.#stopped) return
    this.#stopped = true
    running.delete(this)
    clearInterval(this.#timer)
    clearTimeout(this.#exitTimer)
    this.#observer.disconnect()
    callNative(() => this.#sampler.stop())
  }

  #sampleHeap() {
    const h = v8.getHeapStatistics()
    this.#sampler.setHeap(h.used_heap_size, h.total_heap_size, h.heap_size_limit, h.external_memory ?? 0, Date.now())
    return h.used_heap_size
  }

  #afterMajorGc() {
    if (this.#stopped) return
    const used = this.#sampleHeap()
    const leak = this.#sampler.recordPostGc(used, Date.now())
    if (leak != null) {
      this.#emitEvent('leak', {
        type: 'leak',
        level: 'leak',
        metric: 'heapUsed',
        value: used,
        limit: this.#options.leak.minSlope,
        slope: leak.slope,
        samples: leak.samples,
        spanMs: leak.spanMs,
        stats: this.stats(),
      })
    }
  }

  #emitEvent(type, event) {
    try {
      this.emit(type, event)
    } finally {
      this.#options.onTrigger?.(event)
    }
  }

  #onTransition(t) {
    if (this.#stopped) return
    const event = {
      type: t.kind,
      level: t.kind === 'recover' ? t.to : t.kind,
      metric: t.metric,
      value: t.value,
      limit: t.limit,
      from: t.from,
      to: t.to,
      atMs: t.atMs,
      stats: this.stats(),
    }
    if (t.exitAtMs != null) event.exitAtMs = t.exitAtMs
    try {
      this.#emitEvent(t.kind, event)
    } finally {
      if (t.kind === 'critical') this.#actOnCritical(event)
    }
  }

  #actOnCritical(event) {
    const { actions, exitCode } = this.#options
    try {
      if (actions.has('heapSnapshot')) this.#heapSnapshot(event.stats)
    } finally {
      // In a worker, process.exit would end only the worker: the native thread ends the process.
      if (event.exitAtMs !== undefined && isMainThread && this.#exitTimer === undefined) {
        // A little before the native deadline, so the graceful path wins when the loop is free.
        const delay = Math.max(0, event.exitAtMs - Date.now() - 10)
        this.#exitTimer = setTimeout(() => process.exit(exitCode), delay)
      }
    }
  }

  // Writes the one heap snapshot of the process, or says why not. A snapshot needs about the
  // heap's size again in memory while V8 serializes, and about as much on disk.
  #heapSnapshot(stats) {
    const dir = this.#options.snapshotDir
    const heap = stats.heapUsed ?? v8.getHeapStatistics().used_heap_size
    let skipped = null
    let file = null
    // Read now: the sample's container figure can be a second old, and the heap may just have
    // grown by hundreds of MB.
    const headroom = native.memoryHeadroom() ?? Infinity
    let freeDisk = Infinity
    try {
      const s = fs.statfsSync(dir)
      freeDisk = s.bavail * s.bsize
    } catch {}
    if (headroom < heap) skipped = `memory: ${headroom} bytes free, the snapshot needs about ${heap}`
    else if (freeDisk < 2 * heap) skipped = `disk: ${freeDisk} bytes free in ${dir}, the snapshot needs about ${2 * heap}`
    else if (!native.claimHeapSnapshot()) skipped = 'a heap snapshot was already written by this process'
    else {
      try {
        file = v8.writeHeapSnapshot(path.join(dir, `bulwark-${process.pid}-${Date.now()}.heapsnapshot`))
      } catch (err) {
        skipped = `error: ${err.message}`
      }
    }
    this.emit('heapSnapshot', { path: file, skipped })
  }
}

// Starts a memory watchdog (see MemoryWatchdog and the README section "Memory watchdog").
function memoryWatchdog(options) {
  return new MemoryWatchdog(options)
}

module.exports = { memoryWatchdog, MemoryWatchdog }
