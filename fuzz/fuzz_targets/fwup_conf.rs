//! The fwup.conf creation parser (define, define-eval math, variables, create-time checks)
//! and the meta.conf printer on arbitrary bytes, without file system access; the printed
//! meta.conf is read back. Errors are expected; panics and hangs are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nerveshub_fwup::fuzzing::fuzz_fwup_conf(data);
});
