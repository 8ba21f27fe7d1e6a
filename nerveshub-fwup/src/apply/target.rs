//! Where an apply writes: the [`Target`] trait and its in-memory implementation.
//!
//! The apply engine, the MBR/GPT writers and the U-Boot environment code all work on a
//! `&mut dyn Target`. Offsets and lengths are in bytes. The engine puts fwup's block cache
//! between the functions of a task and the real destination, so code that only sees a
//! `dyn Target` reads back what it wrote earlier in the same apply.

use crate::{Error, Result};

/// Where an apply writes: an image file, a block device, or memory. Offsets in bytes.
///
/// Implementations must read unwritten areas (holes, areas past the current end of a
/// growing file, trimmed ranges) as zeros.
pub trait Target {
    /// Fills `buf` with the bytes at `offset`. Unwritten areas read as zeros.
    ///
    /// # Errors
    /// An I/O error, or a read past [`Target::size`] when the size is known.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Writes `data` at `offset`.
    ///
    /// # Errors
    /// An I/O error, or a write past [`Target::size`] when the size is known.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;

    /// The known size of the destination in bytes: the size of a block device, or the limit
    /// set with `--max-size`. `None` for a regular file that grows as it is written.
    fn size(&self) -> Option<u64>;

    /// Marks `len` bytes at `offset` as no longer needed. Afterwards the range reads as
    /// zeros. Implementations may do nothing more (fwup issues a discard only on devices
    /// and only when asked to).
    ///
    /// # Errors
    /// An I/O error.
    fn trim(&mut self, offset: u64, len: u64) -> Result<()>;
}

/// A [`Target`] held in memory, for tests, fuzzing and small images.
///
/// It grows as it is written unless created with a fixed size, in which case accesses past
/// the end fail as they would on a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTarget {
    data: Vec<u8>,
    fixed_size: Option<u64>,
}

impl MemoryTarget {
    /// An empty target that grows as it is written.
    pub fn new() -> Self {
        Self::default()
    }

    /// A target of exactly `size` bytes, initially zero, that refuses accesses past its end.
    ///
    /// # Errors
    /// [`Error::PastEndOfMedia`] when `size` does not fit in memory on this platform.
    pub fn with_size(size: u64) -> Result<Self> {
        let len = usize::try_from(size).map_err(|_| Error::PastEndOfMedia {
            offset: 0,
            len: size,
            size: 0,
        })?;
        Ok(Self {
            data: vec![0; len],
            fixed_size: Some(size),
        })
    }

    /// A growing target starting with `data`.
    pub fn from_bytes(data: Vec<u8>) -> Self {
        Self {
            data,
            fixed_size: None,
        }
    }

    /// The bytes written so far (for a growing target: up to the highest byte written).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The bytes, consuming the target.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    fn range(&self, offset: u64, len: usize) -> Result<(usize, usize)> {
        let len64 = len as u64;
        let end = offset.checked_add(len64);
        let past = |size: u64| Error::PastEndOfMedia {
            offset,
            len: len64,
            size,
        };
        match (end, self.fixed_size) {
            (Some(end), Some(size)) if end <= size => {}
            (_, Some(size)) => return Err(past(size)),
            (Some(_), None) => {}
            (None, None) => return Err(past(u64::MAX)),
        }
        let start = usize::try_from(offset).map_err(|_| past(self.data.len() as u64))?;
        let end = start
            .checked_add(len)
            .ok_or_else(|| past(self.data.len() as u64))?;
        Ok((start, end))
    }
}

impl Target for MemoryTarget {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let (start, end) = self.range(offset, buf.len())?;
        buf.fill(0);
        if start < self.data.len() {
            let avail = end.min(self.data.len());
            if let (Some(dst), Some(src)) =
                (buf.get_mut(..avail - start), self.data.get(start..avail))
            {
                dst.copy_from_slice(src);
            }
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let (start, end) = self.range(offset, data.len())?;
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        if let Some(dst) = self.data.get_mut(start..end) {
            dst.copy_from_slice(data);
        }
        Ok(())
    }

    fn size(&self) -> Option<u64> {
        self.fixed_size
    }

    fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let Ok(start) = usize::try_from(offset) else {
            return Ok(());
        };
        let end = start.saturating_add(len).min(self.data.len());
        if let Some(range) = self.data.get_mut(start.min(end)..end) {
            range.fill(0);
        }
        Ok(())
    }
}

impl<T: Target + ?Sized> Target for &mut T {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        (**self).write_at(offset, data)
    }
    fn size(&self) -> Option<u64> {
        (**self).size()
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        (**self).trim(offset, len)
    }
}

impl<T: Target + ?Sized> Target for Box<T> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        (**self).write_at(offset, data)
    }
    fn size(&self) -> Option<u64> {
        (**self).size()
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        (**self).trim(offset, len)
    }
}

/// A [`Target`] on an image file or a block device, as fwup opens them.
///
/// A regular file is opened for reading and writing and created when missing, but never
/// truncated: bytes the apply does not write keep their old values. It grows as it is
/// written unless a size limit is set ([`FileTarget::with_max_size`], fwup's
/// `--max-size`). A block device has its size as limit.
#[derive(Debug)]
pub struct FileTarget {
    file: std::fs::File,
    size: Option<u64>,
    is_device: bool,
}

impl FileTarget {
    /// Opens (creating if needed, never truncating) `path`. Block devices get their size as
    /// the end of media.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        use std::io::Seek;
        let path = path.as_ref();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let is_device = is_block_device(&file.metadata()?);
        let size = if is_device {
            Some(file.seek(std::io::SeekFrom::End(0))?)
        } else {
            None
        };
        Ok(Self {
            file,
            size,
            is_device,
        })
    }

    /// Wraps an already open file (a regular file, without a size limit).
    pub fn from_file(file: std::fs::File) -> Self {
        Self {
            file,
            size: None,
            is_device: false,
        }
    }

    /// Sets a hard end of media at `bytes` (fwup's `--max-size` × 512).
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }

    /// Whether the destination is a block device.
    pub fn is_block_device(&self) -> bool {
        self.is_device
    }

    /// Flushes the file's data to the storage device.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn sync(&self) -> Result<()> {
        match self.file.sync_data() {
            Ok(()) => Ok(()),
            // /dev/null and pipes cannot be synced; there is nothing to wait for.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The underlying file.
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }
}

#[cfg(unix)]
fn is_block_device(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_block_device()
}

#[cfg(not(unix))]
fn is_block_device(_meta: &std::fs::Metadata) -> bool {
    false
}

#[cfg(unix)]
fn read_at_os(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at_os(file: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, data, offset)
}

#[cfg(windows)]
fn read_at_os(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(windows)]
fn write_at_os(file: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(file, data, offset)
}

impl Target for FileTarget {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        if let Some(size) = self.size
            && offset.checked_add(len).is_none_or(|end| end > size)
        {
            return Err(Error::PastEndOfMedia { offset, len, size });
        }
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get_mut(done..).unwrap_or_default();
            match read_at_os(&self.file, rest, offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Past the end of a regular file reads as zeros.
        if let Some(rest) = buf.get_mut(done..) {
            rest.fill(0);
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let len = data.len() as u64;
        if let Some(size) = self.size
            && offset.checked_add(len).is_none_or(|end| end > size)
        {
            return Err(Error::PastEndOfMedia { offset, len, size });
        }
        let mut done = 0;
        while done < data.len() {
            let rest = data.get(done..).unwrap_or_default();
            match write_at_os(&self.file, rest, offset + done as u64) {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn size(&self) -> Option<u64> {
        self.size
    }

    fn trim(&mut self, _offset: u64, _len: u64) -> Result<()> {
        // fwup sends BLKDISCARD only to devices with --enable-trim; that needs an ioctl,
        // which this crate does not issue (no unsafe code). The range already reads as
        // zeros through the apply's cache.
        Ok(())
    }
}
