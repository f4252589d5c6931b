// The package as users get it. `scripts/pack.mjs` makes the tarballs (`npm run pack` does the
// same into pack/), they are published to a throwaway registry on 127.0.0.1
// (scripts/local-registry.mjs, in this process, stopped before the tests run), and fresh
// projects run `npm install linux-obs` against it alone, so the binary package has to come in
// as the optional dependency, chosen by its os/cpu/libc fields. Then the installed library is
// loaded with `require` and `import`, type-checked under moduleResolution node16 and bundler,
// and (with root and tracefs) opens an observer that sees an exec.
//
// Only linux-x64-gnu can be built here. The three other binary packages are published too, from
// their committed npm/<target>/package.json with a placeholder instead of the binary: npm must
// skip them on this host (wrong cpu or libc), which tests those manifests; installing one fails.
//
// Everything lives in one temp dir (npm's cache and logs included), removed at the end
// (kept, and its path printed, with KEEP_INSTALL_TEST=1).
import test from 'ava'
import { execFile } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { currentHost, targetOf } from '../src/native'
import { kernelTest } from './helpers/kernel'
import { repoRoot } from './helpers/util'

interface RequestRecord {
  method: string
  path: string
  status: number
  name: string | null
}

interface Registry {
  url: string
  requests: RequestRecord[]
  close(): Promise<void>
}

interface Setup {
  work: string
  /** A project with `npm install linux-obs`. */
  app: string
  /** A project with `npm install linux-obs --omit=optional`. */
  bare: string
  version: string
  targets: string[]
  requests: RequestRecord[]
}

const HOST_TARGET = targetOf(currentHost()) ?? `unsupported-${process.arch}`
const PLACEHOLDER = 'placeholder, not a binary: published by install.test.ts so npm can choose, never to be installed\n'

const work = mkdtempSync(join(tmpdir(), 'linux-obs-install-'))
let setup: Setup | undefined

/** Runs a command asynchronously (the registry answers from this process meanwhile). */
function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
        resolve({ code, stdout, stderr: err && code === 1 && !stderr ? String(err.message) : stderr })
      },
    )
  })
}

async function runOk(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<string> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${opts.cwd}) exited ${r.code}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/**
 * npm's environment: this temp dir's npmrc, cache and logs, nothing inherited from an outer
 * `npm test` (its npm_config_* would win) and no proxy between npm and 127.0.0.1.
 */
function npmEnv(cache = 'npm-cache'): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && !/_proxy$/i.test(k)) env[k] = v
  }
  return {
    ...env,
    npm_config_userconfig: join(work, 'npmrc'),
    npm_config_globalconfig: join(work, 'global-npmrc'),
    npm_config_cache: join(work, cache),
  }
}

function writeNpmrc(registry?: string): void {
  const lines = ['update-notifier=false', 'audit=false', 'fund=false', 'loglevel=warn']
  if (registry) {
    // npm publish wants a token for the registry; this one accepts any.
    lines.push(`registry=${registry}`, `${registry.replace(/^http:/, '')}:_authToken=local-test-token`)
  }
  writeFileSync(join(work, 'npmrc'), `${lines.join('\n')}\n`)
  writeFileSync(join(work, 'global-npmrc'), '')
}

function newProject(name: string): string {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name, version: '1.0.0', private: true }, null, 2)}\n`)
  return dir
}

test.before(async (t) => {
  t.timeout(120_000)
  const env = npmEnv()
  writeNpmrc()
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version
  const targets = readdirSync(join(repoRoot, 'npm')).filter((d) => existsSync(join(repoRoot, 'npm', d, 'package.json')))

  // The tarballs, from the current build (`npm test` built it).
  const tarballs = join(work, 'tarballs')
  const packed = JSON.parse(
    await runOk(process.execPath, [join(repoRoot, 'scripts', 'pack.mjs'), '--no-build', '--out', tarballs, '--json'], { cwd: repoRoot, env }),
  ) as { main: string; binaries: Record<string, string> }
  if (!packed.binaries[HOST_TARGET]) throw new Error(`pack made no ${HOST_TARGET} package: ${JSON.stringify(packed)}`)
  const toPublish = [packed.main, ...Object.values(packed.binaries)]
  for (const target of targets.filter((x) => !packed.binaries[x])) {
    const stage = join(work, 'stage', target)
    mkdirSync(stage, { recursive: true })
    const manifest = JSON.parse(readFileSync(join(repoRoot, 'npm', target, 'package.json'), 'utf8')) as { version: string; main: string }
    manifest.version = version
    writeFileSync(join(stage, 'package.json'), JSON.stringify(manifest, null, 2))
    copyFileSync(join(repoRoot, 'npm', target, 'README.md'), join(stage, 'README.md'))
    writeFileSync(join(stage, manifest.main), PLACEHOLDER)
    const [info] = JSON.parse(await runOk('npm', ['pack', '--json', '--pack-destination', tarballs], { cwd: stage, env })) as Array<{ filename: string }>
    toPublish.push(join(tarballs, info.filename))
  }

  const registryModule = pathToFileURL(join(repoRoot, 'scripts', 'local-registry.mjs')).href
  const { startRegistry } = (await import(registryModule)) as { startRegistry: () => Promise<Registry> }
  const registry = await startRegistry()
  try {
    writeNpmrc(registry.url)
    await Promise.all(toPublish.map((tgz) => runOk('npm', ['publish', tgz, '--registry', registry.url, '--provenance=false'], { cwd: work, env })))
    // Users start without our tarballs in their cache (publishing put them in this one).
    const userEnv = npmEnv('user-cache')
    const app = newProject('app')
    const bare = newProject('bare')
    await Promise.all([
      runOk('npm', ['install', 'linux-obs', '--registry', registry.url], { cwd: app, env: userEnv }),
      runOk('npm', ['install', 'linux-obs', '--omit=optional', '--registry', registry.url], { cwd: bare, env: userEnv }),
    ])
    setup = { work, app, bare, version, targets, requests: [...registry.requests] }
  } finally {
    await registry.close()
  }
})

test.after.always(() => {
  if (process.env.KEEP_INSTALL_TEST) return console.error(`install test: kept ${work}`)
  rmSync(work, { recursive: true, force: true })
})

function ready(): Setup {
  if (!setup) throw new Error('setup did not finish')
  return setup
}

test('npm install linux-obs brings in exactly the binary package of this platform', (t) => {
  const s = ready()
  const installed = readdirSync(join(s.app, 'node_modules')).filter((n) => !n.startsWith('.'))
  t.deepEqual(installed.sort(), ['linux-obs', `linux-obs-${HOST_TARGET}`])
  const app = JSON.parse(readFileSync(join(s.app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  t.deepEqual(Object.keys(app.dependencies), ['linux-obs'])

  const pkg = JSON.parse(readFileSync(join(s.app, 'node_modules', 'linux-obs', 'package.json'), 'utf8')) as {
    optionalDependencies: Record<string, string>
    dependencies?: Record<string, string>
  }
  t.deepEqual(pkg.optionalDependencies, Object.fromEntries(s.targets.map((x) => [`linux-obs-${x}`, s.version])))
  t.is(pkg.dependencies, undefined, 'no runtime dependencies besides the binary packages')
  const bin = JSON.parse(readFileSync(join(s.app, 'node_modules', `linux-obs-${HOST_TARGET}`, 'package.json'), 'utf8')) as { version: string }
  t.is(bin.version, s.version)
  t.false(
    readdirSync(join(s.app, 'node_modules', 'linux-obs')).some((n) => n.endsWith('.node')),
    'the main package ships no binary',
  )

  // The lockfile records every platform's package as optional with its os/cpu/libc, installed
  // or not, so it works on the other platforms too.
  const lock = JSON.parse(readFileSync(join(s.app, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { optional?: boolean; version?: string; os?: string[]; cpu?: string[]; libc?: string[] }>
  }
  for (const target of s.targets) {
    const [, arch, abi] = target.split('-')
    const entry = lock.packages[`node_modules/linux-obs-${target}`]
    t.like(entry, { version: s.version, optional: true, os: ['linux'], cpu: [arch], libc: [abi === 'gnu' ? 'glibc' : 'musl'] }, target)
  }

  // Only our packages were asked for; only the host's binary was downloaded.
  const ours = new Set(['linux-obs', ...s.targets.map((x) => `linux-obs-${x}`)])
  const foreign = s.requests.filter((r) => r.name === null || !ours.has(r.name))
  t.deepEqual(foreign, [], 'requests for anything but linux-obs packages')
  const downloads = s.requests.filter((r) => r.method === 'GET' && r.path.endsWith('.tgz')).map((r) => r.name)
  t.deepEqual([...new Set(downloads)].sort(), ['linux-obs', `linux-obs-${HOST_TARGET}`])
  t.true(s.requests.every((r) => r.status < 400 || (r.method === 'GET' && !r.path.endsWith('.tgz'))), JSON.stringify(s.requests))
})

/** A copy of a fixture in the app's project, so the installed code reads nothing of the checkout. */
function fixture(dir: string, ...path: string[]): string {
  const copy = join(dir, 'fixtures', ...path)
  mkdirSync(join(copy, '..'), { recursive: true })
  copyFileSync(join(repoRoot, 'fixtures', ...path), copy)
  return copy
}

const CJS_LOAD = `
const lib = require('linux-obs')
const { readFileSync } = require('node:fs')
const format = lib.parseFormat(readFileSync(process.argv[2], 'utf8'))
let error
try { new lib.Process(2147483647) } catch (e) { error = { isObsError: e instanceof lib.ObsError, code: e.code } }
console.log(JSON.stringify({
  entry: require.resolve('linux-obs'),
  names: Object.keys(lib).sort(),
  format: format.name,
  fields: format.fields.map((f) => f.name),
  error,
  binaries: Object.keys(require.cache).filter((k) => k.endsWith('.node')),
}))
`

const ESM_LOAD = `
import def, { Observer, ObsError, Process, NamespaceKind, parseFormat } from 'linux-obs'
import * as ns from 'linux-obs'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const cjs = require('linux-obs')
const format = parseFormat(readFileSync(process.argv[2], 'utf8'))
let error
try { new Process(2147483647) } catch (e) { error = { isObsError: e instanceof ObsError, code: e.code } }
console.log(JSON.stringify({
  entry: import.meta.resolve('linux-obs'),
  names: Object.keys(ns).filter((k) => k !== 'default' && k !== '__esModule').sort(),
  same: def === cjs && Observer === cjs.Observer && ObsError === cjs.ObsError && ns.parseFormat === cjs.parseFormat,
  pidNamespace: typeof new Process(process.pid).namespace(NamespaceKind.PID),
  format: format.name,
  fields: format.fields.map((f) => f.name),
  error,
  binaries: Object.keys(require.cache).filter((k) => k.endsWith('.node')),
}))
`

test('the installed library loads with require (CJS) and import (ESM), one instance, the binary from its package', async (t) => {
  const s = ready()
  writeFileSync(join(s.app, 'load.cjs'), CJS_LOAD)
  writeFileSync(join(s.app, 'load.mjs'), ESM_LOAD)
  const format = fixture(s.app, 'formats', 'raw_syscalls_sys_enter.format')
  const [cjsOut, esmOut] = await Promise.all([
    runOk(process.execPath, ['load.cjs', format], { cwd: s.app }),
    runOk(process.execPath, ['load.mjs', format], { cwd: s.app }),
  ])
  const cjs = JSON.parse(cjsOut) as { entry: string; names: string[]; format: string; fields: string[]; error: unknown; binaries: string[] }
  const esm = JSON.parse(esmOut) as typeof cjs & { same: boolean; pidNamespace: string }
  const pkgDir = join(s.app, 'node_modules', 'linux-obs')
  const binary = join(s.app, 'node_modules', `linux-obs-${HOST_TARGET}`, `linux-obs.${HOST_TARGET}.node`)

  t.is(cjs.entry, join(pkgDir, 'dist', 'src', 'index.js'))
  t.is(esm.entry, pathToFileURL(join(pkgDir, 'esm', 'index.mjs')).href)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  t.deepEqual(cjs.names, Object.keys(require(join(repoRoot, 'dist', 'src', 'index.js')) as object).sort())
  t.deepEqual(esm.names, cjs.names)
  t.true(esm.same, 'import and require give the same module instance')
  for (const r of [cjs, esm]) {
    t.deepEqual(r.binaries, [binary])
    t.is(r.format, 'sys_enter')
    t.deepEqual(r.fields, ['common_type', 'common_flags', 'common_preempt_count', 'common_pid', 'id', 'args'])
    t.deepEqual(r.error, { isObsError: true, code: 'ERR_NO_PROCESS' })
  }
  t.is(esm.pidNamespace, 'number')
})

test('the installed linux-obs command runs', async (t) => {
  const s = ready()
  const cli = join(s.app, 'node_modules', '.bin', 'linux-obs')
  t.regex(await runOk(cli, ['--help'], { cwd: s.app }), /^usage: linux-obs/)
  fixture(s.app, 'kernel', 'sched', 'sched_process_exec.format')
  const types = await runOk(cli, ['types', '--from', join(s.app, 'fixtures', 'kernel'), 'sched:sched_process_exec'], { cwd: s.app })
  t.regex(types, /declare module 'linux-obs'[\s\S]*"sched:sched_process_exec": \{[\s\S]*filename: string/)
})

test('without the optional dependency, loading fails naming the package to install', async (t) => {
  const s = ready()
  t.deepEqual(readdirSync(join(s.bare, 'node_modules')).filter((n) => !n.startsWith('.')), ['linux-obs'])
  const pkg = `linux-obs-${HOST_TARGET}`
  for (const [file, code] of [
    ['fail.cjs', `require('linux-obs')`],
    ['fail.mjs', `await import('linux-obs')`],
  ]) {
    writeFileSync(join(s.bare, file), code)
    const r = await run(process.execPath, [file], { cwd: s.bare })
    t.not(r.code, 0, file)
    t.true(r.stderr.includes(`linux-obs: no native binding for ${HOST_TARGET}. The package '${pkg}' is missing`), r.stderr)
    t.true(r.stderr.includes(`npm install ${pkg}@${s.version}`), r.stderr)
    t.true(r.stderr.includes(`${pkg}: not installed`), r.stderr)
  }
})

// Type-checks against the installed declarations (and the repo's @types/node, as a user's own).
const TYPED_USE = `
export async function firstExec(): Promise<{ file: string; pid: number }> {
  await using observer = new Observer<'sched:sched_process_exec' | 'my:tracepoint'>({ ringBytes: 1 << 20 })
  const exec = observer.addTracepoint('sched:sched_process_exec')
  observer.addTracepoint('my:tracepoint', { filter: 'x > 1' })
  await observer.open()
  for await (const ev of observer.events()) {
    if (ev.name === 'my:tracepoint') {
      const x: number = ev.fields.x
      void x
      continue
    }
    if (!exec.is(ev)) continue
    const file: string = ev.fields.filename
    // @ts-expect-error: sched_process_exec has no field 'filenme'
    void ev.fields.filenme
    return { file, pid: ev.getInt('pid') }
  }
  throw new ObsError('ERR_CLOSED', 'no exec')
}
export const ns: number = new Process(1).namespace(NamespaceKind.PID)
export const layout: string[] = parseFormat('').fields.map((f) => f.name)
export const code: ErrorCode = 'ERR_BUSY'
export type Exec = EventOf<'sched:sched_process_exec'>

declare module 'linux-obs' {
  interface TracepointFields {
    'my:tracepoint': { x: number }
  }
}
`

const TS_FILES: Record<string, string> = {
  'esm.mts': `import def, { Observer, ObsError, Process, NamespaceKind, parseFormat, type ErrorCode, type EventOf } from 'linux-obs'
import * as all from 'linux-obs'
export const same: boolean = def.Observer === Observer && all.Observer === Observer
${TYPED_USE}`,
  'cjs.cts': `import lib = require('linux-obs')
const { Observer, ObsError, Process, NamespaceKind, parseFormat } = lib
type ErrorCode = lib.ErrorCode
type EventOf<N extends string> = lib.EventOf<N>
export const viaRequire: typeof lib = require('linux-obs') as typeof import('linux-obs')
${TYPED_USE}`,
  'bundler.ts': `import { Observer, ObsError, Process, NamespaceKind, parseFormat, type ErrorCode, type EventOf } from 'linux-obs'
${TYPED_USE}`,
}

function tsconfig(module: string, moduleResolution: string, files: string[]): string {
  return JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      module,
      moduleResolution,
      target: 'ES2022',
      lib: ['ES2022'],
      types: ['node'],
      typeRoots: [join(repoRoot, 'node_modules', '@types')],
      skipLibCheck: false,
    },
    files,
  })
}

test('a TypeScript file type-checks against the installed types (moduleResolution node16 and bundler)', async (t) => {
  const s = ready()
  const dir = join(s.app, 'ts')
  mkdirSync(dir, { recursive: true })
  for (const [name, text] of Object.entries(TS_FILES)) writeFileSync(join(dir, name), text)
  writeFileSync(join(dir, 'tsconfig.node16.json'), tsconfig('node16', 'node16', ['esm.mts', 'cjs.cts']))
  writeFileSync(join(dir, 'tsconfig.bundler.json'), tsconfig('esnext', 'bundler', ['bundler.ts']))
  const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')
  for (const config of ['tsconfig.node16.json', 'tsconfig.bundler.json']) {
    const r = await run(process.execPath, [tsc, '-p', config, '--traceResolution'], { cwd: dir })
    const out = r.stdout.split('\n')
    t.is(r.code, 0, `${config}\n${out.filter((l) => /error TS/.test(l)).join('\n')}`)
    // The declarations came from the installed package, not from the checkout.
    const resolved = out.filter((l) => l.startsWith("======== Module name 'linux-obs' was successfully resolved"))
    t.true(resolved.length > 0, config)
    for (const l of resolved) t.true(l.includes(join(s.app, 'node_modules', 'linux-obs', 'index.d.ts')), l)
  }
  // And a misspelled field would have been caught: drop the @ts-expect-error line.
  writeFileSync(join(dir, 'bundler.ts'), TS_FILES['bundler.ts'].replace(/^.*@ts-expect-error.*$/m, ''))
  const bad = await run(process.execPath, [tsc, '-p', 'tsconfig.bundler.json'], { cwd: dir })
  t.not(bad.code, 0)
  t.regex(bad.stdout, /Property 'filenme' does not exist/)
})

// One body, loaded both ways: the ESM and CommonJS programs differ only in how they import.
const EXEC_BODY = `
const target = process.argv[2]
const observer = new Observer()
observer.addTracepoint('sched:sched_process_exec')
await observer.open()
const child = spawn(target, [], { stdio: 'ignore' })
let seen = null
for await (const ev of observer.events({ signal: AbortSignal.timeout(20000) })) {
  if (ev.getString('filename') === target) { seen = { name: ev.name, pid: ev.getInt('pid') }; break }
}
await observer.close()
console.log(JSON.stringify({ seen, child: child.pid }))
`
const EXEC_ESM = `import { Observer } from 'linux-obs'\nimport { spawn } from 'node:child_process'\n${EXEC_BODY}`
const EXEC_CJS =
  `const { Observer } = require('linux-obs')\nconst { spawn } = require('node:child_process')\n` +
  `;(async () => {${EXEC_BODY}})().catch((e) => { console.error(e); process.exit(1) })\n`

kernelTest('an observer from the installed package sees an exec, with import and with require', async (t) => {
  const s = ready()
  for (const [file, source] of [
    ['exec.mjs', EXEC_ESM],
    ['exec.cjs', EXEC_CJS],
  ]) {
    writeFileSync(join(s.app, file), source)
    const target = join(s.work, `true-install-${file.replace('.', '-')}-${process.pid}`)
    copyFileSync('/bin/true', target)
    chmodSync(target, 0o755)
    const out = await runOk(process.execPath, [file, target], { cwd: s.app })
    const r = JSON.parse(out) as { seen: { name: string; pid: number } | null; child: number }
    t.deepEqual(r.seen, { name: 'sched:sched_process_exec', pid: r.child }, file)
  }
})
