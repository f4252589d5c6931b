// Loads the compiled binding: a local build first (development, or built from source), then the
// prebuilt package for this platform.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type * as Binding from './binding'

function isMusl(): boolean {
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    if (report?.header) return !report.header.glibcVersionRuntime
  } catch {
    // fall through
  }
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    return false
  }
}

export function platformTriple(): string {
  const arch = process.arch === 'x64' ? 'x64' : process.arch === 'arm64' ? 'arm64' : process.arch
  return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
}

function load(): typeof Binding {
  if (process.platform !== 'linux') {
    throw new Error(`linux-obs only runs on Linux (this is ${process.platform})`)
  }
  const triple = platformTriple()
  // dist/src/native.js -> the package root, where `npm run build` puts the binary.
  const local = join(__dirname, '..', '..', `linux-obs.${triple}.node`)
  const pkg = `linux-obs-${triple}`
  const errors: string[] = []
  if (existsSync(local)) {
    try {
      return require(local) as typeof Binding
    } catch (e) {
      errors.push(`${local}: ${(e as Error).message}`)
    }
  }
  try {
    return require(pkg) as typeof Binding
  } catch (e) {
    errors.push(`${pkg}: ${(e as Error).message}`)
  }
  throw new Error(
    `linux-obs: no native binding for ${triple}. Install the optional dependency '${pkg}' ` +
      `(npm install ${pkg}), or build from source with 'npm run build'.\n  ` + errors.join('\n  '),
  )
}

export const binding: typeof Binding = load()
