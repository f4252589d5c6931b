// Decoding raw tracepoint records with a format's field layout. Width and sign come from the
// layout (size/signed), never from the C type: syscall fields are all 8 bytes.
import { endianness } from 'node:os'
import type { FieldLayout, FieldValue } from '../index'
import { ObsError } from './errors'

const LE = endianness() === 'LE'
const utf8 = new TextDecoder('utf-8')

/** A layout with lookups precomputed. */
export interface CompiledFormat {
  name: string
  id: number
  fields: readonly FieldLayout[]
  byName: Map<string, FieldLayout>
  userFields: readonly FieldLayout[]
}

export function compileFormat(name: string, id: number, fields: FieldLayout[]): CompiledFormat {
  const frozen = fields.map((f) => Object.freeze({ ...f }))
  return {
    name,
    id,
    fields: Object.freeze(frozen),
    byName: new Map(frozen.map((f) => [f.name, f])),
    userFields: Object.freeze(frozen.filter((f) => !f.common)),
  }
}

function malformed(f: FieldLayout, why: string): ObsError {
  return new ObsError('ERR_MALFORMED_RECORD', `malformed record: field '${f.name}' ${why}`)
}

/**
 * Where a field's data starts within a raw record of `len` bytes (checked), and `fieldEnd` where
 * it ends. Two functions returning numbers rather than one returning a pair: reading a field
 * allocates nothing beyond the value itself.
 */
export function fieldStart(view: DataView, base: number, len: number, f: FieldLayout): number {
  switch (f.kind) {
    case 'data_loc':
    case 'rel_loc': {
      if (f.offset + 4 > len) throw malformed(f, `at offset ${f.offset} is past the end of a ${len}-byte record`)
      const loc = view.getUint32(base + f.offset, LE)
      const start = (loc & 0xffff) + (f.kind === 'rel_loc' ? f.offset + 4 : 0)
      const size = loc >>> 16
      if (start + size > len) {
        throw malformed(f, `points to bytes ${start}..${start + size}, outside the ${len}-byte record`)
      }
      return start
    }
    case 'flexible':
      if (f.offset > len) throw malformed(f, `at offset ${f.offset} is past the end of a ${len}-byte record`)
      return f.offset
    default:
      if (f.offset + f.size > len) {
        throw malformed(f, `(offset ${f.offset}, size ${f.size}) is past the end of a ${len}-byte record`)
      }
      return f.offset
  }
}

/** End of a field's data; call after `fieldStart` has checked the bounds. */
export function fieldEnd(view: DataView, base: number, len: number, f: FieldLayout, start: number): number {
  switch (f.kind) {
    case 'data_loc':
    case 'rel_loc':
      return start + (view.getUint32(base + f.offset, LE) >>> 16)
    case 'flexible':
      // Runs to the end of the record, which carries 0-7 bytes of alignment padding from the
      // kernel: bounded by the record and cut to whole elements.
      return f.offset + Math.floor((len - f.offset) / f.elementSize) * f.elementSize
    default:
      return f.offset + f.size
  }
}

function readInt(view: DataView, at: number, size: number, signed: boolean): number | bigint {
  switch (size) {
    case 1:
      return signed ? view.getInt8(at) : view.getUint8(at)
    case 2:
      return signed ? view.getInt16(at, LE) : view.getUint16(at, LE)
    case 4:
      return signed ? view.getInt32(at, LE) : view.getUint32(at, LE)
    default:
      return signed ? view.getBigInt64(at, LE) : view.getBigUint64(at, LE)
  }
}

/** Bytes up to the first NUL. */
function cString(bytes: Uint8Array, start: number, end: number): Uint8Array {
  const nul = bytes.indexOf(0, start)
  return bytes.subarray(start, nul === -1 || nul > end ? end : nul)
}

function decodeText(b: Uint8Array): string {
  // Fast path for ASCII, which most comm and path strings are.
  if (b.length < 64) {
    let ascii = true
    for (let i = 0; i < b.length; i++) {
      if (b[i] > 0x7f) {
        ascii = false
        break
      }
    }
    if (ascii) return String.fromCharCode.apply(null, b as unknown as number[])
  }
  return utf8.decode(b)
}

function readArray(view: DataView, start: number, end: number, f: FieldLayout): FieldValue {
  const es = f.elementSize
  if (es === 1) return new Uint8Array(view.buffer.slice(view.byteOffset + start, view.byteOffset + end))
  const n = Math.floor((end - start) / es)
  if (es === 8) {
    const out: bigint[] = new Array(n)
    for (let i = 0; i < n; i++) out[i] = readInt(view, start + i * 8, 8, f.signed) as bigint
    return out
  }
  const out: number[] = new Array(n)
  for (let i = 0; i < n; i++) out[i] = readInt(view, start + i * es, es, f.signed) as number
  return out
}

/** Decodes one field of the raw record at `base` (length `len`) in `view`/`bytes`. */
export function readField(view: DataView, bytes: Uint8Array, base: number, len: number, f: FieldLayout): FieldValue {
  const start = fieldStart(view, base, len, f)
  switch (f.kind) {
    case 'int':
      return readInt(view, base + start, f.size, f.signed)
    case 'pointer':
      return readPointer(view, base + start, f.size)
    case 'bool':
      return readInt(view, base + start, f.size, false) != 0
    default: {
      const end = fieldEnd(view, base, len, f, start)
      if (f.isString) return decodeText(cString(bytes, base + start, base + end))
      return readArray(view, base + start, base + end, f)
    }
  }
}

/**
 * An integer field as a number without allocating a bigint for 8-byte values; `undefined` when
 * the value is not a safe integer.
 */
export function readSafeInt(view: DataView, at: number, size: number, signed: boolean): number | undefined {
  if (size < 8) return readInt(view, at, size, signed) as number
  const lo = view.getUint32(LE ? at : at + 4, LE)
  const hiAt = LE ? at + 4 : at
  const hi = signed ? view.getInt32(hiAt, LE) : view.getUint32(hiAt, LE)
  const n = hi * 4294967296 + lo
  return Number.isSafeInteger(n) ? n : undefined
}

/** Pointers are always bigint addresses, whatever their size. */
export function readPointer(view: DataView, at: number, size: number): bigint {
  const v = readInt(view, at, size, false)
  return typeof v === 'bigint' ? v : BigInt(v)
}

/** Exact bytes of a field (a copy; strings without the NUL and what follows). */
export function readBytes(view: DataView, bytes: Uint8Array, base: number, len: number, f: FieldLayout): Uint8Array {
  const start = fieldStart(view, base, len, f)
  const end = fieldEnd(view, base, len, f, start)
  const b = f.isString ? cString(bytes, base + start, base + end) : bytes.subarray(base + start, base + end)
  return new Uint8Array(b)
}

/** Decodes every non-common field into a plain object. */
export function decodeFields(format: CompiledFormat, view: DataView, bytes: Uint8Array, base: number, len: number): Record<string, FieldValue> {
  const out: Record<string, FieldValue> = {}
  for (const f of format.userFields) {
    const v = readField(view, bytes, base, len, f)
    if (f.name === '__proto__') {
      Object.defineProperty(out, f.name, { value: v, enumerable: true, writable: true, configurable: true })
    } else {
      out[f.name] = v
    }
  }
  return out
}
