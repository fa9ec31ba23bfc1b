// Shared helpers for the test suite: child processes and workers with bounded lifetimes.
import { execFileSync, spawn } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import path from 'node:path'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// Runs `node <args>` (or a script given as `-e` source) and resolves with its exit and output.
// Always ends: the child is killed after `timeoutMs`. With `cgroup` (a directory from
// `memoryCgroup`), the child joins that cgroup before Node starts.
export function runNode(args, { timeoutMs = 20_000, env, cwd = repoRoot, onSpawn, cgroup } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const [file, argv] = cgroup
      ? ['/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, process.execPath, ...args]]
      : [process.execPath, args]
    const child = spawn(file, argv, {
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

// A real memory cgroup with `limitBytes`, made under this process's own one (cgroup v1 memory
// hierarchy, or v2 where the parent delegates the memory controller). Needs root or a delegated
// cgroup; returns null where the kernel refuses, with the reason in `memoryCgroup.why`.
// `remove()` deletes it once its processes have ended. It finds the cgroup on its own rather
// than through src/memory/cgroup.rs: that locator is what the tests check.
export function memoryCgroup(limitBytes) {
  try {
    const own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n')
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    const v1 = own.find((l) => l.split(':')[1]?.split(',').includes('memory'))
    const mountOf = (test) => {
      const line = mounts.find((m) => test(m.split(' - ')[1]?.split(' ') ?? []))
      return line && { root: line.split(' ')[3], point: line.split(' ')[4] }
    }
    let version, mount, rel
    if (v1) {
      version = 1
      mount = mountOf(([type, , opts]) => type === 'cgroup' && opts?.split(',').includes('memory'))
      rel = v1.split(':').slice(2).join(':')
    } else {
      version = 2
      mount = mountOf(([type]) => type === 'cgroup2')
      rel = own.find((l) => l.startsWith('0::'))?.slice(3)
    }
    if (!mount || rel === undefined) throw new Error('no memory cgroup mounted')
    if (rel.startsWith(mount.root)) rel = rel.slice(mount.root.length)
    const parent = path.join(mount.point, rel)
    const dir = path.join(parent, `bulwark-test-${process.pid}-${++memoryCgroup.count}`)
    fs.mkdirSync(dir)
    try {
      fs.writeFileSync(path.join(dir, version === 1 ? 'memory.limit_in_bytes' : 'memory.max'), String(limitBytes))
    } catch (err) {
      fs.rmdirSync(dir)
      throw err
    }
    return { dir, version, remove: () => fs.rmdirSync(dir) }
  } catch (err) {
    memoryCgroup.why = err.message
    return null
  }
}
memoryCgroup.count = 0

// A tmpfs of `sizeBytes` mounted on a new temporary directory (needs root); null where mount is
// refused, with the reason in `smallTmpfs.why`. `remove()` unmounts and deletes it.
export function smallTmpfs(sizeBytes, prefix) {
  const dir = fs.mkdtempSync(prefix)
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'pipe' })
  } catch (err) {
    fs.rmdirSync(dir)
    smallTmpfs.why = String(err.stderr || err.message).trim()
    return null
  }
  return {
    dir,
    remove: () => {
      execFileSync('umount', [dir])
      fs.rmdirSync(dir)
    },
  }
}
