//! NervesHub device identity: certificates, Device CAs and chain validation, with no I/O.
//!
//! This crate is being built; see the project's issue tracker.
