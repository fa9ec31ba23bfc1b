import { describe, it, expect } from 'vitest'
import { createRequire } from 'node:module'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { repoRoot, runNode, workerMessage } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bulwark = require('bulwark')
const binding = require('../binding.js')

describe('loading', () => {
  it('offers the same named exports to require and import', async () => {
    // A real Node ESM import (Vitest's own module runner would transform the file).
    const script = `
      import * as esm from 'bulwark'
      import { createRequire } from 'node:module'
      const cjs = createRequire(import.meta.url)('bulwark')
      console.log(JSON.stringify({
        // Node >= 23 also offers the whole CJS exports object as the 'module.exports' export.
        esm: Object.keys(esm).filter((k) => k !== 'default' && k !== 'module.exports').sort(),
        cjs: Object.keys(cjs).sort(),
        sameDefault: esm.default === cjs,
      }))
    `
    const { code, stdout, stderr } = await runNode(['--input-type=module', '-e', script])
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const { esm, cjs, sameDefault } = JSON.parse(stdout)
    expect(esm).toEqual(cjs)
    expect(cjs).toEqual(Object.keys(bulwark).sort())
    expect(sameDefault).toBe(true)
  })

  it('reports the addon version and its environment', () => {
    const info = bulwark.runtimeInfo()
    expect(info.addonVersion).toBe(require('../package.json').version)
    expect(info.instanceId).toBeGreaterThan(0)
    expect(info.liveInstances).toBeGreaterThanOrEqual(1)
  })

  it('loads in 3 concurrent workers, each with its own environment, and releases them', async () => {
    const mainInfo = bulwark.runtimeInfo()
    const file = path.join(repoRoot, '__test__/fixtures/worker-runtime.cjs')
    const runs = await Promise.all([0, 1, 2].map(() => workerMessage(file)))
    const ids = runs.map((r) => r.message.info.instanceId)
    expect(new Set([...ids, mainInfo.instanceId]).size).toBe(4)
    for (const { message } of runs) {
      expect(message.exports).toEqual(Object.keys(bulwark).sort())
      expect(message.errorCheck).toEqual({ message: 'panic inside a worker', isError: true })
    }
    expect(bulwark.runtimeInfo().liveInstances).toBe(mainInfo.liveInstances + 3)
    await Promise.all(runs.map((r) => r.worker.terminate()))
    // The cleanup hooks of the terminated workers have run: only this thread's instances are left.
    expect(bulwark.runtimeInfo().liveInstances).toBe(mainInfo.liveInstances)
  })

  it('can be required again after a module-cache reset; both loads keep working', async () => {
    // In a child, so this file's own module instances stay untouched.
    const script = `
      const first = require('bulwark')
      const a = first.runtimeInfo()
      for (const key of Object.keys(require.cache)) delete require.cache[key]
      const second = require('bulwark')
      const b = second.runtimeInfo()
      console.log(JSON.stringify({ a, b, firstAgain: first.runtimeInfo(), distinct: first !== second }))
    `
    const { code, stdout, stderr } = await runNode(['-e', script])
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const { a, b, firstAgain, distinct } = JSON.parse(stdout)
    expect(distinct).toBe(true)
    expect(b.instanceId).not.toBe(a.instanceId)
    expect(b.liveInstances).toBe(2)
    expect(firstAgain.instanceId).toBe(a.instanceId)
  })
})

describe('panics', () => {
  it('surface as a JS Error instead of aborting the process', () => {
    expect(() => binding.__panicForTest('boom from Rust')).toThrow(Error)
    expect(() => binding.__panicForTest('boom from Rust')).toThrow('boom from Rust')
  })

  it('leave the host alive: a child that catches one exits normally', async () => {
    const script = `
      const b = require('./binding.js')
      try { b.__panicForTest('x') } catch (e) { console.log('caught', e.message) }
      console.log('alive')
    `
    const { code, stdout } = await runNode(['-e', script])
    expect(code).toBe(0)
    expect(stdout).toContain('caught x')
    expect(stdout).toContain('alive')
  })
})

describe('errors', () => {
  const { BulwarkError, InvalidArgError, OutOfRangeError, ClosedError, InternalError, AbortError } =
    bulwark

  it('every class is a BulwarkError with a stable code', () => {
    const cases = [
      [new InvalidArgError('x'), TypeError, 'ERR_BULWARK_INVALID_ARG'],
      [new OutOfRangeError('x'), RangeError, 'ERR_BULWARK_OUT_OF_RANGE'],
      [new ClosedError(), Error, 'ERR_BULWARK_CLOSED'],
      [new InternalError('x'), Error, 'ERR_BULWARK_INTERNAL'],
      [new AbortError(), Error, 'ERR_BULWARK_ABORTED'],
    ]
    for (const [err, Base, code] of cases) {
      expect(err).toBeInstanceOf(BulwarkError)
      expect(err).toBeInstanceOf(Base)
      expect(err.code).toBe(code)
      expect(err.stack).toContain(err.name)
    }
    expect(new InternalError('x').statusCode).toBe(500)
    expect(new AbortError().name).toBe('AbortError')
    expect(new ClosedError().message).toBe('The object is closed')
  })

  it('keeps cause and details, and plain errors are not BulwarkErrors', () => {
    const cause = new Error('reason')
    const err = new AbortError('stopped', { cause, bytes: 12 })
    expect(err.cause).toBe(cause)
    expect(err.bytes).toBe(12)
    expect(new Error('plain')).not.toBeInstanceOf(BulwarkError)
    expect(new TypeError('plain')).not.toBeInstanceOf(InvalidArgError)
    expect(new InvalidArgError('x')).not.toBeInstanceOf(OutOfRangeError)
  })

  it('maps native error codes to their classes in one place', async () => {
    const { fromNative, callNative } = require('../lib/internal.js')
    const { ClosedError, InternalError } = require('../lib/errors.js')
    const native = Object.assign(new Error('closed pool'), { code: 'ERR_BULWARK_CLOSED' })
    const mapped = fromNative(native)
    expect(mapped).toBeInstanceOf(ClosedError)
    expect(mapped.message).toBe('closed pool')
    let caught
    try {
      callNative(binding.__panicForTest, 'mapped panic')
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(InternalError)
    expect(caught.message).toContain('mapped panic')
    expect(caught.cause).toBeInstanceOf(Error)
  })
})

describe('the package', () => {
  it('ships the built addon, the JS layer and the types', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    const files = JSON.parse(out)[0].files.map((f) => f.path)
    for (const f of ['index.js', 'index.d.ts', 'binding.js', 'lib/errors.js', 'lib/errors.d.ts']) {
      expect(files).toContain(f)
    }
    expect(files.some((f) => /^bulwark\..+\.node$/.test(f))).toBe(true)
    expect(files.some((f) => f.startsWith('src/') || f.startsWith('__test__/'))).toBe(false)
  })

  it('installs into a scratch project from a path and loads there', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-consumer-'))
    try {
      writeFileSync(path.join(dir, 'package.json'), '{"name":"consumer","version":"1.0.0","private":true}')
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', repoRoot], {
        cwd: dir,
        stdio: 'ignore',
      })
      const { code, stdout } = await runNode(
        ['-e', "console.log(typeof require('bulwark').runtimeInfo().instanceId)"],
        { cwd: dir },
      )
      expect(code).toBe(0)
      expect(stdout.trim()).toBe('number')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('does not keep the process alive', async () => {
    const { code, elapsedMs } = await runNode(['-e', "require('bulwark').runtimeInfo()"])
    expect(code).toBe(0)
    expect(elapsedMs).toBeLessThan(10_000)
  })
})
