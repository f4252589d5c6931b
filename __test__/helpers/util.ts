import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, mkdtempSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { LostEvent, Observer, TracepointEvent } from 'linux-obs'

export const repoRoot = resolve(__dirname, '..', '..', '..')

/** A copy of /bin/true under a unique name in a fresh temp dir. */
export function uniqueTrue(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `linux-obs-${tag}-`))
  chmodSync(dir, 0o755)
  const path = join(dir, `true-${tag}-${process.pid}-${Date.now()}`)
  copyFileSync('/bin/true', path)
  chmodSync(path, 0o755)
  return path
}

/** Runs a program to completion; resolves with its pid. */
export function run(path: string, args: string[] = []): Promise<number> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(path, args, { stdio: 'ignore' })
    child.once('error', reject)
    child.once('exit', () => resolveRun(child.pid as number))
  })
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/**
 * Iterates until `match` returns true or `ms` elapse; returns every event seen.
 * Closing is left to the caller.
 */
export async function collectUntil(
  observer: Observer,
  match: (ev: TracepointEvent | LostEvent, seen: Array<TracepointEvent | LostEvent>) => boolean,
  ms = 10_000,
): Promise<{ seen: Array<TracepointEvent | LostEvent>; matched: boolean }> {
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(new Error('timeout')), ms)
  const seen: Array<TracepointEvent | LostEvent> = []
  let matched = false
  try {
    for await (const ev of observer.events({ signal: ac.signal, lost: true })) {
      seen.push(ev)
      if (match(ev, seen)) {
        matched = true
        break
      }
    }
  } catch (e) {
    if ((e as Error).message !== 'timeout') throw e
  } finally {
    clearTimeout(timer)
  }
  return { seen, matched }
}

/** Open descriptors of this process, by target. */
export function openFds(pid: number | 'self' = 'self'): string[] {
  const dir = `/proc/${pid}/fd`
  return readdirSync(dir).map((fd) => {
    try {
      return readlinkSync(join(dir, fd))
    } catch {
      return '?'
    }
  })
}

/**
 * A copy of the built package in a world-readable temp dir, so that an unprivileged user can
 * load it whatever the permissions of the checkout.
 */
export function worldReadablePackage(): string {
  const dir = mkdtempSync(join(tmpdir(), 'linux-obs-pkg-'))
  for (const name of readdirSync(repoRoot)) {
    if (name === 'package.json' || name.endsWith('.node')) copyFileSync(join(repoRoot, name), join(dir, name))
  }
  cpSync(join(repoRoot, 'dist'), join(dir, 'dist'), { recursive: true })
  spawnSync('chmod', ['-R', 'a+rX', dir])
  return dir
}

/** Runs a CommonJS snippet in a child node process; `pkg` is substituted with the package path. */
export function runNode(
  script: string,
  opts: { pkg?: string; wrap?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const pkg = opts.pkg ?? repoRoot
  const code = script.replaceAll('PKG', JSON.stringify(pkg))
  const cmd = [...(opts.wrap ?? []), process.execPath, '-e', code]
  const r = spawnSync(cmd[0], cmd.slice(1), {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
    env: opts.env ?? process.env,
    cwd: '/',
  })
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}

/** Type-checks `main.ts` (plus `extra` files) in a fresh project that depends on this package. */
export function typecheck(source: string, extra: Record<string, string> = {}): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'linux-obs-tsc-'))
  // The project's own package, resolved by name from node_modules.
  spawnSync('mkdir', ['-p', join(dir, 'node_modules')])
  symlinkSync(repoRoot, join(dir, 'node_modules', 'linux-obs'))
  writeFileSync(join(dir, 'main.ts'), source)
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, name), text)
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', target: 'ES2022', lib: ['ES2022'], types: [] },
      files: ['main.ts', ...Object.keys(extra)],
    }),
  )
  const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8' })
  return { status: r.status, output: r.stdout + r.stderr }
}

