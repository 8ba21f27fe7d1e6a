//! The Erlang external term decoder (NH1 token payloads) and NH1 token verification on arbitrary
//! bytes; a decoded term must encode and decode back to itself.
//! Errors are expected; panics and property failures are bugs. The same entry point replays
//! the committed corpus on stable in `nerveshub-proto/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_proto::fuzzing::term(data) {
        panic!("{e}");
    }
});
