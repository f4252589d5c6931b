//! Fuzz target `batch`: Perf records pushed into a BatchBuilder come back from batch::entries, in order.
//! Layout and oracles: `linux_obs_core_fuzz::fuzz_batch`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| linux_obs_core_fuzz::fuzz_batch(data));
