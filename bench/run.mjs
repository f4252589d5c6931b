#!/usr/bin/env node
// bench/run.mjs: linux-obs against a native reference reader, on the same load, in turns.
//
//   node bench/run.mjs [--rounds N] [--seconds S] [--cases 1,2,3,4,5,6,7,8] [--nice N]
//                      [--idle-seconds S] [--delay-ms D]
//
// Needs root, tracefs at /sys/kernel/tracing, 2+ CPUs, and a built library (`npm run build`).
// Builds bench/native (make). The load runs on CPU 0, every reader on CPU 1. See bench/README.md
// for what each case measures; results go to stdout, bench/results.json and bench/RESULTS.md.
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.dirname(HERE)
const NATIVE = path.join(HERE, 'native')
const LOADGEN = path.join(NATIVE, 'build', 'loadgen')
const REFREADER = path.join(NATIVE, 'build', 'refreader')
const COUNTER = path.join(NATIVE, 'build', 'counter')
const CONSUMER = path.join(HERE, 'obs-consumer.mjs')
const GETPPID = 'syscalls:sys_enter_getppid'
const EXEC = 'sched:sched_process_exec'
const MIB = 1024 * 1024

// ---------------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const o = { rounds: 3, seconds: 3, cases: [1, 2, 3, 4, 5, 6, 7, 8], nice: -20, idleSeconds: 5, delayMs: 1500, quietWait: 0, maxWait: 0.05, retries: 2, budget: 480 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[i + 1]
    const num = () => {
      const n = Number(v)
      if (v === undefined || !Number.isFinite(n)) usage(`${a} needs a number`)
      i++
      return n
    }
    if (a === '--rounds') o.rounds = Math.max(1, Math.floor(num()))
    else if (a === '--seconds') o.seconds = num()
    else if (a === '--idle-seconds') o.idleSeconds = num()
    else if (a === '--nice') o.nice = Math.floor(num())
    else if (a === '--delay-ms') o.delayMs = Math.floor(num())
    else if (a === '--quiet-wait') o.quietWait = num()
    else if (a === '--max-wait') o.maxWait = num() / 100
    else if (a === '--retries') o.retries = Math.max(0, Math.floor(num()))
    else if (a === '--budget') o.budget = num()
    else if (a === '--cases') {
      if (v === undefined) usage('--cases needs a list like 1,2,3')
      o.cases = v.split(',').map((s) => Number(s.trim()))
      if (o.cases.some((c) => !Number.isInteger(c) || c < 1 || c > 8)) usage('cases are 1..8')
      i++
    } else if (a === '--help' || a === '-h') usage()
    else usage(`unknown argument ${a}`)
  }
  if (!(o.seconds > 0)) usage('--seconds must be > 0')
  return o
}

function usage(err) {
  const text = `usage: node bench/run.mjs [--rounds N] [--seconds S] [--cases LIST] [--nice N] [--idle-seconds S] [--delay-ms D]
                        [--quiet-wait S] [--max-wait PCT] [--retries N] [--budget S]
  --rounds N        rounds per case, each reference then linux-obs (3)
  --seconds S       load duration per run in cases 1-4 and 8 (3)
  --cases LIST      1 per-event for-await flat out, 2 the same at 1 M/s, 3 batches() flat out,
                    4 sparse exec latency, 5 workload CPU per syscall at 1 M/s (runs case 2),
                    6 peak RSS (from the runs of the other cases), 7 idle observer CPU,
                    8 RSS with one event kept from each of 1000 batches (default: all)
  --nice N          niceness of the load, readers and counter (-20; 0 to leave as is)
  --idle-seconds S  observation window of case 7 (5)
  --delay-ms D      the load sleeps D ms before starting, for the readers to attach (1500)
  --quiet-wait S    before each run, wait up to S s for both CPUs to be <= 15 % busy (0: off)
  --max-wait PCT    a run in which the load spent more than PCT % of its time runnable but
                    not running (preempted by other processes) is repeated (5),
                    at most --retries times (2), while the run is younger than --budget s (480)`
  if (err) {
    console.error(`error: ${err}\n${text}`)
    process.exit(2)
  }
  console.log(text)
  process.exit(0)
}

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed (by its pid) if the run ends early.

const live = new Set()

function run(cmd, args, { nice = 0, timeoutMs = 120000, name = path.basename(cmd) } = {}) {
  const full = nice !== 0 ? ['nice', ['-n', String(nice), cmd, ...args]] : [cmd, args]
  const proc = spawn(full[0], full[1], { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(proc)
  let stdout = ''
  let stderr = ''
  const lineWaiters = []
  proc.stdout.setEncoding('utf8')
  proc.stderr.setEncoding('utf8')
  proc.stdout.on('data', (d) => {
    stdout += d
    for (const w of [...lineWaiters]) {
      if (stdout.split('\n').some((l) => w.pred(l))) {
        lineWaiters.splice(lineWaiters.indexOf(w), 1)
        w.resolve(true)
      }
    }
  })
  proc.stderr.on('data', (d) => (stderr += d))
  const killer = setTimeout(() => {
    stderr += `\n[bench] ${name} killed after ${timeoutMs} ms`
    proc.kill('SIGKILL')
  }, timeoutMs)
  const done = new Promise((resolve) => {
    proc.on('close', (code, signal) => {
      clearTimeout(killer)
      live.delete(proc)
      for (const w of lineWaiters) w.resolve(false)
      resolve({ code, signal, stdout, stderr })
    })
    proc.on('error', (e) => {
      stderr += String(e)
    })
  })
  return {
    proc,
    name,
    done,
    /** Resolves true when a stdout line satisfies pred, false if the process ended first. */
    waitLine(pred) {
      if (stdout.split('\n').some(pred)) return Promise.resolve(true)
      if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(false)
      return new Promise((resolve) => lineWaiters.push({ pred, resolve }))
    },
    signal(sig) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig)
    },
  }
}

const tmpDirs = new Set()

function killAll() {
  for (const p of live) {
    try {
      p.kill('SIGKILL')
    } catch {}
  }
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true })
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll()
    process.exit(130)
  })
}
process.on('exit', killAll)

/** The last JSON line of a tool's stdout. */
function lastJson(r, what) {
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{'))
  if (lines.length === 0) throw new Error(`${what}: no JSON output (exit ${r.code ?? r.signal}): ${r.stderr.trim()}`)
  const j = JSON.parse(lines[lines.length - 1])
  if (j.error) throw new Error(`${what}: ${j.error}`)
  return j
}

async function waitFile(file, ms) {
  const t = Date.now()
  while (!existsSync(file)) {
    if (Date.now() - t > ms) return false
    await sleep(5)
  }
  return true
}

const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000
const START = Date.now()

/** Per-CPU busy and total ticks from /proc/stat. */
function cpuTimes() {
  const out = []
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line)
    if (!m) continue
    const v = m[2].trim().split(/\s+/).map(Number)
    const total = v.slice(0, 8).reduce((x, y) => x + y, 0) // user..steal (guest is inside user)
    const idle = v[3] + v[4]
    out[Number(m[1])] = { busy: total - idle, total, steal: v[7] ?? 0 }
  }
  return out
}

/** Busy share of CPUs 0 and 1 between two cpuTimes() snapshots. */
function busyShare(a, b) {
  return [0, 1].map((i) => (b[i].busy - a[i].busy) / Math.max(1, b[i].total - a[i].total))
}

/** Waits (up to opts.quietWait s) until CPUs 0 and 1 are both at most 15 % busy over 300 ms. */
async function waitQuiet(opts) {
  const t0 = Date.now()
  for (;;) {
    const a = cpuTimes()
    await sleep(300)
    const busy = busyShare(a, cpuTimes())
    const waited = Date.now() - t0
    if (busy.every((x) => x <= 0.15)) return { waited, busy, quiet: true }
    if (waited >= opts.quietWait * 1000) return { waited, busy, quiet: false }
  }
}

// ---------------------------------------------------------------------------------------------
// Small statistics and formatting helpers

function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}
const maxOf = (xs) => (xs.length ? Math.max(...xs) : null)
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b)
function fmtN(n, digits = 0) {
  if (n == null) return '-'
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}
const fmtRate = (r) => (r == null ? '-' : r >= 999.5e3 ? `${(r / 1e6).toFixed(3)} M/s` : `${(r / 1e3).toFixed(1)} k/s`)
const fmtUs = (ns) => (ns == null ? '-' : `${(ns / 1000).toFixed(ns < 10000 ? 1 : 0)} µs`)
const fmtMiB = (kib) => (kib == null ? '-' : `${(kib / 1024).toFixed(1)} MiB`)
const fmtPct = (p, d = 2) => (p == null ? '-' : `${p.toFixed(d)} %`)
const fmtRatio = (r) => (r == null ? '-' : r.toFixed(3))

/** linux-obs: CPU ns per event of its reader thread and of the node threads (JS, GC, libuv). */
function split(raw, events) {
  const t = raw?.thread_cpu_ns
  if (!t || !events) return null
  let reader = 0
  let node = 0
  for (const [k, v] of Object.entries(t)) {
    if (k.startsWith('linux-obs')) reader += v
    else node += v
  }
  return { reader: reader / events, node: node / events }
}

/** Share of the time the load / the reader waited runnable for a CPU (preempted). */
function fmtOther(r) {
  const o = (r.wait ?? []).map((x) => (x == null ? '-' : (x * 100).toFixed(1)))
  return `${o.join('/')} %${r.contended ? ' (contended)' : ''}${r.raw?.perf?.length || r.perf?.length ? ` (other perf users: ${(r.raw?.perf ?? r.perf).join(', ')})` : ''}`
}

/**
 * Other processes holding perf event fds (e.g. a test suite tracing syscalls: every enabled
 * sys_enter_* event slows every syscall on the machine). Returns "pid comm" strings.
 */
function foreignPerf(ours) {
  const found = []
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || ours.has(Number(pid)) || Number(pid) === process.pid) continue
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        let target = ''
        try {
          target = readlinkSync(`/proc/${pid}/fd/${fd}`)
        } catch {}
        if (target === 'anon_inode:[perf_event]') {
          found.push(`${pid} ${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()}`)
          break
        }
      }
    } catch {}
  }
  return found
}

/** Sum over a process's threads of the time spent runnable but waiting for a CPU (ns). */
function runDelay(pid) {
  let sum = 0
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1])
      } catch {}
    }
  } catch {}
  return sum
}

function log(s = '') {
  process.stdout.write(s + '\n')
}

// ---------------------------------------------------------------------------------------------
// One run of a reader against a load

/**
 * Starts the load (sleeping delayMs first), the counter and one reader, waits for both to be
 * ready, lets the load finish, then stops the reader (SIGINT for refreader, SIGUSR2 for the
 * linux-obs consumer) 100 ms later, then the counter. Retries with a longer delay if a reader
 * was not ready before the load started.
 */
async function oneRun(spec) {
  const { opts } = spec
  for (let attempt = 0; ; attempt++) {
    const quiet = opts.quietWait > 0 ? await waitQuiet(opts) : null
    const r = await oneRunOnce(spec)
    r.quiet = quiet
    r.attempt = attempt
    // Only the load's wait counts: linux-obs's own threads (JS, reader, GC) share CPU 1 and wait
    // for each other, so the reader's figure is not all foreign preemption.
    const busy = (r.wait[0] != null && r.wait[0] > opts.maxWait) || r.perf.length > 0
    if (busy && attempt < opts.retries && (Date.now() - START) / 1000 < opts.budget) {
      const why = r.perf.length > 0 ? `other processes had perf events open (${r.perf.join(', ')})` : `the load waited for a CPU ${(r.wait[0] * 100).toFixed(1)} % of the time`
      log(`    (${spec.reader === 'ref' ? 'reference' : 'linux-obs'} run: ${why}: repeating it)`)
      continue
    }
    r.contended = busy
    return r
  }
}

async function oneRunOnce({ reader, loadArgs, tracepoint, filterPid, consumerCase, refArgs = [], seconds, opts, counterFilter = filterPid }) {
  let delayMs = opts.delayMs
  for (let attempt = 0; ; attempt++) {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'linux-obs-bench-'))
    tmpDirs.add(tmp)
    try {
      const limit = delayMs + seconds * 1000 + 30000
      const t0 = nowMs()
      const load = run(LOADGEN, [...loadArgs, '--cpu', '0', '--duration-ms', String(Math.round(seconds * 1000)), '--delay-ms', String(delayMs)], { nice: opts.nice, timeoutMs: limit, name: 'loadgen' })
      const lpid = load.proc.pid
      const cArgs = ['--cpu', '1', '--tracepoint', tracepoint, '--ready-file', path.join(tmp, 'counter'), '--duration-ms', String(limit)]
      if (counterFilter) cArgs.push('--filter-pid', String(lpid))
      const counter = run(COUNTER, cArgs, { nice: opts.nice, timeoutMs: limit + 5000, name: 'counter' })
      let rd
      let ready
      if (reader === 'ref') {
        const rArgs = ['--cpu', '1', '--tracepoint', tracepoint, '--ready-file', path.join(tmp, 'reader'), '--duration-ms', String(limit), ...refArgs]
        if (filterPid) rArgs.push('--filter-pid', String(lpid))
        rd = run(REFREADER, rArgs, { nice: opts.nice, timeoutMs: limit + 5000, name: 'refreader' })
        ready = waitFile(path.join(tmp, 'reader'), delayMs + 5000)
      } else {
        const cArgs2 = [CONSUMER, consumerCase, '--pid', String(lpid), '--limit', String(Math.ceil(limit / 1000))]
        rd = run('taskset', ['-c', '1', process.execPath, ...cArgs2], { nice: opts.nice, timeoutMs: limit + 5000, name: 'obs-consumer' })
        ready = rd.waitLine((l) => l.startsWith('{"ready"'))
      }
      const ok = (await Promise.all([ready, waitFile(path.join(tmp, 'counter'), delayMs + 5000)])).every(Boolean)
      const readyMs = nowMs() - t0
      const late = !ok || readyMs > delayMs - 50
      const delayA = runDelay(rd.proc.pid)
      const tA = nowMs()
      const ours = new Set([load.proc.pid, counter.proc.pid, rd.proc.pid])
      const perfA = foreignPerf(ours)
      const lr = await load.done
      const perf = [...new Set([...perfA, ...foreignPerf(ours)])]
      await sleep(100)
      const delayB = runDelay(rd.proc.pid)
      const windowNs = (nowMs() - tA) * 1e6
      rd.signal(reader === 'ref' ? 'SIGINT' : 'SIGUSR2')
      const rr = await rd.done
      counter.signal('SIGINT')
      const cr = await counter.done
      if (late) {
        if (attempt < 2) {
          log(`    (reader ready after ${readyMs.toFixed(0)} ms, load started at ${delayMs} ms: retrying with a longer delay)`)
          delayMs *= 2
          continue
        }
        throw new Error(`${reader} not ready in time (${readyMs.toFixed(0)} ms): ${rr.stderr}`)
      }
      const lj = lastJson(lr, 'loadgen')
      const rj = lastJson(rr, reader === 'ref' ? 'refreader' : 'obs-consumer')
      // Preemption by other processes: the load never sleeps in flat/rate mode, so its wall
      // time minus its CPU time is time spent waiting for CPU 0; the reader's run-queue wait
      // (all threads, /proc/PID/task/TID/schedstat) from readiness to the stop request.
      const loadWait = lj.mode === 'flat' || lj.mode === 'rate' ? Math.max(0, 1 - lj.cpu_ns / lj.wall_ns) : null
      const wait = [loadWait, (delayB - delayA) / windowNs]
      return { load: lj, reader: rj, counter: lastJson(cr, 'counter'), readyMs, delayMs, wait, perf }
    } finally {
      rmSync(tmp, { recursive: true, force: true })
      tmpDirs.delete(tmp)
    }
  }
}

/** Reader figures in one shape for both readers. */
function normalize(reader, r, load) {
  if (reader === 'ref') {
    return {
      events: r.events,
      lost: r.lost,
      dropped: 0,
      read: r.events,
      generated: r.generated,
      cpu_ns: r.cpu_ns,
      cpu_ns_per_event: r.events ? r.cpu_ns / r.events : null,
      consumed_rate: load ? r.events / (load.wall_ns / 1e9) : null,
      invalid: r.invalid,
      latency: r.latency,
      max_rss_kib: null,
    }
  }
  // From the first event's kernel time to when the loop had seen the last one (or the load's
  // duration if longer): a consumer that falls behind is measured at its own pace.
  let span = load ? load.wall_ns : null
  const first = BigInt(r.first_event_time)
  const last = BigInt(r.last_seen !== '0' ? r.last_seen : r.stop_requested)
  if (first > 0n && last > first && span !== null) span = Math.max(span, Number(last - first))
  return {
    events: r.events,
    lost: r.lost,
    dropped: r.dropped,
    read: r.read,
    generated: r.generated,
    cpu_ns: r.cpu_ns,
    cpu_ns_per_event: r.events ? r.cpu_ns / r.events : null,
    consumed_rate: span ? r.events / (span / 1e9) : null,
    invalid: r.malformed + r.errors,
    latency: r.latency,
    max_rss_kib: r.max_rss_kib,
    batches: r.batches,
    bytes: r.bytes,
  }
}

/** delivered + lost (+ dropped) == generated, and cross-checks against the counter and the load. */
function checks(n, counter, load, { exactLoad }) {
  const own = n.events + n.lost + n.dropped === n.generated && n.read === n.events + n.dropped && n.invalid === 0
  const ctr = counter.count === n.generated
  const ld = exactLoad ? load.calls === n.generated : n.generated >= load.calls
  return { own, counter: ctr, load: ld, ok: own && ctr && ld }
}

// ---------------------------------------------------------------------------------------------
// Cases

const results = { rounds: {}, summary: [], machine: null, options: null }

async function throughputCase(kase, opts) {
  const title = { 1: 'per-event for await, getInt, flat out', 2: 'per-event for await, getInt, 1 M events/s', 3: 'batches(), getInt on each event, flat out' }[kase]
  log(`\n== case ${kase}: ${title} (${opts.rounds} rounds x ${opts.seconds} s, load on CPU 0, readers on CPU 1)`)
  const loadArgs = kase === 2 ? ['rate', '--rate', '1000000'] : ['flat']
  const rounds = []
  for (let i = 1; i <= opts.rounds; i++) {
    for (const reader of ['ref', 'obs']) {
      const r = await oneRun({ reader, loadArgs, tracepoint: GETPPID, filterPid: true, consumerCase: kase === 3 ? 'batches' : 'events', seconds: opts.seconds, opts })
      const n = normalize(reader, r.reader, r.load)
      const c = checks(n, r.counter, r.load, { exactLoad: true })
      const oncpu = r.load.cpu_ns / r.load.wall_ns
      const row = {
        round: i,
        reader,
        ...n,
        counter: r.counter.count,
        load_calls: r.load.calls,
        load_rate: r.load.rate,
        load_cpu_ns_per_call: r.load.cpu_ns_per_call,
        load_busy_ns_per_call: r.load.busy_ns_per_call ?? null,
        // Busy time scaled by the share of the load's wall time it was on the CPU (takes out
        // preemption by unrelated tasks, to first order).
        load_busy_cpu_ns_per_call: r.load.busy_ns_per_call != null ? r.load.busy_ns_per_call * oncpu : null,
        load_oncpu: oncpu,
        wait: r.wait,
        contended: r.contended,
        split: reader === 'obs' ? split(r.reader, n.events) : null,
        check: c,
        raw: r,
      }
      rounds.push(row)
      const name = reader === 'ref' ? 'reference' : 'linux-obs'
      log(
        `  round ${i} ${name.padEnd(9)} consumed ${fmtRate(n.consumed_rate).padStart(11)}  delivered ${fmtN(n.events).padStart(10)}  lost ${fmtN(n.lost).padStart(9)}` +
          `  dropped ${fmtN(n.dropped)}  generated ${fmtN(n.generated).padStart(10)}  counter ${fmtN(r.counter.count).padStart(10)}  load ${fmtN(r.load.calls).padStart(10)} calls @ ${fmtRate(r.load.rate)}` +
          (kase === 2 ? `, ${r.load.busy_ns_per_call.toFixed(0)} ns busy/call (${(oncpu * 100).toFixed(0)} % on CPU)` : `, ${r.load.cpu_ns_per_call.toFixed(0)} ns/call`) +
          `  reader ${n.cpu_ns_per_event?.toFixed(1)} ns CPU/event` +
          (row.split ? ` (node threads ${row.split.node.toFixed(0)} + reader thread ${row.split.reader.toFixed(0)})` : '') +
          (n.max_rss_kib ? `  peak RSS ${fmtMiB(n.max_rss_kib)}` : '') +
          `  CPU wait load/reader ${fmtOther(r)}` +
          (r.reader.lost_markers?.length ? `  lost markers at ${r.reader.lost_markers.map((m) => `${m.at_ms?.toFixed(0)} ms (${m.count} on CPU ${m.cpu})`).join(', ')}; longest gap between batches ${r.reader.max_batch_gap_ms?.toFixed(1)} ms` : '') +
          `  ${c.ok ? 'OK' : `MISMATCH (own ${c.own}, counter ${c.counter}, load ${c.load})`}`,
      )
    }
  }
  results.rounds[`case${kase}`] = rounds.map(({ raw, ...rest }) => ({ ...rest, raw }))
  return rounds
}

async function latencyCase(opts) {
  log(`\n== case 4: sparse exec events, latency from ev.time to the loop (default options)`)
  const mx = run(LOADGEN, ['maxexec', '--cpu', '0', '--duration-ms', '1000'], { nice: opts.nice, timeoutMs: 30000 })
  const m = lastJson(await mx.done, 'loadgen maxexec')
  const rate = Math.max(1, Math.min(1000, Math.floor(m.rate / 2)))
  log(`  loadgen maxexec: ${m.rate.toFixed(0)} spawns/s on CPU 0 -> rate ${rate}/s`)
  const rounds = []
  for (let i = 1; i <= opts.rounds; i++) {
    for (const reader of ['ref', 'obs']) {
      const r = await oneRun({
        reader,
        loadArgs: ['exec', '--rate', String(rate)],
        tracepoint: EXEC,
        filterPid: false,
        counterFilter: false,
        consumerCase: 'latency',
        refArgs: ['--wakeup-events', '1', '--latency'],
        seconds: opts.seconds,
        opts,
      })
      const n = normalize(reader, r.reader, null)
      // The reference and the counter see every exec on the machine, linux-obs every exec of
      // /bin/true: other processes may add to the spawns.
      const c = checks(n, r.counter, r.load, { exactLoad: false })
      // The counter is enabled before and disabled after the reader: it may see more execs.
      c.counter = r.counter.count >= n.generated
      c.ok = c.own && c.counter && c.load
      const lat = n.latency ?? {}
      rounds.push({ round: i, reader, ...n, counter: r.counter.count, load_calls: r.load.calls, load_rate: r.load.rate, wait: r.wait, contended: r.contended, check: c, raw: r })
      const name = reader === 'ref' ? 'reference' : 'linux-obs'
      log(
        `  round ${i} ${name.padEnd(9)} p50 ${fmtUs(lat.p50).padStart(9)}  p99 ${fmtUs(lat.p99).padStart(9)}  max ${fmtUs(lat.max).padStart(9)}  n ${lat.n}` +
          `  delivered ${n.events} lost ${n.lost} generated ${n.generated} counter ${r.counter.count} spawns ${r.load.calls}` +
          `  reader ${(n.cpu_ns_per_event / 1000).toFixed(1)} µs CPU/event` +
          (n.max_rss_kib ? `  peak RSS ${fmtMiB(n.max_rss_kib)}` : '') +
          `  CPU wait load/reader ${fmtOther(r)}` +
          `  ${c.ok ? 'OK' : `MISMATCH (own ${c.own}, counter ${c.counter}, load ${c.load})`}`,
      )
    }
  }
  results.rounds.case4 = rounds
  results.case4 = { maxexec_rate: m.rate, rate }
  return rounds
}

async function idleCase(opts) {
  log(`\n== case 7: idle observer (syscalls:sys_enter_acct, never fires) vs an idle node process, ${opts.idleSeconds} s each`)
  const rounds = []
  for (let i = 1; i <= opts.rounds; i++) {
    for (const what of ['baseline', 'idle']) {
      const c = run('taskset', ['-c', '1', process.execPath, CONSUMER, what, '--seconds', String(opts.idleSeconds)], { timeoutMs: opts.idleSeconds * 1000 + 30000, name: `obs-consumer ${what}` })
      const j = lastJson(await c.done, `obs-consumer ${what}`)
      const rw = Object.entries(j.thread_wakeups ?? {}).filter(([k]) => k.startsWith('linux-obs')).reduce((a, [, v]) => a + v, 0)
      const rc = Object.entries(j.thread_cpu_ns ?? {}).filter(([k]) => k.startsWith('linux-obs')).reduce((a, [, v]) => a + v, 0)
      const wps = what === 'idle' ? rw / (j.wall_ns / 1e9) : null
      rounds.push({ round: i, what, cpu_pct: j.cpu_pct, cpu_ns: j.cpu_ns, wall_ns: j.wall_ns, events: j.events ?? 0, generated: j.generated ?? 0, max_rss_kib: j.max_rss_kib, reader_wakeups_per_s: wps, reader_cpu_ns: what === 'idle' ? rc : null, raw: j })
      log(
        `  round ${i} ${what === 'idle' ? 'observer' : 'baseline'} ${fmtPct(j.cpu_pct, 3).padStart(9)} of a CPU (${(j.cpu_ns / 1e6).toFixed(1)} ms CPU in ${(j.wall_ns / 1e9).toFixed(2)} s)` +
          (what === 'idle' ? `  events ${j.events} generated ${j.generated}  batches ${j.batches}  reader thread: ${(rc / 1e6).toFixed(1)} ms CPU, ${wps.toFixed(0)} wakeups/s (${(rc / Math.max(1, rw) / 1000).toFixed(1)} µs each)` : '') +
          `  peak RSS ${fmtMiB(j.max_rss_kib)}`,
      )
    }
  }
  results.rounds.case7 = rounds
  return rounds
}

async function retainCase(opts) {
  log(`\n== case 8: RSS while keeping the first event of each of 1000 batches (batches(), flat-out load)`)
  const seconds = Math.max(opts.seconds, 3)
  const r = await oneRun({ reader: 'obs', loadArgs: ['flat'], tracepoint: GETPPID, filterPid: true, consumerCase: 'retain', seconds, opts })
  const j = r.reader
  const n = normalize('obs', j, r.load)
  const c = checks(n, r.counter, r.load, { exactLoad: true })
  log(
    `  kept ${j.kept} events after ${j.kept_after_batches} batches: RSS ${fmtMiB(j.rss_at_kept_kib)} (V8 external memory ${fmtMiB(j.external_at_kept_kib)}), peak RSS ${fmtMiB(j.max_rss_kib)};` +
      ` ${j.batches} batches of ${fmtN(j.bytes / j.batches / 1024, 1)} KiB on average; delivered ${n.events} lost ${n.lost} generated ${n.generated}  ${c.ok ? 'OK' : 'MISMATCH'}`,
  )
  results.rounds.case8 = [{ ...n, kept: j.kept, kept_after_batches: j.kept_after_batches, rss_at_kept_kib: j.rss_at_kept_kib, array_buffers_at_kept_kib: j.array_buffers_at_kept_kib, check: c, raw: r }]
  return results.rounds.case8[0]
}

// ---------------------------------------------------------------------------------------------
// Machine

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim()
  } catch {
    return null
  }
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown'
  const vm = sh('systemd-detect-virt', ['--vm'])
  const ct = sh('systemd-detect-virt', ['--container'])
  const virt = [vm && vm !== 'none' ? `${vm} VM` : cpuinfo.includes(' hypervisor') ? 'VM' : null, ct && ct !== 'none' ? `${ct} container` : null].filter(Boolean).join(', ') || 'bare metal'
  return {
    kernel: sh('uname', ['-r']),
    cpu: model,
    vcpus: os.cpus().length,
    virtualization: virt,
    memory_gib: +(os.totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    date: new Date().toISOString(),
    loadavg_start: os.loadavg().map((x) => +x.toFixed(2)),
    linux_obs: sh('git', ['-C', ROOT, 'describe', '--always', '--dirty']),
  }
}

// ---------------------------------------------------------------------------------------------
// Summary

function summarize(opts, data) {
  const rows = []
  const add = (r) => rows.push(r)
  const by = (rounds, reader) => rounds.filter((r) => r.reader === reader)
  const through = (kase, label, target) => {
    const rs = data[`case${kase}`]
    if (!rs) return
    const ref = median(by(rs, 'ref').map((r) => r.consumed_rate))
    const obs = median(by(rs, 'obs').map((r) => r.consumed_rate))
    const q = ratio(obs, ref)
    add({ case: kase, metric: `${label}: consumed rate`, ref: fmtRate(ref), obs: fmtRate(obs), ratio: fmtRatio(q), target: target ? `≥ ${target}` : 'info', met: target ? q >= target : null, values: { ref, obs, ratio: q } })
    const rc = median(by(rs, 'ref').map((r) => r.cpu_ns_per_event))
    const oc = median(by(rs, 'obs').map((r) => r.cpu_ns_per_event))
    const sn = median(by(rs, 'obs').map((r) => r.split?.node))
    const sr = median(by(rs, 'obs').map((r) => r.split?.reader))
    add({ case: kase, metric: `${label}: reader CPU per event (whole process)`, ref: `${fmtN(rc, 1)} ns`, obs: `${fmtN(oc, 1)} ns (node threads ${fmtN(sn)} + reader thread ${fmtN(sr)})`, ratio: fmtRatio(ratio(oc, rc)), target: 'info', met: null, values: { ref: rc, obs: oc, node: sn, reader: sr } })
    const rl = by(rs, 'ref').map((r) => r.lost)
    const ol = by(rs, 'obs').map((r) => r.lost)
    const allOk = rs.every((r) => r.check.ok)
    add({ case: kase, metric: `${label}: lost per round; delivered+lost+dropped == generated == counter == calls`, ref: rl.map((x) => fmtN(x)).join(' / '), obs: ol.map((x) => fmtN(x)).join(' / '), ratio: '', target: 'exact', met: allOk, values: { ref: rl, obs: ol } })
    return rs
  }
  through(1, '1 per-event for await, flat out', 0.6)
  const c2 = through(2, '2 per-event for await, 1 M/s', null)
  if (c2) {
    // Zero loss for linux-obs in every round in which the reference lost nothing.
    const n = Math.min(by(c2, 'ref').length, by(c2, 'obs').length)
    let eligible = 0
    let bad = 0
    for (let i = 0; i < n; i++) {
      if (by(c2, 'ref')[i].lost === 0) {
        eligible++
        if (by(c2, 'obs')[i].lost !== 0) bad++
      }
    }
    add({ case: 2, metric: '2 at 1 M/s: rounds with zero loss (of rounds where the reference lost nothing)', ref: `${by(c2, 'ref').filter((r) => r.lost === 0).length}/${n}`, obs: `${eligible - bad}/${eligible}`, ratio: '', target: 'all', met: bad === 0 && eligible > 0, values: { eligible, bad } })
  }
  through(3, '3 batches(), flat out', 0.9)
  const c4 = data.case4
  if (c4) {
    const get = (reader, k) => median(by(c4, reader).map((r) => r.latency?.[k]))
    for (const k of ['p50', 'p99', 'max']) {
      const ref = get('ref', k)
      const obs = get('obs', k)
      const worst = (reader) => maxOf(by(c4, reader).map((r) => r.latency?.[k] ?? 0))
      const w = k === 'p99' ? ` (worst round ${fmtUs(worst('ref'))})` : ''
      const wo = k === 'p99' ? ` (worst round ${fmtUs(worst('obs'))})` : ''
      add({ case: 4, metric: `4 sparse exec latency ${k} (median of rounds)`, ref: fmtUs(ref) + w, obs: fmtUs(obs) + wo, ratio: fmtRatio(ratio(obs, ref)), target: k === 'p99' ? '≤ 1 ms' : 'info', met: k === 'p99' ? obs <= 1e6 : null, values: { ref, obs, worst_ref: worst('ref'), worst_obs: worst('obs') } })
    }
    add({ case: 4, metric: '4 sparse exec: delivered+lost+dropped == generated', ref: by(c4, 'ref').map((r) => r.lost).join(' / ') + ' lost', obs: by(c4, 'obs').map((r) => r.lost).join(' / ') + ' lost', ratio: '', target: 'exact', met: c4.every((r) => r.check.ok), values: {} })
  }
  if (c2 && opts.cases.includes(5)) {
    const ref = median(by(c2, 'ref').map((r) => r.load_busy_cpu_ns_per_call))
    const obs = median(by(c2, 'obs').map((r) => r.load_busy_cpu_ns_per_call))
    const q = ratio(obs, ref)
    add({ case: 5, metric: '5 workload CPU per getppid at 1 M/s (busy time x on-CPU share)', ref: `${fmtN(ref, 1)} ns`, obs: `${fmtN(obs, 1)} ns`, ratio: fmtRatio(q), target: '≤ 1.05', met: q <= 1.05, values: { ref, obs, ratio: q } })
    const rr = median(by(c2, 'ref').map((r) => r.load_busy_ns_per_call))
    const or = median(by(c2, 'obs').map((r) => r.load_busy_ns_per_call))
    add({ case: 5, metric: '5 same, raw busy wall time per call', ref: `${fmtN(rr, 1)} ns`, obs: `${fmtN(or, 1)} ns`, ratio: fmtRatio(ratio(or, rr)), target: 'info', met: null, values: { ref: rr, obs: or } })
  }
  if (opts.cases.includes(6)) {
    const per = []
    for (const k of ['case1', 'case2', 'case3', 'case4']) {
      const rs = data[k]
      if (rs) per.push([k.slice(4), maxOf(by(rs, 'obs').map((r) => r.max_rss_kib))])
    }
    if (data.case7) per.push(['7', maxOf(data.case7.filter((r) => r.what === 'idle').map((r) => r.max_rss_kib))])
    const worst = maxOf(per.map((p) => p[1]))
    const base = data.case7 ? maxOf(data.case7.filter((r) => r.what === 'baseline').map((r) => r.max_rss_kib)) : null
    add({ case: 6, metric: `6 peak RSS of the linux-obs process, worst round per case (${per.map(([c, v]) => `case ${c}: ${fmtMiB(v)}`).join(', ')})`, ref: base != null ? `idle node: ${fmtMiB(base)}` : '-', obs: fmtMiB(worst), ratio: '', target: '≤ 100 MiB', met: worst != null ? worst <= 100 * 1024 : null, values: { per, worst, base } })
  }
  const c7 = data.case7
  if (c7) {
    const base = median(c7.filter((r) => r.what === 'baseline').map((r) => r.cpu_pct))
    const idle = median(c7.filter((r) => r.what === 'idle').map((r) => r.cpu_pct))
    const wps = median(c7.filter((r) => r.what === 'idle').map((r) => r.reader_wakeups_per_s))
    add({ case: 7, metric: `7 idle observer CPU, % of one CPU (ref column: idle node process; reader thread wakes ${fmtN(wps)} times/s)`, ref: fmtPct(base, 3), obs: `${fmtPct(idle, 3)} (net ${fmtPct(idle - base, 3)})`, ratio: '', target: '≤ 1 %', met: idle <= 1, values: { base, idle, net: idle - base, wakeups_per_s: wps } })
  }
  const c8 = data.case8?.[0]
  if (c8) {
    const base3 = data.case3 ? median(by(data.case3, 'obs').map((r) => r.max_rss_kib)) : null
    const ext = c8.raw?.reader?.external_at_kept_kib
    add({ case: 8, metric: `8 RSS keeping one event of each of ${c8.kept} batches (V8 external memory then: ${fmtMiB(ext)}${base3 ? `; case 3 peak without keeping: ${fmtMiB(base3)}` : ''})`, ref: '-', obs: `${fmtMiB(c8.rss_at_kept_kib)} (peak ${fmtMiB(c8.max_rss_kib)})`, ratio: '', target: 'info (100 MiB)', met: null, values: { rss: c8.rss_at_kept_kib, peak: c8.max_rss_kib, external: ext, case3_peak: base3 } })
  }
  return rows
}

function table(rows) {
  const head = ['case', 'metric', 'reference', 'linux-obs', 'obs/ref', 'target', 'met']
  const body = rows.map((r) => [String(r.case), r.metric, r.ref, r.obs, r.ratio, r.target, r.met === null ? '' : r.met ? 'yes' : 'NO'])
  const md = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((b) => `| ${b.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`)]
  return md.join('\n')
}

function roundsMarkdown(data) {
  const out = []
  for (const k of ['case1', 'case2', 'case3']) {
    const rs = data[k]
    if (!rs) continue
    out.push(`\n**Case ${k.slice(4)}** per round:\n`)
    out.push('| round | reader | consumed | delivered | lost | dropped | generated | counter | load calls | load rate | load ns/call | reader CPU ns/event | peak RSS | CPU wait load/reader | check |')
    out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for (const r of rs) {
      const nsCall = k === 'case2' ? `${r.load_busy_cpu_ns_per_call.toFixed(0)} (busy x on-CPU)` : r.load_cpu_ns_per_call.toFixed(0)
      out.push(`| ${r.round} | ${r.reader === 'ref' ? 'reference' : 'linux-obs'} | ${fmtRate(r.consumed_rate)} | ${fmtN(r.events)} | ${fmtN(r.lost)} | ${fmtN(r.dropped)} | ${fmtN(r.generated)} | ${fmtN(r.counter)} | ${fmtN(r.load_calls)} | ${fmtRate(r.load_rate)} | ${nsCall} | ${fmtN(r.cpu_ns_per_event, 1)} | ${fmtMiB(r.max_rss_kib)} | ${fmtOther(r)} | ${r.check.ok ? 'OK' : 'MISMATCH'} |`)
    }
  }
  if (data.case4) {
    out.push('\n**Case 4** per round:\n')
    out.push('| round | reader | p50 | p99 | max | n | lost | generated | counter | spawns | reader CPU/event | peak RSS | CPU wait load/reader | check |')
    out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for (const r of data.case4) {
      const l = r.latency ?? {}
      out.push(`| ${r.round} | ${r.reader === 'ref' ? 'reference' : 'linux-obs'} | ${fmtUs(l.p50)} | ${fmtUs(l.p99)} | ${fmtUs(l.max)} | ${l.n} | ${r.lost} | ${r.generated} | ${r.counter} | ${r.load_calls} | ${fmtUs(r.cpu_ns_per_event)} | ${fmtMiB(r.max_rss_kib)} | ${fmtOther(r)} | ${r.check.ok ? 'OK' : 'MISMATCH'} |`)
    }
  }
  if (data.case7) {
    out.push('\n**Case 7** per round:\n')
    out.push('| round | process | CPU % of one CPU | CPU ms | wall s | peak RSS |')
    out.push('|---|---|---|---|---|---|')
    for (const r of data.case7) out.push(`| ${r.round} | ${r.what === 'idle' ? 'idle observer' : 'idle node (baseline)'} | ${fmtPct(r.cpu_pct, 3)} | ${(r.cpu_ns / 1e6).toFixed(1)} | ${(r.wall_ns / 1e9).toFixed(2)} | ${fmtMiB(r.max_rss_kib)} |`)
  }
  return out.join('\n')
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    console.error('error: the benchmark needs root (perf_event_open on tracepoints, tracefs)')
    process.exit(1)
  }
  if (!existsSync('/sys/kernel/tracing/events')) {
    console.error('error: tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs nodev /sys/kernel/tracing)')
    process.exit(1)
  }
  if (os.cpus().length < 2) {
    console.error('error: needs at least 2 CPUs (load on CPU 0, readers on CPU 1)')
    process.exit(1)
  }
  if (!existsSync(path.join(ROOT, 'dist', 'src', 'index.js'))) {
    console.error('error: linux-obs is not built: run `npm run build` first')
    process.exit(1)
  }
  if (sh('taskset', ['-V']) === null) {
    console.error('error: taskset (util-linux) is required')
    process.exit(1)
  }
  // With autogroups (sched_autogroup_enabled), nice only orders tasks within one session: raise
  // this session's group too, so that other sessions' CPU hogs do not take the load's or the
  // readers' CPU. Restored at exit.
  const ag = '/proc/self/autogroup'
  if (opts.nice !== 0 && existsSync(ag)) {
    try {
      const before = Number(/nice (-?\d+)/.exec(readFileSync(ag, 'utf8'))?.[1] ?? 0)
      writeFileSync(ag, String(opts.nice))
      process.on('exit', () => {
        try {
          writeFileSync(ag, String(before))
        } catch {}
      })
      log(`session autogroup nice ${before} -> ${opts.nice} for the run`)
    } catch (e) {
      log(`(could not set the autogroup nice: ${e.code ?? e})`)
    }
  }
  log('building bench/native ...')
  execFileSync('make', ['-s', '-C', NATIVE], { stdio: 'inherit' })

  const t0 = Date.now()
  results.machine = machine()
  results.options = opts
  const m = results.machine
  log(`machine: ${m.cpu}, ${m.vcpus} vCPUs (${m.virtualization}), kernel ${m.kernel}, node ${m.node}, load average ${m.loadavg_start.join(' ')}`)
  log(`options: ${opts.rounds} rounds, ${opts.seconds} s per run, cases ${opts.cases.join(',')}, nice ${opts.nice}`)

  const want = (c) => opts.cases.includes(c)
  const data = {}
  if (want(1)) data.case1 = await throughputCase(1, opts)
  if (want(2) || want(5)) data.case2 = await throughputCase(2, opts)
  if (want(3)) data.case3 = await throughputCase(3, opts)
  if (want(4)) data.case4 = await latencyCase(opts)
  if (want(7)) data.case7 = await idleCase(opts)
  if (want(8)) data.case8 = [await retainCase(opts)]

  m.loadavg_end = os.loadavg().map((x) => +x.toFixed(2))
  m.duration_s = Math.round((Date.now() - t0) / 1000)
  const rows = summarize(opts, data)
  results.summary = rows
  const md = table(rows)
  log(`\n== summary (medians of ${opts.rounds} rounds; ratios linux-obs / reference in the same run)\n`)
  log(md)
  log(`\nmachine: ${m.cpu}, ${m.vcpus} vCPUs, kernel ${m.kernel}, node ${m.node}, ${m.date}; load average ${m.loadavg_start.join(' ')} -> ${m.loadavg_end.join(' ')}; ${m.duration_s} s`)

  // Raw tool outputs are kept in results.json; the markdown has the per-round tables.
  writeFileSync(path.join(HERE, 'results.json'), JSON.stringify(results, (k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n')
  const doc = [
    '# linux-obs benchmark: latest results',
    '',
    `Generated by \`${['node bench/run.mjs', ...process.argv.slice(2)].join(' ')}\` on ${m.date}.`,
    '',
    '| machine | |',
    '|---|---|',
    `| CPU | ${m.cpu}, ${m.vcpus} vCPUs (${m.virtualization}) |`,
    `| memory | ${m.memory_gib} GiB |`,
    `| kernel | ${m.kernel} |`,
    `| node | ${m.node} |`,
    `| linux-obs | ${m.linux_obs ?? '?'} (git describe; built dist/ and .node as found) |`,
    `| load average (1/5/15 min) | ${m.loadavg_start.join(' ')} at start, ${m.loadavg_end.join(' ')} at end |`,
    `| options | ${opts.rounds} rounds, ${opts.seconds} s per run, nice ${opts.nice}, load on CPU 0, readers on CPU 1 |`,
    '',
    `Medians of ${opts.rounds} rounds; each round runs the reference (bench/native/refreader) and then linux-obs on the same load.`,
    '',
    md,
    '',
    '## Per round',
    roundsMarkdown(data),
    '',
    'Raw tool outputs: `bench/results.json`. Method: `bench/README.md`.',
    '',
  ].join('\n')
  writeFileSync(path.join(HERE, 'RESULTS.md'), doc)
  log('\nwrote bench/results.json and bench/RESULTS.md')
}

main().catch((e) => {
  console.error(e?.stack ?? e)
  killAll()
  process.exit(1)
})
