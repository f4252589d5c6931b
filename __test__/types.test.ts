// The built-in declarations are regenerated from the committed format files and must match;
// a misspelled field on a narrowed event must fail type-checking.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoRoot, typecheck } from './helpers/util'

const cli = join(repoRoot, 'dist', 'src', 'cli.js')

test('types/builtin.d.ts is what the generator makes from fixtures/kernel', (t) => {
  const r = spawnSync(process.execPath, [cli, 'types', '--from', join(repoRoot, 'fixtures', 'kernel'), '--builtin'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
  t.is(r.status, 0, r.stderr)
  const committed = readFileSync(join(repoRoot, 'types', 'builtin.d.ts'), 'utf8')
  const kernel = readFileSync(join(repoRoot, 'fixtures', 'kernel', 'KERNEL'), 'utf8').trim()
  t.true(committed.includes(`Linux ${kernel}`))
  t.true(r.stdout === committed, 'types/builtin.d.ts is stale: run `npm run gen:types`')
  for (const system of ['sched', 'syscalls', 'raw_syscalls', 'signal', 'block', 'net', 'skb', 'irq', 'timer', 'kmem']) {
    t.true(committed.includes(`"${system}:`), system)
  }
  t.regex(committed, /"syscalls:sys_enter_openat": \{[^}]*readonly dfd: bigint/)
  t.regex(committed, /"sched:sched_process_exec": \{[^}]*readonly filename: string/)
})

const PROGRAM = (access: string): string => `
import { Observer } from 'linux-obs'
export async function f(): Promise<void> {
  const o = new Observer<'sched:sched_process_exec' | 'sched:sched_process_exit'>()
  for await (const ev of o.events()) {
    if (ev.name === 'sched:sched_process_exec') {
      const x: string = ${access}
      void x
    }
  }
}
`

test('a misspelled field on a narrowed event fails tsc; the right one compiles', (t) => {
  const good = typecheck(PROGRAM('ev.fields.filename'))
  t.is(good.status, 0, good.output)
  const bad = typecheck(PROGRAM('ev.fields.filenme'))
  t.not(bad.status, 0)
  t.regex(bad.output, /TS(2339|2551): Property 'filenme' does not exist/)
  const badGetter = typecheck(PROGRAM(`ev.getString('filenme')`))
  t.not(badGetter.status, 0)
  t.regex(badGetter.output, /filenme/)
})
