//! The seekable reader: entries through the central directory, opened by index.

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use flate2::Decompress;

use super::entry::{EntryData, Expect, Mode, Trailer, crate_error_into_io};
use super::input::InBuf;
use super::{
    CompressionMethod, EntryInfo, FLAG_ENCRYPTED, FLAG_MASKED_HEADERS, FLAG_STRONG_ENCRYPTION,
    INPUT_BUFFER_SIZE, MAX_NAME_LEN, SIG_CENTRAL, SIG_EOCD, SIG_LOCAL, SIG_ZIP64_EOCD,
    SIG_ZIP64_LOCATOR, Zip64Fields, decode_name, dos_to_unix, le16, le32, le64, parse_extras,
};
use crate::{Error, Result, ZipError};

/// Size of the end of central directory record without its comment.
const EOCD_LEN: u64 = 22;
/// Largest comment of an end of central directory record.
const MAX_COMMENT_LEN: u64 = 0xffff;
/// Size of the Zip64 end of central directory locator.
const ZIP64_LOCATOR_LEN: u64 = 20;
/// Size of the fixed part of the Zip64 end of central directory record.
const ZIP64_EOCD_LEN: u64 = 56;
/// Size of the fixed part of a central directory header.
const CENTRAL_HEADER_LEN: u64 = 46;
/// Size of the fixed part of a local file header.
const LOCAL_HEADER_LEN: u64 = 30;

/// What the central directory says beyond [`EntryInfo`].
#[derive(Debug, Clone, Copy)]
struct EntryMeta {
    flags: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

/// Random access to a ZIP archive through its central directory.
///
/// [`new`](Self::new) finds the end of central directory record in the last 64 KiB + 22
/// bytes, follows a Zip64 locator when there is one, and reads the central directory. Entry
/// count and sizes are checked against the file size before anything is allocated from them.
/// The sizes and CRC-32 of the central directory are authoritative; data descriptors are not
/// read.
#[derive(Debug)]
pub(crate) struct ZipSeekReader<R: Read + Seek> {
    inner: R,
    entries: Vec<EntryInfo>,
    meta: Vec<EntryMeta>,
    /// Offset of the central directory (or Zip64 end record): entry data must end before it.
    data_limit: u64,
    inflater: Decompress,
}

impl<R: Read + Seek> ZipSeekReader<R> {
    /// Read the central directory of `inner`.
    ///
    /// Errors: [`ZipError::NotAZip`](crate::ZipError::NotAZip) when there is no end record and the input does not start
    /// with a local header, [`ZipError::MissingEndOfCentralDirectory`](crate::ZipError::MissingEndOfCentralDirectory) when it does,
    /// [`ZipError::Malformed`](crate::ZipError::Malformed) for inconsistent records, [`ZipError::Unsupported`](crate::ZipError::Unsupported) for
    /// multi-disk archives, [`ZipError::EntryNameTooLong`](crate::ZipError::EntryNameTooLong), [`Error::Io`].
    pub(crate) fn new(mut inner: R) -> Result<Self> {
        let len = inner.seek(SeekFrom::End(0))?;
        let Some(eocd_pos) = find_eocd(&mut inner, len)? else {
            return Err(classify_without_eocd(&mut inner)?);
        };
        let mut eocd = [0u8; EOCD_LEN as usize];
        inner.seek(SeekFrom::Start(eocd_pos))?;
        inner.read_exact(&mut eocd)?;
        let mut disk = u32::from(le16(&eocd, 4));
        let mut cd_disk = u32::from(le16(&eocd, 6));
        let mut count = u64::from(le16(&eocd, 10));
        let mut cd_size = u64::from(le32(&eocd, 12));
        let mut cd_offset = u64::from(le32(&eocd, 16));
        let mut cd_limit = eocd_pos;

        if eocd_pos >= ZIP64_LOCATOR_LEN {
            let mut locator = [0u8; ZIP64_LOCATOR_LEN as usize];
            inner.seek(SeekFrom::Start(eocd_pos - ZIP64_LOCATOR_LEN))?;
            inner.read_exact(&mut locator)?;
            if le32(&locator, 0) == SIG_ZIP64_LOCATOR {
                let record_pos = le64(&locator, 8);
                let locator_pos = eocd_pos - ZIP64_LOCATOR_LEN;
                if record_pos
                    .checked_add(ZIP64_EOCD_LEN)
                    .is_none_or(|end| end > locator_pos)
                {
                    return Err(malformed(
                        "zip64 end of central directory record out of bounds",
                    ));
                }
                let mut record = [0u8; ZIP64_EOCD_LEN as usize];
                inner.seek(SeekFrom::Start(record_pos))?;
                inner.read_exact(&mut record)?;
                if le32(&record, 0) != SIG_ZIP64_EOCD {
                    return Err(malformed("bad zip64 end of central directory signature"));
                }
                disk = le32(&record, 16);
                cd_disk = le32(&record, 20);
                count = le64(&record, 32);
                cd_size = le64(&record, 40);
                cd_offset = le64(&record, 48);
                cd_limit = record_pos;
            }
        }
        if disk != 0 || cd_disk != 0 {
            return Err(Error::Zip(ZipError::Unsupported {
                entry: "(archive)".into(),
                feature: "multi-disk archive".into(),
            }));
        }
        if cd_offset
            .checked_add(cd_size)
            .is_none_or(|end| end > cd_limit)
        {
            return Err(malformed(&format!(
                "central directory ({cd_size} bytes at offset {cd_offset}) out of bounds"
            )));
        }
        if count > cd_size / CENTRAL_HEADER_LEN {
            return Err(malformed(&format!(
                "{count} entries cannot fit in a central directory of {cd_size} bytes"
            )));
        }

        inner.seek(SeekFrom::Start(cd_offset))?;
        let (entries, meta) = read_central_directory(&mut inner, cd_size, count, cd_offset)?;
        Ok(Self {
            inner,
            entries,
            meta,
            data_limit: cd_offset,
            inflater: Decompress::new(false),
        })
    }

    /// The entries, in central-directory order. Sizes are always known here.
    pub(crate) fn entries(&self) -> &[EntryInfo] {
        &self.entries
    }

    /// Seek to entry `index`'s local header and return a reader of its decompressed data,
    /// checked against the central directory's CRC-32 and sizes at the end.
    ///
    /// The returned [`ZipEntryReader`] has `read_checked` (errors as [`Error`]) and
    /// implements `io::Read` (errors as `io::Error` wrapping the [`Error`]; recover it with
    /// [`super::io_error_into_crate`]). Errors here: index out of range ([`Error::Io`] of kind
    /// `InvalidInput`), encrypted entries and unknown methods ([`ZipError::Unsupported`](crate::ZipError::Unsupported)),
    /// a missing local header or data running into the central directory
    /// ([`ZipError::Malformed`](crate::ZipError::Malformed)).
    pub(crate) fn open(&mut self, index: usize) -> Result<ZipEntryReader<'_, R>> {
        let (Some(info), Some(meta)) = (self.entries.get(index), self.meta.get(index)) else {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no ZIP entry {index}"),
            )));
        };
        let meta = *meta;
        if meta.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS) != 0 {
            return Err(Error::Zip(ZipError::Unsupported {
                entry: info.name.clone(),
                feature: "encryption".into(),
            }));
        }
        let mode = match info.method {
            CompressionMethod::Stored => Mode::Stored {
                remaining: meta.compressed,
            },
            CompressionMethod::Deflated => Mode::Deflate {
                input_remaining: Some(meta.compressed),
            },
            CompressionMethod::Other(m) => {
                return Err(Error::Zip(ZipError::Unsupported {
                    entry: info.name.clone(),
                    feature: format!("compression method {m}"),
                }));
            }
        };
        let name = info.name.clone();

        if meta.local_offset.saturating_add(LOCAL_HEADER_LEN) > self.data_limit {
            return Err(malformed(&format!("'{name}': local header out of bounds")));
        }
        self.inner.seek(SeekFrom::Start(meta.local_offset))?;
        let mut header = [0u8; LOCAL_HEADER_LEN as usize];
        self.inner.read_exact(&mut header)?;
        if le32(&header, 0) != SIG_LOCAL {
            return Err(malformed(&format!(
                "'{name}': no local header at offset {}",
                meta.local_offset
            )));
        }
        let data_start = meta.local_offset
            + LOCAL_HEADER_LEN
            + u64::from(le16(&header, 26))
            + u64::from(le16(&header, 28));
        if data_start
            .checked_add(meta.compressed)
            .is_none_or(|end| end > self.data_limit)
        {
            return Err(malformed(&format!(
                "'{name}': data runs into the central directory"
            )));
        }
        self.inner.seek(SeekFrom::Start(data_start))?;
        let capacity = usize::try_from(meta.compressed)
            .unwrap_or(usize::MAX)
            .clamp(4096, INPUT_BUFFER_SIZE);
        let expect = Expect {
            crc: Some(meta.crc),
            compressed: Some(meta.compressed),
            uncompressed: Some(meta.uncompressed),
        };
        let data = EntryData::new(name, mode, expect, Trailer::None, &mut self.inflater);
        Ok(ZipEntryReader {
            input: InBuf::new((&mut self.inner).take(meta.compressed), capacity),
            inflater: &mut self.inflater,
            data,
            failed: false,
        })
    }
}

/// The position of the end of central directory record: the last `PK\x05\x06` in the final
/// 64 KiB + 22 bytes whose comment fits in the file.
fn find_eocd<R: Read + Seek>(inner: &mut R, len: u64) -> Result<Option<u64>> {
    if len < EOCD_LEN {
        return Ok(None);
    }
    let tail_len = len.min(EOCD_LEN + MAX_COMMENT_LEN);
    let start = len - tail_len;
    // Bounded by the constant above.
    let mut tail = vec![0u8; usize::try_from(tail_len).unwrap_or(0)];
    inner.seek(SeekFrom::Start(start))?;
    inner.read_exact(&mut tail)?;
    let last = tail.len() - EOCD_LEN as usize;
    for i in (0..=last).rev() {
        if le32(&tail, i) == SIG_EOCD {
            let comment = usize::from(le16(&tail, i + 20));
            if i + EOCD_LEN as usize + comment <= tail.len() {
                return Ok(Some(start + i as u64));
            }
        }
    }
    Ok(None)
}

/// No end record: a ZIP whose end was cut off, or not a ZIP at all.
fn classify_without_eocd<R: Read + Seek>(inner: &mut R) -> Result<Error> {
    inner.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match inner.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if got == 4 && le32(&head, 0) == SIG_LOCAL {
        Error::Zip(ZipError::MissingEndOfCentralDirectory)
    } else {
        Error::Zip(ZipError::NotAZip)
    })
}

/// Read `count` central directory headers from `inner` (positioned at the directory, which
/// is `cd_size` bytes long).
fn read_central_directory<R: Read>(
    inner: &mut R,
    cd_size: u64,
    count: u64,
    cd_offset: u64,
) -> Result<(Vec<EntryInfo>, Vec<EntryMeta>)> {
    let short = || malformed("central directory shorter than its entry count");
    let mut r = BufReader::with_capacity(64 * 1024, inner.take(cd_size));
    // `count` is bounded by cd_size / 46, itself bounded by the file size.
    let initial = usize::try_from(count).unwrap_or(0).min(1024);
    let mut entries = Vec::with_capacity(initial);
    let mut metas = Vec::with_capacity(initial);
    let mut fixed = [0u8; CENTRAL_HEADER_LEN as usize];
    let mut name = [0u8; MAX_NAME_LEN];
    let mut extra = vec![0u8; 0xffff];
    for _ in 0..count {
        read_exact_or(&mut r, &mut fixed, short)?;
        if le32(&fixed, 0) != SIG_CENTRAL {
            return Err(malformed("bad central directory header signature"));
        }
        let flags = le16(&fixed, 8);
        let method = le16(&fixed, 10);
        let (time, date) = (le16(&fixed, 12), le16(&fixed, 14));
        let crc = le32(&fixed, 16);
        let mut compressed = u64::from(le32(&fixed, 20));
        let mut uncompressed = u64::from(le32(&fixed, 24));
        let name_len = usize::from(le16(&fixed, 28));
        let extra_len = usize::from(le16(&fixed, 30));
        let comment_len = u64::from(le16(&fixed, 32));
        let mut local_offset = u64::from(le32(&fixed, 42));
        if name_len > MAX_NAME_LEN {
            return Err(Error::Zip(ZipError::EntryNameTooLong { len: name_len }));
        }
        read_exact_or(&mut r, &mut name[..name_len], short)?;
        read_exact_or(&mut r, &mut extra[..extra_len], short)?;
        if io::copy(&mut (&mut r).take(comment_len), &mut io::sink())? < comment_len {
            return Err(short());
        }
        let extras = parse_extras(
            &extra[..extra_len],
            Zip64Fields {
                uncompressed: &mut uncompressed,
                compressed: &mut compressed,
                local_offset: Some(&mut local_offset),
            },
        );
        if local_offset >= cd_offset {
            return Err(malformed("local header offset past the central directory"));
        }
        let name = decode_name(&name[..name_len])?;
        entries.push(EntryInfo {
            is_dir: name.ends_with('/'),
            modified: extras.mtime.or_else(|| dos_to_unix(date, time)),
            method: CompressionMethod::from_u16(method),
            compressed_size: Some(compressed),
            uncompressed_size: Some(uncompressed),
            name,
        });
        metas.push(EntryMeta {
            flags,
            crc,
            compressed,
            uncompressed,
            local_offset,
        });
    }
    Ok((entries, metas))
}

/// `read_exact`, with a short read reported as `err()`.
fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], err: impl Fn() -> Error) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            err()
        } else {
            Error::Io(e)
        }
    })
}

fn malformed(what: &str) -> Error {
    Error::Zip(ZipError::Malformed(what.to_owned()))
}

/// The decompressed data of one entry of a [`ZipSeekReader`].
///
/// [`read_checked`](Self::read_checked) returns [`Error`]s directly; the `io::Read`
/// implementation wraps them in `io::Error` (kind `Other`, or the original `io::Error` for
/// I/O failures); [`super::io_error_into_crate`] recovers the [`Error`].
#[derive(Debug)]
pub(crate) struct ZipEntryReader<'a, R: Read> {
    input: InBuf<io::Take<&'a mut R>>,
    inflater: &'a mut Decompress,
    data: EntryData,
    failed: bool,
}

impl<R: Read> ZipEntryReader<'_, R> {
    /// Decompressed data; `Ok(0)` at the end, after the CRC-32 and sizes were checked
    /// ([`ZipError::BadCrc`](crate::ZipError::BadCrc), [`ZipError::Malformed`](crate::ZipError::Malformed), [`ZipError::Decompress`](crate::ZipError::Decompress),
    /// [`ZipError::Truncated`](crate::ZipError::Truncated)).
    pub(crate) fn read_checked(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.failed {
            return Err(malformed("the entry cannot be read past an earlier error"));
        }
        let result = self.data.read(&mut self.input, self.inflater, buf);
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl<R: Read> Read for ZipEntryReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_checked(buf).map_err(crate_error_into_io)
    }
}
