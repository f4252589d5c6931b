//! The reader thread: waits on the rings, drains them into batches, hands batches to a sink.
//!
//! Wake-ups come from three places: the kernel (a ring crossed its byte watermark), a timer
//! (`max_delay`: a lone event is never held longer than that), and an eventfd (close, or the
//! consumer caught up after backpressure). One interrupt per event would cost the traced CPU
//! ~18 µs each; a watermark plus a short timed drain costs almost nothing when idle.

use crate::batch::{Batch, BatchBuilder, RecordKind};
use crate::error::Error;
use crate::format::Format;
use crate::ring::Ring;
use crate::sys::{Epoll, EventFd, Mmap, TimerFd};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Receives batches on the reader thread.
pub trait BatchSink: Send + 'static {
    /// Takes one batch. Returns `false` when the consumer is gone and the reader should stop.
    fn deliver(&mut self, batch: Batch) -> bool;
    /// The reader hit an error it cannot recover from; it stops after this call.
    fn fail(&mut self, error: Error);
    /// Whether the consumer reports what it has consumed with [`ReaderShared::ack`]. Only then
    /// does the reader apply backpressure (stop draining past the high-water mark); a sink
    /// that consumes within `deliver` keeps the default, `false`.
    fn acknowledges(&self) -> bool {
        false
    }
}

/// One CPU's ring.
pub struct CpuRing {
    /// CPU number.
    pub cpu: u32,
    /// The perf fd the ring belongs to (for epoll).
    pub fd: RawFd,
    /// The mapped ring.
    pub ring: Ring<Mmap>,
}

/// Counters the reader maintains; read at any time.
#[derive(Debug, Default)]
pub struct ReaderCounters {
    /// Samples copied out of the rings.
    pub samples: AtomicU64,
    /// Sum of PERF_RECORD_LOST counts seen.
    pub lost_records: AtomicU64,
    /// Batches delivered.
    pub batches: AtomicU64,
    /// Bytes delivered.
    pub bytes: AtomicU64,
    /// Records that could not be parsed (skipped).
    pub malformed: AtomicU64,
    /// Ring corruption found and resynchronised.
    pub errors: AtomicU64,
}

/// State shared by the reader thread and its owner.
#[derive(Debug)]
pub struct ReaderShared {
    stop: AtomicBool,
    fault: AtomicBool,
    corrupt: AtomicBool,
    idle: AtomicBool,
    doorbell_wakeups: AtomicU64,
    paused: AtomicBool,
    wake: EventFd,
    outstanding: AtomicU64,
    high_water: u64,
    /// Counters.
    pub counters: ReaderCounters,
    /// PERF_RECORD_LOST totals per CPU (index = position in the CPU list).
    pub lost_records_by_ring: Vec<AtomicU64>,
}

impl ReaderShared {
    /// The consumer finished with `bytes` of delivered batches.
    pub fn ack(&self, bytes: u64) {
        let prev = self
            .outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(bytes))
            })
            .unwrap_or_default();
        let now = prev.saturating_sub(bytes);
        if self.paused.load(Ordering::Acquire) && now <= self.high_water / 2 {
            self.wake.signal();
        }
    }

    /// Test seam: makes the reader thread fail as if the ring memory had gone bad (ENOMEM),
    /// so the path from a reader failure to the consumer can be tested on a healthy kernel.
    #[doc(hidden)]
    pub fn inject_fault(&self) {
        self.fault.store(true, Ordering::Release);
        self.wake.signal();
    }

    /// Test seam: corrupts the first ring's header page (data_tail past data_head); the reader
    /// must resynchronise and count it in `errors`.
    #[doc(hidden)]
    pub fn inject_ring_corruption(&self) {
        self.corrupt.store(true, Ordering::Release);
        self.wake.signal();
    }

    /// Whether the reader is idle: drain timer stopped, waiting for a doorbell.
    pub fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }

    /// How many times a doorbell woke the idle reader.
    pub fn doorbell_wakeups(&self) -> u64 {
        self.doorbell_wakeups.load(Ordering::Relaxed)
    }

    /// Bytes delivered and not yet acknowledged.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }
}

/// Tuning of the reader.
#[derive(Debug, Clone, Copy)]
pub struct ReaderConfig {
    /// Longest time a record waits in a ring below the watermark.
    pub max_delay: Duration,
    /// Stop draining while this many delivered bytes are unacknowledged.
    pub high_water_bytes: u64,
    /// Deliver a batch once it holds this many bytes.
    pub batch_bytes: usize,
}

/// A running reader thread.
pub struct Reader {
    shared: Arc<ReaderShared>,
    thread: Option<JoinHandle<()>>,
}

const WAKE_TOKEN: u64 = u64::MAX;
const TIMER_TOKEN: u64 = u64::MAX - 1;
/// Doorbell ring `i` is registered as `DOORBELL_TOKEN | i`.
const DOORBELL_TOKEN: u64 = 1 << 62;
/// Quiet time after which the reader stops its timer and waits for a doorbell.
const IDLE_AFTER: Duration = Duration::from_millis(100);

/// Doorbells handed to the reader: every doorbell fd (to enable/disable) and one ring per CPU.
pub struct ReaderDoorbells {
    /// All doorbell events (owned by the observer, which outlives the reader).
    pub fds: Vec<RawFd>,
    /// The doorbell rings, emptied whenever they ring.
    pub rings: Vec<crate::perf::DoorbellRing>,
}

impl Reader {
    /// Starts the thread. `ids` maps perf event ids to tracepoint indexes.
    /// `formats[i]` is the format of tracepoint `i`: samples that do not fit it are counted as
    /// malformed and never delivered.
    pub fn spawn(
        rings: Vec<CpuRing>,
        ids: HashMap<u64, u32>,
        formats: Vec<Arc<Format>>,
        doorbells: Option<ReaderDoorbells>,
        config: ReaderConfig,
        sink: Box<dyn BatchSink>,
    ) -> crate::Result<Reader> {
        let io = |what: &str, e| Error::Reader {
            message: format!("starting the reader: {what}"),
            source: Some(e),
        };
        let wake = EventFd::new().map_err(|e| io("eventfd", e))?;
        let epoll = Epoll::new().map_err(|e| io("epoll_create1", e))?;
        epoll
            .add(wake.raw(), WAKE_TOKEN)
            .map_err(|e| io("epoll_ctl", e))?;
        // Drain three times per max_delay: a lone event waits at most a third of it in the ring,
        // leaving the rest for the trip to the JavaScript thread.
        let period = (config.max_delay / 3).max(Duration::from_micros(20));
        let timer = TimerFd::periodic(period).map_err(|e| io("timerfd", e))?;
        epoll
            .add(timer.raw(), TIMER_TOKEN)
            .map_err(|e| io("epoll_ctl", e))?;
        for (i, r) in rings.iter().enumerate() {
            epoll.add(r.fd, i as u64).map_err(|e| io("epoll_ctl", e))?;
        }
        if let Some(d) = &doorbells {
            for (i, r) in d.rings.iter().enumerate() {
                epoll
                    .add(r.fd, DOORBELL_TOKEN | i as u64)
                    .map_err(|e| io("epoll_ctl", e))?;
            }
        }
        let shared = Arc::new(ReaderShared {
            stop: AtomicBool::new(false),
            fault: AtomicBool::new(false),
            corrupt: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            doorbell_wakeups: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            wake,
            outstanding: AtomicU64::new(0),
            high_water: config.high_water_bytes,
            counters: ReaderCounters::default(),
            lost_records_by_ring: rings.iter().map(|_| AtomicU64::new(0)).collect(),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("linux-obs-reader".into())
            .spawn(move || {
                let mut sink = sink;
                crate::sys::set_timer_slack(1_000);
                let mut state = ReaderLoop {
                    timer,
                    period,
                    doorbells,
                    idle: false,
                    records_drained: 0,
                    shared: thread_shared,
                    epoll,
                    rings,
                    builder: BatchBuilder::new(ids, formats),
                    config,
                };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    state.run(sink.as_mut())
                }));
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => sink.fail(e),
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        sink.fail(Error::Reader {
                            message: format!("reader thread panicked: {what}"),
                            source: None,
                        });
                    }
                }
                // `sink` (and whatever it holds, e.g. a threadsafe function) is dropped here,
                // on this thread, before join() returns.
            })
            .map_err(|e| io("spawning the thread", e))?;
        Ok(Reader {
            shared,
            thread: Some(thread),
        })
    }

    /// Shared state (counters, ack).
    pub fn shared(&self) -> &Arc<ReaderShared> {
        &self.shared
    }

    /// Stops the thread and waits for it; the sink has been dropped when this returns.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.signal();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop();
    }
}

struct ReaderLoop {
    timer: TimerFd,
    period: Duration,
    doorbells: Option<ReaderDoorbells>,
    /// Timer stopped, doorbells enabled.
    idle: bool,
    /// Records taken out of the rings so far (to notice quiet periods).
    records_drained: u64,
    shared: Arc<ReaderShared>,
    epoll: Epoll,
    rings: Vec<CpuRing>,
    builder: BatchBuilder,
    config: ReaderConfig,
}

impl ReaderLoop {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn run(&mut self, sink: &mut dyn BatchSink) -> crate::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let idle_after_ticks =
            (IDLE_AFTER.as_nanos() / self.period.as_nanos().max(1)).max(2) as u32;
        let mut quiet_ticks = 0u32;
        while !self.stopping() {
            if self.shared.corrupt.swap(false, Ordering::AcqRel) {
                if let Some(r) = self.rings.first_mut() {
                    r.ring.corrupt_for_test();
                }
            }
            if self.shared.fault.swap(false, Ordering::AcqRel) {
                return Err(Error::Reader {
                    message: "injected fault: ring unreadable".into(),
                    source: Some(std::io::Error::from_raw_os_error(libc::ENOMEM)),
                });
            }
            if self.shared.outstanding.load(Ordering::Acquire) > self.shared.high_water {
                // Backpressure: leave records in the rings (the kernel counts what it drops)
                // until the consumer acknowledges.
                self.shared.paused.store(true, Ordering::Release);
                if self.shared.outstanding.load(Ordering::Acquire) > self.shared.high_water {
                    wait_readable(self.shared.wake.raw(), 100);
                }
                self.shared.wake.drain();
                self.shared.paused.store(false, Ordering::Release);
                continue;
            }
            let ready = self
                .epoll
                .wait(&mut events, -1)
                .map_err(|e| Error::Reader {
                    message: "epoll_wait failed".into(),
                    source: Some(e),
                })?;
            let mut ticks = 0u64;
            let mut rang = false;
            for ev in ready {
                if ev.u64 == WAKE_TOKEN {
                    self.shared.wake.drain();
                } else if ev.u64 == TIMER_TOKEN {
                    ticks += self.timer.drain();
                } else if ev.u64 & DOORBELL_TOKEN != 0 {
                    rang = true;
                } else if ev.events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    // The event is gone (e.g. its tracepoint was removed): stop polling it but
                    // keep draining what its ring holds.
                    if let Some(r) = self.rings.get(ev.u64 as usize) {
                        let _ = self.epoll.delete(r.fd);
                    }
                }
            }
            if self.stopping() {
                break;
            }
            if rang {
                self.empty_doorbells();
                if self.idle {
                    self.shared.doorbell_wakeups.fetch_add(1, Ordering::Relaxed);
                    self.wake_up()?;
                }
            }
            let before = self.records_drained;
            if !self.drain_all(sink) {
                break;
            }
            if self.records_drained != before || rang {
                quiet_ticks = 0;
            } else {
                quiet_ticks = quiet_ticks.saturating_add(ticks.min(u32::MAX as u64) as u32);
            }
            if !self.idle && quiet_ticks >= idle_after_ticks && self.doorbells.is_some() {
                quiet_ticks = 0;
                self.go_idle()?;
                // An event that arrived before the doorbells were enabled is in a ring now.
                if self.rings.iter().any(|r| r.ring.has_data()) {
                    self.wake_up()?;
                    if !self.drain_all(sink) {
                        break;
                    }
                }
            }
        }
        if self.stopping() {
            self.discard_remaining();
        }
        Ok(())
    }

    /// Quiet for a while: stop the timer, let the doorbells wake us.
    fn go_idle(&mut self) -> crate::Result<()> {
        let reader_error = |what: &str, e| Error::Reader {
            message: format!("going idle: {what}"),
            source: Some(e),
        };
        if let Some(d) = &self.doorbells {
            for &fd in &d.fds {
                crate::sys::perf_toggle_raw(fd, true)
                    .map_err(|e| reader_error("enabling a doorbell", e))?;
            }
        }
        self.timer
            .set(None)
            .map_err(|e| reader_error("stopping the timer", e))?;
        self.idle = true;
        self.shared.idle.store(true, Ordering::Release);
        Ok(())
    }

    /// A doorbell rang (or data showed up): back to timed drains, doorbells off.
    fn wake_up(&mut self) -> crate::Result<()> {
        let reader_error = |what: &str, e| Error::Reader {
            message: format!("waking up: {what}"),
            source: Some(e),
        };
        if let Some(d) = &self.doorbells {
            for &fd in &d.fds {
                crate::sys::perf_toggle_raw(fd, false)
                    .map_err(|e| reader_error("disabling a doorbell", e))?;
            }
        }
        self.timer
            .set(Some(self.period))
            .map_err(|e| reader_error("starting the timer", e))?;
        self.idle = false;
        self.shared.idle.store(false, Ordering::Release);
        self.empty_doorbells();
        Ok(())
    }

    /// Doorbell rings carry nothing worth reading: just release the space.
    fn empty_doorbells(&mut self) {
        if let Some(d) = &mut self.doorbells {
            for r in &mut d.rings {
                let size = r.ring.data_size();
                r.ring.drain(size, |_| {});
            }
        }
    }

    /// On close (the events are disabled by then): reads what is left in the rings so that it
    /// is counted (read + lost == generated) without delivering it.
    fn discard_remaining(&mut self) {
        struct Discard;
        impl BatchSink for Discard {
            fn deliver(&mut self, _batch: Batch) -> bool {
                true
            }
            fn fail(&mut self, _error: Error) {}
        }
        for _ in 0..4 {
            if !self.rings.iter().any(|r| r.ring.has_data()) {
                break;
            }
            self.drain_all(&mut Discard);
        }
    }

    /// One pass over every ring. Returns false when the sink is gone.
    fn drain_all(&mut self, sink: &mut dyn BatchSink) -> bool {
        let counters = &self.shared.counters;
        for (index, cpu_ring) in self.rings.iter_mut().enumerate() {
            let cpu = cpu_ring.cpu;
            let builder = &mut self.builder;
            let lost_here = &self.shared.lost_records_by_ring[index];
            let budget = cpu_ring.ring.data_size();
            let drained =
                cpu_ring
                    .ring
                    .drain(budget, |record| match builder.push_record(record, cpu) {
                        RecordKind::Sample => {}
                        RecordKind::Lost(n) => {
                            counters.lost_records.fetch_add(n, Ordering::Relaxed);
                            lost_here.fetch_add(n, Ordering::Relaxed);
                        }
                        RecordKind::Other => {}
                        RecordKind::Malformed => {
                            counters.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    });
            if drained.error.is_some() {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            self.records_drained += drained.records;
            if self.builder.len() >= self.config.batch_bytes
                && !deliver(&mut self.builder, &self.shared, sink)
            {
                return false;
            }
        }
        self.builder.is_empty() || deliver(&mut self.builder, &self.shared, sink)
    }
}

fn deliver(builder: &mut BatchBuilder, shared: &ReaderShared, sink: &mut dyn BatchSink) -> bool {
    let batch = builder.take();
    let counters = &shared.counters;
    counters
        .samples
        .fetch_add(batch.samples as u64, Ordering::Relaxed);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .bytes
        .fetch_add(batch.bytes.len() as u64, Ordering::Relaxed);
    if sink.acknowledges() {
        shared
            .outstanding
            .fetch_add(batch.bytes.len() as u64, Ordering::AcqRel);
    }
    sink.deliver(batch)
}

fn wait_readable(fd: RawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}
