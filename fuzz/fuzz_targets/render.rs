#![no_main]
//! cargo-fuzz target `render`: see `leasehold_fuzz::targets::render`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leasehold_fuzz::targets::render(data));
