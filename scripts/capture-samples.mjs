#!/usr/bin/env node
// Captures real tracepoint samples from the running kernel into fixtures/samples/, each paired
// with the line ftrace printed for the same occurrence, so that __test__/samples.test.ts can check
// the decoder against the kernel's own rendering of the values.
//
//   node scripts/capture-samples.mjs [--out DIR] [--keep-trace DIR]     (as root)
//
// --out: where to write (default fixtures/samples); --keep-trace: also save both instances' text.
// Needs root (perf_event_open on tracepoints, tracefs instances) and a built package
// (`npm run build`). It leaves nothing behind: the tracefs instances, the temp dir and the
// observer are torn down in a `finally`.
//
// How it works
// - Two tracefs instances, both with `trace_clock` mono and the `nohash-ptr` option:
//     F ("fields"): with the `fields` option, ftrace prints every field raw (`name=0x.. (dec)`,
//       strings as they are);
//     P ("print"): without it, ftrace prints the tracepoint's own `print fmt` (needed for what
//       the `fields` output cannot show: arrays other than 1, 2, 4 or 8 bytes print
//       `<INVALID-SIZE>`, and `const char *` fields print `(0x<address of the field inside the
//       ring buffer>)` instead of the pointer they hold, on 6.18).
//   Both enable the same tracepoints as a linux-obs Observer that reads them with perf.
// - Deterministic triggers: an exec of a copy of /bin/sleep whose name holds the bytes ff fe
//   (not UTF-8; its comm then holds them too, seen in sched_switch), an openat with mode 0640
//   (fs.openSync 'wx') of a unique path (also seen by raw_syscalls:sys_enter), a TCP connection
//   on 127.0.0.1 (sock:inet_sock_set_state); kmalloc happens along the way.
// - Pairing by CPU, thread id and time: per (event, cpu, tid) the lines of an instance, in order,
//   must be a contiguous run of the perf samples, in order, with every perf time within
//   [SHIFT_LO, SHIFT_HI] of its line's time (ftrace prints mono time rounded to the µs; perf's
//   probe runs just before ftrace's). A key is used only when exactly one run fits, so a burst of
//   events a microsecond apart cannot be paired off by one.
// - `expected` is computed from the ftrace text and the format file only (never from the
//   library's decoder). Normalization (also in fixtures/samples/README.md):
//     number   (1/2/4-byte integers)    JSON number
//     bigint   (8-byte integers, pointers) decimal string
//     boolean                            true/false
//     string   (char[N], __data_loc char[]) `value`: the printed bytes decoded as TextDecoder does
//              (invalid UTF-8 -> U+FFFD), `hex`: the exact bytes
//     bytes    (arrays of 1-byte elements) hex string
//     number[] / bigint[]                array of numbers / decimal strings
//   An integer printed by `fields` as `0xHEX (DEC)` takes its bits from HEX (the decimal is
//   `%d`/`%lld` of the same bits, so negative for unsigned values with the top bit set); an
//   8-byte value printed as a symbol (`func+0x1/0x2 (DEC)`) takes its bits from DEC modulo 2^64.
//   The bits are then read as signed or unsigned as the format file says. A byte array that
//   `fields` prints as an integer (sizes 1, 2, 4, 8) is that integer's little-endian bytes.
import { execFileSync, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs'
import { release } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import net from 'node:net'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '..')
const require = createRequire(import.meta.url)
const { Observer } = require(join(repo, 'dist', 'src', 'index.js'))

const args = process.argv.slice(2)
const argValue = (name) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const OUT = resolve(argValue('--out') ?? join(repo, 'fixtures', 'samples'))
const KEEP_TRACE = argValue('--keep-trace')
const TRACEFS = '/sys/kernel/tracing'
/** perf time - ftrace time of one occurrence: perf's probe runs first, ftrace rounds to 1 µs. */
const SHIFT_LO = -50_000n
const SHIFT_HI = 1_000n
const TRACEPOINTS = [
  'sched:sched_process_exec',
  'sched:sched_switch',
  'syscalls:sys_enter_openat',
  'raw_syscalls:sys_enter',
  'kmem:kmalloc',
  'sock:inet_sock_set_state',
]

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const log = (...a) => console.error('[capture]', ...a)

// ---------------------------------------------------------------------------------------------
// tracefs

function ensureTracefs() {
  if (!existsSync(join(TRACEFS, 'instances'))) {
    execFileSync('mount', ['-t', 'tracefs', 'nodev', TRACEFS], { timeout: 10_000 })
  }
}

function writeTracefs(path, value) {
  writeFileSync(path, value)
}

class Instance {
  constructor(name, { fields }) {
    this.name = name
    this.dir = join(TRACEFS, 'instances', name)
    this.fields = fields
    this.enabled = []
  }

  create() {
    mkdirSync(this.dir)
    writeTracefs(join(this.dir, 'trace_clock'), 'mono')
    const clock = readFileSync(join(this.dir, 'trace_clock'), 'utf8')
    if (!clock.includes('[mono]')) throw new Error(`${this.name}: trace_clock is not mono: ${clock}`)
    const available = new Set(readFileSync(join(this.dir, 'trace_options'), 'utf8').split('\n'))
    const options = ['nohash-ptr', this.fields ? 'fields' : 'nofields']
    for (const opt of options) {
      const bare = opt.replace(/^no/, '')
      if (!available.has(bare) && !available.has(`no${bare}`)) {
        throw new Error(`this kernel has no trace option '${bare}' (options: ${[...available].join(' ')})`)
      }
      writeTracefs(join(this.dir, 'trace_options'), opt)
    }
    const now = new Set(readFileSync(join(this.dir, 'trace_options'), 'utf8').split('\n'))
    for (const opt of options) if (!now.has(opt)) throw new Error(`${this.name}: option ${opt} did not stick`)
    writeTracefs(join(this.dir, 'buffer_size_kb'), '8192')
    this.options = [`trace_clock=mono`, ...options]
  }

  enable(tracepoint) {
    const [sys, ev] = tracepoint.split(':')
    const path = join(this.dir, 'events', sys, ev, 'enable')
    writeTracefs(path, '1')
    this.enabled.push(path)
  }

  stop() {
    writeTracefs(join(this.dir, 'tracing_on'), '0')
  }

  read() {
    return readFileSync(join(this.dir, 'trace'))
  }

  /** Events the instance overwrote or dropped (must be 0 for the pairing to hold). */
  losses() {
    let n = 0
    const cpus = join(this.dir, 'per_cpu')
    for (const cpu of readdirSync(cpus)) {
      const stats = readFileSync(join(cpus, cpu, 'stats'), 'utf8')
      for (const m of stats.matchAll(/^(overrun|dropped events): (\d+)$/gm)) n += Number(m[2])
    }
    return n
  }

  destroy() {
    if (!existsSync(this.dir)) return
    for (const p of this.enabled) {
      try {
        writeTracefs(p, '0')
      } catch (e) {
        log(`disable ${p}: ${e.message}`)
      }
    }
    for (let i = 0; ; i++) {
      try {
        rmdirSync(this.dir)
        return
      } catch (e) {
        if (i >= 20) throw e
        execFileSync('sleep', ['0.1'])
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// format files and ftrace text

/** Parses the `field:` lines of a format file (own parser: independent of the library). */
function formatFields(text) {
  const fields = []
  for (const line of text.split('\n')) {
    const m = /^\s*field:(.*?);\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d+);/.exec(line)
    if (!m) continue
    const decl = m[1].trim()
    let dm = /^(.*?)\s*([A-Za-z_]\w*)\s*\[([^\]]*)\]$/.exec(decl)
    let type, name, arrayLen
    if (dm) [, type, name, arrayLen] = dm
    else {
      dm = /^(.*?)\s*([A-Za-z_]\w*)$/.exec(decl)
      ;[, type, name] = dm
      arrayLen = null
    }
    const size = Number(m[3])
    const f = { name, type: type.trim(), arrayLen, offset: Number(m[2]), size, signed: m[4] === '1' }
    f.common = name.startsWith('common_')
    f.kind = fieldKind(f)
    fields.push(f)
  }
  return fields
}

function fieldKind(f) {
  if (/__data_loc|__rel_loc/.test(f.type)) return /\bchar\b/.test(f.type) ? 'string' : 'bytes'
  if (f.arrayLen !== null) {
    if (/^(const\s+)?(signed\s+)?char$/.test(f.type)) return 'string'
    const n = /^\d+$/.test(f.arrayLen) ? Number(f.arrayLen) : 0
    const elem = n > 0 ? f.size / n : 1
    return elem === 1 ? 'bytes' : elem === 8 ? 'bigint[]' : 'number[]'
  }
  if (f.type === 'bool') return 'boolean'
  return f.size === 8 ? 'bigint' : 'number'
}

/** `comm-pid [cpu] flags secs.usecs: rest` (the line as latin1 text, one char per byte). */
function parseTraceLine(latin1) {
  const m = /^\s*(.*?)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+(\d+)\.(\d{6}): (.*)$/.exec(latin1)
  if (!m) return null
  return {
    comm: m[1],
    pid: Number(m[2]),
    cpu: Number(m[3]),
    flags: m[4],
    timeUs: BigInt(m[5]) * 1_000_000n + BigInt(m[6]),
    timeText: `${m[5]}.${m[6]}`,
    rest: m[7],
  }
}

function readTrace(buf) {
  const lines = []
  let start = 0
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x0a) {
      if (i > start && buf[start] !== 0x23 /* # */) {
        const bytes = buf.subarray(start, i)
        const p = parseTraceLine(bytes.toString('latin1'))
        if (p) lines.push({ ...p, bytes })
      }
      start = i + 1
    }
  }
  return lines
}

/** The event a `fields` line or a `print fmt` line is for. */
function lineEvent(rest, fieldsMode) {
  if (fieldsMode) return /^([\w.-]+):/.exec(rest)?.[1]
  const sys = /^sys_(\w+)\(/.exec(rest) // syscall events print `sys_NAME(args)`
  if (sys) return `sys_enter_${sys[1]}`
  return /^([\w.-]+):/.exec(rest)?.[1]
}

/** Splits the body of a `fields` line (` a=.. b=..`) by the known field names, in order. */
function splitFieldsLine(body, names) {
  const out = {}
  let pos = 0
  for (let i = 0; i < names.length; i++) {
    const marker = ` ${names[i]}=`
    const at = body.indexOf(marker, pos)
    if (at < 0) throw new Error(`field ${names[i]} not found in: ${body}`)
    const start = at + marker.length
    let end = body.length
    if (i + 1 < names.length) {
      end = body.indexOf(` ${names[i + 1]}=`, start)
      if (end < 0) throw new Error(`field ${names[i + 1]} not found in: ${body}`)
    }
    out[names[i]] = body.slice(start, end)
    pos = end
  }
  return out
}

/** The bits of an integer printed by `fields`, as an unsigned bigint of `size` bytes. */
function fieldsIntBits(text, size) {
  const bits = BigInt(size * 8)
  let m = /^0x([0-9a-f]+) \((-?\d+)\)$/.exec(text)
  if (m) {
    const v = BigInt(`0x${m[1]}`)
    if (BigInt.asUintN(Number(bits), BigInt(m[2])) !== v) throw new Error(`hex and decimal disagree: ${text}`)
    return v
  }
  m = /^(?:'.')?\((-?\d+)\)$/.exec(text) // 1 byte: 'c'(99) or (7)
  if (m && size === 1) return BigInt.asUintN(8, BigInt(m[1]))
  m = /^\S+\+0x[0-9a-f]+\/0x[0-9a-f]+ \((-?\d+)\)$/.exec(text) // 8 bytes shown as a symbol
  if (m && size === 8) return BigInt.asUintN(64, BigInt(m[1]))
  throw new Error(`unexpected integer text: ${text}`)
}

function leBytes(v, size) {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = Number((v >> BigInt(8 * i)) & 0xffn)
  return b
}

function parseIPv6(text) {
  let head = text
  let tail = ''
  const dbl = text.indexOf('::')
  if (dbl >= 0) {
    head = text.slice(0, dbl)
    tail = text.slice(dbl + 2)
  }
  const groups = (s) => {
    if (s === '') return []
    const out = []
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const o = part.split('.').map(Number)
        out.push((o[0] << 8) | o[1], (o[2] << 8) | o[3])
      } else out.push(parseInt(part, 16))
    }
    return out
  }
  const h = groups(head)
  const t = groups(tail)
  const all = dbl >= 0 ? [...h, ...new Array(8 - h.length - t.length).fill(0), ...t] : h
  if (all.length !== 8) throw new Error(`bad IPv6 text ${text}`)
  const b = Buffer.alloc(16)
  all.forEach((g, i) => b.writeUInt16BE(g, 2 * i))
  return b
}

/**
 * Values that only the `print fmt` line shows: per tracepoint, field -> [printed token, parser].
 * Parsers: 'hex' (one hex number, `0` or `0x..`), 'hexlist' (comma-separated hex without 0x),
 * 'ipv6' (%pI6c text), 'ipv4' (%pI4 text).
 */
const PRINT_FIELDS = {
  'syscalls:sys_enter_openat': { filename: [/filename: (0x[0-9a-f]+|0)[,)]/, 'hex'] },
  'raw_syscalls:sys_enter': { args: [/^sys_enter: NR -?\d+ \(([0-9a-f]+(?:, [0-9a-f]+)*)\)$/, 'hexlist'] },
  'sock:inet_sock_set_state': {
    saddr_v6: [/ saddrv6=(\S+)/, 'ipv6'],
    daddr_v6: [/ daddrv6=(\S+)/, 'ipv6'],
  },
}
/** Cross-checks shown by the `print fmt` line for fields the `fields` line also shows. */
const PRINT_ALSO = {
  'sock:inet_sock_set_state': { saddr: [/ saddr=(\S+)/, 'ipv4'], daddr: [/ daddr=(\S+)/, 'ipv4'] },
}

function normalizePrinted(token, parser, f) {
  switch (parser) {
    case 'hex':
      return { type: 'bigint', value: BigInt(token).toString() }
    case 'hexlist':
      return { type: 'bigint[]', value: token.split(', ').map((h) => BigInt(`0x${h}`).toString()) }
    case 'ipv6':
      return { type: 'bytes', value: parseIPv6(token).toString('hex') }
    case 'ipv4':
      return { type: 'bytes', value: Buffer.from(token.split('.').map(Number)).toString('hex') }
    default:
      throw new Error(`no parser ${parser} for ${f.name}`)
  }
}

function normalizeFieldsText(text, f) {
  if (text === '<INVALID-SIZE>' || text === '<OVERFLOW>' || text === '<INVALID-TYPE>') return null
  switch (f.kind) {
    case 'string': {
      const bytes = Buffer.from(text, 'latin1')
      return { type: 'string', value: new TextDecoder().decode(bytes), hex: bytes.toString('hex') }
    }
    case 'bytes':
      return { type: 'bytes', value: leBytes(fieldsIntBits(text, f.size), f.size).toString('hex') }
    case 'boolean':
      return { type: 'boolean', value: fieldsIntBits(text, f.size) !== 0n }
    case 'number':
    case 'bigint': {
      const bits = fieldsIntBits(text, f.size)
      const v = f.signed ? BigInt.asIntN(f.size * 8, bits) : bits
      return f.kind === 'number' ? { type: 'number', value: Number(v) } : { type: 'bigint', value: v.toString() }
    }
    default:
      return null // arrays of wider elements: `fields` prints <INVALID-SIZE>
  }
}

/** `expected` for one sample, from its two ftrace lines and the format file. */
function expectedFor(tracepoint, fields, fieldsLine, printLine) {
  const rest = fieldsLine.rest
  const ev = tracepoint.split(':')[1]
  if (!rest.startsWith(`${ev}:`)) throw new Error(`not a ${ev} fields line: ${rest}`)
  const body = rest.slice(ev.length + 1)
  const own = fields.filter((f) => !f.common)
  const texts = splitFieldsLine(body, own.map((f) => f.name))
  const printRest = printLine.rest
  const expected = {}
  for (const f of own) {
    const special = PRINT_FIELDS[tracepoint]?.[f.name]
    // `const char *` fields: 6.18's `fields` output prints the address of the field inside the
    // ring buffer (`(0x%px)` of the wrong variable), not the pointer it holds.
    const ptrString = /^(const\s+)?char\s*\*$/.test(f.type)
    let e = null
    if (!special && !ptrString) e = normalizeFieldsText(texts[f.name], f)
    if (e) {
      e = { from: 'fields', printed: Buffer.from(texts[f.name], 'latin1').toString('utf8'), ...e }
    } else {
      if (!special) throw new Error(`${tracepoint}.${f.name}: fields shows '${texts[f.name]}' and no print parser is known`)
      const m = special[0].exec(printRest)
      if (!m) throw new Error(`${tracepoint}.${f.name}: not in print line: ${printRest}`)
      e = { from: 'print', printed: m[1], parser: special[1], ...normalizePrinted(m[1], special[1], f) }
      e.fieldsPrinted = texts[f.name]
    }
    const also = PRINT_ALSO[tracepoint]?.[f.name]
    if (also) {
      const m = also[0].exec(printRest)
      if (!m) throw new Error(`${tracepoint}.${f.name}: not in print line: ${printRest}`)
      const n = normalizePrinted(m[1], also[1], f)
      if (n.value !== e.value) throw new Error(`${tracepoint}.${f.name}: fields ${e.value} != print ${n.value}`)
      e.alsoPrinted = { from: 'print', printed: m[1], parser: also[1] }
    }
    expected[f.name] = e
  }
  return expected
}

function isUtf8(buf) {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf)
    return true
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// triggers

function runChild(file, argv, env = {}) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(file, argv, { stdio: 'ignore', env: { ...process.env, ...env } })
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (code !== 0) reject(new Error(`${file} ${argv.join(' ')}: exit ${code ?? signal}`))
      else resolveRun(child.pid)
    })
  })
}

async function tcpOnLoopback() {
  const server = net.createServer((s) => {
    s.resume() // read the client's data and FIN, or the server never closes
    s.end()
  })
  await new Promise((r, j) => server.listen(0, '127.0.0.1', r).once('error', j))
  const port = server.address().port
  await new Promise((r, j) => {
    const c = net.connect(port, '127.0.0.1')
    const t = setTimeout(() => j(new Error('tcp timeout')), 5000)
    c.once('error', j)
    c.on('data', () => {})
    c.once('close', () => {
      clearTimeout(t)
      r()
    })
    c.end('x')
  })
  await new Promise((r, j) => {
    const t = setTimeout(() => j(new Error('server close timeout')), 5000)
    server.close(() => {
      clearTimeout(t)
      r()
    })
  })
  return port
}

// ---------------------------------------------------------------------------------------------
// main

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root (perf tracepoints and tracefs instances)')
  ensureTracefs()
  const kernel = release()
  const formats = Object.fromEntries(
    TRACEPOINTS.map((tp) => [tp, readFileSync(join(TRACEFS, 'events', ...tp.split(':'), 'format'), 'utf8')]),
  )
  const layouts = Object.fromEntries(TRACEPOINTS.map((tp) => [tp, formatFields(formats[tp])]))

  const tag = `linux-obs-capture-${process.pid}`
  const F = new Instance(tag, { fields: true })
  const P = new Instance(`${tag}-print`, { fields: false })
  const tmp = mkdtempSync('/tmp/linux-obs-capture-')
  chmodSync(tmp, 0o755)
  liveTemp.push(tmp)
  const observer = new Observer({ maxDelayMs: 5 })
  const seen = []
  const ac = new AbortController()
  let loop = Promise.resolve()
  const facts = {}
  let fieldsTrace = null
  let printTrace = null
  liveInstances.push(F, P)
  try {
    F.create()
    P.create()
    for (const tp of TRACEPOINTS) observer.addTracepoint(tp)
    await observer.open()
    log('observer open')
    loop = (async () => {
      for await (const ev of observer.events({ signal: ac.signal })) seen.push(ev)
    })().catch((e) => {
      if (!ac.signal.aborted) log('reading events failed:', e)
    })
    for (const tp of TRACEPOINTS) {
      F.enable(tp)
      P.enable(tp)
    }
    await sleep(20)

    // exec of a path that is not UTF-8; the copy of sleep then blocks (a sched_switch in S state).
    const baseName = Buffer.concat([Buffer.from('obs-'), Buffer.from([0xff, 0xfe]), Buffer.from('-exec')])
    const exe = Buffer.concat([Buffer.from(`${tmp}/`), baseName])
    copyFileSync('/bin/sleep', exe)
    chmodSync(exe, 0o755)
    facts.execPath = exe
    log('exec trigger')
    facts.execPid = await runChild('/bin/sh', ['-c', 'exec "$(printf "%s\\377\\376%s" "$D/obs-" "-exec")" 0.03'], { D: tmp })
    await sleep(10)

    // openat of a unique path with flags and mode nothing else uses.
    facts.openPath = join(tmp, `openat-${process.pid}-${Date.now()}`)
    facts.openTid = process.pid // fs.openSync runs on the main thread
    closeSync(openSync(facts.openPath, 'wx', 0o640))
    await sleep(10)

    log('tcp trigger')
    facts.tcpPort = await tcpOnLoopback()
    log('triggers done')
    await sleep(50)
    // Stop the instances, then give the observer time to deliver what is still in the rings.
    F.stop()
    P.stop()
    // Every occurrence the instances saw must have reached `seen`: wait until the rings have
    // been drained (a timed drain every maxDelayMs) and all that was read has been delivered.
    await sleep(50)
    for (let i = 0, stable = 0; i < 100 && stable < 3; i++) {
      await sleep(20)
      stable = observer.stats().read === seen.length ? stable + 1 : 0
    }
  } finally {
    log('closing observer')
    ac.abort()
    await loop.catch(() => {})
    const stats = (() => {
      try {
        return observer.stats()
      } catch {
        return null
      }
    })()
    await observer.close().catch((e) => log('close:', e.message))
    facts.stats = stats
    try {
      fieldsTrace = existsSync(F.dir) ? F.read() : null
      printTrace = existsSync(P.dir) ? P.read() : null
      facts.ftraceLosses = existsSync(F.dir) ? F.losses() + P.losses() : null
    } finally {
      for (const inst of [F, P]) {
        try {
          inst.destroy()
        } catch (e) {
          log(`could not remove instance ${inst.dir}: ${e.message}`)
        }
      }
      rmSync(tmp, { recursive: true, force: true })
    }
  }
  if (KEEP_TRACE) {
    mkdirSync(KEEP_TRACE, { recursive: true })
    writeFileSync(join(KEEP_TRACE, 'fields.trace'), fieldsTrace)
    writeFileSync(join(KEEP_TRACE, 'print.trace'), printTrace)
  }
  log(`perf events: ${seen.length}; stats: ${JSON.stringify(facts.stats, (k, v) => (typeof v === 'bigint' ? v.toString() : v))}`)

  if (facts.ftraceLosses !== 0) throw new Error(`the tracefs instances lost ${facts.ftraceLosses} events`)
  const fLines = readTrace(fieldsTrace)
  const pLines = readTrace(printTrace)
  log(`ftrace lines: fields ${fLines.length}, print ${pLines.length}`)
  const index = (lines, fieldsMode) => {
    const m = new Map()
    for (const l of lines) {
      const ev = lineEvent(l.rest, fieldsMode)
      const key = `${ev}/${l.cpu}/${l.pid}`
      if (!m.has(key)) m.set(key, [])
      m.get(key).push(l)
    }
    return m
  }
  const fIndex = index(fLines, true)
  const pIndex = index(pLines, false)
  // Pairing. Per key (event, cpu, tid) the perf samples and an instance's lines are the same
  // occurrences in the same order; the instance only saw a contiguous stretch of them (it was
  // enabled after the observer opened and stopped before it closed). So the lines L[0..m) are
  // the samples P[k..k+m) for some shift k, and every pair must have its perf time within
  // [SHIFT_LO, SHIFT_HI] of the ftrace time. A key is paired only when exactly one k fits.
  const keyOf = (ev) => `${ev.name.split(':')[1]}/${ev.cpu}/${ev.tid}`
  const byKey = new Map()
  for (const ev of seen) {
    const k = keyOf(ev)
    if (!byKey.has(k)) byKey.set(k, [])
    byKey.get(k).push(ev)
  }
  for (const list of byKey.values()) list.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0))
  const alignStats = { keys: 0, aligned: 0, none: 0, ambiguous: 0 }
  const align = (idx, name) => {
    const pairs = new Map()
    const lo = Number(SHIFT_LO)
    const hi = Number(SHIFT_HI)
    for (const [key, samples] of byKey) {
      const lines = idx.get(key) ?? []
      if (lines.length === 0) continue
      alignStats.keys++
      const st = samples.map((e) => Number(e.time))
      const lt = lines.map((l) => Number(l.timeUs) * 1000)
      // A stray pair (an interrupt between the perf and the ftrace probe) may miss the window:
      // allow 1% of misses (those pairs are left out), still requiring exactly one fitting shift.
      const allowed = Math.floor(lines.length / 100)
      const fits = []
      for (let k = 0; k + lines.length <= samples.length; k++) {
        let miss = 0
        for (let i = 0; i < lines.length && miss <= allowed; i++) {
          const d = st[k + i] - lt[i]
          if (d < lo || d > hi) miss++
        }
        if (miss <= allowed) fits.push(k)
      }
      if (fits.length !== 1) {
        alignStats[fits.length === 0 ? 'none' : 'ambiguous']++
        log(`${name}: ${key}: ${samples.length} samples, ${lines.length} lines, ${fits.length} fitting shifts: not paired`)
        if (process.env.CAPTURE_DEBUG) {
          log(`  samples: ${st.join(' ')}`)
          log(`  lines:   ${lt.join(' ')}`)
        }
        continue
      }
      alignStats.aligned++
      lines.forEach((l, i) => {
        const d = st[fits[0] + i] - lt[i]
        if (d >= lo && d <= hi) pairs.set(samples[fits[0] + i], l)
        else alignStats.strays = (alignStats.strays ?? 0) + 1
      })
    }
    return pairs
  }
  // Per event, the time between the first and the last line of both instances (each event was
  // enabled and stopped at its own moment).
  const spans = new Map()
  for (const [lines, fieldsMode] of [
    [fLines, true],
    [pLines, false],
  ]) {
    const own = new Map()
    for (const l of lines) {
      const ev = lineEvent(l.rest, fieldsMode)
      const t = l.timeUs * 1000n
      const s = own.get(ev) ?? [t, t]
      own.set(ev, [s[0] < t ? s[0] : t, s[1] > t ? s[1] : t])
    }
    for (const [ev, [a, b]] of own) {
      const s = spans.get(ev)
      spans.set(ev, s ? [s[0] > a ? s[0] : a, s[1] < b ? s[1] : b] : [a, b])
    }
  }
  const inWindow = (ev) => {
    const s = spans.get(ev.name.split(':')[1])
    return !!s && ev.time >= s[0] + SHIFT_LO && ev.time <= s[1] + SHIFT_HI
  }
  const fPairs = align(fIndex, 'fields')
  const pPairs = align(pIndex, 'print')
  const deltas = [...fPairs].map(([ev, l]) => Number(ev.time - l.timeUs * 1000n)).sort((a, b) => a - b)
  if (process.env.CAPTURE_DEBUG) log(`offsets: ${deltas.join(' ')}`)
  const q = (p) => deltas[Math.min(deltas.length - 1, Math.floor(p * deltas.length))]
  log(
    `paired ${fPairs.size} samples with a fields line, ${pPairs.size} with a print line ` +
      `(keys: ${JSON.stringify(alignStats)}); perf - ftrace ns: min ${deltas[0]} p50 ${q(0.5)} p99 ${q(0.99)} max ${deltas[deltas.length - 1]}`,
  )
  facts.offsets = { min: deltas[0], p50: q(0.5), max: deltas[deltas.length - 1], pairs: deltas.length }

  // ------------------------------------------------------------------ selection
  const u8 = (ev) => Buffer.from(ev.data())
  const rawInt = (ev, tp, name) => {
    const f = layouts[tp].find((x) => x.name === name)
    const b = u8(ev)
    if (f.size === 8) return f.signed ? b.readBigInt64LE(f.offset) : b.readBigUInt64LE(f.offset)
    if (f.size === 4) return BigInt(f.signed ? b.readInt32LE(f.offset) : b.readUInt32LE(f.offset))
    if (f.size === 2) return BigInt(b.readUInt16LE(f.offset))
    return BigInt(b[f.offset])
  }
  const ODD = Buffer.from([0xff, 0xfe])
  const O_WRONLY_CREAT_EXCL = 0o1 | 0o100 | 0o200
  const cases = [
    {
      id: 'sched_process_exec-non-utf8',
      tracepoint: 'sched:sched_process_exec',
      what: 'exec of a copy of /bin/sleep whose file name holds the bytes ff fe (invalid UTF-8)',
      // the child first execs /bin/sh, which then execs the odd path: take the record holding ff fe
      pick: (ev) => ev.pid === facts.execPid && u8(ev).includes(ODD),
      max: 1,
    },
    {
      id: 'sched_switch',
      tracepoint: 'sched:sched_switch',
      what: 'switches out of and into the exec-ed process, whose comm holds the bytes ff fe',
      pick: (ev, chosen) => {
        const b = u8(ev)
        const prevOdd = b.subarray(8, 24).includes(ODD)
        const nextOdd = b.subarray(40, 56).includes(ODD)
        return (prevOdd && !chosen.some((c) => c.prevOdd)) || (nextOdd && !chosen.some((c) => c.nextOdd))
      },
      tag: (ev) => ({ prevOdd: u8(ev).subarray(8, 24).includes(ODD), nextOdd: u8(ev).subarray(40, 56).includes(ODD) }),
      max: 2,
    },
    {
      id: 'sys_enter_openat',
      tracepoint: 'syscalls:sys_enter_openat',
      what: `openat(AT_FDCWD, unique path, O_WRONLY|O_CREAT|O_EXCL|O_TRUNC|O_CLOEXEC, 0640) from node's main thread (fs.openSync 'wx')`,
      pick: (ev) =>
        ev.tid === facts.openTid &&
        rawInt(ev, 'syscalls:sys_enter_openat', 'mode') === 0o640n &&
        (rawInt(ev, 'syscalls:sys_enter_openat', 'flags') & BigInt(O_WRONLY_CREAT_EXCL)) === BigInt(O_WRONLY_CREAT_EXCL),
      max: 1,
    },
    {
      id: 'raw_syscalls_sys_enter',
      tracepoint: 'raw_syscalls:sys_enter',
      what: 'raw_syscalls:sys_enter of the same openat (id 257, args[3] = 0640)',
      pick: (ev) => {
        if (ev.tid !== facts.openTid || rawInt(ev, 'raw_syscalls:sys_enter', 'id') !== 257n) return false
        return u8(ev).readBigUInt64LE(16 + 3 * 8) === 0o640n
      },
      max: 1,
    },
    {
      id: 'kmalloc',
      tracepoint: 'kmem:kmalloc',
      what: 'any kmalloc by the exec-ed process or by node (pointers are kernel addresses above 2^53)',
      pick: (ev) => (ev.pid === facts.execPid || ev.pid === process.pid) && rawInt(ev, 'kmem:kmalloc', 'ptr') > 2n ** 53n,
      max: 2,
    },
    {
      id: 'inet_sock_set_state',
      tracepoint: 'sock:inet_sock_set_state',
      what: 'a TCP connection on 127.0.0.1: the listener (CLOSE->LISTEN) and the client (SYN_SENT->ESTABLISHED)',
      pick: (ev, chosen) => {
        const tp = 'sock:inet_sock_set_state'
        const o = rawInt(ev, tp, 'oldstate')
        const n = rawInt(ev, tp, 'newstate')
        const port = BigInt(facts.tcpPort)
        const want = (o === 7n && n === 10n && rawInt(ev, tp, 'sport') === port) || (o === 2n && n === 1n && rawInt(ev, tp, 'dport') === port)
        return want && !chosen.some((c) => rawInt(c.ev, tp, 'newstate') === n)
      },
      max: 2,
    },
  ]

  mkdirSync(OUT, { recursive: true })
  const written = []
  const failures = []
  for (const c of cases) {
    const chosen = []
    for (const ev of seen) {
      if (chosen.length >= c.max) break
      if (ev.name !== c.tracepoint || !c.pick(ev, chosen)) continue
      const fl = fPairs.get(ev)
      const pl = pPairs.get(ev)
      if (!fl || !pl) {
        if (!inWindow(ev)) continue // before the instances were enabled or after they stopped
        log(`${c.id}: a sample (cpu ${ev.cpu}, tid ${ev.tid}, time ${ev.time}) has no line in the ${fl ? 'print' : 'fields'} instance`)
        continue
      }
      chosen.push({ ev, fl, pl, ...(c.tag ? c.tag(ev) : {}) })
    }
    if (chosen.length === 0) {
      failures.push(c.id)
      continue
    }
    const samples = chosen.map(({ ev, fl, pl }) => {
      const fieldsLineBytes = fl.bytes
      const s = {
        cpu: ev.cpu,
        pid: ev.pid,
        tid: ev.tid,
        time: ev.time.toString(),
        raw: Buffer.from(ev.data()).toString('hex'),
        ftrace: {
          cpu: fl.cpu,
          pid: fl.pid,
          time: fl.timeText,
          flags: fl.flags,
          deltaNs: Number(ev.time - fl.timeUs * 1000n),
          fieldsLine: fieldsLineBytes.toString('utf8'),
          printLine: pl.bytes.toString('utf8'),
        },
        expected: expectedFor(c.tracepoint, layouts[c.tracepoint], fl, pl),
      }
      if (!isUtf8(fieldsLineBytes)) s.ftrace.fieldsLineHex = fieldsLineBytes.toString('hex')
      if (!isUtf8(pl.bytes)) s.ftrace.printLineHex = pl.bytes.toString('hex')
      return s
    })
    const doc = {
      case: c.id,
      tracepoint: c.tracepoint,
      kernel,
      what: c.what,
      capture: {
        instanceOptions: F.options,
        printInstanceOptions: P.options,
        pairing:
          `per (event, cpu, tid), the instance's lines in order are a contiguous run of the perf samples in order, ` +
          `each with perf time - ftrace time in [${SHIFT_LO}, ${SHIFT_HI}] ns; exactly one such run`,
        ...(c.id.startsWith('sched_process_exec') ? { execPathHex: facts.execPath.toString('hex') } : {}),
        ...(c.id === 'sys_enter_openat' ? { openPath: facts.openPath } : {}),
        ...(c.id === 'inet_sock_set_state' ? { tcpPort: facts.tcpPort } : {}),
      },
      format: formats[c.tracepoint],
      samples,
    }
    const file = join(OUT, `${c.id}.json`)
    writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`)
    written.push(`${file} (${samples.length})`)
  }
  for (const w of written) log(`wrote ${w}`)
  if (failures.length) throw new Error(`no paired sample for: ${failures.join(', ')}`)
}

/** Instances to remove if the watchdog or a signal ends the run early. */
const liveInstances = []
const liveTemp = []
function emergencyTeardown(why) {
  console.error(`[capture] ${why}: tearing down`)
  for (const dir of liveTemp) rmSync(dir, { recursive: true, force: true })
  for (const inst of liveInstances) {
    try {
      inst.destroy()
    } catch (e) {
      console.error(`[capture] could not remove ${inst.dir}: ${e.message}`)
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    emergencyTeardown(sig)
    process.exit(130)
  })
}
const watchdog = setTimeout(() => {
  emergencyTeardown('timed out after 60 s')
  process.exit(2)
}, 60_000)
watchdog.unref()
main().then(
  () => process.exit(0),
  (e) => {
    console.error('[capture] failed:', e)
    process.exit(1)
  },
)
