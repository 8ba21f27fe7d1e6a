//! Fuzzes packets the `fwup` program writes to the client: a packet kind always comes from its first two bytes.
//! Errors are expected; panics and property failures are bugs. The same entry point replays
//! the committed corpus on stable in `nerveshub-client/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_client::fuzzing::fwup_packet(data) {
        panic!("{e}");
    }
});
