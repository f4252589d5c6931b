import type { ErrorCode } from '../index'

/** Every error linux-obs throws or rejects with; `code` is stable. */
export class ObsError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'ObsError'
  }
}

const CODE_PREFIX = /^\[(ERR_[A-Z_]+)\] /

/**
 * Turns what the native layer threw into an ObsError. Synchronous native calls set `code`;
 * async tasks (open/close) prefix the message with `[ERR_*]`.
 */
export function fromNative(e: unknown): ObsError {
  if (e instanceof ObsError) return e
  const err = e as { code?: unknown; message?: unknown }
  const message = typeof err?.message === 'string' ? err.message : String(e)
  const prefixed = CODE_PREFIX.exec(message)
  if (prefixed) return new ObsError(prefixed[1] as ErrorCode, message.slice(prefixed[0].length))
  if (typeof err?.code === 'string' && err.code.startsWith('ERR_') && !err.code.startsWith('ERR_NAPI')) {
    return new ObsError(err.code as ErrorCode, message)
  }
  return new ObsError('ERR_INTERNAL', message, { cause: e })
}

/** Calls a native function, translating its errors. */
export function native<T>(fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    throw fromNative(e)
  }
}
