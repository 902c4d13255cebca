#![no_main]
//! cargo-fuzz target `ini`: see `leasehold_fuzz::targets::ini`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leasehold_fuzz::targets::ini(data));
