import type { FieldKind, FieldLayout, FieldValue, TracepointFormat } from '../index'
import type { NativeFormat } from './binding'
import { type CompiledFormat, compileFormat, decodeFields } from './decode'
import { ObsError, native } from './errors'
import { binding } from './native'

export function compileNative(name: string, f: NativeFormat): CompiledFormat {
  return compileFormat(
    name,
    f.id,
    f.fields.map((x) => ({ ...x, kind: x.kind as FieldKind }) satisfies FieldLayout),
  )
}

/** The public view of a compiled format. */
export function publicFormat(c: CompiledFormat, eventName: string): TracepointFormat {
  return Object.freeze({
    name: eventName,
    id: c.id,
    fields: c.fields,
    decode(bytes: Uint8Array): Record<string, FieldValue> {
      if (!(bytes instanceof Uint8Array)) {
        throw new ObsError('ERR_MALFORMED_RECORD', 'decode() takes the raw record as a Uint8Array')
      }
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      return decodeFields(c, view, bytes, 0, bytes.byteLength)
    },
  })
}

export function parseFormat(text: string): TracepointFormat {
  if (typeof text !== 'string') {
    throw new ObsError('ERR_INVALID_FORMAT', `parseFormat() takes the text of a format file, got ${typeof text}`)
  }
  const f = native(() => binding.parseFormat(text))
  return publicFormat(compileNative(f.name, f), f.name)
}
