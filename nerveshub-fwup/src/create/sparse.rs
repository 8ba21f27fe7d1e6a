//! Sparse maps for `skip-holes` resources, built the way fwup's `sparse_file.c` builds
//! them: alternating data and hole run lengths (data first), at most 256 runs, across all
//! the `;`-separated host paths of a resource.
//!
//! Holes are found with `lseek(SEEK_DATA/SEEK_HOLE)` through rustix's safe wrapper on Unix.
//! Elsewhere every file is treated as dense (one data run), which is also what fwup does
//! on systems without sparse seeks.

use std::fs::File;

/// fwup's `SPARSE_FILE_MAP_MAX_LEN`.
pub(crate) const MAX_RUNS: usize = 256;

/// The map of a whole resource and where its data lives in each file.
#[derive(Debug, Default, Clone)]
pub(crate) struct SparseMap {
    /// Run lengths: data, hole, data, … (meta.conf's `length`).
    pub(crate) runs: Vec<u64>,
    /// Per file, the byte ranges (offset, length) that hold data, in order.
    pub(crate) data: Vec<Vec<(u64, u64)>>,
}

impl SparseMap {
    /// Total size including holes.
    pub(crate) fn total_len(&self) -> u64 {
        self.runs.iter().sum()
    }

    /// Bytes stored in the archive (the data runs).
    pub(crate) fn data_len(&self) -> u64 {
        self.runs.iter().step_by(2).sum()
    }

    /// Adds the next file of the resource. `skip_holes` false maps it as one data run.
    pub(crate) fn add_file(&mut self, file: &File, skip_holes: bool) -> std::io::Result<()> {
        let size = file.metadata()?.len();
        let mut regions = Vec::new();
        let (mut i, mut leftover) = match self.runs.pop() {
            None => (0usize, 0u64),
            Some(last) => (self.runs.len(), last),
        };
        let mut offset = 0u64;
        let mut next = 0u64;
        if skip_holes && cfg!(unix) {
            while i < MAX_RUNS - 2 {
                let in_hole = i % 2 == 1;
                let Some(found) = seek_data_or_hole(file, offset, in_hole) else {
                    // The end: whatever remains up to the size is one more run.
                    // (fwup: `map_len = i`, so an unset run here is dropped.)
                    if size != offset {
                        self.set(i, size - offset + leftover);
                        if i % 2 == 0 {
                            regions.push((offset, size - offset));
                        }
                    }
                    self.data.push(regions);
                    return Ok(());
                };
                next = found;
                if i >= 1 && offset == next && self.runs.get(i - 1) == Some(&0) {
                    self.data.push(regions);
                    self.runs.truncate(i);
                    return Ok(());
                }
                self.set(i, next - offset + leftover);
                if !in_hole && next > offset {
                    regions.push((offset, next - offset));
                }
                leftover = 0;
                offset = next;
                i += 1;
            }
            if i % 2 == 1 {
                self.set(i, next - offset + leftover);
                leftover = 0;
                offset = next;
                i += 1;
            }
        }
        self.set(i, size - offset + leftover);
        if size > offset {
            regions.push((offset, size - offset));
        }
        self.data.push(regions);
        Ok(())
    }

    fn set(&mut self, i: usize, value: u64) {
        if self.runs.len() <= i {
            self.runs.resize(i + 1, 0);
        }
        self.runs[i] = value;
    }
}

/// fwup's `--sparse-check PATH --sparse-check-size N` (`sparse_file_is_supported`): creates
/// (truncating) `path`, writes 4 bytes at offset `hole`, checks that the data starts there
/// (the bytes before it are a hole), and removes the file again.
///
/// # Errors
/// [`CreateError::SparseCheck`](crate::CreateError::SparseCheck) with fwup's message: the file cannot be created, the write
/// fails, or no hole of that size was made.
pub fn sparse_file_supported(path: &std::path::Path, hole: i32) -> crate::Result<()> {
    let fail = |m: String| Err(crate::Error::Create(crate::CreateError::SparseCheck(m)));
    let mut open = std::fs::OpenOptions::new();
    open.read(true).write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let Ok(file) = open.open(path) else {
        return fail(format!(
            "Couldn't create sparse test file: {}",
            path.display()
        ));
    };
    let result = (|| {
        let written = u64::try_from(hole)
            .ok()
            .and_then(|at| write_at(&file, &hole.to_ne_bytes(), at).ok());
        if written != Some(4) {
            return fail(format!("Sparse check write to offset {hole} failed."));
        }
        if seek_data_or_hole(&file, 0, true) != u64::try_from(hole).ok() {
            return fail(format!("Hole of {hole} bytes not created on filesystem"));
        }
        Ok(())
    })();
    drop(file);
    let _ = std::fs::remove_file(path);
    result
}

#[cfg(unix)]
fn write_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, data, offset)
}

#[cfg(not(unix))]
fn write_at(_file: &File, _data: &[u8], _offset: u64) -> std::io::Result<usize> {
    Err(std::io::Error::other(
        "sparse files are not checked on this platform",
    ))
}

/// `lseek(fd, offset, SEEK_DATA)` inside a hole, `SEEK_HOLE` inside data; `None` when the
/// seek fails (past the end: fwup's "normal case").
#[cfg(unix)]
fn seek_data_or_hole(file: &File, offset: u64, in_hole: bool) -> Option<u64> {
    use rustix::fs::{SeekFrom, seek};
    let whence = if in_hole {
        SeekFrom::Data(offset)
    } else {
        SeekFrom::Hole(offset)
    };
    seek(file, whence).ok()
}

#[cfg(not(unix))]
fn seek_data_or_hole(_file: &File, _offset: u64, _in_hole: bool) -> Option<u64> {
    None
}
