import { EventEmitter } from 'node:events'

/** Bytes, or a percentage string such as `'85%'` of the metric's base limit. */
export type MemoryLimit = number | `${number}%`

/** Thresholds of one metric. At least one of `warn` / `critical` turns the metric on. */
export interface MemoryLevelLimits {
  /** Enter threshold of `warn`. */
  warn?: MemoryLimit
  /** Enter threshold of `critical` (must not be below `warn` when both use the same unit). */
  critical?: MemoryLimit
  /** A level is left when the value stays below `threshold * recoverBelow`. Default: the
   * watchdog's `recoverBelow` (0.9). Range 0.01–1. */
  recoverBelow?: number
  /** How long a crossing (up or down) must hold before it counts, ms. Default: the watchdog's
   * `sustainMs` (500). */
  sustainMs?: number
}

export interface MemoryWatchdogOptions {
  /** Native sampling interval, ms. Default 100. Range 1–60000. */
  intervalMs?: number
  /** V8 heap sampling interval on the JS thread, ms (the heap is also sampled after every major
   * GC). Default 500. */
  heapIntervalMs?: number
  /**
   * Limits per metric. Percentages are of: the effective limit (smallest of the container limit
   * and physical memory) for `rss`; `heap_size_limit` for `heapUsed`; the container limit for
   * `container` (no container limit: percentage thresholds stay inactive). When given, only the
   * metrics it names are watched; `false` turns one off.
   * Default: `{ rss, heapUsed, container }` each `{ warn: '85%', critical: '95%' }`.
   */
  limits?: {
    rss?: MemoryLevelLimits | false
    heapUsed?: MemoryLevelLimits | false
    container?: MemoryLevelLimits | false
  }
  /** Default `recoverBelow` for every metric. Default 0.9. */
  recoverBelow?: number
  /** Default `sustainMs` for every metric. Default 500. */
  sustainMs?: number
  /** What to do on `critical`. Default: nothing (events only). */
  action?: 'heapSnapshot' | 'exit' | Array<'heapSnapshot' | 'exit'>
  /** With `exit`: time listeners get for cleanup before the process ends, ms. Default 3000. */
  graceMs?: number
  /** With `exit`: the exit code. Default 1. */
  exitCode?: number
  /** With `heapSnapshot`: an existing directory. Default `process.cwd()`. */
  snapshotDir?: string
  /** Leak trend of post-GC heap; `false` turns it off. */
  leak?:
    | false
    | {
        /** Window of the regression, ms. Default 600000 (10 min). Min 100. */
        windowMs?: number
        /** Post-GC samples needed in the window. Default 10. */
        minSamples?: number
        /** Minimum slope to report, bytes per minute. Default 1048576 (1 MiB/min). */
        minSlope?: number
      }
  /** Called with every `warn`, `critical`, `recover` and `leak` event, after the listeners. */
  onTrigger?: (event: MemoryEvent) => void
}

/** What `stats()` returns. Bytes; `null` where a figure is not available. */
export interface MemoryStats {
  /** Resident set size of the process (native sample). */
  rss: number | null
  heapUsed: number | null
  heapTotal: number | null
  /** V8 `heap_size_limit`. */
  heapLimit: number | null
  /** V8 external memory (ArrayBuffers, Buffers). */
  external: number | null
  /** Anonymous memory of the cgroup (v2 `anon`, v1 `total_rss`), page cache excluded. */
  containerUsage: number | null
  /** The cgroup limit; `null` when there is none (0, "max", UINT64_MAX, above physical memory). */
  containerLimit: number | null
  /** Smallest real limit: the container limit, else physical memory. */
  effectiveLimit: number | null
  systemTotal: number | null
  systemAvailable: number | null
  /** rss / effectiveLimit. */
  rssRatio: number | null
  /** heapUsed / heapLimit. */
  heapRatio: number | null
  /** containerUsage / containerLimit; `null` without a container limit. */
  containerRatio: number | null
  /** cgroup v2 `memory.events` counters (`null` on v1 or without a cgroup). */
  oom: number | null
  oomKill: number | null
  cgroupVersion: 1 | 2 | null
  levels: { rss: MemoryLevel; heapUsed: MemoryLevel; container: MemoryLevel }
  /** The worst of `levels`. */
  level: MemoryLevel
  /** Native samples taken so far. */
  samples: number
  /** Wall-clock time of the last native sample / heap sample, ms since the epoch. */
  sampledAtMs: number | null
  heapSampledAtMs: number | null
  /** When an `exit` is pending: the time the process will be ended. */
  exitAtMs: number | null
}

export type MemoryLevel = 'ok' | 'warn' | 'critical'
export type MemoryMetric = 'rss' | 'heapUsed' | 'container'

export interface MemoryEvent {
  type: 'warn' | 'critical' | 'recover' | 'leak'
  /** `warn` / `critical`: that level; `recover`: the level reached (`'ok'` or `'warn'`);
   * `leak`: `'leak'`. */
  level: MemoryLevel | 'leak'
  metric: MemoryMetric
  /** The sampled value, bytes (for `leak`: the last post-GC heapUsed). */
  value: number
  /** The threshold crossed: enter threshold for warn/critical, exit threshold for recover,
   * `minSlope` for leak. */
  limit: number
  /** Level before/after (warn, critical, recover). */
  from?: MemoryLevel
  to?: MemoryLevel
  /** Wall-clock time of the native decision, ms (warn, critical, recover). */
  atMs?: number
  /** With `action: 'exit'` on critical: when the process will be ended. */
  exitAtMs?: number
  /** leak: bytes per minute, samples and time span of the regression. */
  slope?: number
  samples?: number
  spanMs?: number
  stats: MemoryStats
}

export interface MemoryHeapSnapshotEvent {
  /** The file written, or `null` when skipped. */
  path: string | null
  /** Why no snapshot was written (memory or disk short, already written, error), else `null`. */
  skipped: string | null
}

/**
 * Watches RSS, the V8 heap and the container's memory from a native thread. Emits `warn`,
 * `critical`, `recover`, `leak` (a {@link MemoryEvent}) and, with `action: 'heapSnapshot'`,
 * `heapSnapshot`. Runs until `stop()`, even when no reference is kept, but never keeps the
 * process alive.
 */
export declare class MemoryWatchdog extends EventEmitter {
  /** Use {@link memoryWatchdog}. Throws `InvalidArgError` / `OutOfRangeError` on bad options. */
  constructor(options?: MemoryWatchdogOptions)
  /** The latest samples, O(1) (no sampling, no native call). Throws `ClosedError` after stop(). */
  stats(): MemoryStats
  /** The worst current level over all metrics, O(1). */
  readonly level: MemoryLevel
  readonly stopped: boolean
  /** Stops sampling, cancels a pending `exit`, releases the native thread. Idempotent. */
  stop(): void
  on(event: 'warn' | 'critical' | 'recover' | 'leak', listener: (event: MemoryEvent) => void): this
  on(event: 'heapSnapshot', listener: (event: MemoryHeapSnapshotEvent) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once(event: 'warn' | 'critical' | 'recover' | 'leak', listener: (event: MemoryEvent) => void): this
  once(event: 'heapSnapshot', listener: (event: MemoryHeapSnapshotEvent) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

/** Starts a memory watchdog. */
export declare function memoryWatchdog(options?: MemoryWatchdogOptions): MemoryWatchdog
