// Loads the compiled binding. Candidates, in order:
//   1. a local build at the package root, `linux-obs.<target>.node`, where `npm run build` writes
//      it (a checkout, or a package built from source; the published package has none);
//   2. the prebuilt package for this platform, `linux-obs-<target>`: an optional dependency of
//      linux-obs whose `os`, `cpu` and `libc` fields make npm install it on this platform only.
// When neither loads, the error names the package to install and why each candidate failed.
// The candidate list and the error are pure functions of the host, for tests.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type * as Binding from './binding'

/** The npm name of the main package; binary packages are `<name>-<target>`. */
export const PACKAGE_NAME = 'linux-obs'
/** napi-rs `binaryName`: binaries are `<binaryName>.<target>.node`. */
export const BINARY_NAME = 'linux-obs'

/** What the choice of binary depends on. */
export interface Host {
  platform: string
  arch: string
  libc: 'glibc' | 'musl'
}

/** Targets with a prebuilt package (napi-rs platform names, as in `npm/<target>`). */
export const TARGETS = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl'] as const

/** The napi-rs platform name for `host` (`linux-x64-gnu`), or null when none is built for it. */
export function targetOf(host: Host): string | null {
  if (host.platform !== 'linux' || (host.arch !== 'x64' && host.arch !== 'arm64')) return null
  return `linux-${host.arch}-${host.libc === 'musl' ? 'musl' : 'gnu'}`
}

/** Where a binding may come from: a file path, or a package name resolved by `require`. */
export type Candidate = { kind: 'file'; path: string } | { kind: 'package'; name: string }

/** The places to load the binding from, in order (empty for an unsupported host). */
export function bindingCandidates(host: Host, packageRoot: string): Candidate[] {
  const target = targetOf(host)
  if (target === null) return []
  return [
    { kind: 'file', path: join(packageRoot, `${BINARY_NAME}.${target}.node`) },
    { kind: 'package', name: `${PACKAGE_NAME}-${target}` },
  ]
}

/** The side effects `loadBinding` needs, injectable for tests. */
export interface LoaderIO {
  exists(path: string): boolean
  require(id: string): unknown
  /** The version of the main package, which a binary package must match. */
  version: string
}

function messageOf(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]
}

function isNotFound(e: unknown, id: string): boolean {
  const err = e as { code?: unknown; message?: unknown }
  return err?.code === 'MODULE_NOT_FOUND' && typeof err.message === 'string' && err.message.includes(`'${id}'`)
}

/**
 * Loads the first candidate that works. Throws an Error naming the package for this host when
 * none does, with the reason for each candidate tried.
 */
export function loadBinding<T>(host: Host, packageRoot: string, io: LoaderIO): T {
  if (host.platform !== 'linux') {
    throw new Error(`${PACKAGE_NAME} only runs on Linux (this is ${host.platform})`)
  }
  const target = targetOf(host)
  if (target === null) {
    throw new Error(
      `${PACKAGE_NAME} has no prebuilt binary for linux-${host.arch} (${host.libc}); prebuilt ones exist ` +
        `for ${TARGETS.join(', ')}. Build it from source: 'npm run build' in a checkout of ${PACKAGE_NAME}.`,
    )
  }
  const pkg = `${PACKAGE_NAME}-${target}`
  const reasons: string[] = []
  let installed = false
  for (const c of bindingCandidates(host, packageRoot)) {
    if (c.kind === 'file') {
      if (!io.exists(c.path)) continue // the usual case in an installed package
      try {
        return io.require(c.path) as T
      } catch (e) {
        reasons.push(`${c.path}: ${messageOf(e)}`)
      }
      continue
    }
    let version: unknown
    try {
      version = (io.require(`${c.name}/package.json`) as { version?: unknown }).version
      installed = true
    } catch (e) {
      reasons.push(`${c.name}: ${isNotFound(e, `${c.name}/package.json`) ? 'not installed' : messageOf(e)}`)
      continue
    }
    if (version !== io.version) {
      reasons.push(`${c.name}: version ${String(version)} installed, ${PACKAGE_NAME} ${io.version} needs ${io.version}`)
      continue
    }
    try {
      return io.require(c.name) as T
    } catch (e) {
      reasons.push(`${c.name}: ${messageOf(e)}`)
    }
  }
  const what = installed
    ? `The package '${pkg}' is installed but did not load.`
    : `The package '${pkg}' is missing: npm installs it as an optional dependency of ${PACKAGE_NAME} ` +
      `unless optional dependencies are omitted (--omit=optional) or the lockfile was made on ` +
      `another platform.`
  throw new Error(
    `${PACKAGE_NAME}: no native binding for ${target}. ${what} Fix: npm install ${pkg}@${io.version} ` +
      `(or delete node_modules and package-lock.json and run npm install again); from a checkout, ` +
      `build it with 'npm run build'.\n  ` +
      reasons.join('\n  '),
  )
}

type Report = { header?: { glibcVersionRuntime?: string }; sharedObjects?: unknown }

/** Whether this Node.js runs on musl rather than glibc. */
export function detectLibc(): 'glibc' | 'musl' {
  // The process report says which libc this very process uses (exact, ~4 ms); skip its
  // network part, which may do reverse DNS lookups.
  const report = process.report as (NodeJS.ProcessReport & { excludeNetwork?: boolean }) | undefined
  if (typeof report?.getReport === 'function') {
    const exclude = report.excludeNetwork
    try {
      report.excludeNetwork = true
      const r = report.getReport() as Report
      if (r?.header) {
        if (r.header.glibcVersionRuntime) return 'glibc'
        const libs = Array.isArray(r.sharedObjects) ? (r.sharedObjects as unknown[]) : []
        if (libs.some((f) => typeof f === 'string' && (f.includes('libc.musl-') || f.includes('ld-musl-')))) return 'musl'
      }
    } catch {
      // fall through
    } finally {
      report.excludeNetwork = exclude
    }
  }
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'glibc'
  } catch {
    return 'glibc'
  }
}

/** This process's host. */
export function currentHost(): Host {
  return { platform: process.platform, arch: process.arch, libc: process.platform === 'linux' ? detectLibc() : 'glibc' }
}

function load(): typeof Binding {
  // dist/src/native.js -> the package root.
  const root = join(__dirname, '..', '..')
  let version = '0.0.0'
  try {
    version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    // keep the placeholder: only the version check of a binary package uses it
  }
  return loadBinding<typeof Binding>(currentHost(), root, { exists: existsSync, require, version })
}

export const binding: typeof Binding = load()
