'use strict'
// Loopback HTTP throughput harness shared by bench/loop-delay.js and bench/stall.js: a server in
// a child process (with or without the monitor under test) and a keep-alive load generator here.
const http = require('node:http')
const { execFileSync, fork, spawnSync } = require('node:child_process')
const os = require('node:os')
const path = require('node:path')

// With two or more CPUs and `taskset`, the server gets CPU 1 to itself and this process (the
// load generator) CPU 0: otherwise the scheduler moves both around and single rounds of the
// same server vary by ±20%.
// (Read the CPU count once: availableParallelism() follows this process's own affinity.)
const CPUS = os.availableParallelism()
const PIN = CPUS >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0
const pinSelf = (cpus) => execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' })

// Starts `server.js` in a child with `mode`, resolves with { port, child }. `wrap`: a command
// the server runs under (`[program, ...args]`, e.g. valgrind), with its stderr piped; else the
// server is pinned to CPU 1 where it can be.
function startServer(mode, wrap) {
  return new Promise((resolve, reject) => {
    const run = wrap
      ? { execPath: wrap[0], execArgv: [...wrap.slice(1), process.execPath], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] }
      : { ...(PIN && { execPath: 'taskset', execArgv: ['-c', '1', process.execPath] }), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }
    const child = fork(path.join(__dirname, 'server.js'), [mode], run)
    child.once('message', (m) => resolve({ port: m.port, child }))
    child.once('error', reject)
  })
}

// Sends GET requests over `connections` keep-alive sockets for `ms`, or `count` requests in all;
// resolves with requests/s.
function load(port, { connections = 32, ms = 2500, count = Infinity } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  let started = 0
  let done = 0
  let stop = false
  const begun = Date.now()
  const deadline = count === Infinity ? begun + ms : Infinity
  return new Promise((resolve) => {
    let active = connections
    const one = () => {
      if (stop || Date.now() >= deadline || started >= count) {
        stop = true
        if (--active === 0) {
          agent.destroy()
          resolve((done / (count === Infinity ? ms : Date.now() - begun)) * 1000)
        }
        return
      }
      started++
      http
        .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          res.resume()
          res.on('end', () => {
            done++
            one()
          })
        })
        .on('error', () => one())
    }
    for (let i = 0; i < connections; i++) one()
  })
}

// The server's CPU time (user + system, µs) and requests served so far.
function usage(child) {
  return new Promise((resolve) => {
    child.once('message', resolve)
    child.send('usage')
  })
}

// Alternates off/on rounds; returns { off, on } in requests/s and { offCpu, onCpu } in server
// CPU µs per request (medians of the rounds). Requests/s swings with how the 2 cores are shared
// between server and load generator; the server's CPU time per request does not.
async function compare(onMode, { rounds = 7, ms = 3000 } = {}) {
  if (PIN) pinSelf('0')
  try {
    return await compareRounds(onMode, rounds, ms)
  } finally {
    if (PIN) pinSelf(`0-${CPUS - 1}`)
  }
}

async function compareRounds(onMode, rounds, ms) {
  const results = { off: [], on: [] }
  const cpu = { off: [], on: [] }
  for (let r = 0; r < rounds; r++) {
    for (const mode of ['off', onMode]) {
      const key = mode === 'off' ? 'off' : 'on'
      const { port, child } = await startServer(mode)
      await load(port, { ms: 1000 }) // warm-up: JIT and connection set-up
      const before = await usage(child)
      results[key].push(await load(port, { ms }))
      const after = await usage(child)
      const cpuUs = after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system
      cpu[key].push(cpuUs / (after.served - before.served))
      child.kill()
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
  // Every round, in run order, so the spread behind the medians is visible.
  const rounds_ = (a) => a.map((v) => Math.round(v)).join(' / ')
  console.log(PIN ? 'server pinned to CPU 1, load generator to CPU 0' : 'not pinned (one CPU or no taskset)')
  console.log(`rounds (req/s), off: ${rounds_(results.off)}; on: ${rounds_(results.on)}`)
  const cpus = (a) => a.map((v) => v.toFixed(1)).join(' / ')
  console.log(`rounds (server CPU µs/request), off: ${cpus(cpu.off)}; on: ${cpus(cpu.on)}`)
  return { off: median(results.off), on: median(results.on), offCpu: median(cpu.off), onCpu: median(cpu.on) }
}

module.exports = { compare, load, startServer }
