'use strict'
// The one errors module: every error bulwark throws or rejects with is an instance of a class
// exported here, with a stable `code` (`ERR_BULWARK_…`) and, where an HTTP status fits, a
// `statusCode`. Native errors arrive with `code` set from the Rust `ErrorCode` enum
// (src/error.rs) and lib/internal.js maps each code to the class defined here.
// Add a code in src/error.rs and its class here; nowhere else.

const { BulwarkError, defineError } = require('./internal')

// --- shared by every capability -------------------------------------------------------------

const InvalidArgError = defineError('InvalidArgError', {
  base: TypeError,
  code: 'ERR_BULWARK_INVALID_ARG',
})
const OutOfRangeError = defineError('OutOfRangeError', {
  base: RangeError,
  code: 'ERR_BULWARK_OUT_OF_RANGE',
})
const ClosedError = defineError('ClosedError', {
  code: 'ERR_BULWARK_CLOSED',
  defaultMessage: 'The object is closed',
})
const InternalError = defineError('InternalError', {
  code: 'ERR_BULWARK_INTERNAL',
  statusCode: 500,
})
// Named `AbortError` like the errors Node and fetch reject with, so `err.name === 'AbortError'`
// checks keep working; `cause` is the signal's reason.
const AbortError = defineError('AbortError', {
  code: 'ERR_BULWARK_ABORTED',
  defaultMessage: 'The operation was aborted',
})

// --- stream guards ----------------------------------------------------------------------------
// Thrown by guard(), guardRequest(), readBody() and guardWebStream() (lib/stream-guard.js). Each
// carries `bytes` (bytes seen, including the chunk that crossed a byte limit), `elapsedMs` and
// `limit`, plus raw-body's `type`/`expose` fields so Express-style error handlers work unchanged.

const PayloadTooLargeError = defineError('PayloadTooLargeError', {
  code: 'ERR_BULWARK_PAYLOAD_TOO_LARGE',
  statusCode: 413,
  defaultMessage: 'The request body is larger than the limit',
})
// Base of the three 408 errors below; never thrown itself, use it for `instanceof` checks.
const RequestTimeoutError = defineError('RequestTimeoutError', {
  statusCode: 408,
  defaultMessage: 'The request body took too long',
})
const DeadlineError = defineError('DeadlineError', {
  base: RequestTimeoutError,
  code: 'ERR_BULWARK_DEADLINE',
  defaultMessage: 'The transfer did not finish within its deadline',
})
const IdleTimeoutError = defineError('IdleTimeoutError', {
  base: RequestTimeoutError,
  code: 'ERR_BULWARK_IDLE',
  defaultMessage: 'No data arrived within the idle timeout',
})
const TooSlowError = defineError('TooSlowError', {
  base: RequestTimeoutError,
  code: 'ERR_BULWARK_TOO_SLOW',
  defaultMessage: 'Data arrived below the minimum rate',
})
// withTimeout() and budget(): a time limit that is not about an HTTP body (no statusCode).
// Named like the DOMException AbortSignal.timeout() uses, so `err.name === 'TimeoutError'` holds.
const TimeoutError = defineError('TimeoutError', {
  code: 'ERR_BULWARK_TIMEOUT',
  defaultMessage: 'The operation timed out',
})

// --- pressure gate ---------------------------------------------------------------------------

// What the gate answers rejected requests with (its JSON body carries this code).
const OverloadedError = defineError('OverloadedError', {
  code: 'ERR_BULWARK_OVERLOADED',
  statusCode: 503,
  defaultMessage: 'Service Unavailable',
})

// --- json -----------------------------------------------------------------------------------
// Refusals of the JSON pool (lib/json.js). Text `JSON.parse` would refuse, bad UTF-8 and
// forbidden keys are also `SyntaxError`s (what `JSON.parse` and secure-json-parse throw); the
// limit errors share `JsonLimitError` and carry `limit`. All carry `position`, `line`, `column`
// where the text was refused.
const JsonSyntaxError = defineError('JsonSyntaxError', {
  base: SyntaxError,
  code: 'ERR_BULWARK_JSON_SYNTAX',
  statusCode: 400,
})
const JsonInvalidUtf8Error = defineError('JsonInvalidUtf8Error', {
  base: SyntaxError,
  code: 'ERR_BULWARK_JSON_INVALID_UTF8',
  statusCode: 400,
})
const JsonForbiddenKeyError = defineError('JsonForbiddenKeyError', {
  base: SyntaxError,
  code: 'ERR_BULWARK_JSON_FORBIDDEN_KEY',
  statusCode: 400,
})
const JsonLimitError = defineError('JsonLimitError', { statusCode: 400 })
const JsonTooLargeError = defineError('JsonTooLargeError', {
  base: JsonLimitError,
  code: 'ERR_BULWARK_JSON_TOO_LARGE',
  statusCode: 413,
})
const JsonTooDeepError = defineError('JsonTooDeepError', { base: JsonLimitError, code: 'ERR_BULWARK_JSON_TOO_DEEP', statusCode: 400 })
const JsonTooManyKeysError = defineError('JsonTooManyKeysError', {
  base: JsonLimitError,
  code: 'ERR_BULWARK_JSON_TOO_MANY_KEYS',
  statusCode: 400,
})
const JsonArrayTooLongError = defineError('JsonArrayTooLongError', {
  base: JsonLimitError,
  code: 'ERR_BULWARK_JSON_ARRAY_TOO_LONG',
  statusCode: 400,
})
const JsonStringTooLongError = defineError('JsonStringTooLongError', {
  base: JsonLimitError,
  code: 'ERR_BULWARK_JSON_STRING_TOO_LONG',
  statusCode: 400,
})
const JsonTooManyNodesError = defineError('JsonTooManyNodesError', {
  base: JsonLimitError,
  code: 'ERR_BULWARK_JSON_TOO_MANY_NODES',
  statusCode: 400,
})
const PoolOverloadedError = defineError('PoolOverloadedError', {
  code: 'ERR_BULWARK_POOL_OVERLOADED',
  statusCode: 503,
  defaultMessage: 'The pool is overloaded',
})
const JsonTimeoutError = defineError('JsonTimeoutError', {
  code: 'ERR_BULWARK_JSON_TIMEOUT',
  statusCode: 503,
  defaultMessage: 'The JSON parse timed out',
})

// --- regex ----------------------------------------------------------------------------------
// All three are `instanceof SyntaxError` (what `new RegExp` throws) and `instanceof BulwarkError`.
const RegexSyntaxError = defineError('RegexSyntaxError', {
  base: SyntaxError,
  code: 'ERR_BULWARK_REGEX_SYNTAX',
})
const RegexUnsupportedError = defineError('RegexUnsupportedError', {
  base: SyntaxError,
  code: 'ERR_BULWARK_REGEX_UNSUPPORTED',
})
const RegexTooLargeError = defineError('RegexTooLargeError', {
  base: SyntaxError,
  code: 'ERR_BULWARK_REGEX_TOO_LARGE',
})

module.exports = {
  BulwarkError,
  InvalidArgError,
  OutOfRangeError,
  ClosedError,
  InternalError,
  AbortError,
  PayloadTooLargeError,
  RequestTimeoutError,
  DeadlineError,
  IdleTimeoutError,
  TooSlowError,
  TimeoutError,
  OverloadedError,
  JsonSyntaxError,
  JsonInvalidUtf8Error,
  JsonForbiddenKeyError,
  JsonLimitError,
  JsonTooLargeError,
  JsonTooDeepError,
  JsonTooManyKeysError,
  JsonArrayTooLongError,
  JsonStringTooLongError,
  JsonTooManyNodesError,
  PoolOverloadedError,
  JsonTimeoutError,
  RegexSyntaxError,
  RegexUnsupportedError,
  RegexTooLargeError,
}
