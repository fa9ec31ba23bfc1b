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
