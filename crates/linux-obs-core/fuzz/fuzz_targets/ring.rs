//! Fuzz target `ring`: A corrupt or valid perf ring (header page + 2^n data bytes): drain() matches a byte-level model, terminates, and resynchronises on errors.
//! Layout and oracles: `linux_obs_core_fuzz::fuzz_ring`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| linux_obs_core_fuzz::fuzz_ring(data));
