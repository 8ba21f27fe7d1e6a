//! Fuzzes the request-head scanner both listeners run before hyper (heads, Content-Length
//! and chunked framing, upgrades, refusals). Panics and property failures are bugs. The same
//! entry point replays the committed corpus on stable in `nerveshub-server/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_server::fuzzing::http_heads(data) {
        panic!("{e}");
    }
});
