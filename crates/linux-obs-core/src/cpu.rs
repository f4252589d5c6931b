//! Online CPUs, from `/sys/devices/system/cpu/online`.

use crate::error::{Error, Result};

/// Where the kernel lists online CPUs.
pub const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

/// Parses a kernel CPU list such as `0-3,5,7-8` into sorted CPU numbers.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>> {
    let bad = |message: String| Error::Io {
        context: format!("parsing CPU list {:?}", text.trim()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
    };
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let lo: u32 = lo
            .trim()
            .parse()
            .map_err(|_| bad(format!("{lo:?} is not a CPU number")))?;
        let hi: u32 = hi
            .trim()
            .parse()
            .map_err(|_| bad(format!("{hi:?} is not a CPU number")))?;
        if hi < lo || hi - lo > 65_536 {
            return Err(bad(format!("bad range {part:?}")));
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The CPUs online now.
pub fn online_cpus() -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(ONLINE_CPUS)
        .map_err(|e| Error::io(format!("reading {ONLINE_CPUS}"), e))?;
    let cpus = parse_cpu_list(&text)?;
    if cpus.is_empty() {
        return Err(Error::Io {
            context: format!("reading {ONLINE_CPUS}"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no CPU is online"),
        });
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_singles() {
        assert_eq!(
            parse_cpu_list("0-3,5,7-8\n").unwrap(),
            vec![0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("2,0-1").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("0-").is_err());
    }

    #[test]
    fn this_machine_has_cpus() {
        assert!(!online_cpus().unwrap().is_empty());
    }
}
