'use strict'
// Instructions the HTTP server executes per request, with and without a loop monitor, counted by
// valgrind (callgrind), where wall-clock throughput rounds on a shared 2-core machine vary by
// ±20%. Each mode runs twice with different request counts and the difference is divided by the
// difference in requests, so start-up and warm-up cancel out. On a CPU-bound server, throughput
// on/off = instructions per request off/on. The counts are not exact either (±3.5% run to run
// for the same server, also with one sequential connection): valgrind counts V8's background
// compiler and GC threads, whose work varies.
const { load, startServer } = require('./http')
const { valgrindAvailable } = require('../common')

const VALGRIND = ['valgrind', '--tool=callgrind', '--callgrind-out-file=/dev/null', '--smc-check=all-non-file']

// Total instructions of a server process (mode) that served `count` requests over 8 keep-alive
// connections, then exited.
async function countInstructions(mode, count) {
  const { port, child } = await startServer(mode, VALGRIND)
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  await load(port, { connections: 8, count })
  child.disconnect() // server.js exits on disconnect
  await exited
  const m = stderr.match(/Collected : (\d+)/)
  if (!m) throw new Error(`no instruction count from valgrind:\n${stderr.slice(-2000)}`)
  return Number(m[1])
}

// Instructions per request for 'off' and `mode`; null when valgrind is not installed. The four
// servers run at once (counts do not depend on timing).
async function instructionsPerRequest(mode, { few = 2000, many = 6000 } = {}) {
  if (!valgrindAvailable()) return null
  const [offFew, offMany, onFew, onMany] = await Promise.all([
    countInstructions('off', few),
    countInstructions('off', many),
    countInstructions(mode, few),
    countInstructions(mode, many),
  ])
  return { off: (offMany - offFew) / (many - few), on: (onMany - onFew) / (many - few) }
}

module.exports = { instructionsPerRequest }
