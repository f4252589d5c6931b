// The command-line tool, run as a child process like users run it.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { kernelTest } from './helpers/kernel'
import { repoRoot, typecheck, uniqueTrue } from './helpers/util'

const cli = join(repoRoot, 'dist', 'src', 'cli.js')

function runCli(args: string[], timeout = 30_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout, maxBuffer: 64 << 20 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('usage errors exit 2 with the usage text', (t) => {
  for (const args of [[], ['frobnicate'], ['trace', '--bogus'], ['trace', 'sched:sched_switch', '--count', 'x']]) {
    const r = runCli(args)
    t.is(r.status, 2, args.join(' '))
    t.regex(r.stderr, /usage: linux-obs <command>/)
  }
  const help = runCli(['--help'])
  t.is(help.status, 0)
  t.regex(help.stdout, /trace <tracepoint\.\.\.>/)
})

kernelTest('list with a glob', (t) => {
  const r = runCli(['list', 'sched:sched_process_*'])
  t.is(r.status, 0, r.stderr)
  const names = r.stdout.trim().split('\n')
  t.true(names.includes('sched:sched_process_exec'))
  t.true(names.every((n) => n.startsWith('sched:sched_process_')))
  const system = runCli(['list', 'raw_syscalls'])
  t.deepEqual(system.stdout.trim().split('\n'), ['raw_syscalls:sys_enter', 'raw_syscalls:sys_exit'])
  t.is(runCli(['list', 'nosuch:*']).status, 1)
})

kernelTest('format shows name, type, offset, size, signed', (t) => {
  const r = runCli(['format', 'sched:sched_process_exec'])
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /^sched:sched_process_exec \(id \d+\)/)
  t.regex(r.stdout, /filename\s+__data_loc char\[\]\s+8\s+4\s+no\s+data_loc/)
  t.regex(r.stdout, /pid\s+pid_t\s+12\s+4\s+yes\s+int/)
  const bad = runCli(['format', 'sched:nope'])
  t.is(bad.status, 1)
  t.regex(bad.stderr, /ERR_UNKNOWN_TRACEPOINT/)
})

kernelTest('types prints an augmentation that type-checks', (t) => {
  const r = runCli(['types', 'sched:sched_process_exec', 'signal:*'])
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /declare module 'linux-obs' \{\n {2}interface TracepointFields \{/)
  t.regex(r.stdout, /"sched:sched_process_exec": \{[^}]*readonly filename: string/)
  t.regex(r.stdout, /"signal:signal_generate"/)
  t.notRegex(r.stdout, /sched_switch/)
  const use = (field: string): string => `
import { Observer } from 'linux-obs'
export async function f(): Promise<void> {
  const o = new Observer<'signal:signal_generate'>()
  for await (const ev of o.events()) { const n: number = ev.fields.${field}; void n }
}
`
  const good = typecheck(use('sig'), { 'tracepoints.d.ts': r.stdout })
  t.is(good.status, 0, good.output)
  const bad = typecheck(use('sgi'), { 'tracepoints.d.ts': r.stdout })
  t.regex(bad.output, /'sgi' does not exist/)
})

function traceUntil(
  args: string[],
  trigger: () => void,
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, 'trace', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    // Trigger once the observer is open: the CLI prints nothing before, so poll a little.
    const tick = setInterval(trigger, 100)
    child.once('close', (code) => {
      clearTimeout(timer)
      clearInterval(tick)
      resolve({ code, stdout, stderr, pid: child.pid as number })
    })
  })
}

kernelTest('trace prints readable lines, stops at --count, reports counts on stderr', async (t) => {
  const path = uniqueTrue('clitrace')
  const r = await traceUntil(['sched:sched_process_exec', '--filter', `filename == "${path}"`, '--count', '1'], () =>
    spawn(path, { stdio: 'ignore' }),
  )
  t.is(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  t.is(lines.length, 1)
  t.regex(lines[0], new RegExp(`^\\d+\\.\\d{6} cpu\\d+ \\d+/\\d+ sched:sched_process_exec filename=${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} pid=\\d+ old_pid=\\d+$`))
  t.regex(r.stderr, /1 events printed, 0 lost/)
})

kernelTest('trace --json prints toJSON() lines; Ctrl-C stops it', async (t) => {
  const path = uniqueTrue('clijson')
  const child = spawn(process.execPath, [cli, 'trace', 'sched:sched_process_exec', '--json', '--filter', `filename == "${path}"`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  let interrupted = false
  const tick = setInterval(() => {
    spawn(path, { stdio: 'ignore' })
    if (stdout.includes('\n') && !interrupted) {
      interrupted = true // one Ctrl-C; a second one would kill it, as for any CLI
      child.kill('SIGINT')
    }
  }, 100)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearInterval(tick)
  t.is(code, 0, stderr)
  const first = JSON.parse(stdout.split('\n')[0]) as { name: string; fields: { filename: string; pid: number } }
  t.is(first.name, 'sched:sched_process_exec')
  t.is(first.fields.filename, path)
  t.regex(stderr, /\d+ events printed, 0 lost/)
})

kernelTest('trace excludes its own process by default and honours --pid and --duration', async (t) => {
  // raw_syscalls:sys_enter fires for the tracer's own threads all the time (its reader thread
  // wakes every millisecond), so without the exclusion its own pid would dominate.
  const pidsOf = (out: string): number[] =>
    out
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { pid: number }).pid)
  const own = await traceUntil(['raw_syscalls:sys_enter', '--json', '--duration', '300ms'], () => {})
  t.is(own.code, 0, own.stderr)
  t.false(pidsOf(own.stdout).includes(own.pid), 'the tracer printed its own events')
  const self = await traceUntil(['raw_syscalls:sys_enter', '--json', '--duration', '300ms', '--include-self'], () => {})
  t.is(self.code, 0, self.stderr)
  t.true(pidsOf(self.stdout).includes(self.pid), 'with --include-self its own events show')
  const pidOnly = await traceUntil(['raw_syscalls:sys_enter', '--json', '--pid', String(process.pid), '--duration', '300ms'], () => {})
  t.is(pidOnly.code, 0, pidOnly.stderr)
  for (const l of pidOnly.stdout.trim().split('\n').filter(Boolean)) {
    t.is((JSON.parse(l) as { tid: number }).tid, process.pid)
  }
})

kernelTest('the CLI mounts tracefs when it is missing (private mount namespace), unless --no-mount', (t) => {
  // --no-mount first (it must fail), then the default (it mounts, in this namespace only).
  const shell = `umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; "$0" "$@" --no-mount; echo "exit=$?"; "$0" "$@"; echo "exit=$?"`
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', '/bin/sh', '-c', shell, process.execPath, cli, 'list', 'sched:sched_switch'], {
    encoding: 'utf8',
    timeout: 30_000,
  })
  t.is(r.status, 0, r.stderr)
  const [notMounted, mounted] = r.stdout.split(/exit=\d+\n/)
  t.is(notMounted.trim(), '')
  t.is(mounted.trim(), 'sched:sched_switch')
  t.regex(r.stdout, /^exit=1\n[\s\S]*exit=0\n$/)
  t.regex(r.stderr, /ERR_NO_TRACEFS/)
})
