'use strict'
// `npm run bench`: installs the anchors of bench/package.json when missing, then runs every
// benchmark script in bench/ one after the other (each in its own process, so one benchmark's
// heap and threads cannot disturb the next). `npm run bench -- regex json` runs only those.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const dir = __dirname
if (!fs.existsSync(path.join(dir, 'node_modules'))) {
  console.log('Installing benchmark anchors (bench/package.json)...')
  execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' })
}
const only = process.argv.slice(2)
const scripts = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.js') && f !== 'run-all.js' && f !== 'common.js')
  .filter((f) => only.length === 0 || only.includes(path.basename(f, '.js')))
  .sort()
for (const script of scripts) {
  console.log(`\n## ${script}\n`)
  execFileSync(process.execPath, ['--expose-gc', path.join(dir, script)], { stdio: 'inherit' })
}
