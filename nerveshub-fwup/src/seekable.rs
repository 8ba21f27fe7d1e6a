//! Random access to an archive through its central directory.

use std::io::{Read, Seek};

use crate::archive::{ArchiveHead, EntrySource, read_bounded, read_head, resource_name};
use crate::zip::{EntryInfo, ZipEntryReader, ZipSeekReader, crate_error_into_io};
use crate::{ArchiveError, Error, Result};

/// Reads an archive that can seek (a file, a `Cursor`), without streaming it front to back:
/// the head comes from the first entries of the central directory, and any resource can be
/// opened by name.
///
/// The head follows the same rules as [`crate::ArchiveReader`] (optional signature first,
/// then meta.conf, sizes bounded), taking the central directory's order as the archive order
/// (fwup writes both in the same order). Each resource read is CRC-checked; its BLAKE2b-256
/// is not, so use [`crate::verify`] before trusting data read this way.
#[derive(Debug)]
pub struct SeekableArchive<R: Read + Seek> {
    zip: ZipSeekReader<R>,
    head: ArchiveHead,
    /// Index of the first entry after meta.conf.
    first_resource: usize,
}

impl<R: Read + Seek> SeekableArchive<R> {
    /// Reads the central directory and the archive head.
    pub fn open(input: R) -> Result<Self> {
        let mut zip = ZipSeekReader::new(input)?;
        let mut cursor = CentralDirectoryCursor {
            zip: &mut zip,
            next: 0,
        };
        let head = read_head(&mut cursor)?;
        let first_resource = cursor.next;
        Ok(Self {
            zip,
            head,
            first_resource,
        })
    }

    /// The signature and meta.conf.
    pub fn head(&self) -> &ArchiveHead {
        &self.head
    }

    /// The resource names of the entries after meta.conf, in archive order (`data/X` is
    /// `X`, another name `Y` is `/Y`; a `data/` directory entry is left out).
    pub fn resource_names(&self) -> Vec<String> {
        self.resource_entries().map(|(_, name)| name).collect()
    }

    /// Opens a resource by name; `Ok(None)` when the archive has no such entry. When an
    /// archive holds the name twice, the first entry is opened.
    pub fn open_resource(&mut self, name: &str) -> Result<Option<SeekableResource<'_, R>>> {
        let Some(index) = self
            .resource_entries()
            .find_map(|(index, entry_name)| (entry_name == name).then_some(index))
        else {
            return Ok(None);
        };
        let size = self.zip.entries()[index].uncompressed_size;
        Ok(Some(SeekableResource {
            reader: self.zip.open(index)?,
            size,
        }))
    }

    fn resource_entries(&self) -> impl Iterator<Item = (usize, String)> + '_ {
        self.zip
            .entries()
            .iter()
            .enumerate()
            .skip(self.first_resource)
            .map(|(index, entry)| (index, resource_name(&entry.name)))
            .filter(|(_, name)| !name.is_empty())
    }
}

/// The data of one resource of a [`SeekableArchive`], decompressed and CRC-checked.
#[derive(Debug)]
pub struct SeekableResource<'a, R: Read + Seek> {
    reader: ZipEntryReader<'a, R>,
    size: Option<u64>,
}

impl<R: Read + Seek> SeekableResource<'_, R> {
    /// The uncompressed size the central directory records.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Reads the next decompressed bytes; `Ok(0)` at the end, after the CRC-32 matched.
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.reader.read_checked(buf)
    }
}

impl<R: Read + Seek> Read for SeekableResource<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_chunk(buf).map_err(crate_error_into_io)
    }
}

/// Walks the central directory one entry at a time, for [`read_head`].
struct CentralDirectoryCursor<'a, R: Read + Seek> {
    zip: &'a mut ZipSeekReader<R>,
    next: usize,
}

impl<R: Read + Seek> EntrySource for CentralDirectoryCursor<'_, R> {
    fn next_entry(&mut self) -> Result<Option<EntryInfo>> {
        let entry = self.zip.entries().get(self.next).cloned();
        if entry.is_some() {
            self.next += 1;
        }
        Ok(entry)
    }

    fn read_current(&mut self, limit: usize) -> Result<Vec<u8>> {
        let index = self
            .next
            .checked_sub(1)
            .ok_or(Error::Archive(ArchiveError::MetaConfNotFirst))?;
        let mut reader = self.zip.open(index)?;
        read_bounded(|buf| reader.read_checked(buf), limit)
    }
}
