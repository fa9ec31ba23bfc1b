'use strict'
// SafeRegExp: a linear-time RegExp for patterns and inputs that come from users.
const { SafeRegExp, RegexUnsupportedError } = require('../..')

module.exports = {
  title: 'SafeRegExp: user-supplied patterns without ReDoS',
  mount(routes) {
    routes.set('POST /regex', (req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        const { pattern, flags, input } = JSON.parse(body)
        res.writeHead(200, { 'content-type': 'application/json' })
        try {
          const started = process.hrtime.bigint()
          const matched = new SafeRegExp(pattern, flags).test(input)
          res.end(JSON.stringify({ matched, ms: Number(process.hrtime.bigint() - started) / 1e6 }))
        } catch (err) {
          res.end(JSON.stringify({ error: err.code, message: err.message }))
        }
      })
    })
  },
  async tour(base, { log }) {
    const post = async (b) =>
      (await fetch(`${base}/regex`, { method: 'POST', body: JSON.stringify(b) })).json()
    const r = await post({ pattern: '^(a+)+$', flags: '', input: 'a'.repeat(100000) + '!' })
    log(`/^(a+)+$/ on 100 001 chars -> matched ${r.matched} in ${r.ms.toFixed(1)} ms (V8 would hang)`)
    const e = await post({ pattern: '(a)\\1', flags: '', input: 'aa' })
    log(`backreference -> ${e.error}`)
    const mb = 'lorem ipsum 12345 dolor '.repeat(44_000)
    const t0 = process.hrtime.bigint()
    const masked = mb.replace(new SafeRegExp('\\d+', 'g'), '#')
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    log(`global replace over ${(mb.length / 1e6).toFixed(2)} M chars (44 000 matches, one native call per 1024) -> ${ms.toFixed(1)} ms, same as RegExp: ${masked === mb.replace(/\d+/g, '#')}`)
    log(`'a😀b'.split(new SafeRegExp('', 'u')) -> ${JSON.stringify('a😀b'.split(new SafeRegExp('', 'u')))}`)
    log(`RegexUnsupportedError is a SyntaxError: ${new RegexUnsupportedError('x') instanceof SyntaxError}`)
  },
}
