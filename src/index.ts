export { ObsError } from './errors'
export { parseFormat } from './format'
export { Observer } from './observer'
export { NamespaceKind, Process } from './process'
