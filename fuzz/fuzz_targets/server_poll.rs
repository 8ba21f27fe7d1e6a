//! Fuzzes what the device poll routes read from a request: `nerves_hub_link_http` headers
//! and a JSON body, on the way to join parameters. Errors are expected; panics and property
//! failures are bugs. The committed corpus is replayed on stable in
//! `nerveshub-server/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_server::fuzzing::poll_request(data) {
        panic!("{e}");
    }
});
