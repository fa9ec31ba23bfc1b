/** Base of every error bulwark throws. `err instanceof BulwarkError` is true for all of them. */
export declare class BulwarkError extends Error {
  /** Stable machine-readable code, always `ERR_BULWARK_…`. */
  readonly code: string
  /** HTTP status that fits the failure, where one does (413, 408, 400, 503, 500). */
  readonly statusCode?: number
}

/** An argument or option has the wrong type or shape. Also `instanceof TypeError`. */
export declare class InvalidArgError extends TypeError {
  readonly code: 'ERR_BULWARK_INVALID_ARG'
}
/** An argument or option is outside its allowed range. Also `instanceof RangeError`. */
export declare class OutOfRangeError extends RangeError {
  readonly code: 'ERR_BULWARK_OUT_OF_RANGE'
}
/** The object was stopped or closed. */
export declare class ClosedError extends BulwarkError {
  readonly code: 'ERR_BULWARK_CLOSED'
}
/** A bug in bulwark (for example a Rust panic caught at the boundary); `cause` holds the original. */
export declare class InternalError extends BulwarkError {
  readonly code: 'ERR_BULWARK_INTERNAL'
  readonly statusCode: 500
}
/** The operation was aborted through its `AbortSignal`; `cause` is the signal's reason. */
export declare class AbortError extends BulwarkError {
  readonly name: 'AbortError'
  readonly code: 'ERR_BULWARK_ABORTED'
}

// --- stream guards

/** Fields every stream-guard error carries. */
export interface StreamGuardErrorDetails {
  /** Bytes seen when the limit was hit (for a byte limit: including the chunk that crossed it). */
  readonly bytes: number
  /** Milliseconds since the guard started. */
  readonly elapsedMs: number
  /** The limit that was crossed: bytes for 413, milliseconds for deadline/idle, bytes/s for too slow. */
  readonly limit: number
  /** raw-body compatible: `'entity.too.large'` or `'request.timeout'`. */
  readonly type: string
  /** raw-body/http-errors compatible: the message is safe to show to the client. Always `true`. */
  readonly expose: true
}
/** A body (declared by `Content-Length` or received) is larger than `maxBytes`. */
export declare class PayloadTooLargeError extends BulwarkError implements StreamGuardErrorDetails {
  readonly code: 'ERR_BULWARK_PAYLOAD_TOO_LARGE'
  readonly statusCode: 413
  readonly bytes: number
  readonly elapsedMs: number
  readonly limit: number
  readonly type: 'entity.too.large'
  readonly expose: true
  /** The declared `Content-Length`, when the request was rejected from it before reading a byte. */
  readonly expected?: number
}
/** Base of the 408 stream-guard errors (`DeadlineError`, `IdleTimeoutError`, `TooSlowError`). */
export declare class RequestTimeoutError extends BulwarkError implements StreamGuardErrorDetails {
  readonly code: 'ERR_BULWARK_DEADLINE' | 'ERR_BULWARK_IDLE' | 'ERR_BULWARK_TOO_SLOW'
  readonly statusCode: 408
  readonly bytes: number
  readonly elapsedMs: number
  readonly limit: number
  readonly type: 'request.timeout'
  readonly expose: true
}
/** The whole transfer took longer than `deadlineMs`. */
export declare class DeadlineError extends RequestTimeoutError {
  readonly code: 'ERR_BULWARK_DEADLINE'
}
/** No byte arrived for `idleTimeoutMs` (time the consumer applied backpressure does not count). */
export declare class IdleTimeoutError extends RequestTimeoutError {
  readonly code: 'ERR_BULWARK_IDLE'
}
/** After `graceMs`, the rate over the sliding window fell below `minBytesPerSecond`. */
export declare class TooSlowError extends RequestTimeoutError {
  readonly code: 'ERR_BULWARK_TOO_SLOW'
  /** The measured rate in bytes per second. */
  readonly rate: number
  /** The span of unpaused time the rate was measured over, in milliseconds. */
  readonly windowMs: number
}
/** `withTimeout()` or `budget()` ran out of time. */
export declare class TimeoutError extends BulwarkError {
  readonly name: 'TimeoutError'
  readonly code: 'ERR_BULWARK_TIMEOUT'
  /** The time limit in milliseconds. */
  readonly timeoutMs: number
  /** Milliseconds elapsed when the error was created. */
  readonly elapsedMs: number
}

// --- pressure gate

/** What the pressure gate's 503 answers carry (`code` in their JSON body). */
export declare class OverloadedError extends BulwarkError {
  readonly code: 'ERR_BULWARK_OVERLOADED'
  readonly statusCode: 503
}
// --- json
/** Where a JSON text was refused: `position` is the JS string index, like `JSON.parse`'s. */
interface JsonErrorPosition {
  readonly position: number
  readonly line: number
  readonly column: number
}
/** Text that `JSON.parse` would refuse. Also `instanceof SyntaxError`. */
export declare class JsonSyntaxError extends SyntaxError implements JsonErrorPosition {
  readonly code: 'ERR_BULWARK_JSON_SYNTAX'
  readonly statusCode: 400
  readonly position: number
  readonly line: number
  readonly column: number
}
/** A Buffer that is not valid UTF-8 (with `invalidUtf8: 'error'`). Also `instanceof SyntaxError`. */
export declare class JsonInvalidUtf8Error extends SyntaxError implements JsonErrorPosition {
  readonly code: 'ERR_BULWARK_JSON_INVALID_UTF8'
  readonly statusCode: 400
  readonly position: number
  readonly line: number
  readonly column: number
}
/** A `__proto__` key, or `constructor` with a `prototype` key, with action `'error'`. Also `instanceof SyntaxError`. */
export declare class JsonForbiddenKeyError extends SyntaxError implements JsonErrorPosition {
  readonly code: 'ERR_BULWARK_JSON_FORBIDDEN_KEY'
  readonly statusCode: 400
  readonly position: number
  readonly line: number
  readonly column: number
}
/** Base of the JSON limit errors; `limit` is the limit that was exceeded. */
export declare class JsonLimitError extends BulwarkError implements JsonErrorPosition {
  readonly statusCode: 400 | 413
  readonly limit: number
  readonly position: number
  readonly line: number
  readonly column: number
}
/** More than `maxBytes`. */
export declare class JsonTooLargeError extends JsonLimitError {
  readonly code: 'ERR_BULWARK_JSON_TOO_LARGE'
  readonly statusCode: 413
}
/** Deeper than `maxDepth`. */
export declare class JsonTooDeepError extends JsonLimitError {
  readonly code: 'ERR_BULWARK_JSON_TOO_DEEP'
  readonly statusCode: 400
}
/** An object with more than `maxKeys` keys. */
export declare class JsonTooManyKeysError extends JsonLimitError {
  readonly code: 'ERR_BULWARK_JSON_TOO_MANY_KEYS'
  readonly statusCode: 400
}
/** An array longer than `maxArrayLength`. */
export declare class JsonArrayTooLongError extends JsonLimitError {
  readonly code: 'ERR_BULWARK_JSON_ARRAY_TOO_LONG'
  readonly statusCode: 400
}
/** A string or key longer than `maxStringLength`. */
export declare class JsonStringTooLongError extends JsonLimitError {
  readonly code: 'ERR_BULWARK_JSON_STRING_TOO_LONG'
  readonly statusCode: 400
}
/** More than `maxTotalNodes` values. */
export declare class JsonTooManyNodesError extends JsonLimitError {
  readonly code: 'ERR_BULWARK_JSON_TOO_MANY_NODES'
  readonly statusCode: 400
}
/** The pool's queue is full (`maxQueue`). */
export declare class PoolOverloadedError extends BulwarkError {
  readonly code: 'ERR_BULWARK_POOL_OVERLOADED'
  readonly statusCode: 503
}
/** A parse took longer than its `timeoutMs`; `timeoutMs` is set. */
export declare class JsonTimeoutError extends BulwarkError {
  readonly code: 'ERR_BULWARK_JSON_TIMEOUT'
  readonly statusCode: 503
  readonly timeoutMs: number
}

// --- regex
/** Invalid pattern or flags, as `new RegExp` would reject them. Also `instanceof SyntaxError`. */
export declare class RegexSyntaxError extends SyntaxError {
  readonly code: 'ERR_BULWARK_REGEX_SYNTAX'
}
/** The pattern needs backtracking (backreference, lookahead, lookbehind); the message names the
 * feature and its index in the source. Also `instanceof SyntaxError`. */
export declare class RegexUnsupportedError extends SyntaxError {
  readonly code: 'ERR_BULWARK_REGEX_UNSUPPORTED'
}
/** The compiled pattern exceeds the size (8 MiB NFA, repetition ≤ 100000) or nesting (200)
 * limits. Also `instanceof SyntaxError`. */
export declare class RegexTooLargeError extends SyntaxError {
  readonly code: 'ERR_BULWARK_REGEX_TOO_LARGE'
}
