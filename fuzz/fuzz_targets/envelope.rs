#![no_main]
//! cargo-fuzz target `envelope`: see `leasehold_fuzz::targets::envelope`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leasehold_fuzz::targets::envelope(data));
