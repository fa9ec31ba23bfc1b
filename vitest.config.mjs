import { defineConfig } from 'vitest/config'

// BULWARK_TEST_JSON=<file> adds a JSON report (used by .ci/run to total the runs); the command
// itself stays `npm test`.
const reporters = ['default']
if (process.env.BULWARK_TEST_JSON) reporters.push(['json', { outputFile: process.env.BULWARK_TEST_JSON }])

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.mjs'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters,
  },
})
