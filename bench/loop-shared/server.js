'use strict'
// The HTTP server of the throughput benchmarks. argv[2]: 'off' | 'monitor' | 'watchdog'.
const http = require('node:http')
const bulwark = require('../..')

const mode = process.argv[2]
// Kept referenced for the whole run, so the measured server really has it enabled.
if (mode === 'monitor') globalThis.monitor = bulwark.monitorEventLoopDelay()
if (mode === 'monitor') globalThis.monitor.enable()
if (mode === 'watchdog') globalThis.monitor = bulwark.watchdog({ thresholdMs: 100, log: true, onStall() {} })
const body = JSON.stringify({ hello: 'world' })
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
})
let served = 0
server.on('request', () => served++)
// The parent asks for CPU time and requests served around each measured window.
process.on('message', (m) => {
  if (m === 'usage') process.send({ cpu: process.cpuUsage(), served })
})
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('disconnect', () => process.exit(0))
