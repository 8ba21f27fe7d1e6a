//! `fat_mkfs`: FatFs `f_mkfs` as fwup configures it.

use super::*;

/// `fat_mkfs`: FatFs `f_mkfs` with fwup's options on `count` blocks at byte `offset`.
///
/// # Errors
/// [`FatError`](crate::FatError) (`MKFS_ABORTED`) for sizes FatFs refuses; target errors.
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
