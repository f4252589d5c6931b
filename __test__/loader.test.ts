// The binding loader (src/native.ts): which candidates, in which order, and what the error says
// when none loads. Pure functions with fake I/O; no kernel needed.
import test from 'ava'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { type Host, type LoaderIO, TARGETS, bindingCandidates, detectLibc, loadBinding, targetOf } from '../src/native'
import { repoRoot } from './helpers/util'

const root = '/pkg/linux-obs'
const x64gnu: Host = { platform: 'linux', arch: 'x64', libc: 'glibc' }

function notFound(id: string): Error {
  return Object.assign(new Error(`Cannot find module '${id}'\nRequire stack:\n- /pkg/linux-obs/dist/src/native.js`), { code: 'MODULE_NOT_FOUND' })
}

/** Fake I/O: `files` exist on disk, `modules` maps an id to what require returns (or throws). */
function io(modules: Record<string, unknown>, files: string[] = [], version = '0.1.0'): LoaderIO & { required: string[] } {
  const required: string[] = []
  return {
    required,
    version,
    exists: (p) => files.includes(p),
    require: (id) => {
      required.push(id)
      if (!(id in modules)) throw notFound(id)
      const m = modules[id]
      if (m instanceof Error) throw m
      return m
    },
  }
}

test('targets: x64 and arm64, glibc and musl, named as the npm/ packages', (t) => {
  t.is(targetOf(x64gnu), 'linux-x64-gnu')
  t.is(targetOf({ platform: 'linux', arch: 'arm64', libc: 'glibc' }), 'linux-arm64-gnu')
  t.is(targetOf({ platform: 'linux', arch: 'x64', libc: 'musl' }), 'linux-x64-musl')
  t.is(targetOf({ platform: 'linux', arch: 'arm64', libc: 'musl' }), 'linux-arm64-musl')
  t.is(targetOf({ platform: 'linux', arch: 'ia32', libc: 'glibc' }), null)
  t.is(targetOf({ platform: 'darwin', arch: 'arm64', libc: 'glibc' }), null)
  for (const target of TARGETS) {
    const manifest = JSON.parse(readFileSync(join(repoRoot, 'npm', target, 'package.json'), 'utf8')) as {
      name: string
      main: string
      os: string[]
      cpu: string[]
      libc: string[]
    }
    const [, arch, abi] = target.split('-')
    t.like(manifest, { name: `linux-obs-${target}`, main: `linux-obs.${target}.node`, os: ['linux'], cpu: [arch], libc: [abi === 'gnu' ? 'glibc' : 'musl'] })
  }
  const napiTargets = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { napi: { targets: string[] } }).napi.targets
  t.is(napiTargets.length, TARGETS.length)
})

test('candidates: the local build at the package root first, then the platform package', (t) => {
  t.deepEqual(bindingCandidates(x64gnu, root), [
    { kind: 'file', path: `${root}/linux-obs.linux-x64-gnu.node` },
    { kind: 'package', name: 'linux-obs-linux-x64-gnu' },
  ])
  t.deepEqual(bindingCandidates({ platform: 'linux', arch: 'arm64', libc: 'musl' }, root)[1], { kind: 'package', name: 'linux-obs-linux-arm64-musl' })
  t.deepEqual(bindingCandidates({ platform: 'linux', arch: 'riscv64', libc: 'glibc' }, root), [])
})

test('a local build wins; without one the package loads', (t) => {
  const local = `${root}/linux-obs.linux-x64-gnu.node`
  const pkg = 'linux-obs-linux-x64-gnu'
  const both = io({ [local]: 'local', [pkg]: 'package', [`${pkg}/package.json`]: { version: '0.1.0' } }, [local])
  t.is(loadBinding(x64gnu, root, both), 'local')
  t.deepEqual(both.required, [local])
  const installed = io({ [pkg]: 'package', [`${pkg}/package.json`]: { version: '0.1.0' } })
  t.is(loadBinding(x64gnu, root, installed), 'package')
  t.deepEqual(installed.required, [`${pkg}/package.json`, pkg], 'a missing local file is not even required')
  // A local build that fails to load falls back to the package, and the reason is kept.
  const broken = io({ [local]: new Error('invalid ELF header'), [pkg]: 'package', [`${pkg}/package.json`]: { version: '0.1.0' } }, [local])
  t.is(loadBinding(x64gnu, root, broken), 'package')
})

test('no binding: the error names the missing package and how to install it', (t) => {
  const e = t.throws(() => loadBinding({ platform: 'linux', arch: 'x64', libc: 'musl' }, root, io({}, [], '1.2.3')))
  t.regex(e.message, /^linux-obs: no native binding for linux-x64-musl\. The package 'linux-obs-linux-x64-musl' is missing/)
  t.true(e.message.includes('npm install linux-obs-linux-x64-musl@1.2.3'), e.message)
  t.true(e.message.includes('--omit=optional'), e.message)
  t.true(e.message.includes('\n  linux-obs-linux-x64-musl: not installed'), e.message)
})

test('an installed package that does not load, or of another version, is reported as such', (t) => {
  const pkg = 'linux-obs-linux-arm64-gnu'
  const arm: Host = { platform: 'linux', arch: 'arm64', libc: 'glibc' }
  const dlopen = io({ [pkg]: new Error('/lib/libc.so.6: version `GLIBC_2.34` not found\nmore'), [`${pkg}/package.json`]: { version: '0.1.0' } })
  const e = t.throws(() => loadBinding(arm, root, dlopen))
  t.true(e.message.includes(`The package '${pkg}' is installed but did not load.`), e.message)
  t.true(e.message.includes(`\n  ${pkg}: /lib/libc.so.6: version \`GLIBC_2.34\` not found`), e.message)
  const stale = io({ [pkg]: 'package', [`${pkg}/package.json`]: { version: '0.0.9' } })
  const e2 = t.throws(() => loadBinding(arm, root, stale))
  t.true(e2.message.includes(`${pkg}: version 0.0.9 installed, linux-obs 0.1.0 needs 0.1.0`), e2.message)
  t.false(stale.required.includes(pkg), 'a package of another version is not loaded')
})

test('unsupported hosts get a clear error', (t) => {
  t.throws(() => loadBinding({ platform: 'darwin', arch: 'arm64', libc: 'glibc' }, root, io({})), { message: /only runs on Linux \(this is darwin\)/ })
  t.throws(() => loadBinding({ platform: 'linux', arch: 'ia32', libc: 'glibc' }, root, io({})), {
    message: /no prebuilt binary for linux-ia32 \(glibc\); prebuilt ones exist for linux-x64-gnu, linux-arm64-gnu, linux-x64-musl, linux-arm64-musl/,
  })
})

test('libc detection agrees with the process report and /usr/bin/ldd', (t) => {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }
  t.is(detectLibc(), report.header?.glibcVersionRuntime ? 'glibc' : 'musl')
  if (existsSync('/usr/bin/ldd')) t.is(detectLibc(), readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'glibc')
})

test('the ESM entry re-exports every export of the CommonJS build, same objects', async (t) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cjs = require(join(repoRoot, 'dist', 'src', 'index.js')) as Record<string, unknown>
  const esm = (await import(pathToFileURL(join(repoRoot, 'esm', 'index.mjs')).href)) as Record<string, unknown>
  t.is(esm.default, cjs)
  for (const name of Object.keys(cjs)) t.is(esm[name], cjs[name], name)
})
