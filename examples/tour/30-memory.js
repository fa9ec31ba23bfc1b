'use strict'
// Memory watchdog: RSS, V8 heap and container memory sampled by a native thread, with
// hysteresis triggers; `stats()` is cheap enough for a health endpoint on every request.
const { memoryWatchdog } = require('../..')

const MB = 1024 * 1024
const fmtMB = (b) => (b === null ? 'n/a' : `${(b / MB).toFixed(1)} MB`)

module.exports = {
  title: 'Memory watchdog: RSS, heap and container limits, sampled off the loop',
  mount(routes, ctx) {
    // Warn when the heap grows 24 MB past its size at start-up (the tour makes it happen);
    // RSS against 85% / 95% of the effective limit (container limit, else physical memory).
    const heapAtStart = process.memoryUsage().heapUsed
    const watchdog = memoryWatchdog({
      intervalMs: 100,
      heapIntervalMs: 50,
      sustainMs: 0,
      limits: { rss: { warn: '85%', critical: '95%' }, heapUsed: { warn: heapAtStart + 24 * MB } },
    })
    ctx.memory = watchdog // later parts (e.g. a pressure gate) can read it
    ctx.stops.push(() => watchdog.stop())
    routes.set('GET /memory', (req, res) => {
      const s = watchdog.stats()
      res.writeHead(s.level === 'critical' ? 503 : 200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(s))
    })
  },
  async tour(base, { log, memory }) {
    const s = await (await fetch(`${base}/memory`)).json()
    log(`GET /memory -> level ${s.level}, rss ${fmtMB(s.rss)}, heapUsed ${fmtMB(s.heapUsed)} of ${fmtMB(s.heapLimit)}`)
    log(`effective limit ${fmtMB(s.effectiveLimit)} (container limit ${fmtMB(s.containerLimit)}, cgroup v${s.cgroupVersion ?? '-'}), ${s.samples} native samples so far`)
    const warned = new Promise((resolve) => memory.once('warn', resolve))
    const hold = []
    for (let i = 0; i < 30; i++) hold.push(new Array(100_000).fill(i).map(String))
    const timeout = new Promise((resolve) => setTimeout(resolve, 5000).unref())
    const e = await Promise.race([warned, timeout])
    if (!e) throw new Error('no warn event within 5 s')
    log(`allocated ${hold.length} arrays of 100k strings -> '${e.type}' on ${e.metric}: ${fmtMB(e.value)} >= ${fmtMB(e.limit)}`)
    log(`stats() costs no native call; level is now '${memory.level}'`)
    hold.length = 0
  },
}
