/// <reference types="node" />
/**
 * linux-obs: Linux kernel tracepoints for Node.js.
 *
 * An {@link Observer} opens tracepoints (`perf_event_open(2)` with `PERF_TYPE_TRACEPOINT`) on
 * every online CPU and yields their events through an async iterator. A Rust core reads the
 * perf ring buffers on its own thread and hands events to JavaScript in batches.
 *
 * ```ts
 * import { Observer, Process, NamespaceKind } from 'linux-obs'
 *
 * await using observer = new Observer()
 * observer.addTracepoint('sched:sched_process_exec')
 * await observer.open()
 * for await (const ev of observer.events()) {
 *   const pid = ev.getInt('pid')
 *   console.log(pid, ev.getString('filename'))
 * }
 * ```
 *
 * Needs root, or CAP_PERFMON plus read access to tracefs (see the README).
 *
 * @packageDocumentation
 */

// ---------------------------------------------------------------------------------------------
// Field values and typing

/**
 * A decoded field value. Width and sign come from the tracepoint's `format` file:
 * - integers of 1, 2 or 4 bytes: `number`; of 8 bytes: `bigint` (always, whatever the value);
 * - `bool`: `boolean`; pointers: `bigint` addresses (never dereferenced);
 * - `char[N]`, `__data_loc char[]`, `__rel_loc char[]`: `string` (invalid UTF-8 replaced by U+FFFD,
 *   as `TextDecoder` does; exact bytes from {@link TracepointEvent.getBytes});
 * - arrays of 1-byte elements: `Uint8Array`; of 2- or 4-byte elements: `number[]`; of 8-byte
 *   elements: `bigint[]`.
 */
export type FieldValue = number | bigint | boolean | string | Uint8Array | number[] | bigint[]

/**
 * Field types per tracepoint, keyed by `system:event`. Augment it to type
 * {@link TracepointEvent.fields} and the getters; `npx linux-obs types 'sched:*' > tracepoints.d.ts`
 * writes such an augmentation from the running kernel's format files:
 *
 * ```ts
 * declare module 'linux-obs' {
 *   interface TracepointFields {
 *     'sched:sched_process_exec': { filename: string; pid: number; old_pid: number }
 *   }
 * }
 * ```
 *
 * Entries here take precedence over {@link BuiltinTracepointFields} (common tracepoints of a
 * recent kernel, shipped with the package).
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface TracepointFields {}

export type { BuiltinTracepointFields } from './types/builtin'
import type { BuiltinTracepointFields } from './types/builtin'

/** Every tracepoint with known field types: yours ({@link TracepointFields}) over the built-in ones. */
export type KnownTracepointFields = Omit<BuiltinTracepointFields, keyof TracepointFields> & TracepointFields

/** Names of tracepoints with known field types. */
export type KnownTracepoint = keyof KnownTracepointFields & string

/** The fields object of tracepoint `N`: typed when `N` is known, a record of values otherwise. */
export type FieldsOf<N extends string> = N extends KnownTracepoint
    ? Readonly<KnownTracepointFields[N]>
    : Readonly<Record<string, FieldValue>>

/** The `common_*` fields every tracepoint record starts with (reachable through the getters). */
export type CommonField = 'common_type' | 'common_flags' | 'common_preempt_count' | 'common_pid'

type KeysWhere<T, V> = { [K in keyof T]-?: T[K] extends V ? K : never }[keyof T] & string

/** Field names accepted by `getInt`/`getBigInt` on an event of `N`. */
export type IntFieldOf<N extends string> = N extends KnownTracepoint
    ? KeysWhere<KnownTracepointFields[N], number | bigint | boolean> | CommonField
    : string

/** Field names accepted by `getString` on an event of `N`. */
export type StringFieldOf<N extends string> = N extends KnownTracepoint
    ? KeysWhere<KnownTracepointFields[N], string>
    : string

/** Field names accepted by `getBytes` on an event of `N`. */
export type FieldNameOf<N extends string> = N extends KnownTracepoint
    ? (keyof KnownTracepointFields[N] & string) | CommonField
    : string

/**
 * A tracepoint added to an observer: what {@link Observer.addTracepoint} returns and what
 * {@link TracepointEvent.source} is. One object per tracepoint: compare with `===`.
 */
export interface EventSource<out N extends string = string> {
  /** Index of the tracepoint in its observer (0, 1, ...). Also what `Number(source)` gives. */
  readonly id: number
  /** `system:event`. */
  readonly name: N
  /** Type guard: whether `ev` is an event of this tracepoint. */
  is(ev: unknown): ev is TracepointEvent<N>
  /** The name. */
  toString(): string
  /** The id. */
  valueOf(): number
}

/** The event type for a union of tracepoint names (one member per name, so `ev.name` narrows). */
export type EventOf<N extends string> = N extends string ? TracepointEvent<N> : never

// ---------------------------------------------------------------------------------------------
// Events

/**
 * One occurrence of a tracepoint: the `PERF_RECORD_SAMPLE` the kernel wrote, with its raw
 * tracepoint record (`PERF_SAMPLE_RAW`).
 *
 * An event is a view on the batch it arrived in: keeping it keeps that batch's buffer alive (a
 * few hundred KiB at most). Values you read are copies, never recycled.
 */
export interface TracepointEvent<out N extends string = string> {
  /** Always `'event'` (lost markers have `type: 'lost'`). */
  readonly type: 'event'
  /** The tracepoint that fired, as returned by {@link Observer.addTracepoint}. */
  readonly source: EventSource<N>
  /** Its name, `system:event`. */
  readonly name: N
  /** Process id (thread group id) of the task that hit the tracepoint, as seen from the observer's pid namespace. */
  readonly pid: number
  /** Thread id of that task. */
  readonly tid: number
  /** CPU it ran on. Events are ordered per CPU, not across CPUs. */
  readonly cpu: number
  /**
   * When it happened, in nanoseconds of `CLOCK_MONOTONIC` (comparable with
   * `process.hrtime.bigint()`). On kernels before 4.1 (no `use_clockid`), perf's own clock.
   */
  readonly time: bigint
  /**
   * An integer field (any width, signed per the format file) as a `number`.
   * `common_*` fields are reachable too.
   * @throws {@link ObsError} `ERR_UNKNOWN_FIELD` (lists valid fields), `ERR_UNSAFE_INTEGER`
   * (use {@link getBigInt}), `ERR_FIELD_TYPE` (not an integer).
   */
  getInt(field: IntFieldOf<N>): number
  /** An integer or pointer field as a `bigint`. @throws {@link ObsError} `ERR_UNKNOWN_FIELD`, `ERR_FIELD_TYPE`. */
  getBigInt(field: IntFieldOf<N>): bigint
  /** A string field (`char[N]`, `__data_loc char[]`). @throws {@link ObsError} `ERR_UNKNOWN_FIELD`, `ERR_FIELD_TYPE`. */
  getString(field: StringFieldOf<N>): string
  /** The exact bytes of a field (strings without their terminating NUL). @throws {@link ObsError} `ERR_UNKNOWN_FIELD`. */
  getBytes(field: FieldNameOf<N>): Uint8Array
  /** A copy of the raw tracepoint record, laid out as the `format` file says. */
  data(): Uint8Array
  /** Every non-`common_*` field, decoded (see {@link FieldValue}). */
  readonly fields: FieldsOf<N>
  /** Fields and metadata for `JSON.stringify`: bigints as decimal strings, bytes as hex. */
  toJSON(): TracepointEventJSON
}

/** What {@link TracepointEvent.toJSON} returns. */
export interface TracepointEventJSON {
  /** `system:event`. */
  name: string
  /** Process id. */
  pid: number
  /** Thread id. */
  tid: number
  /** CPU. */
  cpu: number
  /** Nanoseconds, decimal. */
  time: string
  /** The decoded fields: bigints as decimal strings, byte arrays as hex strings. */
  fields: Record<string, number | boolean | string | Array<number | string>>
}

/**
 * Marks a gap: the kernel dropped `count` events on `cpu` because that CPU's ring was full
 * (yielded by `events({ lost: true })`).
 */
export interface LostEvent {
  /** Always `'lost'`. */
  readonly type: 'lost'
  /** CPU whose ring overflowed. */
  readonly cpu: number
  /** Number of events dropped there. */
  readonly count: number
  /** When the kernel wrote the marker (it does so once space frees up). */
  readonly time: bigint
}

// ---------------------------------------------------------------------------------------------
// Observer

/** Options of {@link Observer}; all optional. Invalid values throw `ERR_INVALID_OPTION`. */
export interface ObserverOptions {
  /**
   * Total ring memory across CPUs, in bytes. Split evenly per CPU and rounded down to a power of
   * two of pages. Default: 1 MiB per CPU, clamped for unprivileged processes to what they may
   * lock (`perf_event_mlock_kb` per CPU plus RLIMIT_MEMLOCK). Range: one page per CPU to 4 GiB.
   */
  ringBytes?: number
  /** Wake the reader once this many bytes wait in a CPU's ring. Default 64 KiB (at most a quarter ring). */
  wakeupBytes?: number
  /**
   * Longest time a lone event waits in a ring before it is delivered, in ms (0.1-60000, fractions
   * allowed). The rings are drained three times per period by a timer; a full watermark wakes the
   * reader sooner. Default 1.
   */
  maxDelayMs?: number
  /**
   * Bytes of delivered but unconsumed batches after which the reader stops draining the rings
   * (the kernel then drops and counts). Default 16 MiB. Range 64 KiB to 1 TiB.
   */
  highWaterBytes?: number
  /** Mount tracefs at `/sys/kernel/tracing` if no tracefs is mounted (needs CAP_SYS_ADMIN). Default false. */
  mountTracefs?: boolean
}

/** Options of {@link Observer.addTracepoint}. */
export interface TracepointOptions {
  /**
   * An ftrace filter expression evaluated in the kernel (`PERF_EVENT_IOC_SET_FILTER`), e.g.
   * `'prev_pid != 0'` or `'common_pid == 42'`. Rejected filters give `ERR_INVALID_FILTER` with
   * the kernel's reason.
   */
  filter?: string
}

/** Options of {@link Observer.events}. */
export interface EventsOptions {
  /** Ends the iteration (rejecting a pending `next()` with the signal's reason). */
  signal?: AbortSignal
  /** Also yield {@link LostEvent} markers where the kernel dropped events. Default false. */
  lost?: boolean
}

/** Options of {@link Observer.batches}. */
export interface BatchesOptions {
  /** Ends the iteration (rejecting a pending `next()` with the signal's reason). */
  signal?: AbortSignal
}

/**
 * The events of one batch from the reader thread: the cheapest way to consume at high rates
 * (one `await` per batch instead of per event). Iterable any number of times; events are views
 * on the batch's buffer.
 */
export interface EventBatch<N extends string = string> extends Iterable<EventOf<N>> {
  /** Number of events. */
  readonly length: number
  /** Events the kernel dropped where this batch has gaps (0 when nothing was lost). */
  readonly lost: number
  /** The gap markers themselves, with their CPU and time. */
  lostEvents(): IterableIterator<LostEvent>
}

/** Totals of an observer; final (and still valid) after {@link Observer.close}. */
export interface ObserverStats {
  /** Events yielded to the consumer. */
  events: number
  /** Events the kernel dropped because a ring was full (exact with PERF_FORMAT_LOST, Linux 6.0+). */
  lost: number
  /** `lost` per CPU number. */
  lostByCpu: Record<number, number>
  /** `lost` per tracepoint name (zero on kernels without PERF_FORMAT_LOST). */
  lostByTracepoint: Record<string, number>
  /** Events read from the kernel but discarded undelivered by `close()`. */
  dropped: number
  /** Events copied out of the rings. */
  read: number
  /** Events the kernel generated for this observer (after filters), or null before open. */
  generated: number | null
  /** Batches the reader thread handed over. */
  batches: number
  /** Bytes the reader thread handed over. */
  bytes: number
  /** Records that could not be parsed (skipped). */
  malformed: number
  /** Ring corruptions detected and recovered from. */
  errors: number
  /** Whether loss counts are exact per event (PERF_FORMAT_LOST) or from PERF_RECORD_LOST. */
  exactLoss: boolean
}

/** Lifecycle of an {@link Observer}. */
export type ObserverState = 'configuring' | 'opening' | 'open' | 'closed'

/**
 * Watches a set of tracepoints on every online CPU.
 *
 * 1. `addTracepoint()` each tracepoint (checked synchronously against tracefs);
 * 2. `await open()` opens one perf event per tracepoint per CPU, off the JS thread;
 * 3. iterate `events()`; events arriving before the first `next()` are kept;
 * 4. `await close()` (or `await using`), which frees every fd, ring and thread.
 *
 * One consumer at a time; the event loop stays alive exactly while a `next()` is pending.
 *
 * `Names` lists the tracepoints the observer will watch, so that events narrow on `ev.name`
 * (each name gets its own member of the event union):
 *
 * ```ts
 * const observer = new Observer<'sched:sched_process_exec' | 'sched:sched_process_exit'>()
 * const exec = observer.addTracepoint('sched:sched_process_exec')
 * observer.addTracepoint('sched:sched_process_exit')
 * for await (const ev of observer.events()) {
 *   if (ev.name === 'sched:sched_process_exec') ev.fields.filename // string
 *   if (exec.is(ev)) ev.getString('filename')                      // works for any observer
 * }
 * ```
 */
export declare class Observer<Names extends string = string> implements AsyncDisposable {
  /** @throws {@link ObsError} `ERR_INVALID_OPTION`, `ERR_MLOCK_LIMIT`. */
  constructor(options?: ObserverOptions)
  /** Current lifecycle state. */
  readonly state: ObserverState
  /**
   * Adds a tracepoint, `system:event` (or `system/event`).
   * @throws {@link ObsError} `ERR_INVALID_NAME`, `ERR_UNKNOWN_TRACEPOINT` (with close names),
   * `ERR_NO_TRACEFS`, `ERR_PERMISSION`, `ERR_INVALID_FILTER`, `ERR_ALREADY_OPEN`, `ERR_CLOSED`.
   */
  addTracepoint<N extends Names>(name: N, options?: TracepointOptions): EventSource<N>
  /** The sources added so far, in order. */
  sources(): ReadonlyArray<EventSource<Names>>
  /** The `system:event` name of a source. */
  nameOf(source: EventSource): string
  /** The parsed format of a source's tracepoint. */
  format(source: EventSource): TracepointFormat
  /**
   * Opens and enables every tracepoint on every online CPU.
   * Rejects with `ERR_PERMISSION`, `ERR_FD_LIMIT`, `ERR_MLOCK_LIMIT`, `ERR_INVALID_FILTER`,
   * `ERR_ALREADY_OPEN`, `ERR_CLOSED`, or `ERR_INVALID_OPTION` (no tracepoint added).
   */
  open(): Promise<void>
  /**
   * Iterates over events until `close()`, `break`, or the signal aborts.
   * @throws {@link ObsError} `ERR_NOT_OPEN` before `open()`, `ERR_BUSY` while another iterator
   * is active, `ERR_CLOSED` after `close()`. A reader failure rejects `next()` with `ERR_READER`.
   */
  events(options?: EventsOptions & { lost?: false }): AsyncIterableIterator<EventOf<Names>>
  events(options: EventsOptions & { lost: true }): AsyncIterableIterator<EventOf<Names> | LostEvent>
  events(options?: EventsOptions): AsyncIterableIterator<EventOf<Names> | LostEvent>
  /**
   * Iterates over batches of events as the reader thread delivers them: for high event rates.
   * Shares the one-consumer rule with {@link events} (`ERR_BUSY`), and resumes where an earlier
   * `events()` iterator stopped.
   */
  batches(options?: BatchesOptions): AsyncIterableIterator<EventBatch<Names>>
  /**
   * Stops at once (pending iterators end) and resolves when every perf fd, mapping and thread
   * is freed. Idempotent. Undelivered events are counted in `stats().dropped`.
   */
  close(): Promise<void>
  /** Current totals; final after close. */
  stats(): ObserverStats
  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void>
}

// ---------------------------------------------------------------------------------------------
// Formats

/** How a field's bytes are read (from its declaration in the `format` file). */
export type FieldKind = 'int' | 'bool' | 'pointer' | 'char_array' | 'array' | 'data_loc' | 'rel_loc' | 'flexible'

/** One `field:` line of a `format` file. */
export interface FieldLayout {
  /** Field name. */
  readonly name: string
  /** C type without name and array suffix (`char` for `__data_loc char[] filename`). */
  readonly type: string
  /** Byte offset in the raw record. */
  readonly offset: number
  /** Byte size (4 for `__data_loc`/`__rel_loc`, 0 for flexible arrays). */
  readonly size: number
  /** Whether integers are signed. */
  readonly signed: boolean
  /** How to read it. */
  readonly kind: FieldKind
  /** Element size of arrays; the size of scalars. */
  readonly elementSize: number
  /** Whether the value is a string. */
  readonly isString: boolean
  /** One of the `common_*` header fields. */
  readonly common: boolean
}

/** A parsed tracepoint `format` file. */
export interface TracepointFormat {
  /** Event name (without the system). */
  readonly name: string
  /** Tracepoint id (perf `config`, and `common_type` of its records). */
  readonly id: number
  /** Fields in record order, `common_*` first. */
  readonly fields: readonly FieldLayout[]
  /**
   * Decodes a raw record (as `ev.data()` returns) into the same object as `ev.fields`.
   * @throws {@link ObsError} `ERR_MALFORMED_RECORD` naming the field when the record is too short
   * or a dynamic field points outside it.
   */
  decode(bytes: Uint8Array): Record<string, FieldValue>
}

/**
 * Parses the text of a tracepoint `format` file (`/sys/kernel/tracing/events/SYS/EV/format`).
 * @throws {@link ObsError} `ERR_INVALID_FORMAT` with the line and what was expected.
 */
export declare function parseFormat(text: string): TracepointFormat

// ---------------------------------------------------------------------------------------------
// Processes

/** Namespace kinds, named as in `/proc/PID/ns/`. */
export declare const NamespaceKind: {
  /** Network namespace (`/proc/PID/ns/net`). */
  readonly Network: 'net'
  /** System V IPC and POSIX message queues (`ipc`). */
  readonly IPC: 'ipc'
  /** Hostname and domain name (`uts`). */
  readonly UTS: 'uts'
  /** Mount points (`mnt`). */
  readonly Mount: 'mnt'
  /** Process ids (`pid`): containers usually have their own. */
  readonly PID: 'pid'
  /** User and group ids, capabilities (`user`). */
  readonly User: 'user'
  /** Cgroup root (`cgroup`). */
  readonly Cgroup: 'cgroup'
  /** Boot and monotonic clock offsets (`time`, Linux 5.6+). */
  readonly Time: 'time'
}
/** One of the {@link NamespaceKind} values. */
export type NamespaceKind = (typeof NamespaceKind)[keyof typeof NamespaceKind]

/** A process, to attribute events to containers through its namespaces. */
export declare class Process {
  /** @throws {@link ObsError} `ERR_NO_PROCESS` if `/proc/PID` does not exist; `ERR_INVALID_OPTION` for a non-positive or non-integer pid. */
  constructor(pid: number)
  /** The process id. */
  readonly pid: number
  /**
   * The inode number of the process's namespace of `kind` (what `readlink /proc/PID/ns/KIND`
   * shows in brackets). Equal numbers mean the same namespace.
   * @throws {@link ObsError} `ERR_NO_PROCESS` if the process is gone.
   */
  namespace(kind: NamespaceKind): number
}

// ---------------------------------------------------------------------------------------------
// Errors

/** Stable error codes (`error.code`). */
export type ErrorCode =
  | 'ERR_UNKNOWN_TRACEPOINT'
  | 'ERR_INVALID_NAME'
  | 'ERR_INVALID_FILTER'
  | 'ERR_INVALID_OPTION'
  | 'ERR_INVALID_FORMAT'
  | 'ERR_PERMISSION'
  | 'ERR_NO_TRACEFS'
  | 'ERR_FD_LIMIT'
  | 'ERR_MLOCK_LIMIT'
  | 'ERR_NOT_OPEN'
  | 'ERR_ALREADY_OPEN'
  | 'ERR_BUSY'
  | 'ERR_CLOSED'
  | 'ERR_UNKNOWN_FIELD'
  | 'ERR_UNSAFE_INTEGER'
  | 'ERR_FIELD_TYPE'
  | 'ERR_MALFORMED_RECORD'
  | 'ERR_NO_PROCESS'
  | 'ERR_READER'
  | 'ERR_IO'
  | 'ERR_INTERNAL'

/** Every error linux-obs throws or rejects with. */
export declare class ObsError extends Error {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown })
  /** Stable code; match on this, not on the message. */
  readonly code: ErrorCode
}
