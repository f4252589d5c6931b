// Loss, backpressure, fallbacks on old kernels (injected through the core's syscall seam),
// reader failures, several observers at once. Serial: the seam is process-wide.
import test from 'ava'
import { spawn } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { type LostEvent, ObsError, Observer, type TracepointEvent } from 'linux-obs'
import { kernelTestSerial as kernelTest } from './helpers/kernel'
import { collectUntil, openFds, repoRoot, run, runNode, sleep, uniqueTrue } from './helpers/util'

type Faults = { rejectFormatLost?: boolean; rejectClockid?: boolean; mmapErrno?: number }
const setFaults = (f: Faults): void =>
  (Observer as unknown as Record<symbol, (f: Faults) => void>)[Symbol.for('linux-obs.setTestFaults')](f)
const features = (o: Observer): { formatLost: boolean; clockMonotonic: boolean } | null =>
  (o as unknown as Record<symbol, () => { formatLost: boolean; clockMonotonic: boolean } | null>)[Symbol.for('linux-obs.features')]()

test.afterEach.always(() => setFaults({}))

/** A native getppid flood from a child process: resolves with its pid once it exited. */
function flood(calls: number): { pid: number; done: Promise<void> } {
  // perl's syscall() is a tight native loop; no extra build step needed.
  const child = spawn('perl', ['-e', `select(undef,undef,undef,0.2); syscall(110) for 1..${calls};`], { stdio: 'ignore' })
  return { pid: child.pid as number, done: new Promise((r) => child.once('exit', () => r())) }
}

kernelTest('without PERF_FORMAT_LOST (kernels before 6.0) loss comes from LOST records, in-band', async (t) => {
  setFaults({ rejectFormatLost: true })
  const f = flood(300_000)
  const observer = new Observer({ ringBytes: 4096 * 2 * 2, maxDelayMs: 100 })
  observer.addTracepoint('syscalls:sys_enter_getppid', { filter: `common_pid == ${f.pid}` })
  await observer.open()
  t.deepEqual(features(observer), { formatLost: false, clockMonotonic: true })
  await f.done
  const markers: LostEvent[] = []
  let events = 0
  await collectUntil(
    observer,
    (ev) => {
      if (ev.type === 'lost') markers.push(ev)
      else events++
      return false
    },
    1500,
  )
  await observer.close()
  const s = observer.stats()
  t.false(s.exactLoss)
  t.true(markers.length > 0, 'lost markers are yielded where the gaps are')
  t.true(s.lost > 0)
  t.is(markers.reduce((n, m) => n + m.count, 0), s.lost)
  t.is(Object.values(s.lostByCpu).reduce((a, b) => a + b, 0), s.lost)
  t.true(events > 0)
})

kernelTest('exact loss per CPU and tracepoint: delivered + lost + dropped == generated', async (t) => {
  const f = flood(300_000)
  const observer = new Observer({ ringBytes: 4096 * 2 * 2, maxDelayMs: 100 })
  observer.addTracepoint('syscalls:sys_enter_getppid', { filter: `common_pid == ${f.pid}` })
  await observer.open()
  t.deepEqual(features(observer), { formatLost: true, clockMonotonic: true })
  await f.done
  let lostMarkers = 0
  await collectUntil(
    observer,
    (ev) => {
      if (ev.type === 'lost') lostMarkers += ev.count
      return false
    },
    1000,
  )
  await observer.close()
  const s = observer.stats()
  t.true(s.exactLoss)
  t.is(s.generated, 300_000)
  t.true(s.lost > 0, 'a two-page ring must overflow')
  t.is(s.events + s.dropped + s.lost + s.malformed, s.generated as number)
  t.is(s.lostByTracepoint['syscalls:sys_enter_getppid'], s.lost)
  t.is(Object.values(s.lostByCpu).reduce((a, b) => a + b, 0), s.lost)
  // LOST records mark the gaps; the kernel writes them only once space frees up, so they may
  // undercount, never overcount.
  t.true(lostMarkers > 0 && lostMarkers <= s.lost)
})

kernelTest('a slow consumer does not grow memory: past highWaterBytes the kernel drops and counts', async (t) => {
  const f = flood(2_000_000)
  const observer = new Observer({ highWaterBytes: 1 << 16 })
  observer.addTracepoint('syscalls:sys_enter_getppid', { filter: `common_pid == ${f.pid}` })
  await observer.open()
  const rssBefore = process.memoryUsage().rss
  let maxRss = rssBefore
  let delivered = 0
  let exited = false
  void f.done.then(() => (exited = true))
  for await (const ev of observer.events()) {
    void ev.pid
    delivered++
    if (delivered % 100 === 0) {
      maxRss = Math.max(maxRss, process.memoryUsage().rss)
      await sleep(1) // a slow consumer
    }
    if (exited) break
  }
  await observer.close()
  const s = observer.stats()
  t.log(`delivered ${s.events}, lost ${s.lost}, dropped ${s.dropped}, generated ${s.generated}; RSS +${((maxRss - rssBefore) / 2 ** 20).toFixed(1)} MiB`)
  t.true(s.lost > 0, 'the kernel dropped instead of the process buffering everything')
  t.is(s.events + s.dropped + s.lost + s.malformed, s.generated as number)
  t.true(maxRss - rssBefore < 64 * 2 ** 20, `RSS grew by ${maxRss - rssBefore} bytes`)
})

kernelTest('without use_clockid (kernels before 4.1) events still arrive, on the perf clock', async (t) => {
  setFaults({ rejectClockid: true })
  const observer = new Observer()
  try {
    observer.addTracepoint('sched:sched_process_exec')
    await observer.open()
    t.deepEqual(features(observer), { formatLost: true, clockMonotonic: false })
    const path = uniqueTrue('noclock')
    await run(path)
    const { matched } = await collectUntil(observer, (ev) => ev.type === 'event' && ev.getString('filename') === path)
    t.true(matched)
  } finally {
    await observer.close()
  }
})

kernelTest('a failed mmap rejects open() with a clear error and leaks nothing', async (t) => {
  const before = openFds().length
  setFaults({ mmapErrno: 12 }) // ENOMEM
  const o1 = new Observer()
  o1.addTracepoint('sched:sched_process_exec')
  const e1 = await t.throwsAsync(o1.open(), { instanceOf: ObsError })
  t.is(e1?.code, 'ERR_IO')
  t.regex(e1?.message ?? '', /mmap of the CPU \d+ ring/)
  setFaults({ mmapErrno: 1 }) // EPERM: over the locked-memory limit
  const e2 = await t.throwsAsync(o1.open(), { instanceOf: ObsError })
  t.is(e2?.code, 'ERR_MLOCK_LIMIT')
  setFaults({})
  await o1.open() // a failed open can be retried
  await o1.close()
  t.is(openFds().length, before)
})

kernelTest('a corrupted ring is resynchronised and counted in stats().errors; events keep coming', async (t) => {
  const observer = new Observer()
  try {
    observer.addTracepoint('sched:sched_process_exec')
    await observer.open()
    const inject = (observer as unknown as Record<symbol, () => boolean>)[Symbol.for('linux-obs.injectRingCorruption')]
    t.true(inject.call(observer))
    await sleep(20)
    t.true(observer.stats().errors >= 1)
    const path = uniqueTrue('resync')
    await run(path)
    const { matched } = await collectUntil(observer, (ev) => ev.type === 'event' && ev.getString('filename') === path)
    t.true(matched, 'the reader recovered')
  } finally {
    await observer.close()
  }
})

kernelTest('several observers in one process each get their own events', async (t) => {
  const a = new Observer()
  const b = new Observer()
  const c = new Observer()
  try {
    a.addTracepoint('sched:sched_process_exec')
    b.addTracepoint('sched:sched_process_exec')
    c.addTracepoint('sched:sched_process_exit')
    await Promise.all([a.open(), b.open(), c.open()])
    const path = uniqueTrue('multi')
    const pid = await run(path)
    const [ra, rb, rc] = await Promise.all([
      collectUntil(a, (ev) => ev.type === 'event' && ev.getString('filename') === path),
      collectUntil(b, (ev) => ev.type === 'event' && ev.getString('filename') === path),
      collectUntil(c, (ev) => ev.type === 'event' && ev.pid === pid),
    ])
    t.true(ra.matched && rb.matched && rc.matched)
    t.true(rc.seen.every((ev) => ev.type === 'lost' || (ev as TracepointEvent).name === 'sched:sched_process_exit'))
  } finally {
    await Promise.all([a.close(), b.close(), c.close()])
  }
})

kernelTest('observers in worker threads each get their own events', async (t) => {
  const paths = [uniqueTrue('worker1'), uniqueTrue('worker2')]
  const code = `
    const { Observer } = require(${JSON.stringify(repoRoot)})
    const { parentPort, workerData } = require('worker_threads')
    ;(async () => {
      const o = new Observer(); o.addTracepoint('sched:sched_process_exec', { filter: 'filename == "' + workerData + '"' })
      await o.open(); parentPort.postMessage('open')
      for await (const ev of o.events()) { parentPort.postMessage(ev.getString('filename')); break }
      await o.close()
    })()`
  const workers = paths.map((p) => new Worker(code, { eval: true, workerData: p }))
  const got = await Promise.all(
    workers.map(
      (w, i) =>
        new Promise<string>((resolve, reject) => {
          w.on('message', (m: string) => (m === 'open' ? void run(paths[i]) : resolve(m)))
          w.once('error', reject)
        }),
    ),
  )
  t.deepEqual(got, paths)
  await Promise.all(workers.map((w) => w.terminate()))
})

kernelTest('tracefs is found under debugfs when only debugfs is mounted', (t) => {
  const script = `
    const { Observer } = require(PKG)
    const tracefs = require('fs').readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').filter((l) => / - (tracefs|debugfs) /.test(l))
    const o = new Observer(); o.addTracepoint('sched:sched_process_exec')
    console.log(JSON.stringify({ ok: true, format: o.format(0).name, mounts: tracefs.length }))`
  const shell =
    'umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; ' +
    'mount -t debugfs nodev /sys/kernel/debug && exec "$0" "$@"'
  const r = runNode(script, { wrap: ['unshare', '-m', '--propagation', 'private', '/bin/sh', '-c', shell] })
  t.is(r.status, 0, r.stderr)
  t.like(JSON.parse(r.stdout), { ok: true, format: 'sched_process_exec' })
})

kernelTest('process exit and worker termination mid-read, many times over', (t) => {
  for (let i = 0; i < 20; i++) {
    const r = runNode(
      `const { Observer } = require(PKG)
       const o = new Observer(); o.addTracepoint('sched:sched_switch'); o.addTracepoint('raw_syscalls:sys_enter')
       o.open().then(async () => { setTimeout(() => process.exit(3), ${i % 5} * 7); for await (const ev of o.events()) void ev.fields })`,
      { timeoutMs: 20_000 },
    )
    t.is(r.signal, null, `exit run ${i}: ${r.stderr}`)
    t.is(r.status, 3, r.stderr)
  }
  const r = runNode(
    `const { Worker } = require('worker_threads')
     const code = \`const { Observer } = require(\${JSON.stringify(PKG)}); const { parentPort } = require('worker_threads')
       const o = new Observer(); o.addTracepoint('raw_syscalls:sys_enter')
       o.open().then(async () => { parentPort.postMessage('open'); for await (const ev of o.events()) void ev.fields })\`
     let n = 0
     const next = () => {
       if (n++ === 20) { console.log('done'); return }
       const w = new Worker(code, { eval: true })
       w.once('message', () => setTimeout(() => w.terminate().then(next), n % 4 * 5))
       w.once('error', (e) => { console.error(e); process.exit(2) })
     }
     next()`,
    { timeoutMs: 60_000 },
  )
  t.is(r.signal, null, r.stderr)
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.trim(), 'done')
})

test('hostile names and filters never reach outside tracefs', (t) => {
  const o = new Observer()
  for (const name of ['../../etc:passwd', 'sched:../../../etc/passwd', '/etc:passwd', 'a\0b:c', 'sched:sched_switch\n']) {
    t.is((t.throws(() => o.addTracepoint(name)) as ObsError).code, 'ERR_INVALID_NAME', JSON.stringify(name))
  }
  t.is((t.throws(() => o.addTracepoint('sched:sched_switch', { filter: 'a\0b' })) as ObsError).code, 'ERR_INVALID_FILTER')
  t.is((t.throws(() => o.addTracepoint('sched:sched_switch', { filter: 'x'.repeat(5000) })) as ObsError).code, 'ERR_INVALID_FILTER')
})
