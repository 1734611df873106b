//! The seeded multi-device simulation (see `world.rs` for what one history does and checks).

pub mod device;
mod regressions;
pub mod world;
