//! The VCDIFF (xdelta3) decoder on arbitrary input: the first two bytes give the source's
//! length, that many bytes are the source, the rest is the patch. Errors are expected;
//! panics, hangs and allocations beyond one bounded window are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (len, rest) = data.split_at(data.len().min(2));
    let len = len.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
    let (source, patch) = rest.split_at(rest.len().min(len));
    let _ = nerveshub_fwup::fuzzing::fuzz_delta(patch, source, 1 << 24);
});
