import type {
  BatchesOptions,
  EventBatch,
  EventOf,
  EventSource,
  EventsOptions,
  LostEvent,
  ObserverOptions,
  ObserverState,
  ObserverStats,
  TracepointEvent,
  TracepointFormat,
  TracepointOptions,
} from '../index'
import type { NativeMessage, NativeObserver } from './binding'
import type { CompiledFormat } from './decode'
import { ObsError, fromNative, native } from './errors'
import { Batch, type BatchData, ENTRY_HEADER, Event, LOST_SOURCE, Source, lostAt } from './event'
import { compileNative, publicFormat } from './format'
import { binding } from './native'

const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
const asyncDispose: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose)

/** A batch being consumed. */
interface Pending {
  data: BatchData
  at: number
}

const NUMBER_OPTIONS = {
  ringBytes: 'bytes',
  wakeupBytes: 'bytes',
  maxDelayMs: 'milliseconds',
  highWaterBytes: 'bytes',
} as const

function validateOptions(options: unknown): ObserverOptions {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object') {
    throw new ObsError('ERR_INVALID_OPTION', `options must be an object, got ${options === null ? 'null' : typeof options}`)
  }
  const o = options as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (!(key in NUMBER_OPTIONS) && key !== 'mountTracefs') {
      throw new ObsError(
        'ERR_INVALID_OPTION',
        `unknown option '${key}': the options are ${[...Object.keys(NUMBER_OPTIONS), 'mountTracefs'].join(', ')}`,
      )
    }
  }
  for (const [key, unit] of Object.entries(NUMBER_OPTIONS)) {
    const v = o[key]
    if (key === 'maxDelayMs' && v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) {
      throw new ObsError('ERR_INVALID_OPTION', `invalid option maxDelayMs: must be a number of milliseconds, got ${String(v)}`)
    }
    if (key !== 'maxDelayMs' && v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new ObsError('ERR_INVALID_OPTION', `invalid option ${key}: must be a non-negative integer number of ${unit}, got ${String(v)}`)
    }
  }
  if (o.mountTracefs !== undefined && typeof o.mountTracefs !== 'boolean') {
    throw new ObsError('ERR_INVALID_OPTION', `invalid option mountTracefs: must be a boolean, got ${String(o.mountTracefs)}`)
  }
  return o as ObserverOptions
}

export class Observer<Names extends string = string> {
  /** Test seam, deliberately not in the public types: system call failures to inject. */
  static [Symbol.for('linux-obs.setTestFaults')](faults: { rejectFormatLost?: boolean; rejectClockid?: boolean; mmapErrno?: number }): void {
    binding.setTestFaults(faults)
  }

  readonly #native: NativeObserver
  readonly #formats: CompiledFormat[] = []
  readonly #sources: Source[] = []
  #state: ObserverState = 'configuring'
  #queue: (Pending | undefined)[] = []
  #head = 0
  #failure: ObsError | null = null
  #consumer: object | null = null
  #wakeup: { promise: Promise<void>; resolve: () => void } | null = null
  #keepAlive: ReturnType<typeof setInterval> | null = null
  #closing: Promise<void> | null = null
  #delivered = 0

  constructor(options?: ObserverOptions) {
    const o = validateOptions(options)
    this.#native = native(() => new binding.NativeObserver(o))
  }

  get state(): ObserverState {
    return this.#state
  }

  addTracepoint<N extends Names>(name: N, options?: TracepointOptions): EventSource<N> {
    if (this.#state === 'closed') throw new ObsError('ERR_CLOSED', 'observer is closed: create a new Observer')
    if (this.#state !== 'configuring') {
      throw new ObsError('ERR_ALREADY_OPEN', 'observer is already open: add tracepoints before open()')
    }
    if (typeof name !== 'string') {
      throw new ObsError('ERR_INVALID_NAME', `tracepoint name must be a string like 'sched:sched_switch', got ${typeof name}`)
    }
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new ObsError('ERR_INVALID_OPTION', 'addTracepoint options must be an object like { filter }')
    }
    const filter = options?.filter
    if (filter !== undefined && typeof filter !== 'string') {
      throw new ObsError('ERR_INVALID_FILTER', `filter must be a string, got ${typeof filter}`)
    }
    const index = native(() => this.#native.addTracepoint(name, filter))
    const f = native(() => this.#native.format(index))
    this.#formats[index] = compileNative(f.name, f)
    const source = new Source(index, f.name)
    this.#sources[index] = source
    return source as unknown as EventSource<N>
  }

  sources(): ReadonlyArray<EventSource<Names>> {
    return [...this.#sources] as unknown as ReadonlyArray<EventSource<Names>>
  }

  #source(source: EventSource): Source {
    const s = this.#sources[Number(source)]
    if (s === undefined || (typeof source === 'object' && s !== source)) {
      throw new ObsError('ERR_INVALID_OPTION', `${String(source)} is not a tracepoint of this observer`)
    }
    return s
  }

  nameOf(source: EventSource): string {
    return this.#source(source).name
  }

  format(source: EventSource): TracepointFormat {
    const s = this.#source(source)
    return publicFormat(this.#formats[s.id], s.name.slice(s.name.indexOf(':') + 1))
  }

  async open(): Promise<void> {
    if (this.#state === 'closed') throw new ObsError('ERR_CLOSED', 'observer is closed: create a new Observer')
    if (this.#state !== 'configuring') throw new ObsError('ERR_ALREADY_OPEN', 'open() was already called')
    if (this.#sources.length === 0) {
      throw new ObsError('ERR_INVALID_OPTION', 'add at least one tracepoint with addTracepoint() before open()')
    }
    this.#state = 'opening'
    try {
      await native(() => this.#native.open((msg) => this.#onMessage(msg)))
    } catch (e) {
      if (this.#state === 'opening') this.#state = 'configuring'
      throw fromNative(e)
    }
    if (this.#state === 'opening') this.#state = 'open'
  }

  /** Runs on the JS thread for each message of the reader. Must never throw. */
  #onMessage(msg: NativeMessage): void {
    try {
      if (msg.errorCode != null) {
        const cause = new ObsError(msg.errorCode as ObsError['code'], msg.errorMessage ?? 'reader failed')
        this.#failure = new ObsError('ERR_READER', `the reader thread failed: ${cause.message}`, { cause })
        this.#wake()
        return
      }
      const buf = msg.batch
      if (buf == null) return
      if (this.#state === 'closed') return // counted as dropped by stats()
      const data: BatchData = {
        bytes: buf,
        view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
        formats: this.#formats,
        sources: this.#sources,
      }
      this.#queue.push({ data, at: 0 })
      this.#wake()
    } catch {
      // Nothing here can throw in practice; an exception would be fatal to the process.
    }
  }

  /** The next item, or null when nothing is queued. */
  #take(withLost: boolean): TracepointEvent | LostEvent | null {
    while (this.#head < this.#queue.length) {
      const p = this.#queue[this.#head] as Pending
      const view = p.data.view
      if (p.at + ENTRY_HEADER <= view.byteLength) {
        const at = p.at
        const size = view.getUint32(at, le)
        p.at = size >= ENTRY_HEADER ? at + size : view.byteLength
        if (view.getUint32(at + 4, le) === LOST_SOURCE) {
          if (withLost) return lostAt(p.data, at)
          continue
        }
        this.#delivered++
        return new Event(p.data, at)
      }
      this.#queue[this.#head++] = undefined
      this.#native.ack(view.byteLength)
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head)
        this.#head = 0
      }
    }
    return null
  }

  #wait(): Promise<void> {
    if (this.#wakeup === null) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => (resolve = r))
      this.#wakeup = { promise, resolve }
      // A pending next() keeps the process alive; nothing else does (the native callback is weak).
      this.#keepAlive = setInterval(() => {}, 1 << 30)
    }
    return this.#wakeup.promise
  }

  #wake(): void {
    const w = this.#wakeup
    if (w === null) return
    this.#wakeup = null
    if (this.#keepAlive !== null) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = null
    }
    w.resolve()
  }

  /** Validates iterator options and claims the one-consumer slot. */
  #claim(options: unknown, what: string): { signal: AbortSignal | undefined; release: () => void; token: object } {
    if (options === null || typeof options !== 'object') {
      throw new ObsError('ERR_INVALID_OPTION', `${what}() options must be an object`)
    }
    const { signal } = options as EventsOptions
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new ObsError('ERR_INVALID_OPTION', `${what}() option signal must be an AbortSignal`)
    }
    if (this.#state === 'closed') throw new ObsError('ERR_CLOSED', 'observer is closed: create a new Observer')
    if (this.#state === 'configuring') throw new ObsError('ERR_NOT_OPEN', 'observer is not open: call open() first')
    if (this.#consumer !== null) {
      throw new ObsError('ERR_BUSY', 'another events()/batches() iterator is active: one consumer at a time (break out of it first)')
    }
    const token = {}
    this.#consumer = token
    const onAbort = (): void => this.#wake()
    signal?.addEventListener('abort', onAbort, { once: true })
    const release = (): void => {
      if (this.#consumer === token) this.#consumer = null
      signal?.removeEventListener('abort', onAbort)
    }
    return { signal, release, token }
  }

  /**
   * An async iterator over what `take` returns. The fast path (an item is queued) resolves at
   * once without entering an async function; the slow path waits for the reader.
   */
  #iterator<T>(take: () => T | null, signal: AbortSignal | undefined, release: () => void): AsyncIterableIterator<T> {
    let done = false
    const end: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })
    const finish = (): void => {
      if (!done) {
        done = true
        release()
      }
    }
    const slow = async (): Promise<IteratorResult<T>> => {
      for (;;) {
        if (done) return end
        if (signal?.aborted) {
          finish()
          throw signal.reason
        }
        const item = take()
        if (item !== null) return { done: false, value: item }
        if (this.#failure !== null) {
          finish()
          throw this.#failure
        }
        if (this.#state === 'closed') {
          finish()
          return end
        }
        await this.#wait()
      }
    }
    const iterator: AsyncIterableIterator<T> = {
      next(): Promise<IteratorResult<T>> {
        if (!done && signal?.aborted !== true) {
          const item = take()
          if (item !== null) return Promise.resolve({ done: false, value: item })
        }
        return slow()
      },
      return(): Promise<IteratorResult<T>> {
        finish()
        return Promise.resolve(end)
      },
      [Symbol.asyncIterator]() {
        return iterator
      },
    }
    return iterator
  }

  events(options?: EventsOptions & { lost?: false }): AsyncIterableIterator<EventOf<Names>>
  events(options: EventsOptions & { lost: true }): AsyncIterableIterator<EventOf<Names> | LostEvent>
  events(options?: EventsOptions): AsyncIterableIterator<EventOf<Names> | LostEvent>
  events(options: EventsOptions = {}): AsyncIterableIterator<EventOf<Names> | LostEvent> {
    const lost = (options as EventsOptions | null)?.lost ?? false
    if (typeof lost !== 'boolean') throw new ObsError('ERR_INVALID_OPTION', 'events() option lost must be a boolean')
    const { signal, release } = this.#claim(options, 'events')
    const take = (): TracepointEvent | LostEvent | null => this.#take(lost)
    return this.#iterator(take, signal, release) as AsyncIterableIterator<EventOf<Names> | LostEvent>
  }

  batches(options: BatchesOptions = {}): AsyncIterableIterator<EventBatch<Names>> {
    const { signal, release } = this.#claim(options, 'batches')
    return this.#iterator(() => this.#takeBatch(), signal, release) as AsyncIterableIterator<EventBatch<Names>>
  }

  /** The rest of the oldest queued batch, or null. */
  #takeBatch(): Batch | null {
    while (this.#head < this.#queue.length) {
      const p = this.#queue[this.#head] as Pending
      this.#queue[this.#head++] = undefined
      this.#native.ack(p.data.view.byteLength)
      const batch = new Batch(p.data, p.at)
      if (batch.length === 0 && batch.lost === 0) continue
      this.#delivered += batch.length
      return batch
    }
    return null
  }

  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing
    this.#state = 'closed'
    this.#queue = []
    this.#head = 0
    this.#wake()
    this.#closing = (async () => {
      try {
        await native(() => this.#native.close())
      } catch (e) {
        throw fromNative(e)
      }
    })()
    return this.#closing
  }

  stats(): ObserverStats {
    const s = native(() => this.#native.stats())
    const lostByCpu: Record<number, number> = {}
    for (const { cpu, count } of s.lostByCpu) lostByCpu[cpu] = count
    const lostByTracepoint: Record<string, number> = {}
    s.lostByTracepoint.forEach((n, i) => (lostByTracepoint[this.#sources[i].name] = n))
    return {
      events: this.#delivered,
      lost: s.lost,
      lostByCpu,
      lostByTracepoint,
      // Undelivered events are counted, never silently gone: after close, everything read from
      // the kernel and not yielded (queued here, or still in flight from the reader) is dropped.
      dropped: this.#state === 'closed' ? s.samples - this.#delivered : 0,
      read: s.samples,
      generated: s.generated ?? null,
      batches: s.batches,
      bytes: s.bytes,
      malformed: s.malformed,
      errors: s.errors,
      exactLoss: s.exactLoss,
    }
  }

  /** Test seam, deliberately not in the public types: corrupts a ring's header page. */
  [Symbol.for('linux-obs.injectRingCorruption')](): boolean {
    return this.#native.injectRingCorruption()
  }

  /** Test seam, deliberately not in the public types: kernel features in use once open. */
  [Symbol.for('linux-obs.features')](): { formatLost: boolean; clockMonotonic: boolean } | null {
    const f = this.#native.features()
    return f === null ? null : { formatLost: f[0], clockMonotonic: f[1] }
  }

  /** Test seam, deliberately not in the public types: makes the reader thread fail. */
  [Symbol.for('linux-obs.injectReaderFault')](): boolean {
    return this.#native.injectReaderFault()
  }

  [asyncDispose](): Promise<void> {
    return this.close()
  }
}
