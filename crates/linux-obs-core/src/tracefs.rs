//! tracefs: where the kernel publishes tracepoints (`events/<system>/<event>/{id,format}`).
//!
//! Discovery follows the kernel's own conventions: a `tracefs` mount found in
//! `/proc/self/mountinfo` (or a `debugfs` mount with a `tracing/` directory), then the standard
//! paths `/sys/kernel/tracing` and `/sys/kernel/debug/tracing`.

use crate::error::{Error, Result};
use crate::format::Format;
use crate::name::TracepointName;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The standard tracefs mount point (kernel 4.1+).
pub const DEFAULT_TRACEFS: &str = "/sys/kernel/tracing";
/// The legacy location under debugfs.
pub const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// A located tracefs.
#[derive(Debug, Clone)]
pub struct Tracefs {
    root: PathBuf,
}

/// A tracefs directory is real only if it holds `events/`: an empty mount point does not count.
fn looks_like_tracefs(dir: &Path) -> io::Result<bool> {
    match fs::metadata(dir.join("events")) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Mount points of tracefs (and debugfs + `/tracing`) listed in a mountinfo text.
pub fn mountinfo_candidates(mountinfo: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mount_point), Some(fstype)) = (fields.get(4), fields.get(sep + 1)) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape_mount_path(mount_point));
        match *fstype {
            "tracefs" => found.push(mount_point),
            "debugfs" => found.push(mount_point.join("tracing")),
            _ => {}
        }
    }
    // Prefer tracefs proper over the debugfs path.
    found.sort_by_key(|p| p.ends_with("tracing") && p.to_string_lossy().contains("/debug"));
    found
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Tracefs {
    /// Uses `root` as tracefs without checking it (tests, or a known location).
    pub fn at(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into() }
    }

    /// Finds a mounted tracefs.
    ///
    /// Fails with `ERR_NO_TRACEFS` naming the places it looked, or `ERR_PERMISSION` when a
    /// tracefs exists but this process may not read it.
    pub fn discover() -> Result<Tracefs> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut candidates = mountinfo_candidates(&mountinfo);
        for fallback in [DEFAULT_TRACEFS, DEBUGFS_TRACING] {
            if !candidates.iter().any(|c| c == Path::new(fallback)) {
                candidates.push(PathBuf::from(fallback));
            }
        }
        let mut denied = None;
        for dir in &candidates {
            match looks_like_tracefs(dir) {
                Ok(true) => return Ok(Tracefs { root: dir.clone() }),
                Ok(false) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
                    denied.get_or_insert((dir.clone(), e));
                }
                Err(_) => {}
            }
        }
        if let Some((dir, source)) = denied {
            return Err(Error::io(
                format!("reading tracefs at {}", dir.display()),
                source,
            ));
        }
        Err(Error::NoTracefs {
            detail: format!(
                "looked in /proc/self/mountinfo and at {}",
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Finds tracefs, mounting it at [`DEFAULT_TRACEFS`] first when `mount` is true and none is
    /// mounted (needs CAP_SYS_ADMIN).
    pub fn discover_or_mount(mount: bool) -> Result<Tracefs> {
        match Tracefs::discover() {
            Err(Error::NoTracefs { detail }) if mount => {
                crate::sys::mount_tracefs(Path::new(DEFAULT_TRACEFS)).map_err(|e| {
                    Error::NoTracefs {
                        detail: format!("{detail}; mounting it at {DEFAULT_TRACEFS} failed: {e}"),
                    }
                })?;
                Tracefs::discover()
            }
            other => other,
        }
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `events/<system>/<event>` for a tracepoint.
    pub fn event_dir(&self, name: &TracepointName) -> PathBuf {
        self.root
            .join("events")
            .join(name.system())
            .join(name.event())
    }

    /// Reads and parses the tracepoint's `format` file.
    ///
    /// A missing tracepoint gives `ERR_UNKNOWN_TRACEPOINT` with close names as suggestions.
    pub fn format(&self, name: &TracepointName) -> Result<Format> {
        let path = self.event_dir(name).join("format");
        match fs::read_to_string(&path) {
            Ok(text) => Format::parse(&text).map_err(|e| match e {
                Error::InvalidFormat { line, message, .. } => Error::InvalidFormat {
                    name: Some(name.to_string()),
                    line,
                    message,
                },
                other => other,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::UnknownTracepoint {
                name: name.to_string(),
                searched: path,
                suggestions: self.suggestions(name),
            }),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Every tracepoint, as `system:event`, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let events = self.root.join("events");
        let mut out = Vec::new();
        let systems = fs::read_dir(&events)
            .map_err(|e| Error::io(format!("listing {}", events.display()), e))?;
        for system in systems.flatten() {
            if !system.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let Ok(entries) = fs::read_dir(system.path()) else {
                continue;
            };
            for event in entries.flatten() {
                if event.path().join("format").exists() {
                    out.push(format!(
                        "{}:{}",
                        system.file_name().to_string_lossy(),
                        event.file_name().to_string_lossy()
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Up to five existing names closest to `name` (same system first).
    fn suggestions(&self, name: &TracepointName) -> Vec<String> {
        let Ok(all) = self.list() else {
            return Vec::new();
        };
        let wanted = name.to_string();
        let mut scored: Vec<(usize, String)> = all
            .into_iter()
            .filter_map(|candidate| {
                let (sys, ev) = candidate.split_once(':')?;
                let mut d = edit_distance(ev, name.event());
                if sys != name.system() {
                    d = d.min(edit_distance(&candidate, &wanted)) + 1;
                }
                let contains = ev.contains(name.event()) || name.event().contains(ev);
                let limit = (name.event().len() / 3).max(2);
                (d <= limit || (contains && sys == name.system())).then_some((d, candidate))
            })
            .collect();
        scored.sort();
        scored.into_iter().take(5).map(|(_, n)| n).collect()
    }

    /// Asks the kernel why it rejects `filter` for `name`.
    ///
    /// perf's `SET_FILTER` ioctl only answers EINVAL; ftrace explains parse errors in
    /// `error_log`. The filter is written to the event of a private, short-lived tracefs
    /// instance (never to the global one), and the instance's last `error_log` entry is returned.
    pub fn explain_filter_error(&self, name: &TracepointName, filter: &str) -> Option<String> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let instance = self.root.join("instances").join(format!(
            "linux-obs-filter-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&instance).ok()?;
        let filter_file = instance
            .join("events")
            .join(name.system())
            .join(name.event())
            .join("filter");
        let _ = fs::write(&filter_file, filter);
        let log = fs::read_to_string(instance.join("error_log")).ok();
        let _ = fs::remove_dir(&instance);
        parse_error_log(&log?)
    }
}

/// The last entry of an `error_log`, without its timestamp: `error: Field not found` plus the
/// command and caret lines.
pub fn parse_error_log(log: &str) -> Option<String> {
    let start = log.rfind("\n[").map(|i| i + 1).unwrap_or(0);
    let entry = log[start..].trim_end();
    if entry.is_empty() {
        return None;
    }
    let entry = match entry.find("] ") {
        Some(i) if entry.starts_with('[') => &entry[i + 2..],
        _ => entry,
    };
    let mut lines = entry.lines();
    let head = lines.next()?;
    let head = head
        .rsplit_once("error: ")
        .map(|(_, r)| r)
        .unwrap_or(head)
        .trim();
    let rest: Vec<&str> = lines.collect();
    Some(if rest.is_empty() {
        head.to_string()
    } else {
        format!("{head}\n{}", rest.join("\n"))
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tracefs_and_debugfs_in_mountinfo() {
        let info = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
35 24 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:12 - tracefs nodev rw
36 24 0:7 / /sys/kernel/debug rw,relatime shared:13 - debugfs debugfs rw
37 24 0:7 / /mnt/my\\040trace rw - tracefs nodev rw
";
        let found = mountinfo_candidates(info);
        assert_eq!(
            found,
            vec![
                PathBuf::from("/sys/kernel/tracing"),
                PathBuf::from("/mnt/my trace"),
                PathBuf::from("/sys/kernel/debug/tracing"),
            ]
        );
    }

    #[test]
    fn error_log_last_entry() {
        let log = "[  208.895224] event filter parse error: error: Field not found\n  Command: pid ==== 3\n               ^\n[  208.897757] event filter parse error: error: Invalid operator\n  Command: prev_pid ==== 3\n                    ^\n";
        let reason = parse_error_log(log).unwrap();
        assert!(
            reason.starts_with("Invalid operator\n  Command: prev_pid ==== 3"),
            "{reason}"
        );
        assert_eq!(parse_error_log(""), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("sched_switch", "sched_switch"), 0);
        assert_eq!(edit_distance("sched_swtich", "sched_switch"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn unknown_tracepoint_suggests_close_names() {
        let dir = std::env::temp_dir().join(format!("linux-obs-tracefs-{}", std::process::id()));
        for ev in ["sched_switch", "sched_wakeup", "sched_process_exec"] {
            let d = dir.join("events/sched").join(ev);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("format"), "name: x\nID: 1\nformat:\n").unwrap();
        }
        let fs_ = Tracefs::at(&dir);
        let err = fs_
            .format(&TracepointName::parse("sched:sched_swich").unwrap())
            .unwrap_err();
        assert_eq!(err.code(), "ERR_UNKNOWN_TRACEPOINT");
        let msg = err.to_string();
        assert!(msg.contains("sched:sched_switch"), "{msg}");
        assert!(!msg.contains("sched_process_exec"), "{msg}");
        assert_eq!(fs_.list().unwrap().len(), 3);
        fs::remove_dir_all(&dir).unwrap();
    }
}
