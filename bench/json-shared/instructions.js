'use strict'
// Main-thread instructions per parse, counted by valgrind (callgrind, one output file per
// thread), for `BENCH_INSTRUCTIONS=1 npm run bench -- json`. Wall-clock and CPU-time ratios on
// this shared 2-core VM move ±20–40% run to run (the baselines as much as bulwark); instruction
// counts of the JS thread are nearly repeatable, so they say which side of a ratio target a
// method is on. Each (document, method) runs twice in a child process, with `FEW` and `MANY`
// parses after the same warm-up; the difference divided by the difference in parses cancels
// start-up, compilation and warm-up. The main thread's count includes its GC work, not the pool
// threads' scan (which is off the loop by design).
//
// Child mode: `node instructions.js <file> <method> <count>`.
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { valgrindAvailable } = require('../common')

const METHODS = ['JSON.parse(buf.toString())', 'JSON.parse(string)', 'bulwark parse(buf)', 'bulwark parse(string)']
const FEW = 10
const MANY = 30
const WARMUP = 5

function child() {
  const [file, method, count] = [process.argv[2], process.argv[3], Number(process.argv[4])]
  const { createJsonPool } = require('../..')
  const buf = fs.readFileSync(file)
  const str = buf.toString()
  const pool = createJsonPool({ threads: 1, maxBytes: 64e6 })
  const fns = {
    'JSON.parse(buf.toString())': () => JSON.parse(buf.toString()),
    'JSON.parse(string)': () => JSON.parse(str),
    'bulwark parse(buf)': () => pool.parse(buf),
    'bulwark parse(string)': () => pool.parse(str),
  }
  const fn = fns[method]
  const tick = () => new Promise((resolve) => setImmediate(resolve))
  ;(async () => {
    for (let i = 0; i < WARMUP + count; i++) {
      await fn()
      await tick()
    }
    await pool.close()
  })()
}

// Instructions of the main thread of one child run.
function countMain(file, method, count) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-cg-'))
  return new Promise((resolve, reject) => {
    const args = [
      '--tool=callgrind',
      '--separate-threads=yes',
      '--smc-check=all-non-file',
      `--callgrind-out-file=${path.join(dir, 'out')}`,
      process.execPath,
      __filename,
      file,
      method,
      String(count),
    ]
    const p = spawn('valgrind', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    p.stderr.on('data', (d) => (stderr += d))
    p.on('exit', (code) => {
      try {
        // Thread 1 is the JS thread: callgrind names its file "<out>-01" (with the pid before).
        const main = fs.readdirSync(dir).find((f) => f.endsWith('-01'))
        const text = main && fs.readFileSync(path.join(dir, main), 'latin1')
        const m = text && text.match(/^(?:summary|totals): (\d+)/m)
        if (code !== 0 || !m) throw new Error(`callgrind run failed (exit ${code}):\n${stderr.slice(-1500)}`)
        resolve(Number(m[1]))
      } catch (err) {
        reject(err)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}

// Runs `jobs` (functions returning promises) two at a time: the machine has 2 cores and counts
// do not depend on timing.
async function twoAtATime(jobs) {
  const results = new Array(jobs.length)
  let next = 0
  const lane = async () => {
    while (next < jobs.length) {
      const i = next++
      results[i] = await jobs[i]()
    }
  }
  await Promise.all([lane(), lane()])
  return results
}

// { [document]: { [method]: instructions per parse } }, or null without valgrind.
async function instructionsPerParse(files) {
  if (!valgrindAvailable()) return null
  const cells = []
  for (const [name, file] of Object.entries(files)) for (const method of METHODS) cells.push({ name, file, method })
  const jobs = cells.flatMap((c) => [() => countMain(c.file, c.method, FEW), () => countMain(c.file, c.method, MANY)])
  const counts = await twoAtATime(jobs)
  const out = {}
  cells.forEach((c, i) => {
    out[c.name] ??= {}
    out[c.name][c.method] = (counts[2 * i + 1] - counts[2 * i]) / (MANY - FEW)
  })
  return out
}

if (require.main === module) child()

module.exports = { instructionsPerParse, METHODS }
