//! Whole-archive verification on arbitrary input: must return an error, never panic, and
//! never allocate without bound. The seed corpus holds small fixture archives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nerveshub_fwup::{PublicKey, Variables, verify};

/// keys/fwup-key.pub of the fixtures, so signed seeds exercise the signature path too.
const FIXTURE_KEY: &str = "Hr/h9qoI6hYeq4bstLBzB9bzWigGnRhm69nDtuWevXA=";

fuzz_target!(|data: &[u8]| {
    let _ = verify(data, &[], &Variables::new());
    if let Ok(key) = PublicKey::from_base64(FIXTURE_KEY) {
        let _ = verify(data, &[key], &Variables::new());
    }
});
