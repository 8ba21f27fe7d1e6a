//! The ZIP container readers on arbitrary input: walk every entry, read all of its data and
//! the central directory (streaming), then every entry through the central directory
//! (seekable). Errors are expected; panics, hangs and unbounded allocation are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nerveshub_fwup::fuzzing::fuzz_zip_stream(data);
});
