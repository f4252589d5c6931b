// Events are views on the batch buffer they arrived in: nothing is decoded until asked.
import type { EventBatch, EventSource, FieldLayout, FieldValue, LostEvent, TracepointEvent, TracepointEventJSON } from '../index'
import { type CompiledFormat, decodeFields, fieldStart, readBytes, readField, readSafeInt } from './decode'
import { ObsError } from './errors'

/** Entry layout of a batch (see crates/linux-obs-core/src/batch.rs). */
export const ENTRY_HEADER = 32
export const LOST_SOURCE = 0xffffffff

/** A tracepoint of an observer; one object per tracepoint, so `===` compares. */
export class Source implements EventSource {
  constructor(
    readonly id: number,
    readonly name: string,
  ) {
    Object.freeze(this)
  }

  is(ev: unknown): ev is TracepointEvent {
    return ev instanceof Object && (ev as TracepointEvent).type === 'event' && (ev as TracepointEvent).source === this
  }

  toString(): string {
    return this.name
  }

  valueOf(): number {
    return this.id
  }

  toJSON(): string {
    return this.name
  }
}

/** One batch buffer and what its entries refer to. */
export interface BatchData {
  readonly bytes: Uint8Array
  readonly view: DataView
  readonly formats: readonly CompiledFormat[]
  readonly sources: readonly Source[]
}

const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function unknownField(format: CompiledFormat, name: string, field: string): ObsError {
  const valid = format.fields.map((f) => f.name).join(', ')
  return new ObsError('ERR_UNKNOWN_FIELD', `${name} has no field '${field}'; its fields are: ${valid}`)
}

export class Event implements TracepointEvent {
  readonly #batch: BatchData
  readonly #at: number
  #fields: Record<string, FieldValue> | undefined

  constructor(batch: BatchData, at: number) {
    this.#batch = batch
    this.#at = at
  }

  get type(): 'event' {
    return 'event'
  }

  #index(): number {
    return this.#batch.view.getUint32(this.#at + 4, le)
  }

  get source(): EventSource {
    return this.#batch.sources[this.#index()]
  }

  get name(): string {
    return this.#batch.sources[this.#index()].name
  }

  get pid(): number {
    return this.#batch.view.getInt32(this.#at + 8, le)
  }

  get tid(): number {
    return this.#batch.view.getInt32(this.#at + 12, le)
  }

  get time(): bigint {
    return this.#batch.view.getBigUint64(this.#at + 16, le)
  }

  get cpu(): number {
    return this.#batch.view.getUint32(this.#at + 24, le)
  }

  #len(): number {
    return this.#batch.view.getUint32(this.#at + 28, le)
  }

  #format(): CompiledFormat {
    return this.#batch.formats[this.#index()]
  }

  #field(field: string) {
    const format = this.#format()
    const f = format.byName.get(field)
    if (f === undefined) throw unknownField(format, this.name, field)
    return f
  }

  #read(f: FieldLayout): FieldValue {
    return readField(this.#batch.view, this.#batch.bytes, this.#at + ENTRY_HEADER, this.#len(), f)
  }

  /** The layout of an integer-like field (int, bool, pointer), or ERR_FIELD_TYPE. */
  #intField(field: string): FieldLayout {
    const f = this.#field(field)
    if (f.kind !== 'int' && f.kind !== 'bool' && f.kind !== 'pointer') {
      throw new ObsError('ERR_FIELD_TYPE', `${this.name} field '${field}' is a ${f.kind} (${f.type}), not an integer`)
    }
    return f
  }

  getInt(field: string): number {
    const f = this.#intField(field)
    const base = this.#at + ENTRY_HEADER
    const at = base + fieldStart(this.#batch.view, base, this.#len(), f)
    const n = readSafeInt(this.#batch.view, at, f.size, f.kind === 'int' && f.signed)
    if (n === undefined) {
      throw new ObsError(
        'ERR_UNSAFE_INTEGER',
        `${this.name} field '${field}' is ${this.getBigInt(field)}, beyond Number.MAX_SAFE_INTEGER: use getBigInt('${field}')`,
      )
    }
    return f.kind === 'bool' ? Number(n !== 0) : n
  }

  getBigInt(field: string): bigint {
    const v = this.#read(this.#intField(field))
    return typeof v === 'bigint' ? v : BigInt(v as number | boolean)
  }

  getString(field: string): string {
    const f = this.#field(field)
    if (!f.isString) {
      throw new ObsError('ERR_FIELD_TYPE', `${this.name} field '${field}' is a ${f.kind} (${f.type}), not a string`)
    }
    return this.#read(f) as string
  }

  getBytes(field: string): Uint8Array {
    const f = this.#field(field)
    return readBytes(this.#batch.view, this.#batch.bytes, this.#at + ENTRY_HEADER, this.#len(), f)
  }

  data(): Uint8Array {
    const start = this.#at + ENTRY_HEADER
    return this.#batch.bytes.slice(start, start + this.#len())
  }

  get fields(): Record<string, FieldValue> {
    if (this.#fields === undefined) {
      this.#fields = decodeFields(this.#format(), this.#batch.view, this.#batch.bytes, this.#at + ENTRY_HEADER, this.#len())
    }
    return this.#fields
  }

  toJSON(): TracepointEventJSON {
    const fields: TracepointEventJSON['fields'] = {}
    for (const [k, v] of Object.entries(this.fields)) fields[k] = jsonValue(v)
    return { name: this.name, pid: this.pid, tid: this.tid, cpu: this.cpu, time: this.time.toString(), fields }
  }

  [Symbol.for('nodejs.util.inspect.custom')](): object {
    return { type: 'event', name: this.name, pid: this.pid, tid: this.tid, cpu: this.cpu, time: this.time, fields: this.fields }
  }
}

function jsonValue(v: FieldValue): number | boolean | string | Array<number | string> {
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')
  if (Array.isArray(v)) return (v as Array<number | bigint>).map((x) => (typeof x === 'bigint' ? x.toString() : x))
  return v
}

export class Lost implements LostEvent {
  readonly type = 'lost' as const
  constructor(
    readonly cpu: number,
    readonly count: number,
    readonly time: bigint,
  ) {}
}

export function lostAt(batch: BatchData, at: number): Lost {
  const v = batch.view
  return new Lost(v.getUint32(at + 24, le), Number(v.getBigUint64(at + ENTRY_HEADER, le)), v.getBigUint64(at + 16, le))
}

/** The events of one batch from the reader (from `start` on), iterable any number of times. */
export class Batch implements EventBatch {
  readonly length: number
  readonly lost: number
  readonly #data: BatchData
  readonly #start: number

  constructor(data: BatchData, start: number) {
    this.#data = data
    this.#start = start
    let events = 0
    let lost = 0
    const v = data.view
    for (let at = start; at + ENTRY_HEADER <= v.byteLength; ) {
      const size = v.getUint32(at, le)
      if (v.getUint32(at + 4, le) === LOST_SOURCE) lost += Number(v.getBigUint64(at + ENTRY_HEADER, le))
      else events++
      at = size >= ENTRY_HEADER ? at + size : v.byteLength
    }
    this.length = events
    this.lost = lost
  }

  *[Symbol.iterator](): IterableIterator<TracepointEvent> {
    const v = this.#data.view
    for (let at = this.#start; at + ENTRY_HEADER <= v.byteLength; ) {
      const size = v.getUint32(at, le)
      if (v.getUint32(at + 4, le) !== LOST_SOURCE) yield new Event(this.#data, at)
      at = size >= ENTRY_HEADER ? at + size : v.byteLength
    }
  }

  *lostEvents(): IterableIterator<LostEvent> {
    const v = this.#data.view
    for (let at = this.#start; at + ENTRY_HEADER <= v.byteLength; ) {
      const size = v.getUint32(at, le)
      if (v.getUint32(at + 4, le) === LOST_SOURCE) yield lostAt(this.#data, at)
      at = size >= ENTRY_HEADER ? at + size : v.byteLength
    }
  }
}
