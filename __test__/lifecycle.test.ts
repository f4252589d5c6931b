// Resources and the event loop: fds return to baseline, close() never blocks the loop, the
// observer keeps the process alive exactly while a next() is pending.
import { readFileSync, readdirSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Observer } from 'linux-obs'
import { kernelTest, kernelTestSerial } from './helpers/kernel'
import { openFds, runNode, uniqueTrue } from './helpers/util'

const threadCount = (): number => readdirSync('/proc/self/task').length

const perfMappings = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('perf_event')).length
const vmKiB = (): number => Number(/VmSize:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1])

kernelTestSerial('1000 open/close cycles: fds, mappings and threads return to the baseline', async (t) => {
  t.timeout(240_000)
  const cycle = async (): Promise<void> => {
    const o = new Observer()
    o.addTracepoint('sched:sched_process_exit')
    await o.open()
    await o.close()
  }
  // Warm up: the allocator reserves its per-thread arenas once, up to its limit.
  for (let i = 0; i < 100; i++) await cycle()
  const fdsBefore = openFds().length
  const threadsBefore = threadCount()
  const vmBefore = vmKiB()
  for (let i = 0; i < 1000; i++) {
    const o = new Observer()
    o.addTracepoint('sched:sched_process_exit')
    await o.open()
    if (i % 250 === 0) {
      t.true(openFds().filter((l) => l.includes('perf_event')).length >= 1)
      t.true(perfMappings() >= 1, 'the rings are mapped while open')
    }
    await o.close()
  }
  t.is(openFds().length, fdsBefore)
  t.is(openFds().filter((l) => l.includes('perf_event')).length, 0)
  t.is(perfMappings(), 0)
  t.is(threadCount(), threadsBefore)
  // Address space: no ring or thread stack left behind (a little heap growth is allowed).
  t.true(vmKiB() - vmBefore < 16 * 1024, `VmSize grew by ${vmKiB() - vmBefore} KiB`)
})

kernelTestSerial('closing an observer of 20 tracepoints does not stall the event loop', async (t) => {
  const names = readdirSync('/sys/kernel/tracing/events/sched')
    .filter((n) => n.startsWith('sched_'))
    .slice(0, 20)
  t.is(names.length, 20)
  const observer = new Observer()
  for (const n of names) observer.addTracepoint(`sched:${n}`)
  await observer.open()
  const histogram = monitorEventLoopDelay({ resolution: 5 })
  histogram.enable()
  let ticks = 0
  const ticker = setInterval(() => ticks++, 1)
  const started = process.hrtime.bigint()
  await observer.close()
  const closeMs = Number(process.hrtime.bigint() - started) / 1e6
  clearInterval(ticker)
  histogram.disable()
  const maxLagMs = histogram.max / 1e6
  t.log(`close took ${closeMs.toFixed(1)} ms; event loop kept ticking (${ticks} ticks), max lag ${maxLagMs.toFixed(1)} ms`)
  // If close() ran the kernel teardown on the JS thread, no timer could fire before it returned.
  t.true(ticks >= 3, `only ${ticks} timer ticks during a ${closeMs.toFixed(1)} ms close`)
  t.true(maxLagMs < closeMs || closeMs < 20, `lag ${maxLagMs} ms vs close ${closeMs} ms`)
})

kernelTest('an open observer with no pending next() does not keep the process alive', (t) => {
  const r = runNode(
    `const { Observer } = require(PKG)
     const o = new Observer(); o.addTracepoint('sched:sched_process_exec')
     o.open().then(() => console.log('opened'))`,
    { timeoutMs: 15_000 },
  )
  t.is(r.signal, null, 'the process hung and was killed')
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.trim(), 'opened')
})

kernelTest('a pending next() keeps the process alive until an event arrives', (t) => {
  const path = uniqueTrue('alive')
  const r = runNode(
    `const { Observer } = require(PKG)
     const { spawn } = require('child_process')
     const o = new Observer(); o.addTracepoint('sched:sched_process_exec')
     o.open().then(async () => {
       // An unref'd timer cannot keep the process alive by itself: only the pending next() can.
       setTimeout(() => spawn(${JSON.stringify(path)}, { stdio: 'ignore' }).unref(), 300).unref()
       for await (const ev of o.events()) {
         if (ev.getString('filename') === ${JSON.stringify(path)}) { console.log('got it'); break }
       }
       await o.close()
     })`,
    { timeoutMs: 15_000 },
  )
  t.is(r.signal, null, 'hung')
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.trim(), 'got it')
})

kernelTest('a process that exits while a next() is pending exits promptly and cleanly', (t) => {
  for (let i = 0; i < 5; i++) {
    const r = runNode(
      `const { Observer } = require(PKG)
       const o = new Observer(); o.addTracepoint('sched:sched_switch')
       o.open().then(async () => {
         setTimeout(() => process.exit(7), 30)
         for await (const ev of o.events()) { void ev.pid }
       })`,
      { timeoutMs: 15_000 },
    )
    t.is(r.signal, null, `run ${i}: killed by ${r.signal}: ${r.stderr}`)
    t.is(r.status, 7, r.stderr)
  }
})

kernelTest('a worker thread terminated mid-read with an open observer leaves the process healthy', (t) => {
  const r = runNode(
    `const { Worker } = require('worker_threads')
     const code = \`
       const { Observer } = require(\${JSON.stringify(PKG)})
       const { parentPort } = require('worker_threads')
       const o = new Observer(); o.addTracepoint('sched:sched_switch')
       o.open().then(async () => { parentPort.postMessage('open'); for await (const ev of o.events()) void ev.cpu })\`
     let n = 0
     const next = () => {
       if (n++ === 5) { console.log('done'); return }
       const w = new Worker(code, { eval: true })
       w.once('message', () => setTimeout(() => w.terminate().then(next), 20))
       w.once('error', (e) => { console.error(e); process.exit(2) })
     }
     next()`,
    { timeoutMs: 30_000 },
  )
  t.is(r.signal, null, `killed by ${r.signal}: ${r.stderr}`)
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.trim(), 'done')
})
