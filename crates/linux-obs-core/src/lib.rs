//! # linux-obs-core
//!
//! Linux tracepoints read through `perf_event_open(2)`, with no Node.js dependency: the engine
//! under the `linux-obs` npm package.
//!
//! - [`tracefs`]: finds tracefs and reads a tracepoint's `format` file ([`mod@format`]).
//! - [`perf`]: opens one perf event per tracepoint per online CPU ([`cpu`]), all events of a
//!   CPU sharing one mmap'd ring.
//! - [`ring`]: reads a perf ring buffer (wrap-around, lost records, corruption).
//! - [`reader`]: the thread that drains rings into [`batch`]es for a [`BatchSink`].
//! - [`observer`]: ties it together; [`process`] reads namespace inodes.
//!
//! ```no_run
//! use linux_obs_core::{batch, Observer, ObserverOptions, BatchSink, Batch, Error};
//!
//! struct Count(u64);
//! impl BatchSink for Count {
//!     fn deliver(&mut self, b: Batch) -> bool {
//!         for entry in batch::entries(&b.bytes) {
//!             println!("pid {} cpu {} at {} ns", entry.pid, entry.cpu, entry.time);
//!         }
//!         true
//!     }
//!     fn fail(&mut self, e: Error) { eprintln!("reader failed: {e}") }
//! }
//!
//! let mut obs = Observer::new(ObserverOptions::default())?;
//! obs.add_tracepoint("sched:sched_process_exec", None)?;
//! obs.open(Box::new(Count(0)))?;
//! std::thread::sleep(std::time::Duration::from_secs(5));
//! println!("{:?}", obs.close_now());
//! # Ok::<(), Error>(())
//! ```
#![deny(missing_docs)]

pub mod batch;
pub mod cpu;
pub mod decode;
mod error;
pub mod format;
pub mod name;
pub mod observer;
pub mod perf;
pub mod process;
pub mod reader;
pub mod ring;
pub mod sys;
pub mod tracefs;

pub use batch::Batch;
pub use decode::Value;
pub use error::{Error, Result};
pub use format::{Field, FieldKind, Format};
pub use name::TracepointName;
pub use observer::{Closing, Config, DiscardSink, Observer, ObserverOptions, Stats, Tracepoint};
pub use process::{namespace_inode, NamespaceKind};
pub use reader::BatchSink;
pub use tracefs::Tracefs;
