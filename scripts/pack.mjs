#!/usr/bin/env node
// `npm run pack`: builds, then makes the installable tarballs with `npm pack`:
//   - linux-obs-<version>.tgz, the main package, whose package.json gains the optionalDependencies
//     on every binary package (linux-obs-<target>@<version>, one per npm/<target>), as
//     `napi prepublish` writes them at release;
//   - linux-obs-<target>-<version>.tgz for every target whose binary is at hand: the local build
//     `linux-obs.<target>.node` at the repo root (here only linux-x64-gnu can be built), or one
//     found in the directories given with --artifacts (CI downloads the matrix builds there).
// Packages are staged in a temp dir: the work tree is never written to, except the output dir.
//
// usage: node scripts/pack.mjs [--out DIR] [--no-build] [--artifacts DIR]... [--require-all] [--json]
//   --out DIR        where the tarballs go (default: pack/); older linux-obs*.tgz there are removed
//   --no-build       use the current build (dist/ and the .node file) instead of `npm run build`
//   --artifacts DIR  also look for linux-obs.<target>.node files in DIR (searched recursively)
//   --require-all    fail unless every npm/<target> has its binary (the release does this)
//   --json           print {"main": path, "binaries": {target: path}} on stdout (logs go to stderr)
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function parseArgs(argv) {
  const opts = { out: join(root, 'pack'), build: true, artifacts: [], requireAll: false, json: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--out') opts.out = resolve(argv[++i] ?? fail('--out needs a directory'))
    else if (a === '--no-build') opts.build = false
    else if (a === '--artifacts') opts.artifacts.push(resolve(argv[++i] ?? fail('--artifacts needs a directory')))
    else if (a === '--require-all') opts.requireAll = true
    else if (a === '--json') opts.json = true
    else fail(`unknown argument ${a}`)
  }
  return opts
}

function fail(message) {
  process.stderr.write(`pack: ${message}\n`)
  process.exit(1)
}

const log = (line) => process.stderr.write(`pack: ${line}\n`)

function npm(args, cwd) {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
}

/** Runs `npm pack` in `dir`; returns the tarball's path and the files it holds. */
function npmPack(dir, out) {
  const [info] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', out], dir))
  return { path: join(out, info.filename), files: info.files.map((f) => f.path), size: info.size }
}

/** Every `linux-obs.<target>.node` under `dir`, by target. */
function findBinaries(dir, binaryName, found = new Map()) {
  if (!existsSync(dir)) return found
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    const st = statSync(path)
    if (st.isDirectory()) {
      if (name !== 'node_modules' && !name.startsWith('.')) findBinaries(path, binaryName, found)
    } else {
      const m = new RegExp(`^${binaryName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(.+)\\.node$`).exec(name)
      if (m && !found.has(m[1])) found.set(m[1], path)
    }
  }
  return found
}

function main() {
  const opts = parseArgs(process.argv.slice(2))
  if (opts.build) {
    log('npm run build')
    execFileSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', process.stderr, 'inherit'] })
  }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const binaryName = pkg.napi?.binaryName ?? pkg.name
  const targets = readdirSync(join(root, 'npm'))
    .filter((d) => existsSync(join(root, 'npm', d, 'package.json')))
    .sort()
  if (targets.length === 0) fail('no npm/<target>/package.json')

  // Binaries: the repo root's own build (not its subdirectories), then the artifact dirs.
  const binaries = new Map()
  for (const name of readdirSync(root)) {
    const m = /^(.+)\.node$/.exec(name)
    if (m && name.startsWith(`${binaryName}.`)) binaries.set(m[1].slice(binaryName.length + 1), join(root, name))
  }
  for (const dir of opts.artifacts) {
    for (const [target, path] of findBinaries(dir, binaryName)) if (!binaries.has(target)) binaries.set(target, path)
  }
  if (binaries.size === 0) fail(`no ${binaryName}.<target>.node at the repo root: run 'npm run build' (or drop --no-build)`)
  for (const t of binaries.keys()) if (!targets.includes(t)) fail(`${binaryName}.${t}.node has no npm/${t}/package.json`)
  const absent = targets.filter((t) => !binaries.has(t))
  if (opts.requireAll && absent.length) fail(`--require-all: no binary for ${absent.join(', ')}`)
  if (!existsSync(join(root, 'dist', 'src', 'index.js'))) fail('dist/src/index.js is missing: run npm run build')

  mkdirSync(opts.out, { recursive: true })
  for (const name of readdirSync(opts.out)) {
    if (name.startsWith(`${pkg.name}-`) && name.endsWith('.tgz')) rmSync(join(opts.out, name))
  }
  const stage = mkdtempSync(join(tmpdir(), 'linux-obs-pack-'))
  try {
    const result = { main: '', binaries: {} }

    // Binary packages: package.json (version synced with the main package), README, binary.
    for (const target of targets) {
      const binary = binaries.get(target)
      if (!binary) {
        log(`skip ${pkg.name}-${target}: no ${binaryName}.${target}.node here (CI builds it)`)
        continue
      }
      const src = join(root, 'npm', target)
      const dir = join(stage, target)
      mkdirSync(dir)
      const manifest = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'))
      if (manifest.name !== `${pkg.name}-${target}`) fail(`npm/${target}/package.json is named ${manifest.name}`)
      manifest.version = pkg.version
      writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
      if (existsSync(join(src, 'README.md'))) copyFileSync(join(src, 'README.md'), join(dir, 'README.md'))
      copyFileSync(binary, join(dir, `${binaryName}.${target}.node`))
      const packed = npmPack(dir, opts.out)
      const expected = ['README.md', `${binaryName}.${target}.node`, 'package.json']
      if (JSON.stringify([...packed.files].sort()) !== JSON.stringify(expected)) {
        fail(`${packed.path} holds ${packed.files.join(', ')}; expected ${expected.join(', ')}`)
      }
      result.binaries[target] = packed.path
      log(`${packed.path} (${packed.size} bytes)`)
    }

    // Main package: exactly the files `npm pack` selects in the work tree, with the
    // optionalDependencies added to its package.json.
    const [listing] = JSON.parse(npm(['pack', '--dry-run', '--json', '--ignore-scripts'], root))
    const dir = join(stage, 'main')
    for (const { path } of listing.files) {
      if (path === 'package.json') continue
      mkdirSync(dirname(join(dir, path)), { recursive: true })
      copyFileSync(join(root, path), join(dir, path))
    }
    const manifest = { ...pkg }
    manifest.optionalDependencies = Object.fromEntries(targets.map((t) => [`${pkg.name}-${t}`, pkg.version]))
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
    const packed = npmPack(dir, opts.out)
    const files = new Set(packed.files)
    const required = ['package.json', 'README.md', 'index.d.ts', 'dist/src/index.js', 'dist/src/native.js', 'dist/src/cli.js', 'esm/index.mjs']
    const missing = required.filter((f) => !files.has(f))
    if (!packed.files.some((f) => f.startsWith('types/'))) missing.push('types/')
    const unwanted = packed.files.filter(
      (f) => /\.(node|map|rs|ts)$/.test(f.replace(/\.d\.ts$/, '')) || /^(__test__|crates|src|fixtures|bench|examples|build-test|dist\/(?!src\/))/.test(f),
    )
    if (missing.length) fail(`${packed.path} lacks ${missing.join(', ')}`)
    if (unwanted.length) fail(`${packed.path} should not hold ${unwanted.join(', ')}`)
    result.main = packed.path
    log(`${packed.path} (${packed.size} bytes, ${packed.files.length} files)`)
    if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
}

main()
