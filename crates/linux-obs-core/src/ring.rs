//! Reading a perf ring buffer (`perf_event_mmap_page` + 2^n data pages).
//!
//! The kernel appends records at `data_head` and never overwrites bytes before `data_tail`
//! (the ring is mapped writable, so it is not in overwrite mode). The reader:
//! 1. loads `data_head` with acquire ordering (pairs with the kernel's `smp_store_release`),
//!    so every byte up to it is visible;
//! 2. copies each record out (reassembling records that straddle the end of the ring);
//! 3. stores `data_tail` with release ordering only after the copies, so the kernel cannot
//!    overwrite bytes still being read.
//!
//! Records are 8-byte aligned and start with `perf_event_header { type: u32, misc: u16,
//! size: u16 }`. A header that makes no sense (size 0 or larger than what is available, head
//! behind tail) is corruption: the reader skips to `data_head` and reports it, so it can
//! never loop or read outside the ring.

use std::sync::atomic::{AtomicU64, Ordering};

/// Size of `perf_event_header`.
pub const HEADER_SIZE: usize = 8;

/// Byte offsets of `data_head`, `data_tail`, `data_offset` and `data_size` in
/// `perf_event_mmap_page` (kernel ABI, stable since 3.x; data_offset/size since 4.1).
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
const DATA_OFFSET: usize = 1040;
const DATA_SIZE: usize = 1048;

/// Memory that holds a ring: the mmap of a perf fd, or a synthetic buffer in tests.
pub trait RingMemory {
    /// Start of the header page; 8-byte aligned.
    fn as_ptr(&self) -> *mut u8;
    /// Length: header page plus data area.
    fn len(&self) -> usize;
    /// Whether the memory is empty (never usable as a ring).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RingMemory for crate::sys::Mmap {
    fn as_ptr(&self) -> *mut u8 {
        crate::sys::Mmap::as_ptr(self)
    }
    fn len(&self) -> usize {
        crate::sys::Mmap::len(self)
    }
}

/// What went wrong while draining; the ring has been resynchronised to `data_head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    /// `data_head - data_tail` exceeds the ring size (head behind tail, or a corrupt page).
    BadHead {
        /// Value read from `data_head`.
        head: u64,
        /// Our `data_tail`.
        tail: u64,
    },
    /// A record header with an impossible size.
    BadRecord {
        /// Position of the record.
        position: u64,
        /// The size it claimed.
        size: u16,
    },
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingError::BadHead { head, tail } => write!(
                f,
                "ring data_head {head} is not within one ring of data_tail {tail}"
            ),
            RingError::BadRecord { position, size } => {
                write!(f, "record at {position} claims an impossible size {size}")
            }
        }
    }
}

/// Outcome of one drain.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    /// Records handed to the callback.
    pub records: u64,
    /// Bytes consumed from the ring.
    pub bytes: u64,
    /// Corruption found (and skipped).
    pub error: Option<RingError>,
}

/// A reader over one ring.
pub struct Ring<M: RingMemory> {
    mem: M,
    data_offset: usize,
    data_size: usize,
    scratch: Vec<u8>,
}

impl<M: RingMemory> Ring<M> {
    /// Wraps a mapped ring. `page_size` is used when the kernel predates `data_offset`.
    ///
    /// Returns `None` if the memory is too small or the data area is not a power of two.
    pub fn new(mem: M, page_size: usize) -> Option<Ring<M>> {
        if mem.len() < page_size.max(DATA_SIZE + 8) || !(mem.as_ptr() as usize).is_multiple_of(8) {
            return None;
        }
        // SAFETY: both offsets are inside the header page (checked above) and 8-aligned;
        // the kernel writes them once before mmap returns.
        let (mut data_offset, mut data_size) = unsafe {
            (
                std::ptr::read_volatile(mem.as_ptr().add(DATA_OFFSET).cast::<u64>()) as usize,
                std::ptr::read_volatile(mem.as_ptr().add(DATA_SIZE).cast::<u64>()) as usize,
            )
        };
        if data_offset == 0 && data_size == 0 {
            data_offset = page_size;
            data_size = mem.len() - page_size;
        }
        if data_size < HEADER_SIZE
            || !data_size.is_power_of_two()
            || data_offset.checked_add(data_size)? > mem.len()
            || data_offset < DATA_SIZE + 8
        {
            return None;
        }
        Some(Ring {
            mem,
            data_offset,
            data_size,
            scratch: Vec::new(),
        })
    }

    fn head_atomic(&self) -> &AtomicU64 {
        // SAFETY: DATA_HEAD is inside the header page, 8-aligned (the mapping is page-aligned),
        // and lives as long as `self.mem`. The kernel updates it concurrently, hence atomic.
        unsafe { AtomicU64::from_ptr(self.mem.as_ptr().add(DATA_HEAD).cast()) }
    }

    fn tail_atomic(&self) -> &AtomicU64 {
        // SAFETY: as for `head_atomic`; only this reader writes `data_tail`.
        unsafe { AtomicU64::from_ptr(self.mem.as_ptr().add(DATA_TAIL).cast()) }
    }

    /// Size of the data area in bytes.
    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// Test seam: moves `data_tail` past `data_head`, as a corrupted header page would.
    #[doc(hidden)]
    pub fn corrupt_for_test(&mut self) {
        let head = self.head_atomic().load(Ordering::Acquire);
        self.tail_atomic().store(
            head.wrapping_add(self.data_size as u64 + 8),
            Ordering::Release,
        );
    }

    /// Whether records are waiting.
    pub fn has_data(&self) -> bool {
        self.head_atomic().load(Ordering::Acquire) != self.tail_atomic().load(Ordering::Relaxed)
    }

    /// Copies `len` bytes at ring position `pos` (wrapping) into `out`.
    fn copy_out(&self, pos: u64, out: &mut [u8]) {
        let start = (pos as usize) & (self.data_size - 1);
        let first = out.len().min(self.data_size - start);
        let data = self.mem.as_ptr().wrapping_add(self.data_offset);
        // SAFETY: `start + first <= data_size` and the remainder (< data_size, since callers
        // never ask for more than data_size bytes) starts at offset 0: both ranges are inside
        // the data area. The kernel does not write them before we advance data_tail past them.
        unsafe {
            std::ptr::copy_nonoverlapping(data.add(start), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, out.as_mut_ptr().add(first), out.len() - first);
        }
    }

    /// Hands every complete record (header included, contiguous) to `on_record`, up to
    /// `budget` bytes, then releases the space to the kernel.
    ///
    /// `on_record` must copy what it keeps: the slice is only valid during the call.
    pub fn drain(&mut self, budget: usize, mut on_record: impl FnMut(&[u8])) -> Drained {
        let head = self.head_atomic().load(Ordering::Acquire);
        let mut tail = self.tail_atomic().load(Ordering::Relaxed);
        let mut out = Drained::default();
        if head.wrapping_sub(tail) > self.data_size as u64 {
            out.error = Some(RingError::BadHead { head, tail });
            self.tail_atomic().store(head, Ordering::Release);
            return out;
        }
        let start = tail;
        let mut scratch = std::mem::take(&mut self.scratch);
        while tail != head && tail.wrapping_sub(start) < budget as u64 {
            let mut header = [0u8; HEADER_SIZE];
            self.copy_out(tail, &mut header);
            let size = u16::from_ne_bytes([header[6], header[7]]);
            let available = head.wrapping_sub(tail);
            if (size as usize) < HEADER_SIZE || size as u64 > available || size % 8 != 0 {
                out.error = Some(RingError::BadRecord {
                    position: tail,
                    size,
                });
                tail = head;
                break;
            }
            let offset = (tail as usize) & (self.data_size - 1);
            if offset + size as usize <= self.data_size {
                // SAFETY: the record lies wholly inside the data area (checked just above) and
                // before data_head, so the kernel has published it and will not touch it until
                // data_tail moves past it.
                let record = unsafe {
                    std::slice::from_raw_parts(
                        self.mem.as_ptr().add(self.data_offset + offset),
                        size as usize,
                    )
                };
                on_record(record);
            } else {
                scratch.resize(size as usize, 0);
                self.copy_out(tail, &mut scratch);
                on_record(&scratch);
            }
            out.records += 1;
            tail = tail.wrapping_add(size as u64);
        }
        out.bytes = tail.wrapping_sub(start);
        self.scratch = scratch;
        self.tail_atomic().store(tail, Ordering::Release);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A heap ring laid out like the kernel's: one header page, then `data_size` bytes.
    pub struct FakeRing {
        words: Vec<u64>,
        page: usize,
    }

    impl FakeRing {
        pub fn new(page: usize, data_size: usize) -> FakeRing {
            let mut ring = FakeRing {
                words: vec![0; (page + data_size) / 8],
                page,
            };
            ring.words[DATA_OFFSET / 8] = page as u64;
            ring.words[DATA_SIZE / 8] = data_size as u64;
            ring
        }
        fn data_size(&self) -> usize {
            self.words.len() * 8 - self.page
        }
        pub fn head(&self) -> u64 {
            self.words[DATA_HEAD / 8]
        }
        pub fn set_head(&mut self, head: u64) {
            self.words[DATA_HEAD / 8] = head;
        }
        pub fn tail(&self) -> u64 {
            self.words[DATA_TAIL / 8]
        }
        pub fn set_tail(&mut self, tail: u64) {
            self.words[DATA_TAIL / 8] = tail;
        }
        /// Writes a record at `head` the way the kernel does (wrapping), advancing `head`.
        pub fn push(&mut self, ty: u32, body: &[u8]) {
            let size = HEADER_SIZE + body.len();
            assert_eq!(size % 8, 0);
            let mut rec = Vec::with_capacity(size);
            rec.extend_from_slice(&ty.to_ne_bytes());
            rec.extend_from_slice(&0u16.to_ne_bytes());
            rec.extend_from_slice(&(size as u16).to_ne_bytes());
            rec.extend_from_slice(body);
            self.push_raw(&rec);
        }
        pub fn push_raw(&mut self, bytes: &[u8]) {
            let head = self.head();
            let ds = self.data_size();
            assert!(
                head - self.tail() + bytes.len() as u64 <= ds as u64,
                "fake ring full"
            );
            let page = self.page;
            let base = self.words.as_mut_ptr().cast::<u8>();
            for (i, b) in bytes.iter().enumerate() {
                let pos = (head as usize + i) % ds;
                // SAFETY: page + pos < words.len() * 8.
                unsafe { *base.add(page + pos) = *b };
            }
            self.set_head(head + bytes.len() as u64);
        }
    }

    impl RingMemory for &mut FakeRing {
        fn as_ptr(&self) -> *mut u8 {
            self.words.as_ptr() as *mut u8
        }
        fn len(&self) -> usize {
            self.words.len() * 8
        }
    }

    fn body(tag: u64, extra_words: usize) -> Vec<u8> {
        let mut b = tag.to_ne_bytes().to_vec();
        for i in 0..extra_words {
            b.extend_from_slice(&(tag * 100 + i as u64).to_ne_bytes());
        }
        b
    }

    fn collect(fake: &mut FakeRing, budget: usize) -> (Vec<Vec<u8>>, Drained) {
        let mut ring = Ring::new(fake, 4096).unwrap();
        let mut got = Vec::new();
        let d = ring.drain(budget, |r| got.push(r.to_vec()));
        (got, d)
    }

    #[test]
    fn reads_records_in_order_and_advances_tail() {
        let mut fake = FakeRing::new(4096, 4096);
        for tag in 1..=3u64 {
            fake.push(9, &body(tag, tag as usize));
        }
        let head = fake.head();
        let (got, d) = collect(&mut fake, usize::MAX);
        assert_eq!(d.records, 3);
        assert_eq!(d.error, None);
        assert_eq!(fake.tail(), head);
        for (i, rec) in got.iter().enumerate() {
            let tag = i as u64 + 1;
            assert_eq!(&rec[8..16], &tag.to_ne_bytes());
            assert_eq!(rec.len(), 16 + 8 * i + 8);
        }
        // Spurious wakeup: nothing new, nothing read.
        let (got, d) = collect(&mut fake, usize::MAX);
        assert!(got.is_empty());
        assert_eq!(d, Drained::default());
    }

    #[test]
    fn record_straddling_the_end_is_reassembled() {
        let mut fake = FakeRing::new(4096, 256);
        // Move head/tail near the end so the next record wraps.
        fake.set_head(10 * 256 + 232);
        fake.set_tail(10 * 256 + 232);
        let b = body(7, 5); // 8 + 48 = 56 bytes: 24 before the end, 32 after
        fake.push(9, &b);
        let (got, d) = collect(&mut fake, usize::MAX);
        assert_eq!(d.records, 1);
        assert_eq!(got[0].len(), 56);
        assert_eq!(&got[0][8..], &b[..]);
        assert_eq!(fake.tail(), fake.head());
    }

    #[test]
    fn header_at_the_very_end_and_many_wraps() {
        let mut fake = FakeRing::new(4096, 128);
        let mut expected = Vec::new();
        for tag in 0..200u64 {
            let b = body(tag, (tag % 5) as usize);
            fake.push(9, &b);
            expected.push(b);
            if tag % 3 == 2 {
                let (got, d) = collect(&mut fake, usize::MAX);
                assert_eq!(d.error, None);
                for g in got {
                    assert_eq!(g[8..].to_vec(), expected.remove(0));
                }
            }
        }
        let (got, _) = collect(&mut fake, usize::MAX);
        for g in got {
            assert_eq!(g[8..].to_vec(), expected.remove(0));
        }
        assert!(expected.is_empty());
    }

    #[test]
    fn budget_limits_one_drain() {
        let mut fake = FakeRing::new(4096, 4096);
        for tag in 0..10 {
            fake.push(9, &body(tag, 1)); // 24 bytes each
        }
        let (got, d) = collect(&mut fake, 48);
        assert_eq!((got.len(), d.bytes), (2, 48));
        let (got, _) = collect(&mut fake, usize::MAX);
        assert_eq!(got.len(), 8);
    }

    #[test]
    fn corrupt_sizes_resynchronise_to_head() {
        for bad_size in [0u16, 4, 12, 4096] {
            let mut fake = FakeRing::new(4096, 512);
            fake.push(9, &body(1, 0));
            let mut rec = vec![0u8; 16];
            rec[6..8].copy_from_slice(&bad_size.to_ne_bytes());
            fake.push_raw(&rec);
            fake.push(9, &body(2, 0));
            let head = fake.head();
            let (got, d) = collect(&mut fake, usize::MAX);
            assert_eq!(got.len(), 1, "size {bad_size}");
            assert!(
                matches!(d.error, Some(RingError::BadRecord { .. })),
                "size {bad_size}"
            );
            assert_eq!(fake.tail(), head);
        }
    }

    #[test]
    fn head_behind_tail_is_reported() {
        let mut fake = FakeRing::new(4096, 512);
        fake.set_tail(1000);
        fake.set_head(900);
        let (got, d) = collect(&mut fake, usize::MAX);
        assert!(got.is_empty());
        assert_eq!(
            d.error,
            Some(RingError::BadHead {
                head: 900,
                tail: 1000
            })
        );
        assert_eq!(fake.tail(), 900);
        // and a head more than a ring ahead
        fake.set_head(900 + 513);
        let (_, d) = collect(&mut fake, usize::MAX);
        assert!(matches!(d.error, Some(RingError::BadHead { .. })));
    }

    #[test]
    fn rejects_bad_geometry() {
        let mut fake = FakeRing::new(4096, 4096);
        fake.words[DATA_SIZE / 8] = 3000;
        assert!(Ring::new(&mut fake, 4096).is_none());
    }
}
