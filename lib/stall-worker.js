'use strict'
// The stack helper of a watchdog with `captureStack` (started by lib/stall.js). It runs in its own
// worker, whose loop stays free while the main thread is blocked: when the native watchdog thread
// reports a stall, it pauses the main thread through an inspector session
// (`Session#connectToMainThread`, `Debugger.pause`), reads the call frames, hands them to the
// native side and resumes. The debugger is enabled only for that moment: no cost while no stall.
const { workerData, parentPort } = require('node:worker_threads')
const inspector = require('node:inspector')
const native = require('./native')

const { id } = workerData
const session = new inspector.Session()
session.connectToMainThread()

// scriptId → url, from the scriptParsed events Debugger.enable sends (call frames carry ids).
const urls = new Map()
session.on('Debugger.scriptParsed', ({ params }) => urls.set(params.scriptId, params.url))

function toFrames(callFrames) {
  // 1-based lines and columns, as in Error.stack (the inspector's are 0-based).
  return callFrames.map((f) => ({
    functionName: f.functionName,
    url: f.url || urls.get(f.location.scriptId) || '',
    lineNumber: f.location.lineNumber + 1,
    columnNumber: f.location.columnNumber + 1,
  }))
}

let busy = false
function capture(seq) {
  if (busy) return
  busy = true
  const done = () => {
    busy = false
  }
  session.once('Debugger.paused', ({ params }) => {
    try {
      native.stallHelperReport(id, seq, JSON.stringify(toFrames(params.callFrames)))
    } finally {
      session.post('Debugger.resume', () => session.post('Debugger.disable', done))
    }
  })
  // Pipelined: the main thread handles both in one interrupt, so the pause does not wait for the
  // enable's reply (and its burst of scriptParsed events) to travel back here first.
  session.post('Debugger.enable', (err) => {
    if (err) {
      session.removeAllListeners('Debugger.paused')
      done()
    }
  })
  session.post('Debugger.pause')
}

const attached = native.stallHelperAttach(id, capture)
// Keeps this worker's loop alive (the parent unref()s the worker, so the process is not kept).
setInterval(() => {}, 1 << 30)
parentPort.postMessage({ attached })
