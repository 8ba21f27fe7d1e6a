//! Applying a `.fw` archive to a destination (`fwup -a`).
//!
//! [`apply`] (or [`apply_with_host`]) reads an archive from any [`std::io::Read`] and writes
//! the selected task into a [`Target`]: an image file or block device ([`FileTarget`]),
//! memory ([`MemoryTarget`]), or anything implementing the trait. Progress, `info()`
//! messages and a last chance to veto before `on-finish` go through [`ApplyEvents`]; host
//! operations (commands, host files, mounted paths) through a [`Host`].
//!
//! Images come out as C fwup 1.16 writes them, byte for byte: writes pass through fwup's
//! 128 KiB-segment block cache ([`BlockCache`]), whose rules decide what reaches the
//! destination and how far a new image file grows.

mod cache;
mod crypto;
mod direct;
mod engine;
mod fat;
mod functions;
mod fuzz;
mod host;
mod partitions;
mod progress;
mod requirements;
mod target;
mod uboot_env;

pub use cache::{BlockCache, SEGMENT_SIZE};
pub use engine::{ApplyEvents, ApplyOptions, ApplyReport, apply, apply_with_host};
pub use fat::fuzz_fat;
pub use fuzz::fuzz_apply;
pub use host::{Host, HostSink, SystemHost};
pub use progress::{PercentScale, Progress};
pub use target::{FileTarget, MemoryTarget, Target};
pub use uboot_env::fuzz_uboot_env;
pub use uboot_env::{
    MAX_UBOOT_ENV_SIZE, UbootEnv, UbootEnvLocation, encode_uboot_env, parse_uboot_env,
    read_uboot_env, write_uboot_env,
};
