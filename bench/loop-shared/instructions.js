'use strict'
// Instructions the HTTP server executes per request, with and without a loop monitor, counted by
// valgrind (callgrind), where wall-clock throughput rounds on a shared 2-core machine vary by
// ±20%. Each mode runs twice with different request counts and the difference is divided by the
// difference in requests, so start-up and warm-up cancel out. On a CPU-bound server, throughput
// on/off = instructions per request off/on. The counts are not exact either (±3.5% run to run
// for the same server, also with one sequential connection): valgrind counts V8's background
// compiler and GC threads, whose work varies.
const http = require('node:http')
const path = require('node:path')
const { fork, spawnSync } = require('node:child_process')

const available = () => spawnSync('valgrind', ['--version']).status === 0

// Sends exactly `count` GET requests over `connections` keep-alive sockets.
function send(port, count, connections = 8) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  let started = 0
  let done = 0
  return new Promise((resolve, reject) => {
    const one = () => {
      if (started >= count) return
      started++
      http
        .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          res.resume()
          res.on('end', () => {
            if (++done === count) {
              agent.destroy()
              resolve()
            } else one()
          })
        })
        .on('error', reject)
    }
    for (let i = 0; i < connections; i++) one()
  })
}

// Total instructions of a server process (mode) that served `count` requests, then exited.
function countInstructions(mode, count) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'server.js'), [mode], {
      execPath: 'valgrind',
      execArgv: ['--tool=callgrind', '--callgrind-out-file=/dev/null', '--smc-check=all-non-file', process.execPath],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.once('error', reject)
    child.once('message', async ({ port }) => {
      try {
        await send(port, count)
      } catch (err) {
        reject(err)
      }
      child.disconnect() // server.js exits on disconnect
    })
    child.once('exit', () => {
      const m = stderr.match(/Collected : (\d+)/)
      if (m) resolve(Number(m[1]))
      else reject(new Error(`no instruction count from valgrind:\n${stderr.slice(-2000)}`))
    })
  })
}

// Instructions per request for 'off' and `mode`; null when valgrind is not installed. The four
// servers run at once (counts do not depend on timing).
async function instructionsPerRequest(mode, { few = 2000, many = 6000 } = {}) {
  if (!available()) return null
  const [offFew, offMany, onFew, onMany] = await Promise.all([
    countInstructions('off', few),
    countInstructions('off', many),
    countInstructions(mode, few),
    countInstructions(mode, many),
  ])
  return { off: (offMany - offFew) / (many - few), on: (onMany - onFew) / (many - few) }
}

module.exports = { instructionsPerRequest }
