'use strict'
// Event-loop delay: per-iteration blocking time, a drop-in for perf_hooks.monitorEventLoopDelay.
const { monitorEventLoopDelay, loopPressure } = require('../..')
const { block } = require('../block')

const monitor = monitorEventLoopDelay()

module.exports = {
  title: 'Event-loop delay: every iteration measured, nothing sampled',
  mount(routes, ctx) {
    monitor.enable()
    ctx.stops.push(() => {
      monitor.disable()
    })
    routes.set('GET /loop/block', (req, res) => {
      const ms = Math.min(1000, Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 20))
      block(ms)
      res.end(`blocked ${ms} ms\n`)
    })
    routes.set('GET /loop/stats', (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ histogram: monitor.toJSON(), pressure: loopPressure() }))
    })
    routes.set('GET /loop/metrics', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
      res.end(monitor.toPrometheus({ labels: { app: 'demo' } }))
    })
  },
  async tour(base, { log }) {
    monitor.reset()
    for (const ms of [5, 30, 120]) await (await fetch(`${base}/loop/block?ms=${ms}`)).text()
    const { histogram, pressure } = await (await fetch(`${base}/loop/stats`)).json()
    log(`3 requests blocked 5, 30 and 120 ms -> ${histogram.count} iterations, max ${(histogram.max / 1e6).toFixed(2)} ms, p50 ${(histogram.percentiles['50'] / 1e6).toFixed(3)} ms`)
    log(`utilisation since reset ${(histogram.utilization * 100).toFixed(1)}%, blocked right now ${pressure.blockedMs.toFixed(2)} ms`)
    const metrics = await (await fetch(`${base}/loop/metrics`)).text()
    log(`GET /loop/metrics -> ${metrics.split('\n').find((l) => l.includes('quantile="0.99"'))}`)
  },
}
