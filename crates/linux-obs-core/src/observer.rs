//! The observer: a set of tracepoints, opened together, read by one thread.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::name::TracepointName;
use crate::perf::{self, Features, OpenConfig, OpenEvents, TracepointRequest};
use crate::reader::{BatchSink, Reader, ReaderConfig, ReaderDoorbells, ReaderShared};
use crate::sys;
use crate::tracefs::Tracefs;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Default ring memory per CPU (data pages only).
pub const DEFAULT_RING_BYTES_PER_CPU: u64 = 1 << 20;
/// Default wake-up watermark (bytes in a ring).
pub const DEFAULT_WAKEUP_BYTES: u64 = 64 << 10;
/// Default longest wait for a record below the watermark, in milliseconds.
pub const DEFAULT_MAX_DELAY_MS: f64 = 1.0;
/// Default limit of delivered but unconsumed bytes before the reader stops draining.
pub const DEFAULT_HIGH_WATER_BYTES: u64 = 16 << 20;
/// Largest accepted `ring_bytes`.
pub const MAX_RING_BYTES: u64 = 1 << 32;

/// Options as given by the user; `None` means the default.
#[derive(Debug, Clone, Default)]
pub struct ObserverOptions {
    /// Total ring memory across CPUs, in bytes.
    pub ring_bytes: Option<u64>,
    /// Wake-up watermark in bytes.
    pub wakeup_bytes: Option<u64>,
    /// Longest wait before a lone record is delivered, in milliseconds (0.1 to 60000).
    pub max_delay_ms: Option<f64>,
    /// Delivered-but-unconsumed bytes before the reader stops draining.
    pub high_water_bytes: Option<u64>,
    /// Mount tracefs at /sys/kernel/tracing when it is not mounted.
    pub mount_tracefs: bool,
}

/// Options after validation and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Data pages per CPU ring (a power of two).
    pub ring_pages: usize,
    /// Wake-up watermark in bytes (less than one ring).
    pub wakeup_bytes: u32,
    /// Longest wait before a lone record is delivered (the rings are drained three times as often).
    pub max_delay: Duration,
    /// Backpressure threshold.
    pub high_water_bytes: u64,
}

/// `/proc/sys/kernel/perf_event_mlock_kb` (516 when unreadable, the kernel default).
pub fn perf_event_mlock_kb() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_mlock_kb")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(516)
}

/// KiB of perf ring memory an unprivileged process may lock: perf_event_mlock_kb per CPU plus
/// RLIMIT_MEMLOCK.
pub fn lockable_kib(cpus: usize) -> u64 {
    let rlimit = sys::rlimit_soft(libc::RLIMIT_MEMLOCK);
    (perf_event_mlock_kb() * cpus as u64).saturating_add(rlimit / 1024)
}

fn floor_pow2(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 << (63 - n.leading_zeros())
    }
}

impl Config {
    /// Validates options for `cpus` CPUs. `privileged` (CAP_IPC_LOCK) skips the mlock limit.
    pub fn resolve(
        options: &ObserverOptions,
        cpus: usize,
        page: usize,
        privileged: bool,
    ) -> Result<Config> {
        let page = page as u64;
        let cpus_u = cpus.max(1) as u64;
        let min_ring = page * cpus_u;
        let ring_pages = |total: u64| floor_pow2(total / cpus_u / page).max(1);
        let ring_pages = match options.ring_bytes {
            Some(total) => {
                if !(min_ring..=MAX_RING_BYTES).contains(&total) {
                    return Err(Error::InvalidOption {
                        option: "ringBytes",
                        message: format!(
                            "must be between {min_ring} (one {page}-byte page for each of {cpus} CPUs) and {MAX_RING_BYTES}, got {total}"
                        ),
                    });
                }
                let pages = ring_pages(total);
                if !privileged {
                    let requested_kib = (pages + 1) * page * cpus_u / 1024;
                    let allowed_kib = lockable_kib(cpus);
                    if requested_kib > allowed_kib {
                        return Err(Error::MlockLimit {
                            requested_kib,
                            allowed_kib,
                            mlock_kb: perf_event_mlock_kb(),
                        });
                    }
                }
                pages
            }
            None => {
                let mut pages = ring_pages(DEFAULT_RING_BYTES_PER_CPU * cpus_u);
                if !privileged {
                    // Clamp the default to what may be locked, counting the header page.
                    let allowed_per_cpu = lockable_kib(cpus) * 1024 / cpus_u;
                    let fit = floor_pow2((allowed_per_cpu / page).saturating_sub(1)).max(1);
                    pages = pages.min(fit);
                }
                pages
            }
        } as usize;
        let ring_bytes_per_cpu = ring_pages as u64 * page;
        let wakeup_bytes = match options.wakeup_bytes {
            Some(w) if w >= 1 && w < ring_bytes_per_cpu => w,
            Some(w) => {
                return Err(Error::InvalidOption {
                    option: "wakeupBytes",
                    message: format!("must be between 1 and {} (less than one CPU's ring of {ring_bytes_per_cpu} bytes), got {w}", ring_bytes_per_cpu - 1),
                })
            }
            None => DEFAULT_WAKEUP_BYTES.min(ring_bytes_per_cpu / 4).max(1),
        } as u32;
        let max_delay_ms = match options.max_delay_ms {
            Some(d) if (0.1..=60_000.0).contains(&d) => d,
            Some(d) => {
                return Err(Error::InvalidOption {
                    option: "maxDelayMs",
                    message: format!("must be between 0.1 and 60000 milliseconds, got {d}"),
                })
            }
            None => DEFAULT_MAX_DELAY_MS,
        };
        let max_delay = Duration::from_secs_f64(max_delay_ms / 1000.0);
        let high_water_bytes = match options.high_water_bytes {
            Some(h) if (1 << 16..=1 << 40).contains(&h) => h,
            Some(h) => {
                return Err(Error::InvalidOption {
                    option: "highWaterBytes",
                    message: format!("must be between 65536 and {}, got {h}", 1u64 << 40),
                })
            }
            None => DEFAULT_HIGH_WATER_BYTES,
        };
        Ok(Config {
            ring_pages,
            wakeup_bytes,
            max_delay,
            high_water_bytes,
        })
    }
}

/// A tracepoint added to an observer.
#[derive(Debug, Clone)]
pub struct Tracepoint {
    /// Its name.
    pub name: TracepointName,
    /// Its parsed format.
    pub format: Arc<Format>,
    /// The kernel-side filter, if any.
    pub filter: Option<String>,
}

/// Totals of an observer, valid while open and after close.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Samples copied out of the rings.
    pub samples: u64,
    /// Samples the kernel had to drop (rings full).
    pub lost: u64,
    /// `lost` per CPU, as (cpu, count).
    pub lost_by_cpu: Vec<(u32, u64)>,
    /// `lost` per tracepoint (index order); all zero when the kernel cannot say per event.
    pub lost_by_tracepoint: Vec<u64>,
    /// Events the kernel generated for this observer (after filters): samples + lost + still
    /// in the rings. `None` before open.
    pub generated: Option<u64>,
    /// Batches handed to the consumer.
    pub batches: u64,
    /// Bytes handed to the consumer.
    pub bytes: u64,
    /// Records that could not be parsed.
    pub malformed: u64,
    /// Ring corruptions detected and recovered from.
    pub errors: u64,
    /// Loss counts are exact per event (PERF_FORMAT_LOST), not from LOST records.
    pub exact_loss: bool,
}

struct Session {
    events: OpenEvents,
    reader: Reader,
}

impl Session {
    fn stats(&self, tracepoints: usize) -> Stats {
        let shared = self.reader.shared();
        let c = &shared.counters;
        let mut s = Stats {
            samples: c.samples.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            exact_loss: self.events.features.format_lost,
            lost_by_tracepoint: vec![0; tracepoints],
            ..Stats::default()
        };
        let mut generated = 0;
        for (i, &cpu) in self.events.cpus.iter().enumerate() {
            let mut cpu_lost = 0;
            for tp in 0..tracepoints {
                let counts = self.events.counts(tp, i);
                generated += counts.count;
                if let Some(lost) = counts.lost {
                    cpu_lost += lost;
                    s.lost_by_tracepoint[tp] += lost;
                }
            }
            if !s.exact_loss {
                cpu_lost = shared
                    .lost_records_by_ring
                    .get(i)
                    .map_or(0, |a| a.load(Ordering::Relaxed));
            }
            s.lost += cpu_lost;
            s.lost_by_cpu.push((cpu, cpu_lost));
        }
        s.generated = Some(generated);
        s
    }
}

enum State {
    Configuring,
    Open(Session),
    Closed(Stats),
}

/// A set of tracepoints observed together.
///
/// ```no_run
/// use linux_obs_core::{Observer, ObserverOptions, BatchSink, Batch, Error};
/// struct Print;
/// impl BatchSink for Print {
///     fn deliver(&mut self, batch: Batch) -> bool {
///         println!("{} samples", batch.samples);
///         true
///     }
///     fn fail(&mut self, error: Error) { eprintln!("{error}") }
/// }
/// let mut observer = Observer::new(ObserverOptions::default())?;
/// observer.add_tracepoint("sched:sched_process_exec", None)?;
/// observer.open(Box::new(Print))?;
/// std::thread::sleep(std::time::Duration::from_secs(1));
/// let stats = observer.close_now();
/// println!("lost {}", stats.lost);
/// # Ok::<(), linux_obs_core::Error>(())
/// ```
pub struct Observer {
    options: ObserverOptions,
    config: Config,
    cpus: Vec<u32>,
    tracefs: Option<Tracefs>,
    tracepoints: Vec<Tracepoint>,
    state: State,
}

/// The slow half of closing (joining the thread, closing perf fds), to run off the caller's
/// thread: the kernel waits for an RCU grace period per tracepoint when its last fd closes.
pub struct Closing {
    session: Session,
}

impl Closing {
    /// Stops the reader, disables and closes every event. Returns nothing: the final stats
    /// were taken by [`Observer::begin_close`].
    pub fn finish(mut self) {
        self.session.reader.stop();
        self.session.events.disable();
        drop(self.session);
    }
}

impl Observer {
    /// Validates options. Does not touch tracefs yet.
    pub fn new(options: ObserverOptions) -> Result<Observer> {
        let cpus = crate::cpu::online_cpus()?;
        let config = Config::resolve(
            &options,
            cpus.len(),
            sys::page_size(),
            sys::has_capability(sys::CAP_IPC_LOCK),
        )?;
        Ok(Observer {
            options,
            config,
            cpus,
            tracefs: None,
            tracepoints: Vec::new(),
            state: State::Configuring,
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Online CPUs at construction.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }

    /// tracefs, located (or mounted, if the options ask) on first use.
    pub fn tracefs(&mut self) -> Result<&Tracefs> {
        if self.tracefs.is_none() {
            self.tracefs = Some(Tracefs::discover_or_mount(self.options.mount_tracefs)?);
        }
        Ok(self.tracefs.as_ref().expect("set above"))
    }

    /// Adds a tracepoint (`system:event`), checking that it exists. Returns its index, which
    /// tags its events as `source`.
    pub fn add_tracepoint(&mut self, name: &str, filter: Option<&str>) -> Result<u32> {
        match self.state {
            State::Configuring => {}
            State::Open(_) => return Err(Error::AlreadyOpen("add tracepoints before open()")),
            State::Closed(_) => return Err(Error::Closed),
        }
        let name = TracepointName::parse(name)?;
        if let Some(f) = filter {
            if f.trim().is_empty() {
                return Err(Error::InvalidFilter {
                    tracepoint: name.to_string(),
                    filter: f.to_string(),
                    reason: Some("the filter is empty: leave it out to get every event".into()),
                });
            }
            if f.len() > 4096 || f.contains('\0') {
                return Err(Error::InvalidFilter {
                    tracepoint: name.to_string(),
                    filter: f.chars().take(64).collect(),
                    reason: Some("filters are at most 4096 bytes without NUL".into()),
                });
            }
        }
        let format = self.tracefs()?.format(&name)?;
        if self.tracepoints.len() >= u16::MAX as usize {
            return Err(Error::InvalidOption {
                option: "tracepoints",
                message: "at most 65535 tracepoints per observer".into(),
            });
        }
        self.tracepoints.push(Tracepoint {
            name,
            format: Arc::new(format),
            filter: filter.map(str::to_string),
        });
        Ok((self.tracepoints.len() - 1) as u32)
    }

    /// The tracepoints added so far, in index order.
    pub fn tracepoints(&self) -> &[Tracepoint] {
        &self.tracepoints
    }

    /// Opens every tracepoint on every online CPU, starts the reader and enables the events.
    pub fn open(&mut self, sink: Box<dyn BatchSink>) -> Result<()> {
        match self.state {
            State::Configuring => {}
            State::Open(_) => return Err(Error::AlreadyOpen("open() was already called")),
            State::Closed(_) => return Err(Error::Closed),
        }
        if self.tracepoints.is_empty() {
            return Err(Error::InvalidOption {
                option: "tracepoints",
                message: "add at least one tracepoint before open()".into(),
            });
        }
        let cpus = crate::cpu::online_cpus()?;
        // A sampling event and a doorbell per tracepoint and CPU, plus epoll, eventfd, timerfd.
        let needed = (2 * self.tracepoints.len() * cpus.len() + 3) as u64;
        let (limit, in_use) = (sys::rlimit_soft(libc::RLIMIT_NOFILE), sys::open_fd_count());
        if in_use.saturating_add(needed) > limit {
            return Err(Error::FdLimit {
                limit,
                in_use,
                needed,
                tracepoints: self.tracepoints.len(),
                cpus: cpus.len(),
            });
        }
        let tracefs = self.tracefs()?.clone();
        let requests: Vec<TracepointRequest> = self
            .tracepoints
            .iter()
            .map(|t| TracepointRequest {
                name: &t.name,
                id: t.format.id,
                filter: t.filter.as_deref(),
            })
            .collect();
        let open_config = OpenConfig {
            ring_pages: self.config.ring_pages,
            wakeup_bytes: self.config.wakeup_bytes,
        };
        let (mut events, rings) = perf::open_events(&tracefs, &requests, &cpus, &open_config)?;
        let doorbells = perf::open_doorbells(&requests, &events.cpus).map(|d| {
            let fds = d.fds.iter().map(|f| f.as_raw_fd()).collect();
            events.doorbell_fds = d.fds;
            ReaderDoorbells {
                fds,
                rings: d.rings,
            }
        });
        let reader = Reader::spawn(
            rings,
            events.ids.clone(),
            self.tracepoints.iter().map(|t| t.format.clone()).collect(),
            doorbells,
            ReaderConfig {
                max_delay: self.config.max_delay,
                high_water_bytes: self.config.high_water_bytes,
                batch_bytes: 1 << 20,
            },
            sink,
        )?;
        events.enable()?;
        self.state = State::Open(Session { events, reader });
        Ok(())
    }

    /// Whether `open()` succeeded and `close` has not been called.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Kernel features in use, once open.
    pub fn features(&self) -> Option<Features> {
        match &self.state {
            State::Open(s) => Some(s.events.features),
            _ => None,
        }
    }

    /// Current totals (final ones after close).
    pub fn stats(&self) -> Stats {
        match &self.state {
            State::Configuring => Stats {
                lost_by_tracepoint: vec![0; self.tracepoints.len()],
                ..Stats::default()
            },
            State::Open(s) => s.stats(self.tracepoints.len()),
            State::Closed(stats) => stats.clone(),
        }
    }

    /// The consumer is done with `bytes` of delivered batches (backpressure accounting).
    pub fn ack(&self, bytes: u64) {
        if let State::Open(s) = &self.state {
            s.reader.shared().ack(bytes);
        }
    }

    /// Shared reader state, for a binding that acknowledges without locking the observer.
    pub fn reader_shared(&self) -> Option<Arc<ReaderShared>> {
        match &self.state {
            State::Open(s) => Some(s.reader.shared().clone()),
            _ => None,
        }
    }

    /// Marks the observer closed, snapshots the final stats and returns the slow part of the
    /// teardown. Idempotent: `None` when there is nothing to tear down.
    pub fn begin_close(&mut self) -> Option<Closing> {
        let final_stats = self.stats();
        match std::mem::replace(&mut self.state, State::Closed(final_stats)) {
            State::Open(mut session) => {
                // Stop delivering at once; the kernel side is closed by `Closing::finish`.
                session.events.disable();
                session.reader.stop();
                // Counts are final once the events are disabled and the reader has stopped.
                let stats = session.stats(self.tracepoints.len());
                self.state = State::Closed(stats);
                Some(Closing { session })
            }
            State::Closed(previous) => {
                self.state = State::Closed(previous);
                None
            }
            State::Configuring => None,
        }
    }

    /// Closes on the calling thread and returns the final stats.
    pub fn close_now(&mut self) -> Stats {
        if let Some(closing) = self.begin_close() {
            closing.finish();
        }
        self.stats()
    }
}

/// A sink that discards batches (for Rust callers that only want counts).
#[derive(Debug, Default)]
pub struct DiscardSink;

impl BatchSink for DiscardSink {
    fn deliver(&mut self, _batch: Batch) -> bool {
        true
    }
    fn fail(&mut self, _error: Error) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(o: ObserverOptions) -> Result<Config> {
        Config::resolve(&o, 4, 4096, true)
    }

    #[test]
    fn defaults() {
        let c = resolve(ObserverOptions::default()).unwrap();
        assert_eq!(c.ring_pages, 256);
        assert_eq!(c.wakeup_bytes, 64 << 10);
        assert_eq!(c.max_delay, Duration::from_millis(1));
    }

    #[test]
    fn ring_bytes_split_into_power_of_two_pages_per_cpu() {
        let c = resolve(ObserverOptions {
            ring_bytes: Some(3 << 20),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.ring_pages, 128); // 768 KiB per CPU -> 512 KiB
        let c = resolve(ObserverOptions {
            ring_bytes: Some(4 * 4096),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((c.ring_pages, c.wakeup_bytes), (1, 1024));
    }

    #[test]
    fn out_of_range_options_name_the_option() {
        let cases: [(ObserverOptions, &str); 6] = [
            (
                ObserverOptions {
                    ring_bytes: Some(100),
                    ..Default::default()
                },
                "ringBytes",
            ),
            (
                ObserverOptions {
                    ring_bytes: Some(1 << 40),
                    ..Default::default()
                },
                "ringBytes",
            ),
            (
                ObserverOptions {
                    wakeup_bytes: Some(0),
                    ..Default::default()
                },
                "wakeupBytes",
            ),
            (
                ObserverOptions {
                    wakeup_bytes: Some(1 << 30),
                    ..Default::default()
                },
                "wakeupBytes",
            ),
            (
                ObserverOptions {
                    max_delay_ms: Some(0.0),
                    ..Default::default()
                },
                "maxDelayMs",
            ),
            (
                ObserverOptions {
                    high_water_bytes: Some(10),
                    ..Default::default()
                },
                "highWaterBytes",
            ),
        ];
        for (o, name) in cases {
            let e = resolve(o).unwrap_err();
            assert_eq!(e.code(), "ERR_INVALID_OPTION");
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn unprivileged_default_fits_the_mlock_allowance() {
        let c = Config::resolve(&ObserverOptions::default(), 2, 4096, false).unwrap();
        let per_cpu_kib = (c.ring_pages as u64 + 1) * 4;
        assert!(per_cpu_kib * 2 <= lockable_kib(2), "{c:?}");
        let e = Config::resolve(
            &ObserverOptions {
                ring_bytes: Some(1 << 31),
                ..Default::default()
            },
            2,
            4096,
            false,
        );
        // Only fails if RLIMIT_MEMLOCK is not unlimited.
        if sys::rlimit_soft(libc::RLIMIT_MEMLOCK) < (1 << 30) {
            assert_eq!(e.unwrap_err().code(), "ERR_MLOCK_LIMIT");
        }
    }
}
