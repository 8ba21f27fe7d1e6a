//! The fuzzing entry point of the apply engine, shared by the `apply` fuzz target and its
//! stable corpus replay test.

use std::path::Path;

use super::engine::{ApplyOptions, apply_with_host};
use super::host::{Host, HostSink};
use super::target::{MemoryTarget, Target};
use crate::{Error, PublicKey, Result};

/// Size of the fuzzing target: large enough for the fixture archives.
const FUZZ_TARGET_SIZE: u64 = 4 << 20;

/// A fixed-size in-memory target that panics when asked to touch anything outside it: the
/// engine must refuse such accesses itself ([`ApplyError::PastEndOfMedia`](crate::ApplyError::PastEndOfMedia)).
struct Bounded(MemoryTarget);

impl Bounded {
    fn check(&self, offset: u64, len: u64) {
        let inside = offset
            .checked_add(len)
            .is_some_and(|end| end <= FUZZ_TARGET_SIZE);
        assert!(inside, "access outside the target: {offset}+{len}");
    }
}

impl Target for Bounded {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len() as u64);
        self.0.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.check(offset, data.len() as u64);
        self.0.write_at(offset, data)
    }
    fn size(&self) -> Option<u64> {
        Some(FUZZ_TARGET_SIZE)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        self.check(offset, len);
        self.0.trim(offset, len)
    }
}

/// A host that runs nothing and writes nowhere.
struct NullHost;

struct NullSink;

impl std::io::Write for NullSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl HostSink for NullSink {
    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

impl Host for NullHost {
    fn execute(&mut self, _command: &str) -> Result<bool> {
        Ok(true)
    }
    fn open_path(&mut self, _path: &str) -> Result<Box<dyn HostSink>> {
        Ok(Box::new(NullSink))
    }
    fn open_pipe(&mut self, _command: &str) -> Result<Box<dyn HostSink>> {
        Ok(Box::new(NullSink))
    }
    fn write_reboot_param(&mut self, _path: Option<&Path>, _args: &str) -> Result<()> {
        Ok(())
    }
    fn path_on_device(&mut self, _path: &str, _device: &str) -> Result<bool> {
        Ok(false)
    }
    fn path_at_offset(&mut self, _path: &str, _block_offset: u64) -> Result<bool> {
        Ok(false)
    }
}

/// Applies `data` as an archive (first task of any name, `--unsafe` on, host operations
/// stubbed) to a 4 MiB in-memory target, then once more with the fixtures' public key.
/// Panics only if the engine panics or touches bytes outside the target.
#[doc(hidden)]
pub fn fuzz_apply(data: &[u8]) {
    let mut options = ApplyOptions::new("");
    options.unsafe_mode = true;
    let run = |options: &ApplyOptions| -> std::result::Result<(), Error> {
        let target = Bounded(MemoryTarget::with_size(FUZZ_TARGET_SIZE)?);
        apply_with_host(data, target, options, &mut (), &mut NullHost).map(|_| ())
    };
    let _ = run(&options);
    // keys/fwup-key.pub of the fixtures, so signed inputs exercise the signature path.
    if let Ok(key) = PublicKey::from_base64("Hr/h9qoI6hYeq4bstLBzB9bzWigGnRhm69nDtuWevXA=") {
        options.public_keys = vec![key];
        let _ = run(&options);
    }
}
