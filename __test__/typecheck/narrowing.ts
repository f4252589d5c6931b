// Compile-time tests of the event types: `tsc -p tsconfig.test.json` fails if narrowing
// stops working (a `@ts-expect-error` with no error is itself an error).
import { Observer, type TracepointEvent } from 'linux-obs'

export async function narrowing(): Promise<void> {
  const observer = new Observer<'sched:sched_process_exec' | 'sched:sched_switch'>()
  const exec = observer.addTracepoint('sched:sched_process_exec')
  observer.addTracepoint('sched:sched_switch')
  // @ts-expect-error: not one of the observer's declared tracepoints
  observer.addTracepoint('sched:sched_wakeup')
  for await (const ev of observer.events()) {
    if (ev.name === 'sched:sched_process_exec') {
      const filename: string = ev.fields.filename
      const pid: number = ev.fields.pid
      const viaGetter: string = ev.getString('filename')
      // @ts-expect-error: misspelled field on a narrowed event
      void ev.fields.filenme
      // @ts-expect-error: misspelled field name in a getter
      ev.getString('filenme')
      // @ts-expect-error: pid is a number, not a string field
      ev.getString('pid')
      void [filename, pid, viaGetter, ev.getInt('common_pid')]
    } else {
      const next: string = ev.fields.next_comm
      const state: bigint = ev.fields.prev_state // 8-byte integers are bigint
      void [next, state]
    }
    if (exec.is(ev)) {
      const f: string = ev.fields.filename
      void f
    }
  }
}

export async function untyped(): Promise<void> {
  // Without declared names everything is still usable, just less precise.
  const observer = new Observer()
  const source = observer.addTracepoint('my_subsystem:my_event')
  for await (const ev of observer.events()) {
    const anyField = ev.fields.whatever
    const n: number = ev.getInt('anything')
    const ok: boolean = source.is(ev)
    const e: TracepointEvent = ev
    void [anyField, n, ok, e]
  }
}

declare module 'linux-obs' {
  interface TracepointFields {
    // A user augmentation overrides the built-in type of the same tracepoint.
    'sched:sched_switch': { prev_comm: string; prev_pid: number; prev_state: bigint; next_comm: string; next_pid: number; next_prio: number; prev_prio: number }
    'my_subsystem:typed': { value: number }
  }
}

export async function augmented(): Promise<void> {
  const observer = new Observer<'my_subsystem:typed'>()
  for await (const ev of observer.events()) {
    const v: number = ev.fields.value
    // @ts-expect-error: not a field of the augmented type
    void ev.fields.valu
    void v
  }
}
