'use strict'
// Stall watchdog: a native thread that sees the loop blocked while it is blocked (src/stall),
// built on the same loop hook as the delay histograms. This module validates options, turns
// the native JSON into `onStall(info)` calls and runs the stack helper worker for `captureStack`.

const path = require('node:path')
const { Worker, isMainThread, threadId } = require('node:worker_threads')
const native = require('./native')
const { callNative } = require('./internal')
const { InvalidArgError } = require('./errors')
const {
  validateObject,
  validateNumber,
  validateBoolean,
  validateFunction,
  validateOneOf,
} = require('./validate')

// Running watchdogs stay reachable until stop(): `watchdog({...})` without keeping the result
// must keep watching (the native thread must not stop when the JS object is collected).
const running = new Set()

class Watchdog {
  #native
  #helper
  #stopped = false

  constructor(handle, helper, ready) {
    this.#native = handle
    this.#helper = helper
    /** Resolves once stack capture is armed (at once when `captureStack` is off). */
    this.ready = ready
  }

  /** True once `stop()` ran (or the environment ended). */
  get stopped() {
    return this.#stopped
  }

  /** Ends the watchdog thread (and the stack helper). Returns a promise that settles when the helper is gone. */
  stop() {
    if (this.#stopped) return Promise.resolve()
    this.#stopped = true
    running.delete(this)
    callNative(() => this.#native.stop())
    const helper = this.#helper
    this.#helper = undefined
    return helper ? helper.terminate().then(() => undefined) : Promise.resolve()
  }
}

/**
 * Starts a watchdog on this thread's event loop. See lib/stall.d.ts for the options.
 */
function watchdog(options) {
  const opts = validateObject(options, 'options')
  const thresholdMs = validateNumber(opts.thresholdMs, 'options.thresholdMs', { min: 1, max: 3_600_000, fallback: 100 })
  const log = validateBoolean(opts.log, 'options.log', true)
  const onStall = validateFunction(opts.onStall, 'options.onStall', { optional: true })
  const captureStack = validateBoolean(opts.captureStack, 'options.captureStack', false)
  const killAfterMs = opts.killAfterMs === undefined
    ? 0
    : validateNumber(opts.killAfterMs, 'options.killAfterMs', { min: thresholdMs, max: 86_400_000 })
  const action = validateOneOf(opts.action, 'options.action', ['abort', 'exit'], 'abort')
  const exitCode = validateNumber(opts.exitCode, 'options.exitCode', { min: 0, max: 255, integer: true, fallback: 1 })
  if (captureStack && !isMainThread) {
    throw new InvalidArgError('The "options.captureStack" option is only available on the main thread (the inspector can only attach to it)')
  }
  if (killAfterMs === 0 && opts.action !== undefined) {
    throw new InvalidArgError('The "options.action" option needs "options.killAfterMs"')
  }
  const deliver = onStall === undefined
    ? undefined
    : (json) => {
        onStall(JSON.parse(json))
      }
  const handle = callNative(
    () =>
      new native.WatchdogNative(
        { thresholdMs, killAfterMs, action, exitCode, log, threadId },
        deliver,
      ),
  )
  let helper
  let ready = Promise.resolve()
  if (captureStack) {
    helper = new Worker(path.join(__dirname, 'stall-worker.js'), { workerData: { id: handle.id } })
    helper.unref()
    ready = new Promise((resolve, reject) => {
      helper.once('message', () => resolve())
      helper.once('error', reject)
    })
    // A helper that failed leaves the watchdog working without stacks; `ready` reports why.
    ready.catch(() => {})
  }
  const wd = new Watchdog(handle, helper, ready)
  running.add(wd)
  return wd
}

module.exports = { watchdog, Watchdog }

