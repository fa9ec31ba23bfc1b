'use strict'
// `npm run demo`: a small hardened node:http server that shows each bulwark capability.
//
// Each capability has one part in examples/tour/ that exports
//   { title, mount(routes, ctx), tour(baseUrl, ctx) }
// `mount` adds routes (`routes.set('GET /path', handler)`), and `tour` exercises them against
// the running server and prints what happened. The demo runs the tour and exits;
// `npm run demo -- --serve` keeps serving afterwards (Ctrl-C to stop).
//
// Flags: --serve (keep running), --port N (default 0: any free port).

const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')

const args = process.argv.slice(2)
const serve = args.includes('--serve')
const portArg = args.indexOf('--port')
const port = portArg >= 0 ? Number(args[portArg + 1]) : 0

const parts = fs
  .readdirSync(path.join(__dirname, 'tour'))
  .filter((f) => f.endsWith('.js'))
  .sort()
  .map((f) => require(path.join(__dirname, 'tour', f)))

const routes = new Map()
// Shared between parts: what is running (monitors, gates), so parts can build on each other and
// the demo can stop everything on the way out.
const ctx = { stops: [], log: (...a) => console.log('   ', ...a) }

for (const part of parts) part.mount(routes, ctx)

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://localhost')
  const handler = routes.get(`${req.method} ${pathname}`)
  if (!handler) {
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: 'not found', routes: [...routes.keys()] }))
    return
  }
  Promise.resolve()
    .then(() => handler(req, res))
    .catch((err) => {
      if (!res.headersSent) {
        res.writeHead(err.statusCode ?? 500, { 'content-type': 'application/json', connection: 'close' })
        res.end(JSON.stringify({ error: err.message, code: err.code }))
      } else {
        res.destroy(err)
      }
    })
})

server.listen(port, '127.0.0.1', async () => {
  const { port: actual } = server.address()
  const base = `http://127.0.0.1:${actual}`
  console.log(`bulwark demo listening on ${base}\n`)
  let failures = 0
  for (const part of parts) {
    console.log(`-- ${part.title}`)
    try {
      await part.tour(base, ctx)
    } catch (err) {
      failures++
      console.log(`    FAILED: ${err.stack}`)
    }
    console.log()
  }
  if (serve) {
    console.log(`Serving on ${base} (routes: ${[...routes.keys()].join(', ')}). Ctrl-C to stop.`)
    return
  }
  for (const stop of ctx.stops.reverse()) await stop()
  server.closeAllConnections?.()
  server.close(() => {
    console.log(failures === 0 ? 'Tour complete.' : `Tour finished with ${failures} failing part(s).`)
    process.exitCode = failures === 0 ? 0 : 1
  })
})
