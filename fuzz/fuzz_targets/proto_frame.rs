//! Phoenix frame decoding (V2 JSON and V3 MessagePack) and every typed message on arbitrary bytes;
//! a decoded frame must encode and decode back to itself.
//! Errors are expected; panics and property failures are bugs. The same entry point replays
//! the committed corpus on stable in `nerveshub-proto/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nerveshub_proto::fuzzing::frame(data) {
        panic!("{e}");
    }
});
