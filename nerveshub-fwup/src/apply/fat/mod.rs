//! FAT filesystems as fwup writes them with ChaN's FatFs (R0.15, as configured by fwup:
//! 512-byte sectors, long names, code page 850, timestamps fixed at 1980-01-01 00:00).
//!
//! A [`Volume`] works on a `&mut dyn Target` at a byte offset. Every access is checked
//! against the volume's size (the BPB's sector count), so a corrupt or hostile image can
//! make an operation fail but never makes it read or write outside the volume, and
//! cluster chains are followed at most once around the FAT.
//!
//! The layout decisions follow FatFs: `f_mkfs` geometry with fwup's options (one sector
//! per cluster, 2 FATs, 512 root entries, no partition table), `create_chain`'s cluster
//! allocation, `dir_alloc`/`dir_register` for entries and `~N` short names, `f_write`'s
//! sector buffer (whose stale bytes end up in the slack of a file's last sector).
//!
//! Known differences from fwup (see issue 5):
//! * The slack after the end of a file in its last sector holds FatFs's stale sector
//!   buffer: the last sector a write ended in the middle of. fwup's writes end where its
//!   16 KiB reads of the archive end (`DEFAULT_LIBARCHIVE_BLOCK_SIZE`, counted from the
//!   archive's first byte; libarchive inflates each block completely), while this engine
//!   streams in other chunks, so those bytes differ (only them: see the `boot_fat` test).
//! * FatFs keeps a volume mounted across the functions of a task, so its "last allocated
//!   cluster" hint survives between calls; here each function mounts afresh (FAT32 keeps
//!   the hint through FSInfo; FAT12/16 restart the search at cluster 2), which matters
//!   only when clusters were freed before a later allocation.
//! * fwup keeps the file of a `fat_write` open until another FAT function runs; a second
//!   `fat_write` to the same file right after truncates it with `f_truncate` (keeping the
//!   sector buffer and the allocation hint) instead of reopening it.

mod fuzz;
mod name;
#[cfg(test)]
mod tests;

pub use fuzz::fuzz_fat;

use super::target::Target;
use crate::{Error, Result};
use name::{NS_LFN, NS_LOSS, Name};

/// Sector size.
const SS: u64 = 512;
/// Directory entry size.
const SZDIRE: usize = 32;
/// fwup's fixed FAT timestamp: 1980-01-01 00:00:00.
const FATTIME: u32 = (1 << 21) | (1 << 16);

const MAX_FAT12: u32 = 0xFF5;
const MAX_FAT16: u32 = 0xFFF5;
const MAX_FAT32: u32 = 0x0FFF_FFF5;

/// Attribute bits.
pub(crate) const AM_RDO: u8 = 0x01;
/// Hidden.
pub(crate) const AM_HID: u8 = 0x02;
/// System.
pub(crate) const AM_SYS: u8 = 0x04;
const AM_VOL: u8 = 0x08;
const AM_LFN: u8 = 0x0F;
const AM_DIR: u8 = 0x10;
const AM_ARC: u8 = 0x20;
const DDEM: u8 = 0xE5;

// FatFs result texts, as fwup prints them.
const INT_ERR: &str = "FATFS: Assertion failed (check for corruption)";
const NO_FILE: &str = "FATFS: Could not find the file";
const NO_PATH: &str = "FATFS: Could not find the path";
const INVALID_NAME: &str = "FATFS: The path name format is invalid";
const DENIED: &str = "FATFS: Access denied due to prohibited access or directory full";
const EXIST: &str = "FATFS: Destination file already exists";
const NO_FILESYSTEM: &str = "FATFS: There is no valid FAT volume";
const MKFS_ABORTED: &str =
    "FATFS: f_mkfs() aborted due to a parameter error. Try adjusting the partition size.";

fn fr(reason: &'static str) -> Error {
    Error::Fat {
        context: String::new(),
        path: String::new(),
        reason,
    }
}

/// Fills in fwup's `context(path)` of a FAT error.
pub(super) fn with_context(err: Error, context: &str, path: &str) -> Error {
    match err {
        Error::Fat { reason, .. } => Error::Fat {
            context: context.to_owned(),
            path: path.to_owned(),
            reason,
        },
        other => other,
    }
}

fn rd16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([
        b.get(at).copied().unwrap_or(0),
        b.get(at + 1).copied().unwrap_or(0),
    ]))
}

fn rd32(b: &[u8], at: usize) -> u32 {
    rd16(b, at) | (rd16(b, at + 2) << 16)
}

fn wr16(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&(v as u16).to_le_bytes());
    }
}

fn wr32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// FAT sub-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FatType {
    /// FAT12.
    Fat12,
    /// FAT16.
    Fat16,
    /// FAT32.
    Fat32,
}

/// `fat_mkfs`: FatFs `f_mkfs` with fwup's options on `count` blocks at byte `offset`.
///
/// # Errors
/// [`Error::Fat`] (`MKFS_ABORTED`) for sizes FatFs refuses; target errors.
pub(crate) fn mkfs(t: &mut dyn Target, offset: u64, count: u64) -> Result<()> {
    let bytes = count.checked_mul(SS).ok_or_else(|| fr(MKFS_ABORTED))?;
    t.trim(offset, bytes)?;
    if count == 0 {
        return Err(fr(MKFS_ABORTED));
    }
    let last = offset
        .checked_add((count - 1) * SS)
        .ok_or_else(|| fr(MKFS_ABORTED))?;
    t.write_at(last, &[0xFF; SS as usize])?;
    // FatFs gets the sector count as a DWORD.
    let sz_vol = count as u32;
    if sz_vol < 128 {
        return Err(fr(MKFS_ABORTED));
    }
    let n_fat = 2u32;
    let n_root = 512u32;
    let mut sz_au = 1u32;
    let mut fsty = FatType::Fat16;
    let (pau, sz_rsv, sz_fat, sz_dir, n_clst) = loop {
        let pau = sz_au;
        let (sz_rsv, sz_fat, sz_dir): (u32, u32, u32);
        if fsty == FatType::Fat32 {
            let n_clst = sz_vol / pau;
            sz_fat = n_clst.wrapping_mul(4).wrapping_add(8).div_ceil(512);
            sz_rsv = 32;
            sz_dir = 0;
            if n_clst <= MAX_FAT16 || n_clst > MAX_FAT32 {
                return Err(fr(MKFS_ABORTED));
            }
        } else {
            let n_clst = sz_vol / pau;
            let n = if n_clst > MAX_FAT12 {
                n_clst.wrapping_mul(2).wrapping_add(4)
            } else {
                fsty = FatType::Fat12;
                (n_clst * 3).div_ceil(2) + 3
            };
            sz_fat = n.div_ceil(512);
            sz_rsv = 1;
            sz_dir = n_root * SZDIRE as u32 / 512;
        }
        // No alignment on erase blocks: fwup's block size (128 KiB) is invalid for FatFs.
        // FatFs computes in 32 bits (DWORD); so does this, wrapping the same way.
        let b_data = sz_rsv
            .wrapping_add(sz_fat.wrapping_mul(n_fat))
            .wrapping_add(sz_dir);
        if sz_vol < b_data.wrapping_add(pau * 16) {
            return Err(fr(MKFS_ABORTED));
        }
        let n_clst = sz_vol
            .wrapping_sub(sz_rsv)
            .wrapping_sub(sz_fat.wrapping_mul(n_fat))
            .wrapping_sub(sz_dir)
            / pau;
        if fsty == FatType::Fat32 && n_clst <= MAX_FAT16 {
            return Err(fr(MKFS_ABORTED));
        }
        if fsty == FatType::Fat16 {
            if n_clst > MAX_FAT16 {
                // fwup allows FAT32 and fixes the cluster size.
                fsty = FatType::Fat32;
                continue;
            }
            if n_clst <= MAX_FAT12 {
                return Err(fr(MKFS_ABORTED));
            }
        }
        if fsty == FatType::Fat12 && n_clst > MAX_FAT12 {
            return Err(fr(MKFS_ABORTED));
        }
        sz_au = pau;
        break (pau, sz_rsv, sz_fat, sz_dir, n_clst);
    };
    let _ = sz_au;
    // What FatFs would wrap around cannot be a valid layout: refuse it rather than write it.
    let system = u64::from(sz_rsv) + u64::from(sz_fat) * u64::from(n_fat) + u64::from(sz_dir);
    if system + u64::from(pau) > u64::from(sz_vol) {
        return Err(fr(MKFS_ABORTED));
    }
    let vsn = sz_vol.wrapping_add(FATTIME);
    let mut buf = [0u8; SS as usize];
    buf[..11].copy_from_slice(b"\xEB\xFE\x90MSDOS5.0");
    wr16(&mut buf, 11, 512);
    buf[13] = pau as u8;
    wr16(&mut buf, 14, sz_rsv);
    buf[16] = n_fat as u8;
    wr16(
        &mut buf,
        17,
        if fsty == FatType::Fat32 { 0 } else { n_root },
    );
    if sz_vol < 0x10000 {
        wr16(&mut buf, 19, sz_vol);
    } else {
        wr32(&mut buf, 32, sz_vol);
    }
    buf[21] = 0xF8;
    wr16(&mut buf, 24, 63);
    wr16(&mut buf, 26, 255);
    wr32(&mut buf, 28, 0);
    if fsty == FatType::Fat32 {
        wr32(&mut buf, 67, vsn);
        wr32(&mut buf, 36, sz_fat);
        wr32(&mut buf, 44, 2);
        wr16(&mut buf, 48, 1);
        wr16(&mut buf, 50, 6);
        buf[64] = 0x80;
        buf[66] = 0x29;
        buf[71..90].copy_from_slice(b"NO NAME    FAT32   ");
    } else {
        wr32(&mut buf, 39, vsn);
        wr16(&mut buf, 22, sz_fat);
        buf[36] = 0x80;
        buf[38] = 0x29;
        let label: &[u8; 19] = if fsty == FatType::Fat12 {
            b"NO NAME    FAT12   "
        } else {
            b"NO NAME    FAT16   "
        };
        buf[43..62].copy_from_slice(label);
    }
    wr16(&mut buf, 510, 0xAA55);
    let sector = |s: u32| offset + u64::from(s) * SS;
    t.write_at(sector(0), &buf)?;
    if fsty == FatType::Fat32 {
        t.write_at(sector(6), &buf)?;
        let mut fsi = [0u8; SS as usize];
        wr32(&mut fsi, 0, 0x4161_5252);
        wr32(&mut fsi, 484, 0x6141_7272);
        wr32(&mut fsi, 488, n_clst - 1);
        wr32(&mut fsi, 492, 2);
        wr16(&mut fsi, 510, 0xAA55);
        t.write_at(sector(7), &fsi)?;
        t.write_at(sector(1), &fsi)?;
    }
    let zeros = vec![0u8; 64 * SS as usize];
    let mut sect = sz_rsv;
    for _ in 0..n_fat {
        let mut first = [0u8; SS as usize];
        match fsty {
            FatType::Fat32 => {
                wr32(&mut first, 0, 0xFFFF_FFF8);
                wr32(&mut first, 4, 0xFFFF_FFFF);
                wr32(&mut first, 8, 0x0FFF_FFFF);
            }
            FatType::Fat16 => wr32(&mut first, 0, 0xFFFF_FFF8),
            FatType::Fat12 => wr32(&mut first, 0, 0x00FF_FFF8),
        }
        t.write_at(sector(sect), &first)?;
        write_zeros(t, sector(sect + 1), sz_fat - 1, &zeros)?;
        sect += sz_fat;
    }
    let root = if fsty == FatType::Fat32 { pau } else { sz_dir };
    write_zeros(t, sector(sect), root, &zeros)?;
    Ok(())
}

fn write_zeros(t: &mut dyn Target, at: u64, sectors: u32, zeros: &[u8]) -> Result<()> {
    let mut left = u64::from(sectors) * SS;
    let mut pos = at;
    while left > 0 {
        let n = left.min(zeros.len() as u64);
        t.write_at(pos, zeros.get(..n as usize).unwrap_or_default())?;
        pos += n;
        left -= n;
    }
    Ok(())
}

/// What a directory entry says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The long name if there is one, else the 8.3 name with NT case flags applied.
    pub(crate) name: String,
    /// The 8.3 name as stored (11 bytes, space padded).
    pub(crate) short: [u8; 11],
    /// Attribute byte.
    pub(crate) attr: u8,
    /// First cluster.
    pub(crate) cluster: u32,
    /// File size in bytes.
    pub(crate) size: u32,
}

impl Entry {
    /// Whether this is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.attr & AM_DIR != 0
    }
}

/// Where an entry was found: its directory, its index and the index of its first LFN entry.
#[derive(Debug, Clone, Copy)]
struct Found {
    dir: u32,
    idx: u32,
    blk: Option<u32>,
    raw: [u8; 32],
}

/// The result of resolving a path.
#[derive(Debug)]
struct Resolved {
    /// Start cluster of the directory holding the last segment (0: root).
    dir: u32,
    /// The last segment; `None` for the root itself.
    name: Option<Name>,
    /// The entry, when it exists.
    found: Option<Found>,
}

/// A mounted FAT volume.
pub(crate) struct Volume<'t> {
    t: &'t mut dyn Target,
    base: u64,
    kind: FatType,
    n_fatent: u32,
    fsize: u32,
    n_fats: u32,
    fatbase: u32,
    dirbase: u32,
    n_rootdir: u32,
    database: u32,
    csize: u32,
    tsect: u32,
    last_clst: u32,
    free_clst: u32,
    /// FatFs's `fsi_flag`: bit 7 when FSInfo is not used, bit 0 when it must be written.
    fsi_flag: u8,
    /// The last directory cluster looked up: chain start, cluster index, cluster.
    cursor: Option<(u32, u32, u32)>,
}

impl std::fmt::Debug for Volume<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("base", &self.base)
            .field("kind", &self.kind)
            .field("n_fatent", &self.n_fatent)
            .finish_non_exhaustive()
    }
}

impl<'t> Volume<'t> {
    /// Mounts the FAT volume at byte `base` (FatFs's `mount_volume` checks).
    ///
    /// # Errors
    /// [`Error::Fat`] `NO_FILESYSTEM` when the boot sector does not describe a FAT volume.
    pub(crate) fn mount(t: &'t mut dyn Target, base: u64) -> Result<Self> {
        let mut b = [0u8; SS as usize];
        t.read_at(base, &mut b)?;
        let sig = rd16(&b, 510);
        let jump = b[0];
        let valid_jump = matches!(jump, 0xEB | 0xE9 | 0xE8);
        let fat32_sig = sig == 0xAA55 && &b[82..90] == b"FAT32   ";
        let bps = rd16(&b, 11);
        let spc = u32::from(b[13]);
        let looks_fat = bps.is_power_of_two()
            && bps == 512
            && spc != 0
            && spc.is_power_of_two()
            && rd16(&b, 14) != 0
            && matches!(b[16], 1 | 2)
            && rd16(&b, 17) != 0
            && (rd16(&b, 19) >= 128 || rd32(&b, 32) >= 0x10000)
            && rd16(&b, 22) != 0;
        if !(valid_jump && (fat32_sig || looks_fat)) {
            return Err(fr(NO_FILESYSTEM));
        }
        if bps != 512 {
            return Err(fr(NO_FILESYSTEM));
        }
        let mut fsize = rd16(&b, 22);
        if fsize == 0 {
            fsize = rd32(&b, 36);
        }
        let n_fats = u32::from(b[16]);
        if n_fats != 1 && n_fats != 2 {
            return Err(fr(NO_FILESYSTEM));
        }
        let fasize = u64::from(fsize) * u64::from(n_fats);
        let csize = spc;
        if csize == 0 || !csize.is_power_of_two() {
            return Err(fr(NO_FILESYSTEM));
        }
        let n_rootdir = rd16(&b, 17);
        if !n_rootdir.is_multiple_of(16) {
            return Err(fr(NO_FILESYSTEM));
        }
        let mut tsect = rd16(&b, 19);
        if tsect == 0 {
            tsect = rd32(&b, 32);
        }
        let nrsv = rd16(&b, 14);
        if nrsv == 0 {
            return Err(fr(NO_FILESYSTEM));
        }
        let sysect = u64::from(nrsv) + fasize + u64::from(n_rootdir / 16);
        if u64::from(tsect) < sysect {
            return Err(fr(NO_FILESYSTEM));
        }
        let nclst = ((u64::from(tsect) - sysect) / u64::from(csize)) as u32;
        if nclst == 0 {
            return Err(fr(NO_FILESYSTEM));
        }
        let kind = if nclst <= MAX_FAT12 {
            FatType::Fat12
        } else if nclst <= MAX_FAT16 {
            FatType::Fat16
        } else if nclst <= MAX_FAT32 {
            FatType::Fat32
        } else {
            return Err(fr(NO_FILESYSTEM));
        };
        let n_fatent = nclst + 2;
        let fatbase = nrsv;
        let database = sysect as u32;
        let (dirbase, szbfat) = if kind == FatType::Fat32 {
            if rd16(&b, 42) != 0 || n_rootdir != 0 {
                return Err(fr(NO_FILESYSTEM));
            }
            (rd32(&b, 44), u64::from(n_fatent) * 4)
        } else {
            if n_rootdir == 0 {
                return Err(fr(NO_FILESYSTEM));
            }
            let szb = if kind == FatType::Fat16 {
                u64::from(n_fatent) * 2
            } else {
                u64::from(n_fatent) * 3 / 2 + u64::from(n_fatent & 1)
            };
            ((u64::from(fatbase) + fasize) as u32, szb)
        };
        if u64::from(fsize) < szbfat.div_ceil(SS) {
            return Err(fr(NO_FILESYSTEM));
        }
        let mut vol = Volume {
            t,
            base,
            kind,
            n_fatent,
            fsize,
            n_fats,
            fatbase,
            dirbase,
            n_rootdir,
            database,
            csize,
            tsect,
            last_clst: u32::MAX,
            free_clst: u32::MAX,
            fsi_flag: 0x80,
            cursor: None,
        };
        if kind == FatType::Fat32 && rd16(&b, 48) == 1 && tsect > 1 {
            let mut fsi = [0u8; SS as usize];
            vol.read_sector(1, &mut fsi)?;
            vol.fsi_flag = 0;
            if rd16(&fsi, 510) == 0xAA55
                && rd32(&fsi, 0) == 0x4161_5252
                && rd32(&fsi, 484) == 0x6141_7272
            {
                vol.free_clst = rd32(&fsi, 488);
                vol.last_clst = rd32(&fsi, 492);
            }
        }
        Ok(vol)
    }

    /// FatFs's allocation hint (`last_clst`), kept by fwup while a volume stays mounted.
    pub(crate) fn last_cluster(&self) -> u32 {
        self.last_clst
    }

    /// Restores the allocation hint of an earlier mount.
    pub(crate) fn set_last_cluster(&mut self, hint: u32) {
        self.last_clst = hint;
    }

    #[cfg(test)]
    /// The FAT sub-type.
    pub(crate) fn fat_type(&self) -> FatType {
        self.kind
    }

    // ---- sectors and FAT ------------------------------------------------------------------

    fn check(&self, sector: u64, len: u64) -> Result<u64> {
        let end = sector
            .checked_mul(SS)
            .and_then(|s| s.checked_add(len))
            .ok_or_else(|| fr(INT_ERR))?;
        if end > u64::from(self.tsect) * SS {
            return Err(fr(INT_ERR));
        }
        self.base
            .checked_add(sector * SS)
            .ok_or_else(|| fr(INT_ERR))
    }

    fn read_sector(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        let at = self.check(sector, buf.len() as u64)?;
        self.t.read_at(at, buf)
    }

    fn write_sector(&mut self, sector: u64, data: &[u8]) -> Result<()> {
        let at = self.check(sector, data.len() as u64)?;
        self.t.write_at(at, data)
    }

    fn read_fat_bytes(&mut self, byte: u64, buf: &mut [u8]) -> Result<()> {
        let at = self.check(u64::from(self.fatbase), byte + buf.len() as u64)?;
        self.t.read_at(at + byte, buf)
    }

    fn write_fat_bytes(&mut self, byte: u64, data: &[u8]) -> Result<()> {
        for copy in 0..u64::from(self.n_fats) {
            let first = u64::from(self.fatbase) + copy * u64::from(self.fsize);
            let at = self.check(first, byte + data.len() as u64)?;
            self.t.write_at(at + byte, data)?;
        }
        Ok(())
    }

    /// FatFs `get_fat`: 1 for an invalid cluster number.
    fn get_fat(&mut self, clst: u32) -> Result<u32> {
        if clst < 2 || clst >= self.n_fatent {
            return Ok(1);
        }
        Ok(match self.kind {
            FatType::Fat12 => {
                let bc = u64::from(clst) + u64::from(clst / 2);
                let mut w = [0u8; 2];
                self.read_fat_bytes(bc, &mut w)?;
                let v = u32::from(u16::from_le_bytes(w));
                if clst & 1 != 0 { v >> 4 } else { v & 0xFFF }
            }
            FatType::Fat16 => {
                let mut w = [0u8; 2];
                self.read_fat_bytes(u64::from(clst) * 2, &mut w)?;
                u32::from(u16::from_le_bytes(w))
            }
            FatType::Fat32 => {
                let mut w = [0u8; 4];
                self.read_fat_bytes(u64::from(clst) * 4, &mut w)?;
                u32::from_le_bytes(w) & 0x0FFF_FFFF
            }
        })
    }

    /// FatFs `put_fat`.
    fn put_fat(&mut self, clst: u32, val: u32) -> Result<()> {
        if clst < 2 || clst >= self.n_fatent {
            return Err(fr(INT_ERR));
        }
        match self.kind {
            FatType::Fat12 => {
                let bc = u64::from(clst) + u64::from(clst / 2);
                let mut w = [0u8; 2];
                self.read_fat_bytes(bc, &mut w)?;
                let old = u16::from_le_bytes(w);
                let v = (val & 0xFFF) as u16;
                let new = if clst & 1 != 0 {
                    (old & 0x000F) | (v << 4)
                } else {
                    (old & 0xF000) | v
                };
                self.write_fat_bytes(bc, &new.to_le_bytes())
            }
            FatType::Fat16 => {
                self.write_fat_bytes(u64::from(clst) * 2, &(val as u16).to_le_bytes())
            }
            FatType::Fat32 => {
                let mut w = [0u8; 4];
                self.read_fat_bytes(u64::from(clst) * 4, &mut w)?;
                let old = u32::from_le_bytes(w);
                let new = (old & 0xF000_0000) | (val & 0x0FFF_FFFF);
                self.write_fat_bytes(u64::from(clst) * 4, &new.to_le_bytes())
            }
        }
    }

    /// The "end of chain" threshold: values at or above it end a chain.
    fn is_end(&self, v: u32) -> bool {
        v >= self.n_fatent
    }

    /// FatFs `create_chain`: 0 when the volume is full.
    fn create_chain(&mut self, clst: u32) -> Result<u32> {
        let mut scl;
        if clst == 0 {
            scl = self.last_clst;
            if scl == 0 || scl >= self.n_fatent {
                scl = 1;
            }
        } else {
            let cs = self.get_fat(clst)?;
            if cs < 2 {
                return Err(fr(INT_ERR));
            }
            if cs < self.n_fatent {
                return Ok(cs);
            }
            scl = clst;
        }
        if self.free_clst == 0 {
            return Ok(0);
        }
        let mut ncl = 0;
        if scl == clst {
            ncl = scl + 1;
            if ncl >= self.n_fatent {
                ncl = 2;
            }
            let cs = self.get_fat(ncl)?;
            if cs == 1 {
                return Err(fr(INT_ERR));
            }
            if cs != 0 {
                let hint = self.last_clst;
                if hint >= 2 && hint < self.n_fatent {
                    scl = hint;
                }
                ncl = 0;
            }
        }
        if ncl == 0 {
            ncl = scl;
            loop {
                ncl += 1;
                if ncl >= self.n_fatent {
                    ncl = 2;
                    if ncl > scl {
                        return Ok(0);
                    }
                }
                let cs = self.get_fat(ncl)?;
                if cs == 0 {
                    break;
                }
                if cs == 1 {
                    return Err(fr(INT_ERR));
                }
                if ncl == scl {
                    return Ok(0);
                }
            }
        }
        self.put_fat(ncl, 0x0FFF_FFFF)?;
        if clst != 0 {
            self.put_fat(clst, ncl)?;
        }
        self.last_clst = ncl;
        if self.free_clst <= self.n_fatent - 2 {
            self.free_clst -= 1;
        }
        self.fsi_flag |= 1;
        Ok(ncl)
    }

    /// FatFs `remove_chain` (from the start of a chain).
    fn remove_chain(&mut self, clst: u32) -> Result<()> {
        self.cursor = None;
        if clst < 2 || clst >= self.n_fatent {
            return Err(fr(INT_ERR));
        }
        let mut clst = clst;
        for _ in 0..self.n_fatent {
            let nxt = self.get_fat(clst)?;
            if nxt == 0 {
                break;
            }
            if nxt == 1 {
                return Err(fr(INT_ERR));
            }
            self.put_fat(clst, 0)?;
            if self.free_clst < self.n_fatent - 2 {
                self.free_clst += 1;
                self.fsi_flag |= 1;
            }
            if self.is_end(nxt) {
                return Ok(());
            }
            clst = nxt;
        }
        Ok(())
    }

    fn clst2sect(&self, clst: u32) -> Option<u64> {
        let c = clst.checked_sub(2)?;
        if c >= self.n_fatent - 2 {
            return None;
        }
        Some(u64::from(self.database) + u64::from(c) * u64::from(self.csize))
    }

    /// FatFs `sync_fs`: the FSInfo sector of a FAT32 volume.
    fn sync(&mut self) -> Result<()> {
        if self.kind == FatType::Fat32 && self.fsi_flag == 1 {
            let mut fsi = [0u8; SS as usize];
            wr32(&mut fsi, 0, 0x4161_5252);
            wr32(&mut fsi, 484, 0x6141_7272);
            wr32(&mut fsi, 488, self.free_clst);
            wr32(&mut fsi, 492, self.last_clst);
            wr16(&mut fsi, 510, 0xAA55);
            self.write_sector(1, &fsi)?;
        }
        if self.fsi_flag == 1 {
            self.fsi_flag = 0;
        }
        Ok(())
    }

    // ---- directories ----------------------------------------------------------------------

    /// The sector holding entry `idx` of the directory starting at `dir` (0: root), or
    /// `None` past its end. With `stretch`, a cluster directory grows by a zeroed cluster.
    fn entry_sector(&mut self, dir: u32, idx: u32, stretch: bool) -> Result<Option<u64>> {
        let per_sector = (SS as usize / SZDIRE) as u32;
        if idx >= 0x10000 {
            return Ok(None);
        }
        let start = if dir == 0 && self.kind == FatType::Fat32 {
            self.dirbase
        } else {
            dir
        };
        if start == 0 {
            if idx >= self.n_rootdir {
                return Ok(None);
            }
            return Ok(Some(u64::from(self.dirbase) + u64::from(idx / per_sector)));
        }
        let per_cluster = per_sector * self.csize;
        let want = idx / per_cluster;
        // Continue from the last lookup in the same chain: walks stay linear.
        let (mut at, mut clst) = match self.cursor {
            Some((d, i, c)) if d == start && i <= want => (i, c),
            _ => (0, start),
        };
        while at < want {
            at += 1;
            let next = self.get_fat(clst)?;
            if next < 2 {
                return Err(fr(INT_ERR));
            }
            clst = if self.is_end(next) {
                if !stretch {
                    return Ok(None);
                }
                let new = self.create_chain(clst)?;
                if new == 0 {
                    return Err(fr(DENIED));
                }
                self.clear_cluster(new)?;
                new
            } else {
                next
            };
        }
        self.cursor = Some((start, want, clst));
        let sect = self.clst2sect(clst).ok_or_else(|| fr(INT_ERR))?;
        Ok(Some(sect + u64::from((idx % per_cluster) / per_sector)))
    }

    fn clear_cluster(&mut self, clst: u32) -> Result<()> {
        let sect = self.clst2sect(clst).ok_or_else(|| fr(INT_ERR))?;
        let zeros = vec![0u8; (u64::from(self.csize) * SS) as usize];
        self.write_sector(sect, &zeros)
    }

    fn read_entry(&mut self, dir: u32, idx: u32) -> Result<Option<[u8; 32]>> {
        let Some(sect) = self.entry_sector(dir, idx, false)? else {
            return Ok(None);
        };
        let mut e = [0u8; 32];
        let at = self.check(sect, SS)? + u64::from(idx % 16) * SZDIRE as u64;
        self.t.read_at(at, &mut e)?;
        Ok(Some(e))
    }

    fn write_entry(&mut self, dir: u32, idx: u32, e: &[u8; 32]) -> Result<()> {
        let sect = self
            .entry_sector(dir, idx, false)?
            .ok_or_else(|| fr(INT_ERR))?;
        let at = self.check(sect, SS)? + u64::from(idx % 16) * SZDIRE as u64;
        self.t.write_at(at, e)
    }

    fn ld_clust(&self, e: &[u8; 32]) -> u32 {
        let lo = rd16(e, 26);
        if self.kind == FatType::Fat32 {
            lo | (rd16(e, 20) << 16)
        } else {
            lo
        }
    }

    fn st_clust(&self, e: &mut [u8; 32], clst: u32) {
        wr16(e, 26, clst & 0xFFFF);
        if self.kind == FatType::Fat32 {
            wr16(e, 20, clst >> 16);
        }
    }

    #[cfg(test)]
    /// Lists a directory: every visible entry with its long name (volume labels, deleted
    /// entries and dot entries left out).
    pub(crate) fn list(&mut self, dir: u32) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.walk(dir, &mut |e, lfn, _, _| {
            if e[11] & AM_VOL == 0 && e[0] != b'.' {
                out.push(entry_of(e, lfn, lfn_ok(e, lfn)));
            }
            false
        })?;
        Ok(out)
    }

    /// Walks the entries of a directory, handing each short entry (with the long name
    /// collected before it, its index and the index of its first LFN entry) to `visit`,
    /// which returns `true` to stop.
    fn walk(&mut self, dir: u32, visit: &mut Visitor<'_>) -> Result<()> {
        let mut run = LfnRun::default();
        let mut idx = 0u32;
        while let Some(e) = self.read_entry(dir, idx)? {
            let c = e[0];
            if c == 0 {
                break;
            }
            let a = e[11] & 0x3F;
            if c == DDEM || (a & AM_VOL != 0 && a != AM_LFN) {
                run = LfnRun::default();
                if c != DDEM && visit(&e, &run, idx, None) {
                    return Ok(());
                }
            } else if a == AM_LFN {
                run.push(&e, idx);
            } else {
                let blk = if lfn_ok(&e, &run) { run.start } else { None };
                if visit(&e, &run, idx, blk) {
                    return Ok(());
                }
                run = LfnRun::default();
            }
            idx += 1;
        }
        Ok(())
    }

    /// FatFs `dir_find` for `name` in `dir`.
    fn find(&mut self, dir: u32, name: &Name) -> Result<Option<Found>> {
        let mut found = None;
        let upper: Vec<u16> = name.lfn.iter().map(|&c| name::wtoupper(c)).collect();
        self.walk(dir, &mut |e, run, idx, blk| {
            if e[11] & AM_VOL != 0 && e[11] & 0x3F != AM_LFN {
                return false;
            }
            let long_match = blk.is_some()
                && run.chars.len() == upper.len()
                && run
                    .chars
                    .iter()
                    .zip(&upper)
                    .all(|(&a, &b)| name::wtoupper(a) == b);
            let short_match = name.flags & NS_LOSS == 0 && e[..11] == name.sfn;
            if long_match || short_match {
                found = Some(Found {
                    dir,
                    idx,
                    blk,
                    raw: *e,
                });
                return true;
            }
            false
        })?;
        Ok(found)
    }

    /// Whether an SFN exists in `dir` (FatFs `dir_find` with `NS_NOLFN`).
    fn sfn_exists(&mut self, dir: u32, sfn: &[u8; 11]) -> Result<bool> {
        let mut hit = false;
        self.walk(dir, &mut |e, _, _, _| {
            if e[11] & AM_VOL == 0 && e[..11] == sfn[..] {
                hit = true;
            }
            hit
        })?;
        Ok(hit)
    }

    /// FatFs `follow_path`.
    fn resolve(&mut self, path: &str) -> Result<Resolved> {
        let segments: Vec<&str> = path.split(['/', '\\']).filter(|s| !s.is_empty()).collect();
        let mut dir = 0u32;
        let Some((last, parents)) = segments.split_last() else {
            return Ok(Resolved {
                dir,
                name: None,
                found: None,
            });
        };
        for seg in parents {
            let name = name::parse(seg).ok_or_else(|| fr(INVALID_NAME))?;
            let found = self.find(dir, &name)?.ok_or_else(|| fr(NO_PATH))?;
            if found.raw[11] & AM_DIR == 0 {
                return Err(fr(NO_PATH));
            }
            dir = self.ld_clust(&found.raw);
        }
        let name = name::parse(last).ok_or_else(|| fr(INVALID_NAME))?;
        let found = self.find(dir, &name)?;
        Ok(Resolved {
            dir,
            name: Some(name),
            found,
        })
    }

    /// FatFs `dir_alloc`: the index of the last of `n` free consecutive entries.
    fn dir_alloc(&mut self, dir: u32, n: u32) -> Result<u32> {
        let mut run = 0u32;
        let mut idx = 0u32;
        loop {
            let sect = self
                .entry_sector(dir, idx, true)?
                .ok_or_else(|| fr(DENIED))?;
            let mut e = [0u8; 32];
            let at = self.check(sect, SS)? + u64::from(idx % 16) * SZDIRE as u64;
            self.t.read_at(at, &mut e)?;
            if e[0] == DDEM || e[0] == 0 {
                run += 1;
                if run == n {
                    return Ok(idx);
                }
            } else {
                run = 0;
            }
            idx += 1;
        }
    }

    /// FatFs `dir_register`: writes the LFN entries and a cleared SFN entry for `name`;
    /// returns the SFN entry's index and contents.
    fn register(&mut self, dir: u32, name: &Name) -> Result<(u32, [u8; 32])> {
        let mut sfn = name.sfn;
        if name.flags & NS_LOSS != 0 {
            let mut n = 1;
            loop {
                if n == 100 {
                    return Err(fr(DENIED));
                }
                sfn = name::numbered(&name.sfn, &name.lfn, n);
                if !self.sfn_exists(dir, &sfn)? {
                    break;
                }
                n += 1;
            }
        }
        let lfn_entries = if name.flags & NS_LFN != 0 {
            (name.lfn.len() as u32).div_ceil(13)
        } else {
            0
        };
        let last = self.dir_alloc(dir, lfn_entries + 1)?;
        let sum = name::sfn_sum(&sfn);
        let first = last - lfn_entries;
        for k in 0..lfn_entries {
            let ord = (lfn_entries - k) as u8;
            let e = name::lfn_entry(&name.lfn, ord, sum);
            self.write_entry(dir, first + k, &e)?;
        }
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(&sfn);
        e[12] = name.flags & (name::NS_BODY | name::NS_EXT);
        self.write_entry(dir, last, &e)?;
        Ok((last, e))
    }

    /// FatFs `dir_remove`: marks the entry and its LFN entries deleted.
    fn remove_entry(&mut self, found: &Found) -> Result<()> {
        let first = found.blk.unwrap_or(found.idx);
        for idx in first..=found.idx {
            if let Some(mut e) = self.read_entry(found.dir, idx)? {
                e[0] = DDEM;
                self.write_entry(found.dir, idx, &e)?;
            }
        }
        Ok(())
    }

    // ---- operations -------------------------------------------------------------------------

    /// The entry at `path`, if it exists.
    ///
    /// # Errors
    /// Path errors other than a missing last segment; I/O errors.
    pub(crate) fn stat(&mut self, path: &str) -> Result<Option<Entry>> {
        let r = self.resolve(path)?;
        Ok(r.found.map(|f| {
            let mut e = entry_of(&f.raw, &LfnRun::default(), false);
            e.name = r
                .name
                .map_or_else(String::new, |n| String::from_utf16_lossy(&n.lfn));
            e
        }))
    }

    #[cfg(test)]
    /// The start cluster of the directory at `path` (0: root).
    ///
    /// # Errors
    /// `NO_PATH` when it is missing or not a directory.
    pub(crate) fn dir_cluster(&mut self, path: &str) -> Result<u32> {
        let r = self.resolve(path)?;
        match (r.name, r.found) {
            (None, _) => Ok(0),
            (Some(_), Some(f)) if f.raw[11] & AM_DIR != 0 => Ok(self.ld_clust(&f.raw)),
            _ => Err(fr(NO_PATH)),
        }
    }

    /// `fat_mkdir`: succeeds when the directory exists.
    ///
    /// # Errors
    /// FatFs's errors (`EXIST` for a file of that name, `DENIED` when full).
    pub(crate) fn mkdir(&mut self, path: &str) -> Result<()> {
        let r = self.resolve(path)?;
        let Some(name) = r.name else {
            return Ok(());
        };
        if let Some(f) = r.found {
            if f.raw[11] & AM_DIR != 0 {
                return Ok(());
            }
            return Err(fr(EXIST));
        }
        let dcl = self.create_chain(0)?;
        if dcl == 0 {
            return Err(fr(DENIED));
        }
        self.clear_cluster(dcl)?;
        let mut dot = [0u8; 32];
        dot[..11].copy_from_slice(b".          ");
        dot[11] = AM_DIR;
        wr32(&mut dot, 22, FATTIME);
        self.st_clust(&mut dot, dcl);
        let mut dotdot = dot;
        dotdot[1] = b'.';
        self.st_clust(&mut dotdot, r.dir);
        let sect = self.clst2sect(dcl).ok_or_else(|| fr(INT_ERR))?;
        let mut both = [0u8; 64];
        both[..32].copy_from_slice(&dot);
        both[32..].copy_from_slice(&dotdot);
        self.write_sector(sect, &both)?;
        match self.register(r.dir, &name) {
            Ok((idx, mut e)) => {
                wr32(&mut e, 22, FATTIME);
                self.st_clust(&mut e, dcl);
                e[11] = AM_DIR;
                self.write_entry(r.dir, idx, &e)?;
                self.sync()
            }
            Err(err) => {
                self.remove_chain(dcl)?;
                Err(err)
            }
        }
    }

    /// FatFs `f_open` with `FA_CREATE_ALWAYS` (truncating) or `FA_OPEN_ALWAYS`; returns
    /// the open file.
    fn open(&mut self, path: &str, truncate: bool) -> Result<OpenFile> {
        let r = self.resolve(path)?;
        let name = r.name.ok_or_else(|| fr(INVALID_NAME))?;
        let (idx, mut e, existed) = match r.found {
            Some(f) => {
                if f.raw[11] & (AM_RDO | AM_DIR) != 0 {
                    return Err(fr(DENIED));
                }
                (f.idx, f.raw, true)
            }
            None => {
                let (idx, e) = self.register(r.dir, &name)?;
                (idx, e, false)
            }
        };
        if truncate || !existed {
            wr32(&mut e, 14, FATTIME);
            wr32(&mut e, 22, FATTIME);
            let cl = self.ld_clust(&e);
            e[11] = AM_ARC;
            self.st_clust(&mut e, 0);
            wr32(&mut e, 28, 0);
            self.write_entry(r.dir, idx, &e)?;
            if cl != 0 {
                self.remove_chain(cl)?;
                self.last_clst = cl - 1;
            }
        }
        let sclust = self.ld_clust(&e);
        let size = rd32(&e, 28);
        Ok(OpenFile {
            dir: r.dir,
            idx,
            sclust,
            size,
            fptr: 0,
            clust: 0,
            sect: 0,
            buf: [0; SS as usize],
            dirty: false,
            modified: truncate || !existed,
        })
    }

    /// FatFs `f_write` at the file pointer.
    fn write(&mut self, f: &mut OpenFile, data: &[u8]) -> Result<usize> {
        let mut data = data;
        let mut written = 0usize;
        let room = (u32::MAX - f.fptr) as usize;
        if data.len() > room {
            data = data.get(..room).unwrap_or_default();
        }
        while !data.is_empty() {
            if f.fptr.is_multiple_of(SS as u32) {
                let csect = (f.fptr / SS as u32) & (self.csize - 1);
                if csect == 0 {
                    let clst = if f.fptr == 0 {
                        if f.sclust == 0 {
                            self.create_chain(0)?
                        } else {
                            f.sclust
                        }
                    } else {
                        self.create_chain(f.clust)?
                    };
                    if clst == 0 {
                        break;
                    }
                    f.clust = clst;
                    if f.sclust == 0 {
                        f.sclust = clst;
                    }
                }
                if f.dirty {
                    self.write_sector(f.sect, &f.buf)?;
                    f.dirty = false;
                }
                let sect = self.clst2sect(f.clust).ok_or_else(|| fr(INT_ERR))? + u64::from(csect);
                let mut cc = (data.len() / SS as usize) as u64;
                if cc > 0 {
                    if u64::from(csect) + cc > u64::from(self.csize) {
                        cc = u64::from(self.csize - csect);
                    }
                    let n = (cc * SS) as usize;
                    let chunk = data.get(..n).unwrap_or_default();
                    self.write_sector(sect, chunk)?;
                    if f.sect.wrapping_sub(sect) < cc {
                        let from = (f.sect.wrapping_sub(sect) * SS) as usize;
                        if let Some(src) = chunk.get(from..from + SS as usize) {
                            f.buf.copy_from_slice(src);
                        }
                        f.dirty = false;
                    }
                    self.advance(f, n);
                    data = data.get(n..).unwrap_or_default();
                    written += n;
                    continue;
                }
                if f.sect != sect && f.fptr < f.size {
                    let mut buf = [0u8; SS as usize];
                    self.read_sector(sect, &mut buf)?;
                    f.buf = buf;
                }
                f.sect = sect;
            }
            let off = (f.fptr % SS as u32) as usize;
            let n = (SS as usize - off).min(data.len());
            if let (Some(dst), Some(src)) = (f.buf.get_mut(off..off + n), data.get(..n)) {
                dst.copy_from_slice(src);
            }
            f.dirty = true;
            self.advance(f, n);
            data = data.get(n..).unwrap_or_default();
            written += n;
        }
        f.modified = true;
        Ok(written)
    }

    fn advance(&self, f: &mut OpenFile, n: usize) {
        f.fptr += n as u32;
        f.size = f.size.max(f.fptr);
    }

    /// FatFs `f_sync`.
    fn sync_file(&mut self, f: &mut OpenFile) -> Result<()> {
        if !f.modified {
            return Ok(());
        }
        if f.dirty {
            self.write_sector(f.sect, &f.buf)?;
            f.dirty = false;
        }
        let mut e = self.read_entry(f.dir, f.idx)?.ok_or_else(|| fr(INT_ERR))?;
        e[11] |= AM_ARC;
        self.st_clust(&mut e, f.sclust);
        wr32(&mut e, 28, f.size);
        wr32(&mut e, 22, FATTIME);
        wr16(&mut e, 18, 0);
        self.write_entry(f.dir, f.idx, &e)?;
        self.sync()?;
        f.modified = false;
        Ok(())
    }

    /// Opens a file for reading (FatFs `f_open` with `FA_READ`).
    ///
    /// # Errors
    /// `NO_FILE` when missing or a directory, path errors.
    pub(crate) fn open_read(&mut self, path: &str) -> Result<ReadFile> {
        let r = self.resolve(path)?;
        if r.name.is_none() {
            return Err(fr(INVALID_NAME));
        }
        let f = r.found.ok_or_else(|| fr(NO_FILE))?;
        if f.raw[11] & AM_DIR != 0 {
            return Err(fr(NO_FILE));
        }
        Ok(ReadFile {
            clst: self.ld_clust(&f.raw),
            pos: 0,
            size: rd32(&f.raw, 28),
            hops: 0,
        })
    }

    /// Reads the next bytes of a file; 0 at its end.
    ///
    /// # Errors
    /// `INT_ERR` for a broken cluster chain; I/O errors.
    pub(crate) fn read(&mut self, f: &mut ReadFile, buf: &mut [u8]) -> Result<usize> {
        let cbytes = self.csize * SS as u32;
        let mut done = 0usize;
        while done < buf.len() && f.pos < f.size {
            if f.pos > 0 && f.pos.is_multiple_of(cbytes) {
                let next = self.get_fat(f.clst)?;
                f.hops += 1;
                if next < 2 || self.is_end(next) || f.hops > self.n_fatent {
                    return Err(fr(INT_ERR));
                }
                f.clst = next;
            }
            let sect = self.clst2sect(f.clst).ok_or_else(|| fr(INT_ERR))?;
            let in_cluster = f.pos % cbytes;
            let n = ((cbytes - in_cluster) as usize)
                .min(buf.len() - done)
                .min((f.size - f.pos) as usize);
            let at = self.check(sect, u64::from(in_cluster) + n as u64)? + u64::from(in_cluster);
            let out = buf.get_mut(done..done + n).ok_or_else(|| fr(INT_ERR))?;
            self.t.read_at(at, out)?;
            done += n;
            f.pos += n as u32;
        }
        Ok(done)
    }

    /// Reads a whole file (at most `limit` bytes).
    ///
    /// # Errors
    /// As [`Volume::open_read`] and [`Volume::read`].
    #[cfg(test)]
    pub(crate) fn read_file(&mut self, path: &str, limit: usize) -> Result<Vec<u8>> {
        let mut f = self.open_read(path)?;
        let size = (f.size as usize).min(limit);
        let mut out = vec![0u8; size];
        let mut got = 0;
        while got < size {
            let n = self.read(&mut f, out.get_mut(got..).unwrap_or_default())?;
            if n == 0 {
                break;
            }
            got += n;
        }
        out.truncate(got);
        Ok(out)
    }

    /// `fat_write`'s start: creates or truncates the file; returns a writer.
    ///
    /// # Errors
    /// FatFs's `f_open` errors.
    pub(crate) fn create(&mut self, path: &str) -> Result<OpenFile> {
        let mut f = self.open(path, true)?;
        self.sync_file(&mut f)?;
        Ok(f)
    }

    /// Writes `data` at `offset` of an open file as fwup's `fatfs_pwrite` does (a gap
    /// before `offset` is filled with zeros, 512 bytes at a time), then syncs.
    ///
    /// # Errors
    /// `DENIED`-like failures when the volume is full; I/O errors.
    pub(crate) fn pwrite(&mut self, f: &mut OpenFile, offset: u64, data: &[u8]) -> Result<()> {
        let offset = u32::try_from(offset).map_err(|_| fr(DENIED))?;
        if offset != f.fptr {
            if offset > f.size {
                self.seek(f, f.size)?;
                let zeros = [0u8; SS as usize];
                while f.fptr < offset {
                    let n = ((offset - f.fptr) as usize).min(zeros.len());
                    let w = self.write(f, zeros.get(..n).unwrap_or_default())?;
                    self.sync_file(f)?;
                    if w != n {
                        return Err(fr(DENIED));
                    }
                }
            } else {
                self.seek(f, offset)?;
            }
        }
        let w = self.write(f, data)?;
        self.sync_file(f)?;
        if w != data.len() {
            return Err(fr(DENIED));
        }
        Ok(())
    }

    /// FatFs `f_lseek` within the file (never past its size here).
    fn seek(&mut self, f: &mut OpenFile, ofs: u32) -> Result<()> {
        let ofs = ofs.min(f.size);
        let cbytes = self.csize * SS as u32;
        if f.dirty {
            self.write_sector(f.sect, &f.buf)?;
            f.dirty = false;
        }
        f.fptr = 0;
        f.clust = 0;
        if ofs > 0 {
            let mut clst = f.sclust;
            let mut pos = u64::from(cbytes);
            while pos < u64::from(ofs) {
                clst = self.get_fat(clst)?;
                if clst < 2 || self.is_end(clst) {
                    return Err(fr(INT_ERR));
                }
                pos += u64::from(cbytes);
            }
            f.clust = clst;
            f.fptr = ofs;
            if !ofs.is_multiple_of(SS as u32) {
                let sect = self.clst2sect(clst).ok_or_else(|| fr(INT_ERR))?
                    + u64::from((ofs / SS as u32) & (self.csize - 1));
                if sect != f.sect {
                    let mut buf = [0u8; SS as usize];
                    self.read_sector(sect, &mut buf)?;
                    f.buf = buf;
                    f.sect = sect;
                }
            }
        }
        Ok(())
    }

    /// `fat_touch`: creates an empty file when missing.
    ///
    /// # Errors
    /// FatFs's `f_open` errors (a directory or read-only file: `DENIED`).
    pub(crate) fn touch(&mut self, path: &str) -> Result<()> {
        let mut f = self.open(path, false)?;
        self.sync_file(&mut f)
    }

    /// `fat_rm`: FatFs `f_unlink`. With `must_exist`, a missing file is an error.
    ///
    /// # Errors
    /// `NO_FILE`/`NO_PATH` (only with `must_exist`), `DENIED` for read-only files and
    /// non-empty directories.
    pub(crate) fn rm(&mut self, path: &str, must_exist: bool) -> Result<()> {
        let r = match self.resolve(path) {
            Ok(r) => r,
            Err(Error::Fat { reason, .. }) if reason == NO_PATH && !must_exist => return Ok(()),
            Err(e) => return Err(e),
        };
        if r.name.is_none() {
            return Err(fr(INVALID_NAME));
        }
        let Some(f) = r.found else {
            return if must_exist { Err(fr(NO_FILE)) } else { Ok(()) };
        };
        if f.raw[11] & AM_RDO != 0 {
            return Err(fr(DENIED));
        }
        let dclst = self.ld_clust(&f.raw);
        if f.raw[11] & AM_DIR != 0 {
            let mut empty = true;
            self.walk(dclst, &mut |e, _, _, _| {
                if e[0] != b'.' && e[11] & AM_VOL == 0 {
                    empty = false;
                }
                !empty
            })?;
            if !empty {
                return Err(fr(DENIED));
            }
        }
        self.remove_entry(&f)?;
        if dclst != 0 {
            self.remove_chain(dclst)?;
        }
        self.sync()
    }

    /// `fat_mv`: FatFs `f_rename`; with `force`, an existing `to` is removed first.
    ///
    /// # Errors
    /// `EXIST` when `to` exists (without `force`), FatFs's path errors.
    pub(crate) fn mv(&mut self, from: &str, to: &str, force: bool) -> Result<()> {
        if force {
            self.rm(to, false)?;
        }
        let old = self.resolve(from)?;
        if old.name.is_none() {
            return Err(fr(INVALID_NAME));
        }
        let of = old.found.ok_or_else(|| fr(NO_FILE))?;
        let new = self.resolve(to)?;
        let name = new.name.ok_or_else(|| fr(INVALID_NAME))?;
        if let Some(nf) = new.found
            && !(nf.dir == of.dir && nf.idx == of.idx)
        {
            return Err(fr(EXIST));
        }
        let (idx, mut e) = self.register(new.dir, &name)?;
        e[13..].copy_from_slice(&of.raw[13..]);
        e[11] = of.raw[11];
        if e[11] & AM_DIR == 0 {
            e[11] |= AM_ARC;
        }
        self.write_entry(new.dir, idx, &e)?;
        if e[11] & AM_DIR != 0 && of.dir != new.dir {
            let sect = self
                .clst2sect(self.ld_clust(&e))
                .ok_or_else(|| fr(INT_ERR))?;
            let mut s = [0u8; SS as usize];
            self.read_sector(sect, &mut s)?;
            if s[33] == b'.' {
                let mut dd = [0u8; 32];
                dd.copy_from_slice(&s[32..64]);
                self.st_clust(&mut dd, new.dir);
                s[32..64].copy_from_slice(&dd);
                self.write_sector(sect, &s)?;
            }
        }
        // Entries never move, so the old one is still where it was found.
        self.remove_entry(&of)?;
        self.sync()
    }

    /// `fat_attrib`: sets R, H and S as given (the others cleared).
    ///
    /// # Errors
    /// `NO_FILE`, path errors.
    pub(crate) fn attrib(&mut self, path: &str, attr: u8) -> Result<()> {
        let r = self.resolve(path)?;
        if r.name.is_none() {
            return Err(fr(INVALID_NAME));
        }
        let f = r.found.ok_or_else(|| fr(NO_FILE))?;
        let mask = AM_RDO | AM_HID | AM_SYS;
        let mut e = f.raw;
        e[11] = (attr & mask) | (e[11] & !mask);
        self.write_entry(f.dir, f.idx, &e)?;
        self.sync()
    }

    /// `fat_setlabel`: FatFs `f_setlabel`.
    ///
    /// # Errors
    /// `INVALID_NAME` for characters FAT labels cannot hold or more than 11 of them.
    pub(crate) fn setlabel(&mut self, label: &str) -> Result<()> {
        let mut dirvn = [b' '; 11];
        let mut di = 0usize;
        for &b in label.as_bytes() {
            if b < b' ' {
                break;
            }
            let c = name::oem_upper(b);
            if b"+.,;=[]/*:<>|\\\"?\x7F".contains(&c) || di >= 11 {
                return Err(fr(INVALID_NAME));
            }
            if let Some(slot) = dirvn.get_mut(di) {
                *slot = c;
            }
            di += 1;
        }
        if dirvn[0] == DDEM {
            return Err(fr(INVALID_NAME));
        }
        while di > 0 && dirvn.get(di - 1) == Some(&b' ') {
            di -= 1;
        }
        let mut label_at = None;
        self.walk(0, &mut |e, _, idx, _| {
            if e[11] & 0x3F != AM_LFN && e[11] & !AM_ARC == AM_VOL {
                label_at = Some((idx, *e));
                return true;
            }
            false
        })?;
        match label_at {
            Some((idx, mut e)) => {
                if di != 0 {
                    e[..11].copy_from_slice(&dirvn);
                } else {
                    e[0] = DDEM;
                }
                self.write_entry(0, idx, &e)?;
            }
            None if di != 0 => {
                let idx = self.dir_alloc(0, 1)?;
                let mut e = [0u8; 32];
                e[11] = AM_VOL;
                e[..11].copy_from_slice(&dirvn);
                self.write_entry(0, idx, &e)?;
            }
            None => {}
        }
        self.sync()
    }

    #[cfg(test)]
    /// The volume label from the root directory, if any.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn label(&mut self) -> Result<Option<String>> {
        let mut label = None;
        self.walk(0, &mut |e, _, _, _| {
            if e[11] & 0x3F != AM_LFN && e[11] & !AM_ARC == AM_VOL {
                label = Some(
                    String::from_utf8_lossy(&e[..11])
                        .trim_end_matches(' ')
                        .to_owned(),
                );
                return true;
            }
            false
        })?;
        Ok(label)
    }
}

/// `fat_cp` within or across volumes: copies `from` on the volume at `from_base` to `to`
/// on the volume at `to_base`, 4 KiB at a time as fwup does.
///
/// # Errors
/// FatFs's open, read and write errors.
pub(crate) fn cp(
    t: &mut dyn Target,
    from_base: u64,
    from: &str,
    to_base: u64,
    to: &str,
) -> Result<()> {
    let mut src = Volume::mount(t, from_base)?.open_read(from)?;
    let (mut file, mut hint) = {
        let mut v = Volume::mount(t, to_base)?;
        let file = v.create(to)?;
        (file, v.last_cluster())
    };
    let mut buf = vec![0u8; 4096];
    loop {
        let n = Volume::mount(t, from_base)?.read(&mut src, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut v = Volume::mount(t, to_base)?;
        v.set_last_cluster(hint);
        let chunk = buf.get(..n).unwrap_or_default();
        if v.write(&mut file, chunk)? != n {
            return Err(fr(DENIED));
        }
        v.sync_file(&mut file)?;
        hint = v.last_cluster();
    }
}

/// A file open for reading.
#[derive(Debug)]
pub(crate) struct ReadFile {
    clst: u32,
    pos: u32,
    size: u32,
    hops: u32,
}

/// An open file: FatFs's `FIL` with its sector buffer.
#[derive(Debug)]
pub(crate) struct OpenFile {
    dir: u32,
    idx: u32,
    sclust: u32,
    size: u32,
    fptr: u32,
    clust: u32,
    sect: u64,
    buf: [u8; SS as usize],
    dirty: bool,
    modified: bool,
}

impl OpenFile {
    /// The file's size so far.
    pub(crate) fn size(&self) -> u64 {
        u64::from(self.size)
    }
}

/// Receives a short entry, the long name before it, its index and the index of its first
/// LFN entry; returns `true` to stop the walk.
type Visitor<'v> = dyn FnMut(&[u8; 32], &LfnRun, u32, Option<u32>) -> bool + 'v;

/// LFN entries collected before a short entry.
#[derive(Debug, Default)]
struct LfnRun {
    chars: Vec<u16>,
    start: Option<u32>,
    /// The next expected order number (0 once complete), or `None` when broken.
    next: Option<u8>,
    sum: u8,
}

impl LfnRun {
    fn push(&mut self, e: &[u8; 32], idx: u32) {
        let ord = e[0];
        if ord & 0x40 != 0 {
            let n = ord & 0x3F;
            *self = LfnRun {
                chars: Vec::new(),
                start: Some(idx),
                next: Some(n),
                sum: e[13],
            };
            if n == 0 {
                self.next = None;
                return;
            }
            let mut part = name::lfn_chars(e);
            self.chars = std::mem::take(&mut part);
            self.next = Some(n - 1);
            return;
        }
        match self.next {
            Some(n) if n == ord && n > 0 && e[13] == self.sum => {
                let mut part = name::lfn_chars(e);
                part.extend_from_slice(&self.chars);
                self.chars = part;
                self.next = Some(n - 1);
            }
            _ => self.next = None,
        }
    }
}

fn lfn_ok(e: &[u8; 32], run: &LfnRun) -> bool {
    run.next == Some(0) && run.start.is_some() && name::sfn_sum(&e[..11]) == run.sum
}

fn entry_of(e: &[u8; 32], run: &LfnRun, use_lfn: bool) -> Entry {
    let mut short = [0u8; 11];
    short.copy_from_slice(&e[..11]);
    let name = if use_lfn {
        String::from_utf16_lossy(&run.chars)
    } else {
        name::sfn_text(e)
    };
    Entry {
        name,
        short,
        attr: e[11],
        cluster: rd16(e, 26) | (rd16(e, 20) << 16),
        size: rd32(e, 28),
    }
}
