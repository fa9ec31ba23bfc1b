'use strict'
// The pressure gate: answer 503 at once when the process is unhealthy, so everyone else is served.
//
// The gate samples nothing on the event loop. It reads the state that bulwark's native samplers
// keep current: the loop monitor (per-iteration busy time recorded by libuv hooks), and the memory
// watchdog's last sample (taken by a native thread). `isOverloaded()` is a few native reads and
// comparisons, cheap enough for every request. Each limit has an enter threshold (the limit) and an
// exit threshold (`limit * recoverBelow`), so the gate does not flap around a limit.
//
// Liveness and readiness are different questions:
// - readiness (`/ready`): should this instance get new traffic? Not overloaded, custom checks pass.
// - liveness (`/health`): is the event loop making progress? A handler on the loop can only answer
//   once the loop is free again, so `listenHealth()` answers from a native thread on its own port:
//   503 *while* the loop is stuck.

const { performance } = require('node:perf_hooks')
const { validateObject, validateNumber, validateFunction, validateString, validateOneOf } = require('./validate')
const { ClosedError } = require('./errors')
const { promClientFrom } = require('./internal')
const sources = require('./pressure-sources')

const SERVICE_UNAVAILABLE = 503

// One limit on one metric, with hysteresis: trips above `limit`, recovers at or below `exitLimit`.
class Limit {
  constructor(metric, limit, recoverBelow, read, unit) {
    this.metric = metric
    this.limit = limit
    this.exitLimit = limit * recoverBelow
    this.read = read
    this.unit = unit
    this.tripped = false
    this.value = 0
  }

  update() {
    const value = this.read()
    this.value = value
    if (this.tripped) {
      if (value <= this.exitLimit) this.tripped = false
    } else if (value > this.limit) {
      this.tripped = true
    }
    return this.tripped
  }
}

class PressureGate {
  #limits
  #sources
  #healthCheck
  #healthCheckInterval
  #healthTimer = null
  #checksHealthy = true
  #checkError = null
  #retryAfter
  #message
  #rejectBody
  #rejected = 0
  #admitted = 0
  #closed = false
  #healthListeners = new Set()
  // isOverloaded() re-evaluates at most once per millisecond: the native readings it compares
  // move no faster than that, and a burst of requests then costs one evaluation.
  #evaluatedAt = -Infinity
  #overloaded = false

  constructor(options) {
    options = validateObject(options, 'options')
    const recoverBelow = validateNumber(options.recoverBelow, 'recoverBelow', { min: 0, max: 1, fallback: 0.8 })
    // The loop hook keeps the max and the p99 of its one-second window.
    const percentile = validateOneOf(options.eventLoopDelayPercentile, 'eventLoopDelayPercentile', ['max', 99], 'max')
    this.#retryAfter = validateNumber(options.retryAfter, 'retryAfter', { min: 0, integer: true, fallback: 10 })
    this.#message = validateString(options.message, 'message', 'Service Unavailable')
    this.#healthCheck = validateFunction(options.healthCheck, 'healthCheck', { optional: true })
    this.#healthCheckInterval = validateNumber(options.healthCheckInterval, 'healthCheckInterval', {
      min: 10,
      fallback: 5000,
    })

    const wanted = {
      maxEventLoopDelay: validateNumber(options.maxEventLoopDelay, 'maxEventLoopDelay', { min: 0, fallback: 0 }),
      maxEventLoopUtilization: validateNumber(options.maxEventLoopUtilization, 'maxEventLoopUtilization', {
        min: 0,
        max: 1,
        fallback: 0,
      }),
      maxHeapUsedBytes: validateNumber(options.maxHeapUsedBytes, 'maxHeapUsedBytes', { min: 0, fallback: 0 }),
      maxRssBytes: validateNumber(options.maxRssBytes, 'maxRssBytes', { min: 0, fallback: 0 }),
      maxContainerMemoryRatio: validateNumber(options.maxContainerMemoryRatio, 'maxContainerMemoryRatio', {
        min: 0,
        max: 1,
        fallback: 0,
      }),
    }
    this.#sources = sources.open({
      percentile,
      memory: options.memoryWatchdog,
      needMemory: wanted.maxHeapUsedBytes > 0 || wanted.maxRssBytes > 0 || wanted.maxContainerMemoryRatio > 0,
    })
    const s = this.#sources
    const limits = []
    if (wanted.maxEventLoopDelay > 0) {
      limits.push(new Limit('eventLoopDelay', wanted.maxEventLoopDelay, recoverBelow, s.eventLoopDelayMs, 'ms'))
    }
    if (wanted.maxEventLoopUtilization > 0) {
      limits.push(new Limit('eventLoopUtilization', wanted.maxEventLoopUtilization, recoverBelow, s.eventLoopUtilization, 'ratio'))
    }
    if (wanted.maxHeapUsedBytes > 0) {
      limits.push(new Limit('heapUsedBytes', wanted.maxHeapUsedBytes, recoverBelow, s.heapUsedBytes, 'bytes'))
    }
    if (wanted.maxRssBytes > 0) {
      limits.push(new Limit('rssBytes', wanted.maxRssBytes, recoverBelow, s.rssBytes, 'bytes'))
    }
    if (wanted.maxContainerMemoryRatio > 0) {
      limits.push(
        new Limit('containerMemoryRatio', wanted.maxContainerMemoryRatio, recoverBelow, s.containerMemoryRatio, 'ratio'),
      )
    }
    this.#limits = limits
    this.#rejectBody = JSON.stringify({
      statusCode: SERVICE_UNAVAILABLE,
      code: 'ERR_BULWARK_OVERLOADED',
      error: 'Service Unavailable',
      message: this.#message,
    })
    if (this.#healthCheck) {
      this.#runHealthCheck()
      this.#healthTimer = setInterval(() => this.#runHealthCheck(), this.#healthCheckInterval)
      this.#healthTimer.unref()
    }
  }

  async #runHealthCheck() {
    try {
      const result = await this.#healthCheck()
      this.#checksHealthy = result !== false
      this.#checkError = this.#checksHealthy ? null : 'healthCheck returned false'
    } catch (err) {
      this.#checksHealthy = false
      this.#checkError = err?.message ?? String(err)
    }
    this.#evaluatedAt = -Infinity
    this.isOverloaded()
  }

  /** Runs the custom health check now and resolves once its result is in effect. */
  async refreshHealthCheck() {
    if (this.#healthCheck) await this.#runHealthCheck()
    return this.#checksHealthy
  }

  /** Whether new work should be rejected now: native reads and comparisons, no allocation. */
  isOverloaded() {
    const now = performance.now()
    if (now - this.#evaluatedAt < 1) return this.#overloaded
    this.#evaluatedAt = now
    this.#sources.refresh()
    let overloaded = !this.#checksHealthy
    const limits = this.#limits
    for (let i = 0; i < limits.length; i++) {
      if (limits[i].update()) overloaded = true
    }
    if (overloaded !== this.#overloaded) {
      this.#overloaded = overloaded
      for (const listener of this.#healthListeners) listener.setReady(!overloaded)
    }
    return overloaded
  }

  /** Why the gate is (or is not) overloaded, with every value it compared. */
  status() {
    this.#evaluatedAt = -Infinity
    const overloaded = this.isOverloaded()
    const reasons = []
    const values = {}
    for (const l of this.#limits) {
      values[l.metric] = l.value
      if (l.tripped) reasons.push({ metric: l.metric, value: l.value, limit: l.limit, recoverAt: l.exitLimit, unit: l.unit })
    }
    if (!this.#checksHealthy) reasons.push({ metric: 'healthCheck', error: this.#checkError })
    return {
      overloaded,
      ready: !overloaded,
      reasons,
      values,
      loop: this.#sources.loopState(),
      counts: { admitted: this.#admitted, rejected: this.#rejected },
    }
  }

  /** Answers a rejected request: 503, Retry-After, a small JSON body; the body is not read. */
  reject(res) {
    this.#rejected++
    if (res.headersSent) {
      res.destroy()
      return
    }
    res.writeHead(SERVICE_UNAVAILABLE, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(this.#rejectBody),
      'retry-after': String(this.#retryAfter),
      // The request body is left unread: close the connection so it cannot be taken for the
      // next request on a kept-alive socket.
      connection: 'close',
    })
    res.end(this.#rejectBody)
  }

  /**
   * Middleware for node:http, Connect and Express: `(req, res, next)`. Admitted requests call
   * `next()`; rejected ones get a 503. Without `next` it returns whether the request was admitted.
   */
  middleware() {
    return (req, res, next) => {
      if (this.isOverloaded()) {
        this.reject(res)
        return false
      }
      this.#admitted++
      if (typeof next === 'function') next()
      return true
    }
  }

  /** A handler for `/ready` (readiness): 200 when not overloaded and checks pass, else 503. */
  readyHandler() {
    return (req, res) => {
      const status = this.status()
      const code = status.ready ? 200 : SERVICE_UNAVAILABLE
      const headers = { 'content-type': 'application/json; charset=utf-8' }
      if (!status.ready) headers['retry-after'] = String(this.#retryAfter)
      res.writeHead(code, headers)
      res.end(JSON.stringify({ status: status.ready ? 'ok' : 'overloaded', reasons: status.reasons, values: status.values }))
    }
  }

  /**
   * A handler for `/health` (liveness) on the server's own loop. If it runs, the loop is making
   * progress, so it answers 200 with the loop's recent state; to see a stall while it happens, use
   * `listenHealth()`, which answers from a native thread.
   */
  healthHandler() {
    return (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
      res.end(JSON.stringify({ status: 'ok', loop: this.#sources.loopState() }))
    }
  }

  /**
   * Serves `GET /health` and `GET /ready` from a native thread on its own port, so a probe gets a
   * true answer while the event loop is blocked. Returns `{ port, host, close() }`.
   */
  listenHealth(options) {
    if (this.#closed) throw new ClosedError('The pressure gate is closed')
    options = validateObject(options, 'options')
    const port = validateNumber(options.port, 'port', { min: 0, max: 65535, integer: true, fallback: 0 })
    const host = validateString(options.host, 'host', '127.0.0.1')
    const stallMs = validateNumber(options.stallMs, 'stallMs', { min: 1, fallback: 1000 })
    return this.#sources.listenHealth({ port, host, stallMs, isReady: () => !this.isOverloaded() })
  }

  /** Prometheus text exposition for the gate and the monitors it reads. */
  toPrometheus({ prefix = 'bulwark_pressure' } = {}) {
    validateString(prefix, 'prefix')
    const status = this.status()
    const lines = []
    const metric = (name, type, help, value, labels = '') => {
      lines.push(`# HELP ${prefix}_${name} ${help}`, `# TYPE ${prefix}_${name} ${type}`, `${prefix}_${name}${labels} ${value}`)
    }
    metric('overloaded', 'gauge', 'Whether the gate rejects new requests (1) or admits them (0).', status.overloaded ? 1 : 0)
    metric('rejected_total', 'counter', 'Requests answered 503 by the gate.', this.#rejected)
    metric('admitted_total', 'counter', 'Requests admitted by the gate.', this.#admitted)
    lines.push(`# HELP ${prefix}_value Current value of each limited metric.`, `# TYPE ${prefix}_value gauge`)
    for (const l of this.#limits) lines.push(`${prefix}_value{metric="${l.metric}"} ${l.value}`)
    lines.push(`# HELP ${prefix}_limit Limit of each metric.`, `# TYPE ${prefix}_limit gauge`)
    for (const l of this.#limits) lines.push(`${prefix}_limit{metric="${l.metric}"} ${l.limit}`)
    const monitors = this.#sources.toPrometheus(prefix)
    return `${lines.join('\n')}\n${monitors}`
  }

  /**
   * Registers prom-client metrics fed by this gate (prom-client is an optional peer dependency):
   * `<prefix>bulwark_pressure_overloaded`, `…_rejected_total`, `…_admitted_total`, and
   * `…_value` / `…_limit` labelled by `metric`. Values are read when prom-client collects.
   */
  registerMetrics(options) {
    const opts = validateObject(options, 'options')
    const prefix = validateString(opts.prefix, 'options.prefix', '')
    const client = validateObject(promClientFrom(opts, 'registerMetrics'), 'options.promClient')
    const registers = opts.register === undefined ? undefined : [opts.register]
    const gate = this
    const name = (n) => `${prefix}bulwark_pressure_${n}`
    new client.Gauge({
      name: name('overloaded'),
      help: 'Whether the gate rejects new requests (1) or admits them (0).',
      registers,
      collect() {
        this.set(gate.isOverloaded() ? 1 : 0)
      },
    })
    // prom-client counters only go up by increments: add what happened since the last scrape.
    const counted = { rejected: 0, admitted: 0 }
    for (const [key, help] of [
      ['rejected', 'Requests answered 503 by the gate.'],
      ['admitted', 'Requests admitted by the gate.'],
    ]) {
      new client.Counter({
        name: name(`${key}_total`),
        help,
        registers,
        collect() {
          const now = key === 'rejected' ? gate.#rejected : gate.#admitted
          this.inc(now - counted[key])
          counted[key] = now
        },
      })
    }
    for (const [key, help] of [
      ['value', 'Current value of each limited metric.'],
      ['limit', 'Limit of each metric.'],
    ]) {
      new client.Gauge({
        name: name(key),
        help,
        labelNames: ['metric'],
        registers,
        collect() {
          gate.isOverloaded()
          for (const l of gate.#limits) this.set({ metric: l.metric }, key === 'value' ? l.value : l.limit)
        },
      })
    }
  }

  /** Stops the health-check timer and the monitors the gate started itself. Idempotent. */
  close() {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#healthTimer)
    for (const listener of this.#healthListeners) listener.close()
    this.#healthListeners.clear()
    this.#sources.close()
  }
}

/** Creates a pressure gate. Option names follow `@fastify/under-pressure` where the meaning matches. */
function pressure(options) {
  return new PressureGate(options)
}

/**
 * A Fastify plugin: `fastify.register(fastifyPressure, options)`. Options are the gate's, plus
 * under-pressure's `exposeStatusRoute` (string or `{ url }`) and `pressureHandler`. Decorates the
 * instance with `isUnderPressure()`, `memoryUsage()` and `pressureGate`.
 */
function fastifyPressure(fastify, opts, done) {
  let gate
  try {
    const { exposeStatusRoute, pressureHandler, ...gateOptions } = opts ?? {}
    if (pressureHandler !== undefined) validateFunction(pressureHandler, 'pressureHandler')
    gate = pressure(gateOptions)
    fastify.decorate('pressureGate', gate)
    fastify.decorate('isUnderPressure', () => gate.isOverloaded())
    fastify.decorate('memoryUsage', () => {
      const { values } = gate.status()
      return {
        eventLoopDelay: values.eventLoopDelay ?? 0,
        rssBytes: values.rssBytes ?? 0,
        heapUsed: values.heapUsedBytes ?? 0,
        eventLoopUtilized: values.eventLoopUtilization ?? 0,
      }
    })
    fastify.addHook('onRequest', (req, reply, next) => {
      if (!gate.isOverloaded()) return next()
      if (pressureHandler) {
        const status = gate.status()
        const first = status.reasons[0] ?? {}
        return Promise.resolve(pressureHandler(req, reply, first.metric, first.value)).then(
          (result) => (result == null ? next() : reply.send(result)),
          next,
        )
      }
      gate.reject(reply.raw)
      reply.hijack()
    })
    fastify.addHook('onClose', (_instance, closeDone) => {
      gate.close()
      closeDone()
    })
    if (exposeStatusRoute) {
      const url = typeof exposeStatusRoute === 'string' ? exposeStatusRoute : (exposeStatusRoute.url ?? '/status')
      const ready = gate.readyHandler()
      fastify.get(url, (req, reply) => {
        reply.hijack()
        ready(req.raw, reply.raw)
      })
    }
  } catch (err) {
    done(err)
    return
  }
  done()
}
// What `fastify-plugin` does: the hooks and decorations apply to the whole instance.
fastifyPressure[Symbol.for('skip-override')] = true
fastifyPressure[Symbol.for('fastify.display-name')] = 'bulwark-pressure'
fastifyPressure[Symbol.for('plugin-meta')] = { name: 'bulwark-pressure', fastify: '>=4' }

module.exports = { pressure, PressureGate, fastifyPressure }
