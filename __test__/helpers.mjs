// Shared helpers for the test suite: child processes and workers with bounded lifetimes.
import { spawn } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// Runs `node <args>` (or a script given as `-e` source) and resolves with its exit and output.
// Always ends: the child is killed after `timeoutMs`.
export function runNode(args, { timeoutMs = 20_000, env, cwd = repoRoot, onSpawn } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    onSpawn?.(child)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6
      resolve({ code, signal, stdout, stderr, elapsedMs })
    })
  })
}

// Starts a worker and resolves with its first message (rejects on error or early exit).
export function workerMessage(file, workerData) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(file, { workerData })
    worker.once('message', (m) => resolve({ message: m, worker }))
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`worker exited early with ${code}`)))
  })
}
