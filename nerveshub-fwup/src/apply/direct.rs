//! I/O on a block device opened with `O_DIRECT`, as fwup opens devices on Linux: the page
//! cache is bypassed, so every request must start on a 512-byte block, be a whole number of
//! blocks and use a suitably aligned buffer (page-aligned here, which satisfies every
//! device's DMA alignment).
//!
//! Callers may ask for any offset and length: a request is widened to whole blocks, data
//! goes through a page-aligned bounce buffer, and a write that covers part of a block
//! reads the block first (read-modify-write). The block cache above only issues whole,
//! aligned blocks, so that path is the exception.
//!
//! The aligned buffer is an over-allocated `Vec` used through the sub-slice that starts on
//! a page boundary, so no unsafe code is needed.

use std::fs::File;
use std::io;

/// Buffers start on this boundary (the usual page size; a multiple of every block size).
pub(super) const PAGE: usize = 4096;
/// The block size of every request.
pub(super) const SECTOR: u64 = 512;

/// A zeroed buffer that starts on a [`PAGE`] boundary.
pub(super) struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes, page-aligned.
    pub(super) fn new(len: usize) -> Self {
        let storage = vec![0u8; len + PAGE];
        // Within one page of the start for a byte pointer (align_offset never fails for u8).
        let start = storage.as_ptr().align_offset(PAGE).min(PAGE);
        Self {
            storage,
            start,
            len,
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        self.storage
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [u8] {
        self.storage
            .get_mut(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

/// The whole blocks covering `len` bytes at `offset`: (first byte, length).
fn covering(offset: u64, len: usize) -> io::Result<(u64, usize)> {
    let start = offset - offset % SECTOR;
    let end = offset
        .checked_add(len as u64)
        .and_then(|end| end.checked_next_multiple_of(SECTOR))
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let span =
        usize::try_from(end - start).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok((start, span))
}

/// Reads whole blocks into an aligned buffer, failing at the end of the device.
fn read_blocks(file: &File, buf: &mut AlignedBuf, offset: u64) -> io::Result<()> {
    let slice = buf.as_mut_slice();
    let mut done = 0;
    while done < slice.len() {
        // Devices return whole blocks, so `done` stays block- (and buffer-) aligned.
        let rest = slice.get_mut(done..).unwrap_or_default();
        match super::target::read_at_os(file, rest, offset + done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_blocks(file: &File, buf: &AlignedBuf, offset: u64) -> io::Result<()> {
    let slice = buf.as_slice();
    let mut done = 0;
    while done < slice.len() {
        let rest = slice.get(done..).unwrap_or_default();
        match super::target::write_at_os(file, rest, offset + done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` from `offset` with whole-block, page-aligned reads.
pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let (start, span) = covering(offset, buf.len())?;
    let mut bounce = AlignedBuf::new(span);
    read_blocks(file, &mut bounce, start)?;
    let skip = (offset - start) as usize;
    buf.copy_from_slice(
        bounce
            .as_slice()
            .get(skip..skip + buf.len())
            .unwrap_or_default(),
    );
    Ok(())
}

/// Writes `data` at `offset` with whole-block, page-aligned writes; a partly covered first
/// or last block is read first so its other bytes stay as they are.
pub(super) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let (start, span) = covering(offset, data.len())?;
    let mut bounce = AlignedBuf::new(span);
    let skip = (offset - start) as usize;
    if skip != 0 || span != data.len() {
        read_blocks(file, &mut bounce, start)?;
    }
    if let Some(dst) = bounce.as_mut_slice().get_mut(skip..skip + data.len()) {
        dst.copy_from_slice(data);
    }
    write_blocks(file, &bounce, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_page_aligned_and_requests_whole_blocks() {
        for len in [1, 511, 512, 4096, 131_072] {
            let buf = AlignedBuf::new(len);
            assert_eq!(buf.as_slice().as_ptr().align_offset(PAGE), 0);
            assert_eq!(buf.as_slice().len(), len);
        }
        assert_eq!(covering(0, 512).unwrap(), (0, 512));
        assert_eq!(covering(100, 10).unwrap(), (0, 512));
        assert_eq!(covering(510, 4).unwrap(), (0, 1024));
        assert_eq!(covering(1024, 131_072).unwrap(), (1024, 131_072));
    }

    #[test]
    fn partial_blocks_keep_their_other_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        std::fs::write(&path, vec![7u8; 2048]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        write_all_at(&file, &[1, 2, 3], 510).unwrap();
        let mut back = [0u8; 6];
        read_exact_at(&file, &mut back, 508).unwrap();
        assert_eq!(back, [7, 7, 1, 2, 3, 7]);
        let image = std::fs::read(&path).unwrap();
        assert_eq!(image.len(), 2048);
        assert_eq!(&image[509..514], &[7, 1, 2, 3, 7]);
    }
}
