'use strict'
// The machinery behind lib/errors.js: the error base class, `defineError`, and the mapping of
// native error codes to classes. Not part of the public API (index.js does not export it).
//
// `err instanceof BulwarkError` is true for every bulwark error, including the ones that must
// also be `instanceof TypeError` / `RangeError` / `SyntaxError` (JavaScript has single
// inheritance, so those extend the built-in class and carry a brand instead).

const kBrand = Symbol.for('bulwark.error')
const classesByCode = new Map()

class BulwarkError extends Error {
  static [Symbol.hasInstance](value) {
    if (this === BulwarkError) return value != null && value[kBrand] === true
    return Function.prototype[Symbol.hasInstance].call(this, value)
  }
}

// Defines an error class. `details` given to the constructor (besides `cause`) become own
// properties, e.g. `bytes`, `limit`, `elapsedMs`.
function defineError(name, { base = BulwarkError, code, statusCode, defaultMessage }) {
  const Class = {
    [name]: class extends base {
      constructor(message = defaultMessage, details = undefined) {
        const { cause, ...rest } = details ?? {}
        super(message, cause === undefined ? undefined : { cause })
        Object.defineProperty(this, kBrand, { value: true })
        Object.defineProperty(this, 'name', { value: name, configurable: true, writable: true })
        if (code !== undefined) this.code = code
        if (statusCode !== undefined) this.statusCode = statusCode
        Object.assign(this, rest)
      }
    },
  }[name]
  if (code !== undefined) classesByCode.set(code, Class)
  return Class
}

// Turns an error thrown by the native addon into its bulwark class. Errors that did not come
// from bulwark's own code (a panic caught at the boundary, a failing napi call) become
// `ERR_BULWARK_INTERNAL` errors with the original as `cause`.
function fromNative(err) {
  if (err == null || typeof err !== 'object') return err
  if (err[kBrand] === true) return err
  const Class = classesByCode.get(err.code)
  if (Class !== undefined) return new Class(err.message)
  const Internal = classesByCode.get('ERR_BULWARK_INTERNAL')
  return new Internal(`bulwark internal error: ${err.message}`, { cause: err })
}

// Calls `fn` and rethrows any native error as its bulwark class.
function callNative(fn, ...args) {
  try {
    return fn(...args)
  } catch (err) {
    throw fromNative(err)
  }
}

// The prom-client module for a collector: `opts.promClient` if given, else the installed one
// (an optional peer dependency, required only here, never when bulwark loads).
function promClientFrom(opts, caller) {
  if (opts.promClient !== undefined) return opts.promClient
  try {
    return require('prom-client')
  } catch (cause) {
    const InvalidArg = classesByCode.get('ERR_BULWARK_INVALID_ARG')
    throw new InvalidArg(`${caller} needs prom-client: install it or pass options.promClient`, { cause })
  }
}

module.exports = { BulwarkError, defineError, fromNative, callNative, promClientFrom }
