// Every error code, each thrown for real. Unprivileged and no-tracefs cases run in child
// processes (setpriv as nobody; unshare -m with tracefs unmounted in the private namespace).
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { readlinkSync } from 'node:fs'
import { NamespaceKind, ObsError, Observer, Process, type TracepointEvent } from 'linux-obs'
import { kernelTest } from './helpers/kernel'
import { collectUntil, run, runNode, uniqueTrue, worldReadablePackage } from './helpers/util'

function code(e: unknown): string | undefined {
  return (e as { code?: string }).code
}

test('ERR_INVALID_OPTION names the option and the allowed range', (t) => {
  const cases: Array<[object, RegExp]> = [
    [{ ringBytes: -1 }, /ringBytes/],
    [{ ringBytes: 100 }, /ringBytes: must be between \d+ .* and \d+, got 100/],
    [{ wakeupBytes: 0 }, /wakeupBytes: must be between 1 and/],
    [{ maxDelayMs: 0 }, /maxDelayMs: must be between 0.1 and 60000 milliseconds/],
    [{ maxDelayMs: NaN }, /maxDelayMs/],
    [{ maxDelayMs: 100_000 }, /maxDelayMs/],
    [{ highWaterBytes: 10 }, /highWaterBytes: must be between 65536/],
    [{ mountTracefs: 'yes' }, /mountTracefs: must be a boolean/],
    [{ ringbytes: 4096 }, /unknown option 'ringbytes'/],
  ]
  for (const [options, want] of cases) {
    const e = t.throws(() => new Observer(options as never), { instanceOf: ObsError })
    t.is(e?.code, 'ERR_INVALID_OPTION', JSON.stringify(options))
    t.regex(e?.message ?? '', want)
  }
  t.is(code(t.throws(() => new Process(0))), 'ERR_INVALID_OPTION')
})

test('ERR_INVALID_NAME: rejected before touching the filesystem', (t) => {
  const observer = new Observer()
  for (const bad of ['sched', '../etc:passwd', 'sched:..', 'a:b:c', 'sched:sched switch', 'sched:*', '', ':x']) {
    const e = t.throws(() => observer.addTracepoint(bad), { instanceOf: ObsError })
    t.is(e?.code, 'ERR_INVALID_NAME', bad)
    t.regex(e?.message ?? '', /expected 'system:event'/)
  }
  t.is(code(t.throws(() => observer.addTracepoint(42 as unknown as string))), 'ERR_INVALID_NAME')
})

kernelTest('ERR_UNKNOWN_TRACEPOINT names the tracepoint, where it looked, and close names', (t) => {
  const observer = new Observer()
  const e = t.throws(() => observer.addTracepoint('sched:sched_swich'), { instanceOf: ObsError })
  t.is(e?.code, 'ERR_UNKNOWN_TRACEPOINT')
  t.regex(e?.message ?? '', /'sched:sched_swich'/)
  t.regex(e?.message ?? '', /events\/sched\/sched_swich\/format/)
  t.regex(e?.message ?? '', /did you mean .*sched:sched_switch/)
  const none = t.throws(() => observer.addTracepoint('nosuchsystem:zzz'))
  t.is(code(none), 'ERR_UNKNOWN_TRACEPOINT')
})

kernelTest('ERR_INVALID_FILTER carries the kernel reason from error_log', async (t) => {
  const observer = new Observer()
  observer.addTracepoint('sched:sched_switch', { filter: 'prev_pid ==== 3' })
  const e = await t.throwsAsync(observer.open(), { instanceOf: ObsError })
  t.is(e?.code, 'ERR_INVALID_FILTER')
  t.regex(e?.message ?? '', /sched:sched_switch/)
  t.regex(e?.message ?? '', /prev_pid ==== 3/)
  t.regex(e?.message ?? '', /rejected by the kernel: \S+/) // the reason from error_log
  t.is(observer.state, 'configuring') // a failed open leaves nothing open
  await observer.close()
  const unknownField = new Observer()
  unknownField.addTracepoint('sched:sched_switch', { filter: 'no_such_field == 1' })
  const e2 = await t.throwsAsync(unknownField.open())
  t.is(code(e2), 'ERR_INVALID_FILTER')
  t.regex((e2 as Error).message, /Field not found/)
  await unknownField.close()
  t.is(code(t.throws(() => new Observer().addTracepoint('sched:sched_switch', { filter: 1 as never }))), 'ERR_INVALID_FILTER')
  const empty = t.throws(() => new Observer().addTracepoint('sched:sched_switch', { filter: '  ' }), { instanceOf: ObsError })
  t.is(empty?.code, 'ERR_INVALID_FILTER')
  t.regex(empty?.message ?? '', /the filter is empty/)
})

kernelTest('ERR_NOT_OPEN, ERR_ALREADY_OPEN, ERR_BUSY and ERR_CLOSED follow the lifecycle', async (t) => {
  const observer = new Observer()
  observer.addTracepoint('sched:sched_process_exit')
  t.is(code(t.throws(() => observer.events())), 'ERR_NOT_OPEN')
  const e = t.throws(() => observer.events(), { instanceOf: ObsError })
  t.regex(e?.message ?? '', /call open\(\) first/)
  await observer.open()
  t.is(code(t.throws(() => observer.addTracepoint('sched:sched_process_exec'))), 'ERR_ALREADY_OPEN')
  t.is(code(await t.throwsAsync(observer.open())), 'ERR_ALREADY_OPEN')
  const first = observer.events()
  t.is(code(t.throws(() => observer.events())), 'ERR_BUSY')
  await first.return?.()
  const second = observer.events() // allowed once the first has finished
  await observer.close()
  t.deepEqual(await second.next(), { done: true, value: undefined })
  t.is(code(t.throws(() => observer.events())), 'ERR_CLOSED')
  t.is(code(t.throws(() => observer.addTracepoint('sched:sched_process_exec'))), 'ERR_CLOSED')
  t.is(code(await t.throwsAsync(observer.open())), 'ERR_CLOSED')
  const empty = new Observer()
  t.is(code(await t.throwsAsync(empty.open())), 'ERR_INVALID_OPTION')
  await empty.close()
})

kernelTest('ERR_UNKNOWN_FIELD, ERR_UNSAFE_INTEGER and ERR_FIELD_TYPE from the getters', async (t) => {
  const observer = new Observer()
  try {
    observer.addTracepoint('sched:sched_process_exec')
    // kmalloc's ptr is a kernel address: above 2^53 on 64-bit kernels.
    const kmalloc = observer.addTracepoint('kmem:kmalloc')
    await observer.open()
    const path = uniqueTrue('getters')
    await run(path)
    let exec: TracepointEvent | undefined
    let alloc: TracepointEvent | undefined
    await collectUntil(observer, (ev) => {
      if (ev.type !== 'event') return false
      if (ev.source === kmalloc) alloc ??= ev
      else if (ev.getString('filename') === path) exec = ev
      return exec !== undefined && alloc !== undefined
    })
    if (exec === undefined || alloc === undefined) return t.fail('events missing')
    const unknown = t.throws(() => exec?.getInt('nope'), { instanceOf: ObsError })
    t.is(unknown?.code, 'ERR_UNKNOWN_FIELD')
    t.regex(unknown?.message ?? '', /no field 'nope'; its fields are: common_type, .*filename, pid, old_pid/)
    t.is(code(t.throws(() => exec?.getString('nope'))), 'ERR_UNKNOWN_FIELD')
    const typeErr = t.throws(() => exec?.getString('pid'), { instanceOf: ObsError })
    t.is(typeErr?.code, 'ERR_FIELD_TYPE')
    t.is(code(t.throws(() => exec?.getInt('filename'))), 'ERR_FIELD_TYPE')
    const ptr = alloc.getBigInt('ptr')
    t.true(ptr > BigInt(Number.MAX_SAFE_INTEGER), `ptr ${ptr}`)
    const unsafe = t.throws(() => alloc?.getInt('ptr'), { instanceOf: ObsError })
    t.is(unsafe?.code, 'ERR_UNSAFE_INTEGER')
    t.regex(unsafe?.message ?? '', /getBigInt\('ptr'\)/)
  } finally {
    await observer.close()
  }
})

test('ERR_NO_PROCESS for a pid that does not exist; Process reads namespace inodes', async (t) => {
  const gone = await run('/bin/true') // exited and reaped
  const e = t.throws(() => new Process(gone), { instanceOf: ObsError })
  t.is(e?.code, 'ERR_NO_PROCESS')
  const me = new Process(process.pid)
  t.is(me.pid, process.pid)
  for (const kind of Object.values(NamespaceKind)) {
    const link = readlinkSync(`/proc/self/ns/${kind}`)
    t.is(me.namespace(kind), Number(/\[(\d+)\]/.exec(link)?.[1]), kind)
  }
  t.is(code(t.throws(() => me.namespace('bogus' as never))), 'ERR_INVALID_OPTION')
})

kernelTest('ERR_READER reaches the pending next() with a cause when the reader thread fails', async (t) => {
  const observer = new Observer()
  try {
    observer.addTracepoint('sched:sched_process_exec', { filter: 'pid == 0' })
    await observer.open()
    const it = observer.events()
    const pending = it.next()
    const inject = (observer as unknown as Record<symbol, () => boolean>)[Symbol.for('linux-obs.injectReaderFault')]
    t.true(inject.call(observer))
    const e = await t.throwsAsync(pending, { instanceOf: ObsError })
    t.is(e?.code, 'ERR_READER')
    t.is((e?.cause as ObsError).code, 'ERR_READER')
    t.regex(e?.message ?? '', /injected fault/)
  } finally {
    await observer.close()
  }
})

kernelTest('ERR_PERMISSION and ERR_MLOCK_LIMIT as an unprivileged user (nobody)', (t) => {
  const pkg = worldReadablePackage()
  const script = `
    const { Observer } = require(PKG)
    const out = {}
    try { new Observer().addTracepoint('sched:sched_process_exec') } catch (e) { out.permission = [e.code, e.message] }
    try { new Observer({ ringBytes: 2 ** 31 }) } catch (e) { out.mlock = [e.code, e.message] }
    console.log(JSON.stringify(out))`
  const r = runNode(script, { pkg, wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as Record<string, [string, string]>
  t.is(out.permission?.[0], 'ERR_PERMISSION', r.stdout)
  t.regex(out.permission[1], /CAP_PERFMON/)
  t.regex(out.permission[1], /perf_event_paranoid \(now -?\d+\)/)
  t.is(out.mlock?.[0], 'ERR_MLOCK_LIMIT', r.stdout)
  t.regex(out.mlock[1], /the rings need \d+ KiB but this process may lock \d+ KiB/)
})

kernelTest('ERR_NO_TRACEFS in a mount namespace without tracefs; mountTracefs mounts it there', (t) => {
  const script = `
    const { Observer } = require(PKG)
    const out = {}
    try { new Observer().addTracepoint('sched:sched_process_exec'); out.noTracefs = ['none'] } catch (e) { out.noTracefs = [e.code, e.message] }
    try { new Observer({ mountTracefs: true }).addTracepoint('sched:sched_process_exec'); out.mounted = true } catch (e) { out.mounted = [e.code, e.message] }
    console.log(JSON.stringify(out))`
  // Private mount namespace: unmounting there does not affect the rest of the machine.
  const shell = `umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; exec "$0" "$@"`
  const r = runNode(script, { wrap: ['unshare', '-m', '--propagation', 'private', '/bin/sh', '-c', shell] })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as Record<string, unknown>
  const noTracefs = out.noTracefs as [string, string]
  t.is(noTracefs[0], 'ERR_NO_TRACEFS', r.stdout)
  t.regex(noTracefs[1], /mount -t tracefs nodev \/sys\/kernel\/tracing/)
  t.regex(noTracefs[1], /mountTracefs: true/)
  t.is(out.mounted, true, r.stdout)
})

kernelTest('ERR_FD_LIMIT when RLIMIT_NOFILE cannot hold one fd per tracepoint and CPU', (t) => {
  const script = `
    const { Observer } = require(PKG)
    const names = require('fs').readdirSync('/sys/kernel/tracing/events/sched').filter((n) => n.startsWith('sched_')).slice(0, 20)
    const o = new Observer()
    for (const n of names) o.addTracepoint('sched:' + n)
    o.open().then(() => console.log(JSON.stringify(['opened'])), (e) => console.log(JSON.stringify([e.code, e.message, names.length])))
      .finally(() => o.close())`
  const r = runNode(script, { wrap: ['prlimit', '--nofile=40:40'] })
  t.is(r.status, 0, r.stderr)
  const [errCode, message, count] = JSON.parse(r.stdout) as [string, string, number]
  t.is(count, 20)
  t.is(errCode, 'ERR_FD_LIMIT', r.stdout)
  t.regex(message, /RLIMIT_NOFILE is 40/)
  t.regex(message, /\d+ more descriptors are needed \(2 for each of 20 tracepoints x \d+ CPUs, \+ 3\)/)
})

test('errors are ObsError instances with stable codes', (t) => {
  const e = new ObsError('ERR_BUSY', 'x')
  t.true(e instanceof Error)
  t.is(e.name, 'ObsError')
  t.is(e.code, 'ERR_BUSY')
})

kernelTest('getBytes returns the exact bytes of a string field', async (t) => {
  const observer = new Observer()
  try {
    observer.addTracepoint('sched:sched_process_exec')
    await observer.open()
    const path = uniqueTrue('bytes')
    await run(path)
    const { seen, matched } = await collectUntil(observer, (ev) => ev.type === 'event' && ev.getString('filename') === path)
    t.true(matched)
    const ev = seen[seen.length - 1] as TracepointEvent
    t.deepEqual(Buffer.from(ev.getBytes('filename')), Buffer.from(path))
  } finally {
    await observer.close()
  }
})

test('spawnSync helper sanity: setpriv, unshare and prlimit exist', (t) => {
  for (const tool of ['setpriv', 'unshare', 'prlimit']) {
    t.is(spawnSync('sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is missing (util-linux)`)
  }
})

test('iterator options are validated before anything else', (t) => {
  const o = new Observer()
  const bad: Array<() => unknown> = [
    () => o.events(null as never),
    () => o.events({ signal: {} as AbortSignal }),
    () => o.events({ lost: 'yes' as never }),
    () => o.batches(42 as never),
    () => o.batches({ signal: 'x' as never }),
  ]
  for (const call of bad) {
    const e = t.throws(call, { instanceOf: ObsError })
    t.is(e?.code, 'ERR_INVALID_OPTION')
  }
  t.is(code(t.throws(() => o.batches())), 'ERR_NOT_OPEN')
  t.is(code(t.throws(() => o.nameOf(7 as never))), 'ERR_INVALID_OPTION')
})
