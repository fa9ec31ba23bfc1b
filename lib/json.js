'use strict'
// Off-thread JSON parsing with the event loop's share bounded (src/json/ has the design notes).
//
// A body is copied into native memory (in chunks, so large bodies are sliced too), validated and
// limit-checked on the pool's threads, which return a build plan: which spans of the text are
// whole values or runs of members for `JSON.parse`, and which large containers are built member
// by member. This file follows the plan in slices of about `sliceMs` across event-loop turns
// (one shared scheduler, so concurrent parses share one budget per turn); a piece is not started
// when its predicted time would end the slice late. Bodies below `inlineBelow` bytes are validated
// and built synchronously: a pool round trip costs more than their parse. Bodies over one copy
// chunk have their head scanned before the rest is copied, so most refused bodies cost the main
// thread almost nothing.

const os = require('node:os')
const { performance } = require('node:perf_hooks')
const native = require('./native')
const { fromNative, callNative } = require('./internal')
const errors = require('./errors')
const {
  validateObject,
  validateNumber,
  validateBoolean,
  validateFunction,
  validateOneOf,
  validateAbortSignal,
} = require('./validate')

const { ClosedError, AbortError, InvalidArgError, JsonTimeoutError, PoolOverloadedError, JsonTooLargeError } = errors

// Plan ops (src/json/scan.rs).
const OP_VALUE = 0
const OP_ARR_RUN = 1
const OP_OBJ_RUN = 2
const OP_BEGIN_ARR = 3
const OP_BEGIN_OBJ = 4
const OP_END = 5
const OP_KEY = 6
const OP_DELETE = 7
const OP_ROOT = 8
const OP_MISSING = 9
const FLAG_NON_ASCII = 1
const FLAG_ESCAPES = 2

const ACTIONS = ['error', 'remove', 'ignore']
const U32_MAX = 0xffffffff
// Bodies up to COPY_CHUNK units are copied into native memory in one call; larger ones in
// chunks across slices: 1 MB of bytes, or 256 Ki units of a string (each unit becomes two
// bytes). Into memory touched for the first time, measured here: 0.5 ms per MB of bytes, 0.3 ms
// per 256 Ki string units (1.2 ms per Mi units, more than a slice).
const COPY_CHUNK = 1 << 20
const STRING_CHUNK = 1 << 18
// Head of a body larger than COPY_CHUNK scanned first (`prefix` scan), so that most bodies the
// pool refuses are refused before the main thread copies the rest.
const PROBE_UNITS = 64 * 1024

const DEFAULTS = Object.freeze({
  maxBytes: 16 * 1024 * 1024,
  maxDepth: 256,
  maxKeys: 100_000,
  maxArrayLength: 1_000_000,
  maxStringLength: 8 * 1024 * 1024,
  maxTotalNodes: 4_000_000,
  protoAction: 'error',
  constructorAction: 'error',
  invalidUtf8: 'error',
  sliceMs: 1,
  inlineBelow: 16 * 1024,
  timeoutMs: 0,
  sliceSize: 64 * 1024,
})

const LIMIT_KEYS = ['maxBytes', 'maxDepth', 'maxKeys', 'maxArrayLength', 'maxStringLength', 'maxTotalNodes']

// Validates the options shared by createJsonPool and parse; `base` holds the values to fall back on.
function parseCommon(options, base) {
  const out = {}
  for (const key of LIMIT_KEYS) {
    const v = options[key]
    out[key] = v === Infinity ? Infinity : validateNumber(v, key, { min: 0, integer: true, fallback: base[key] })
  }
  out.protoAction = validateOneOf(options.protoAction, 'protoAction', ACTIONS, base.protoAction)
  out.constructorAction = validateOneOf(options.constructorAction, 'constructorAction', ACTIONS, base.constructorAction)
  out.invalidUtf8 = validateOneOf(options.invalidUtf8, 'invalidUtf8', ['error', 'replace'], base.invalidUtf8)
  out.sliceMs = validateNumber(options.sliceMs, 'sliceMs', { min: 0.05, max: 1000, fallback: base.sliceMs })
  out.inlineBelow = validateNumber(options.inlineBelow, 'inlineBelow', { min: 0, integer: true, fallback: base.inlineBelow })
  out.timeoutMs = validateNumber(options.timeoutMs, 'timeoutMs', { min: 0, fallback: base.timeoutMs })
  out.sliceSize = validateNumber(options.sliceSize, 'sliceSize', { min: 16, max: U32_MAX, integer: true, fallback: base.sliceSize })
  return out
}

// RFC 6901: '' is the whole document; '/a~1b/0' is ['a/b', '0'].
function parsePointer(pointer) {
  if (typeof pointer !== 'string') {
    throw new InvalidArgError(`The "select" option must hold JSON Pointer strings. Received ${typeof pointer}`)
  }
  if (pointer === '') return []
  if (pointer[0] !== '/' || /~[^01]|~$/.test(pointer)) {
    throw new InvalidArgError(`The "select" option holds an invalid JSON Pointer: ${JSON.stringify(pointer)}`)
  }
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function clampU32(v) {
  return v === Infinity || v > U32_MAX ? U32_MAX : v
}

function nativeOptions(o, plan, select) {
  return {
    maxBytes: o.maxBytes === Infinity ? -1 : o.maxBytes,
    maxDepth: clampU32(o.maxDepth),
    maxKeys: clampU32(o.maxKeys),
    maxArrayLength: clampU32(o.maxArrayLength),
    maxStringLength: o.maxStringLength === Infinity ? -1 : o.maxStringLength,
    maxTotalNodes: o.maxTotalNodes === Infinity ? -1 : o.maxTotalNodes,
    protoAction: ACTIONS.indexOf(o.protoAction),
    constructorAction: ACTIONS.indexOf(o.constructorAction),
    utf8Replace: o.invalidUtf8 === 'replace',
    plan,
    sliceUnits: o.sliceSize,
    select,
    prefix: false,
  }
}

// --- errors from the native scan ---------------------------------------------------------------

const classByCode = {
  ERR_BULWARK_JSON_SYNTAX: errors.JsonSyntaxError,
  ERR_BULWARK_JSON_INVALID_UTF8: errors.JsonInvalidUtf8Error,
  ERR_BULWARK_JSON_FORBIDDEN_KEY: errors.JsonForbiddenKeyError,
  ERR_BULWARK_JSON_TOO_LARGE: errors.JsonTooLargeError,
  ERR_BULWARK_JSON_TOO_DEEP: errors.JsonTooDeepError,
  ERR_BULWARK_JSON_TOO_MANY_KEYS: errors.JsonTooManyKeysError,
  ERR_BULWARK_JSON_ARRAY_TOO_LONG: errors.JsonArrayTooLongError,
  ERR_BULWARK_JSON_STRING_TOO_LONG: errors.JsonStringTooLongError,
  ERR_BULWARK_JSON_TOO_MANY_NODES: errors.JsonTooManyNodesError,
}

function outcomeError(o) {
  const Class = classByCode[o.code]
  if (Class === undefined) return fromNative(Object.assign(new Error(o.message), { code: o.code }))
  const details = { position: o.position, line: o.line, column: o.column }
  if (o.limit != null) details.limit = o.limit
  return new Class(`${o.message} at position ${o.position} (line ${o.line} column ${o.column})`, details)
}

// --- the builder: follows a plan, a slice at a time --------------------------------------------

// Main-thread ms per code unit of JSON.parse pieces (moving average over large pieces; one per
// environment: it depends on the machine and the documents, not on the pool). Starts at 8 µs/KB.
let msPerUnit = 8e-6

// Reused by Builder#bracketed (one per environment; runs are about `sliceSize` long).
const SCRATCH_MAX = 1 << 20
let scratch = Buffer.allocUnsafeSlow(0)

function setKey(obj, key, value) {
  // A key spelled "__proto__" becomes an own property, as JSON.parse makes it; never a prototype.
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true })
  } else {
    obj[key] = value
  }
}

class Builder {
  constructor(plan, input, isString) {
    this.plan = plan
    this.i = 0
    this.input = input
    this.isString = isString
    this.stack = []
    this.value = undefined
    this.results = []
  }

  text(a, b, flags) {
    if (this.isString) return this.input.slice(a, b)
    return (flags & FLAG_NON_ASCII) !== 0 ? this.input.utf8Slice(a, b) : this.input.latin1Slice(a, b)
  }

  // The text of a run of members inside `open` and `close` ('[' and ']', or '{' and '}'). From a
  // Buffer, the bytes are copied next to the brackets in a reused buffer and decoded once: one
  // string on the heap per run, where `'[' + text + ']'` made two (the slice, then the flat copy
  // JSON.parse makes of the concatenation), and garbage is most of what the build costs beyond
  // JSON.parse's own work.
  bracketed(a, b, flags, open, close) {
    if (this.isString) return open + this.input.slice(a, b) + close
    const n = b - a
    if (n + 2 > SCRATCH_MAX) return open + this.text(a, b, flags) + close
    if (scratch.length < n + 2) scratch = Buffer.allocUnsafeSlow(Math.min(SCRATCH_MAX, Math.max(n + 2, scratch.length * 2)))
    scratch[0] = open === '[' ? 0x5b : 0x7b
    this.input.copy(scratch, 1, a, b)
    scratch[n + 1] = close === ']' ? 0x5d : 0x7d
    return (flags & FLAG_NON_ASCII) !== 0 ? scratch.utf8Slice(0, n + 2) : scratch.latin1Slice(0, n + 2)
  }

  attach(v) {
    const stack = this.stack
    if (stack.length === 0) {
      this.value = v
      return
    }
    const f = stack[stack.length - 1]
    if (f.value === null) f.value = f.arr ? [] : {}
    if (f.arr) f.value.push(v)
    else setKey(f.value, f.key, v)
  }

  // Runs ops until the plan ends (true) or `deadline` (a performance.now() value) passes. A
  // `JSON.parse` piece is not started when its predicted time (its length times the measured
  // ms per code unit) would end the slice past the deadline, unless it is the slice's first.
  step(deadline) {
    const p = this.plan
    const n = p.length
    let i = this.i
    const stack = this.stack
    let now = performance.now()
    let first = true
    while (i < n) {
      const op = p[i]
      let units = 0
      if (op <= OP_OBJ_RUN) {
        units = p[i + 2] - p[i + 1]
        if (!first && now + units * msPerUnit > deadline) break
        first = false
      }
      switch (op) {
        case OP_VALUE:
          this.attach(JSON.parse(this.text(p[i + 1], p[i + 2], p[i + 3])))
          i += 4
          break
        case OP_ARR_RUN: {
          const run = JSON.parse(this.bracketed(p[i + 1], p[i + 2], p[i + 3], '[', ']'))
          const f = stack[stack.length - 1]
          if (f.value === null) f.value = run
          else for (let j = 0; j < run.length; j++) f.value.push(run[j])
          i += 4
          break
        }
        case OP_OBJ_RUN: {
          const run = JSON.parse(this.bracketed(p[i + 1], p[i + 2], p[i + 3], '{', '}'))
          const f = stack[stack.length - 1]
          if (f.value === null) f.value = run
          else {
            const keys = Object.keys(run)
            for (let j = 0; j < keys.length; j++) setKey(f.value, keys[j], run[keys[j]])
          }
          i += 4
          break
        }
        case OP_BEGIN_ARR:
          stack.push({ arr: true, value: null, key: undefined })
          i += 1
          break
        case OP_BEGIN_OBJ:
          stack.push({ arr: false, value: null, key: undefined })
          i += 1
          break
        case OP_KEY: {
          const a = p[i + 1]
          const b = p[i + 2]
          const flags = p[i + 3]
          stack[stack.length - 1].key =
            (flags & FLAG_ESCAPES) !== 0 ? JSON.parse(this.text(a, b, flags)) : this.text(a + 1, b - 1, flags)
          i += 4
          break
        }
        case OP_DELETE: {
          const f = stack[stack.length - 1]
          if (f.value !== null) delete f.value[p[i + 1] === 0 ? '__proto__' : 'constructor']
          i += 2
          break
        }
        case OP_END: {
          const f = stack.pop()
          this.attach(f.value === null ? (f.arr ? [] : {}) : f.value)
          i += 1
          break
        }
        case OP_ROOT:
          this.results.push(this.value)
          this.value = undefined
          i += 1
          break
        case OP_MISSING:
          this.results.push(undefined)
          i += 1
          break
        default:
          throw new errors.InternalError(`bulwark internal error: unknown JSON plan op ${p[i]}`)
      }
      const t = performance.now()
      if (units > 1024) msPerUnit += ((t - now) / units - msPerUnit) * 0.25
      now = t
      if (now >= deadline) break
    }
    this.i = i
    return i >= n
  }
}

// JSON.parse's reviver walk (ECMA-262 InternalizeJSONProperty), iterative and resumable.
class Reviver {
  constructor(root, reviver) {
    this.reviver = reviver
    this.holder = { '': root }
    this.stack = [{ holder: this.holder, name: '', val: undefined, keys: null, i: 0, started: false }]
    this.result = undefined
  }

  step(deadline) {
    const stack = this.stack
    let ops = 0
    while (stack.length > 0) {
      const f = stack[stack.length - 1]
      if (!f.started) {
        f.started = true
        f.val = f.holder[f.name]
        if (f.val !== null && typeof f.val === 'object') {
          f.keys = Array.isArray(f.val) ? f.val.length : Object.keys(f.val)
        }
      }
      if (f.keys !== null) {
        const len = typeof f.keys === 'number' ? f.keys : f.keys.length
        if (f.i < len) {
          const name = typeof f.keys === 'number' ? String(f.i) : f.keys[f.i]
          f.i++
          stack.push({ holder: f.val, name, val: undefined, keys: null, i: 0, started: false })
          continue
        }
      }
      stack.pop()
      const v = this.reviver.call(f.holder, f.name, f.val)
      if (stack.length === 0) {
        this.result = v
        return true
      }
      if (v === undefined) delete f.holder[f.name]
      else Object.defineProperty(f.holder, f.name, { value: v, writable: true, enumerable: true, configurable: true })
      if ((++ops & 255) === 0 && performance.now() >= deadline) return false
    }
    return true
  }
}

// One scheduler per JS environment: runs build tasks round-robin, one `sliceMs` budget per turn.
const tasks = []
let scheduled = false

function schedule(task) {
  tasks.push(task)
  if (!scheduled) {
    scheduled = true
    setImmediate(runTasks)
  }
}

function runTasks() {
  scheduled = false
  if (tasks.length === 0) return
  const deadline = performance.now() + tasks[0].sliceMs
  // Each task steps at most once per turn: a step that returns unfinished before the deadline
  // declined a piece that would have ended the slice late, and stepping it again would start
  // that piece anyway.
  let unfinished = 0
  while (tasks.length > unfinished) {
    const task = tasks[0]
    if (task.done) {
      tasks.shift()
      continue
    }
    let finished
    try {
      finished = task.step(deadline)
    } catch (err) {
      tasks.shift()
      task.fail(err)
      continue
    }
    if (finished) tasks.shift()
    else {
      tasks.push(tasks.shift())
      unfinished++
      if (performance.now() >= deadline) break
    }
  }
  if (tasks.length > 0 && !scheduled) {
    scheduled = true
    setImmediate(runTasks)
  }
}

// --- histograms (ns), in the shape of perf_hooks' -----------------------------------------------

class Histogram {
  constructor() {
    this.values = []
    this.count = 0
    this.sum = 0
    this.min = Infinity
    this.max = 0
  }
  record(ns) {
    this.count++
    this.sum += ns
    if (ns < this.min) this.min = ns
    if (ns > this.max) this.max = ns
    // A bounded reservoir keeps percentiles cheap whatever the traffic.
    if (this.values.length < 4096) this.values.push(ns)
    else this.values[Math.floor(Math.random() * this.count) % 4096] = ns
  }
  snapshot() {
    const sorted = [...this.values].sort((a, b) => a - b)
    const pct = (p) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)])
    return {
      count: this.count,
      min: this.count === 0 ? 0 : this.min,
      max: this.max,
      mean: this.count === 0 ? 0 : this.sum / this.count,
      p50: pct(50),
      p90: pct(90),
      p99: pct(99),
    }
  }
}

// --- the pool ---------------------------------------------------------------------------------

let nextId = 1
// Copies units [a, b) of a string or bytes of a Buffer into a native JsonInput.
function pushRange(nin, input, isString, a, b) {
  if (isString) nin.pushString(input.slice(a, b))
  else nin.pushBytes(input.subarray(a, b))
}

function newId() {
  const id = nextId
  nextId = nextId >= 0xfffffff0 ? 1 : nextId + 1
  return id
}

class JsonPool {
  #native
  #defaults
  #threads
  #maxQueue
  #jobs = new Map()
  // Head scans in flight: id -> { job, task }.
  #probes = new Map()
  #inFlight = 0
  #referred = false
  #closed = false
  #stats = {
    completed: 0,
    inline: 0,
    rejected: { overloaded: 0, timeout: 0, aborted: 0, closed: 0, syntax: 0, limit: 0, forbidden: 0, utf8: 0 },
  }
  #wait = new Histogram()
  #parseHist = new Histogram()
  #build = new Histogram()

  constructor(options) {
    options = validateObject(options, 'options')
    this.#threads = validateNumber(options.threads, 'threads', {
      min: 1,
      max: 256,
      integer: true,
      fallback: Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
    })
    this.#maxQueue = validateNumber(options.maxQueue, 'maxQueue', { min: 1, max: 1 << 20, integer: true, fallback: 1024 })
    this.#defaults = parseCommon(options, DEFAULTS)
    this.#native = callNative(
      (...a) => new native.NativeJsonPool(...a),
      this.#threads,
      this.#maxQueue,
      (outcome) => this.#onOutcome(outcome),
    )
  }

  // Parses `input` (string, Buffer or Uint8Array). Resolves with what JSON.parse returns.
  parse(input, options) {
    try {
      return this.#parse(input, options)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  #parse(input, options) {
    options = validateObject(options, 'options')
    const isString = typeof input === 'string'
    if (!isString && !(input instanceof Uint8Array)) {
      throw new InvalidArgError(`The "input" argument must be a string, Buffer or Uint8Array. Received ${typeof input}`)
    }
    const o = parseCommon(options, this.#defaults)
    const signal = validateAbortSignal(options.signal)
    const reviver = validateFunction(options.reviver, 'reviver', { optional: true })
    const validateOnly = validateBoolean(options.validateOnly, 'validateOnly', false)
    let select = options.select
    let single = false
    if (select !== undefined) {
      if (typeof select === 'string') {
        single = true
        select = [select]
      } else if (!Array.isArray(select)) {
        throw new InvalidArgError('The "select" option must be a JSON Pointer string or an array of them')
      }
      select = select.map(parsePointer)
    }
    if (this.#closed) throw new ClosedError('The JSON pool is closed')
    if (signal?.aborted) {
      this.#stats.rejected.aborted++
      throw new AbortError('The JSON parse was aborted', { cause: signal.reason })
    }
    if (!isString && !Buffer.isBuffer(input)) input = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
    const length = input.length
    // UTF-8 size >= string length, so a string this long is refused without looking at it.
    if (length > o.maxBytes) {
      this.#stats.rejected.limit++
      throw new JsonTooLargeError(`JSON body is more than maxBytes (${o.maxBytes}) bytes`, {
        limit: o.maxBytes,
        position: 0,
        line: 1,
        column: 1,
      })
    }
    const nopts = nativeOptions(o, !validateOnly, select)
    const job = { input, isString, o, reviver, validateOnly, single, select }

    if (length < o.inlineBelow) {
      const started = performance.now()
      const outcome = callNative(native.jsonScanSync, input, nopts)
      this.#stats.inline++
      if (outcome.code != null) throw this.#refused(outcome)
      if (validateOnly) return Promise.resolve(undefined)
      const b = new Builder(outcome.plan, input, isString)
      b.step(Infinity)
      let value = this.#finish(job, b.results)
      if (reviver !== undefined) {
        const r = new Reviver(value, reviver)
        r.step(Infinity)
        value = r.result
      }
      this.#build.record((performance.now() - started) * 1e6)
      return Promise.resolve(value)
    }

    if (this.#native.queueDepth() >= this.#maxQueue) {
      this.#stats.rejected.overloaded++
      throw new PoolOverloadedError(`The JSON pool's queue is full (maxQueue ${this.#maxQueue})`)
    }
    return new Promise((resolve, reject) => {
      const id = newId()
      Object.assign(job, { id, resolve, reject, nopts, settled: false, signal, timer: undefined, onAbort: undefined })
      this.#jobs.set(id, job)
      this.#setInFlight(+1)
      if (signal) {
        job.onAbort = () => this.#fail(job, new AbortError('The JSON parse was aborted', { cause: signal.reason }), 'aborted')
        signal.addEventListener('abort', job.onAbort, { once: true })
      }
      if (o.timeoutMs > 0) {
        job.timer = setTimeout(
          () => this.#fail(job, new JsonTimeoutError(`The JSON parse took longer than ${o.timeoutMs} ms`, { timeoutMs: o.timeoutMs }), 'timeout'),
          o.timeoutMs,
        )
      }
      this.#gather(job)
    })
  }

  // Copies the text into native memory in 1 MB chunks, yielding between slices, then submits.
  // A body over one chunk is probed first: its first PROBE_UNITS are scanned as a head (a few
  // tens of µs on a pool thread), and the copy starts only when that scan found nothing the rest
  // of the body could not undo. A refused body then costs the main thread the head's copy only.
  // Strings whose UTF-8 size could exceed maxBytes are not probed: the whole scan reports that
  // limit before anything else.
  #gather(job) {
    const { input, isString } = job
    const total = input.length
    let nin = null
    let at = 0
    const step = (deadline) => {
      if (job.settled) return true
      if (nin === null) nin = new native.JsonInput(isString, total)
      const chunk = isString ? STRING_CHUNK : COPY_CHUNK
      while (at < total) {
        const end = Math.min(total, at + chunk)
        pushRange(nin, input, isString, at, end)
        at = end
        if (performance.now() >= deadline) return false
      }
      try {
        job.submitted = performance.now()
        this.#native.submit(job.id, nin, job.nopts)
      } catch (err) {
        const mapped = fromNative(err)
        this.#fail(job, mapped, mapped instanceof PoolOverloadedError ? 'overloaded' : 'closed')
      }
      return true
    }
    if (total <= COPY_CHUNK) {
      step(Infinity)
      return
    }
    const task = {
      sliceMs: job.o.sliceMs,
      get done() {
        return job.settled
      },
      step,
      fail: (err) => this.#fail(job, err, 'closed'),
    }
    if (isString && total * 3 > job.o.maxBytes) {
      schedule(task)
      return
    }
    const head = new native.JsonInput(isString, PROBE_UNITS)
    pushRange(head, input, isString, 0, PROBE_UNITS)
    const probeId = newId()
    try {
      this.#native.submit(probeId, head, { ...job.nopts, plan: false, select: undefined, prefix: true })
    } catch {
      // A full queue: go straight to the whole scan, which meets the same answer.
      schedule(task)
      return
    }
    job.probeId = probeId
    this.#probes.set(probeId, { job, task })
  }

  #onOutcome(outcome) {
    const probe = this.#probes.get(outcome.id)
    if (probe !== undefined) {
      this.#probes.delete(outcome.id)
      const { job, task } = probe
      job.probeId = undefined
      if (job.settled) return
      if (outcome.code != null) this.#fail(job, this.#refused(outcome), null)
      else schedule(task)
      return
    }
    const job = this.#jobs.get(outcome.id)
    if (job === undefined || job.settled) return
    this.#wait.record(outcome.waitNs)
    this.#parseHist.record(outcome.parseNs)
    if (outcome.code != null) {
      this.#fail(job, this.#refused(outcome), null)
      return
    }
    if (job.validateOnly) {
      this.#succeed(job, undefined)
      return
    }
    const builder = new Builder(outcome.plan, job.input, job.isString)
    schedule({
      pool: this,
      job,
      builder,
      reviving: null,
      buildNs: 0,
      sliceMs: job.o.sliceMs,
      get done() {
        return this.job.settled
      },
      step(deadline) {
        return this.pool.#buildStep(this, deadline)
      },
      fail(err) {
        this.pool.#fail(this.job, err, null)
      },
    })
  }

  // One slice of a build task (see #onOutcome). The task's state lives in its fields: a closure
  // over the builder and the job here made every result outlive a scavenge (measured: 94 MB
  // promoted over 300 twitter parses against 2 MB, and 4× the GC time).
  #buildStep(task, deadline) {
    const t0 = performance.now()
    const job = task.job
    if (task.reviving === null) {
      if (!task.builder.step(deadline)) {
        task.buildNs += (performance.now() - t0) * 1e6
        return false
      }
      const value = this.#finish(job, task.builder.results)
      task.builder = null
      if (job.reviver === undefined) {
        task.buildNs += (performance.now() - t0) * 1e6
        this.#build.record(task.buildNs)
        this.#succeed(job, value)
        return true
      }
      task.reviving = new Reviver(value, job.reviver)
    }
    if (!task.reviving.step(deadline)) {
      task.buildNs += (performance.now() - t0) * 1e6
      return false
    }
    task.buildNs += (performance.now() - t0) * 1e6
    this.#build.record(task.buildNs)
    const result = task.reviving.result
    task.reviving = null
    this.#succeed(job, result)
    return true
  }

  #finish(job, results) {
    if (job.select === undefined) return results[0]
    return job.single ? results[0] : results
  }

  #refused(outcome) {
    const err = outcomeError(outcome)
    const r = this.#stats.rejected
    if (err instanceof errors.JsonLimitError) r.limit++
    else if (err instanceof errors.JsonForbiddenKeyError) r.forbidden++
    else if (err instanceof errors.JsonInvalidUtf8Error) r.utf8++
    else r.syntax++
    return err
  }

  #settle(job) {
    if (job.settled) return false
    job.settled = true
    this.#jobs.delete(job.id)
    if (job.timer !== undefined) clearTimeout(job.timer)
    if (job.onAbort !== undefined) job.signal.removeEventListener('abort', job.onAbort)
    this.#setInFlight(-1)
    return true
  }

  // A settled job lets go of its promise: objects of the parse that live in the old generation
  // (closures of the copy and build tasks, promoted while the body was scanned) still point to
  // the job until the next full GC, and through `resolve` its promise and the result would
  // survive every scavenge in between (measured: the results of 300 citm_catalog parses promoted
  // to the old generation, 3.5× the main thread's GC time, until this was cut).
  #release(job) {
    const { resolve, reject } = job
    job.resolve = job.reject = null
    job.input = null
    return { resolve, reject }
  }

  #succeed(job, value) {
    if (!this.#settle(job)) return
    this.#stats.completed++
    this.#release(job).resolve(value)
  }

  // `reason`: the stats counter to bump, or null when #refused already counted it.
  #fail(job, err, reason) {
    if (!this.#settle(job)) return
    if (reason !== null) this.#stats.rejected[reason]++
    if (job.probeId !== undefined) {
      this.#probes.delete(job.probeId)
      if (!this.#closed) this.#native.cancel(job.probeId)
    }
    if (!this.#closed) this.#native.cancel(job.id)
    this.#release(job).reject(err)
  }

  // The native callback keeps the process alive only while a parse is in flight.
  #setInFlight(delta) {
    this.#inFlight += delta
    const want = this.#inFlight > 0
    if (want !== this.#referred && !this.#closed) {
      this.#referred = want
      this.#native.setRef(want)
    }
  }

  // Rejects every pending parse with ClosedError and stops the threads. Idempotent.
  close() {
    if (!this.#closed) {
      for (const job of [...this.#jobs.values()]) this.#fail(job, new ClosedError('The JSON pool was closed'), 'closed')
      this.#closed = true
      this.#native.close()
    }
    return Promise.resolve()
  }

  get closed() {
    return this.#closed
  }

  stats() {
    return {
      threads: this.#threads,
      maxQueue: this.#maxQueue,
      queueDepth: this.#closed ? 0 : this.#native.queueDepth(),
      inFlight: this.#inFlight,
      completed: this.#stats.completed,
      inline: this.#stats.inline,
      rejected: { ...this.#stats.rejected },
      waitTime: this.#wait.snapshot(),
      parseTime: this.#parseHist.snapshot(),
      buildTime: this.#build.snapshot(),
    }
  }
}

function createJsonPool(options) {
  return new JsonPool(options)
}

let defaultPool = null

// Parses with a pool created on first use (default options); the pool never keeps the process alive.
function parseJson(input, options) {
  if (defaultPool === null || defaultPool.closed) {
    try {
      defaultPool = new JsonPool()
    } catch (err) {
      return Promise.reject(err)
    }
  }
  return defaultPool.parse(input, options)
}

module.exports = { createJsonPool, parseJson, JsonPool }
