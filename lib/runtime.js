'use strict'
const native = require('./native')
const { callNative } = require('./internal')

// Facts about the loaded addon in the calling environment (main thread or worker).
function runtimeInfo() {
  return callNative(native.runtimeInfo)
}

module.exports = { runtimeInfo }
