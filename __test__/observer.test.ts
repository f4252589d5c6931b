// End to end against the live kernel: exec events, several tracepoints, filters, delivery rules.
import test from 'ava'
import { spawn } from 'node:child_process'
import { type EventSource, Observer, type TracepointEvent } from 'linux-obs'
import { kernelTest } from './helpers/kernel'
import { collectUntil, openFds, run, sleep, uniqueTrue } from './helpers/util'

const isEvent = (ev: { type: string }): ev is TracepointEvent => ev.type === 'event'

kernelTest('exec of a uniquely named binary arrives with its filename and pid', async (t) => {
  const path = uniqueTrue('exec')
  const observer = new Observer()
  try {
    const exec = observer.addTracepoint('sched:sched_process_exec')
    await observer.open()
    t.is(observer.state, 'open')
    const childPid = await run(path)
    const { matched, seen } = await collectUntil(observer, (ev) => isEvent(ev) && ev.getString('filename') === path)
    t.true(matched, `no exec event for ${path} among ${seen.length} events`)
    const ev = seen[seen.length - 1] as TracepointEvent
    t.is(ev.type, 'event')
    t.is(ev.source, exec)
    t.is(ev.name, 'sched:sched_process_exec')
    t.is(ev.getInt('pid'), childPid)
    t.is(ev.pid, childPid) // the exec'ing task is the child itself
    t.is(ev.tid, childPid)
    t.is(ev.getInt('common_pid'), childPid)
    t.is(ev.getBigInt('pid'), BigInt(childPid))
    t.deepEqual(ev.fields, { filename: path, pid: childPid, old_pid: childPid })
    t.true(Number.isInteger(ev.cpu) && ev.cpu >= 0)
    // CLOCK_MONOTONIC: comparable with process.hrtime.bigint(), in the recent past.
    const now = process.hrtime.bigint()
    t.true(ev.time <= now && now - ev.time < 60_000_000_000n, `event time ${ev.time} vs now ${now}`)
    const raw = ev.data()
    t.true(raw instanceof Uint8Array)
    t.is(new DataView(raw.buffer, raw.byteOffset).getUint16(0, true), observer.format(exec).id)
    const json = JSON.parse(JSON.stringify(ev))
    t.deepEqual(json, {
      name: 'sched:sched_process_exec',
      pid: childPid,
      tid: childPid,
      cpu: ev.cpu,
      time: ev.time.toString(),
      fields: { filename: path, pid: childPid, old_pid: childPid },
    })
  } finally {
    await observer.close()
  }
})

kernelTest('two tracepoints in one observer: exec and exit of one child, each with its source', async (t) => {
  const path = uniqueTrue('two')
  const observer = new Observer()
  try {
    const exec = observer.addTracepoint('sched:sched_process_exec')
    const exit = observer.addTracepoint('sched/sched_process_exit')
    t.not(exec, exit)
    await observer.open()
    const childPid = await run(path)
    const got = new Map<EventSource, TracepointEvent>()
    const { matched } = await collectUntil(observer, (ev) => {
      if (isEvent(ev) && ev.pid === childPid) got.set(ev.source, ev)
      return got.size === 2
    })
    t.true(matched)
    t.is(got.get(exec)?.name, 'sched:sched_process_exec')
    t.is(got.get(exec)?.getString('filename'), path)
    t.is(got.get(exit)?.name, 'sched:sched_process_exit')
    t.is(got.get(exit)?.getInt('pid'), childPid)
    t.is(observer.nameOf(exit), 'sched:sched_process_exit')
    // Sources are one object per tracepoint: identity, type guard, number and name.
    const execEvent = got.get(exec) as TracepointEvent
    t.is(execEvent.source, exec)
    t.true(exec.is(execEvent))
    t.false(exit.is(execEvent))
    t.false(exec.is({ type: 'lost', cpu: 0, count: 1, time: 0n }))
    t.deepEqual([Number(exec), Number(exit), exec.id, String(exit)], [0, 1, 0, 'sched:sched_process_exit'])
    t.deepEqual(observer.sources(), [exec, exit])
  } finally {
    await observer.close()
  }
})

kernelTest("a kernel filter that excludes the child's pid excludes its events", async (t) => {
  const path = uniqueTrue('filter')
  // The shell waits on stdin, so its pid is known before it execs the binary (same pid).
  const child = spawn('/bin/sh', ['-c', `read x; exec ${path}`], { stdio: ['pipe', 'ignore', 'ignore'] })
  const pid = child.pid as number
  const exited = new Promise((r) => child.once('exit', r))
  const observer = new Observer()
  try {
    const exec = observer.addTracepoint('sched:sched_process_exec', { filter: `common_pid != ${pid}` })
    const exit = observer.addTracepoint('sched:sched_process_exit', { filter: `pid == ${pid}` })
    await observer.open()
    child.stdin?.end('go\n')
    await exited
    const { matched, seen } = await collectUntil(observer, (ev) => isEvent(ev) && ev.source === exit)
    t.true(matched, 'the unfiltered exit event of the child arrives')
    // Anything still in flight from other CPUs arrives within the drain delay.
    await sleep(50)
    const more = await collectUntil(observer, () => false, 100)
    const all = [...seen, ...more.seen].filter(isEvent)
    t.false(all.some((ev) => ev.source === exec && ev.pid === pid), 'the filtered exec never arrives')
    t.true(all.every((ev) => ev.source !== exit || ev.getInt('pid') === pid), 'exit filter keeps only the child')
  } finally {
    await observer.close()
  }
})

kernelTest('children do not inherit perf, epoll or eventfd descriptors (close-on-exec)', async (t) => {
  const observer = new Observer()
  try {
    observer.addTracepoint('sched:sched_process_exec')
    observer.addTracepoint('sched:sched_process_exit')
    await observer.open()
    const mine = openFds().filter((l) => l.includes('perf_event')).length
    t.true(mine >= 2, `this process holds ${mine} perf fds`) // proves the check can see them
    const listing = await new Promise<string>((resolve, reject) => {
      const c = spawn('/bin/sh', ['-c', 'ls -l /proc/$$/fd'], { stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      c.stdout.on('data', (d: Buffer) => (out += d.toString()))
      c.once('error', reject)
      c.once('close', () => resolve(out))
    })
    t.true(listing.length > 0)
    t.false(listing.includes('perf_event'), listing)
  } finally {
    await observer.close()
  }
})

kernelTest('events between open() and the first next() are kept; break then resume continues', async (t) => {
  const paths = [uniqueTrue('keep1'), uniqueTrue('keep2'), uniqueTrue('keep3')]
  const observer = new Observer()
  try {
    observer.addTracepoint('sched:sched_process_exec')
    await observer.open()
    for (const p of paths) await run(p)
    await sleep(50) // nobody is iterating yet
    const order: string[] = []
    for await (const ev of observer.events()) {
      const f = ev.getString('filename')
      if (paths.includes(f)) order.push(f)
      if (order.length === 1) break
    }
    // A new iterator resumes with the next undelivered event.
    for await (const ev of observer.events()) {
      const f = ev.getString('filename')
      if (paths.includes(f)) order.push(f)
      if (order.length === 3) break
    }
    t.deepEqual([...order].sort(), [...paths].sort())
    t.is(new Set(order).size, 3)
  } finally {
    await observer.close()
  }
})

kernelTest('close() while a for-await is pending ends the loop; undelivered events count as dropped', async (t) => {
  const observer = new Observer()
  observer.addTracepoint('sched:sched_process_exec', { filter: 'pid == 0' }) // never fires
  await observer.open()
  const loop = (async () => {
    let n = 0
    for await (const _ of observer.events()) n++
    return n
  })()
  await sleep(20)
  await observer.close()
  t.is(await loop, 0)
  t.is(observer.state, 'closed')

  const second = new Observer()
  second.addTracepoint('sched:sched_process_exec')
  await second.open()
  await run(uniqueTrue('dropped'))
  await sleep(100) // delivered to JS, never consumed
  await second.close()
  const s = second.stats()
  t.is(s.events, 0)
  t.true(s.dropped >= 1, JSON.stringify(s))
  t.is(s.read, s.dropped)
})

kernelTest('events({ signal }) rejects the pending next() with the abort reason', async (t) => {
  const observer = new Observer()
  try {
    observer.addTracepoint('sched:sched_process_exec', { filter: 'pid == 0' })
    await observer.open()
    const ac = new AbortController()
    const it = observer.events({ signal: ac.signal })
    const pending = it.next()
    setTimeout(() => ac.abort(new Error('stop now')), 20)
    await t.throwsAsync(pending, { message: 'stop now' })
    // The iterator is finished; a new one may start.
    t.deepEqual(await it.next(), { done: true, value: undefined })
    const again = observer.events()
    await again.return?.()
  } finally {
    await observer.close()
  }
})

kernelTest('Symbol.asyncDispose closes the observer', async (t) => {
  const observer = new Observer()
  observer.addTracepoint('sched:sched_process_exit')
  await observer.open()
  const disposing = observer[Symbol.asyncDispose]()
  t.is(observer.stats().events, 0) // stats() works while close() is pending
  await disposing
  t.is(observer.state, 'closed')
  await observer.close() // idempotent
  t.true(observer.stats().generated !== null)
})

kernelTest('stats() after close: counts are consistent and final', async (t) => {
  const observer = new Observer()
  observer.addTracepoint('sched:sched_process_exec')
  observer.addTracepoint('sched:sched_process_exit')
  await observer.open()
  const path = uniqueTrue('stats')
  await run(path)
  await collectUntil(observer, (ev) => isEvent(ev) && ev.name === 'sched:sched_process_exit' && ev.getString('comm').startsWith('true-stats'))
  await observer.close()
  const s = observer.stats()
  t.true(s.events >= 2)
  t.is(s.lost, 0)
  t.true(s.exactLoss) // kernel 6.0+: PERF_FORMAT_LOST
  t.deepEqual(Object.keys(s.lostByTracepoint), ['sched:sched_process_exec', 'sched:sched_process_exit'])
  t.true(Object.keys(s.lostByCpu).length >= 1)
  t.is(s.events + s.dropped, s.read)
  t.true((s.generated ?? 0) >= s.read)
  t.true(s.batches >= 1 && s.bytes > 0)
  t.deepEqual(observer.stats(), s)
})

test('an observer that is never opened can be closed', async (t) => {
  const observer = new Observer()
  await observer.close()
  t.is(observer.state, 'closed')
})

kernelTest('batches() yields EventBatch objects; shares the one-consumer rule with events()', async (t) => {
  const paths = [uniqueTrue('batch1'), uniqueTrue('batch2'), uniqueTrue('batch3')]
  const observer = new Observer()
  try {
    const exec = observer.addTracepoint('sched:sched_process_exec')
    await observer.open()
    for (const p of paths) await run(p)
    await sleep(20)
    // Take one of them through events(), the rest through batches().
    const seen: string[] = []
    for await (const ev of observer.events()) {
      const f = ev.getString('filename')
      if (paths.includes(f)) {
        seen.push(f)
        break
      }
    }
    const it = observer.batches()
    t.is((t.throws(() => observer.events()) as { code?: string }).code, 'ERR_BUSY')
    let total = 0
    const deadline = Date.now() + 10_000
    while (seen.length < 3 && Date.now() < deadline) {
      const r = await it.next()
      if (r.done) break
      const batch = r.value
      const events = [...batch]
      t.is(events.length, batch.length)
      t.is([...batch].length, batch.length) // iterable more than once
      t.is(batch.lost, 0)
      total += batch.length
      for (const ev of events) {
        t.true(exec.is(ev))
        const f = ev.getString('filename')
        if (paths.includes(f)) seen.push(f)
      }
    }
    await it.return?.()
    t.deepEqual([...seen].sort(), [...paths].sort())
    t.true(total >= 2)
    const s = observer.stats()
    t.true(s.events >= total + 1)
  } finally {
    await observer.close()
  }
})
