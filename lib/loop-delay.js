'use strict'
// Event-loop delay: a drop-in for `perf_hooks.monitorEventLoopDelay()` that records every loop
// iteration's blocking time (native libuv prepare hook, see src/loop_delay and src/loop_hooks.rs)
// instead of sampling with a timer. Values are nanoseconds, like Node's IntervalHistogram.

const native = require('./native')
const { callNative, promClientFrom } = require('./internal')
const { InvalidArgError } = require('./errors')
const { validateObject, validateNumber, validateBoolean, validateString } = require('./validate')

const kNative = Symbol('bulwark.loopDelay.native')
const DEFAULT_HIGHEST = 3_600_000_000_000 // 1 hour in ns
const QUANTILES = [0.5, 0.9, 0.99, 0.999]
const BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

class EventLoopDelayHistogram {
  constructor(handle) {
    this[kNative] = handle
  }

  // --- perf_hooks IntervalHistogram surface -----------------------------------------------
  /** Starts recording; false if already enabled. */
  enable() {
    return callNative(() => this[kNative].enable())
  }

  /** Stops recording and releases the loop hook; false if it was not enabled. */
  disable() {
    return callNative(() => this[kNative].disable())
  }

  reset() {
    callNative(() => this[kNative].reset())
  }

  get enabled() {
    return this[kNative].enabled
  }

  get min() {
    return this[kNative].stats()[0]
  }

  get max() {
    return this[kNative].stats()[1]
  }

  get mean() {
    return this[kNative].stats()[2]
  }

  get stddev() {
    return this[kNative].stats()[3]
  }

  get count() {
    return this[kNative].stats()[4]
  }

  get exceeds() {
    return this[kNative].stats()[5]
  }

  get minBigInt() {
    return BigInt(this.min)
  }

  get maxBigInt() {
    return BigInt(this.max)
  }

  get countBigInt() {
    return BigInt(this.count)
  }

  get exceedsBigInt() {
    return BigInt(this.exceeds)
  }

  percentile(percentile) {
    validatePercentile(percentile)
    return this[kNative].percentile(percentile)
  }

  percentileBigInt(percentile) {
    return BigInt(this.percentile(percentile))
  }

  get percentiles() {
    const flat = this[kNative].percentiles()
    const map = new Map()
    for (let i = 0; i < flat.length; i += 2) map.set(flat[i], flat[i + 1])
    return map
  }

  get percentilesBigInt() {
    const map = new Map()
    for (const [p, v] of this.percentiles) map.set(p, BigInt(v))
    return map
  }

  // --- beyond Node ----------------------------------------------------------------------------
  /**
   * A detached copy of the values so far (it does not record). With `reset: true` this
   * histogram starts over in the same step: consecutive snapshots cover consecutive windows with
   * no iteration lost or counted twice.
   */
  snapshot(options) {
    const { reset = false } = validateObject(options, 'options')
    validateBoolean(reset, 'options.reset')
    return new EventLoopDelayHistogram(callNative(() => this[kNative].snapshot(reset)))
  }

  /** Event-loop utilisation (busy / wall, 0..1) since enable()/reset(), or over a snapshot's window. */
  utilization() {
    return callNative(() => this[kNative].utilization())
  }

  /** HdrHistogram V2 compressed encoding, base64 (hdr-histogram-js and HdrHistogram Java decode it). */
  encode() {
    return callNative(() => this[kNative].encode())
  }

  /** Adds another histogram: an `encode()` string (or any V2 HdrHistogram base64) or a histogram of this kind. */
  merge(other) {
    if (typeof other === 'string') {
      callNative(() => this[kNative].mergeEncoded(other))
    } else if (other instanceof EventLoopDelayHistogram) {
      const source = other === this ? this.snapshot() : other
      callNative(() => this[kNative].mergeFrom(source[kNative]))
    } else {
      throw new InvalidArgError(
        'merge() takes an encoded histogram string or an EventLoopDelayHistogram',
      )
    }
    return this
  }

  toJSON() {
    return {
      unit: 'ns',
      count: this.count,
      min: this.count === 0 ? null : this.min,
      max: this.max,
      mean: this.count === 0 ? null : this.mean,
      stddev: this.count === 0 ? null : this.stddev,
      exceeds: this.exceeds,
      percentiles: Object.fromEntries(this.percentiles),
      utilization: this.utilization(),
    }
  }

  /**
   * Prometheus text exposition: `<name>_seconds` (a histogram with buckets, sum and count) and
   * `<name>_quantile_seconds` (a gauge per quantile).
   */
  toPrometheus(options) {
    const { name = 'nodejs_eventloop_blocking', labels = {} } = validateObject(options, 'options')
    validateString(name, 'options.name')
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) {
      throw new InvalidArgError(`The "options.name" option is not a valid metric name. Received ${JSON.stringify(name)}`)
    }
    validateObject(labels, 'options.labels')
    const base = Object.entries(labels).map(([k, v]) => {
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k)) throw new InvalidArgError(`Invalid label name ${JSON.stringify(k)}`)
      return `${k}="${String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`
    })
    const fmtLabels = (extra) => {
      const all = extra ? [...base, extra] : base
      return all.length === 0 ? '' : `{${all.join(',')}}`
    }
    const h = this[kNative]
    const [, , mean, , count] = h.stats()
    const counts = h.countsAtOrBelow(BUCKETS_S.map((s) => s * 1e9))
    const lines = [
      `# HELP ${name}_seconds Event-loop blocking time per loop iteration.`,
      `# TYPE ${name}_seconds histogram`,
    ]
    BUCKETS_S.forEach((le, i) => lines.push(`${name}_seconds_bucket${fmtLabels(`le="${le}"`)} ${counts[i]}`))
    lines.push(`${name}_seconds_bucket${fmtLabels('le="+Inf"')} ${count}`)
    lines.push(`${name}_seconds_sum${fmtLabels()} ${count === 0 ? 0 : (mean * count) / 1e9}`)
    lines.push(`${name}_seconds_count${fmtLabels()} ${count}`)
    lines.push(`# HELP ${name}_quantile_seconds Event-loop blocking time per loop iteration, quantiles.`)
    lines.push(`# TYPE ${name}_quantile_seconds gauge`)
    for (const q of QUANTILES) {
      lines.push(`${name}_quantile_seconds${fmtLabels(`quantile="${q}"`)} ${h.percentile(q * 100) / 1e9}`)
    }
    return lines.join('\n') + '\n'
  }
}

function validatePercentile(p) {
  validateNumber(p, 'percentile', { min: Number.MIN_VALUE, max: 100 })
}

/**
 * Like `perf_hooks.monitorEventLoopDelay()`, but every loop iteration is recorded with its true
 * blocking time. Created disabled, like Node's: call `enable()`.
 */
function monitorEventLoopDelay(options) {
  const opts = validateObject(options, 'options')
  const significantFigures = validateNumber(opts.significantFigures, 'options.significantFigures', {
    min: 1,
    max: 5,
    integer: true,
    fallback: 3,
  })
  const highest = validateNumber(opts.highestTrackableValue, 'options.highestTrackableValue', {
    min: 2000,
    max: Number.MAX_SAFE_INTEGER,
    integer: true,
    fallback: DEFAULT_HIGHEST,
  })
  // `resolution` is accepted (and ignored) so perf_hooks call sites can be swapped in unchanged.
  if (opts.resolution !== undefined) validateNumber(opts.resolution, 'options.resolution', { min: 1 })
  return new EventLoopDelayHistogram(
    callNative(() => new native.LoopDelayNative(significantFigures, highest)),
  )
}

/**
 * The loop's pressure right now, read from the loop hook's atomics (no sampling, O(1)). Starts the
 * hook on first use in this thread; it stays until the thread's environment ends.
 */
function loopPressure() {
  return callNative(native.loopPressure)
}

/**
 * Registers prom-client gauges named like prom-client's own event-loop lag metrics
 * (`nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`), fed by a bulwark monitor.
 * Each scrape reads the window and resets it. prom-client is an optional peer dependency: it is
 * required here, not when bulwark loads. Returns the monitor (call `disable()` to stop).
 */
function loopDelayCollector(options) {
  const opts = validateObject(options, 'options')
  const prefix = validateString(opts.prefix, 'options.prefix', '')
  const client = validateObject(promClientFrom(opts, 'loopDelayCollector'), 'options.promClient')
  const labels = validateObject(opts.labels, 'options.labels')
  const labelNames = Object.keys(labels)
  const monitor = opts.monitor instanceof EventLoopDelayHistogram ? opts.monitor : monitorEventLoopDelay()
  monitor.enable()
  let values = null
  const readOnce = () => {
    if (values !== null) return values
    const snap = monitor.snapshot({ reset: true })
    const none = snap.count === 0
    values = {
      min: none ? 0 : snap.min / 1e9,
      max: snap.max / 1e9,
      mean: none ? 0 : snap.mean / 1e9,
      stddev: none ? 0 : snap.stddev / 1e9,
      p50: snap.percentile(50) / 1e9,
      p90: snap.percentile(90) / 1e9,
      p99: snap.percentile(99) / 1e9,
    }
    // One scrape collects the seven gauges in the same turn: read (and reset) the window once.
    setImmediate(() => (values = null))
    return values
  }
  for (const key of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']) {
    const config = {
      name: `${prefix}nodejs_eventloop_lag_${key}_seconds`,
      help: `The ${key} of the event-loop blocking time per iteration (bulwark).`,
      labelNames,
      collect() {
        this.set(labels, readOnce()[key])
      },
    }
    if (opts.register !== undefined) config.registers = [opts.register]
    // eslint-disable-next-line no-new
    new client.Gauge(config)
  }
  return monitor
}

module.exports = { monitorEventLoopDelay, EventLoopDelayHistogram, loopPressure, loopDelayCollector }
