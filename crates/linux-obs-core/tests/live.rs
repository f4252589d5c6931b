//! Against the running kernel (root and tracefs needed): skips with the reason otherwise, and
//! fails instead under CI=true.

use linux_obs_core::batch::{entries, LOST_SOURCE};
use linux_obs_core::{Batch, BatchSink, Error, Observer, ObserverOptions};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn capability_missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    if let Err(e) = linux_obs_core::Tracefs::discover() {
        return Some(format!("no tracefs: {e}"));
    }
    None
}

macro_rules! require_kernel {
    () => {
        if let Some(reason) = capability_missing() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but the kernel capability is missing: {reason}");
            }
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

struct Channel(mpsc::Sender<Batch>);

impl BatchSink for Channel {
    fn deliver(&mut self, batch: Batch) -> bool {
        self.0.send(batch).is_ok()
    }
    fn fail(&mut self, error: Error) {
        panic!("reader failed: {error}");
    }
}

#[test]
fn exec_sample_reaches_the_sink_with_its_pid_and_filename() {
    require_kernel!();
    let dir = std::env::temp_dir().join(format!("linux-obs-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("true-live");
    std::fs::copy("/bin/true", &path).unwrap();

    let mut observer = Observer::new(ObserverOptions::default()).unwrap();
    let exec = observer
        .add_tracepoint("sched:sched_process_exec", None)
        .unwrap();
    let format = observer.tracepoints()[exec as usize].format.clone();
    let (tx, rx) = mpsc::channel();
    observer.open(Box::new(Channel(tx))).unwrap();
    let child = std::process::Command::new(&path).status().unwrap();
    assert!(child.success());

    let filename = format.field("filename").unwrap().clone();
    let pid_field = format.field("pid").unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        let Ok(batch) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        for e in entries(&batch.bytes) {
            if e.source == LOST_SOURCE {
                continue;
            }
            let loc = u32::from_ne_bytes(
                e.data[filename.offset..filename.offset + 4]
                    .try_into()
                    .unwrap(),
            );
            let (start, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
            let name = &e.data[start..start + len - 1]; // length includes the NUL
            if name == path.as_os_str().as_encoded_bytes() {
                let pid = i32::from_ne_bytes(
                    e.data[pid_field.offset..pid_field.offset + 4]
                        .try_into()
                        .unwrap(),
                );
                found = Some((e.pid, pid, e.time));
            }
        }
    }
    let stats = observer.close_now();
    std::fs::remove_dir_all(&dir).unwrap();
    let (sample_pid, field_pid, time) = found.expect("exec event of the child");
    assert_eq!(sample_pid as i32, field_pid);
    assert!(time > 0);
    assert!(stats.samples >= 1);
    assert_eq!(stats.lost, 0);
    assert!(stats.generated.unwrap() >= stats.samples);
}

#[test]
fn unknown_tracepoint_and_bad_filter() {
    require_kernel!();
    let mut observer = Observer::new(ObserverOptions::default()).unwrap();
    let err = observer
        .add_tracepoint("sched:sched_swich", None)
        .unwrap_err();
    assert_eq!(err.code(), "ERR_UNKNOWN_TRACEPOINT");
    observer
        .add_tracepoint("sched:sched_switch", Some("prev_pid ==== 1"))
        .unwrap();
    let err = observer
        .open(Box::new(linux_obs_core::DiscardSink))
        .unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_FILTER");
    assert!(!observer.is_open());
}

#[test]
fn every_format_file_of_this_kernel_parses() {
    require_kernel!();
    let tracefs = linux_obs_core::Tracefs::discover().unwrap();
    let all = tracefs.list().unwrap();
    assert!(all.len() > 100, "only {} tracepoints", all.len());
    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeMap::new();
    for name in &all {
        let parsed = linux_obs_core::TracepointName::parse(name).unwrap();
        match tracefs.format(&parsed) {
            Ok(f) => {
                for field in &f.fields {
                    *kinds.entry(field.kind.as_str()).or_insert(0) += 1;
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} format files failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    eprintln!("{} tracepoints parsed; field kinds: {kinds:?}", all.len());
}

#[test]
fn accounting_is_exact_under_loss_read_plus_lost_equals_generated() {
    require_kernel!();
    let mut observer = Observer::new(ObserverOptions {
        ring_bytes: Some(2 * 4096 * linux_obs_core::cpu::online_cpus().unwrap().len() as u64),
        max_delay_ms: Some(50.0),
        ..Default::default()
    })
    .unwrap();
    // Only this process's getppid calls (common_pid is the thread id: this thread).
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    observer
        .add_tracepoint(
            "syscalls:sys_enter_getppid",
            Some(&format!("common_pid == {tid}")),
        )
        .unwrap();
    observer
        .open(Box::new(linux_obs_core::DiscardSink))
        .unwrap();
    for _ in 0..200_000 {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    let stats = observer.close_now();
    let generated = stats.generated.unwrap();
    assert_eq!(generated, 200_000, "{stats:?}");
    assert!(stats.lost > 0, "a 2-page ring must overflow: {stats:?}");
    assert_eq!(
        stats.samples + stats.lost + stats.malformed,
        generated,
        "{stats:?}"
    );
}

#[test]
fn idle_reader_waits_for_a_doorbell_and_wakes_on_the_next_event() {
    require_kernel!();
    let mut observer = Observer::new(ObserverOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("linux-obs-doorbell-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("true-doorbell");
    std::fs::copy("/bin/true", &path).unwrap();
    let filter = format!("filename == \"{}\"", path.display());
    observer
        .add_tracepoint("sched:sched_process_exec", Some(&filter))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    observer.open(Box::new(Channel(tx))).unwrap();
    let shared = observer.reader_shared().unwrap();
    let wait_for = |want_idle: bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.is_idle() != want_idle && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        shared.is_idle() == want_idle
    };
    // Nothing matches the filter: after the quiet period the timer stops.
    assert!(wait_for(true), "the reader never went idle");
    for round in 0..3 {
        let rang = shared.doorbell_wakeups();
        assert!(std::process::Command::new(&path)
            .status()
            .unwrap()
            .success());
        let batch = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the doorbell woke the reader");
        assert_eq!(batch.samples, 1, "round {round}");
        assert_eq!(
            shared.doorbell_wakeups(),
            rang + 1,
            "round {round}: woken by the doorbell"
        );
        assert!(wait_for(true), "idle again after the burst (round {round})");
    }
    let stats = observer.close_now();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!((stats.samples, stats.lost), (3, 0));
}
