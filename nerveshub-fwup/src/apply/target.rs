//! Where an apply writes: the [`Target`] trait and its in-memory implementation.
//!
//! The apply engine, the MBR/GPT writers and the U-Boot environment code all work on a
//! `&mut dyn Target`. Offsets and lengths are in bytes. The engine puts fwup's block cache
//! between the functions of a task and the real destination, so code that only sees a
//! `dyn Target` reads back what it wrote earlier in the same apply.

use crate::{ApplyError, Error, Result};

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

    /// The destination size that `mbr_write`'s `expand` partitions and `gpt_write`'s backup
    /// header go by: [`Target::size`] when there is one, else a *soft* end that writes may
    /// pass. fwup takes an existing image file's length as that soft end (the QEMU disk
    /// image case); by default there is none.
    fn end_hint(&self) -> Option<u64> {
        self.size()
    }

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
    /// [`ApplyError::PastEndOfMedia`](crate::ApplyError::PastEndOfMedia) when `size` does not fit in memory on this platform.
    pub fn with_size(size: u64) -> Result<Self> {
        let len = usize::try_from(size).map_err(|_| {
            Error::Apply(ApplyError::PastEndOfMedia {
                offset: 0,
                len: size,
                size: 0,
            })
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
        let past = |size: u64| {
            Error::Apply(ApplyError::PastEndOfMedia {
                offset,
                len: len64,
                size,
            })
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
    fn end_hint(&self) -> Option<u64> {
        (**self).end_hint()
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
    fn end_hint(&self) -> Option<u64> {
        (**self).end_hint()
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
/// `--max-size`); a non-empty existing file's length is the soft end that `expand` and the
/// GPT backup header go by ([`Target::end_hint`]). A block device has its size as limit.
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
    /// An existing regular file's length when opened: fwup's soft end of media.
    soft_end: Option<u64>,
    /// Discards the device refused: (start, end) byte ranges.
    trim_failures: Vec<(u64, u64)>,
    is_device: bool,
    checks: WriteChecks,
    writer: Option<BackgroundWriter>,
}

/// How the destination is accessed: fwup's `--verify-writes` and `--minimize-writes`, and
/// whether the file was opened with `O_DIRECT` (then every access goes through
/// [`super::direct`]'s whole-block, page-aligned I/O, on every thread).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WriteChecks {
    /// Read every write back and fail on a difference.
    verify: bool,
    /// Read first and skip writes of bytes already there.
    minimize: bool,
    /// The file is open with `O_DIRECT`.
    direct: bool,
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
        if read_exact_at(file, temp, offset, checks.direct).is_ok() && temp[..] == *data {
            return Ok(());
        }
    }
    write_all_at(file, data, offset, checks.direct)?;
    if checks.verify {
        temp.resize(data.len(), 0);
        read_exact_at(file, temp, offset, checks.direct)
            .map_err(|_| std::io::Error::other(format!("read back failed at offset {offset}")))?;
        if temp[..] != *data {
            return Err(std::io::Error::other(format!(
                "write verification failed at offset {offset}"
            )));
        }
    }
    Ok(())
}

fn read_exact_at(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
    direct: bool,
) -> std::io::Result<()> {
    if direct {
        return super::direct::read_exact_at(file, buf, offset);
    }
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
        let meta = file.metadata()?;
        let is_device = is_block_device(&meta);
        let mut direct = false;
        if is_device && let Some(reopened) = open_direct(path) {
            file = reopened;
            direct = true;
        }
        let size = if is_device {
            Some(file.seek(std::io::SeekFrom::End(0))?)
        } else {
            None
        };
        let mut target = Self::from_file(file);
        target.size = size;
        target.is_device = is_device;
        if direct {
            // The writer thread must use the direct path too: restart it with it.
            drop(target.writer.take());
            target.checks.direct = true;
            target.writer = BackgroundWriter::start(target.file.clone(), target.checks);
        }
        if !is_device && meta.is_file() && meta.len() > 0 {
            target.soft_end = Some(meta.len());
        }
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
            soft_end: None,
            trim_failures: Vec::new(),
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
            direct: self.checks.direct,
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

    /// The byte ranges `(start, end)` of `trim` discards the device refused (fwup warns
    /// `BLKDISCARD (TRIM command) failed on range …` and goes on).
    pub fn trim_failures(&self) -> &[(u64, u64)] {
        &self.trim_failures
    }

    /// Whether the destination was opened with `O_DIRECT` (block devices on Linux): every
    /// read and write then starts on a 512-byte block, is whole blocks long and uses a
    /// page-aligned buffer.
    pub fn is_direct(&self) -> bool {
        self.checks.direct
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
            return Err(Error::Apply(ApplyError::PastEndOfMedia {
                offset,
                len,
                size,
            }));
        }
        Ok(())
    }
}

/// Discards `len` bytes at `offset` of a block device (`trim` with `--enable-trim`).
///
/// fwup issues the `BLKDISCARD` ioctl. This crate has no unsafe code and no safe wrapper for
/// that ioctl exists, so it asks the kernel through `fallocate` on the device, whose block
/// layer maps `PUNCH_HOLE | KEEP_SIZE | NO_HIDE_STALE` to the same discard `BLKDISCARD` makes
/// (`blkdev_issue_discard`, what SD and eMMC cards support). Kernels without that mode
/// answer `EOPNOTSUPP`/`EINVAL`; then `PUNCH_HOLE | KEEP_SIZE` asks for a zeroing that may
/// unmap (`REQ_OP_WRITE_ZEROES`, no fallback). A device supporting neither refuses it and
/// the caller notes it.
#[cfg(target_os = "linux")]
fn discard(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::io::Errno;
    let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
    match fallocate(file, punch | FallocateFlags::NO_HIDE_STALE, offset, len) {
        Err(Errno::OPNOTSUPP | Errno::INVAL) => {
            fallocate(file, punch, offset, len).map_err(std::io::Error::from)
        }
        other => other.map_err(std::io::Error::from),
    }
}

#[cfg(not(target_os = "linux"))]
fn discard(_file: &std::fs::File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Opens a block device again with `O_DIRECT` (Linux), as fwup's `mmc_open` does; `None`
/// where that is refused (then the page cache is used).
#[cfg(target_os = "linux")]
fn open_direct(path: &std::path::Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let flags = rustix::fs::OFlags::DIRECT.bits();
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(i32::try_from(flags).ok()?)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &std::path::Path) -> Option<std::fs::File> {
    None
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
pub(super) fn read_at_os(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(unix)]
pub(super) fn write_at_os(
    file: &std::fs::File,
    data: &[u8],
    offset: u64,
) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, data, offset)
}

#[cfg(windows)]
pub(super) fn read_at_os(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(windows)]
pub(super) fn write_at_os(
    file: &std::fs::File,
    data: &[u8],
    offset: u64,
) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(file, data, offset)
}

fn write_all_at(
    file: &std::fs::File,
    data: &[u8],
    offset: u64,
    direct: bool,
) -> std::io::Result<()> {
    if direct {
        return super::direct::write_all_at(file, data, offset);
    }
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
        if self.checks.direct {
            // A device: its size was checked above, so every byte exists.
            return Ok(super::direct::read_exact_at(&self.file, buf, offset)?);
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

    fn end_hint(&self) -> Option<u64> {
        self.size.or(self.soft_end)
    }

    fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        // Only devices are discarded (fwup ignores --enable-trim for regular files). The
        // range reads as zeros through the apply's cache either way.
        if !self.is_device || len == 0 {
            return Ok(());
        }
        self.drain()?;
        // Best effort, as in fwup: a device that cannot discard is noted, not an error.
        if discard(&self.file, offset, len).is_err() {
            self.trim_failures
                .push((offset, offset.saturating_add(len)));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.drain()
    }
}
