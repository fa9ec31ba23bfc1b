/// <reference types="node" />

/** Result of `SafeRegExp#exec`, shaped exactly like `RegExpExecArray` (string input). */
export type SafeRegExpExecArray = RegExpExecArray

/**
 * A linear-time, RegExp-compatible regular expression for untrusted patterns and inputs.
 * Same constructor forms, flags (`d g i m s u v y`), `lastIndex` rules and results as RegExp;
 * works with `str.match/matchAll/replace/replaceAll/search/split`. Backreferences and
 * lookaround throw `RegexUnsupportedError`; invalid syntax throws `RegexSyntaxError`; oversize
 * patterns throw `RegexTooLargeError` (all `instanceof SyntaxError`). Buffer inputs (re2
 * compatibility) are searched as UTF-8: byte offsets, Buffer results.
 */
export declare class SafeRegExp {
  /** @param flags default: the flags of a RegExp/SafeRegExp `pattern`, else `''`. */
  constructor(pattern?: string | RegExp | SafeRegExp | Buffer, flags?: string)
  static readonly [Symbol.species]: typeof SafeRegExp
  /** Where the next global/sticky search starts (UTF-16 units; bytes for Buffer input). Default 0. */
  lastIndex: number
  readonly source: string
  readonly flags: string
  readonly global: boolean
  readonly ignoreCase: boolean
  readonly multiline: boolean
  readonly dotAll: boolean
  readonly unicode: boolean
  readonly unicodeSets: boolean
  readonly sticky: boolean
  readonly hasIndices: boolean
  /** The pattern as given (re2 compatibility). */
  readonly internalSource: string
  exec(string: string): RegExpExecArray | null
  exec(buffer: Buffer): (Buffer | undefined)[] & { index: number; input: Buffer; groups?: Record<string, Buffer | undefined> } | null
  test(string: string | Buffer): boolean
  toString(): string
  [Symbol.match](string: string): RegExpMatchArray | null
  [Symbol.matchAll](string: string): IterableIterator<RegExpExecArray>
  [Symbol.replace](string: string, replacement: string | ((substring: string, ...args: any[]) => string)): string
  [Symbol.replace](string: Buffer, replacement: string | Buffer | ((substring: string, ...args: any[]) => string)): Buffer
  [Symbol.search](string: string | Buffer): number
  [Symbol.split](string: string, limit?: number): string[]
  [Symbol.split](string: Buffer, limit?: number): Buffer[]
  /** re2-style instance methods (same as the Symbol methods). */
  match(string: string | Buffer): RegExpMatchArray | Buffer[] | null
  replace(string: string | Buffer, replacement: string | Buffer | ((substring: string, ...args: any[]) => string)): string | Buffer
  search(string: string | Buffer): number
  split(string: string | Buffer, limit?: number): (string | Buffer | undefined)[]
  /** UTF-8 byte length of a string. */
  static getUtf8Length(string: string): number
  /** UTF-16 length of the UTF-8 text in a Buffer. Throws `InvalidArgError` for non-Buffers. */
  static getUtf16Length(buffer: Buffer): number
  /** Many patterns, one pass: which match. */
  static Set: typeof SafeRegExpSet
}

/** Many patterns matched in one pass over the input (flags g, y, d are ignored). */
export declare class SafeRegExpSet {
  /** @param flags default: the flags of the first RegExp/SafeRegExp pattern, else `''`. */
  constructor(patterns: Iterable<string | RegExp | SafeRegExp>, flags?: string)
  readonly sources: string[]
  readonly flags: string
  readonly size: number
  /** Indexes (ascending) of the patterns that match somewhere in `string`. */
  match(string: string | Buffer): number[]
  /** Whether any pattern matches. */
  test(string: string | Buffer): boolean
  toString(): string
}

/** Alias of `SafeRegExp`, so code written for the re2 package can switch by changing its import. */
export declare const RE2: typeof SafeRegExp
export type RE2 = SafeRegExp
