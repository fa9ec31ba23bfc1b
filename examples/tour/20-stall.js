'use strict'
// Stall watchdog: a native thread sees the loop blocked while it is blocked and names the code.
const { watchdog } = require('../..')

// Its own function on purpose: the stack the watchdog captures names it.
function slowHandler(ms) {
  const end = performance.now() + ms
  while (performance.now() < end);
}

module.exports = {
  title: 'Stall watchdog: sees a blocked loop from outside and names the blocking code',
  mount(routes) {
    routes.set('GET /stall/block', (req, res) => {
      const ms = Math.min(2000, Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 250))
      slowHandler(ms)
      res.end(`blocked ${ms} ms\n`)
    })
  },
  async tour(base, { log, stops }) {
    let resolveStall
    const stalled = new Promise((r) => (resolveStall = r))
    // log: false keeps the demo output tidy; in production the stderr JSON lines are the point.
    const wd = watchdog({ thresholdMs: 100, log: false, captureStack: true, onStall: resolveStall })
    stops.push(() => wd.stop())
    await wd.ready
    await (await fetch(`${base}/stall/block?ms=250`)).text()
    const info = await stalled
    const top = info.stack?.find((f) => f.url.startsWith('file:'))
    log(`GET /stall/block?ms=250 -> onStall: ${info.durationMs.toFixed(1)} ms, started ${new Date(info.startedAt).toISOString()}`)
    log(`blocking code: ${top ? `${top.functionName} (${top.url.split('/').pop()}:${top.lineNumber})` : 'stack not captured'}`)
  },
}
