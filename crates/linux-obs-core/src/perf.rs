//! Opening tracepoints with `perf_event_open(2)`: one event per tracepoint per online CPU,
//! every event of a CPU writing into one shared ring (`PERF_EVENT_IOC_SET_OUTPUT`).

use crate::error::{Error, Result};
use crate::name::TracepointName;
use crate::reader::CpuRing;
use crate::ring::Ring;
use crate::sys;
use crate::tracefs::Tracefs;
use perf_event_open_sys::bindings as pb;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// What the running kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `PERF_FORMAT_LOST` (Linux 6.0): exact per-event loss counts.
    pub format_lost: bool,
    /// `use_clockid` (Linux 4.1): timestamps on CLOCK_MONOTONIC.
    pub clock_monotonic: bool,
}

/// Settings for opening.
#[derive(Debug, Clone, Copy)]
pub struct OpenConfig {
    /// Data pages per CPU ring (a power of two).
    pub ring_pages: usize,
    /// Wake the reader once this many bytes are in a ring.
    pub wakeup_bytes: u32,
}

/// One tracepoint to open.
#[derive(Debug, Clone)]
pub struct TracepointRequest<'a> {
    /// Its name.
    pub name: &'a TracepointName,
    /// Its id (from the `format` file).
    pub id: u64,
    /// Optional ftrace filter.
    pub filter: Option<&'a str>,
}

/// The open perf events of an observer.
#[derive(Debug)]
pub struct OpenEvents {
    /// `fds[tracepoint][i]` is the event of that tracepoint on `cpus[i]`.
    pub fds: Vec<Vec<OwnedFd>>,
    /// CPUs actually opened (offline ones skipped).
    pub cpus: Vec<u32>,
    /// perf id of every event, mapped to its tracepoint index.
    pub ids: HashMap<u64, u32>,
    /// Kernel features in use.
    pub features: Features,
    /// Doorbell events (see [`Doorbells`]), closed with the rest.
    pub doorbell_fds: Vec<OwnedFd>,
}

/// Counts read from one event with `read(2)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Events that passed the filter (sampled or lost).
    pub count: u64,
    /// Samples the ring had no room for (`PERF_FORMAT_LOST`), if supported.
    pub lost: Option<u64>,
}

/// A disabled tracepoint event that samples every occurrence: what sampling events and
/// doorbells have in common.
fn tracepoint_attr(id: u64) -> pb::perf_event_attr {
    let mut a = pb::perf_event_attr {
        type_: pb::PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<pb::perf_event_attr>() as u32,
        config: id,
        ..Default::default()
    };
    a.__bindgen_anon_1.sample_period = 1;
    a.set_disabled(1);
    a
}

fn attr(id: u64, config: &OpenConfig, features: Features) -> pb::perf_event_attr {
    let mut a = tracepoint_attr(id);
    a.sample_type = (pb::PERF_SAMPLE_IDENTIFIER
        | pb::PERF_SAMPLE_TID
        | pb::PERF_SAMPLE_TIME
        | pb::PERF_SAMPLE_CPU
        | pb::PERF_SAMPLE_RAW) as u64;
    a.read_format = pb::PERF_FORMAT_ID as u64;
    if features.format_lost {
        a.read_format |= pb::PERF_FORMAT_LOST as u64;
    }
    a.set_sample_id_all(1);
    a.set_watermark(1);
    a.__bindgen_anon_2.wakeup_watermark = config.wakeup_bytes;
    if features.clock_monotonic {
        a.set_use_clockid(1);
        a.clockid = libc::CLOCK_MONOTONIC;
    }
    a
}

/// Outcome of opening one event on one CPU.
enum Opened {
    Fd(OwnedFd),
    CpuOffline,
}

fn open_one(
    req: &TracepointRequest,
    cpu: u32,
    config: &OpenConfig,
    features: &mut Features,
    cpus: usize,
    tracepoints: usize,
) -> Result<Opened> {
    // Older kernels answer EINVAL to attributes they do not know. Try the features still
    // allowed, dropping one, then the other, then both, and keep what worked for later events.
    let wanted = *features;
    let candidates = [
        wanted,
        Features {
            format_lost: false,
            ..wanted
        },
        Features {
            clock_monotonic: false,
            ..wanted
        },
        Features {
            format_lost: false,
            clock_monotonic: false,
        },
    ];
    let mut first_einval = None;
    for candidate in candidates {
        if (candidate.format_lost && !wanted.format_lost)
            || (candidate.clock_monotonic && !wanted.clock_monotonic)
        {
            continue;
        }
        match sys::perf_event_open(&attr(req.id, config, candidate), cpu) {
            Ok(fd) => {
                *features = candidate;
                return Ok(Opened::Fd(fd));
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ENODEV) => return Ok(Opened::CpuOffline),
                Some(libc::EINVAL) => {
                    first_einval.get_or_insert(e);
                }
                Some(libc::EMFILE) | Some(libc::ENFILE) => {
                    return Err(Error::FdLimit {
                        limit: sys::rlimit_soft(libc::RLIMIT_NOFILE),
                        in_use: sys::open_fd_count(),
                        needed: (2 * tracepoints * cpus + 3) as u64,
                        tracepoints,
                        cpus,
                    })
                }
                _ => {
                    return Err(Error::io(
                        format!("perf_event_open({}) on CPU {cpu}", req.name),
                        e,
                    ))
                }
            },
        }
    }
    let e = first_einval.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL));
    Err(Error::io(
        format!("perf_event_open({}) on CPU {cpu}", req.name),
        e,
    ))
}

/// Opens every tracepoint on every online CPU, disabled, rings mapped, filters set.
///
/// Returns the events and one ring per CPU. Nothing is enabled yet: call [`OpenEvents::enable`].
pub fn open_events(
    tracefs: &Tracefs,
    requests: &[TracepointRequest],
    online: &[u32],
    config: &OpenConfig,
) -> Result<(OpenEvents, Vec<CpuRing>)> {
    let page = sys::page_size();
    let mut features = Features {
        format_lost: true,
        clock_monotonic: true,
    };
    let mut fds: Vec<Vec<OwnedFd>> = requests.iter().map(|_| Vec::new()).collect();
    let mut cpus = Vec::new();
    let mut rings = Vec::new();
    let mut ids = HashMap::new();
    'cpu: for &cpu in online {
        let mut this_cpu: Vec<OwnedFd> = Vec::with_capacity(requests.len());
        for req in requests {
            match open_one(
                req,
                cpu,
                config,
                &mut features,
                online.len(),
                requests.len(),
            )? {
                Opened::Fd(fd) => this_cpu.push(fd),
                Opened::CpuOffline => continue 'cpu, // went offline: skip it entirely
            }
        }
        let leader = &this_cpu[0];
        let len = page * (config.ring_pages + 1);
        let map = sys::Mmap::map(leader, len).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) => {
                let mlock_kb = crate::observer::perf_event_mlock_kb();
                Error::MlockLimit {
                    requested_kib: (len * online.len() / 1024) as u64,
                    allowed_kib: crate::observer::lockable_kib(online.len()),
                    mlock_kb,
                }
            }
            _ => Error::io(format!("mmap of the CPU {cpu} ring ({len} bytes)"), e),
        })?;
        let ring = Ring::new(map, page).ok_or_else(|| Error::Reader {
            message: format!("the kernel mapped CPU {cpu}'s ring with an unexpected layout"),
            source: None,
        })?;
        for (index, (fd, req)) in this_cpu.iter().zip(requests).enumerate() {
            if index > 0 {
                sys::perf_set_output(fd, leader).map_err(|e| {
                    Error::io(
                        format!("PERF_EVENT_IOC_SET_OUTPUT for {} on CPU {cpu}", req.name),
                        e,
                    )
                })?;
            }
            if let Some(filter) = req.filter {
                sys::perf_set_filter(fd, filter).map_err(|e| match e.raw_os_error() {
                    Some(libc::EINVAL) => Error::InvalidFilter {
                        tracepoint: req.name.to_string(),
                        filter: filter.to_string(),
                        reason: tracefs.explain_filter_error(req.name, filter),
                    },
                    _ => Error::io(format!("setting the filter of {}", req.name), e),
                })?;
            }
            let id = sys::perf_id(fd).map_err(|e| Error::io("PERF_EVENT_IOC_ID", e))?;
            ids.insert(id, index as u32);
        }
        rings.push(CpuRing {
            cpu,
            fd: leader.as_raw_fd(),
            ring,
        });
        for (index, fd) in this_cpu.into_iter().enumerate() {
            fds[index].push(fd);
        }
        cpus.push(cpu);
    }
    if cpus.is_empty() {
        return Err(Error::Io {
            context: "opening tracepoints".into(),
            source: io::Error::new(io::ErrorKind::NotFound, "every CPU went offline"),
        });
    }
    Ok((
        OpenEvents {
            fds,
            cpus,
            ids,
            features,
            doorbell_fds: Vec::new(),
        },
        rings,
    ))
}

/// Doorbells: a second, minimal event per tracepoint and CPU (no sample data, one wake-up per
/// event) writing to a small ring of its own. The reader enables them only after the rings have
/// been quiet for a while and stops its drain timer: an idle observer then costs no wake-ups at
/// all, and the first event after the silence rings the doorbell at once instead of waiting
/// for a timer. As soon as one rings, the reader disables them again and drains on its timer.
pub struct Doorbells {
    /// Every doorbell event, disabled; the observer keeps them open.
    pub fds: Vec<OwnedFd>,
    /// One ring per CPU that the doorbells of that CPU write to (moved to the reader).
    pub rings: Vec<DoorbellRing>,
}

/// A CPU's doorbell ring.
pub struct DoorbellRing {
    /// The doorbell event that owns the ring (for epoll).
    pub fd: std::os::fd::RawFd,
    /// Its one-page ring (only ever emptied, never read).
    pub ring: Ring<sys::Mmap>,
}

fn doorbell_attr(id: u64) -> pb::perf_event_attr {
    let mut a = tracepoint_attr(id);
    a.sample_type = 0; // header only: 8 bytes per event
    a.__bindgen_anon_2.wakeup_events = 1;
    a
}

/// Opens the doorbells for `cpus`, with the same filters. Best effort: `None` if anything fails
/// (the reader then keeps its drain timer running).
pub fn open_doorbells(requests: &[TracepointRequest], cpus: &[u32]) -> Option<Doorbells> {
    let page = sys::page_size();
    let mut fds = Vec::with_capacity(requests.len() * cpus.len());
    let mut rings = Vec::with_capacity(cpus.len());
    for &cpu in cpus {
        let mut leader: Option<OwnedFd> = None;
        for req in requests {
            let fd = sys::perf_event_open(&doorbell_attr(req.id), cpu).ok()?;
            if let Some(filter) = req.filter {
                sys::perf_set_filter(&fd, filter).ok()?;
            }
            match &leader {
                Some(l) => {
                    sys::perf_set_output(&fd, l).ok()?;
                    fds.push(fd);
                }
                None => leader = Some(fd),
            }
        }
        let leader = leader?;
        let ring = Ring::new(sys::Mmap::map(&leader, 2 * page).ok()?, page)?;
        rings.push(DoorbellRing {
            fd: leader.as_raw_fd(),
            ring,
        });
        fds.push(leader);
    }
    Some(Doorbells { fds, rings })
}

impl OpenEvents {
    /// Enables every event.
    pub fn enable(&self) -> Result<()> {
        for fd in self.fds.iter().flatten() {
            sys::perf_enable(fd).map_err(|e| Error::io("PERF_EVENT_IOC_ENABLE", e))?;
        }
        Ok(())
    }

    /// Disables every event, doorbells included (errors ignored: used on the way out).
    pub fn disable(&self) {
        for fd in self.fds.iter().flatten().chain(&self.doorbell_fds) {
            let _ = sys::perf_disable(fd);
        }
    }

    /// Reads the counts of the event of tracepoint `tp` on the `i`-th CPU.
    pub fn counts(&self, tp: usize, i: usize) -> EventCounts {
        let Some(fd) = self.fds.get(tp).and_then(|v| v.get(i)) else {
            return EventCounts::default();
        };
        let mut buf = [0u8; 24];
        match sys::read_fd(fd.as_raw_fd(), &mut buf) {
            Ok(n) if n >= 16 => {
                let word = |k: usize| {
                    u64::from_ne_bytes(buf[k * 8..k * 8 + 8].try_into().unwrap_or_default())
                };
                EventCounts {
                    count: word(0),
                    lost: (self.features.format_lost && n >= 24).then(|| word(2)),
                }
            }
            _ => EventCounts::default(),
        }
    }
}
