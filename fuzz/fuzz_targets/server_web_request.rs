//! Fuzzes what the web UI reads from a browser before any check: the `Cookie` header (session,
//! flash message, sign-in token) and a urlencoded form body, and the sign-in redirect target.
//! Panics and property failures are bugs. The committed corpus is replayed on stable in
//! `nerveshub-server/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_server::fuzzing::web_request(data) {
        panic!("{e}");
    }
});
