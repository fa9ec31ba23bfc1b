'use strict'
// Blocks the event loop for `ms` milliseconds: the CPU-bound work the demo's tour parts inject.
function block(ms) {
  const end = performance.now() + ms
  while (performance.now() < end);
}

module.exports = { block }
