// Compile-time check that the implementation in src/ matches the documented surface in
// index.d.ts (this file has no runtime tests; `tsc` fails if they drift apart).
import type * as Api from '../index'
import * as impl from '../src/index'

export const conformance: Pick<typeof Api, 'Observer' | 'Process' | 'ObsError' | 'parseFormat' | 'NamespaceKind'> = impl
