'use strict'
// The pressure gate: under an injected CPU hog the demo sheds requests with 503 + Retry-After,
// keeps answering its native liveness probe, and recovers once the hog is gone.
const { pressure } = require('../..')
const { block } = require('../block')

module.exports = {
  title: 'Pressure gate: shed load with 503 under a CPU hog, then recover',
  mount(routes, ctx) {
    const gate = pressure({ maxEventLoopDelay: 100, retryAfter: 2 })
    ctx.pressureGate = gate
    ctx.stops.push(() => gate.close())
    const admit = gate.middleware()
    routes.set('GET /pressure/work', (req, res) => admit(req, res, () => res.end('done')))
    routes.set('GET /ready', gate.readyHandler())
    // Injects a CPU hog: 150 ms busy slices for `ms` milliseconds, requests served in between.
    routes.set('GET /pressure/hog', (req, res) => {
      const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 1500)
      const end = performance.now() + ms
      const step = () => {
        block(150)
        if (performance.now() < end) setImmediate(step)
      }
      setImmediate(step)
      res.end('hogging')
    })
  },
  async tour(base, { log, pressureGate }) {
    const health = pressureGate.listenHealth({ stallMs: 500 })
    const statusOf = async (path) => (await fetch(`${base}${path}`)).status
    // Earlier parts of the tour block the loop on purpose: start from a calm loop.
    const calmBy = Date.now() + 5000
    while ((await statusOf('/pressure/work')) === 503 && Date.now() < calmBy) await new Promise((r) => setTimeout(r, 100))
    log(`before: /pressure/work -> ${await statusOf('/pressure/work')}, /ready -> ${await statusOf('/ready')}`)
    await fetch(`${base}/pressure/hog?ms=1500`)
    const seen = []
    let rejected
    const end = Date.now() + 1500
    while (Date.now() < end) {
      const res = await fetch(`${base}/pressure/work`)
      seen.push(res.status)
      if (res.status === 503 && !rejected) rejected = { retryAfter: res.headers.get('retry-after'), body: await res.json() }
      else await res.arrayBuffer()
    }
    log(`during a 1.5 s CPU hog: ${seen.filter((s) => s === 503).length} of ${seen.length} requests shed with 503`)
    if (rejected) log(`a rejection: Retry-After ${rejected.retryAfter}, body ${JSON.stringify(rejected.body)}`)
    log(`why: ${JSON.stringify(pressureGate.status().reasons)}`)
    const probe = await fetch(`http://127.0.0.1:${health.port}/health`)
    log(`native liveness probe on port ${health.port}: ${probe.status} ${await probe.text()}`)
    const recoverStart = Date.now()
    let status = 503
    while (status === 503 && Date.now() - recoverStart < 8000) {
      await new Promise((r) => setTimeout(r, 100))
      status = await statusOf('/pressure/work')
    }
    log(`recovered: /pressure/work -> ${status} ${Date.now() - recoverStart} ms after the hog ended`)
    health.close()
  },
}
