//! Applying a `.fw` archive to a destination (`fwup -a`).
//!
//! The destination is a [`Target`]; see [`target`] for the contract every writer in this
//! module works against.

pub mod target;

pub use target::{MemoryTarget, Target};
