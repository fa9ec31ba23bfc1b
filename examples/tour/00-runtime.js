'use strict'
// The foundation: the addon loads, reports its instance, and its errors carry codes.
const { runtimeInfo, InvalidArgError, BulwarkError } = require('../..')

module.exports = {
  title: 'Runtime: the native addon is loaded',
  mount(routes) {
    routes.set('GET /runtime', (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(runtimeInfo()))
    })
  },
  async tour(base, { log }) {
    const info = await (await fetch(`${base}/runtime`)).json()
    log(`GET /runtime -> addon ${info.addonVersion}, instance ${info.instanceId}`)
    const err = new InvalidArgError('example')
    log(`errors carry codes: ${err.code}, instanceof BulwarkError: ${err instanceof BulwarkError}`)
  },
}
