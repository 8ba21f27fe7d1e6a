//! Directory entries: finding, allocating and registering them (FatFs `dir_*`), paths,
//! and directory creation.

use super::*;

impl Volume<'_> {
    // ---- directories ----------------------------------------------------------------------

    /// The sector holding entry `idx` of the directory starting at `dir` (0: root), or
    /// `None` past its end. With `stretch`, a cluster directory grows by a zeroed cluster.
    pub(super) fn entry_sector(
        &mut self,
        dir: u32,
        idx: u32,
        stretch: bool,
    ) -> Result<Option<u64>> {
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

    pub(super) fn clear_cluster(&mut self, clst: u32) -> Result<()> {
        let sect = self.clst2sect(clst).ok_or_else(|| fr(INT_ERR))?;
        let zeros = vec![0u8; (u64::from(self.csize) * SS) as usize];
        self.write_sector(sect, &zeros)
    }

    pub(super) fn read_entry(&mut self, dir: u32, idx: u32) -> Result<Option<[u8; 32]>> {
        let Some(sect) = self.entry_sector(dir, idx, false)? else {
            return Ok(None);
        };
        let mut e = [0u8; 32];
        let at = self.check(sect, SS)? + u64::from(idx % 16) * SZDIRE as u64;
        self.t.read_at(at, &mut e)?;
        Ok(Some(e))
    }

    pub(super) fn write_entry(&mut self, dir: u32, idx: u32, e: &[u8; 32]) -> Result<()> {
        let sect = self
            .entry_sector(dir, idx, false)?
            .ok_or_else(|| fr(INT_ERR))?;
        let at = self.check(sect, SS)? + u64::from(idx % 16) * SZDIRE as u64;
        self.t.write_at(at, e)
    }

    pub(super) fn ld_clust(&self, e: &[u8; 32]) -> u32 {
        let lo = rd16(e, 26);
        if self.kind == FatType::Fat32 {
            lo | (rd16(e, 20) << 16)
        } else {
            lo
        }
    }

    pub(super) fn st_clust(&self, e: &mut [u8; 32], clst: u32) {
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
    pub(super) fn walk(&mut self, dir: u32, visit: &mut Visitor<'_>) -> Result<()> {
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
    pub(super) fn find(&mut self, dir: u32, name: &Name) -> Result<Option<Found>> {
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
    pub(super) fn sfn_exists(&mut self, dir: u32, sfn: &[u8; 11]) -> Result<bool> {
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
    pub(super) fn resolve(&mut self, path: &str) -> Result<Resolved> {
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
    pub(super) fn dir_alloc(&mut self, dir: u32, n: u32) -> Result<u32> {
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
    pub(super) fn register(&mut self, dir: u32, name: &Name) -> Result<(u32, [u8; 32])> {
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
    pub(super) fn remove_entry(&mut self, found: &Found) -> Result<()> {
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
}
