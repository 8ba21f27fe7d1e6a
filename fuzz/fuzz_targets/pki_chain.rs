//! Device chain verification and CA registration vetting on arbitrary inputs: a time, flags, a
//! CA certificate and a presented chain (see `nerveshub_pki::fuzzing::split_chain_input`).
//! Refusals are expected; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nerveshub_pki::fuzzing::verify_chain(data);
});
