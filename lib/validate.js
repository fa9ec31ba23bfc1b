'use strict'
// Argument validators for the public API boundary, in the manner of Node's
// lib/internal/validators.js: each names the option it checks and throws a bulwark error with a
// stable code. Every lib/ module validates its options once, up front, with these.

const { InvalidArgError, OutOfRangeError } = require('./errors')

function describe(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`
  if (typeof value === 'string') return `type string (${JSON.stringify(value.slice(0, 40))})`
  return `type ${typeof value} (${String(value)})`
}

function invalidType(name, expected, value) {
  return new InvalidArgError(`The "${name}" option must be ${expected}. Received ${describe(value)}`)
}

// `undefined` is accepted as "not given" and returns `fallback`.
function validateObject(value, name, fallback = {}) {
  if (value === undefined) return fallback
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidType(name, 'an object', value)
  }
  return value
}

function validateNumber(value, name, { min = -Infinity, max = Infinity, integer = false, fallback } = {}) {
  if (value === undefined && fallback !== undefined) return fallback
  if (typeof value !== 'number' || Number.isNaN(value)) throw invalidType(name, 'a number', value)
  if (integer && !Number.isInteger(value)) {
    throw new OutOfRangeError(`The "${name}" option must be an integer. Received ${value}`)
  }
  if (value < min || value > max) {
    throw new OutOfRangeError(`The "${name}" option must be >= ${min} and <= ${max}. Received ${value}`)
  }
  return value
}

function validateBoolean(value, name, fallback) {
  if (value === undefined && fallback !== undefined) return fallback
  if (typeof value !== 'boolean') throw invalidType(name, 'a boolean', value)
  return value
}

function validateString(value, name, fallback) {
  if (value === undefined && fallback !== undefined) return fallback
  if (typeof value !== 'string') throw invalidType(name, 'a string', value)
  return value
}

function validateFunction(value, name, { optional = false } = {}) {
  if (value === undefined && optional) return undefined
  if (typeof value !== 'function') throw invalidType(name, 'a function', value)
  return value
}

function validateOneOf(value, name, allowed, fallback) {
  if (value === undefined && fallback !== undefined) return fallback
  if (!allowed.includes(value)) {
    throw new InvalidArgError(
      `The "${name}" option must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}. Received ${describe(value)}`,
    )
  }
  return value
}

function validateAbortSignal(value, name = 'signal') {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || typeof value.aborted !== 'boolean' || typeof value.addEventListener !== 'function') {
    throw invalidType(name, 'an AbortSignal', value)
  }
  return value
}

module.exports = {
  validateObject,
  validateNumber,
  validateBoolean,
  validateString,
  validateFunction,
  validateOneOf,
  validateAbortSignal,
}
