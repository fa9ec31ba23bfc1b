'use strict'
// JSON bodies parsed off the event loop, limit-checked and protected against prototype poisoning.
const { createJsonPool, BulwarkError } = require('../..')

module.exports = {
  title: 'JSON: untrusted bodies parsed off the event loop',
  mount(routes, ctx) {
    const pool = createJsonPool({ threads: 2, maxBytes: 1024 * 1024, maxDepth: 32 })
    ctx.stops.push(() => pool.close())
    ctx.jsonPool = pool
    routes.set('POST /json', async (req, res) => {
      const chunks = []
      for await (const c of req) chunks.push(c)
      const select = new URL(req.url, 'http://x').searchParams.get('select') ?? undefined
      try {
        const value = await pool.parse(Buffer.concat(chunks), { select, timeoutMs: 2000 })
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ type: Array.isArray(value) ? 'array' : typeof value, value: select ? value : undefined }))
      } catch (err) {
        if (!(err instanceof BulwarkError)) throw err
        res.writeHead(err.statusCode ?? 500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ code: err.code, message: err.message }))
      }
    })
  },
  async tour(base, { log, jsonPool }) {
    const post = async (body, query = '') => {
      const r = await fetch(`${base}/json${query}`, { method: 'POST', body })
      return `${r.status} ${await r.text()}`
    }
    const big = JSON.stringify({ users: Array.from({ length: 20000 }, (_, i) => ({ id: i, name: `user ${i}` })) })
    log(`POST ${(big.length / 1e6).toFixed(1)} MB body           -> ${await post(big)}`)
    log(`POST same, ?select=/users/42/name -> ${await post(big, '?select=/users/42/name')}`)
    log(`POST '{"a": }'                    -> ${await post('{"a": }')}`)
    log(`POST '{"__proto__": {"x": 1}}'    -> ${await post('{"__proto__": {"x": 1}}')}`)
    log(`POST 40 nested arrays             -> ${await post('['.repeat(40) + ']'.repeat(40))}`)
    const s = jsonPool.stats()
    log(`pool stats: completed ${s.completed}, inline ${s.inline}, rejected ${JSON.stringify(s.rejected)}`)
  },
}
