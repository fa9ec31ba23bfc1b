// Public types of bulwark. Each capability's types live beside its JS module in lib/; this file
// gathers them, exactly as index.js gathers the runtime exports.
export * from './lib/errors'
export * from './lib/runtime'
export * from './lib/loop-delay'
export * from './lib/stall'
export * from './lib/memory'
export * from './lib/stream-guard'
export * from './lib/pressure'
export * from './lib/json'
export * from './lib/regex'
