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

    /// Completes every write made so far, for targets that write in the background
    /// (nothing to do by default). The apply engine calls it once at the end.
    ///
    /// # Errors
    /// The error of a write that failed in the background.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
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
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
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
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}

/// A [`Target`] on an image file or a block device, as fwup opens them.
///
/// A regular file is opened for reading and writing and created when missing, but never
/// truncated: bytes the apply does not write keep their old values. It grows as it is
/// written unless a size limit is set ([`FileTarget::with_max_size`], fwup's
/// `--max-size`). A block device has its size as limit.
///
/// Large writes (whole cache segments) are handed to one background writer thread, as
/// fwup does, so that decompression and writing overlap; at most
/// [`FileTarget::QUEUE_DEPTH`] of them wait at a time. Reads, small writes and
/// [`FileTarget::sync`] first wait for the queue to drain, so every access sees the
/// writes before it, in order. A failed background write is reported by the next call.
#[derive(Debug)]
pub struct FileTarget {
    file: std::sync::Arc<std::fs::File>,
    size: Option<u64>,
    is_device: bool,
    checks: WriteChecks,
    writer: Option<BackgroundWriter>,
}

/// fwup's `--verify-writes` and `--minimize-writes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WriteChecks {
    /// Read every write back and fail on a difference.
    verify: bool,
    /// Read first and skip writes of bytes already there.
    minimize: bool,
}

/// One write with the checks fwup's block cache makes (`verified_segment_write`).
fn checked_write(
    file: &std::fs::File,
    data: &[u8],
    offset: u64,
    checks: WriteChecks,
    temp: &mut Vec<u8>,
) -> std::io::Result<()> {
    if checks.minimize {
        temp.resize(data.len(), 0);
        if read_exact_at(file, temp, offset).is_ok() && temp[..] == *data {
            return Ok(());
        }
    }
    write_all_at(file, data, offset)?;
    if checks.verify {
        temp.resize(data.len(), 0);
        read_exact_at(file, temp, offset)
            .map_err(|_| std::io::Error::other(format!("read back failed at offset {offset}")))?;
        if temp[..] != *data {
            return Err(std::io::Error::other(format!(
                "write verification failed at offset {offset}"
            )));
        }
    }
    Ok(())
}

fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        match read_at_os(file, rest, offset + done as u64) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Work for the writer thread.
enum Job {
    Write(u64, Vec<u8>),
    Barrier(std::sync::mpsc::SyncSender<std::io::Result<()>>),
}

#[derive(Debug)]
struct BackgroundWriter {
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Write(offset, data) => write!(f, "Write({offset}, {} bytes)", data.len()),
            Job::Barrier(_) => f.write_str("Barrier"),
        }
    }
}

/// Writes at least this large go to the writer thread.
const BACKGROUND_MIN: usize = 64 * 1024;

impl BackgroundWriter {
    fn start(file: std::sync::Arc<std::fs::File>, checks: WriteChecks) -> Option<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(FileTarget::QUEUE_DEPTH);
        let (spare_tx, spare) =
            std::sync::mpsc::sync_channel::<Vec<u8>>(FileTarget::QUEUE_DEPTH + 2);
        let thread = std::thread::Builder::new()
            .name("fwup-writer".to_owned())
            .spawn(move || {
                let mut failed: Option<std::io::Error> = None;
                let mut temp = Vec::new();
                for job in rx {
                    match job {
                        Job::Write(offset, data) => {
                            if failed.is_none()
                                && let Err(e) =
                                    checked_write(&file, &data, offset, checks, &mut temp)
                            {
                                failed = Some(e);
                            }
                            let _ = spare_tx.try_send(data);
                        }
                        Job::Barrier(reply) => {
                            let _ = reply.send(failed.take().map_or(Ok(()), Err));
                        }
                    }
                }
            })
            .ok()?;
        Some(Self {
            jobs: Some(jobs),
            spare,
            thread: Some(thread),
        })
    }

    /// Waits until every queued write is done; returns the first error among them.
    fn barrier(&mut self) -> Result<()> {
        let Some(jobs) = &self.jobs else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if jobs.send(Job::Barrier(tx)).is_err() {
            return Err(std::io::Error::other("background writer stopped").into());
        }
        match rx.recv() {
            Ok(result) => Ok(result?),
            Err(_) => Err(std::io::Error::other("background writer stopped").into()),
        }
    }

    fn queue(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let mut buf = self.spare.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        match &self.jobs {
            Some(jobs) if jobs.send(Job::Write(offset, buf)).is_ok() => Ok(()),
            _ => Err(std::io::Error::other("background writer stopped").into()),
        }
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FileTarget {
    /// How many large writes may wait for the writer thread (128 KiB each: 1 MiB).
    pub const QUEUE_DEPTH: usize = 8;

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
        let mut target = Self::from_file(file);
        target.size = size;
        target.is_device = is_device;
        // fwup verifies writes to devices by default, not to regular files.
        Ok(target.with_write_checks(is_device, false))
    }

    /// Wraps an already open file (a regular file, without a size limit).
    pub fn from_file(file: std::fs::File) -> Self {
        let file = std::sync::Arc::new(file);
        Self {
            writer: BackgroundWriter::start(file.clone(), WriteChecks::default()),
            file,
            size: None,
            is_device: false,
            checks: WriteChecks::default(),
        }
    }

    /// fwup's `--verify-writes` (read every write back, fail on a difference: `write
    /// verification failed at offset N`) and `--minimize-writes` (read first, skip writes
    /// of what is already there). [`FileTarget::open`] turns verification on for block
    /// devices, as fwup does.
    pub fn with_write_checks(mut self, verify_writes: bool, minimize_writes: bool) -> Self {
        let checks = WriteChecks {
            verify: verify_writes,
            minimize: minimize_writes,
        };
        if checks != self.checks {
            // The writer thread holds its checks: drain it and start one with the new ones.
            drop(self.writer.take());
            self.checks = checks;
            self.writer = BackgroundWriter::start(self.file.clone(), checks);
        }
        self
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

    /// Waits for queued writes and flushes the file's data to the storage device.
    ///
    /// # Errors
    /// [`Error::Io`], including the error of a failed background write.
    pub fn sync(&mut self) -> Result<()> {
        self.drain()?;
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

    fn drain(&mut self) -> Result<()> {
        match &mut self.writer {
            Some(writer) => writer.barrier(),
            None => Ok(()),
        }
    }

    fn check(&self, offset: u64, len: u64) -> Result<()> {
        if let Some(size) = self.size
            && offset.checked_add(len).is_none_or(|end| end > size)
        {
            return Err(Error::PastEndOfMedia { offset, len, size });
        }
        Ok(())
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

fn write_all_at(file: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        let rest = data.get(done..).unwrap_or_default();
        match write_at_os(file, rest, offset + done as u64) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Target for FileTarget {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len() as u64)?;
        self.drain()?;
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
        self.check(offset, data.len() as u64)?;
        if data.len() >= BACKGROUND_MIN
            && let Some(writer) = &mut self.writer
        {
            return writer.queue(offset, data);
        }
        self.drain()?;
        let mut temp = Vec::new();
        Ok(checked_write(
            &self.file,
            data,
            offset,
            self.checks,
            &mut temp,
        )?)
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

    fn flush(&mut self) -> Result<()> {
        self.drain()
    }
}
