// Runs the ava suite with the TAP reporter and ends with one plain summary line
// ("ava: N passed, N failed, N skipped") that CI can read. Exit code is ava's.
import { spawn } from 'node:child_process'

const child = spawn(process.execPath, ['node_modules/ava/entrypoints/cli.mjs', '--tap', ...process.argv.slice(2)], {
  stdio: ['ignore', 'pipe', 'inherit'],
})
const counts = { pass: 0, fail: 0, skip: 0, todo: 0 }
let buffered = ''
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  buffered += chunk.toString()
  let nl
  while ((nl = buffered.indexOf('\n')) !== -1) {
    const line = buffered.slice(0, nl)
    buffered = buffered.slice(nl + 1)
    const m = /^# (pass|fail|skip|todo) (\d+)$/.exec(line.trim())
    if (m) counts[m[1]] = Number(m[2])
  }
})
child.on('exit', (code, signal) => {
  const failed = counts.fail + (code !== 0 && counts.fail === 0 ? 1 : 0)
  process.stdout.write(`\nava: ${counts.pass} passed, ${failed} failed, ${counts.skip} skipped\n`)
  process.exit(signal ? 1 : (code ?? 1))
})
