//! Inputs found by the fuzz targets in `crates/linux-obs-core/fuzz/` (run with
//! `scripts/fuzz.sh`), replayed through the same code paths: every crash the fuzzers found,
//! and a few hand-picked nasty inputs that were interesting while fuzzing.
//!
//! Each `*_crash_*` test reproduces a bug found by fuzzing (a panic, or an over-read that an
//! AddressSanitizer build reports, or a wrong result), fixed in 96bde0b and d061a84. The
//! other tests are nasty inputs that were interesting while fuzzing.

use linux_obs_core::batch::{self, BatchBuilder, RecordKind, LOST_SOURCE};
use linux_obs_core::ring::{Ring, RingError, RingMemory};
use linux_obs_core::{Format, Value};
use std::alloc::Layout;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;

const EXEC: &str = include_str!("../../../fixtures/formats/sched_sched_process_exec.format");

/// What the `format_parse` and `decode` targets do with format text: parse it (lossy UTF-8)
/// without panicking; failures are `ERR_INVALID_FORMAT`.
fn parse_lossy(input: &[u8]) -> Result<Format, linux_obs_core::Error> {
    let text = String::from_utf8_lossy(input).into_owned();
    match catch_unwind(|| Format::parse(&text)) {
        Ok(result) => {
            if let Err(e) = &result {
                assert_eq!(e.code(), "ERR_INVALID_FORMAT", "{e}");
            }
            result
        }
        Err(_) => panic!("Format::parse panicked on {input:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// format_parse / decode
// ---------------------------------------------------------------------------------------------

/// format_parse crash (artifacts/format_parse/minimized-from-b62bf3a5...): a non-ASCII
/// character (here U+FFFD from the lossy conversion of 0xff) right before the field name made
/// `parse_field` slice the declaration inside that character. Must be an error, not a panic.
#[test]
fn format_parse_crash_non_ascii_before_field_name() {
    let input = b"format:\n\tfield:t\x00\xffpnt;\toffset:3;size:1;\tsigned:0;\n";
    assert!(parse_lossy(input).is_err());
}

/// decode crash (artifacts/decode/minimized-from-cd59a23b...): the same bug reached from the
/// `decode` target (format text up to the first NUL; this input has no record).
#[test]
fn decode_crash_non_ascii_before_field_name() {
    let input = b"format:\nfield:l\x9c;offset:3;size:1;signed:0;";
    assert!(parse_lossy(input).is_err());
}

/// The same bug with valid UTF-8, in a complete format file: declarations whose last
/// non-identifier character is multi-byte. Either an error or a parse, never a panic; when it
/// parses, the field name is the trailing identifier.
#[test]
fn format_parse_crash_valid_utf8_declarations() {
    for decl in [
        "int é",
        "int éa",
        "unsigned char comm_é[16]",
        "int\u{a0}pid",
        "u8 ü[]",
        "int 日本",
    ] {
        let text =
            format!("name: t\nID: 1\nformat:\n\tfield:{decl};\toffset:8;\tsize:4;\tsigned:1;\n");
        if let Ok(fmt) = parse_lossy(text.as_bytes()) {
            let name = &fmt.fields[0].name;
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{decl:?} gave field {name:?}"
            );
        }
    }
}

/// format_parse and decode finding (artifacts/format_parse/minimized-from-e2d8b1e1...,
/// artifacts/decode/minimized-from-70244bd4...): `__data_loc []h` parses, giving a field with
/// an empty `type_name`: `parse_field` rejects an empty type ("no type in declaration")
/// before it strips the dynamic array's `[]`, not after. Must be an error.
#[test]
fn format_parse_crash_dynamic_array_without_a_type() {
    let inputs: [&[u8]; 4] = [
        b"name:\nID:3\nformat:\nfield:__data_loc []h;offset:4;size:4;signed:1",
        b"ID: 0\nformat:\nname:\nfield:__data_loc []c;offset:4;size:4;signed:0",
        b"name: t\nID: 1\nformat:\n\tfield:__data_loc  [] comm;\toffset:8;\tsize:4;\tsigned:0;\n",
        b"name: t\nID: 1\nformat:\n\tfield:__rel_loc [] v;\toffset:8;\tsize:4;\tsigned:0;\n",
    ];
    for input in inputs {
        if let Ok(fmt) = parse_lossy(input) {
            panic!(
                "{:?} parsed as {:?}",
                String::from_utf8_lossy(input),
                fmt.fields[0]
            );
        }
    }
}

#[test]
fn format_parse_numbers_out_of_range_are_errors() {
    for field in [
        "int a;\toffset:65536;\tsize:4;\tsigned:1;",
        "int a;\toffset:18446744073709551615;\tsize:4;\tsigned:1;",
        "int a;\toffset:99999999999999999999999;\tsize:4;\tsigned:1;",
        "int a;\toffset:-1;\tsize:4;\tsigned:1;",
        "char s[4];\toffset:0;\tsize:65536;\tsigned:0;",
        "u64 a[3];\toffset:0;\tsize:20;\tsigned:0;",
        "struct x v[2];\toffset:0;\tsize:6;\tsigned:0;",
        "__data_loc char[] s;\toffset:0;\tsize:0;\tsigned:0;",
        "int a]\toffset:0;\tsize:4;\tsigned:1;",
        ";;;;",
        "field:",
    ] {
        let text = format!("name: t\nID: 1\nformat:\n\tfield:{field}\n");
        assert!(parse_lossy(text.as_bytes()).is_err(), "{field:?}");
    }
    assert!(parse_lossy(b"name: t\nID: 18446744073709551616\nformat:\n").is_err());
    assert!(parse_lossy(b"").is_err());
    assert!(parse_lossy(b"\xff\xfe\x00").is_err());
}

/// Formats at the limits: a field at offset 65535, a 65535-byte char array, arrays whose
/// declared length disagrees with their size. They parse; decoding a short record names the
/// field that does not fit.
#[test]
fn decode_fields_at_the_limits() {
    let text = "name: t\nID: 1\nformat:\n\
        \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
        \tfield:u64 a[3];\toffset:8;\tsize:16;\tsigned:0;\n\
        \tfield:char big[65535];\toffset:0;\tsize:65535;\tsigned:0;\n\
        \tfield:u8 last;\toffset:65535;\tsize:1;\tsigned:0;\n";
    let fmt = parse_lossy(text.as_bytes()).unwrap();
    assert_eq!(fmt.field("a").unwrap().element_size, 8); // 16 % 3 != 0: from the type
    let err = fmt.decode(&[0u8; 64]).unwrap_err();
    assert_eq!(err.code(), "ERR_MALFORMED_RECORD");
    assert!(err.to_string().contains("'big'"), "{err}");
    let record = vec![0x41u8; 65536];
    let values = fmt.decode(&record).unwrap();
    assert_eq!(values[1], ("big", Value::Str("A".repeat(65535))));
    assert_eq!(values[2], ("last", Value::Unsigned(0x41)));
}

/// Dynamic fields pointing at the extremes: offset and length 0xffff, a `__rel_loc` whose
/// offset counts from a field at 65532. Errors name the field; nothing is read outside.
#[test]
fn decode_dynamic_fields_pointing_anywhere() {
    let text = "name: t\nID: 1\nformat:\n\
        \tfield:__data_loc char[] s;\toffset:0;\tsize:4;\tsigned:0;\n\
        \tfield:__rel_loc u32[] r;\toffset:4;\tsize:4;\tsigned:0;\n\
        \tfield:u64 tail[];\toffset:8;\tsize:0;\tsigned:0;\n";
    let fmt = parse_lossy(text.as_bytes()).unwrap();
    let mut rec = vec![0u8; 23]; // 8 + 15: the flexible u64 array gets one element
    for (loc, want_ok) in [
        (0u32, true),            // empty string at 0
        (8 | (15 << 16), true),  // the last 15 bytes
        (8 | (16 << 16), false), // one past the end
        (0xffff | (0xffff << 16), false),
        (23, true),  // empty, right at the end
        (24, false), // empty, one past the end
    ] {
        rec[0..4].copy_from_slice(&loc.to_ne_bytes());
        rec[4..8].copy_from_slice(&0u32.to_ne_bytes());
        let got = fmt.decode(&rec);
        assert_eq!(got.is_ok(), want_ok, "loc {loc:#x}: {got:?}");
        assert_eq!(fmt.validate(&rec).is_ok(), want_ok, "loc {loc:#x}");
        if let Ok(values) = got {
            assert_eq!(values[2], ("tail", Value::Array(vec![Value::Unsigned(0)])));
        }
    }
    // __rel_loc: offset 11 from the end of the field (8) is byte 19; 4 bytes fit, 8 do not.
    rec[0..4].copy_from_slice(&0u32.to_ne_bytes());
    rec[4..8].copy_from_slice(&(11u32 | (4 << 16)).to_ne_bytes());
    rec[19..23].copy_from_slice(&7u32.to_ne_bytes());
    let values = fmt.decode(&rec).unwrap();
    assert_eq!(values[1], ("r", Value::Array(vec![Value::Unsigned(7)])));
    rec[4..8].copy_from_slice(&(11u32 | (8 << 16)).to_ne_bytes());
    let err = fmt.decode(&rec).unwrap_err();
    assert!(err.to_string().contains("'r'"), "{err}");
    // A __rel_loc at the highest offset with the largest relative offset.
    let far =
        "name: t\nID: 1\nformat:\n\tfield:__rel_loc char[] r;\toffset:65531;\tsize:4;\tsigned:0;\n";
    let fmt = parse_lossy(far.as_bytes()).unwrap();
    let mut rec = vec![0u8; 65535];
    rec[65531..].copy_from_slice(&0xffff_ffffu32.to_ne_bytes());
    assert_eq!(fmt.decode(&rec).unwrap_err().code(), "ERR_MALFORMED_RECORD");
}

/// `validate()` checks every field, `decode()` only the non-`common_*` ones: the fuzzer's
/// oracle is that validate ok ⇒ decode ok, and that they disagree only when a `common_*`
/// field is what does not fit (a format whose common fields come after the others).
#[test]
fn validate_and_decode_disagree_only_on_common_fields() {
    let text = "name: t\nID: 1\nformat:\n\
        \tfield:int v;\toffset:0;\tsize:4;\tsigned:1;\n\
        \tfield:int common_pid;\toffset:8;\tsize:4;\tsigned:1;\n";
    let fmt = parse_lossy(text.as_bytes()).unwrap();
    for len in 0..16 {
        let rec = vec![0u8; len];
        let (v, d) = (fmt.validate(&rec), fmt.decode(&rec));
        if v.is_ok() {
            assert!(d.is_ok(), "len {len}");
        }
        if let (Ok(_), Err(e)) = (&d, &v) {
            assert!(e.to_string().contains("'common_pid'"), "len {len}: {e}");
        }
    }
    // Real formats put the common fields first: there the two always agree.
    let exec = Format::parse(EXEC).unwrap();
    for len in 0..32 {
        let rec = vec![0u8; len];
        assert_eq!(
            exec.validate(&rec).is_ok(),
            exec.decode(&rec).is_ok(),
            "len {len}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ring
// ---------------------------------------------------------------------------------------------

const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
const DATA_OFFSET: usize = 1040;
const DATA_SIZE: usize = 1048;
const PAGE: usize = 4096;

/// An exact-size, 8-aligned heap ring (header page + data), as the `ring` target uses, so an
/// AddressSanitizer build reports any read past its end.
struct HeapRing {
    ptr: NonNull<u8>,
    len: usize,
}

impl HeapRing {
    /// A ring whose header says the data area is `data_size` bytes at `PAGE`, in `len` bytes.
    fn new(len: usize, data_size: u64) -> HeapRing {
        let layout = Layout::from_size_align(len, 8).unwrap();
        // SAFETY: `len` is at least PAGE, so the layout is not zero-sized.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
        let ring = HeapRing { ptr, len };
        ring.set(DATA_OFFSET, PAGE as u64);
        ring.set(DATA_SIZE, data_size);
        ring
    }
    fn get(&self, at: usize) -> u64 {
        assert!(at + 8 <= self.len && at.is_multiple_of(8));
        // SAFETY: in bounds and 8-aligned (asserted; the allocation is 8-aligned).
        unsafe { self.ptr.as_ptr().add(at).cast::<u64>().read() }
    }
    fn set(&self, at: usize, v: u64) {
        assert!(at + 8 <= self.len && at.is_multiple_of(8));
        // SAFETY: in bounds and 8-aligned (asserted).
        unsafe { self.ptr.as_ptr().add(at).cast::<u64>().write(v) }
    }
    fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.len);
        // SAFETY: in bounds (asserted); `bytes` is not inside this allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(at), bytes.len())
        }
    }
    /// Writes `bytes` at ring position `pos` of a `data_size`-byte data area, wrapping.
    fn write_wrapping(&self, data_size: usize, pos: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let at = PAGE + (pos as usize).wrapping_add(i) % data_size;
            self.write(at, std::slice::from_ref(b));
        }
    }
}

impl Drop for HeapRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe {
            std::alloc::dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align(self.len, 8).unwrap(),
            )
        }
    }
}

impl RingMemory for &HeapRing {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn len(&self) -> usize {
        self.len
    }
}

fn header(ty: u32, size: u16) -> Vec<u8> {
    let mut h = ty.to_ne_bytes().to_vec();
    h.extend_from_slice(&0u16.to_ne_bytes());
    h.extend_from_slice(&size.to_ne_bytes());
    h
}

/// Drains with `budget`, returning the records, the outcome, and data_tail afterwards.
fn drain(mem: &HeapRing, budget: usize) -> (Vec<Vec<u8>>, linux_obs_core::ring::Drained, u64) {
    let mut ring = Ring::new(mem, PAGE).expect("usable geometry");
    let mut got = Vec::new();
    let d = catch_unwind(AssertUnwindSafe(|| {
        ring.drain(budget, |r| got.push(r.to_vec()))
    }))
    .unwrap_or_else(|_| {
        panic!(
            "drain panicked (head {}, tail {})",
            mem.get(DATA_HEAD),
            mem.get(DATA_TAIL)
        )
    });
    (got, d, mem.get(DATA_TAIL))
}

/// ring crash (artifacts/ring/crash-da39a3ee..., the empty input, which lays out a ring with a
/// 1-byte data area): `Ring::new` accepts data areas of 1, 2 or 4 bytes, and once a byte is
/// published `copy_out` copies an 8-byte record header out of them, reading past the data area
/// (AddressSanitizer: heap-buffer-overflow, READ of size 7 in `Ring::copy_out` from
/// `Ring::drain`, ring.rs). Either such a ring is refused, or what drain reports must not
/// depend on bytes outside the data area (here: 8 canary bytes right after it).
#[test]
fn ring_crash_data_area_smaller_than_a_header() {
    for data_size in [1usize, 2, 4] {
        let mut outcomes = Vec::new();
        for canary in [0x00u8, 0xff] {
            // The data area plus 8 bytes that belong to the allocation but not to the ring.
            let mem = HeapRing::new(PAGE + data_size + 8, data_size as u64);
            mem.write(PAGE + data_size, &[canary; 8]);
            mem.set(DATA_TAIL, 0);
            mem.set(DATA_HEAD, data_size as u64);
            let Some(mut ring) = Ring::new(&mem, PAGE) else {
                outcomes.push(None);
                continue;
            };
            let mut got = Vec::new();
            let d = ring.drain(usize::MAX, |r| got.push(r.to_vec()));
            assert_eq!(mem.get(DATA_TAIL), data_size as u64);
            outcomes.push(Some((got, d)));
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "a {data_size}-byte data area: drain read bytes outside it"
        );
    }
}

/// ring crash (found with overflow checks on, `cargo fuzz run -a ring`): data_tail near
/// u64::MAX with data_head wrapped past zero but within one ring of it. The head check uses
/// `wrapping_sub` but the loop does `head - tail`, `tail - start` and `tail += size`, which
/// overflow (a panic in debug builds, ring.rs drain). A corrupt data_head gets there: the
/// first drain resynchronises data_tail to it, the next sees the kernel's real head.
#[test]
fn ring_crash_positions_wrapping_past_u64_max() {
    let mem = HeapRing::new(PAGE + 512, 512);
    let tail = u64::MAX - 7;
    let mut rec = header(9, 16);
    rec.extend_from_slice(&[1u8; 8]);
    mem.write_wrapping(512, tail, &rec);
    mem.set(DATA_TAIL, tail);
    mem.set(DATA_HEAD, tail.wrapping_add(16));
    let (got, d, new_tail) = drain(&mem, usize::MAX);
    assert_eq!(new_tail, 8, "data_tail must end at data_head");
    if d.error.is_none() {
        assert_eq!(got, vec![rec]);
    }
}

/// The corrupt rings of the issue: a header claiming size 0 (or 4, 12, more than the ring),
/// head behind tail, head more than a ring ahead. Drain hands out what precedes the
/// corruption, reports it, and leaves data_tail == data_head; the next drain is clean.
#[test]
fn ring_corrupt_headers_resynchronise() {
    for bad in [0u16, 4, 12, 520, 4096, u16::MAX] {
        let mem = HeapRing::new(PAGE + 512, 512);
        let mut bytes = header(9, 16);
        bytes.extend_from_slice(&[1; 8]);
        bytes.extend(header(9, bad));
        bytes.extend_from_slice(&[2; 8]);
        mem.write_wrapping(512, 0, &bytes);
        mem.set(DATA_HEAD, 32);
        let (got, d, tail) = drain(&mem, usize::MAX);
        assert_eq!(got.len(), 1, "size {bad}");
        assert_eq!(
            d.error,
            Some(RingError::BadRecord {
                position: 16,
                size: bad
            })
        );
        assert_eq!(tail, 32);
        let (got, d, _) = drain(&mem, usize::MAX);
        assert!(got.is_empty() && d.error.is_none());
    }
    for (head, tail) in [
        (900u64, 1000u64),
        (900 + 513, 900),
        (u64::MAX, 0),
        (0, u64::MAX - 1000),
    ] {
        let mem = HeapRing::new(PAGE + 512, 512);
        mem.set(DATA_HEAD, head);
        mem.set(DATA_TAIL, tail);
        let (got, d, new_tail) = drain(&mem, usize::MAX);
        assert!(got.is_empty());
        assert_eq!(d.error, Some(RingError::BadHead { head, tail }));
        assert_eq!(new_tail, head);
    }
}

/// A record crossing the end of the ring with its header torn (4 bytes before the end, 4
/// after): reassembled when published; when only the first half is published, its size is
/// read across the wrap and reported as impossible.
#[test]
fn ring_torn_header_across_the_end() {
    let mut rec = header(9, 16);
    rec.extend_from_slice(&[7; 8]);
    let tail = 3 * 128 + 124;
    for (published, want) in [(16u64, Some(rec.clone())), (4, None)] {
        let mem = HeapRing::new(PAGE + 128, 128);
        mem.write_wrapping(128, tail, &rec);
        mem.set(DATA_TAIL, tail);
        mem.set(DATA_HEAD, tail + published);
        let (got, d, new_tail) = drain(&mem, usize::MAX);
        assert_eq!(new_tail, tail + published);
        match want {
            Some(r) => assert_eq!((got, d.error), (vec![r], None)),
            None => assert_eq!(
                d.error,
                Some(RingError::BadRecord {
                    position: tail,
                    size: 16
                })
            ),
        }
    }
}

/// An 8-byte ring (the smallest usable): one header-only record at a time, any budget,
/// including 0 (reads nothing) and 1 (reads one record: the budget is checked before).
#[test]
fn ring_of_eight_bytes_and_tiny_budgets() {
    let mem = HeapRing::new(PAGE + 8, 8);
    for (round, budget) in [usize::MAX, 1, 8, 9].into_iter().enumerate() {
        let pos = 5 + 8 * round as u64;
        mem.write_wrapping(8, pos, &header(round as u32, 8));
        mem.set(DATA_TAIL, pos);
        mem.set(DATA_HEAD, pos + 8);
        let (got, d, tail) = drain(&mem, 0);
        assert!(got.is_empty() && d.error.is_none() && tail == pos);
        let (got, d, tail) = drain(&mem, budget);
        assert_eq!(
            (got, d.error, tail),
            (vec![header(round as u32, 8)], None, pos + 8)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// batch
// ---------------------------------------------------------------------------------------------

fn lost_record(id: u64, lost: u64, time: u64, cpu: u32) -> Vec<u8> {
    let mut r = header(2, 56);
    for w in [id, lost, 0, time] {
        r.extend_from_slice(&w.to_ne_bytes());
    }
    r.extend_from_slice(&cpu.to_ne_bytes());
    r.extend_from_slice(&[0; 4]);
    r.extend_from_slice(&id.to_ne_bytes());
    r
}

fn sample_record(id: u64, pid: u32, raw_len_field: u32, raw: &[u8]) -> Vec<u8> {
    let size = (44 + raw.len()).next_multiple_of(8);
    let mut r = header(9, size as u16);
    r.extend_from_slice(&id.to_ne_bytes());
    r.extend_from_slice(&pid.to_ne_bytes());
    r.extend_from_slice(&pid.to_ne_bytes());
    r.extend_from_slice(&1u64.to_ne_bytes());
    r.extend_from_slice(&0u32.to_ne_bytes());
    r.extend_from_slice(&0u32.to_ne_bytes());
    r.extend_from_slice(&raw_len_field.to_ne_bytes());
    r.extend_from_slice(raw);
    r.resize(size, 0xAA);
    r
}

/// batch crash (artifacts/batch/minimized-from-a00961f3...: two PERF_RECORD_LOST records, as a
/// corrupt ring can hold, with counts 0xffff_ffff_ffff_fe37 and 0x2b5f): `self.batch.lost +=
/// lost` in `push_record` overflows (a panic in debug builds, batch.rs). The total must
/// saturate; both markers are still in the batch with their own counts.
#[test]
fn batch_crash_lost_total_overflows() {
    let mut b = BatchBuilder::new(HashMap::from([(1, 0)]), Vec::new());
    let kinds = catch_unwind(AssertUnwindSafe(|| {
        [
            b.push_record(&lost_record(1, 0xffff_ffff_ffff_fe37, 10, 0), 3),
            b.push_record(&lost_record(1, 0x2b5f, 11, 0), 3),
        ]
    }))
    .unwrap_or_else(|_| panic!("push_record panicked on a lost count overflowing the total"));
    assert_eq!(
        kinds,
        [
            RecordKind::Lost(0xffff_ffff_ffff_fe37),
            RecordKind::Lost(0x2b5f)
        ]
    );
    let batch = b.take();
    assert_eq!(batch.lost, u64::MAX);
    let counts: Vec<_> = batch::entries(&batch.bytes)
        .map(|e| (e.source, e.cpu, e.data.to_vec()))
        .collect();
    assert_eq!(
        counts,
        vec![
            (
                LOST_SOURCE,
                3,
                0xffff_ffff_ffff_fe37u64.to_ne_bytes().to_vec()
            ),
            (LOST_SOURCE, 3, 0x2b5fu64.to_ne_bytes().to_vec())
        ]
    );
}

/// Samples whose raw size field lies (u32::MAX, one past the record, exactly the record),
/// an empty raw part, and a record cut inside its header: kinds as documented, and the batch
/// reads back exactly the samples that were accepted.
#[test]
fn batch_raw_size_fields_and_round_trip() {
    let exec = Arc::new(Format::parse(EXEC).unwrap());
    let mut b = BatchBuilder::new(HashMap::from([(1, 0), (2, 1)]), vec![exec]);
    let cases: Vec<(Vec<u8>, RecordKind)> = vec![
        (
            sample_record(2, 5, u32::MAX, b"abcd"),
            RecordKind::Malformed,
        ),
        (
            sample_record(2, 5, 13, b"abcdefghijkl"),
            RecordKind::Malformed,
        ),
        (sample_record(2, 6, 12, b"abcdefghijkl"), RecordKind::Sample),
        (sample_record(2, 7, 0, b""), RecordKind::Sample),
        (sample_record(1, 8, 0, b""), RecordKind::Malformed), // exec's fields do not fit
        (sample_record(3, 9, 0, b""), RecordKind::Malformed), // unknown id
        (
            sample_record(2, 10, 4, b"abcd")[..43].to_vec(),
            RecordKind::Malformed,
        ),
        (header(9, 8), RecordKind::Malformed),
        (header(14, 8), RecordKind::Other),
        (header(2, 8)[..7].to_vec(), RecordKind::Malformed),
    ];
    for (rec, want) in &cases {
        assert_eq!(b.push_record(rec, 0), *want, "{rec:?}");
    }
    let batch = b.take();
    assert_eq!(batch.samples, 2);
    let got: Vec<_> = batch::entries(&batch.bytes)
        .map(|e| (e.source, e.pid, e.data.to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![(1, 6, b"abcdefghijkl".to_vec()), (1, 7, Vec::new())]
    );
    // entries() over a cut or corrupted buffer stops, it does not read past the end.
    for cut in 0..batch.bytes.len() {
        assert!(batch::entries(&batch.bytes[..cut]).count() <= 2);
    }
    let mut bad = batch.bytes.clone();
    bad[0..4].copy_from_slice(&8u32.to_ne_bytes()); // entry size smaller than its header
    assert_eq!(batch::entries(&bad).count(), 0);
}
