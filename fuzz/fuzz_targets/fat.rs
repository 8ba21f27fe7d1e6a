//! FAT operations on arbitrary or corrupted volumes: must fail cleanly, never panic, and
//! never touch bytes outside the volume (the entry point panics if they do).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nerveshub_fwup::fuzzing::fuzz_fat(data);
});
