// bench/obs-consumer.mjs: the linux-obs side of the benchmark, one child process per round.
//
//   node bench/obs-consumer.mjs CASE [--pid PID] [--seconds S] [--batches N]
//
// CASE:
//   events    syscalls:sys_enter_getppid filtered on common_pid == PID; per-event `for await`
//             over observer.events(), reading one field with getInt('__syscall_nr')
//   batches   the same through observer.batches() (getInt on every event of every batch)
//   latency   sched:sched_process_exec (filename == "/bin/true"); per event,
//             process.hrtime.bigint() - ev.time when the loop body sees it
//   retain    like batches, but keeps the first event of each of the first N batches (1000)
//   idle      syscalls:sys_enter_acct (never fires here): a pending for-await for S seconds
//   baseline  no observer: a pending timer for S seconds (what an idle node process costs)
//
// Default Observer options everywhere. Protocol with bench/run.mjs: prints "ready" on stdout once
// the observer is open (the parent starts the load only then), consumes until SIGUSR2 and then
// until no event arrived for 50 ms (at most 5 s more), closes the observer, and prints ONE JSON
// line. Errors: a JSON line with "error" and exit status 1.
import { readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'

const require = createRequire(import.meta.url)

const args = process.argv.slice(2)
const kase = args[0]
function opt(name, dflt) {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : dflt
}
const pid = opt('--pid', 0)
const seconds = opt('--seconds', 5)
const keepBatches = opt('--batches', 1000)
// Safety net if the parent dies: stop consuming after --limit seconds.
const limit = opt('--limit', 600)

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function pct(sorted, p) {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

// A stop request (SIGUSR2) ends consumption once the stream has been quiet for 50 ms.
const ac = new AbortController()
let progress = 0
let stopAt = 0n
process.on('SIGUSR2', () => {
  if (stopAt !== 0n) return
  stopAt = process.hrtime.bigint()
  let seen = -1
  const t0 = Date.now()
  const timer = setInterval(() => {
    if (progress === seen || Date.now() - t0 > 5000) {
      clearInterval(timer)
      ac.abort(new Error('stop'))
    }
    seen = progress
  }, 50)
})

setTimeout(() => ac.abort(new Error('limit')), limit * 1000).unref()

/**
 * Per thread: CPU time (exact, /proc/self/task/TID/schedstat, ns) and voluntary context
 * switches (how often it blocked, i.e. its wakeups).
 */
function threadCpu() {
  const m = new Map()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()
      const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      const sw = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))?.[1] ?? 0)
      m.set(`${name}#${tid}`, { ns, sw })
    } catch {}
  }
  return m
}

/** Per thread name: CPU ns and wakeups between two snapshots (threads of one name summed). */
function threadDelta(a, b) {
  const cpu = {}
  const wakeups = {}
  for (const [k, v] of b) {
    const name = k.slice(0, k.lastIndexOf('#'))
    const before = a.get(k) ?? { ns: 0, sw: 0 }
    cpu[name] = (cpu[name] ?? 0) + v.ns - before.ns
    wakeups[name] = (wakeups[name] ?? 0) + v.sw - before.sw
  }
  return { cpu, wakeups }
}

function usage() {
  const cpu = process.cpuUsage()
  return { user_us: cpu.user, system_us: cpu.system }
}

async function main() {
  if (kase === 'baseline') {
    out({ ready: true })
    const c0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    await sleep(seconds * 1000)
    const c = process.cpuUsage(c0)
    const wall = Number(process.hrtime.bigint() - t0)
    out({ case: kase, wall_ns: wall, cpu_ns: (c.user + c.system) * 1000, cpu_pct: ((c.user + c.system) * 1000 * 100) / wall, max_rss_kib: process.resourceUsage().maxRSS })
    return
  }

  const { Observer } = require('../dist/src/index.js')
  const observer = new Observer()
  let tp
  if (kase === 'events' || kase === 'batches' || kase === 'retain') {
    tp = 'syscalls:sys_enter_getppid'
    observer.addTracepoint(tp, { filter: `common_pid == ${pid}` })
  } else if (kase === 'latency') {
    tp = 'sched:sched_process_exec'
    observer.addTracepoint(tp, { filter: 'filename == "/bin/true"' })
  } else if (kase === 'idle') {
    tp = 'syscalls:sys_enter_acct'
    observer.addTracepoint(tp)
  } else {
    throw new Error(`unknown case ${kase}`)
  }
  const tOpen0 = process.hrtime.bigint()
  await observer.open()
  const openNs = Number(process.hrtime.bigint() - tOpen0)
  const c0 = process.cpuUsage()
  const th0 = threadCpu()
  const ru0 = process.resourceUsage()
  const t0 = process.hrtime.bigint()
  out({ ready: true })
  const lat = []

  let events = 0
  let sum = 0
  let firstSeen = 0n
  let firstTime = 0n
  let lastSeen = 0n
  let lastTime = 0n
  const res = { case: kase, tracepoint: tp, open_ns: openNs }

  try {
    if (kase === 'events') {
      for await (const ev of observer.events({ signal: ac.signal })) {
        sum += ev.getInt('__syscall_nr')
        if (events === 0) {
          firstSeen = process.hrtime.bigint()
          firstTime = ev.time
        }
        events++
        if ((events & 1023) === 0) {
          progress = events
          lastSeen = process.hrtime.bigint()
          lastTime = ev.time
        }
      }
    } else if (kase === 'batches') {
      let prev = 0n
      let maxGap = 0n
      const markers = []
      res.lost_markers = markers
      for await (const batch of observer.batches({ signal: ac.signal })) {
        const now = process.hrtime.bigint()
        if (prev !== 0n && now - prev > maxGap) maxGap = now - prev
        prev = now
        if (batch.lost > 0 && markers.length < 20) {
          for (const l of batch.lostEvents()) markers.push({ cpu: l.cpu, count: l.count, at_ms: firstTime ? Number(l.time - firstTime) / 1e6 : null, seen_ms: firstTime ? Number(now - firstTime) / 1e6 : null })
        }
        res.max_batch_gap_ms = Number(maxGap) / 1e6
        let ev
        for (ev of batch) sum += ev.getInt('__syscall_nr')
        if (events === 0 && batch.length > 0) {
          firstSeen = process.hrtime.bigint()
          for (const e of batch) {
            firstTime = e.time
            break
          }
        }
        if (ev !== undefined) lastTime = ev.time
        events += batch.length
        progress = events
        lastSeen = process.hrtime.bigint()
      }
    } else if (kase === 'retain') {
      const kept = []
      let batchesSeen = 0
      for await (const batch of observer.batches({ signal: ac.signal })) {
        batchesSeen++
        for (const ev of batch) sum += ev.getInt('__syscall_nr')
        if (kept.length < keepBatches) {
          for (const ev of batch) {
            kept.push(ev)
            break
          }
        }
        events += batch.length
        progress = events
        if (kept.length === keepBatches && res.kept === undefined) {
          const m = process.memoryUsage()
          res.kept = kept.length
          res.kept_after_batches = batchesSeen
          res.rss_at_kept_kib = Math.round(m.rss / 1024)
          res.array_buffers_at_kept_kib = Math.round(m.arrayBuffers / 1024)
          res.external_at_kept_kib = Math.round(m.external / 1024)
          res.heap_used_at_kept_kib = Math.round(m.heapUsed / 1024)
        }
      }
      // Still referenced here, so the batches stay alive until the report.
      res.kept_check = kept.reduce((a, e) => a + e.getInt('__syscall_nr'), 0) >= 0
      if (res.kept === undefined) res.kept = kept.length
    } else if (kase === 'latency') {
      for await (const ev of observer.events({ signal: ac.signal })) {
        const now = process.hrtime.bigint()
        lat.push(Number(now - ev.time))
        sum += ev.getInt('pid')
        events++
        progress = events
      }
    } else if (kase === 'idle') {
      const timer = setTimeout(() => ac.abort(new Error('stop')), seconds * 1000)
      for await (const ev of observer.events({ signal: ac.signal })) {
        void ev
        events++
      }
      clearTimeout(timer)
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e
  }
  const tEnd = process.hrtime.bigint()
  const c = process.cpuUsage(c0)
  const td = threadDelta(th0, threadCpu())
  res.thread_cpu_ns = td.cpu
  res.thread_wakeups = td.wakeups
  const ru = process.resourceUsage()
  res.minor_faults = ru.minorPageFault - ru0.minorPageFault
  if (kase === 'latency') {
    lat.sort((a, b) => a - b)
    res.latency = { p50: pct(lat, 50), p99: pct(lat, 99), max: lat.length ? lat[lat.length - 1] : null, n: lat.length }
  }
  const tClose0 = process.hrtime.bigint()
  await observer.close()
  const closeNs = Number(process.hrtime.bigint() - tClose0)
  const s = observer.stats()
  const cpuNs = (c.user + c.system) * 1000
  const wallNs = Number(tEnd - t0)
  Object.assign(res, {
    events: s.events,
    counted: events,
    lost: s.lost,
    dropped: s.dropped,
    read: s.read,
    generated: s.generated,
    batches: s.batches,
    bytes: s.bytes,
    malformed: s.malformed,
    errors: s.errors,
    exact_loss: s.exactLoss,
    // Consumption: from the first event's kernel time to the moment the loop had seen the
    // last one (the stream was quiet for 50 ms after the stop request, minus those 50 ms).
    first_event_time: firstTime.toString(),
    last_event_time: lastTime.toString(),
    first_seen: firstSeen.toString(),
    last_seen: lastSeen.toString(),
    stop_requested: stopAt.toString(),
    wall_ns: wallNs,
    cpu_ns: cpuNs,
    user_ns: c.user * 1000,
    sys_ns: c.system * 1000,
    cpu_ns_per_event: events > 0 ? cpuNs / events : null,
    cpu_pct: (cpuNs * 100) / wallNs,
    close_ns: closeNs,
    max_rss_kib: process.resourceUsage().maxRSS,
    rss_kib: Math.round(process.memoryUsage().rss / 1024),
    checksum: sum,
  })
  if (kase === 'idle') res.idle_window_ns = seconds * 1e9
  out(res)
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: String(e?.stack ?? e), code: e?.code })
    process.exit(1)
  },
)
