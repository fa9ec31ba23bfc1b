'use strict'
// The generated napi-rs loader (`binding.js`, written by `napi build`). Every lib/ module reaches
// the native addon through this one require, so there is exactly one place that loads it.
module.exports = require('../binding.js')
