#![no_main]
//! cargo-fuzz target `notification`: see `leasehold_fuzz::targets::notification`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leasehold_fuzz::targets::notification(data));
