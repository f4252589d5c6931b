// Prints every exec on the machine until Ctrl-C, like the Go original's example:
//   exec<TAB>pid<TAB>pid namespace inode<TAB>filename
// Needs root (or CAP_PERFMON and access to tracefs).
import { NamespaceKind, Observer, Process } from 'linux-obs'

async function main(): Promise<void> {
  const observer = new Observer({ mountTracefs: true })
  observer.addTracepoint('sched:sched_process_exec')
  await observer.open()
  const stop = (): void => void observer.close()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  console.error('watching exec events; Ctrl-C to stop')

  for await (const ev of observer.events()) {
    const pid = ev.getInt('pid')
    let pidns = '-' // the process may already be gone
    try {
      pidns = String(new Process(pid).namespace(NamespaceKind.PID))
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_NO_PROCESS') throw e
    }
    console.log(`exec\t${pid}\t${pidns}\t${ev.getString('filename')}`)
  }
  const stats = observer.stats()
  console.error(`${stats.events} events, ${stats.lost} lost`)
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
