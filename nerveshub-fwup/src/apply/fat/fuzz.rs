//! The fuzzing entry point of the FAT code: every operation on an arbitrary volume.

use super::{AM_HID, AM_RDO, Volume, cp, mkfs};
use crate::Result;
use crate::apply::target::{MemoryTarget, Target};

/// Where the volume starts in the fuzzing target.
const BASE: u64 = 64 * 1024;
/// Blocks of the volume `mkfs` makes.
const BLOCKS: u64 = 2048;
/// Size of the fuzzing target: the bytes before the volume, the volume, nothing after.
const SIZE: u64 = BASE + BLOCKS * 512;

/// A fixed-size target that panics when anything before the volume is touched; accesses
/// past its end fail as on a device.
struct Guarded(MemoryTarget);

impl Guarded {
    fn check(offset: u64) {
        assert!(offset >= BASE, "access before the volume: {offset}");
    }
}

impl Target for Guarded {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        Self::check(offset);
        self.0.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        Self::check(offset);
        self.0.write_at(offset, data)
    }
    fn size(&self) -> Option<u64> {
        Some(SIZE)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        Self::check(offset);
        self.0.trim(offset, len)
    }
}

/// Formats a 1 MiB volume, overwrites its start with `data` (XOR-ed in when the first byte
/// is even, copied when odd: a corrupt or arbitrary volume), then runs every FAT operation
/// on it. Panics only if the FAT code panics or touches bytes before the volume.
#[doc(hidden)]
pub fn fuzz_fat(data: &[u8]) {
    let Ok(inner) = MemoryTarget::with_size(SIZE) else {
        return;
    };
    let mut t = Guarded(inner);
    if mkfs(&mut t, BASE, BLOCKS).is_err() {
        return;
    }
    let (mode, rest) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    let len = rest.len().min((BLOCKS * 512) as usize);
    let mut volume = vec![0u8; len];
    if t.read_at(BASE, &mut volume).is_err() {
        return;
    }
    for (v, d) in volume.iter_mut().zip(rest) {
        *v = if mode & 1 == 0 { *v ^ *d } else { *d };
    }
    if t.write_at(BASE, &volume).is_err() {
        return;
    }
    let payload: Vec<u8> = rest.iter().rev().take(5000).copied().collect();
    if let Ok(mut v) = Volume::mount(&mut t, BASE) {
        let _ = v.stat("boot/config.txt");
        if let Ok(mut f) = v.open_read("boot/zImage.copy") {
            let mut buf = [0u8; 4096];
            while matches!(v.read(&mut f, &mut buf), Ok(n) if n > 0) {}
        }
        let _ = v.mkdir("boot");
        let _ = v.mkdir("boot/A Long Directory Name");
        let _ = v.touch("boot/A Long Directory Name/empty");
        if let Ok(mut f) = v.create("boot/zImage") {
            let _ = v.pwrite(&mut f, 0, &payload);
            let _ = v.pwrite(&mut f, 9000, &payload);
        }
        let _ = v.mv("boot/zImage", "u-boot.bin", false);
        let _ = v.mv("boot/A Long Directory Name", "moved", true);
        let _ = v.attrib("u-boot.bin", AM_RDO | AM_HID);
        let _ = v.rm("u-boot.bin", true);
        let _ = v.rm("moved", false);
        let _ = v.setlabel("FUZZ");
    }
    let _ = cp(&mut t, BASE, "u-boot.bin", BASE, "boot/copy.bin");
}
