'use strict'
// Stream guards: a body route with a byte limit, an idle limit and Kestrel's minimum rate; the
// tour sends a good body, a declared oversize one and a slow-loris one from raw sockets.
const net = require('node:net')
const { readBody, withTimeout, budget } = require('../..')

const LIMITS = { maxBytes: 64 * 1024, idleTimeoutMs: 2000, minBytesPerSecond: 240, graceMs: 1000 }

// Sends `head` (+ `body`) over a raw socket, optionally trickling one byte every `trickleMs`;
// resolves with the status line and how long the server took to answer.
function rawPost(base, { length, body = '', trickleMs }) {
  const { port } = new URL(base)
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = net.connect(port, '127.0.0.1')
    let data = ''
    let timer
    socket.setEncoding('latin1')
    socket.on('data', (d) => (data += d))
    socket.on('error', reject)
    socket.on('close', () => {
      clearInterval(timer)
      resolve({ status: data.split('\r\n')[0], ms: Date.now() - started, closed: true, body: data.split('\r\n\r\n')[1] })
    })
    socket.write(`POST /stream-guard/upload HTTP/1.1\r\nHost: demo\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n${body}`)
    if (trickleMs) timer = setInterval(() => socket.write('a'), trickleMs)
  })
}

module.exports = {
  title: 'Stream guards: byte, idle and minimum-rate limits on request bodies',
  mount(routes) {
    routes.set('POST /stream-guard/upload', async (req, res) => {
      // With `res`, a violation is answered (413/408, Connection: close) before readBody rejects.
      const body = await readBody(req, { ...LIMITS, res }).catch(() => null)
      if (body === null) return
      const json = JSON.stringify({ received: body.length })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
      res.end(json)
    })
  },
  async tour(base, { log }) {
    const ok = await rawPost(base, { length: 5, body: 'hello' })
    log(`5-byte body                -> ${ok.status} ${ok.body}`)
    const big = await rawPost(base, { length: 10 * 1024 * 1024 })
    log(`declared 10 MiB (limit 64 KiB) -> ${big.status} in ${big.ms} ms, no body byte read`)
    const slow = await rawPost(base, { length: 1000, trickleMs: 250 })
    log(`slow loris at 4 bytes/s (min 240 after 1 s) -> ${slow.status} after ${slow.ms} ms, socket closed: ${slow.closed}`)

    const t = await withTimeout(new Promise(() => {}), 100).catch((err) => err.code)
    log(`withTimeout(never, 100 ms) -> ${t}`)
    const b = budget(20)
    let rounds = 0
    try {
      for (;;) {
        b.check()
        rounds++
      }
    } catch (err) {
      log(`budget(20 ms) stopped a busy loop after ${rounds} rounds with ${err.code}`)
    }
  },
}
