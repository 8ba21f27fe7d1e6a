//! The NervesHub wire protocol, sans-IO.
//!
//! This crate is being built; see the project's issue tracker.
