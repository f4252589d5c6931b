/** The native half of `Observer`. */
export declare class NativeObserver {
  constructor(options: NativeOptions)
  /** Adds a tracepoint; returns its index. */
  addTracepoint(name: string, filter?: string | undefined | null): number
  /** Layout of the tracepoint at `index`. */
  format(index: number): NativeFormat
  /** Opens off the JS thread; batches then arrive through `on_message`. */
  open(onMessage: (arg: NativeMessage) => void): Promise<void>
  /** Stops delivery now; resolves once every perf fd, ring and thread is freed. */
  close(): Promise<void>
  /** The consumer is done with `bytes` of delivered batches. */
  ack(bytes: number): void
  stats(): NativeStats
  /** Kernel features in use once open: `{ formatLost, clockMonotonic }`. */
  features(): Array<boolean> | null
  /** Test seam: makes the reader thread fail (see `ReaderShared::inject_fault`). */
  injectReaderFault(): boolean
  /** Test seam: corrupts a ring's header (see `ReaderShared::inject_ring_corruption`). */
  injectRingCorruption(): boolean
}

/**
 * Every tracepoint of the running kernel (`system:event`), locating tracefs (and mounting it
 * if `mount` is true).
 */
export declare function listTracepoints(mount?: boolean | undefined | null): Array<string>

/** Inode number of a process's namespace (`kind` is the /proc/PID/ns link name). */
export declare function namespaceInode(pid: number, kind: string): number

/** A count for one CPU. */
export interface NativeCpuCount {
  cpu: number
  count: number
}

/** One field of a tracepoint's layout. */
export interface NativeField {
  name: string
  type: string
  offset: number
  size: number
  signed: boolean
  kind: string
  elementSize: number
  isString: boolean
  common: boolean
}

/** A parsed `format` file. */
export interface NativeFormat {
  name: string
  id: number
  fields: Array<NativeField>
}

/** What the reader sends to JS: a batch, or a failure. */
export interface NativeMessage {
  batch?: Buffer
  samples: number
  lost: number
  errorCode?: string
  errorMessage?: string
}

/** Options from JS. Types are checked by the TypeScript layer; ranges by the core. */
export interface NativeOptions {
  ringBytes?: number
  wakeupBytes?: number
  maxDelayMs?: number
  highWaterBytes?: number
  mountTracefs?: boolean
}

/** Totals, as plain numbers (counts stay far below 2^53). */
export interface NativeStats {
  samples: number
  lost: number
  lostByCpu: Array<NativeCpuCount>
  lostByTracepoint: Array<number>
  generated?: number
  batches: number
  bytes: number
  malformed: number
  errors: number
  exactLoss: boolean
}

/** Parses the text of a tracepoint `format` file. */
export declare function parseFormat(text: string): NativeFormat

/** Whether /proc/PID exists. */
export declare function processExists(pid: number): boolean

/** Test seam: replaces the injected system call failures. */
export declare function setTestFaults(faults: TestFaults): void

/** Test seam: system call failures to inject (process-wide; see `sys::seam`). */
export interface TestFaults {
  rejectFormatLost?: boolean
  rejectClockid?: boolean
  mmapErrno?: number
}

/** Parsed format of a tracepoint of the running kernel. */
export declare function tracepointFormat(name: string, mount?: boolean | undefined | null): NativeFormat
