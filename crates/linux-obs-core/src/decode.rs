//! Decoding raw tracepoint records (`PERF_SAMPLE_RAW`) with their [`Format`].
//!
//! The same rules are implemented in the TypeScript layer (which decodes without crossing into
//! native code per event); `fixtures/records/*.json` holds test vectors both must agree on.
//!
//! - Width and sign come from `size`/`signed`, never from the C type.
//! - `__data_loc`: a u32, offset in the low 16 bits and length in the high 16 bits, from the
//!   start of the record; `__rel_loc`: the offset counts from the end of the field itself.
//!   For strings the length includes the terminating NUL.
//! - Flexible arrays (`name[]`, `size:0`) run to the end of the record. The kernel pads raw
//!   records (size = ALIGN(len + 4, 8) - 4), so 0-7 bytes of stale data can follow: a flexible
//!   array is bounded by the record and cut to whole elements; strings stop at the first NUL.
//! - Nothing is ever read outside the record: a field that does not fit is an error naming it.

use crate::error::{Error, Result};
use crate::format::{Field, FieldKind, Format};
use std::ops::Range;

/// A decoded field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A signed integer (1, 2, 4 or 8 bytes).
    Signed(i64),
    /// An unsigned integer (1, 2, 4 or 8 bytes).
    Unsigned(u64),
    /// A `bool`.
    Bool(bool),
    /// A pointer: an address, never dereferenced.
    Pointer(u64),
    /// A string, up to its first NUL; invalid UTF-8 replaced by U+FFFD.
    Str(String),
    /// An array of 1-byte elements.
    Bytes(Vec<u8>),
    /// An array of wider elements (`Signed` or `Unsigned` values).
    Array(Vec<Value>),
}

fn malformed(f: &Field, message: String) -> Error {
    Error::MalformedRecord {
        field: f.name.clone(),
        message,
    }
}

fn read_uint(raw: &[u8], at: usize, size: usize) -> u64 {
    let mut buf = [0u8; 8];
    let bytes = &raw[at..at + size];
    if cfg!(target_endian = "little") {
        buf[..size].copy_from_slice(bytes);
        u64::from_le_bytes(buf)
    } else {
        buf[8 - size..].copy_from_slice(bytes);
        u64::from_be_bytes(buf)
    }
}

fn read_int(raw: &[u8], at: usize, size: usize, signed: bool) -> Value {
    let v = read_uint(raw, at, size);
    if signed {
        let shift = 64 - 8 * size as u32;
        Value::Signed(((v << shift) as i64) >> shift)
    } else {
        Value::Unsigned(v)
    }
}

/// Bytes up to the first NUL.
fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

/// Where a field's data lies in `raw`, checked against the record's length.
pub fn field_range(f: &Field, raw: &[u8]) -> Result<Range<usize>> {
    let len = raw.len();
    match f.kind {
        FieldKind::DataLoc | FieldKind::RelLoc => {
            if f.offset + 4 > len {
                return Err(malformed(
                    f,
                    format!(
                        "at offset {} is past the end of a {len}-byte record",
                        f.offset
                    ),
                ));
            }
            let loc = read_uint(raw, f.offset, 4) as u32;
            let mut start = (loc & 0xffff) as usize;
            let size = (loc >> 16) as usize;
            if f.kind == FieldKind::RelLoc {
                start += f.offset + 4;
            }
            if start + size > len {
                return Err(malformed(
                    f,
                    format!(
                        "points to bytes {start}..{}, outside the {len}-byte record",
                        start + size
                    ),
                ));
            }
            Ok(start..start + size)
        }
        FieldKind::Flexible => {
            if f.offset > len {
                return Err(malformed(
                    f,
                    format!(
                        "at offset {} is past the end of a {len}-byte record",
                        f.offset
                    ),
                ));
            }
            let n = (len - f.offset) / f.element_size;
            Ok(f.offset..f.offset + n * f.element_size)
        }
        _ => {
            if f.offset + f.size > len {
                return Err(malformed(
                    f,
                    format!(
                        "(offset {}, size {}) is past the end of a {len}-byte record",
                        f.offset, f.size
                    ),
                ));
            }
            Ok(f.offset..f.offset + f.size)
        }
    }
}

/// Decodes one field of a raw record.
pub fn decode_field(f: &Field, raw: &[u8]) -> Result<Value> {
    let range = field_range(f, raw)?;
    let data = &raw[range.clone()];
    Ok(match f.kind {
        FieldKind::Int => read_int(raw, range.start, f.size, f.signed),
        FieldKind::Bool => Value::Bool(read_uint(raw, range.start, f.size) != 0),
        FieldKind::Pointer => Value::Pointer(read_uint(raw, range.start, f.size)),
        _ if f.is_string => Value::Str(String::from_utf8_lossy(c_str(data)).into_owned()),
        _ if f.element_size == 1 => Value::Bytes(data.to_vec()),
        _ => Value::Array(
            (0..data.len() / f.element_size)
                .map(|i| {
                    read_int(
                        raw,
                        range.start + i * f.element_size,
                        f.element_size,
                        f.signed,
                    )
                })
                .collect(),
        ),
    })
}

impl Format {
    /// Checks that every field (common ones included) lies inside `raw`.
    pub fn validate(&self, raw: &[u8]) -> Result<()> {
        for f in &self.fields {
            field_range(f, raw)?;
        }
        Ok(())
    }

    /// Decodes every non-`common_*` field, in record order.
    pub fn decode<'a>(&'a self, raw: &[u8]) -> Result<Vec<(&'a str, Value)>> {
        self.fields
            .iter()
            .filter(|f| !f.common)
            .map(|f| Ok((f.name.as_str(), decode_field(f, raw)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str = include_str!("../../../fixtures/formats/sched_sched_process_exec.format");

    fn exec_record(name: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 20];
        r[0..2].copy_from_slice(&365u16.to_le_bytes());
        r[4..8].copy_from_slice(&42i32.to_le_bytes());
        let loc = 20u32 | (((name.len() + 1) as u32) << 16);
        r[8..12].copy_from_slice(&loc.to_le_bytes());
        r[12..16].copy_from_slice(&42i32.to_le_bytes());
        r[16..20].copy_from_slice(&(-1i32).to_le_bytes());
        r.extend_from_slice(name);
        r.push(0);
        r.extend_from_slice(&[0xaa; 3]); // padding garbage
        r
    }

    #[test]
    fn exec_with_invalid_utf8() {
        let f = Format::parse(EXEC).unwrap();
        let got = f.decode(&exec_record(b"/tmp/caf\xe9-\xff")).unwrap();
        assert_eq!(
            got,
            vec![
                ("filename", Value::Str("/tmp/caf\u{fffd}-\u{fffd}".into())),
                ("pid", Value::Signed(42)),
                ("old_pid", Value::Signed(-1)),
            ]
        );
    }

    #[test]
    fn never_reads_outside_the_record() {
        let f = Format::parse(EXEC).unwrap();
        let rec = exec_record(b"/bin/true");
        for cut in 0..rec.len() {
            let r = &rec[..cut];
            // Either it decodes from what is there, or it names the field that does not fit.
            if let Err(e) = f.decode(r) {
                assert_eq!(e.code(), "ERR_MALFORMED_RECORD");
            }
        }
        let mut bad = rec.clone();
        bad[8..12].copy_from_slice(&(20u32 | (500 << 16)).to_le_bytes());
        let e = f.validate(&bad).unwrap_err();
        assert!(
            e.to_string()
                .contains("field 'filename' points to bytes 20..520"),
            "{e}"
        );
    }
}
