//! Processes and their namespaces (`/proc/PID/ns/*`), to attribute events to containers.

use crate::error::{Error, Result};
use std::io;
use std::os::unix::fs::MetadataExt;

/// The namespace kinds of `/proc/PID/ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceKind {
    /// `net`
    Network,
    /// `ipc`
    Ipc,
    /// `uts`
    Uts,
    /// `mnt`
    Mount,
    /// `pid`
    Pid,
    /// `user`
    User,
    /// `cgroup`
    Cgroup,
    /// `time`
    Time,
}

impl NamespaceKind {
    /// Every kind.
    pub const ALL: [NamespaceKind; 8] = [
        NamespaceKind::Network,
        NamespaceKind::Ipc,
        NamespaceKind::Uts,
        NamespaceKind::Mount,
        NamespaceKind::Pid,
        NamespaceKind::User,
        NamespaceKind::Cgroup,
        NamespaceKind::Time,
    ];

    /// The link name under `/proc/PID/ns`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NamespaceKind::Network => "net",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Uts => "uts",
            NamespaceKind::Mount => "mnt",
            NamespaceKind::Pid => "pid",
            NamespaceKind::User => "user",
            NamespaceKind::Cgroup => "cgroup",
            NamespaceKind::Time => "time",
        }
    }

    /// Parses a link name (`net`, `pid`, ...).
    pub fn from_proc_name(name: &str) -> Option<NamespaceKind> {
        NamespaceKind::ALL
            .into_iter()
            .find(|k| k.proc_name() == name)
    }
}

/// The inode number identifying the `kind` namespace of process `pid`: two processes are in
/// the same namespace exactly when these are equal (as `readlink /proc/PID/ns/KIND` shows).
pub fn namespace_inode(pid: u32, kind: NamespaceKind) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/{}", kind.proc_name());
    // stat() follows the magic link to the nsfs inode: the number in `pid:[4026531836]`.
    match std::fs::metadata(&path) {
        Ok(m) => Ok(m.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            if std::fs::metadata(format!("/proc/{pid}")).is_ok() {
                // The process exists but the kernel lacks this namespace kind (time: 5.6+).
                Err(Error::Io {
                    context: format!("reading {path}"),
                    source: io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("this kernel has no {} namespaces", kind.proc_name()),
                    ),
                })
            } else {
                Err(Error::NoProcess { pid })
            }
        }
        Err(e) => Err(Error::io(format!("reading {path}"), e)),
    }
}

/// Whether `/proc/PID` exists.
pub fn process_exists(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_namespace_matches_readlink() {
        let link = std::fs::read_link("/proc/self/ns/pid").unwrap();
        let text = link.to_string_lossy();
        let inode: u64 = text
            .trim_start_matches("pid:[")
            .trim_end_matches(']')
            .parse()
            .unwrap();
        assert_eq!(
            namespace_inode(std::process::id(), NamespaceKind::Pid).unwrap(),
            inode
        );
    }

    #[test]
    fn missing_process() {
        let err = namespace_inode(u32::MAX - 1, NamespaceKind::Network).unwrap_err();
        assert_eq!(err.code(), "ERR_NO_PROCESS");
        assert!(!process_exists(u32::MAX - 1));
    }

    #[test]
    fn names_round_trip() {
        for k in NamespaceKind::ALL {
            assert_eq!(NamespaceKind::from_proc_name(k.proc_name()), Some(k));
        }
    }
}
