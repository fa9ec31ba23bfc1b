export interface MonitorEventLoopDelayOptions {
  /**
   * Significant decimal digits the histogram keeps (1..5). Default `3` (values within 0.1%).
   */
  significantFigures?: number
  /**
   * Largest value recorded, in nanoseconds; larger iterations are counted in `exceeds` only.
   * Default `3_600_000_000_000` (1 hour). At least 2000.
   */
  highestTrackableValue?: number
  /** Accepted for compatibility with `perf_hooks.monitorEventLoopDelay` and ignored (no timer). */
  resolution?: number
}

export interface SnapshotOptions {
  /** Start this histogram over in the same step (no iteration lost between windows). Default `false`. */
  reset?: boolean
}

export interface PrometheusOptions {
  /** Metric name prefix: emits `<name>_seconds` (histogram) and `<name>_quantile_seconds`. Default `'nodejs_eventloop_blocking'`. */
  name?: string
  /** Constant labels added to every sample. Default `{}`. */
  labels?: Record<string, string | number>
}

export interface EventLoopDelayJSON {
  unit: 'ns'
  count: number
  min: number | null
  max: number
  mean: number | null
  stddev: number | null
  exceeds: number
  percentiles: Record<string, number>
  utilization: number
}

/**
 * Per-iteration event-loop blocking time, in nanoseconds. Compatible with Node's
 * `IntervalHistogram` (`perf_hooks.monitorEventLoopDelay()`): same members, same units, same values
 * for an empty histogram (`min` = 9223372036854776000, `max` = 0, `mean`/`stddev` = NaN).
 */
export declare class EventLoopDelayHistogram {
  private constructor()
  /** Starts recording this thread's loop. Returns `false` if it was already enabled. */
  enable(): boolean
  /** Stops recording and releases the loop hook. Returns `false` if it was not enabled. */
  disable(): boolean
  /** Clears the values and restarts the utilisation window. */
  reset(): void
  /** Whether it is recording. */
  readonly enabled: boolean
  /** Shortest iteration recorded (exact), ns. */
  readonly min: number
  /** Longest iteration recorded (exact), ns. */
  readonly max: number
  readonly mean: number
  readonly stddev: number
  /** Iterations recorded. */
  readonly count: number
  /** Iterations longer than `highestTrackableValue` (not recorded). */
  readonly exceeds: number
  readonly minBigInt: bigint
  readonly maxBigInt: bigint
  readonly countBigInt: bigint
  readonly exceedsBigInt: bigint
  /** Value at `percentile` (0 < p <= 100), ns; never above `max`. Throws `OutOfRangeError` otherwise. */
  percentile(percentile: number): number
  percentileBigInt(percentile: number): bigint
  /** Percentile → value, like Node's (ticks halving the distance to 100). `{100 => 0}` when empty. */
  readonly percentiles: Map<number, number>
  readonly percentilesBigInt: Map<number, bigint>
  /** A detached copy (it does not record); `reset: true` starts this one over in the same step. */
  snapshot(options?: SnapshotOptions): EventLoopDelayHistogram
  /** Event-loop utilisation, busy / wall (0..1), since `enable()`/`reset()` (or over a snapshot's window). */
  utilization(): number
  /** HdrHistogram V2 compressed encoding, base64 (decoded by hdr-histogram-js and HdrHistogram Java). */
  encode(): string
  /**
   * Adds another histogram's values: an encoded string (any HdrHistogram V2 base64) or an
   * `EventLoopDelayHistogram`. Returns `this`. Throws `InvalidArgError` for anything else.
   */
  merge(other: string | EventLoopDelayHistogram): this
  toJSON(): EventLoopDelayJSON
  /** Prometheus text exposition (buckets, sum, count, and quantiles 0.5/0.9/0.99/0.999), in seconds. */
  toPrometheus(options?: PrometheusOptions): string
}

/**
 * Like `perf_hooks.monitorEventLoopDelay()`, but records every loop iteration's true blocking time
 * (a native libuv prepare hook; nothing runs while the loop is idle). Created disabled: call
 * `enable()`. Works in worker threads (each measures its own loop); never keeps the process alive.
 */
export declare function monitorEventLoopDelay(options?: MonitorEventLoopDelayOptions): EventLoopDelayHistogram

export interface LoopPressure {
  /** How long the iteration in progress has been busy, ms (0 while the loop waits for I/O). */
  blockedMs: number
  /** Longest iteration of the last completed window, ms. */
  windowMaxMs: number
  /** 99th percentile iteration of the last completed window, ms (2 significant figures). */
  windowP99Ms: number
  /** Event-loop utilisation of the last completed window (0..1). */
  windowUtilization: number
  /** Iterations in the last completed window. */
  windowIterations: number
  /** Window length, ms (1000). */
  windowMs: number
  /** ms since that window ended; above 2 × `windowMs` the loop was idle (or is blocked: see `blockedMs`). */
  windowAgeMs: number
}

/**
 * This thread's loop pressure, read in O(1) from the loop hook's atomics (for load gates). Starts
 * the hook on first use; it stays until the thread's environment ends.
 */
export declare function loopPressure(): LoopPressure

export interface LoopDelayCollectorOptions {
  /** The prom-client module. Default: `require('prom-client')` (an optional peer dependency). */
  promClient?: unknown
  /** Registry to register the gauges in. Default: prom-client's global registry. */
  register?: unknown
  /** Prefix for the metric names. Default `''`. */
  prefix?: string
  /** Constant labels. Default `{}`. */
  labels?: Record<string, string | number>
  /** Monitor to read. Default: a new one (enabled here). */
  monitor?: EventLoopDelayHistogram
}

/**
 * Registers prom-client gauges named like prom-client's own
 * (`nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`), fed by a bulwark monitor
 * that each scrape reads and resets. Returns the monitor; `disable()` it to stop.
 * Throws `InvalidArgError` when prom-client is neither installed nor given.
 */
export declare function loopDelayCollector(options?: LoopDelayCollectorOptions): EventLoopDelayHistogram
