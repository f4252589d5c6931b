// Writes fixtures/records/vectors.json: hand-built raw tracepoint records with the values they
// must decode to (or the field they must be rejected for). Both decoders (Rust core and the
// TypeScript layer) are tested against this file. The records are built here by an encoder
// that knows nothing of either decoder; expected values are written out literally.
//
//   node scripts/gen-record-vectors.mjs
import { writeFileSync } from 'node:fs'

const COMMON =
  '\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n' +
  '\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n' +
  '\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n' +
  '\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n'

const format = (name, fields) =>
  `name: ${name}\nID: 999\nformat:\n${COMMON}${fields.map((f) => `\tfield:${f};\n`).join('')}\nprint fmt: "test"\n`

/** A little-endian record builder. */
class Rec {
  constructor(size) {
    this.b = Buffer.alloc(size)
    this.b.writeUInt16LE(999, 0)
    this.b.writeInt32LE(1234, 4)
  }
  u8(at, v) { this.b.writeUInt8(v, at); return this }
  u16(at, v) { this.b.writeUInt16LE(v, at); return this }
  i32(at, v) { this.b.writeInt32LE(v, at); return this }
  u32(at, v) { this.b.writeUInt32LE(v >>> 0, at); return this }
  u64(at, v) { this.b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), at); return this }
  i64(at, v) { this.b.writeBigInt64LE(BigInt(v), at); return this }
  bytes(at, arr) { Buffer.from(arr).copy(this.b, at); return this }
  /** __data_loc: offset in the low 16 bits, length in the high 16 bits. */
  loc(at, offset, length) { return this.u32(at, (offset & 0xffff) | (length << 16)) }
  hex() { return this.b.toString('hex') }
}

const vectors = []
const add = (name, fmt, rec, expected) => vectors.push({ name, format: fmt, raw: rec.hex(), expected })
const reject = (name, fmt, rec, field) => vectors.push({ name, format: fmt, raw: rec.hex(), error: { field } })

// Integers of every width and sign; bool; pointer above 2^53.
{
  const f = format('ints', [
    'u8 a;\toffset:8;\tsize:1;\tsigned:0',
    's8 b;\toffset:9;\tsize:1;\tsigned:1',
    'u16 c;\toffset:10;\tsize:2;\tsigned:0',
    's16 d;\toffset:12;\tsize:2;\tsigned:1',
    'bool flag;\toffset:14;\tsize:1;\tsigned:0',
    'u32 e;\toffset:16;\tsize:4;\tsigned:0',
    's32 g;\toffset:20;\tsize:4;\tsigned:1',
    'u64 h;\toffset:24;\tsize:8;\tsigned:0',
    's64 i;\toffset:32;\tsize:8;\tsigned:1',
    'void * ptr;\toffset:40;\tsize:8;\tsigned:0',
    'int dfd;\toffset:48;\tsize:8;\tsigned:0',
  ])
  const r = new Rec(56).u8(8, 255).u8(9, 0x80).u16(10, 65535).u16(12, 0x8000).u8(14, 1)
    .u32(16, 0xffffffff).i32(20, -2).u64(24, 18446744073709551615n).i64(32, -9007199254740993n)
    .u64(40, 0xffff888012345678n).u64(48, 4294967196n)
  add('integers of every width and sign, bool, pointer, syscall-style 8-byte int', f, r, {
    a: { type: 'number', value: 255 },
    b: { type: 'number', value: -128 },
    c: { type: 'number', value: 65535 },
    d: { type: 'number', value: -32768 },
    flag: { type: 'boolean', value: true },
    e: { type: 'number', value: 4294967295 },
    g: { type: 'number', value: -2 },
    h: { type: 'bigint', value: '18446744073709551615' },
    i: { type: 'bigint', value: '-9007199254740993' },
    ptr: { type: 'bigint', value: '18446612682375452280' },
    dfd: { type: 'bigint', value: '4294967196' },
  })
}

// Fixed arrays: char[N] string, byte array, u16/u32/u64 arrays.
{
  const f = format('arrays', [
    'char comm[16];\toffset:8;\tsize:16;\tsigned:0',
    '__u8 saddr[4];\toffset:24;\tsize:4;\tsigned:0',
    'u16 ports[2];\toffset:28;\tsize:4;\tsigned:0',
    'int vals[3];\toffset:32;\tsize:12;\tsigned:1',
    'unsigned long args[2];\toffset:48;\tsize:16;\tsigned:0',
  ])
  const r = new Rec(64).bytes(8, [...Buffer.from('kworker/1:2'), 0, ...Buffer.from('junk')])
    .bytes(24, [127, 0, 0, 1]).u16(28, 80).u16(30, 443).i32(32, -1).i32(36, 0).i32(40, 7)
    .u64(48, 1).u64(56, 0xffffffffffffff9cn)
  add('fixed arrays', f, r, {
    comm: { type: 'string', value: 'kworker/1:2' },
    saddr: { type: 'bytes', value: '7f000001' },
    ports: { type: 'number[]', value: [80, 443] },
    vals: { type: 'number[]', value: [-1, 0, 7] },
    args: { type: 'bigint[]', value: ['1', '18446744073709551516'] },
  })
}

// __data_loc: strings (empty, invalid UTF-8), and arrays of u8, unsigned int, u64, cpumask_t.
{
  const f = format('data_loc', [
    '__data_loc char[] empty;\toffset:8;\tsize:4;\tsigned:0',
    '__data_loc char[] path;\toffset:12;\tsize:4;\tsigned:0',
    '__data_loc u8[] buf;\toffset:16;\tsize:4;\tsigned:0',
    '__data_loc unsigned int[] ids;\toffset:20;\tsize:4;\tsigned:0',
    '__data_loc u64[] addrs;\toffset:24;\tsize:4;\tsigned:0',
    '__data_loc cpumask_t mask;\toffset:28;\tsize:4;\tsigned:0',
  ])
  const path = [...Buffer.from('/tmp/caf'), 0xe9, ...Buffer.from('-'), 0xff, 0xfe, ...Buffer.from('.bin'), 0]
  const r = new Rec(32 + 1 + path.length + 3 + 8 + 16 + 8 + 8)
  let at = 32
  r.loc(8, at, 1).u8(at, 0); at += 1
  r.loc(12, at, path.length).bytes(at, path); at += path.length
  r.loc(16, at, 3).bytes(at, [1, 2, 3]); at += 3
  at = 56 // align the wider arrays
  r.loc(20, at, 8).u32(at, 10).u32(at + 4, 4000000000); at += 8
  r.loc(24, at, 16).u64(at, 1).u64(at + 8, 0xffffffff81000000n); at += 16
  r.loc(28, at, 8).u64(at, 0b101)
  add('__data_loc strings and arrays', f, r, {
    empty: { type: 'string', value: '' },
    path: { type: 'string', value: '/tmp/caf\ufffd-\ufffd\ufffd.bin' },
    buf: { type: 'bytes', value: '010203' },
    ids: { type: 'number[]', value: [10, 4000000000] },
    addrs: { type: 'bigint[]', value: ['1', '18446744071578845184'] },
    mask: { type: 'bigint[]', value: ['5'] },
  })
}

// __rel_loc: the offset counts from the end of the field itself.
{
  const f = format('rel_loc', [
    '__rel_loc char[] name;\toffset:8;\tsize:4;\tsigned:0',
    '__rel_loc u32[] vals;\toffset:12;\tsize:4;\tsigned:0',
  ])
  const r = new Rec(32)
  r.loc(8, 24 - 12, 4).bytes(24, [...Buffer.from('abc'), 0]) // data at 24, field ends at 12
  r.loc(12, 16 - 16, 8).u32(16, 7).u32(20, 4294967295) // data at 16, field ends at 16
  add('__rel_loc string and array', f, r, {
    name: { type: 'string', value: 'abc' },
    vals: { type: 'number[]', value: [7, 4294967295] },
  })
}

// Flexible arrays run to the end of the record, cut to whole elements; char ones stop at NUL.
{
  const f = format('flex', ['int len;\toffset:8;\tsize:4;\tsigned:1', 'u32 buf[];\toffset:12;\tsize:0;\tsigned:0'])
  const r = new Rec(26).i32(8, 3).u32(12, 1).u32(16, 2).u32(20, 3).u16(24, 0xaaaa) // 2 stray bytes
  add('flexible u32 array with trailing padding', f, r, {
    len: { type: 'number', value: 3 },
    buf: { type: 'number[]', value: [1, 2, 3] },
  })
  const g = format('print', ['unsigned long ip;\toffset:8;\tsize:8;\tsigned:0', 'char buf[];\toffset:16;\tsize:0;\tsigned:0'])
  const s = new Rec(28).u64(8, 0xffffffff81234567n).bytes(16, [...Buffer.from('hello\n'), 0, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa])
  add('flexible char array (trace_marker style)', g, s, {
    ip: { type: 'bigint', value: '18446744071581156711' },
    buf: { type: 'string', value: 'hello\n' },
  })
}

// Malformed: a record too short for a fixed field, a __data_loc past the end, a __rel_loc past
// the end, a __data_loc whose own 4 bytes are missing.
{
  const f = format('short', ['int a;\toffset:8;\tsize:4;\tsigned:1', 'u64 b;\toffset:16;\tsize:8;\tsigned:0'])
  reject('fixed field past the end', f, new Rec(20).i32(8, 1), 'b')
  const d = format('dl', ['__data_loc char[] s;\toffset:8;\tsize:4;\tsigned:0'])
  reject('__data_loc pointing past the end', d, new Rec(16).loc(8, 12, 200), 's')
  reject('__data_loc offset past the end', d, new Rec(16).loc(8, 0xfff0, 2), 's')
  reject('__data_loc field itself missing', d, new Rec(10), 's')
  const rl = format('rl', ['__rel_loc char[] s;\toffset:8;\tsize:4;\tsigned:0'])
  reject('__rel_loc pointing past the end', rl, new Rec(16).loc(8, 4, 4), 's')
}

writeFileSync(new URL('../fixtures/records/vectors.json', import.meta.url), JSON.stringify(vectors, null, 1) + '\n')
console.log(`wrote ${vectors.length} vectors`)
