//! Node.js binding of `linux-obs-core`: thin by design.
//!
//! - Errors become JS errors whose `code` is the core's stable `ERR_*` code.
//! - Batches cross to JS through one weak ThreadsafeFunction as `Buffer`s that take ownership
//!   of the Rust allocation (no copy).
//! - Closing is split: the fast half (stop the reader, drop the threadsafe function) runs on
//!   the JS thread; closing perf fds, which waits for the kernel, runs on the libuv pool.
//! - An environment cleanup hook does the same when the process exits or a worker is
//!   terminated with observers still open, so no threadsafe function outlives its env.
// The JS-facing surface is documented in index.d.ts; these structs only carry it.
#![allow(missing_docs)]

use linux_obs_core as core;
use linux_obs_core::{Batch, BatchSink, Observer, ObserverOptions};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{CleanupEnvHook, Env, Status};
use napi_derive::napi;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Error status carrying a stable `ERR_*` code (becomes `error.code` in JS).
pub struct Code(String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Status> for Code {
    fn from(status: Status) -> Code {
        Code(format!("ERR_NAPI_{}", status.as_ref().to_ascii_uppercase()))
    }
}

type Result<T> = std::result::Result<T, napi::Error<Code>>;

fn js_error(e: core::Error) -> napi::Error<Code> {
    napi::Error::new(Code(e.code().to_string()), e.to_string())
}

fn internal(message: impl Into<String>) -> napi::Error<Code> {
    napi::Error::new(Code("ERR_INTERNAL".into()), message.into())
}

/// Options from JS. Types are checked by the TypeScript layer; ranges by the core.
#[napi(object)]
pub struct NativeOptions {
    pub ring_bytes: Option<f64>,
    pub wakeup_bytes: Option<f64>,
    pub max_delay_ms: Option<f64>,
    pub high_water_bytes: Option<f64>,
    pub mount_tracefs: Option<bool>,
}

/// One field of a tracepoint's layout.
#[napi(object)]
pub struct NativeField {
    pub name: String,
    #[napi(js_name = "type")]
    pub type_name: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    pub kind: String,
    pub element_size: u32,
    pub is_string: bool,
    pub common: bool,
}

/// A parsed `format` file.
#[napi(object)]
pub struct NativeFormat {
    pub name: String,
    pub id: f64,
    pub fields: Vec<NativeField>,
}

fn to_native_format(name: String, f: &core::Format) -> NativeFormat {
    NativeFormat {
        name,
        id: f.id as f64,
        fields: f
            .fields
            .iter()
            .map(|x| NativeField {
                name: x.name.clone(),
                type_name: x.type_name.clone(),
                offset: x.offset as u32,
                size: x.size as u32,
                signed: x.signed,
                kind: x.kind.as_str().to_string(),
                element_size: x.element_size as u32,
                is_string: x.is_string,
                common: x.common,
            })
            .collect(),
    }
}

/// What the reader sends to JS: a batch, or a failure.
#[napi(object)]
pub struct NativeMessage {
    pub batch: Option<Buffer>,
    pub samples: u32,
    pub lost: f64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Totals, as plain numbers (counts stay far below 2^53).
#[napi(object)]
pub struct NativeStats {
    pub samples: f64,
    pub lost: f64,
    pub lost_by_cpu: Vec<NativeCpuCount>,
    pub lost_by_tracepoint: Vec<f64>,
    pub generated: Option<f64>,
    pub batches: f64,
    pub bytes: f64,
    pub malformed: f64,
    pub errors: f64,
    pub exact_loss: bool,
}

/// A count for one CPU.
#[napi(object)]
pub struct NativeCpuCount {
    pub cpu: u32,
    pub count: f64,
}

type BatchFn = ThreadsafeFunction<NativeMessage, (), NativeMessage, Status, false, true>;

/// Delivers batches through the threadsafe function. Owned by the reader thread and dropped
/// there when it exits, which releases the threadsafe function.
struct TsfnSink {
    tsfn: BatchFn,
}

impl BatchSink for TsfnSink {
    fn deliver(&mut self, batch: Batch) -> bool {
        let msg = NativeMessage {
            samples: batch.samples,
            lost: batch.lost as f64,
            batch: Some(Buffer::from(batch.bytes)),
            error_code: None,
            error_message: None,
        };
        // Unbounded queue: memory is bounded by the reader's high-water mark instead.
        self.tsfn.call(msg, ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
    }

    fn fail(&mut self, error: core::Error) {
        let msg = NativeMessage {
            batch: None,
            samples: 0,
            lost: 0.0,
            error_code: Some(error.code().to_string()),
            error_message: Some(error.to_string()),
        };
        self.tsfn.call(msg, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn acknowledges(&self) -> bool {
        // The JS side acknowledges each batch once its consumer has taken it.
        true
    }
}

fn lock(observer: &Mutex<Observer>) -> MutexGuard<'_, Observer> {
    // A panic while holding the lock is caught at the FFI boundary; the state stays usable.
    observer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Closes what the observer holds, finishing the slow part on a detached thread.
fn close_in_background(observer: &Mutex<Observer>) {
    let closing = lock(observer).begin_close();
    if let Some(closing) = closing {
        let _ = std::thread::Builder::new()
            .name("linux-obs-close".into())
            .spawn(move || closing.finish());
    }
}

/// The native half of `Observer`.
#[napi(custom_finalize)]
pub struct NativeObserver {
    inner: Arc<Mutex<Observer>>,
    // A RefCell, not `&mut self`: napi-rs would otherwise hold a mutable borrow of the whole
    // object while close()'s promise is pending, and stats() in the meantime would fail.
    cleanup: RefCell<Option<CleanupEnvHook<Weak<Mutex<Observer>>>>>,
}

#[napi]
impl NativeObserver {
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, options: NativeOptions) -> Result<NativeObserver> {
        let to_u64 = |v: Option<f64>| v.map(|x| x as u64);
        let observer = Observer::new(ObserverOptions {
            ring_bytes: to_u64(options.ring_bytes),
            wakeup_bytes: to_u64(options.wakeup_bytes),
            max_delay_ms: options.max_delay_ms,
            high_water_bytes: to_u64(options.high_water_bytes),
            mount_tracefs: options.mount_tracefs.unwrap_or(false),
        })
        .map_err(js_error)?;
        let inner = Arc::new(Mutex::new(observer));
        let cleanup = env
            .add_env_cleanup_hook(Arc::downgrade(&inner), |weak| {
                if let Some(observer) = weak.upgrade() {
                    close_in_background(&observer);
                }
            })
            .map_err(|e| internal(format!("registering the environment cleanup hook: {e}")))?;
        Ok(NativeObserver {
            inner,
            cleanup: RefCell::new(Some(cleanup)),
        })
    }

    /// Adds a tracepoint; returns its index.
    #[napi(catch_unwind)]
    pub fn add_tracepoint(&self, name: String, filter: Option<String>) -> Result<u32> {
        lock(&self.inner)
            .add_tracepoint(&name, filter.as_deref())
            .map_err(js_error)
    }

    /// Layout of the tracepoint at `index`.
    #[napi(catch_unwind)]
    pub fn format(&self, index: u32) -> Result<NativeFormat> {
        let observer = lock(&self.inner);
        let tp = observer
            .tracepoints()
            .get(index as usize)
            .ok_or_else(|| internal(format!("no tracepoint {index}")))?;
        Ok(to_native_format(tp.name.to_string(), &tp.format))
    }

    /// Opens off the JS thread; batches then arrive through `on_message`.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn open(&self, on_message: Function<NativeMessage, ()>) -> Result<AsyncTask<OpenTask>> {
        let tsfn: BatchFn = on_message
            .build_threadsafe_function::<NativeMessage>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()
            .map_err(|e| internal(format!("creating the threadsafe function: {e}")))?;
        Ok(AsyncTask::new(OpenTask {
            inner: self.inner.clone(),
            sink: Some(Box::new(TsfnSink { tsfn })),
        }))
    }

    /// Stops delivery now; resolves once every perf fd, ring and thread is freed.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close(&self, env: Env) -> Result<AsyncTask<CloseTask>> {
        let closing = lock(&self.inner).begin_close();
        if let Some(hook) = self.cleanup.borrow_mut().take() {
            let _ = env.remove_env_cleanup_hook(hook);
        }
        Ok(AsyncTask::new(CloseTask { closing }))
    }

    /// The consumer is done with `bytes` of delivered batches.
    #[napi(catch_unwind)]
    pub fn ack(&self, bytes: f64) {
        lock(&self.inner).ack(bytes as u64);
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> NativeStats {
        let s = lock(&self.inner).stats();
        NativeStats {
            samples: s.samples as f64,
            lost: s.lost as f64,
            lost_by_cpu: s
                .lost_by_cpu
                .iter()
                .map(|&(cpu, count)| NativeCpuCount {
                    cpu,
                    count: count as f64,
                })
                .collect(),
            lost_by_tracepoint: s.lost_by_tracepoint.iter().map(|&x| x as f64).collect(),
            generated: s.generated.map(|g| g as f64),
            batches: s.batches as f64,
            bytes: s.bytes as f64,
            malformed: s.malformed as f64,
            errors: s.errors as f64,
            exact_loss: s.exact_loss,
        }
    }

    /// Kernel features in use once open: `{ formatLost, clockMonotonic }`.
    #[napi(catch_unwind)]
    pub fn features(&self) -> Option<Vec<bool>> {
        lock(&self.inner)
            .features()
            .map(|f| vec![f.format_lost, f.clock_monotonic])
    }

    /// Test seam: makes the reader thread fail (see `ReaderShared::inject_fault`).
    #[napi(catch_unwind)]
    pub fn inject_reader_fault(&self) -> bool {
        match lock(&self.inner).reader_shared() {
            Some(shared) => {
                shared.inject_fault();
                true
            }
            None => false,
        }
    }

    /// Test seam: corrupts a ring's header (see `ReaderShared::inject_ring_corruption`).
    #[napi(catch_unwind)]
    pub fn inject_ring_corruption(&self) -> bool {
        match lock(&self.inner).reader_shared() {
            Some(shared) => {
                shared.inject_ring_corruption();
                true
            }
            None => false,
        }
    }
}

impl ObjectFinalize for NativeObserver {
    fn finalize(self, env: Env) -> napi::Result<()> {
        // Garbage-collected without close(): free everything, off this thread.
        if let Some(hook) = self.cleanup.borrow_mut().take() {
            let _ = env.remove_env_cleanup_hook(hook);
        }
        close_in_background(&self.inner);
        Ok(())
    }
}

pub struct OpenTask {
    inner: Arc<Mutex<Observer>>,
    sink: Option<Box<TsfnSink>>,
}

impl Task for OpenTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        let sink = self
            .sink
            .take()
            .ok_or_else(|| napi::Error::from_reason("[ERR_INTERNAL] open task ran twice"))?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lock(&self.inner).open(sink)
        }));
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(napi::Error::from_reason(format!("[{}] {}", e.code(), e))),
            Err(_) => Err(napi::Error::from_reason(
                "[ERR_INTERNAL] panic while opening",
            )),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        Ok(())
    }
}

pub struct CloseTask {
    closing: Option<core::Closing>,
}

impl Task for CloseTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        if let Some(closing) = self.closing.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| closing.finish()));
        }
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        Ok(())
    }
}

/// Test seam: system call failures to inject (process-wide; see `sys::seam`).
#[napi(object)]
pub struct TestFaults {
    pub reject_format_lost: Option<bool>,
    pub reject_clockid: Option<bool>,
    pub mmap_errno: Option<i32>,
}

/// Test seam: replaces the injected system call failures.
#[napi(catch_unwind)]
pub fn set_test_faults(faults: TestFaults) {
    core::sys::seam::set(core::sys::seam::Faults {
        reject_format_lost: faults.reject_format_lost.unwrap_or(false),
        reject_clockid: faults.reject_clockid.unwrap_or(false),
        mmap_errno: faults.mmap_errno,
    });
}

/// Parses the text of a tracepoint `format` file.
#[napi(catch_unwind)]
pub fn parse_format(text: String) -> Result<NativeFormat> {
    let f = core::Format::parse(&text).map_err(js_error)?;
    Ok(to_native_format(f.name.clone(), &f))
}

/// Inode number of a process's namespace (`kind` is the /proc/PID/ns link name).
#[napi(catch_unwind)]
pub fn namespace_inode(pid: u32, kind: String) -> Result<f64> {
    let kind = core::NamespaceKind::from_proc_name(&kind).ok_or_else(|| {
        napi::Error::new(
            Code("ERR_INVALID_OPTION".into()),
            format!("unknown namespace kind {kind:?}: use one of net, ipc, uts, mnt, pid, user, cgroup, time"),
        )
    })?;
    core::namespace_inode(pid, kind)
        .map(|i| i as f64)
        .map_err(js_error)
}

/// Whether /proc/PID exists.
#[napi(catch_unwind)]
pub fn process_exists(pid: u32) -> bool {
    core::process::process_exists(pid)
}

/// Every tracepoint of the running kernel (`system:event`), locating tracefs (and mounting it
/// if `mount` is true).
#[napi(catch_unwind)]
pub fn list_tracepoints(mount: Option<bool>) -> Result<Vec<String>> {
    core::Tracefs::discover_or_mount(mount.unwrap_or(false))
        .and_then(|t| t.list())
        .map_err(js_error)
}

/// Parsed format of a tracepoint of the running kernel.
#[napi(catch_unwind)]
pub fn tracepoint_format(name: String, mount: Option<bool>) -> Result<NativeFormat> {
    let parsed = core::TracepointName::parse(&name).map_err(js_error)?;
    let tracefs = core::Tracefs::discover_or_mount(mount.unwrap_or(false)).map_err(js_error)?;
    let f = tracefs.format(&parsed).map_err(js_error)?;
    Ok(to_native_format(parsed.to_string(), &f))
}
