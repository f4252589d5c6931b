// A slow consumer under a two-core flood: memory stays bounded (highWaterBytes) and nothing is
// lost silently (delivered + lost + dropped == generated).
//
//   node bench/flood.mjs [--seconds 30] [--sleep-ms 1]
//
// Two native load generators (bench/native/build/loadgen flat) call getppid flat out, one
// pinned to each CPU; the consumer sleeps --sleep-ms per event. Prints peak RSS and the counts.
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { Observer } = createRequire(import.meta.url)(root)
const arg = (name, def) => {
  const i = process.argv.indexOf(name)
  return i === -1 ? def : Number(process.argv[i + 1])
}
const seconds = arg('--seconds', 30)
const sleepMs = arg('--sleep-ms', 1)

execFileSync('make', ['-s', '-C', join(root, 'bench', 'native')], { stdio: 'inherit' })
const loadgen = join(root, 'bench', 'native', 'build', 'loadgen')
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1])

const loads = [0, 1].map((cpu) =>
  spawn(loadgen, ['flat', '--cpu', String(cpu), '--duration-ms', String(seconds * 1000), '--delay-ms', '300'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  }),
)
const outputs = loads.map((p) => new Promise((r) => { let s = ''; p.stdout.on('data', (d) => (s += d)); p.once('close', () => r(JSON.parse(s))) }))
const observer = new Observer()
observer.addTracepoint('syscalls:sys_enter_getppid', { filter: loads.map((p) => `common_pid == ${p.pid}`).join(' || ') })
await observer.open()
let peak = rssKiB()
const stop = new AbortController()
Promise.all(outputs).then(() => setTimeout(() => stop.abort(), 200))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
let delivered = 0
try {
  for await (const ev of observer.events({ signal: stop.signal })) {
    void ev.getInt('common_pid')
    delivered++
    if (delivered % 64 === 0) peak = Math.max(peak, rssKiB())
    await sleep(sleepMs)
  }
} catch (e) {
  if (!stop.signal.aborted) throw e
}
await observer.close()
const calls = (await Promise.all(outputs)).reduce((n, o) => n + o.calls, 0)
const s = observer.stats()
peak = Math.max(peak, rssKiB())
const balanced = s.events + s.lost + s.dropped + s.malformed === s.generated
console.log(JSON.stringify({ seconds, sleepMs, calls, generated: s.generated, delivered: s.events, lost: s.lost, dropped: s.dropped, malformed: s.malformed, balanced, generatedEqualsCalls: s.generated === calls, peakRssMiB: +(peak / 1024).toFixed(1) }))
process.exit(balanced ? 0 : 1)
