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
//! The slack after the end of a file in its last sector holds FatFs's stale sector buffer:
//! the last sector a write ended in the middle of. It comes out as fwup's because data
//! reaches `fat_write` in fwup's chunks: the archive reader never consumes input across a
//! 16 KiB block of the archive (fwup's `DEFAULT_LIBARCHIVE_BLOCK_SIZE`) within one read,
//! and the engine hands each read to FatFs as it comes (see `zip::entry` and
//! `apply::functions`).
//!
//! Known differences from fwup (see issue 5):
//! * FatFs keeps a volume mounted across the functions of a task, so its "last allocated
//!   cluster" hint survives between calls; here each function mounts afresh (FAT32 keeps
//!   the hint through FSInfo; FAT12/16 restart the search at cluster 2), which matters
//!   only when clusters were freed before a later allocation.
//! * fwup keeps the file of a `fat_write` open until another FAT function runs; a second
//!   `fat_write` to the same file right after truncates it with `f_truncate` (keeping the
//!   sector buffer and the allocation hint) instead of reopening it.

mod dir;
mod file;
mod fuzz;
mod mkfs;
mod name;
#[cfg(test)]
mod tests;

pub use fuzz::fuzz_fat;
pub(crate) use mkfs::mkfs;

use super::target::Target;
use crate::{Error, FatError, Result};
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
    Error::Fat(FatError {
        context: String::new(),
        path: String::new(),
        reason,
    })
}

/// Fills in fwup's `context(path)` of a FAT error.
pub(super) fn with_context(err: Error, context: &str, path: &str) -> Error {
    match err {
        Error::Fat(FatError { reason, .. }) => Error::Fat(FatError {
            context: context.to_owned(),
            path: path.to_owned(),
            reason,
        }),
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
    /// [`FatError`](crate::FatError) `NO_FILESYSTEM` when the boot sector does not describe a FAT volume.
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

impl ReadFile {
    /// The file's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        u64::from(self.size)
    }
}

/// A file open for reading.
#[derive(Debug)]
pub(crate) struct ReadFile {
    /// First cluster, to seek back to.
    start: u32,
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
