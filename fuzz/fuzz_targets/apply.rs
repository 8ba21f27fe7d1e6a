//! Applying arbitrary archives to a 4 MiB in-memory target: must never panic and never
//! read or write outside the target (the target itself panics if asked to). Host
//! operations are stubbed, `--unsafe` is on so every function is reachable. The seed corpus
//! holds small fixture archives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nerveshub_fwup::fuzzing::fuzz_apply(data);
});
