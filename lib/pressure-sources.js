'use strict'
// Where the pressure gate's numbers come from. Nothing here samples on the event loop: loop
// readings are copied from the loop hook's atomics (src/pressure/mod.rs, `PressureProbe.read`)
// into one preallocated Float64Array, and memory readings come from the memory watchdog's last
// native sample. `refresh()` does at most one native read per millisecond; the gate calls it once
// per evaluation, so a burst of requests costs one read.

const { performance } = require('node:perf_hooks')
const native = require('./native')
const { callNative } = require('./internal')

// Layout written by PressureProbe.read (milliseconds, utilisation 0..1).
const BLOCKED = 0
const LAST_ITERATION = 1
const WINDOW_MAX = 2
const WINDOW_P99 = 3
const WINDOW_UTILIZATION = 4
const WINDOW_AGE = 5
// The loop hook's rolling window; a window older than two of them means the loop sat idle.
const WINDOW_MS = 1000
const MEMORY_REFRESH_MS = 50

// `memory` is a MemoryWatchdog to read (the caller's); when limits need one and none is given,
// the gate starts its own with no levels of its own and stops it on close.
function open({ percentile, memory, needMemory }) {
  const probe = callNative(() => new native.PressureProbe())
  const reading = new Float64Array(6)
  const servers = new Set()
  let readAt = -Infinity

  let watchdog = memory
  const ownWatchdog = needMemory && watchdog === undefined
  if (ownWatchdog) watchdog = require('./memory').memoryWatchdog({ limits: {}, leak: false })
  let mem = null
  let memReadAt = -Infinity

  function refresh() {
    const now = performance.now()
    if (now - readAt < 1) return
    readAt = now
    probe.read(reading)
    // The watchdog's last native sample (a Float64Array view, no native call). Its sampler runs
    // every `intervalMs` (100 ms by default), so reading it more often than every 50 ms would
    // only allocate the same numbers again.
    if (watchdog !== undefined && now - memReadAt >= MEMORY_REFRESH_MS) {
      memReadAt = now
      mem = watchdog.stats()
    }
  }

  const windowFresh = () => reading[WINDOW_AGE] <= 2 * WINDOW_MS

  // The loop delay the gate compares: the worst of the iteration in progress, the last completed
  // iteration and the last window's max (or p99), so one long iteration trips the gate at the
  // very next request instead of when the window closes.
  const eventLoopDelayMs =
    percentile === 'max'
      ? () =>
          Math.max(reading[BLOCKED], reading[LAST_ITERATION], windowFresh() ? reading[WINDOW_MAX] : 0)
      : () => Math.max(reading[BLOCKED], windowFresh() ? reading[WINDOW_P99] : 0)

  return {
    refresh,
    eventLoopDelayMs,
    eventLoopUtilization: () => (windowFresh() ? reading[WINDOW_UTILIZATION] : 0),
    // Unknown values (no sample yet, no container limit) read as 0: never a reason to shed load.
    heapUsedBytes: () => mem?.heapUsed ?? 0,
    rssBytes: () => mem?.rss ?? 0,
    containerMemoryRatio: () => mem?.containerRatio ?? 0,
    loopState() {
      refresh()
      return {
        blockedMs: reading[BLOCKED],
        lastIterationMs: reading[LAST_ITERATION],
        windowMaxMs: windowFresh() ? reading[WINDOW_MAX] : 0,
        windowP99Ms: windowFresh() ? reading[WINDOW_P99] : 0,
        utilization: windowFresh() ? reading[WINDOW_UTILIZATION] : 0,
      }
    },
    listenHealth({ port, host, stallMs }) {
      const server = callNative(() => probe.listenHealth(host, port, stallMs))
      servers.add(server)
      return {
        port: server.port,
        host,
        setReady: (ready) => server.setReady(ready),
        close() {
          servers.delete(server)
          server.close()
        },
      }
    },
    // Gauges of what the gate reads, in Prometheus text format.
    toPrometheus(prefix) {
      const memoryGauges = (p) => {
        if (mem === null) return ''
        const rows = [
          ['rss_bytes', 'Resident set size (native sample).', mem.rss],
          ['heap_used_bytes', 'V8 heap used.', mem.heapUsed],
          ['container_memory_ratio', 'Container anonymous memory / container limit (0-1).', mem.containerRatio],
        ].filter(([, , v]) => v != null)
        return rows.map(([n, h, v]) => `# HELP ${p}_${n} ${h}\n# TYPE ${p}_${n} gauge\n${p}_${n} ${v}\n`).join('')
      }
      refresh()
      const fresh = windowFresh()
      const rows = [
        ['loop_blocked_seconds', 'How long the loop iteration in progress has been busy.', reading[BLOCKED] / 1e3],
        ['loop_last_iteration_seconds', 'Busy time of the last completed loop iteration.', reading[LAST_ITERATION] / 1e3],
        ['loop_window_max_seconds', 'Longest loop iteration in the last one-second window.', fresh ? reading[WINDOW_MAX] / 1e3 : 0],
        ['loop_window_p99_seconds', '99th percentile loop iteration in the last one-second window.', fresh ? reading[WINDOW_P99] / 1e3 : 0],
        ['loop_window_utilization', 'Event-loop utilisation in the last one-second window (0-1).', fresh ? reading[WINDOW_UTILIZATION] : 0],
      ]
      return rows
        .map(([name, help, value]) => `# HELP ${prefix}_${name} ${help}\n# TYPE ${prefix}_${name} gauge\n${prefix}_${name} ${value}\n`)
        .join('') + memoryGauges(prefix)
    },
    close() {
      for (const server of servers) server.close()
      servers.clear()
      probe.close()
      if (ownWatchdog) watchdog.stop()
    },
  }
}

module.exports = { open }
