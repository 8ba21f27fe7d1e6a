//! The meta.conf parser on arbitrary bytes: syntax, schema and funlist decoding. Errors are
//! expected; panics, hangs and quadratic blowups are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nerveshub_fwup::{MetaConf, Variables};

fuzz_target!(|data: &[u8]| {
    let _ = MetaConf::parse(data, &Variables::new());
});
