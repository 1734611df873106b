//! libFuzzer entry point; the checks are in `ferry_fuzz::relpath` (shared with the seed generator).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::relpath::check(data));
