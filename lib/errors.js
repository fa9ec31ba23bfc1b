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
  RegexSyntaxError,
  RegexUnsupportedError,
  RegexTooLargeError,
  BulwarkError,
  InvalidArgError,
  OutOfRangeError,
  ClosedError,
  InternalError,
  AbortError,
}
