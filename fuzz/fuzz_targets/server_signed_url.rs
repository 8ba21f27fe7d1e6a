//! Fuzzes signed download URL query strings: a repeated parameter is never accepted.
//! Errors are expected; panics and property failures are bugs. The same entry point replays
//! the committed corpus on stable in `nerveshub-server/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_server::fuzzing::signed_url_query(data) {
        panic!("{e}");
    }
});
