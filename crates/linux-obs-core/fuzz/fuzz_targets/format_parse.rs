//! Fuzz target `format_parse`: Arbitrary bytes (lossy UTF-8) as a tracepoint format file; parsed formats decode records built for them.
//! Layout and oracles: `linux_obs_core_fuzz::fuzz_format_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| linux_obs_core_fuzz::fuzz_format_parse(data));
