//! Ferry's fuzz targets: what each one feeds to the code under test and the invariants it
//! asserts, one module per target. The libFuzzer entry points (`fuzz_targets/*.rs`) call
//! `MODULE::check`; the seed generator (`examples/seeds.rs`) runs every seed it writes through
//! the same checks, so a checked-in seed is known to pass.
//!
//! Beyond "never panics", the targets check what a hostile peer or a bad file could break:
//! decoding agrees with encoding, paths stay inside the share, limits hold on what is accepted.

pub mod api_json;
pub mod compact;
pub mod config;
pub mod frame;
pub mod message;
pub mod relpath;

/// The fuzz targets, named as in `Cargo.toml` and `corpus/<target>/`.
pub const TARGETS: [&str; 6] = ["frame", "message", "compact", "relpath", "api_json", "config"];

/// Reads fuzz input as a sequence of small choices; past the end every choice is 0, so any
/// input, even an empty one, describes a complete case.
pub struct Choices<'a>(&'a [u8]);

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Choices(data)
    }

    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// A number below `n` (which must be at least 1 and at most 256).
    pub fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }

    /// A little-endian u32 from the next four bytes.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}
