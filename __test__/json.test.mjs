import { describe, it, expect, afterAll } from 'vitest'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { repoRoot, runNode } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bulwark = require('bulwark')
const {
  createJsonPool,
  parseJson,
  BulwarkError,
  JsonSyntaxError,
  JsonInvalidUtf8Error,
  JsonForbiddenKeyError,
  JsonLimitError,
  JsonTooLargeError,
  JsonTooDeepError,
  JsonTooManyKeysError,
  JsonArrayTooLongError,
  JsonStringTooLongError,
  JsonTooManyNodesError,
  PoolOverloadedError,
  JsonTimeoutError,
  ClosedError,
  AbortError,
  InvalidArgError,
} = bulwark

// The standard corpora, committed under data/json (see its README).
const corpus = path.join(repoRoot, 'data/json')
const corpusFiles = ['twitter.json', 'citm_catalog.json', 'canada.json']

const pools = []
function pool(options) {
  const p = createJsonPool({ threads: 2, maxBytes: 64 * 1024 * 1024, ...options })
  pools.push(p)
  return p
}
afterAll(() => Promise.all(pools.map((p) => p.close())))

// Deep equality that JSON.stringify would miss: -0, key order, own `__proto__` keys, prototypes.
function same(a, b, where = '$') {
  if (typeof a !== typeof b) throw new Error(`${where}: ${typeof a} vs ${typeof b}`)
  if (a === null || typeof a !== 'object') {
    if (!Object.is(a, b)) throw new Error(`${where}: ${String(a)} vs ${String(b)}`)
    return true
  }
  if (Array.isArray(a) !== Array.isArray(b)) throw new Error(`${where}: array vs object`)
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) throw new Error(`${where}: prototypes differ`)
  const ka = Reflect.ownKeys(a)
  const kb = Reflect.ownKeys(b)
  if (ka.join('\u0000') !== kb.join('\u0000')) throw new Error(`${where}: keys ${ka} vs ${kb}`)
  for (const k of ka) {
    if (Array.isArray(a) && k === 'length') continue
    same(a[k], b[k], `${where}.${String(k)}`)
  }
  return true
}

// Seeded generator of documents full of the cases JSON.parse is particular about.
function rng(seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const NUMBERS = ['0', '-0', '-0.0', '1e400', '-1e400', '1E-400', '12345678901234567890123', '9007199254740993', '0.1', '-12.5e+3', '5e-324', '1.7976931348623157e308']
const STRINGS = ['""', '"a"', '"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"', '"é☃😀"', '"\\u0000\\n\\t\\"\\\\\\/"', '"\\u005f_proto__"', '"__proto__"', '"constructor"', '"1"', '"00"']
function generate(random, depth = 0) {
  const ws = () => [' ', '', '\n', '\t', '\r\n  '][Math.floor(random() * 5)]
  const r = random()
  if (depth > 4 || r < 0.35) {
    const k = Math.floor(random() * 5)
    if (k === 0) return NUMBERS[Math.floor(random() * NUMBERS.length)]
    if (k === 1) return STRINGS[Math.floor(random() * STRINGS.length)]
    if (k === 2) return ['true', 'false', 'null'][Math.floor(random() * 3)]
    return String(Math.floor(random() * 1e6) / (random() < 0.5 ? 1 : 100))
  }
  const n = Math.floor(random() * (depth === 0 ? 30 : 8))
  const items = []
  if (r < 0.65) {
    for (let i = 0; i < n; i++) items.push(ws() + generate(random, depth + 1) + ws())
    return '[' + items.join(',') + ']'
  }
  for (let i = 0; i < n; i++) {
    const key = random() < 0.3 ? STRINGS[Math.floor(random() * STRINGS.length)] : `"k${Math.floor(random() * 8)}"`
    items.push(ws() + key + ws() + ':' + ws() + generate(random, depth + 1) + ws())
  }
  return '{' + items.join(',') + '}'
}

describe('equality with JSON.parse', () => {
  it('over the corpora, from Buffers and strings, inline and through the pool', async () => {
    const p = pool({ inlineBelow: 0 })
    for (const file of corpusFiles) {
      const buf = readFileSync(path.join(corpus, file))
      const expected = JSON.parse(buf.toString())
      same(await p.parse(buf), expected)
      same(await p.parse(buf.toString()), expected)
      same(await p.parse(new Uint8Array(buf)), expected)
      // Small slices: every container is built member by member.
      same(await p.parse(buf, { sliceSize: 512 }), expected)
    }
  })

  it('builds runs of every length from Buffers, also longer than the reused run buffer (1 MB)', async () => {
    const p = pool({ inlineBelow: 0, maxBytes: 1 << 24 })
    const doc = Array.from({ length: 40_000 }, (_, i) => ({ i, s: i % 3 === 0 ? 'é€😀' : 'ascii', n: [i, -i / 7] }))
    const text = JSON.stringify({ a: doc, o: Object.fromEntries(doc.slice(0, 20_000).map((d) => [`k${d.i}`, d])) })
    expect(text.length).toBeGreaterThan(3 << 20)
    const expected = JSON.parse(text)
    for (const sliceSize of [1000, 65536, 900_000, 2 << 20]) {
      same(await p.parse(Buffer.from(text), { sliceSize }), expected, `sliceSize ${sliceSize}`)
    }
  })

  it('over 200 generated documents with every container split', async () => {
    const p = pool({ inlineBelow: 0, protoAction: 'ignore', constructorAction: 'ignore' })
    const random = rng(42)
    for (let i = 0; i < 200; i++) {
      const text = ' ' + generate(random) + '\n'
      const expected = JSON.parse(text)
      const sliceSize = [16, 40, 100, 1000, 65536][i % 5]
      const [a, b, c] = await Promise.all([
        p.parse(text, { sliceSize }),
        p.parse(Buffer.from(text), { sliceSize }),
        p.parse(Buffer.from(text), { sliceSize, inlineBelow: 1 << 20 }),
      ])
      same(a, expected, `doc ${i}`)
      same(b, expected, `doc ${i} (buffer)`)
      same(c, expected, `doc ${i} (inline)`)
    }
  })

  it('keeps __proto__ keys as own properties with protoAction "ignore", never as the prototype', async () => {
    const p = pool({ inlineBelow: 0, protoAction: 'ignore', sliceSize: 16 })
    const text = '{"a":1,"__proto__":{"polluted":true},"b":[{"__proto__":[1]}],"\\u005f_proto__":2}'
    const value = await p.parse(text)
    same(value, JSON.parse(text))
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    expect(value.__proto__).toBe(2)
    expect({}.polluted).toBeUndefined()
  })

  it('applies a reviver exactly as JSON.parse does', async () => {
    const p = pool({ inlineBelow: 0, sliceSize: 32 })
    const text = JSON.stringify({ a: [1, 2, { b: 3, drop: 4 }], c: 'x', d: { e: [5, 6, 7] } })
    const calls = []
    const reviver = function (key, value) {
      calls.push([key, Array.isArray(this) ? 'array' : typeof this])
      if (key === 'drop') return undefined
      return typeof value === 'number' ? value * 10 : value
    }
    const expectedCalls = []
    const expected = JSON.parse(text, function (key, value) {
      expectedCalls.push([key, Array.isArray(this) ? 'array' : typeof this])
      if (key === 'drop') return undefined
      return typeof value === 'number' ? value * 10 : value
    })
    same(await p.parse(text, { reviver }), expected)
    expect(calls).toEqual(expectedCalls)
  })
})

describe('errors', () => {
  const p = pool({ inlineBelow: 0 })
  const refuse = async (input, options) => {
    try {
      await p.parse(input, options)
    } catch (err) {
      return err
    }
    throw new Error('expected a rejection')
  }

  it('refuses what JSON.parse refuses, with a SyntaxError carrying position, line and column', async () => {
    const bad = ['', ' ', '{', '[1,]', '{"a":1,}', '01', '1.', '-', '1e', '"abc', '"\\x"', '"\\u12g4"', '"a\tb"', 'tru', 'nul', '{"a" 1}', '{1:2}', '[1 2]', '1 2', 'NaN', '[-]', "'a'", '\u00a0 1', '{"a":1}}']
    for (const text of bad) {
      expect(() => JSON.parse(text), text).toThrow(SyntaxError)
      for (const input of [text, Buffer.from(text)]) {
        for (const inlineBelow of [0, 1 << 20]) {
          const err = await refuse(input, { inlineBelow })
          expect(err, text).toBeInstanceOf(JsonSyntaxError)
          expect(err).toBeInstanceOf(SyntaxError)
          expect(err).toBeInstanceOf(BulwarkError)
          expect(err.code).toBe('ERR_BULWARK_JSON_SYNTAX')
          expect(err.statusCode).toBe(400)
          expect(typeof err.position).toBe('number')
        }
      }
    }
    const err = await refuse('{\n  "é": 1,\n  "b": x\n}')
    expect([err.position, err.line, err.column]).toEqual([19, 3, 8])
    const err2 = await refuse(Buffer.from('{\n  "é": 1,\n  "b": x\n}'))
    expect([err2.position, err2.line, err2.column]).toEqual([19, 3, 8])
  })

  it('enforces every limit with its own code and status', async () => {
    const cases = [
      [JSON.stringify('x'.repeat(100)), { maxBytes: 50 }, JsonTooLargeError, 'ERR_BULWARK_JSON_TOO_LARGE', 413],
      ['"' + 'é'.repeat(40) + '"', { maxBytes: 50 }, JsonTooLargeError, 'ERR_BULWARK_JSON_TOO_LARGE', 413],
      ['[[[[1]]]]', { maxDepth: 3 }, JsonTooDeepError, 'ERR_BULWARK_JSON_TOO_DEEP', 400],
      ['{"a":1,"b":2,"c":3}', { maxKeys: 2 }, JsonTooManyKeysError, 'ERR_BULWARK_JSON_TOO_MANY_KEYS', 400],
      ['[1,2,3,4]', { maxArrayLength: 3 }, JsonArrayTooLongError, 'ERR_BULWARK_JSON_ARRAY_TOO_LONG', 400],
      ['["abcdef"]', { maxStringLength: 5 }, JsonStringTooLongError, 'ERR_BULWARK_JSON_STRING_TOO_LONG', 400],
      ['{"abcdef":1}', { maxStringLength: 5 }, JsonStringTooLongError, 'ERR_BULWARK_JSON_STRING_TOO_LONG', 400],
      ['[1,[2,3],4]', { maxTotalNodes: 5 }, JsonTooManyNodesError, 'ERR_BULWARK_JSON_TOO_MANY_NODES', 400],
    ]
    for (const [text, options, Class, code, status] of cases) {
      for (const inlineBelow of [0, 1 << 20]) {
        const err = await refuse(Buffer.from(text), { ...options, inlineBelow })
        expect(err, code).toBeInstanceOf(Class)
        expect(err).toBeInstanceOf(JsonLimitError)
        expect(err).toBeInstanceOf(BulwarkError)
        expect(err.code).toBe(code)
        expect(err.statusCode).toBe(status)
        expect(err.limit).toBe(Object.values(options)[0])
      }
      // At the limit itself the text is accepted.
      const ok = Object.fromEntries(Object.entries(options).map(([k, v]) => [k, v + (k === 'maxBytes' ? 100 : 1)]))
      same(await p.parse(text, ok), JSON.parse(text))
    }
    // Astral characters count as two, like String#length.
    same(await p.parse('"😀😀"', { maxStringLength: 4 }), '😀😀')
    expect(await refuse('"😀😀😀"', { maxStringLength: 5 })).toBeInstanceOf(JsonStringTooLongError)
  })

  it('refuses invalid UTF-8 by default and replaces it like toString() when asked', async () => {
    const buf = Buffer.from([0x5b, 0x22, 0x61, 0xff, 0xc3, 0x22, 0x2c, 0x22, 0xe2, 0x82, 0x22, 0x5d])
    for (const inlineBelow of [0, 1 << 20]) {
      const err = await refuse(buf, { inlineBelow })
      expect(err).toBeInstanceOf(JsonInvalidUtf8Error)
      expect(err.code).toBe('ERR_BULWARK_JSON_INVALID_UTF8')
      expect(err.statusCode).toBe(400)
      expect(err.position).toBe(3)
      same(await p.parse(buf, { invalidUtf8: 'replace', inlineBelow }), JSON.parse(buf.toString()))
    }
  })

  it('validates options up front', async () => {
    await expect(p.parse(42)).rejects.toBeInstanceOf(InvalidArgError)
    await expect(p.parse('1', { protoAction: 'drop' })).rejects.toBeInstanceOf(InvalidArgError)
    await expect(p.parse('1', { maxDepth: -1 })).rejects.toThrow(RangeError)
    await expect(p.parse('1', { select: 'a' })).rejects.toBeInstanceOf(InvalidArgError)
    await expect(p.parse('1', { select: ['/~2'] })).rejects.toBeInstanceOf(InvalidArgError)
    expect(() => createJsonPool({ threads: 0 })).toThrow(RangeError)
    expect(() => createJsonPool({ maxQueue: 'x' })).toThrow(InvalidArgError)
  })
})

describe('prototype poisoning', () => {
  const p = pool({ inlineBelow: 0 })
  const proto = '{"a":1,"__proto__":{"x":1},"b":{"\\u005f_pro\\u0074o__":2,"c":3}}'
  const ctor = '{"a":{"constructor":{"prototype":{"x":1}},"k":1},"constructor":{"name":"ok"}}'

  it('"error" (default) rejects __proto__ in any spelling and constructor.prototype', async () => {
    for (const text of [proto, '{"b":{"\\u005F\\u005Fproto__":1}}', ctor]) {
      for (const inlineBelow of [0, 1 << 20]) {
        const err = await p.parse(text, { inlineBelow }).catch((e) => e)
        expect(err, text).toBeInstanceOf(JsonForbiddenKeyError)
        expect(err).toBeInstanceOf(SyntaxError)
        expect(err.code).toBe('ERR_BULWARK_JSON_FORBIDDEN_KEY')
        expect(err.statusCode).toBe(400)
      }
    }
    // constructor without a prototype key is fine, as in secure-json-parse
    same(await p.parse('{"constructor":{"name":"x"}}'), { constructor: { name: 'x' } })
  })

  it('"remove" deletes the keys, at any slice size', async () => {
    for (const sliceSize of [16, 65536]) {
      const value = await p.parse(proto, { protoAction: 'remove', sliceSize })
      same(value, { a: 1, b: { c: 3 } })
      const v2 = await p.parse(ctor, { constructorAction: 'remove', sliceSize })
      same(v2, JSON.parse('{"a":{"k":1},"constructor":{"name":"ok"}}'))
      // last one wins, as after JSON.parse: a flagged constructor deletes the earlier one too
      const v3 = await p.parse('{"constructor":1,"constructor":{"prototype":1}}', { constructorAction: 'remove', sliceSize })
      same(v3, {})
    }
  })

  it('"ignore" keeps them as JSON.parse does', async () => {
    same(await p.parse(proto, { protoAction: 'ignore' }), JSON.parse(proto))
    same(await p.parse(ctor, { constructorAction: 'ignore' }), JSON.parse(ctor))
  })
})

describe('select and validateOnly', () => {
  const p = pool({ inlineBelow: 0 })
  const doc = { a: { 'b/c': [10, 20, { d: 'x' }], 'm~n': true }, list: Array.from({ length: 5000 }, (_, i) => ({ i })) }
  const text = JSON.stringify(doc)

  it('builds only the parts JSON Pointers name', async () => {
    for (const sliceSize of [32, 65536]) {
      const got = await p.parse(text, { select: ['/a/b~1c/2', '/a/m~0n', '/list/4999', '/list/5000', '/nope', '/list/01', ''], sliceSize })
      expect(got.length).toBe(7)
      same(got[0], { d: 'x' })
      expect(got[1]).toBe(true)
      same(got[2], { i: 4999 })
      expect(got[3]).toBeUndefined()
      expect(got[4]).toBeUndefined()
      expect(got[5]).toBeUndefined()
      same(got[6], doc)
    }
    same(await p.parse(text, { select: '/a/b~1c' }), [10, 20, { d: 'x' }])
    // duplicate keys: the last one wins, as in JSON.parse
    expect(await p.parse('{"a":{"b":1},"a":{"c":2}}', { select: '/a/b' })).toBeUndefined()
    expect(await p.parse('{"a":{"b":1},"a":{"b":2}}', { select: '/a/b' })).toBe(2)
    // removed keys are not selectable
    expect(await p.parse('{"__proto__":{"x":1}}', { select: '/__proto__/x', protoAction: 'remove' })).toBeUndefined()
    expect(await p.parse('{"__proto__":{"x":1}}', { select: '/__proto__/x', protoAction: 'ignore' })).toBe(1)
  })

  it('validateOnly checks everything and builds nothing', async () => {
    expect(await p.parse(text, { validateOnly: true })).toBeUndefined()
    await expect(p.parse(text + ']', { validateOnly: true })).rejects.toBeInstanceOf(JsonSyntaxError)
    await expect(p.parse(text, { validateOnly: true, maxArrayLength: 10 })).rejects.toBeInstanceOf(JsonArrayTooLongError)
  })
})

describe('the pool', () => {
  const bigText = JSON.stringify(Array.from({ length: 60_000 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'], v: i / 7 })))

  it('builds large results across event-loop turns', async () => {
    const p = pool({ inlineBelow: 0, sliceMs: 0.2 })
    let turns = 0
    let on = true
    const tick = () => {
      turns++
      if (on) setImmediate(tick)
    }
    setImmediate(tick)
    const value = await p.parse(Buffer.from(bigText))
    on = false
    expect(value.length).toBe(60_000)
    expect(turns).toBeGreaterThan(3)
  })

  it('copies bodies over 1 MB in chunks whose boundaries split UTF-8 sequences and surrogate pairs', async () => {
    const p = pool({ inlineBelow: 0 })
    const CHUNK = 1 << 20
    for (const ch of ['é', '☃', '😀']) {
      for (const shift of [0, 1, 2, 3]) {
        // A string whose character `ch` straddles the first chunk boundary: in UTF-16 units for
        // string input, in UTF-8 bytes for Buffer input.
        const pad = (n) => 'x'.repeat(Math.max(0, n))
        const units = `["${pad(CHUNK - 3 - shift)}${ch.repeat(4)}",${JSON.stringify(pad(CHUNK))}, 1]`
        same(await p.parse(units), JSON.parse(units), `string ${ch} ${shift}`)
        const buf = Buffer.from(units)
        same(await p.parse(buf), JSON.parse(units), `buffer ${ch} ${shift}`)
      }
    }
  })

  it('refuses bodies over 1 MB from their head when it can, with the whole scan\'s error', async () => {
    const p = pool({ inlineBelow: 0, maxDepth: 8, maxStringLength: 100_000 })
    const whole = pool({ inlineBelow: 1 << 30, maxDepth: 8, maxStringLength: 100_000 })
    const filler = JSON.stringify(Array.from({ length: 60_000 }, (_, i) => ({ i, s: 'é☃😀'.slice(0, i % 4) })))
    const bodies = [
      `{"a":1,\n"__proto__":{},"rest":${filler}}`, // forbidden key in the head
      `[1,2,\n  x, ${filler}]`, // syntax error in the head
      `[[[[[[[[[1]]]]]]]]], ${filler}]`, // too deep in the head
      `[${filler}, 01]`, // syntax error after the head
      `[${filler}, {"constructor":{"prototype":1}}]`, // after the head
      `["${'é'.repeat(32_767)}x${'y'.repeat(1_100_000)}", 1]`, // too long a string cut by the head
      `{"a": "${'é'.repeat(32_767)}", "b": ${filler}, "c": {"__proto__": 1}}`, // a character cut by the head
    ]
    for (const [k, text] of bodies.entries()) {
      expect(text.length).toBeGreaterThan(1 << 20)
      for (const input of [text, Buffer.from(text)]) {
        const scans = p.stats().parseTime.count
        const expected = await whole.parse(input).then(
          () => null,
          (e) => e,
        )
        expect(expected).toBeInstanceOf(BulwarkError)
        const got = await p.parse(input).then(
          () => null,
          (e) => e,
        )
        expect(got?.constructor).toBe(expected.constructor)
        expect([got.code, got.position, got.line, got.column, got.message]).toEqual([expected.code, expected.position, expected.line, expected.column, expected.message])
        // The first three are refused by the head's scan: the whole body is never copied or scanned.
        expect(p.stats().parseTime.count - scans).toBe(k < 3 ? 0 : 1)
      }
    }
    // A valid body whose head ends inside a string, a number and a character still parses.
    const valid = `{"a": "${'é'.repeat(32_767)}", "n": 12345678, "b": ${filler}}`
    same(await p.parse(valid), JSON.parse(valid))
    same(await p.parse(Buffer.from(valid)), JSON.parse(valid))
    // Aborted while its head is scanned: rejected once, and the pool keeps working.
    const ac = new AbortController()
    const pending = p.parse(Buffer.from(valid), { signal: ac.signal })
    ac.abort()
    await expect(pending).rejects.toBeInstanceOf(AbortError)
    same(await p.parse(valid), JSON.parse(valid))
    expect(p.stats().rejected).toMatchObject({ aborted: 1, syntax: 4, forbidden: 6, limit: 4 })
  })

  it('reuses input memory between bodies without mixing their text', async () => {
    const p = pool({ threads: 1, inlineBelow: 0 })
    const big = JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ i, s: 'é'.repeat(i % 7) })))
    const small = '{"a":[1,2,3],"b":"z"}'
    // Large then small then large again, Buffers and strings: a reused buffer holds an earlier
    // body's bytes beyond the new body's end, which must never be read.
    for (const text of [big, small, big.slice(0, -1) + ',"tail"]', small, '[' + big + ',' + big + ']', small]) {
      same(await p.parse(Buffer.from(text)), JSON.parse(text))
      same(await p.parse(text), JSON.parse(text))
    }
    await expect(p.parse(Buffer.from(big + 'x'))).rejects.toBeInstanceOf(JsonSyntaxError)
    await expect(p.parse('{"a": 1')).rejects.toBeInstanceOf(JsonSyntaxError)
  })

  it('rejects with PoolOverloadedError (503) when the queue is full', async () => {
    const p = pool({ threads: 1, maxQueue: 1, inlineBelow: 0 })
    // Bodies up to 1 MB are copied and queued synchronously, so these 16 arrive together.
    const text = JSON.stringify(JSON.parse(bigText).slice(0, 14_000))
    expect(text.length).toBeLessThan(1 << 20)
    const results = await Promise.allSettled(Array.from({ length: 16 }, () => p.parse(text, { validateOnly: true })))
    const overloaded = results.filter((r) => r.status === 'rejected')
    expect(overloaded.length).toBeGreaterThan(0)
    for (const r of overloaded) {
      expect(r.reason).toBeInstanceOf(PoolOverloadedError)
      expect(r.reason.code).toBe('ERR_BULWARK_POOL_OVERLOADED')
      expect(r.reason.statusCode).toBe(503)
    }
    expect(results.some((r) => r.status === 'fulfilled')).toBe(true)
    expect(p.stats().rejected.overloaded).toBe(overloaded.length)
  })

  it('aborts through a signal, before and during a parse', async () => {
    const p = pool({ inlineBelow: 0 })
    const reason = new Error('client went away')
    const err = await p.parse(bigText, { signal: AbortSignal.abort(reason) }).catch((e) => e)
    expect(err).toBeInstanceOf(AbortError)
    expect(err.cause).toBe(reason)
    const ac = new AbortController()
    const pending = p.parse(bigText, { signal: ac.signal })
    ac.abort(reason)
    const err2 = await pending.catch((e) => e)
    expect(err2).toBeInstanceOf(AbortError)
    expect(err2.name).toBe('AbortError')
    expect(p.stats().rejected.aborted).toBe(2)
    // the pool keeps working
    expect((await p.parse(bigText)).length).toBe(60_000)
  })

  it('times out with JsonTimeoutError', async () => {
    const p = pool({ threads: 1, inlineBelow: 0 })
    const huge = '[' + '1234567.5,'.repeat(1_500_000) + '0]'
    const err = await p.parse(huge, { timeoutMs: 1 }).catch((e) => e)
    expect(err).toBeInstanceOf(JsonTimeoutError)
    expect(err.code).toBe('ERR_BULWARK_JSON_TIMEOUT')
    expect(err.statusCode).toBe(503)
    expect(p.stats().rejected.timeout).toBe(1)
  })

  it('close() settles every pending parse with ClosedError and refuses new ones', async () => {
    const p = createJsonPool({ threads: 1, inlineBelow: 0 })
    const pending = Array.from({ length: 5 }, () => p.parse(bigText))
    await p.close()
    const results = await Promise.allSettled(pending)
    for (const r of results) {
      expect(r.status).toBe('rejected')
      expect(r.reason).toBeInstanceOf(ClosedError)
    }
    await expect(p.parse('1')).rejects.toBeInstanceOf(ClosedError)
    await p.close()
  })

  it('reports stats', async () => {
    const p = pool({ inlineBelow: 100 })
    await p.parse('[1]')
    await p.parse(bigText)
    await p.parse('{').catch(() => {})
    const s = p.stats()
    expect(s.threads).toBe(2)
    expect(s.queueDepth).toBe(0)
    expect(s.inFlight).toBe(0)
    expect(s.completed).toBe(1)
    expect(s.inline).toBe(2)
    expect(s.rejected.syntax).toBe(1)
    expect(s.parseTime.count).toBe(1)
    expect(s.waitTime.count).toBe(1)
    expect(s.parseTime.max).toBeGreaterThan(0)
  })

  it('parseJson uses a default pool', async () => {
    same(await parseJson(bigText), JSON.parse(bigText))
    same(await parseJson(Buffer.from('{"a":[1,-0]}')), { a: [1, -0] })
  })

  it('runs inside a worker thread, which then ends on its own', async () => {
    const worker = new Worker(path.join(repoRoot, '__test__/fixtures/json-worker.cjs'))
    const message = await new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    expect(message).toEqual({ same: true, completed: 1 })
    const code = await new Promise((resolve) => worker.once('exit', resolve))
    expect(code).toBe(0)
  })

  it('does not keep the process alive when idle, and keeps it alive while parsing', async () => {
    const script = `
      const { createJsonPool, parseJson } = require('bulwark')
      const pool = createJsonPool({ inlineBelow: 0 })
      const text = JSON.stringify(Array.from({ length: 20000 }, (_, i) => ({ i })))
      pool.parse(text).then((v) => console.log('parsed', v.length))
      parseJson(text, { inlineBelow: 0 }).then((v) => console.log('default', v.length))
    `
    const { code, stdout, elapsedMs } = await runNode(['-e', script])
    expect(code).toBe(0)
    expect(stdout).toContain('parsed 20000')
    expect(stdout).toContain('default 20000')
    expect(elapsedMs).toBeLessThan(15_000)
  })
})
