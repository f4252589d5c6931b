#!/usr/bin/env node
// A throwaway npm registry on loopback, in memory, for the install test: `npm publish` and
// `npm install` talk to it exactly as to registry.npmjs.org (the same three routes they use),
// and it answers 404 for every package nobody published to it, so an install that needs
// anything else fails instead of reaching out. It records every request.
//
//   PUT  /<name>               npm publish: the packument with the tarball as base64 attachment
//   GET  /<name>               the packument (every version, dist-tags, tarball URLs)
//   GET  /<name>/-/<file>.tgz  a tarball
//
// As a module: `const registry = await startRegistry(); registry.url; await registry.close()`.
// As a command: `node scripts/local-registry.mjs [--port N]` prints its URL and serves until
// SIGINT or SIGTERM.
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'

const MAX_BODY = 256 << 20

/**
 * @typedef {{ method: string, path: string, status: number, name: string | null }} RequestRecord
 * @typedef {{ url: string, requests: RequestRecord[], packages(): string[], close(): Promise<void> }} Registry
 */

/** Package name from a registry path: `/pkg`, `/@scope%2fpkg`, `/@scope/pkg`, with an optional `/-/file.tgz`. */
export function parsePath(pathname) {
  const decoded = decodeURIComponent(pathname)
  const m = /^\/((?:@[^/]+\/)?[^/@][^/]*)(?:\/-\/([^/]+\.tgz))?\/?$/.exec(decoded)
  if (!m) return null
  return { name: m[1], tarball: m[2] ?? null }
}

/**
 * Starts the registry on 127.0.0.1 (an ephemeral port unless `port` is given).
 * @param {{ port?: number }} [options]
 * @returns {Promise<Registry>}
 */
export function startRegistry({ port = 0 } = {}) {
  /** @type {Map<string, any>} */
  const packuments = new Map()
  /** @type {Map<string, Buffer>} */
  const tarballs = new Map()
  /** @type {RequestRecord[]} */
  const requests = []
  let base = ''

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', base)
    const target = parsePath(url.pathname)
    const record = { method: req.method ?? '', path: url.pathname, status: 0, name: target?.name ?? null }
    requests.push(record)
    const send = (status, body, type = 'application/json') => {
      record.status = status
      const data = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body))
      res.writeHead(status, { 'content-type': type, 'content-length': data.length, connection: 'close' })
      res.end(data)
    }
    const chunks = []
    let size = 0
    req.on('data', (c) => {
      size += c.length
      if (size > MAX_BODY) req.destroy()
      else chunks.push(c)
    })
    req.on('end', () => {
      try {
        if (!target) return send(404, { error: 'not found' })
        if (req.method === 'GET' || req.method === 'HEAD') {
          if (target.tarball) {
            const data = tarballs.get(`${target.name}/${target.tarball}`)
            return data ? send(200, data, 'application/octet-stream') : send(404, { error: 'not found' })
          }
          const doc = packuments.get(target.name)
          return doc ? send(200, doc) : send(404, { error: 'not found' })
        }
        if (req.method === 'PUT' && !target.tarball) {
          if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) return send(401, { error: 'authentication required' })
          return send(...publish(target.name, JSON.parse(Buffer.concat(chunks).toString('utf8'))))
        }
        return send(405, { error: `${req.method} not supported` })
      } catch (e) {
        return send(400, { error: String(e?.message ?? e) })
      }
    })
  })

  function publish(name, body) {
    if (body?.name !== name) return [400, { error: `body names ${body?.name}, not ${name}` }]
    const doc = packuments.get(name) ?? { _id: name, name, 'dist-tags': {}, versions: {}, time: {} }
    for (const [version, manifest] of Object.entries(body.versions ?? {})) {
      if (doc.versions[version]) {
        return [403, { error: `You cannot publish over the previously published versions: ${version}.` }]
      }
      const file = `${name.split('/').pop()}-${version}.tgz`
      const attachment = body._attachments?.[file] ?? Object.values(body._attachments ?? {})[0]
      if (!attachment?.data) return [400, { error: `no tarball attached for ${name}@${version}` }]
      const data = Buffer.from(attachment.data, 'base64')
      const integrity = `sha512-${createHash('sha512').update(data).digest('base64')}`
      if (manifest.dist?.integrity && manifest.dist.integrity !== integrity) {
        return [400, { error: `integrity mismatch for ${name}@${version}` }]
      }
      tarballs.set(`${name}/${file}`, data)
      doc.versions[version] = {
        ...manifest,
        dist: {
          ...manifest.dist,
          integrity,
          shasum: createHash('sha1').update(data).digest('hex'),
          tarball: `${base}/${name}/-/${file}`,
        },
      }
      doc.time[version] = new Date().toISOString()
    }
    Object.assign(doc['dist-tags'], body['dist-tags'] ?? {})
    packuments.set(name, doc)
    return [201, { ok: true, id: name }]
  }

  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      const address = server.address()
      base = `http://127.0.0.1:${address.port}`
      resolve({
        url: `${base}/`,
        requests,
        packages: () => [...packuments.keys()],
        close: () =>
          new Promise((done) => {
            server.close(() => done())
            server.closeAllConnections()
          }),
      })
    })
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port')
  const registry = await startRegistry({ port: i > 0 ? Number(process.argv[i + 1]) : 0 })
  process.stdout.write(`${registry.url}\n`)
  const stop = () => registry.close().then(() => process.exit(0))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
