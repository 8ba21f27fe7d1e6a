//! Fuzzes request paths and queries as the listeners check them (percent-decoding, UTF-8, control characters).
//! Errors are expected; panics and property failures are bugs. The same entry point replays
//! the committed corpus on stable in `nerveshub-server/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_server::fuzzing::uri_component(data) {
        panic!("{e}");
    }
});
