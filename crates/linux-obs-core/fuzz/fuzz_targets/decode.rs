//! Fuzz target `decode`: A format text, a NUL, a raw record: decode(), validate() and decode_field() agree and never panic.
//! Layout and oracles: `linux_obs_core_fuzz::fuzz_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| linux_obs_core_fuzz::fuzz_decode(data));
