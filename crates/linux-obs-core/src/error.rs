//! Errors of the core, each with a stable code (`ERR_*`) that the Node binding exposes as
//! `error.code`.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between a tracepoint name and a decoded event.
///
/// Every variant maps to a stable code through [`Error::code`]; messages say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tracepoint does not exist under tracefs `events/`.
    #[error("unknown tracepoint '{name}': no {searched}{}", suggest(.suggestions))]
    UnknownTracepoint {
        /// The name as given.
        name: String,
        /// The path that was looked for.
        searched: PathBuf,
        /// Existing tracepoints with close names.
        suggestions: Vec<String>,
    },

    /// The tracepoint name is not `system:event` made of `[A-Za-z0-9_.-]`.
    #[error("invalid tracepoint name {name:?}: {reason}; expected 'system:event' (or 'system/event') made of letters, digits, '_', '-' and '.'")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The kernel refused a filter expression.
    #[error("invalid filter for {tracepoint}: {filter:?} was rejected by the kernel{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    InvalidFilter {
        /// Tracepoint the filter was for.
        tracepoint: String,
        /// The filter text.
        filter: String,
        /// The kernel's explanation from tracefs `error_log`, when it gave one.
        reason: Option<String>,
    },

    /// An option is out of range.
    #[error("invalid option {option}: {message}")]
    InvalidOption {
        /// The option's name as users spell it (`ringBytes`, ...).
        option: &'static str,
        /// The allowed range and what was given.
        message: String,
    },

    /// The kernel denied access (perf_event_open or tracefs).
    #[error("permission denied: {action}: {source}. Run as root, or grant CAP_PERFMON (perf_event_open) and read access to tracefs, or lower /proc/sys/kernel/perf_event_paranoid (now {})", paranoid.map(|p| p.to_string()).unwrap_or_else(|| "unreadable".into()))]
    Permission {
        /// What was attempted.
        action: String,
        /// Current value of `/proc/sys/kernel/perf_event_paranoid`.
        paranoid: Option<i32>,
        /// The underlying error (EACCES/EPERM).
        source: io::Error,
    },

    /// No tracefs is mounted (and mounting was not requested or failed).
    #[error("tracefs is not mounted ({detail}): mount it with `mount -t tracefs nodev /sys/kernel/tracing`, or pass {{ mountTracefs: true }} when running as root")]
    NoTracefs {
        /// Where it looked, and what mounting said if it was tried.
        detail: String,
    },

    /// Not enough file descriptors for one perf event per tracepoint and CPU.
    #[error("file descriptor limit: {needed} more descriptors are needed (2 for each of {tracepoints} tracepoints x {cpus} CPUs, + 3) but RLIMIT_NOFILE is {limit} with {in_use} in use; raise it with `ulimit -n` or watch fewer tracepoints")]
    FdLimit {
        /// RLIMIT_NOFILE soft limit.
        limit: u64,
        /// Descriptors already open.
        in_use: u64,
        /// Descriptors this observer needs.
        needed: u64,
        /// Number of tracepoints.
        tracepoints: usize,
        /// Number of online CPUs.
        cpus: usize,
    },

    /// The ring buffers need more locked memory than the process may lock.
    #[error("locked memory limit: the rings need {requested_kib} KiB but this process may lock {allowed_kib} KiB (perf_event_mlock_kb {mlock_kb} per CPU plus RLIMIT_MEMLOCK); pass a smaller ringBytes, run as root (or with CAP_IPC_LOCK), or raise /proc/sys/kernel/perf_event_mlock_kb")]
    MlockLimit {
        /// Memory the rings need, in KiB (data plus one header page per CPU).
        requested_kib: u64,
        /// Memory this process may lock for perf, in KiB.
        allowed_kib: u64,
        /// `/proc/sys/kernel/perf_event_mlock_kb`.
        mlock_kb: u64,
    },

    /// An operation that needs an open observer ran before `open()`.
    #[error("observer is not open: call open() first")]
    NotOpen,

    /// An operation that must happen before `open()` ran after it.
    #[error("observer is already open: {0}")]
    AlreadyOpen(&'static str),

    /// The observer was closed.
    #[error("observer is closed: create a new Observer")]
    Closed,

    /// No such process in /proc.
    #[error("no process with pid {pid} (it exited, or lives in another pid namespace)")]
    NoProcess {
        /// The pid asked for.
        pid: u32,
    },

    /// A `format` file could not be parsed.
    #[error("cannot parse tracepoint format{}: line {line}: {message}", name.as_deref().map(|n| format!(" of {n}")).unwrap_or_default())]
    InvalidFormat {
        /// Event name, when known.
        name: Option<String>,
        /// 1-based line number.
        line: usize,
        /// What was expected.
        message: String,
    },

    /// A raw record too short for its format, or a dynamic field pointing outside it.
    #[error("malformed record: field '{field}' {message}")]
    MalformedRecord {
        /// The field that does not fit.
        field: String,
        /// How it does not fit.
        message: String,
    },

    /// The reader thread failed after open.
    #[error("reader failed: {message}")]
    Reader {
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<io::Error>,
    },

    /// Any other system call failure, with context.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: io::Error,
    },
}

fn suggest(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "; list the available ones with `ls <tracefs>/events/*`".to_string()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

impl Error {
    /// The stable code for this error, as exposed to JavaScript in `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownTracepoint { .. } => "ERR_UNKNOWN_TRACEPOINT",
            Error::InvalidName { .. } => "ERR_INVALID_NAME",
            Error::InvalidFilter { .. } => "ERR_INVALID_FILTER",
            Error::InvalidOption { .. } => "ERR_INVALID_OPTION",
            Error::Permission { .. } => "ERR_PERMISSION",
            Error::NoTracefs { .. } => "ERR_NO_TRACEFS",
            Error::FdLimit { .. } => "ERR_FD_LIMIT",
            Error::MlockLimit { .. } => "ERR_MLOCK_LIMIT",
            Error::NotOpen => "ERR_NOT_OPEN",
            Error::AlreadyOpen(_) => "ERR_ALREADY_OPEN",
            Error::Closed => "ERR_CLOSED",
            Error::NoProcess { .. } => "ERR_NO_PROCESS",
            Error::InvalidFormat { .. } => "ERR_INVALID_FORMAT",
            Error::MalformedRecord { .. } => "ERR_MALFORMED_RECORD",
            Error::Reader { .. } => "ERR_READER",
            Error::Io { .. } => "ERR_IO",
        }
    }

    /// Wraps an OS error with what was being done; EACCES/EPERM become [`Error::Permission`].
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        let context = context.into();
        match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => Error::Permission {
                action: context,
                paranoid: crate::sys::perf_event_paranoid(),
                source,
            },
            _ => Error::Io { context, source },
        }
    }
}
