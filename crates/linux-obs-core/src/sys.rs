//! Every system call of the crate, and the only `unsafe` outside the ring's memory accesses.
//!
//! Each wrapper turns the C return convention into `io::Result` and owns what it creates
//! (`OwnedFd`, [`Mmap`]) so nothing leaks on an early return.

use perf_event_open_sys as perf;
use perf_event_open_sys::bindings::perf_event_attr;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::ptr::NonNull;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `/proc/sys/kernel/perf_event_paranoid`, for error messages.
pub fn perf_event_paranoid() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `perf_event_open(2)` for one CPU, all processes, close-on-exec.
pub fn perf_event_open(attr: &perf_event_attr, cpu: u32) -> io::Result<OwnedFd> {
    let faults = seam::get();
    if (faults.reject_format_lost
        && attr.read_format & perf::bindings::PERF_FORMAT_LOST as u64 != 0)
        || (faults.reject_clockid && attr.use_clockid() != 0)
    {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut attr = *attr;
    // SAFETY: `attr` is a valid, initialised perf_event_attr whose `size` field matches the
    // struct; the kernel only reads it (and may write `size` back on E2BIG, into our copy).
    let fd = unsafe {
        perf::perf_event_open(
            &mut attr,
            -1,
            cpu as libc::c_int,
            -1,
            perf::bindings::PERF_FLAG_FD_CLOEXEC as libc::c_ulong,
        )
    };
    let fd = cvt(fd)?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `PERF_EVENT_IOC_SET_OUTPUT`: send `fd`'s records to `target`'s ring.
pub fn perf_set_output(fd: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    // SAFETY: both descriptors are open perf events owned by the caller.
    cvt(unsafe { perf::ioctls::SET_OUTPUT(fd.as_raw_fd(), target.as_raw_fd()) }).map(drop)
}

/// `PERF_EVENT_IOC_SET_FILTER` with an ftrace filter expression.
pub fn perf_set_filter(fd: &OwnedFd, filter: &str) -> io::Result<()> {
    let filter = CString::new(filter).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the kernel copies the NUL-terminated string (strndup_user) and does not keep the
    // pointer; `filter` outlives the call.
    cvt(unsafe { perf::ioctls::SET_FILTER(fd.as_raw_fd(), filter.as_ptr() as *mut libc::c_char) })
        .map(drop)
}

/// `PERF_EVENT_IOC_ID`: the id that tags this event's samples (PERF_SAMPLE_IDENTIFIER).
pub fn perf_id(fd: &OwnedFd) -> io::Result<u64> {
    let mut id = 0u64;
    // SAFETY: the kernel writes one u64 to the pointer, which is valid for the call.
    cvt(unsafe { perf::ioctls::ID(fd.as_raw_fd(), &mut id) })?;
    Ok(id)
}

/// `PERF_EVENT_IOC_ENABLE`.
pub fn perf_enable(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain ioctl on an owned perf fd, no pointer argument.
    cvt(unsafe { perf::ioctls::ENABLE(fd.as_raw_fd(), 0) }).map(drop)
}

/// `PERF_EVENT_IOC_DISABLE`.
pub fn perf_disable(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain ioctl on an owned perf fd, no pointer argument.
    cvt(unsafe { perf::ioctls::DISABLE(fd.as_raw_fd(), 0) }).map(drop)
}

/// `PERF_EVENT_IOC_ENABLE` or `DISABLE` on a descriptor owned elsewhere (the reader thread
/// toggles doorbell events whose `OwnedFd`s the observer keeps).
pub fn perf_toggle_raw(fd: RawFd, enable: bool) -> io::Result<()> {
    // SAFETY: plain ioctl without a pointer argument; a stale fd only yields EBADF.
    let ret = unsafe {
        if enable {
            perf::ioctls::ENABLE(fd, 0)
        } else {
            perf::ioctls::DISABLE(fd, 0)
        }
    };
    cvt(ret).map(drop)
}

/// `read(2)` into `buf`, returning the byte count.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A shared read-write mapping of a perf event's ring, unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; concurrent access is coordinated by the ring
// protocol (data_head/data_tail atomics), not by thread identity.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` (one header page plus 2^n data pages).
    pub fn map(fd: &OwnedFd, len: usize) -> io::Result<Mmap> {
        if let Some(errno) = seam::get().mmap_errno {
            return Err(io::Error::from_raw_os_error(errno));
        }
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL); no existing memory is
        // affected. The result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mmap { ptr, len })
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for a mapping that succeeded).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe a mapping we created and still own; no reference into it
        // outlives `self` (the ring borrows it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// An `eventfd` used to wake the reader thread (close, or consumer caught up).
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A non-blocking, close-on-exec eventfd.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: no pointers; the result is checked.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: fresh descriptor owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds one to the counter, waking a waiter.
    pub fn signal(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live stack buffer. EAGAIN (counter saturated) means a
        // wake-up is already pending, which is all we want.
        unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    /// Resets the counter.
    pub fn drain(&self) {
        let mut buf = [0u8; 8];
        let _ = read_fd(self.0.as_raw_fd(), &mut buf);
    }

    /// The descriptor, for epoll.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// An epoll instance (close-on-exec).
#[derive(Debug)]
pub struct Epoll(OwnedFd);

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; the result is checked.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fresh descriptor owned by nobody else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input, tagging events with `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is valid for the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(drop)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event pointer is allowed for EPOLL_CTL_DEL (kernel 2.6.9+).
        cvt(unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// Waits up to `timeout_ms` (-1: forever); returns the ready events. EINTR counts as none.
    pub fn wait<'a>(
        &self,
        events: &'a mut [libc::epoll_event],
        timeout_ms: i32,
    ) -> io::Result<&'a [libc::epoll_event]> {
        // SAFETY: `events` is valid for `events.len()` writes; the kernel fills at most that many.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(&events[..0]);
            }
            return Err(err);
        }
        Ok(&events[..n as usize])
    }
}

/// `mount -t tracefs nodev <path>`.
pub fn mount_tracefs(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: all pointers are NUL-terminated strings alive for the call; data is NULL.
    cvt(unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// A resource limit's soft value (`RLIM_INFINITY` as `u64::MAX`).
pub fn rlimit_soft(resource: libc::__rlimit_resource_t) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid for writes for the call.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return u64::MAX;
    }
    lim.rlim_cur
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Whether the effective capability set holds `cap` (or we are root).
pub fn has_capability(cap: u32) -> bool {
    // SAFETY: geteuid has no memory effects.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1u64 << cap) != 0)
}

/// CAP_IPC_LOCK: exempt from locked-memory limits.
pub const CAP_IPC_LOCK: u32 = 14;

/// Number of open descriptors of this process.
pub fn open_fd_count() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// A periodic `timerfd` on CLOCK_MONOTONIC (close-on-exec, non-blocking): the reader's timed
/// drain. Precise to microseconds, unlike epoll_wait's millisecond timeout.
#[derive(Debug)]
pub struct TimerFd(OwnedFd);

impl TimerFd {
    /// Fires every `period` from now on.
    pub fn periodic(period: std::time::Duration) -> io::Result<TimerFd> {
        // SAFETY: no pointers; the result is checked.
        let fd = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            )
        })?;
        // SAFETY: fresh descriptor owned by nobody else.
        let timer = TimerFd(unsafe { OwnedFd::from_raw_fd(fd) });
        timer.set(Some(period))?;
        Ok(timer)
    }

    /// Re-arms the timer with `period`, or stops it with `None`.
    pub fn set(&self, period: Option<std::time::Duration>) -> io::Result<()> {
        let p = period.unwrap_or_default();
        let ts = libc::timespec {
            tv_sec: p.as_secs() as libc::time_t,
            tv_nsec: p.subsec_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        // SAFETY: `spec` is valid for the call; a null old-value pointer is allowed.
        cvt(unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })
            .map(drop)
    }

    /// Consumes the expirations so far and returns how many there were.
    pub fn drain(&self) -> u64 {
        let mut buf = [0u8; 8];
        match read_fd(self.0.as_raw_fd(), &mut buf) {
            Ok(8) => u64::from_ne_bytes(buf),
            _ => 0,
        }
    }

    /// The descriptor, for epoll.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Sets the calling thread's timer slack: how late the kernel may fire its timers to batch
/// wake-ups (50 µs by default, a large part of a sub-millisecond drain period).
pub fn set_timer_slack(ns: u64) {
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes a plain integer and affects only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
}

/// Test seam: failures injected into the system calls above, so that every fallback and error
/// path can be exercised on a kernel that has all the features. Process-wide; off by default.
pub mod seam {
    use std::sync::Mutex;

    /// Failures to inject.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Faults {
        /// perf_event_open fails with EINVAL when `read_format` has PERF_FORMAT_LOST (as before 6.0).
        pub reject_format_lost: bool,
        /// perf_event_open fails with EINVAL when `use_clockid` is set (as before 4.1).
        pub reject_clockid: bool,
        /// mmap of a ring fails with this errno.
        pub mmap_errno: Option<i32>,
    }

    static FAULTS: Mutex<Faults> = Mutex::new(Faults {
        reject_format_lost: false,
        reject_clockid: false,
        mmap_errno: None,
    });

    /// Replaces the injected failures.
    pub fn set(faults: Faults) {
        *FAULTS.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// The injected failures.
    pub fn get() -> Faults {
        *FAULTS.lock().unwrap_or_else(|p| p.into_inner())
    }
}
