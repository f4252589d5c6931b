// The TypeScript decoder against the shared test vectors in fixtures/records/vectors.json (the
// Rust core's decoder is tested against the same file in crates/linux-obs-core/tests/vectors.rs).
import test from 'ava'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ObsError, parseFormat, type FieldValue } from 'linux-obs'
import { readSafeInt } from '../src/decode'
import { repoRoot } from './helpers/util'

interface Expected {
  type: 'number' | 'bigint' | 'boolean' | 'string' | 'bytes' | 'number[]' | 'bigint[]'
  value: unknown
}
interface Vector {
  name: string
  format: string
  raw: string
  expected?: Record<string, Expected>
  error?: { field: string }
}

const vectors = JSON.parse(readFileSync(join(repoRoot, 'fixtures', 'records', 'vectors.json'), 'utf8')) as Vector[]

function normalize(v: FieldValue): { type: Expected['type']; value: unknown } {
  if (typeof v === 'number') return { type: 'number', value: v }
  if (typeof v === 'bigint') return { type: 'bigint', value: v.toString() }
  if (typeof v === 'boolean') return { type: 'boolean', value: v }
  if (typeof v === 'string') return { type: 'string', value: v }
  if (v instanceof Uint8Array) return { type: 'bytes', value: Buffer.from(v).toString('hex') }
  const arr = v as Array<number | bigint>
  if (arr.length > 0 && typeof arr[0] === 'bigint') return { type: 'bigint[]', value: arr.map(String) }
  return { type: 'number[]', value: arr }
}

test('there are vectors for every dynamic kind', (t) => {
  const text = vectors.map((v) => v.format).join('\n')
  for (const needle of ['__rel_loc char[]', '__rel_loc u32[]', '__data_loc u64[]', '__data_loc u8[]', '__data_loc unsigned int[]', '__data_loc cpumask_t', 'buf[];']) {
    t.true(text.includes(needle), needle)
  }
})

for (const v of vectors) {
  test(`vector: ${v.name}`, (t) => {
    const format = parseFormat(v.format)
    const raw = Uint8Array.from(Buffer.from(v.raw, 'hex'))
    if (v.error) {
      const e = t.throws(() => format.decode(raw), { instanceOf: ObsError })
      t.is(e?.code, 'ERR_MALFORMED_RECORD')
      t.true(e?.message.includes(`field '${v.error.field}'`), e?.message)
      return
    }
    const fields = format.decode(raw)
    t.deepEqual(Object.keys(fields), Object.keys(v.expected ?? {}))
    for (const [name, want] of Object.entries(v.expected ?? {})) {
      t.deepEqual(normalize(fields[name]), want, name)
    }
  })
}

test('getInt path: 8-byte integers read as numbers without a bigint, unsafe ones refused', (t) => {
  const view = new DataView(new ArrayBuffer(8))
  const cases: Array<[bigint, boolean, number | undefined]> = [
    [-1n, true, -1],
    [-(2n ** 53n) + 1n, true, -(2 ** 53) + 1],
    [-(2n ** 53n), true, undefined],
    [4294967196n, false, 4294967196],
    [2n ** 53n - 1n, false, 2 ** 53 - 1],
    [2n ** 53n, false, undefined],
    [2n ** 64n - 1n, false, undefined],
  ]
  for (const [value, signed, want] of cases) {
    if (signed) view.setBigInt64(0, value, true)
    else view.setBigUint64(0, value, true)
    t.is(readSafeInt(view, 0, 8, signed), want, `${value}`)
  }
  view.setInt16(0, -5, true)
  t.is(readSafeInt(view, 0, 2, true), -5)
})
