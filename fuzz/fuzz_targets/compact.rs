//! libFuzzer entry point; the checks are in `ferry_fuzz::compact` (shared with the seed generator).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::compact::check(data));
