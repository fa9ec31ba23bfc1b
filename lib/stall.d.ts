export interface StallFrame {
  functionName: string
  /** Script URL (`file:///…`, `node:internal/…`); `''` for eval'd code. */
  url: string
  /** 1-based, as in `Error.stack`. */
  lineNumber: number
  /** 1-based, as in `Error.stack`. */
  columnNumber: number
}

export interface StallInfo {
  /** How long the blocked loop iteration was busy, ms. */
  durationMs: number
  /** When it started, ms since the epoch (like `Date.now()`). */
  startedAt: number
  /**
   * Frames of the blocking code, innermost first, captured while it was blocked (the top frames
   * can be `node:internal` code the blocking function called); `null` without `captureStack` or
   * if the capture missed the stall.
   */
  stack: StallFrame[] | null
}

export interface WatchdogOptions {
  /** A loop iteration busy for longer than this is a stall. Default `100`. 1..3600000. */
  thresholdMs?: number
  /**
   * Write JSON lines to stderr from the native thread: `{"event":"stall","ms",…}` while the loop is
   * blocked and `{"event":"stall-end",…}` when it ends (fields `ms`, `pid`, `threadId`, `at`).
   * Default `true`.
   */
  log?: boolean
  /** Called once per stall, on this thread, after the loop resumes. Default: none. */
  onStall?: (info: StallInfo) => void
  /**
   * Capture the JS stack of the blocking code while it is blocked (a helper worker pauses the
   * main thread through the inspector). Main thread only. Default `false`.
   */
  captureStack?: boolean
  /**
   * End the process when one stall lasts this long (>= `thresholdMs`), from the native thread,
   * after a final `{"event":"stall-kill",…,"stack":[…]}` line (written even with `log: false`).
   * Default: never.
   */
  killAfterMs?: number
  /** How to end it: `'abort'` (SIGABRT, core dump) or `'exit'` (`_exit(exitCode)`). Default `'abort'`. Needs `killAfterMs`. */
  action?: 'abort' | 'exit'
  /** Exit code for `action: 'exit'`. Default `1`. 0..255. */
  exitCode?: number
}

/** A running watchdog. It never keeps the process alive. */
export declare class Watchdog {
  private constructor()
  /** Resolves once stack capture is armed (at once without `captureStack`). */
  readonly ready: Promise<void>
  /** True once `stop()` was called. */
  readonly stopped: boolean
  /** Ends the native thread (and the stack helper worker); settles when the helper has exited. */
  stop(): Promise<void>
}

/**
 * Watches this thread's event loop from a native thread: notices an iteration busy for longer
 * than `thresholdMs` within about a millisecond, without timers or wake-ups on the loop, logs
 * while it is blocked, optionally captures the blocking stack and ends the process after
 * `killAfterMs`. Suspended time (SIGSTOP, paused VM, machine sleep) does not count.
 * Throws `InvalidArgError` / `OutOfRangeError` for bad options.
 */
export declare function watchdog(options?: WatchdogOptions): Watchdog
