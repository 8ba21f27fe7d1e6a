//! Files and the whole-object operations of fwup's FAT functions: open, write, read, seek,
//! touch, rm, mv, attrib and the volume label.

use super::*;
use crate::FatError;

impl Volume<'_> {
    /// FatFs `f_open` with `FA_CREATE_ALWAYS` (truncating) or `FA_OPEN_ALWAYS`; returns
    /// the open file.
    pub(super) fn open(&mut self, path: &str, truncate: bool) -> Result<OpenFile> {
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
    pub(super) fn write(&mut self, f: &mut OpenFile, data: &[u8]) -> Result<usize> {
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

    pub(super) fn advance(&self, f: &mut OpenFile, n: usize) {
        f.fptr += n as u32;
        f.size = f.size.max(f.fptr);
    }

    /// FatFs `f_sync`.
    pub(super) fn sync_file(&mut self, f: &mut OpenFile) -> Result<()> {
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
        let clst = self.ld_clust(&f.raw);
        Ok(ReadFile {
            start: clst,
            clst,
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

    /// Fills `buf` with the file's bytes at `offset` (fwup's `fatfs_pread`, the source of
    /// FAT delta resources). Seeking walks the cluster chain from the nearest known point.
    ///
    /// # Errors
    /// `INT_ERR` for a read past the end of the file or a broken chain; I/O errors.
    pub(crate) fn pread(&mut self, f: &mut ReadFile, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > u64::from(f.size)) {
            return Err(fr(INT_ERR));
        }
        // Fits: at most the file size, a u32.
        let offset = u32::try_from(offset).map_err(|_| fr(INT_ERR))?;
        let cbytes = self.csize * SS as u32;
        // The cluster holding byte pos - 1 is the current one (see `read`).
        let index = |pos: u32| if pos == 0 { 0 } else { (pos - 1) / cbytes };
        if offset < f.pos {
            f.clst = f.start;
            f.pos = 0;
            f.hops = 0;
        }
        let (mut at, target) = (index(f.pos), index(offset));
        while at < target {
            let next = self.get_fat(f.clst)?;
            f.hops += 1;
            if next < 2 || self.is_end(next) || f.hops > self.n_fatent {
                return Err(fr(INT_ERR));
            }
            f.clst = next;
            at += 1;
        }
        f.pos = offset;
        let mut done = 0;
        while done < buf.len() {
            let n = self.read(f, buf.get_mut(done..).unwrap_or_default())?;
            if n == 0 {
                return Err(fr(INT_ERR));
            }
            done += n;
        }
        Ok(())
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
    pub(super) fn seek(&mut self, f: &mut OpenFile, ofs: u32) -> Result<()> {
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
            Err(Error::Fat(FatError { reason, .. })) if reason == NO_PATH && !must_exist => {
                return Ok(());
            }
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
