import type { NamespaceKind as Kind } from '../index'
import { ObsError, native } from './errors'
import { binding } from './native'

export const NamespaceKind = Object.freeze({
  Network: 'net',
  IPC: 'ipc',
  UTS: 'uts',
  Mount: 'mnt',
  PID: 'pid',
  User: 'user',
  Cgroup: 'cgroup',
  Time: 'time',
} as const)

const KINDS = new Set<string>(Object.values(NamespaceKind))

export class Process {
  readonly pid: number

  constructor(pid: number) {
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x7fffffff) {
      throw new ObsError('ERR_INVALID_OPTION', `pid must be a positive integer, got ${String(pid)}`)
    }
    if (!binding.processExists(pid)) {
      throw new ObsError('ERR_NO_PROCESS', `no process with pid ${pid} (it exited, or lives in another pid namespace)`)
    }
    this.pid = pid
  }

  namespace(kind: Kind): number {
    if (!KINDS.has(kind)) {
      throw new ObsError(
        'ERR_INVALID_OPTION',
        `unknown namespace kind ${JSON.stringify(kind)}: use NamespaceKind (${[...KINDS].join(', ')})`,
      )
    }
    return native(() => binding.namespaceInode(this.pid, kind))
  }
}
