import type { IncomingMessage, ServerResponse } from 'node:http'

export interface PressureOptions {
  /**
   * Limit on event-loop delay in milliseconds (0 = no limit). With `eventLoopDelayPercentile: 'max'`
   * the value is the longest of: the iteration in progress, the last completed iteration, and the
   * longest iteration of the loop hook's last one-second window. Default `0`.
   */
  maxEventLoopDelay?: number
  /** `'max'` (default) or `99`: compare the window's p99 (and the iteration in progress) instead. */
  eventLoopDelayPercentile?: 'max' | 99
  /** Limit on event-loop utilisation over the last one-second window, 0–1 (0 = no limit). Default `0`. */
  maxEventLoopUtilization?: number
  /** Limit on V8 `heapUsed` in bytes (0 = no limit). Default `0`. */
  maxHeapUsedBytes?: number
  /** Limit on resident set size in bytes (0 = no limit). Default `0`. */
  maxRssBytes?: number
  /** Limit on container memory usage / container limit, 0–1 (0 = no limit; ignored without a container limit). Default `0`. */
  maxContainerMemoryRatio?: number
  /** A tripped limit recovers once its value is at or below `limit * recoverBelow` (hysteresis). Default `0.8`. */
  recoverBelow?: number
  /** Custom readiness check; resolving `false` or rejecting marks the gate overloaded until it passes again. */
  healthCheck?: () => boolean | Promise<boolean | unknown>
  /** How often `healthCheck` runs, in ms (on an unref'd timer). Default `5000`. */
  healthCheckInterval?: number
  /** Memory watchdog to read memory values from. Default: the gate starts its own (no levels) when a memory limit is set, and stops it on `close()`. */
  memoryWatchdog?: import('./memory').MemoryWatchdog
  /** Seconds sent in `Retry-After` with every 503. Default `10`. */
  retryAfter?: number
  /** `message` of the 503 JSON body. Default `'Service Unavailable'`. */
  message?: string
}

export interface PressureReason {
  metric: 'eventLoopDelay' | 'eventLoopUtilization' | 'heapUsedBytes' | 'rssBytes' | 'containerMemoryRatio' | 'healthCheck'
  value?: number
  limit?: number
  /** The value at or below which this limit recovers. */
  recoverAt?: number
  unit?: 'ms' | 'ratio' | 'bytes'
  /** For `healthCheck`: why it failed. */
  error?: string | null
}

export interface LoopState {
  /** How long the loop has been busy in the iteration in progress, in ms (0 while it waits for I/O). */
  blockedMs: number
  /** Busy time of the last completed iteration, in ms. */
  lastIterationMs: number
  /** Longest iteration in the last completed window, in ms. */
  windowMaxMs: number
  /** 99th percentile of iteration busy time in the last completed window, in ms. */
  windowP99Ms: number
  /** Event-loop utilisation over the last completed window, 0–1. */
  utilization: number
}

export interface PressureStatus {
  overloaded: boolean
  ready: boolean
  reasons: PressureReason[]
  /** The current value of every limited metric. */
  values: Partial<Record<'eventLoopDelay' | 'eventLoopUtilization' | 'heapUsedBytes' | 'rssBytes' | 'containerMemoryRatio', number>>
  loop: LoopState
  counts: { admitted: number; rejected: number }
}

export interface HealthListenOptions {
  /** Port for the native health responder; `0` picks a free one. Default `0`. */
  port?: number
  /** Address to bind. Default `'127.0.0.1'`. */
  host?: string
  /** `/health` answers 503 once the loop has been blocked this long, in ms. Default `1000`. */
  stallMs?: number
}

export interface HealthListener {
  port: number
  host: string
  /** Stops the responder thread and frees the port. */
  close(): void
}

export declare class PressureGate {
  private constructor()
  /** Whether new work should be rejected now: a few native reads, no sampling on the loop. */
  isOverloaded(): boolean
  /** Why the gate is (or is not) overloaded, with every value it compared. */
  status(): PressureStatus
  /** Runs the custom health check now; resolves with whether it passed. */
  refreshHealthCheck(): Promise<boolean>
  /** Answers `res` with 503, `Retry-After`, `Connection: close` and a small JSON body; the request body is not read. */
  reject(res: ServerResponse): void
  /** node:http / Connect / Express middleware. Without `next` it returns whether the request was admitted. */
  middleware(): (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => boolean
  /** Handler for `/ready`: 200 `{ status: 'ok' }` or 503 `{ status: 'overloaded', reasons }`. */
  readyHandler(): (req: IncomingMessage, res: ServerResponse) => void
  /** Handler for `/health` on the server's own loop (see `listenHealth` for a probe that sees stalls as they happen). */
  healthHandler(): (req: IncomingMessage, res: ServerResponse) => void
  /** Serves `GET /health` and `GET /ready` from a native thread on its own port, answering even while the loop is blocked. */
  listenHealth(options?: HealthListenOptions): HealthListener
  /** Prometheus text exposition of the gate and the monitors it reads. */
  toPrometheus(options?: { prefix?: string }): string
  /**
   * Registers prom-client metrics fed by this gate: `<prefix>bulwark_pressure_overloaded`,
   * `…_rejected_total`, `…_admitted_total`, and `…_value` / `…_limit` labelled by `metric`.
   * prom-client is an optional peer dependency (or pass `promClient`); throws `InvalidArgError`
   * when it is neither installed nor given.
   */
  registerMetrics(options?: { promClient?: unknown; register?: unknown; prefix?: string }): void
  /** Stops the health-check timer and the monitors the gate started. Idempotent. */
  close(): void
}

/** Creates a pressure gate. Option names follow `@fastify/under-pressure` where the meaning matches. */
export declare function pressure(options?: PressureOptions): PressureGate

export interface FastifyPressureOptions extends PressureOptions {
  /** Adds a readiness route (under-pressure's option): a path, or `{ url }`. */
  exposeStatusRoute?: string | { url?: string }
  /** Called instead of the 503 answer when overloaded (under-pressure's option). */
  pressureHandler?: (req: unknown, reply: unknown, type: string | undefined, value: number | undefined) => unknown
}

/**
 * Fastify plugin: `fastify.register(fastifyPressure, options)`. Decorates the instance with
 * `pressureGate`, `isUnderPressure()` and `memoryUsage()` (under-pressure's names).
 */
export declare function fastifyPressure(fastify: any, options: FastifyPressureOptions, done: (err?: Error) => void): void
