#!/usr/bin/env node
// linux-obs command-line tool: list, format, trace, types.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { FieldLayout, FieldValue, TracepointEvent } from '../index'
import { ObsError, native } from './errors'
import { compileNative, parseFormat } from './format'
import { binding } from './native'
import { Observer } from './observer'
import { type NamedFormat, augmentation, builtinModule, globMatcher } from './typegen'

const USAGE = `usage: linux-obs <command> [options]

commands:
  list [pattern...]              list tracepoints (globs like 'sched:*', or a system name)
  format <tracepoint>            show a tracepoint's fields (name, type, offset, size, signed)
  trace <tracepoint...>          print events as they happen until Ctrl-C
      --filter EXPR              ftrace filter applied in the kernel to every tracepoint
      --pid N                    only events of thread N (common_pid == N)
      --json                     one JSON object per line (the library's toJSON())
      --duration D               stop after D (10s, 500ms, 2m; a plain number is seconds)
      --count N                  stop after N events
      --include-self             also show events caused by this process (excluded by default)
  types [pattern...]             print a TypeScript augmentation of TracepointFields
      --from DIR                 read format files from DIR/<system>/<event>.format instead
      --builtin                  print the built-in declaration module instead

global options:
  --no-mount                     do not mount tracefs when it is missing (mounted by default)
  -h, --help                     this help
`

class UsageError extends Error {}

interface Parsed {
  command: string
  positional: string[]
  flags: Map<string, string | true>
}

const VALUE_FLAGS = new Set(['--filter', '--pid', '--duration', '--count', '--from'])
const BOOL_FLAGS = new Set(['--json', '--include-self', '--builtin', '--no-mount', '--help', '-h'])

function parseArgs(argv: string[]): Parsed {
  const positional: string[] = []
  const flags = new Map<string, string | true>()
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const eq = a.indexOf('=')
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a
    if (VALUE_FLAGS.has(name)) {
      const value = eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : argv[++i]
      if (value === undefined) throw new UsageError(`${name} needs a value`)
      flags.set(name, value)
    } else if (BOOL_FLAGS.has(a)) {
      flags.set(a, true)
    } else if (a.startsWith('-') && a !== '-') {
      throw new UsageError(`unknown option ${a}`)
    } else {
      positional.push(a)
    }
  }
  const command = positional.shift() ?? ''
  return { command, positional, flags }
}

function durationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (!m) throw new UsageError(`bad duration ${JSON.stringify(text)}: use e.g. 10s, 500ms, 2m`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']
  return Number(m[1]) * unit
}

function positiveInt(text: string, what: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${what} must be a positive integer, got ${JSON.stringify(text)}`)
  return n
}

function listTracepoints(mount: boolean, patterns: string[]): string[] {
  const all = native(() => binding.listTracepoints(mount))
  const match = globMatcher(patterns)
  return all.filter(match)
}

function formatsFromDir(dir: string, patterns: string[]): NamedFormat[] {
  if (!existsSync(dir)) throw new UsageError(`no such directory ${dir}`)
  const match = globMatcher(patterns)
  const out: NamedFormat[] = []
  for (const system of readdirSync(dir, { withFileTypes: true })) {
    if (!system.isDirectory()) continue
    for (const file of readdirSync(join(dir, system.name))) {
      if (!file.endsWith('.format')) continue
      const name = `${system.name}:${file.slice(0, -'.format'.length)}`
      if (!match(name)) continue
      out.push({ name, fields: parseFormat(readFileSync(join(dir, system.name, file), 'utf8')).fields })
    }
  }
  return out
}

function kernelFormats(mount: boolean, patterns: string[]): NamedFormat[] {
  return listTracepoints(mount, patterns).map((name) => {
    const f = native(() => binding.tracepointFormat(name, mount))
    return { name, fields: compileNative(name, f).fields }
  })
}

function showValue(v: FieldValue): string {
  if (typeof v === 'string') return /^[\x21-\x7e]*$/.test(v) && v !== '' ? v : JSON.stringify(v)
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')
  if (Array.isArray(v)) return `[${(v as Array<number | bigint>).join(',')}]`
  return String(v)
}

function line(ev: TracepointEvent): string {
  const t = ev.time
  const secs = `${t / 1_000_000_000n}.${(t % 1_000_000_000n).toString().padStart(9, '0').slice(0, 6)}`
  const fields = Object.entries(ev.fields)
    .map(([k, v]) => `${k}=${showValue(v)}`)
    .join(' ')
  return `${secs} cpu${ev.cpu} ${ev.pid}/${ev.tid} ${ev.name}${fields ? ' ' + fields : ''}`
}

async function trace(p: Parsed, mount: boolean): Promise<number> {
  if (p.positional.length === 0) throw new UsageError('trace needs at least one tracepoint')
  const filter = p.flags.get('--filter') as string | undefined
  const pidFlag = p.flags.get('--pid') as string | undefined
  const pid = pidFlag === undefined ? undefined : positiveInt(pidFlag, '--pid')
  const count = p.flags.has('--count') ? positiveInt(p.flags.get('--count') as string, '--count') : Infinity
  const duration = p.flags.has('--duration') ? durationMs(p.flags.get('--duration') as string) : Infinity
  const json = p.flags.has('--json')
  const includeSelf = p.flags.has('--include-self')

  const names: string[] = []
  for (const pattern of p.positional) {
    if (pattern.includes('*') || pattern.includes('?')) {
      const found = listTracepoints(mount, [pattern])
      if (found.length === 0) throw new ObsError('ERR_UNKNOWN_TRACEPOINT', `no tracepoint matches ${pattern}`)
      names.push(...found)
    } else {
      names.push(pattern)
    }
  }
  const clauses: string[] = []
  if (filter !== undefined) clauses.push(`(${filter})`)
  if (pid !== undefined) clauses.push(`common_pid == ${pid}`)
  // The kernel can exclude our main thread; other threads of this process are skipped below.
  else if (!includeSelf) clauses.push(`common_pid != ${process.pid}`)
  const kernelFilter = clauses.join(' && ')

  const observer = new Observer({ mountTracefs: mount })
  for (const name of [...new Set(names)]) observer.addTracepoint(name, kernelFilter ? { filter: kernelFilter } : {})
  await observer.open()
  const stop = (): void => void observer.close()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const timer = Number.isFinite(duration) ? setTimeout(stop, duration) : undefined
  let printed = 0
  let lostGaps = 0
  try {
    for await (const ev of observer.events({ lost: true })) {
      if (ev.type === 'lost') {
        lostGaps += ev.count
        if (!json) process.stdout.write(`-- ${ev.count} events lost on cpu${ev.cpu}\n`)
        continue
      }
      if (!includeSelf && ev.pid === process.pid) continue
      process.stdout.write((json ? JSON.stringify(ev) : line(ev)) + '\n')
      if (++printed >= count) break
    }
  } finally {
    if (timer) clearTimeout(timer)
    await observer.close()
  }
  const s = observer.stats()
  process.stderr.write(`${printed} events printed, ${s.lost} lost\n`)
  void lostGaps
  return 0
}

function describeField(f: FieldLayout): string[] {
  return [f.name, f.kind === 'data_loc' || f.kind === 'rel_loc' ? `__${f.kind} ${f.type}[]` : f.type, String(f.offset), String(f.size), f.signed ? 'yes' : 'no', f.kind]
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n'
}

async function main(argv: string[]): Promise<number> {
  const p = parseArgs(argv)
  if (p.flags.has('--help') || p.flags.has('-h') || p.command === 'help') {
    process.stdout.write(USAGE)
    return 0
  }
  const mount = !p.flags.has('--no-mount')
  switch (p.command) {
    case 'list': {
      const names = listTracepoints(mount, p.positional)
      process.stdout.write(names.map((n) => n + '\n').join(''))
      return names.length > 0 || p.positional.length === 0 ? 0 : 1
    }
    case 'format': {
      if (p.positional.length !== 1) throw new UsageError('format takes one tracepoint')
      const name = p.positional[0]
      const f = native(() => binding.tracepointFormat(name, mount))
      const fields = compileNative(name, f).fields
      process.stdout.write(`${f.name === '' ? name : name.replace('/', ':')} (id ${f.id})\n`)
      process.stdout.write(table([['field', 'type', 'offset', 'size', 'signed', 'kind'], ...fields.map(describeField)]))
      return 0
    }
    case 'trace':
      return trace(p, mount)
    case 'types': {
      const from = p.flags.get('--from') as string | undefined
      const formats = from ? formatsFromDir(from, p.positional) : kernelFormats(mount, p.positional)
      if (formats.length === 0) throw new ObsError('ERR_UNKNOWN_TRACEPOINT', `no tracepoint matches ${p.positional.join(' ')}`)
      if (p.flags.has('--builtin')) {
        const kernelFile = from ? join(from, 'KERNEL') : ''
        const kernel = from && existsSync(kernelFile) ? readFileSync(kernelFile, 'utf8').trim() : 'the running kernel'
        process.stdout.write(builtinModule(formats, kernel))
      } else {
        const source = from ? `the format files in ${from}` : `the format files of Linux ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`
        process.stdout.write(augmentation(formats, source))
      }
      return 0
    }
    case '':
      throw new UsageError('no command given')
    default:
      throw new UsageError(`unknown command ${JSON.stringify(p.command)}`)
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`linux-obs: ${e.message}\n\n${USAGE}`)
      process.exitCode = 2
    } else if (e instanceof ObsError) {
      process.stderr.write(`linux-obs: ${e.code}: ${e.message}\n`)
      process.exitCode = 1
    } else {
      process.stderr.write(`linux-obs: ${(e as Error)?.stack ?? String(e)}\n`)
      process.exitCode = 1
    }
  },
)
