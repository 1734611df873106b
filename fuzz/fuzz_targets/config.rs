//! libFuzzer entry point; the checks are in `ferry_fuzz::config` (shared with the seed generator).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::config::check(data));
