//! Batches: copied samples in one contiguous buffer, the unit that crosses to JavaScript.
//!
//! Layout of each entry (native endian, 8-byte aligned, [`ENTRY_HEADER`] bytes of header):
//!
//! | offset | type | meaning |
//! |---|---|---|
//! | 0  | u32 | entry size in bytes (header + data + padding, multiple of 8) |
//! | 4  | u32 | source: index of the tracepoint in the observer, or [`LOST_SOURCE`] |
//! | 8  | i32 | pid (thread group id) of the task that hit the tracepoint |
//! | 12 | i32 | tid |
//! | 16 | u64 | time, ns (CLOCK_MONOTONIC when `use_clockid` is supported) |
//! | 24 | u32 | cpu |
//! | 28 | u32 | data length |
//! | 32 | ... | data: the raw tracepoint record, or for a lost marker the u64 count |
//!
//! The raw record is what the kernel wrote for `PERF_SAMPLE_RAW`: the tracepoint's fields at
//! the offsets of its `format` file, followed by 0-7 bytes of alignment padding.

use crate::format::{FieldKind, Format};
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes before an entry's data.
pub const ENTRY_HEADER: usize = 32;
/// `source` of an entry that marks lost records.
pub const LOST_SOURCE: u32 = u32::MAX;

/// perf record types we read.
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;

/// A batch of entries ready to hand to a consumer.
#[derive(Debug, Default)]
pub struct Batch {
    /// The entries.
    pub bytes: Vec<u8>,
    /// Number of sample entries.
    pub samples: u32,
    /// Sum of the counts of lost markers in this batch.
    pub lost: u64,
}

/// What one perf record turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A sample of one of our tracepoints.
    Sample,
    /// A PERF_RECORD_LOST with its count.
    Lost(u64),
    /// Another record type (throttle, ...), ignored.
    Other,
    /// A record too short for its type, or a sample with an unknown id.
    Malformed,
}

/// What must hold for a raw record to fit its format, precomputed so that checking costs a
/// length comparison plus one per dynamic field (the same rule as [`Format::validate`]).
#[derive(Debug, Clone)]
struct FitCheck {
    min_len: usize,
    /// Offsets of `__data_loc` (false) and `__rel_loc` (true) fields.
    dynamic: Vec<(usize, bool)>,
}

impl FitCheck {
    fn new(format: &Format) -> FitCheck {
        let mut min_len = 0;
        let mut dynamic = Vec::new();
        for f in &format.fields {
            match f.kind {
                FieldKind::DataLoc | FieldKind::RelLoc => {
                    min_len = min_len.max(f.offset + 4);
                    dynamic.push((f.offset, f.kind == FieldKind::RelLoc));
                }
                FieldKind::Flexible => min_len = min_len.max(f.offset),
                _ => min_len = min_len.max(f.offset + f.size),
            }
        }
        FitCheck { min_len, dynamic }
    }

    fn fits(&self, raw: &[u8]) -> bool {
        if raw.len() < self.min_len {
            return false;
        }
        self.dynamic.iter().all(|&(offset, relative)| {
            let loc = u32_at(raw, offset);
            let start = (loc & 0xffff) as usize + if relative { offset + 4 } else { 0 };
            start + (loc >> 16) as usize <= raw.len()
        })
    }
}

/// Turns perf records (sample_type IDENTIFIER|TID|TIME|CPU|RAW, sample_id_all) into entries.
#[derive(Debug)]
pub struct BatchBuilder {
    /// perf event id -> tracepoint index, sorted by id.
    ids: Vec<(u64, u32)>,
    /// The last lookup: consecutive samples mostly come from the same event.
    last: Option<(u64, u32)>,
    checks: Vec<FitCheck>,
    batch: Batch,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap_or_default())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

impl BatchBuilder {
    /// `ids` maps each perf event id to the index of its tracepoint; `formats[index]`, when
    /// present, is used to reject samples whose fields do not fit in their record.
    pub fn new(ids: HashMap<u64, u32>, formats: Vec<Arc<Format>>) -> BatchBuilder {
        let mut ids: Vec<(u64, u32)> = ids.into_iter().collect();
        ids.sort_unstable();
        BatchBuilder {
            ids,
            last: None,
            checks: formats.iter().map(|f| FitCheck::new(f)).collect(),
            batch: Batch::default(),
        }
    }

    fn source_of(&mut self, id: u64) -> Option<u32> {
        match self.last {
            Some((last, source)) if last == id => Some(source),
            _ => {
                let i = self.ids.binary_search_by_key(&id, |&(k, _)| k).ok()?;
                let source = self.ids[i].1;
                self.last = Some((id, source));
                Some(source)
            }
        }
    }

    /// Bytes in the current batch.
    pub fn len(&self) -> usize {
        self.batch.bytes.len()
    }

    /// Whether the current batch is empty.
    pub fn is_empty(&self) -> bool {
        self.batch.bytes.is_empty()
    }

    /// Takes the current batch, leaving an empty one with room for about as much.
    pub fn take(&mut self) -> Batch {
        let capacity = self.batch.bytes.len().next_power_of_two().max(4096);
        std::mem::replace(
            &mut self.batch,
            Batch {
                bytes: Vec::with_capacity(capacity),
                ..Batch::default()
            },
        )
    }

    fn push_entry(&mut self, source: u32, pid: u32, tid: u32, time: u64, cpu: u32, data: &[u8]) {
        let size = (ENTRY_HEADER + data.len()).next_multiple_of(8);
        let mut header = [0u8; ENTRY_HEADER];
        header[0..4].copy_from_slice(&(size as u32).to_ne_bytes());
        header[4..8].copy_from_slice(&source.to_ne_bytes());
        header[8..12].copy_from_slice(&pid.to_ne_bytes());
        header[12..16].copy_from_slice(&tid.to_ne_bytes());
        header[16..24].copy_from_slice(&time.to_ne_bytes());
        header[24..28].copy_from_slice(&cpu.to_ne_bytes());
        header[28..32].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        let out = &mut self.batch.bytes;
        out.reserve(size);
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len() + (size - ENTRY_HEADER - data.len()), 0);
    }

    /// Appends one perf record (header included) read from the ring of `ring_cpu`.
    pub fn push_record(&mut self, record: &[u8], ring_cpu: u32) -> RecordKind {
        if record.len() < 8 {
            return RecordKind::Malformed;
        }
        match u32_at(record, 0) {
            PERF_RECORD_SAMPLE => {
                // header 8 | identifier 8 | pid 4 tid 4 | time 8 | cpu 4 res 4 | raw size 4 | raw
                if record.len() < 44 {
                    return RecordKind::Malformed;
                }
                let raw_len = u32_at(record, 40) as usize;
                if raw_len > record.len() - 44 {
                    return RecordKind::Malformed;
                }
                let Some(source) = self.source_of(u64_at(record, 8)) else {
                    return RecordKind::Malformed;
                };
                let raw = &record[44..44 + raw_len];
                if let Some(check) = self.checks.get(source as usize) {
                    if !check.fits(raw) {
                        return RecordKind::Malformed;
                    }
                }
                let (pid, tid, time, cpu) = (
                    u32_at(record, 16),
                    u32_at(record, 20),
                    u64_at(record, 24),
                    u32_at(record, 32),
                );
                self.push_entry(source, pid, tid, time, cpu, raw);
                self.batch.samples += 1;
                RecordKind::Sample
            }
            PERF_RECORD_LOST => {
                // header 8 | id 8 | lost 8 | sample_id: pid tid 8 | time 8 | cpu res 8 | identifier 8
                if record.len() < 24 {
                    return RecordKind::Malformed;
                }
                let lost = u64_at(record, 16);
                let time = if record.len() >= 40 {
                    u64_at(record, 32)
                } else {
                    0
                };
                self.push_entry(LOST_SOURCE, 0, 0, time, ring_cpu, &lost.to_ne_bytes());
                self.batch.lost = self.batch.lost.saturating_add(lost);
                RecordKind::Lost(lost)
            }
            _ => RecordKind::Other,
        }
    }
}

/// One entry of a batch, as read back (tests and Rust consumers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Tracepoint index, or [`LOST_SOURCE`].
    pub source: u32,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Time in ns.
    pub time: u64,
    /// CPU.
    pub cpu: u32,
    /// Raw record (or lost count).
    pub data: &'a [u8],
}

/// Iterates over the entries of a batch buffer; stops at the first inconsistent entry.
pub fn entries(bytes: &[u8]) -> impl Iterator<Item = Entry<'_>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let rest = bytes.get(at..)?;
        if rest.len() < ENTRY_HEADER {
            return None;
        }
        let size = u32_at(rest, 0) as usize;
        let len = u32_at(rest, 28) as usize;
        if size < ENTRY_HEADER + len || size > rest.len() {
            return None;
        }
        at += size;
        Some(Entry {
            source: u32_at(rest, 4),
            pid: u32_at(rest, 8),
            tid: u32_at(rest, 12),
            time: u64_at(rest, 16),
            cpu: u32_at(rest, 24),
            data: &rest[ENTRY_HEADER..ENTRY_HEADER + len],
        })
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PERF_RECORD_SAMPLE as the kernel lays it out for our sample_type.
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
        r.resize(size, 0xAA); // stale bytes, as the kernel leaves them
        r
    }

    /// A PERF_RECORD_LOST with sample_id_all.
    pub fn lost_record(id: u64, lost: u64, time: u64, cpu: u32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&PERF_RECORD_LOST.to_ne_bytes());
        r.extend_from_slice(&0u16.to_ne_bytes());
        r.extend_from_slice(&56u16.to_ne_bytes());
        r.extend_from_slice(&id.to_ne_bytes());
        r.extend_from_slice(&lost.to_ne_bytes());
        r.extend_from_slice(&[0u8; 8]);
        r.extend_from_slice(&time.to_ne_bytes());
        r.extend_from_slice(&cpu.to_ne_bytes());
        r.extend_from_slice(&[0u8; 4]);
        r.extend_from_slice(&id.to_ne_bytes());
        r
    }

    #[test]
    fn samples_and_lost_markers_round_trip() {
        let mut b = BatchBuilder::new(HashMap::from([(100, 0), (200, 1)]), Vec::new());
        assert_eq!(
            b.push_record(&sample_record(200, 7, 8, 12345, 1, b"hello"), 1),
            RecordKind::Sample
        );
        assert_eq!(
            b.push_record(&lost_record(100, 42, 999, 1), 1),
            RecordKind::Lost(42)
        );
        assert_eq!(
            b.push_record(
                &sample_record(100, 9, 9, 5, 1, &[1, 2, 3, 4, 5, 6, 7, 8]),
                1
            ),
            RecordKind::Sample
        );
        assert_eq!(
            b.push_record(&sample_record(300, 9, 9, 5, 1, b"x"), 1),
            RecordKind::Malformed
        );
        let batch = b.take();
        assert_eq!((batch.samples, batch.lost), (2, 42));
        assert_eq!(batch.bytes.len() % 8, 0);
        let all: Vec<Entry> = entries(&batch.bytes).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[0],
            Entry {
                source: 1,
                pid: 7,
                tid: 8,
                time: 12345,
                cpu: 1,
                data: b"hello"
            }
        );
        assert_eq!(
            (all[1].source, all[1].cpu, all[1].time),
            (LOST_SOURCE, 1, 999)
        );
        assert_eq!(all[1].data, &42u64.to_ne_bytes());
        assert_eq!(all[2].data, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(b.is_empty());
    }

    #[test]
    fn short_records_are_malformed_not_panics() {
        let mut b = BatchBuilder::new(HashMap::from([(1, 0)]), Vec::new());
        let good = sample_record(1, 1, 1, 1, 0, b"abcdefgh");
        for cut in 0..44 + 8 {
            let kind = b.push_record(&good[..cut], 0);
            assert!(
                matches!(kind, RecordKind::Malformed | RecordKind::Other),
                "cut {cut}"
            );
        }
        // a raw size pointing past the record
        let mut bad = good.clone();
        bad[40..44].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(b.push_record(&bad, 0), RecordKind::Malformed);
        assert!(b.is_empty());
    }

    #[test]
    fn samples_whose_fields_do_not_fit_are_malformed() {
        let exec = Format::parse(include_str!(
            "../../../fixtures/formats/sched_sched_process_exec.format"
        ))
        .unwrap();
        let mut b = BatchBuilder::new(HashMap::from([(1, 0)]), vec![Arc::new(exec)]);
        let mut raw = vec![0u8; 24];
        raw[8..12].copy_from_slice(&(20u32 | (4 << 16)).to_le_bytes()); // "abc\0" at 20..24
        raw[20..24].copy_from_slice(b"abc\0");
        assert_eq!(
            b.push_record(&sample_record(1, 1, 1, 1, 0, &raw), 0),
            RecordKind::Sample
        );
        raw[8..12].copy_from_slice(&(20u32 | (40 << 16)).to_le_bytes()); // runs past the end
        assert_eq!(
            b.push_record(&sample_record(1, 1, 1, 1, 0, &raw), 0),
            RecordKind::Malformed
        );
        assert_eq!(
            b.push_record(&sample_record(1, 1, 1, 1, 0, &raw[..10]), 0),
            RecordKind::Malformed
        );
        assert_eq!(b.take().samples, 1);
    }
}
