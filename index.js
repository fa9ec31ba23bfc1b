'use strict'
// Public entry of bulwark. Each capability has one module under lib/ (hand-written JS over the
// native binding that `napi build` generates as binding.js); this file only gathers their
// exports. Keep the `...require()` form: Node's ESM loader reads it to offer named imports.
module.exports = {
  ...require('./lib/errors'),
  ...require('./lib/runtime'),
  ...require('./lib/loop-delay'),
  ...require('./lib/stall'),
  ...require('./lib/memory'),
  ...require('./lib/stream-guard'),
  ...require('./lib/pressure'),
  ...require('./lib/json'),
  ...require('./lib/regex'),
}
