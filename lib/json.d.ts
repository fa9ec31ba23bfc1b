/** What to do with a forbidden key, like secure-json-parse's `protoAction` / `constructorAction`. */
export type JsonKeyAction = 'error' | 'remove' | 'ignore'

/** Options every parse takes; on `createJsonPool` they become the pool's defaults. */
export interface JsonParseLimits {
  /** Largest body in UTF-8 bytes (a string's UTF-8 size). Default 16 MiB. Refused with `JsonTooLargeError` (413). */
  maxBytes?: number
  /** Deepest nesting of arrays and objects (the root container is depth 1). Default 256. `JsonTooDeepError` (400). */
  maxDepth?: number
  /** Most keys in one object, duplicates included. Default 100,000. `JsonTooManyKeysError` (400). */
  maxKeys?: number
  /** Most elements in one array. Default 1,000,000. `JsonArrayTooLongError` (400). */
  maxArrayLength?: number
  /** Longest string or key after unescaping, in UTF-16 units like `String#length`. Default 8 Mi. `JsonStringTooLongError` (400). */
  maxStringLength?: number
  /** Most values (containers and primitives) in the document. Default 4,000,000. `JsonTooManyNodesError` (400). */
  maxTotalNodes?: number
  /** `__proto__` keys (in any escaped spelling): reject (default), delete, or keep as own properties like `JSON.parse`. */
  protoAction?: JsonKeyAction
  /** `constructor` keys whose value has a `prototype` key: reject (default), delete, or keep. */
  constructorAction?: JsonKeyAction
  /** Buffer input that is not valid UTF-8: reject with `JsonInvalidUtf8Error` (default) or decode with U+FFFD like `buf.toString()`. */
  invalidUtf8?: 'error' | 'replace'
  /** Main-thread time per event-loop turn for building results, in ms. Default 1. */
  sliceMs?: number
  /** Bodies shorter than this (bytes, or string length) are validated and built synchronously. Default 16384. */
  inlineBelow?: number
  /** Rejects with `JsonTimeoutError` (503) when the whole parse (queue, scan, build) takes longer. Default 0 (none). */
  timeoutMs?: number
  /** Largest text handed to one `JSON.parse` call when a container can be split, in code units. Default 65536. */
  sliceSize?: number
}

export interface JsonPoolOptions extends JsonParseLimits {
  /** Native threads. Default `os.availableParallelism()`. */
  threads?: number
  /** Most parses waiting for a thread; more are refused with `PoolOverloadedError` (503). Default 1024. */
  maxQueue?: number
}

export interface JsonParseOptions extends JsonParseLimits {
  /** Rejects with `AbortError` (`cause` = the reason) when aborted. */
  signal?: AbortSignal
  /** Called like `JSON.parse`'s reviver (key, value, with `this` the holder), after the value is built. */
  reviver?: (this: any, key: string, value: any) => any
  /**
   * RFC 6901 JSON Pointers: only those parts are built. A string resolves with its value (or
   * `undefined`); an array resolves with an array of values in the same order. The whole
   * document is still validated and limit-checked.
   */
  select?: string | string[]
  /** Validate and check limits only; resolves with `undefined`. Default false. */
  validateOnly?: boolean
}

/** A latency histogram snapshot, in nanoseconds. */
export interface JsonHistogramSnapshot {
  count: number
  min: number
  max: number
  mean: number
  p50: number
  p90: number
  p99: number
}

export interface JsonPoolStats {
  threads: number
  maxQueue: number
  /** Parses waiting for a thread. */
  queueDepth: number
  /** Parses not yet settled (gathering, queued, scanning or building). */
  inFlight: number
  /** Parses resolved through the pool. */
  completed: number
  /** Parses done inline (below `inlineBelow`). */
  inline: number
  /** Rejections by reason. */
  rejected: {
    overloaded: number
    timeout: number
    aborted: number
    closed: number
    syntax: number
    limit: number
    forbidden: number
    utf8: number
  }
  /** Time from queueing to a thread picking the job up. */
  waitTime: JsonHistogramSnapshot
  /** Time a thread spent validating and planning. */
  parseTime: JsonHistogramSnapshot
  /** Main-thread time spent building results (summed over the slices of each parse). */
  buildTime: JsonHistogramSnapshot
}

export declare class JsonPool {
  /** Parses `input` off the event loop; resolves with exactly what `JSON.parse` returns. */
  parse(input: string | Buffer | Uint8Array, options?: JsonParseOptions): Promise<any>
  /** Rejects every pending parse with `ClosedError`, stops the threads. Idempotent. */
  close(): Promise<void>
  /** True after `close()`. */
  readonly closed: boolean
  stats(): JsonPoolStats
}

/** Creates a pool of native threads that validate JSON and plan its building. */
export declare function createJsonPool(options?: JsonPoolOptions): JsonPool

/** `parse` on a default pool created on first use (default options); it never keeps the process alive. */
export declare function parseJson(input: string | Buffer | Uint8Array, options?: JsonParseOptions): Promise<any>
