#![no_main]
//! cargo-fuzz target `model`: see `leasehold_fuzz::targets::model`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leasehold_fuzz::targets::model(data));
