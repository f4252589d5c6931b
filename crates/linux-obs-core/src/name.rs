//! Tracepoint names: `system:event`, validated before anything touches the filesystem.

use crate::error::{Error, Result};
use std::fmt;

/// A validated tracepoint name, e.g. `sched:sched_process_exec`.
///
/// Both parts are made of ASCII letters, digits, `_`, `-` and `.`, and neither is `.` or `..`,
/// so a name can be joined to a tracefs path without escaping it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TracepointName {
    system: String,
    event: String,
}

impl TracepointName {
    /// Parses `system:event` or `system/event`.
    pub fn parse(name: &str) -> Result<TracepointName> {
        let invalid = |reason| Error::InvalidName {
            name: name.to_string(),
            reason,
        };
        let mut parts = name.splitn(2, [':', '/']);
        let system = parts.next().unwrap_or_default();
        let event = parts
            .next()
            .ok_or_else(|| invalid("no ':' between system and event"))?;
        for part in [system, event] {
            if part.is_empty() {
                return Err(invalid("empty system or event"));
            }
            if part == "." || part == ".." {
                return Err(invalid("'.' and '..' are not names"));
            }
            if part.len() > 255 {
                return Err(invalid("longer than 255 bytes"));
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(invalid(
                    "contains a character other than letters, digits, '_', '-' and '.'",
                ));
            }
        }
        Ok(TracepointName {
            system: system.to_string(),
            event: event.to_string(),
        })
    }

    /// The subsystem (`sched`).
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The event (`sched_process_exec`).
    pub fn event(&self) -> &str {
        &self.event
    }
}

impl fmt::Display for TracepointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.system, self.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_separators() {
        let a = TracepointName::parse("sched:sched_switch").unwrap();
        let b = TracepointName::parse("sched/sched_switch").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "sched:sched_switch");
        assert_eq!(a.system(), "sched");
        assert_eq!(a.event(), "sched_switch");
        assert!(TracepointName::parse("a-b.c:x_1").is_ok());
    }

    #[test]
    fn rejects_paths_and_junk() {
        for bad in [
            "",
            "sched",
            ":x",
            "x:",
            "..:x",
            "x:..",
            ".:x",
            "a:b:c",
            "a/b/c",
            "a:b/c",
            "../etc:passwd",
            "a b:c",
            "a:b\0",
            "a:b\n",
            "sched:*",
            "é:x",
        ] {
            let err = TracepointName::parse(bad).unwrap_err();
            assert_eq!(err.code(), "ERR_INVALID_NAME", "{bad:?}");
        }
    }
}
