import type { Transform, Readable } from 'node:stream'
import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * Limits shared by `guard`, `guardRequest`, `readBody` and `guardWebStream`. Every limit is off
 * unless given. Time limits are checked by shared tickers, not per-stream timers (period: a
 * quarter of the guard's smallest time limit or an eighth of its rate window, rounded down to a
 * power of two within 16–1024 ms), so a limit fires between `limit` and `limit` + 2 ticks. Time during which the consumer applies backpressure does not
 * count towards `idleTimeoutMs` or the rate; `deadlineMs` counts wall time. The clock starts when
 * the guard is created.
 */
export interface StreamGuardOptions {
  /** Maximum bytes passed on. The chunk that crosses it is not passed on; the stream fails with `PayloadTooLargeError` (413). Default: no limit. */
  maxBytes?: number
  /** Maximum wall time for the whole transfer, in ms (`DeadlineError`, 408). Default: no limit. */
  deadlineMs?: number
  /** Maximum time without a byte, in ms (`IdleTimeoutError`, 408). Default: no limit. */
  idleTimeoutMs?: number
  /** Minimum rate in bytes/s, enforced after `graceMs` over a sliding window of `rateWindowMs` (`TooSlowError`, 408). Default: 0 (off). Kestrel uses 240. */
  minBytesPerSecond?: number
  /** Time before the minimum rate is enforced, in ms. Default: 5000 (Kestrel's). */
  graceMs?: number
  /** Span the rate is measured over (8 sub-windows), in ms, at least 100. Default: `max(graceMs, 1000)`. */
  rateWindowMs?: number
  /** Aborting it fails the stream with `AbortError` (`cause` = the signal's reason). */
  signal?: AbortSignal
}

export interface GuardRequestOptions extends StreamGuardOptions {
  /** raw-body's name for `maxBytes`: a number of bytes or a size string such as `'100kb'` (1024-based). `maxBytes` wins when both are given. */
  limit?: number | string
  /**
   * When given, a violation is answered for you: 413/408 with a small JSON body and
   * `Connection: close`, after which node:http closes the socket (the unread rest of the body is
   * never read; a socket still open 1 s later is destroyed). On an abort (signal or client) the
   * request is destroyed instead.
   */
  res?: ServerResponse
}

export interface ReadBodyOptions extends GuardRequestOptions {
  /** Decode the body: a Buffer encoding such as `'utf8'`, or `true` for UTF-8. Default: return a Buffer. */
  encoding?: BufferEncoding | boolean | null
}

/** The Transform `guard()` returns. */
export interface StreamGuard extends Transform {
  /** Bytes seen so far (including a chunk that crossed `maxBytes`). */
  readonly bytes: number
}

/**
 * A Transform for `stream.pipeline` that enforces the limits. On a violation it is destroyed with
 * a typed error (`PayloadTooLargeError`, `DeadlineError`, `IdleTimeoutError`, `TooSlowError`,
 * `AbortError`) carrying `bytes`, `elapsedMs` and `limit`; `pipeline` then destroys the other
 * streams. Backpressure is preserved (plain Transform semantics).
 */
export declare function guard(options?: StreamGuardOptions): StreamGuard

/**
 * Guards a node:http request body (or any Readable). Returns the stream to read the body from.
 * A `Content-Length` over the limit fails the stream before a byte is read (`err.expected` holds
 * the declared size). Chunked bodies are counted as they arrive. A client that goes away fails it
 * with `AbortError` (`type: 'request.aborted'`). On a violation the request is unpiped and
 * paused; with `options.res` the client is answered and the connection closed.
 */
export declare function guardRequest(req: IncomingMessage | Readable, options?: GuardRequestOptions): StreamGuard

/** Reads a whole guarded body, like raw-body plus the time limits. Resolves with a Buffer, or a string with `encoding`. */
export declare function readBody(req: IncomingMessage | Readable, options: ReadBodyOptions & { encoding: BufferEncoding | true }): Promise<string>
export declare function readBody(req: IncomingMessage | Readable, options?: ReadBodyOptions): Promise<Buffer>

/**
 * A `TransformStream` with the same limits, e.g. `(await fetch(url)).body.pipeThrough(guardWebStream({ maxBytes }))`.
 * Chunks may be `Uint8Array`, any `ArrayBufferView`, `ArrayBuffer` or string (counted in UTF-8 bytes).
 */
export declare function guardWebStream(options?: StreamGuardOptions): TransformStream<Uint8Array, Uint8Array>

export interface WithTimeoutOptions {
  /** Aborting it rejects with `AbortError` (`cause` = the signal's reason). */
  signal?: AbortSignal
}
/**
 * Settles like `promise`, or rejects with `TimeoutError` after `ms`, or with `AbortError` when
 * `options.signal` aborts. Given a function, calls it with an `AbortSignal` that aborts (reason:
 * that error) when the race is lost, so the work itself can stop.
 */
export declare function withTimeout<T>(promise: PromiseLike<T> | ((signal: AbortSignal) => PromiseLike<T>), ms: number, options?: WithTimeoutOptions): Promise<T>

export interface Budget {
  /** Milliseconds left, never below 0. */
  remaining(): number
  /** Milliseconds since the budget was created. */
  elapsed(): number
  /** Throws `TimeoutError` once the budget is spent, `AbortError` if the linked signal aborted. */
  check(): void
  /** Aborts (reason: a `TimeoutError`) when the budget is spent; created on first access; never keeps the process alive. */
  readonly signal: AbortSignal
}
/** A time budget of `ms` for loops and parsers; `options.signal` links a parent signal. */
export declare function budget(ms: number, options?: WithTimeoutOptions): Budget

/** The shared tickers' state: how many guards they visit, and the tick periods in use in ms (ascending; empty when none runs). */
export declare function streamGuardStats(): { activeGuards: number; tickPeriodsMs: number[] }
