//! Drains one tracepoint with a sink that drops batches, and prints the reader's CPU cost per
//! event: `cargo run --release --example drain -- syscalls:sys_enter_getppid 'common_pid == 123' 3`
use linux_obs_core::{DiscardSink, Observer, ObserverOptions};
use std::time::Duration;

fn cpu_ns() -> u64 {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (ru.ru_utime.tv_sec as u64 + ru.ru_stime.tv_sec as u64) * 1_000_000_000
        + (ru.ru_utime.tv_usec as u64 + ru.ru_stime.tv_usec as u64) * 1000
}

fn main() -> Result<(), linux_obs_core::Error> {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("syscalls:sys_enter_getppid");
    let filter = args.get(2).map(String::as_str);
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut observer = Observer::new(ObserverOptions::default())?;
    observer.add_tracepoint(name, filter)?;
    observer.open(Box::new(DiscardSink))?;
    let start = cpu_ns();
    std::thread::sleep(Duration::from_secs(seconds));
    let used = cpu_ns() - start;
    let stats = observer.close_now();
    println!(
        "samples {} lost {} generated {:?} batches {} cpu {:.1} ms = {:.1} ns/event",
        stats.samples,
        stats.lost,
        stats.generated,
        stats.batches,
        used as f64 / 1e6,
        used as f64 / stats.samples.max(1) as f64
    );
    Ok(())
}
