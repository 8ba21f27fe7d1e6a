//! The U-Boot environment parser on arbitrary bytes, as a plain and as a redundant
//! environment; whatever parses is re-encoded into the same size and must read back with
//! the same pairs. Errors are expected; panics and round-trip mismatches are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nerveshub_fwup::fuzzing::fuzz_uboot_env(data);
});
