// The format parser and decoder, on format files copied from the kernel (fixtures/formats).
import test from 'ava'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ObsError, parseFormat } from 'linux-obs'
import { repoRoot } from './helpers/util'

const fixture = (name: string): string => readFileSync(join(repoRoot, 'fixtures', 'formats', `${name}.format`), 'utf8')

test('sched_process_exec: ids, offsets, __data_loc string', (t) => {
  const f = parseFormat(fixture('sched_sched_process_exec'))
  t.is(f.name, 'sched_process_exec')
  t.true(Number.isInteger(f.id) && f.id > 0)
  t.deepEqual(
    f.fields.map((x) => [x.name, x.offset, x.size, x.signed, x.kind, x.common]),
    [
      ['common_type', 0, 2, false, 'int', true],
      ['common_flags', 2, 1, false, 'int', true],
      ['common_preempt_count', 3, 1, false, 'int', true],
      ['common_pid', 4, 4, true, 'int', true],
      ['filename', 8, 4, false, 'data_loc', false],
      ['pid', 12, 4, true, 'int', false],
      ['old_pid', 16, 4, true, 'int', false],
    ],
  )
  t.true(f.fields[4].isString)
  t.is(f.fields[4].type, 'char')
})

test('sched_switch: char arrays and 8-byte long', (t) => {
  const f = parseFormat(fixture('sched_sched_switch'))
  const byName = new Map(f.fields.map((x) => [x.name, x]))
  t.like(byName.get('prev_comm'), { kind: 'char_array', offset: 8, size: 16, isString: true })
  t.like(byName.get('prev_state'), { kind: 'int', size: 8, signed: true })
  t.like(byName.get('next_pid'), { kind: 'int', offset: 56, size: 4, signed: true })
})

test('sys_enter_openat: syscall fields are 8 bytes whatever the C type', (t) => {
  const f = parseFormat(fixture('syscalls_sys_enter_openat'))
  const byName = new Map(f.fields.map((x) => [x.name, x]))
  t.like(byName.get('dfd'), { type: 'int', size: 8, signed: false, kind: 'int' })
  t.like(byName.get('filename'), { type: 'const char *', kind: 'pointer', isString: false })
  t.like(byName.get('__syscall_nr'), { size: 4, signed: true })
})

test('raw_syscalls:sys_enter: args array of six 8-byte elements', (t) => {
  const f = parseFormat(fixture('raw_syscalls_sys_enter'))
  t.like(
    f.fields.find((x) => x.name === 'args'),
    { kind: 'array', size: 48, elementSize: 8 },
  )
})

/** Builds a raw record for a format from field values (little-endian, as on x86-64/arm64). */
function execRecord(filename: Uint8Array, pid: number, oldPid: number, pad = 0): Uint8Array {
  const len = 20 + filename.length + 1
  const b = new Uint8Array(len + pad)
  const v = new DataView(b.buffer)
  v.setUint16(0, 365, true)
  v.setInt32(4, pid, true)
  v.setUint32(8, (20 & 0xffff) | ((filename.length + 1) << 16), true) // __data_loc: offset | len << 16
  v.setInt32(12, pid, true)
  v.setInt32(16, oldPid, true)
  b.set(filename, 20)
  b[20 + filename.length] = 0
  b.fill(0xaa, len) // stale bytes after the record, as the kernel leaves them
  return b
}

test('decode: exec record, including invalid UTF-8 replaced as TextDecoder does', (t) => {
  const f = parseFormat(fixture('sched_sched_process_exec'))
  const name = Buffer.from('/tmp/caf\xe9-\xff.bin', 'latin1')
  const rec = execRecord(name, 4242, 4241, 5)
  const fields = f.decode(rec)
  t.deepEqual(Object.keys(fields), ['filename', 'pid', 'old_pid'])
  t.is(fields.filename, new TextDecoder().decode(name))
  t.true((fields.filename as string).includes('\ufffd'))
  t.is(fields.pid, 4242)
  t.is(fields.old_pid, 4241)
  const ascii = f.decode(execRecord(new TextEncoder().encode('/usr/bin/true'), 1, 1))
  t.is(ascii.filename, '/usr/bin/true')
})

test('decode: sched_switch comm stops at the first NUL; 8-byte fields are bigint', (t) => {
  const f = parseFormat(fixture('sched_sched_switch'))
  const b = new Uint8Array(64)
  const v = new DataView(b.buffer)
  b.set(new TextEncoder().encode('kworker/0:1'), 8)
  b.set(new TextEncoder().encode('junk'), 20) // after the NUL at 19
  v.setInt32(24, 17, true)
  v.setInt32(28, 120, true)
  v.setBigInt64(32, 1n, true)
  b.set(new TextEncoder().encode('swapper/0'), 40)
  v.setInt32(56, 0, true)
  v.setInt32(60, -1, true)
  const fields = f.decode(b)
  t.is(fields.prev_comm, 'kworker/0:1')
  t.is(fields.prev_pid, 17)
  t.is(fields.prev_state, 1n)
  t.is(fields.next_comm, 'swapper/0')
  t.is(fields.next_prio, -1)
})

test('decode: a truncated record or a __data_loc outside it is ERR_MALFORMED_RECORD naming the field', (t) => {
  const f = parseFormat(fixture('sched_sched_process_exec'))
  const rec = execRecord(new TextEncoder().encode('/bin/true'), 1, 1)
  const short = t.throws(() => f.decode(rec.subarray(0, 10)), { instanceOf: ObsError })
  t.is(short?.code, 'ERR_MALFORMED_RECORD')
  t.regex(short?.message ?? '', /field 'filename' .*past the end of a 10-byte record/)
  const bad = rec.slice()
  new DataView(bad.buffer).setUint32(8, 20 | (200 << 16), true)
  const outside = t.throws(() => f.decode(bad), { instanceOf: ObsError })
  t.is(outside?.code, 'ERR_MALFORMED_RECORD')
  t.regex(outside?.message ?? '', /field 'filename'/)
})

test('malformed format files give ERR_INVALID_FORMAT with the line and the reason', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /missing 'name:'/],
    ['name: x\nID: abc\n', /ID is not a number/],
    ['name: x\nID: 1\nformat:\n\tfield:int a;\toffset:0;\tsize:3;\tsigned:1;\n', /line 4: field a: a int cannot be 3 bytes/],
    ['name: x\nID: 1\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\n', /missing signed/],
    ['name: x\nID: 1\nformat:\n\tnonsense here\n', /unexpected line/],
  ]
  for (const [text, want] of cases) {
    const e = t.throws(() => parseFormat(text), { instanceOf: ObsError })
    t.is(e?.code, 'ERR_INVALID_FORMAT')
    t.regex(e?.message ?? '', want)
  }
  const e = t.throws(() => parseFormat(42 as unknown as string))
  t.is((e as ObsError).code, 'ERR_INVALID_FORMAT')
})

test('fields named like Object.prototype members are plain own properties', (t) => {
  const text =
    'name: odd\nID: 9\nformat:\n' +
    '\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n' +
    '\tfield:int __proto__;\toffset:4;\tsize:4;\tsigned:1;\n' +
    '\tfield:int constructor;\toffset:8;\tsize:4;\tsigned:1;\n' +
    '\tfield:int length;\toffset:12;\tsize:4;\tsigned:1;\n' +
    '\tfield:int function;\toffset:16;\tsize:4;\tsigned:1;\n' +
    '\tfield:int new;\toffset:20;\tsize:4;\tsigned:1;\n'
  const f = parseFormat(text)
  const b = new Uint8Array(24)
  const v = new DataView(b.buffer)
  v.setInt32(4, 1, true)
  v.setInt32(8, 2, true)
  v.setInt32(12, 3, true)
  const fields = f.decode(b)
  t.deepEqual(Object.keys(fields), ['__proto__', 'constructor', 'length', 'function', 'new'])
  t.is(fields.function, 0)
  t.is(fields.new, 0)
  t.is(Object.getOwnPropertyDescriptor(fields, '__proto__')?.value, 1)
  t.is(Object.getPrototypeOf(fields), Object.prototype)
  t.is(fields['constructor'] as unknown, 2)
  t.false('common_type' in fields)
})
