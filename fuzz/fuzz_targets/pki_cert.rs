//! Certificate parsing on arbitrary bytes (DER, PEM, PEM bundles) and the CA structure checks.
//! Errors are expected; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nerveshub_pki::fuzzing::parse_certificate(data);
});
