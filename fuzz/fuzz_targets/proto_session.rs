//! A client and a server session fed arbitrary frames, timer firings, connects, disconnects,
//! joins, leaves and pushes; the sessions must never emit a frame that does not round-trip, and
//! the server must never reply to a push on `device`.
//! Errors are expected; panics and property failures are bugs. The same entry point replays
//! the committed corpus on stable in `nerveshub-proto/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_proto::fuzzing::session(data) {
        panic!("{e}");
    }
});
