//! Shared code of the linux-obs-core fuzz targets and of the seed-corpus generator
//! (`examples/gen_corpus.rs`): input layouts, record builders, and the oracles the targets
//! assert. Each `fuzz_*` function is one target's whole body, so a crash reproduces with
//! `cargo fuzz run <target> <artifact>` and the layout is defined in one place.

use linux_obs_core::batch::{self, BatchBuilder, RecordKind, ENTRY_HEADER, LOST_SOURCE};
use linux_obs_core::decode::{decode_field, field_range};
use linux_obs_core::ring::{Drained, Ring, RingError, RingMemory, HEADER_SIZE};
use linux_obs_core::{Error, Field, FieldKind, Format, Value};
use std::alloc::Layout;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Arc;

/// Bugs found by these targets and not fixed yet. With the `skip-known-bugs` feature the
/// targets step around inputs that would hit them (`if SKIP_KNOWN_BUGS && <input hits it> {
/// return; }` where the input is decoded), so a long run explores past them; each also gets a
/// test in `crates/linux-obs-core/tests/fuzz_regressions.rs`. Remove the entry and its skip
/// once the bug is fixed.
///
/// Found and fixed so far: a non-ASCII character before a field name panicked in
/// `parse_field`; `Ring::new` accepted data areas smaller than a record header (`copy_out`
/// over-read them); ring positions wrapping past u64::MAX overflowed in `drain`; the batch's
/// lost total overflowed (all in 96bde0b); `__data_loc [] name` parsed with an empty type
/// (d061a84).
pub const KNOWN_BUGS: &[&str] = &[];

#[allow(dead_code)] // used by the skips of KNOWN_BUGS; there are none at the moment
const SKIP_KNOWN_BUGS: bool = cfg!(feature = "skip-known-bugs");

/// Records larger than this are not synthesised (formats from the fuzzer may put fields at
/// offset 65535; building such records on every run would only slow the fuzzer down).
pub const MAX_BUILT_RECORD: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Input reading
// ---------------------------------------------------------------------------------------------

/// Reads little-endian integers from the front of a fuzz input; yields zeros once it runs out.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data }
    }
    /// Whether everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }
    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }
    fn fixed<const N: usize>(&mut self) -> [u8; N] {
        let mut buf = [0u8; N];
        let got = self.bytes(N);
        buf[..got.len()].copy_from_slice(got);
        buf
    }
    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.fixed::<1>()[0]
    }
    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.fixed())
    }
    /// A little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.fixed())
    }
    /// A little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.fixed())
    }
}

// ---------------------------------------------------------------------------------------------
// Format + decoder
// ---------------------------------------------------------------------------------------------

/// Invariants of a successfully parsed format.
pub fn check_format(fmt: &Format) {
    let mut names = std::collections::HashSet::new();
    for f in &fmt.fields {
        assert!(
            names.insert(f.name.as_str()),
            "duplicate field {:?}",
            f.name
        );
        assert!(!f.name.is_empty() && !f.type_name.is_empty(), "{f:?}");
        assert!(
            f.offset <= u16::MAX as usize && f.size <= u16::MAX as usize,
            "{f:?}"
        );
        assert_eq!(f.common, f.name.starts_with("common_"), "{f:?}");
        match f.kind {
            FieldKind::Int | FieldKind::Bool | FieldKind::Pointer => {
                assert!(matches!(f.size, 1 | 2 | 4 | 8), "{f:?}")
            }
            FieldKind::DataLoc | FieldKind::RelLoc => {
                assert_eq!(f.size, 4, "{f:?}");
                assert!(matches!(f.element_size, 1 | 2 | 4 | 8), "{f:?}");
            }
            FieldKind::Array => {
                assert!(matches!(f.element_size, 1 | 2 | 4 | 8), "{f:?}");
                assert_eq!(f.size % f.element_size, 0, "{f:?}");
            }
            FieldKind::Flexible => assert!(matches!(f.element_size, 1 | 2 | 4 | 8), "{f:?}"),
            FieldKind::CharArray => assert!(f.is_string && f.element_size == 1, "{f:?}"),
        }
    }
}

fn check_error(f: &Field, e: &Error) {
    assert_eq!(e.code(), "ERR_MALFORMED_RECORD", "{e}");
    match e {
        Error::MalformedRecord { field, .. } => assert_eq!(field, &f.name, "{e}"),
        other => panic!("unexpected error for field {}: {other}", f.name),
    }
}

fn int_fits(v: &Value, size: usize, signed: bool) -> bool {
    let bits = 8 * size as u32;
    match *v {
        Value::Signed(x) if signed => {
            bits == 64 || (x >= -(1i64 << (bits - 1)) && x < (1i64 << (bits - 1)))
        }
        Value::Unsigned(x) if !signed => bits == 64 || x < (1u64 << bits),
        _ => false,
    }
}

fn check_value(f: &Field, v: &Value, data_len: usize) {
    match f.kind {
        FieldKind::Int => assert!(int_fits(v, f.size, f.signed), "{f:?} gave {v:?}"),
        FieldKind::Bool => assert!(matches!(v, Value::Bool(_)), "{f:?} gave {v:?}"),
        FieldKind::Pointer => match *v {
            Value::Pointer(x) => assert!(f.size == 8 || x < (1u64 << (8 * f.size)), "{v:?}"),
            _ => panic!("{f:?} gave {v:?}"),
        },
        _ if f.is_string => match v {
            // Lossy UTF-8 turns one bad byte into 3 (U+FFFD); a string stops at its first NUL.
            Value::Str(s) => assert!(s.len() <= 3 * data_len && !s.contains('\0'), "{v:?}"),
            _ => panic!("{f:?} gave {v:?}"),
        },
        _ if f.element_size == 1 => match v {
            Value::Bytes(b) => assert_eq!(b.len(), data_len, "{f:?}"),
            _ => panic!("{f:?} gave {v:?}"),
        },
        _ => match v {
            Value::Array(items) => {
                assert_eq!(items.len(), data_len / f.element_size, "{f:?}");
                for item in items {
                    assert!(int_fits(item, f.element_size, f.signed), "{f:?}: {item:?}");
                }
            }
            _ => panic!("{f:?} gave {v:?}"),
        },
    }
}

/// Decodes `raw` every way the crate offers and asserts they agree:
///
/// - `decode_field` never panics; `Ok` values have the field's kind, width and sign and are no
///   larger than the field's bytes, which `field_range` places inside the record;
///   errors are `ERR_MALFORMED_RECORD` naming the field;
/// - `validate()` is ok ⇔ every field (common ones included) decodes, and then `decode()` is ok;
/// - `decode()` is ok ⇔ every non-`common_*` field decodes, and returns exactly their values;
///   so `decode()` ok with `validate()` failing happens only when a `common_*` field is what
///   does not fit (validate checks them, decode skips them);
/// - errors name the first field that does not fit.
pub fn check_decode(fmt: &Format, raw: &[u8]) {
    let per_field: Vec<_> = fmt.fields.iter().map(|f| decode_field(f, raw)).collect();
    for (f, result) in fmt.fields.iter().zip(&per_field) {
        match result {
            Ok(v) => {
                let range = field_range(f, raw).expect("decode_field ok but field_range failed");
                assert!(
                    range.start <= range.end && range.end <= raw.len(),
                    "{f:?}: {range:?}"
                );
                check_value(f, v, range.len());
            }
            Err(e) => {
                check_error(f, e);
                assert!(field_range(f, raw).is_err(), "{f:?}");
            }
        }
    }
    let first_bad = |common_too: bool| {
        fmt.fields
            .iter()
            .zip(&per_field)
            .find(|(f, r)| (common_too || !f.common) && r.is_err())
            .map(|(f, _)| f)
    };

    let validate = fmt.validate(raw);
    match (&validate, first_bad(true)) {
        (Ok(()), None) => {}
        (Err(e), Some(f)) => check_error(f, e),
        (v, bad) => panic!("validate() = {v:?} but decode_field fails on {bad:?}"),
    }

    let decode = fmt.decode(raw);
    match (&decode, first_bad(false)) {
        (Ok(values), None) => {
            let want: Vec<(&str, &Value)> = fmt
                .fields
                .iter()
                .zip(&per_field)
                .filter(|(f, _)| !f.common)
                .map(|(f, r)| (f.name.as_str(), r.as_ref().unwrap()))
                .collect();
            let got: Vec<(&str, &Value)> = values.iter().map(|(n, v)| (*n, v)).collect();
            assert_eq!(got, want);
        }
        (Err(e), Some(f)) => check_error(f, e),
        (d, bad) => panic!("decode() = {d:?} but decode_field fails on {bad:?}"),
    }
    if validate.is_ok() {
        assert!(decode.is_ok(), "validate() ok but decode() failed");
    }
    if let (Ok(_), Err(_)) = (&decode, &validate) {
        assert!(first_bad(true).unwrap().common);
    }
    check_batch_fit(fmt, raw, validate.is_ok());
}

/// `BatchBuilder` rejects samples whose fields do not fit with a precomputed check that must
/// give the same answer as `validate()`: a sample carrying `raw` is kept ⇔ `validate_ok`.
fn check_batch_fit(fmt: &Format, raw: &[u8], validate_ok: bool) {
    let mut b = BatchBuilder::new(HashMap::from([(1, 0)]), vec![Arc::new(fmt.clone())]);
    let kind = b.push_record(&sample_record(1, 2, 3, 4, 5, raw), 0);
    let want = if validate_ok {
        RecordKind::Sample
    } else {
        RecordKind::Malformed
    };
    assert_eq!(
        kind, want,
        "BatchBuilder's fit check disagrees with validate()"
    );
    if validate_ok {
        let b = b.take();
        let e: Vec<_> = batch::entries(&b.bytes).collect();
        assert!(e.len() == 1 && e[0].data == raw);
    }
}

/// Where a format's fixed part ends.
fn fixed_end(fmt: &Format) -> usize {
    fmt.fields
        .iter()
        .map(|f| {
            f.offset
                + if f.kind == FieldKind::Flexible {
                    0
                } else {
                    f.size
                }
        })
        .max()
        .unwrap_or(0)
}

/// A well-formed record for `fmt`, the way the kernel writes one: fixed fields filled from
/// `payload` (cyclically), `common_type` = the id, each `__data_loc`/`__rel_loc` pointing to
/// data appended after the fixed part (strings NUL-terminated), a flexible array given a few
/// elements, then padding to `ALIGN(len + 4, 8) - 4` with stale bytes. `None` for formats
/// whose records would be larger than [`MAX_BUILT_RECORD`].
pub fn build_record(fmt: &Format, payload: &[u8]) -> Option<Vec<u8>> {
    let end = fixed_end(fmt);
    if end > MAX_BUILT_RECORD {
        return None;
    }
    let byte = |i: usize| {
        if payload.is_empty() {
            (i as u8).wrapping_mul(37)
        } else {
            payload[i % payload.len()]
        }
    };
    let mut r: Vec<u8> = (0..end).map(byte).collect();
    if let Some(f) = fmt.field("common_type") {
        if f.size == 2 {
            r[f.offset..f.offset + 2].copy_from_slice(&(fmt.id as u16).to_ne_bytes());
        }
    }
    let mut k = 0usize;
    for f in &fmt.fields {
        if !matches!(f.kind, FieldKind::DataLoc | FieldKind::RelLoc) {
            continue;
        }
        let start = r.len();
        if f.is_string {
            let n = 1 + k % 12;
            r.extend((0..n).map(|i| byte(k + i).max(1)));
            r.push(0);
        } else {
            let n = f.element_size * (k % 5);
            r.extend((0..n).map(|i| byte(k + i)));
        }
        k += 3;
        let len = r.len() - start;
        let off = match f.kind {
            FieldKind::DataLoc => start,
            _ => start - (f.offset + 4),
        };
        let loc = (off as u32 & 0xffff) | ((len as u32 & 0xffff) << 16);
        r[f.offset..f.offset + 4].copy_from_slice(&loc.to_ne_bytes());
    }
    if let Some(f) = fmt.fields.iter().find(|f| f.kind == FieldKind::Flexible) {
        if f.offset > r.len() {
            r.resize(f.offset, 0);
        }
        let n = f.element_size * 3;
        r.extend((0..n).map(|i| byte(k + i).max(1)));
    }
    let padded = (r.len() + 4).next_multiple_of(8) - 4;
    r.resize(padded, 0xAA);
    Some(r)
}

/// Records to try against a parsed format: `extra` as is, empty, and when the format is small
/// enough a well-formed record, truncations of it, one with every dynamic field pointing past
/// the end, and one of all 0xff bytes.
pub fn records_for(fmt: &Format, extra: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![extra.to_vec(), Vec::new()];
    if let Some(good) = build_record(fmt, extra) {
        out.push(good[..good.len() / 2].to_vec());
        out.push(good[..good.len().saturating_sub(1)].to_vec());
        let mut bad = good.clone();
        let len = bad.len();
        for f in &fmt.fields {
            if matches!(f.kind, FieldKind::DataLoc | FieldKind::RelLoc) && f.offset + 4 <= len {
                let loc = (len as u32 & 0xffff) | (1 << 16);
                bad[f.offset..f.offset + 4].copy_from_slice(&loc.to_ne_bytes());
            }
        }
        out.push(bad);
        out.push(vec![0xff; good.len()]);
        out.push(good);
    }
    out
}

/// Target `format_parse`: arbitrary bytes (lossy UTF-8) as a format file; when it parses,
/// check the result and decode a few records built for it.
pub fn fuzz_format_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let fmt = match Format::parse(&text) {
        Ok(fmt) => fmt,
        Err(e) => {
            assert_eq!(e.code(), "ERR_INVALID_FORMAT", "{e}");
            return;
        }
    };
    check_format(&fmt);
    for record in records_for(&fmt, data) {
        check_decode(&fmt, &record);
    }
}

/// Layout of a `decode` input: the format text, one NUL byte, the raw record.
pub fn decode_input(format_text: &str, record: &[u8]) -> Vec<u8> {
    let mut v = format_text.as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(record);
    v
}

/// Target `decode`: format text up to the first NUL, raw record after it.
pub fn fuzz_decode(data: &[u8]) {
    let (text, record) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let Ok(fmt) = Format::parse(&text) else {
        return;
    };
    check_format(&fmt);
    // Exact-size heap copies, so an over-read would be caught by the sanitizer, not hidden by
    // the bytes that follow in the input.
    for len in [
        record.len(),
        record.len() / 2,
        record.len().saturating_sub(1),
    ] {
        let exact: Vec<u8> = record[..len].to_vec();
        check_decode(&fmt, &exact);
    }
}

// ---------------------------------------------------------------------------------------------
// Ring
// ---------------------------------------------------------------------------------------------

/// `data_head` in `perf_event_mmap_page`.
pub const DATA_HEAD: usize = 1024;
/// `data_tail`.
pub const DATA_TAIL: usize = 1032;
/// `data_offset`.
pub const DATA_OFFSET: usize = 1040;
/// `data_size`.
pub const DATA_SIZE: usize = 1048;

/// An exact-size, 8-aligned heap allocation standing for a mapped ring, so AddressSanitizer
/// reports any access past its end. Bytes are only reached through the raw pointer.
pub struct HeapRing {
    ptr: NonNull<u8>,
    len: usize,
}

impl HeapRing {
    /// `len` zero bytes (`len > 0`).
    pub fn new(len: usize) -> HeapRing {
        assert!(len > 0);
        let layout = Layout::from_size_align(len, 8).unwrap();
        // SAFETY: the layout has a non-zero size (asserted).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        HeapRing {
            ptr: NonNull::new(ptr).expect("out of memory"),
            len,
        }
    }
    /// Reads a u64 at byte `at`.
    pub fn read_u64(&self, at: usize) -> u64 {
        assert!(at + 8 <= self.len && at.is_multiple_of(8));
        // SAFETY: in bounds and aligned (asserted).
        unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(at).cast::<u64>()) }
    }
    /// Writes a u64 at byte `at`.
    pub fn write_u64(&self, at: usize, v: u64) {
        assert!(at + 8 <= self.len && at.is_multiple_of(8));
        // SAFETY: in bounds and aligned (asserted).
        unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(at).cast::<u64>(), v) }
    }
    /// Writes one byte.
    pub fn write_u8(&self, at: usize, v: u8) {
        assert!(at < self.len);
        // SAFETY: in bounds (asserted).
        unsafe { self.ptr.as_ptr().add(at).write(v) }
    }
    /// A copy of `range`.
    pub fn copy(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        assert!(range.start <= range.end && range.end <= self.len);
        let mut v = vec![0u8; range.len()];
        // SAFETY: in bounds (asserted); `v` is a distinct allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(range.start),
                v.as_mut_ptr(),
                range.len(),
            )
        };
        v
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

/// What one drain should do, computed byte by byte with wrapping arithmetic.
#[derive(Debug, PartialEq, Eq)]
pub struct ModelDrain {
    /// The records handed out.
    pub records: Vec<Vec<u8>>,
    /// `data_tail` afterwards.
    pub tail: u64,
    /// The expected [`Drained`].
    pub drained: Drained,
}

/// The documented drain semantics over a snapshot of the data area (`data.len()` bytes,
/// a power of two): records are read from `tail` while `tail != head` and fewer than `budget`
/// bytes were consumed; a header claiming a size below 8, not a multiple of 8 or above what is
/// published, or a head more than one ring ahead of the tail, is corruption: resynchronise to
/// `head` and report it.
pub fn model_drain(data: &[u8], head: u64, tail: u64, budget: usize) -> ModelDrain {
    let ds = data.len() as u64;
    let at = |pos: u64| data[(pos % ds) as usize];
    let mut out = ModelDrain {
        records: Vec::new(),
        tail,
        drained: Drained::default(),
    };
    if head.wrapping_sub(tail) > ds {
        out.drained.error = Some(RingError::BadHead { head, tail });
        out.tail = head;
        return out;
    }
    let start = tail;
    let mut tail = tail;
    while tail != head && tail.wrapping_sub(start) < budget as u64 {
        let size = u16::from_ne_bytes([at(tail.wrapping_add(6)), at(tail.wrapping_add(7))]);
        if (size as usize) < HEADER_SIZE || size % 8 != 0 || size as u64 > head.wrapping_sub(tail) {
            out.drained.error = Some(RingError::BadRecord {
                position: tail,
                size,
            });
            tail = head;
            break;
        }
        out.records
            .push((0..size as u64).map(|i| at(tail.wrapping_add(i))).collect());
        tail = tail.wrapping_add(size as u64);
    }
    out.drained.records = out.records.len() as u64;
    out.drained.bytes = tail.wrapping_sub(start);
    out.tail = tail;
    out
}

/// Target `ring`. Layout (little-endian, zeros past the end of the input):
///
/// | bytes | meaning |
/// |---|---|
/// | 1 | data size = 2^(b % 11) |
/// | 1 | geometry: 0 kernel (4096-byte header page), 1 pre-4.1 kernel (data_offset/size 0), 2 2048-byte page, 3 arbitrary: page u16, extra length u16, data_offset u16, data_size (u8 selector, then u8 log2 / u16 / u64) |
/// | 1 | positions: 0 tail u64, head = tail + u16; 1 tail u16, head = tail + u16; 2 tail u64, head u64; 3 tail = u64::MAX - u16, head = tail + u16 (wrapping) |
/// | 1 | number of drains - 1 (mod 8), then per drain 5 bytes: budget selector u8, budget u16, head advance u16 |
/// | rest | ring bytes, written from the tail's position onwards (wrapping), at most one ring |
pub fn fuzz_ring(data: &[u8]) {
    let mut c = Cursor::new(data);
    let ds = 1usize << (c.u8() % 11);
    let (page, len, hdr_offset, hdr_size) = match c.u8() % 4 {
        0 => (4096, 4096 + ds, 4096u64, ds as u64),
        1 => (4096, 4096 + ds, 0, 0),
        2 => (2048, 2048 + ds, 2048, ds as u64),
        _ => {
            let page = c.u16() as usize;
            let len = DATA_SIZE + 8 + (c.u16() as usize % 8192);
            let offset = c.u16() as u64;
            let size = match c.u8() % 3 {
                0 => 1u64 << (c.u8() % 16),
                1 => c.u16() as u64,
                _ => c.u64(),
            };
            (page, len, offset, size)
        }
    };
    let (tail, head) = match c.u8() % 4 {
        0 => {
            let t = c.u64();
            (t, t.wrapping_add(c.u16() as u64))
        }
        1 => {
            let t = c.u16() as u64;
            (t, t + c.u16() as u64)
        }
        2 => (c.u64(), c.u64()),
        _ => {
            let t = u64::MAX - c.u16() as u64;
            (t, t.wrapping_add(c.u16() as u64))
        }
    };
    let n_drains = 1 + c.u8() as usize % 8;
    let ops: Vec<(u8, u16, u16)> = (0..n_drains).map(|_| (c.u8(), c.u16(), c.u16())).collect();

    let mem = HeapRing::new(len);
    mem.write_u64(DATA_OFFSET, hdr_offset);
    mem.write_u64(DATA_SIZE, hdr_size);
    mem.write_u64(DATA_HEAD, head);
    mem.write_u64(DATA_TAIL, tail);

    // Where the data area is, if the geometry is usable (what the kernel guarantees).
    let (offset, size) = if hdr_offset == 0 && hdr_size == 0 {
        (page as u64, len.saturating_sub(page) as u64)
    } else {
        (hdr_offset, hdr_size)
    };
    let usable = len >= page.max(DATA_SIZE + 8)
        && size.is_power_of_two()
        && offset
            .checked_add(size)
            .is_some_and(|end| end <= len as u64)
        && offset >= (DATA_SIZE + 8) as u64;

    let Some(mut ring) = Ring::new(&mem, page) else {
        return;
    };
    assert!(
        usable,
        "Ring::new accepted offset {offset} size {size} in {len} bytes"
    );
    let (offset, ds) = (offset as usize, size as usize);
    assert_eq!(ring.data_size(), ds);
    // Reading a record header copies 8 bytes out of the data area: a smaller area would be
    // read past its end (copy_out assumes the wrapped part is shorter than the area).
    assert!(
        ds >= HEADER_SIZE,
        "Ring::new accepted a {ds}-byte data area, smaller than a record header"
    );
    for (i, &b) in c.rest().iter().take(ds).enumerate() {
        mem.write_u8(offset + (tail as usize).wrapping_add(i) % ds, b);
    }

    for (sel, budget16, advance) in ops {
        // The "kernel" publishes more of what is already in the ring, never past one ring.
        let (head, tail) = (mem.read_u64(DATA_HEAD), mem.read_u64(DATA_TAIL));
        let used = head.wrapping_sub(tail);
        if advance > 0 && used <= ds as u64 {
            mem.write_u64(
                DATA_HEAD,
                head.wrapping_add((advance as u64).min(ds as u64 - used)),
            );
        }
        let budget = match sel % 8 {
            0 => usize::MAX,
            1 => 0,
            2 => 1,
            3 => 8,
            4 => 24,
            5 => 64,
            6 => ds,
            _ => budget16 as usize,
        };
        let before = mem.copy(0..len);
        let head = mem.read_u64(DATA_HEAD);
        let want = model_drain(&before[offset..offset + ds], head, tail, budget);

        let mut got: Vec<Vec<u8>> = Vec::new();
        let drained = ring.drain(budget, |r| {
            assert!(
                got.len() <= ds / HEADER_SIZE,
                "more records than fit in the ring"
            );
            got.push(r.to_vec())
        });
        let new_tail = mem.read_u64(DATA_TAIL);
        assert_eq!(
            got, want.records,
            "records (head {head} tail {tail} budget {budget})"
        );
        assert_eq!(
            drained, want.drained,
            "head {head} tail {tail} budget {budget}"
        );
        assert_eq!(new_tail, want.tail);
        if drained.error.is_some() {
            assert_eq!(
                new_tail, head,
                "data_tail not resynchronised after an error"
            );
        }
        assert_eq!(ring.has_data(), new_tail != head);
        // The reader writes data_tail and nothing else.
        let mut after = mem.copy(0..len);
        after[DATA_TAIL..DATA_TAIL + 8].copy_from_slice(&before[DATA_TAIL..DATA_TAIL + 8]);
        assert!(after == before, "drain wrote outside data_tail");
    }
}

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

/// perf record types.
pub const PERF_RECORD_LOST: u32 = 2;
/// perf record types.
pub const PERF_RECORD_SAMPLE: u32 = 9;

/// The format files the `batch` target can attach (source 0 and 1; source 2 has none).
pub const EXEC_FORMAT: &str =
    include_str!("../../../../fixtures/formats/sched_sched_process_exec.format");
/// See [`EXEC_FORMAT`].
pub const SWITCH_FORMAT: &str =
    include_str!("../../../../fixtures/formats/sched_sched_switch.format");

/// A format with every field kind (`__rel_loc`, flexible and fixed arrays, pointer, bool...).
pub const KINDS_FORMAT: &str = "name: kinds\nID: 7\nformat:\n\
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
    \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
    \tfield:bool ok;\toffset:8;\tsize:1;\tsigned:0;\n\
    \tfield:__rel_loc u32[] vals;\toffset:12;\tsize:4;\tsigned:0;\n\
    \tfield:__u8 saddr[sizeof(struct sockaddr_in6)];\toffset:16;\tsize:28;\tsigned:0;\n\
    \tfield:s16 pair[2];\toffset:44;\tsize:4;\tsigned:1;\n\
    \tfield:void * ptr;\toffset:48;\tsize:8;\tsigned:0;\n\
    \tfield:char comm[8];\toffset:56;\tsize:8;\tsigned:0;\n\
    \tfield:__data_loc char[] name;\toffset:64;\tsize:4;\tsigned:0;\n\
    \tfield:u8 tail[];\toffset:68;\tsize:0;\tsigned:0;\n\n\
    print fmt: \"x\"\n";

/// Perf event ids known to the builder in the `batch` target, mapping to sources 0..=3;
/// with formats attached, sources 0, 1 and 2 have [`EXEC_FORMAT`], [`SWITCH_FORMAT`] and
/// [`KINDS_FORMAT`], source 3 none.
pub const IDS: [u64; 4] = [100, 200, 300, 400];

/// A PERF_RECORD_SAMPLE for sample_type IDENTIFIER|TID|TIME|CPU|RAW, padded like the kernel.
pub fn sample_record(id: u64, pid: u32, tid: u32, time: u64, cpu: u32, raw: &[u8]) -> Vec<u8> {
    let size = (44 + raw.len()).next_multiple_of(8);
    let mut r = Vec::with_capacity(size);
    r.extend_from_slice(&PERF_RECORD_SAMPLE.to_ne_bytes());
    r.extend_from_slice(&0u16.to_ne_bytes());
    r.extend_from_slice(&(size as u16).to_ne_bytes());
    r.extend_from_slice(&id.to_ne_bytes());
    r.extend_from_slice(&pid.to_ne_bytes());
    r.extend_from_slice(&tid.to_ne_bytes());
    r.extend_from_slice(&time.to_ne_bytes());
    r.extend_from_slice(&cpu.to_ne_bytes());
    r.extend_from_slice(&0u32.to_ne_bytes());
    r.extend_from_slice(&(raw.len() as u32).to_ne_bytes());
    r.extend_from_slice(raw);
    r.resize(size, 0xAA);
    r
}

/// A PERF_RECORD_LOST with sample_id_all, cut to `len` bytes.
pub fn lost_record(id: u64, lost: u64, time: u64, cpu: u32, len: usize) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&PERF_RECORD_LOST.to_ne_bytes());
    r.extend_from_slice(&0u16.to_ne_bytes());
    r.extend_from_slice(&(len as u16).to_ne_bytes());
    r.extend_from_slice(&id.to_ne_bytes());
    r.extend_from_slice(&lost.to_ne_bytes());
    r.extend_from_slice(&[0u8; 8]);
    r.extend_from_slice(&time.to_ne_bytes());
    r.extend_from_slice(&cpu.to_ne_bytes());
    r.extend_from_slice(&[0u8; 4]);
    r.extend_from_slice(&id.to_ne_bytes());
    r.truncate(len);
    r
}

fn ne_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}
fn ne_u64(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

/// An expected batch entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected {
    /// Source.
    pub source: u32,
    /// pid.
    pub pid: u32,
    /// tid.
    pub tid: u32,
    /// time.
    pub time: u64,
    /// cpu.
    pub cpu: u32,
    /// data.
    pub data: Vec<u8>,
}

/// What `push_record` should make of `record` (per the layout documented in batch.rs).
pub fn model_record(
    record: &[u8],
    ring_cpu: u32,
    ids: &HashMap<u64, u32>,
    formats: &[Arc<Format>],
) -> (RecordKind, Option<Expected>) {
    if record.len() < 8 {
        return (RecordKind::Malformed, None);
    }
    match ne_u32(record, 0) {
        PERF_RECORD_SAMPLE => {
            if record.len() < 44 {
                return (RecordKind::Malformed, None);
            }
            let raw_len = ne_u32(record, 40) as usize;
            if 44 + raw_len > record.len() {
                return (RecordKind::Malformed, None);
            }
            let Some(&source) = ids.get(&ne_u64(record, 8)) else {
                return (RecordKind::Malformed, None);
            };
            let raw = &record[44..44 + raw_len];
            if let Some(f) = formats.get(source as usize) {
                if f.validate(raw).is_err() {
                    return (RecordKind::Malformed, None);
                }
            }
            let e = Expected {
                source,
                pid: ne_u32(record, 16),
                tid: ne_u32(record, 20),
                time: ne_u64(record, 24),
                cpu: ne_u32(record, 32),
                data: raw.to_vec(),
            };
            (RecordKind::Sample, Some(e))
        }
        PERF_RECORD_LOST => {
            if record.len() < 24 {
                return (RecordKind::Malformed, None);
            }
            let lost = ne_u64(record, 16);
            let time = if record.len() >= 40 {
                ne_u64(record, 32)
            } else {
                0
            };
            let e = Expected {
                source: LOST_SOURCE,
                pid: 0,
                tid: 0,
                time,
                cpu: ring_cpu,
                data: lost.to_ne_bytes().to_vec(),
            };
            (RecordKind::Lost(lost), Some(e))
        }
        _ => (RecordKind::Other, None),
    }
}

/// Target `batch`. Layout: flags u8 (bit 0: attach the exec, switch and kinds formats to
/// sources 0, 1 and 2; bit 1: map one more id, u64, to a source, u32), ring cpu u32, then records, each an
/// op byte (mod 5) and its fields:
///
/// - 0 raw: length u8, bytes;
/// - 1 sample: id selector u8 (IDS or else an id u64), pid u32, tid u32, time u64, cpu u32,
///   raw length u8, raw bytes, tweak u8 (1: raw size field := u32, 2: cut to u8 bytes);
/// - 2 sample of a well-formed record of one of the three formats: selector u8 (mod 3),
///   payload length u8, payload;
/// - 3 lost: id u64, count u64, time u64, cpu u32, length selector u8 (24, 32, 40, 56);
/// - 4 other type: type u32, length u8, body.
///
/// Every record is pushed, its kind checked against [`model_record`], and the batch read back
/// with `batch::entries` must hold exactly the samples and lost markers, in order.
pub fn fuzz_batch(data: &[u8]) {
    // entries() over arbitrary bytes terminates and stays in bounds.
    let n = batch::entries(data).count();
    assert!(n <= data.len() / ENTRY_HEADER);

    let mut c = Cursor::new(data);
    let flags = c.u8();
    let mut ids: HashMap<u64, u32> = IDS
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i as u32))
        .collect();
    if flags & 2 != 0 {
        let (id, source) = (c.u64(), c.u32());
        ids.insert(id, source);
    }
    let exec = Arc::new(Format::parse(EXEC_FORMAT).unwrap());
    let switch = Arc::new(Format::parse(SWITCH_FORMAT).unwrap());
    let kinds = Arc::new(Format::parse(KINDS_FORMAT).unwrap());
    let formats = if flags & 1 != 0 {
        vec![exec.clone(), switch.clone(), kinds.clone()]
    } else {
        Vec::new()
    };
    let ring_cpu = c.u32();
    let mut builder = BatchBuilder::new(ids.clone(), formats.clone());
    let mut want = Vec::new();
    let (mut samples, mut lost) = (0u32, 0u64);
    let mut pushed = 0;
    while !c.is_empty() && pushed < 64 {
        pushed += 1;
        let record = match c.u8() % 5 {
            0 => {
                let n = c.u8() as usize;
                c.bytes(n).to_vec()
            }
            1 => {
                let sel = c.u8() as usize;
                let id = if sel < IDS.len() { IDS[sel] } else { c.u64() };
                let (pid, tid, time, cpu) = (c.u32(), c.u32(), c.u64(), c.u32());
                let n = c.u8() as usize;
                let mut r = sample_record(id, pid, tid, time, cpu, c.bytes(n));
                match c.u8() {
                    1 => r[40..44].copy_from_slice(&c.u32().to_ne_bytes()),
                    2 => r.truncate(c.u8() as usize),
                    _ => {}
                }
                r
            }
            2 => {
                let sel = c.u8();
                let n = c.u8() as usize;
                let payload = c.bytes(n);
                let (id, fmt) = match sel % 3 {
                    0 => (IDS[0], &exec),
                    1 => (IDS[1], &switch),
                    _ => (IDS[2], &kinds),
                };
                let raw = build_record(fmt, payload).unwrap();
                sample_record(id, 1, 2, 3, 4, &raw)
            }
            3 => {
                let (id, count, time, cpu) = (c.u64(), c.u64(), c.u64(), c.u32());
                let len = [24, 32, 40, 56][c.u8() as usize % 4];
                lost_record(id, count, time, cpu, len)
            }
            _ => {
                let ty = c.u32();
                let n = c.u8() as usize;
                let mut r = ty.to_ne_bytes().to_vec();
                r.extend_from_slice(c.bytes(n));
                r
            }
        };
        let (kind, entry) = model_record(&record, ring_cpu, &ids, &formats);
        assert_eq!(builder.push_record(&record, ring_cpu), kind, "{record:?}");
        match kind {
            RecordKind::Sample => samples += 1,
            // A corrupt ring can hold any count: the total saturates rather than overflows.
            RecordKind::Lost(n) => lost = lost.saturating_add(n),
            _ => {}
        }
        want.extend(entry);
    }
    assert_eq!(builder.len() % 8, 0);
    let b = builder.take();
    assert!(builder.is_empty());
    assert_eq!((b.samples, b.lost), (samples, lost));
    let got: Vec<Expected> = batch::entries(&b.bytes)
        .map(|e| Expected {
            source: e.source,
            pid: e.pid,
            tid: e.tid,
            time: e.time,
            cpu: e.cpu,
            data: e.data.to_vec(),
        })
        .collect();
    assert_eq!(got, want);
}
