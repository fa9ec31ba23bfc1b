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
