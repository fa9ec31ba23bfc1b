import { describe, it, expect } from 'vitest'
import { createRequire } from 'node:module'
import path from 'node:path'
import ts from 'typescript'
import { repoRoot } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bulwark = require('bulwark')

describe('index.d.ts', () => {
  const file = path.join(repoRoot, 'index.d.ts')
  const program = ts.createProgram([file], { strict: true, noEmit: true, types: ['node'], skipLibCheck: false })

  it('type-checks under --strict', () => {
    const problems = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n') + (d.file ? ` (${path.relative(repoRoot, d.file.fileName)})` : ''))
    expect(problems).toEqual([])
  })

  it('declares exactly the values the package exports at run time', () => {
    const checker = program.getTypeChecker()
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file))
    const declared = checker
      .getExportsOfModule(moduleSymbol)
      .filter((s) => {
        const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s
        return (target.flags & ts.SymbolFlags.Value) !== 0
      })
      .map((s) => s.name)
      .sort()
    expect(declared).toEqual(Object.keys(bulwark).sort())
  })
})
