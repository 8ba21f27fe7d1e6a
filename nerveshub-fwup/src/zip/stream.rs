//! The streaming reader: local file headers front to back, as fwup reads an archive.

use std::io::Read;

use flate2::Decompress;

use super::entry::{EntryData, Expect, Mode, Trailer};
use super::input::InBuf;
use super::{
    CompressionMethod, EntryInfo, FLAG_DATA_DESCRIPTOR, FLAG_ENCRYPTED, FLAG_MASKED_HEADERS,
    FLAG_STRONG_ENCRYPTION, INPUT_BUFFER_SIZE, MAX_NAME_LEN, SIG_CENTRAL, SIG_DIGITAL_SIGNATURE,
    SIG_EOCD, SIG_LOCAL, SIG_ZIP64_EOCD, SIG_ZIP64_LOCATOR, Zip64Fields, decode_name, dos_to_unix,
    le16, le32, le64, parse_extras,
};
use crate::{Error, Result, ZipError};

/// Size of the fixed part of a local file header.
const LOCAL_HEADER_LEN: usize = 30;
/// Size of the fixed part of a central directory header.
const CENTRAL_HEADER_LEN: usize = 46;
/// Size of the fixed part of the end of central directory record.
const EOCD_LEN: usize = 22;
/// Output buffer used to finish entries the caller did not read to the end.
const SCRATCH_LEN: usize = 64 * 1024;

/// Where the walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing read yet.
    Start,
    /// Between or inside local entries.
    Entries,
    /// The local entries are over; a central directory (or end) record is next.
    AtCentralDirectory,
    /// The local entries are over and so is the input.
    AtEof,
    /// An error was returned; the position in the input is unknown.
    Failed,
}

/// Reads a ZIP archive front to back through its local file headers, never seeking.
///
/// Input is read through a fixed 256 KiB buffer; deflated data is inflated straight into the
/// caller's buffer. Memory use does not depend on the archive. After any error the reader is
/// unusable: further calls return [`ZipError::Malformed`](crate::ZipError::Malformed).
#[derive(Debug)]
pub(crate) struct ZipStreamReader<R: Read> {
    input: InBuf<R>,
    inflater: Decompress,
    current: Option<EntryData>,
    state: State,
    scratch: Vec<u8>,
    /// Bytes all later entries together may still inflate to (`None`: no budget).
    budget_left: Option<u64>,
}

impl<R: Read> ZipStreamReader<R> {
    /// A reader over `inner`, positioned before the first local file header.
    pub(crate) fn new(inner: R) -> Self {
        Self {
            input: InBuf::new(inner, INPUT_BUFFER_SIZE),
            inflater: Decompress::new(false),
            current: None,
            state: State::Start,
            scratch: Vec::new(),
            budget_left: None,
        }
    }

    /// Advance to the next local file header, first finishing (reading, CRC-checking) any
    /// unread data of the current entry.
    ///
    /// `Ok(None)` when the next record is the central directory or the end record, or when
    /// the input ends cleanly after an entry ([`finish`](Self::finish) then reports the
    /// missing end record). An empty archive (only an end record) gives `Ok(None)` at once.
    /// The first call on input that is empty or does not start with a ZIP record gives
    /// [`ZipError::NotAZip`](crate::ZipError::NotAZip); input ending inside a header gives [`ZipError::Truncated`](crate::ZipError::Truncated). Encrypted
    /// entries are refused here ([`ZipError::Unsupported`](crate::ZipError::Unsupported)); entries of an unknown method are
    /// listed and refused when read.
    pub(crate) fn next_entry(&mut self) -> Result<Option<EntryInfo>> {
        match self.state {
            State::Failed => return Err(failed()),
            State::AtCentralDirectory | State::AtEof => return Ok(None),
            State::Start | State::Entries => {}
        }
        let result = self.next_entry_inner();
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Decompressed data of the current entry; `Ok(0)` at its end (and when `buf` is empty or
    /// there is no current entry). At the end the CRC-32 and the sizes are checked against the
    /// local header / data descriptor ([`ZipError::BadCrc`](crate::ZipError::BadCrc), [`ZipError::Malformed`](crate::ZipError::Malformed)); a corrupt
    /// deflate stream gives [`ZipError::Decompress`](crate::ZipError::Decompress), input ending early [`ZipError::Truncated`](crate::ZipError::Truncated).
    /// An entry of an unknown method gives [`ZipError::Unsupported`](crate::ZipError::Unsupported) and leaves the reader
    /// usable (`next_entry` skips it when its size is known); any other error makes it
    /// unusable.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.state == State::Failed {
            return Err(failed());
        }
        let Some(current) = self.current.as_mut() else {
            return Ok(0);
        };
        let result = current.read(&mut self.input, &mut self.inflater, buf);
        if let (Ok(n), Some(left)) = (&result, self.budget_left.as_mut()) {
            // The entry was limited to what was left, so this cannot underflow.
            *left = left.saturating_sub(*n as u64);
        }
        // An entry of an unknown method can still be skipped: the walk may go on.
        if let Err(e) = &result
            && !matches!(e, Error::Zip(ZipError::Unsupported { .. }))
        {
            self.state = State::Failed;
        }
        result
    }

    /// The current entry's data as an `io::Read`. Errors are `io::Error`s wrapping the
    /// [`Error`]; recover it with [`super::io_error_into_crate`]. Only the tests read an
    /// entry this way; the crate calls [`Self::read`] directly.
    #[cfg(test)]
    pub(crate) fn entry_reader(&mut self) -> StreamEntryReader<'_, R> {
        StreamEntryReader { reader: self }
    }

    /// After [`next_entry`](Self::next_entry) returned `None`, check that a central directory
    /// and an end of central directory record follow. Without them fwup/libarchive fail with
    /// "Truncated ZIP end-of-file record": [`ZipError::MissingEndOfCentralDirectory`](crate::ZipError::MissingEndOfCentralDirectory). The
    /// records are walked and bound-checked, not compared with the local headers. Called
    /// earlier, it first walks (and checks) the remaining entries.
    pub(crate) fn finish(mut self) -> Result<()> {
        while matches!(self.state, State::Start | State::Entries) {
            if self.next_entry()?.is_none() {
                break;
            }
        }
        match self.state {
            State::Failed => Err(failed()),
            State::AtEof => Err(Error::Zip(ZipError::MissingEndOfCentralDirectory)),
            _ => self.walk_central_directory(),
        }
    }

    /// Bounds what the entries after the current one may inflate to, together, at `limit`
    /// bytes: past it reading fails with [`ZipError::InflateLimit`](crate::ZipError::InflateLimit), having inflated at most one
    /// byte more. Entries skipped unread inflate nothing when their compressed size is known.
    pub(crate) fn set_inflate_budget(&mut self, limit: u64) {
        self.budget_left = Some(limit);
    }

    /// Lowers the most bytes the current entry may inflate to (see
    /// [`set_inflate_budget`](Self::set_inflate_budget)).
    pub(crate) fn limit_current(&mut self, limit: u64) {
        if let Some(current) = self.current.as_mut() {
            current.limit_output(limit);
        }
    }

    /// Bytes consumed from the input so far (for progress reporting).
    pub(crate) fn position(&self) -> u64 {
        self.input.position()
    }

    fn next_entry_inner(&mut self) -> Result<Option<EntryInfo>> {
        if let Some(current) = self.current.as_mut()
            && !current.is_done()
        {
            if self.scratch.is_empty() {
                self.scratch = vec![0u8; SCRATCH_LEN];
            }
            current.drain(&mut self.input, &mut self.inflater, &mut self.scratch)?;
        }
        self.current = None;
        let first = self.state == State::Start;
        let n = self.input.fill_to(4)?;
        if n == 0 {
            if first {
                return Err(Error::Zip(ZipError::NotAZip));
            }
            self.state = State::AtEof;
            return Ok(None);
        }
        if n < 4 {
            return Err(if first {
                Error::Zip(ZipError::NotAZip)
            } else {
                Error::Zip(ZipError::Truncated {
                    context: "local file header",
                })
            });
        }
        match le32(self.input.available(), 0) {
            SIG_LOCAL => {}
            SIG_CENTRAL | SIG_EOCD | SIG_ZIP64_EOCD => {
                self.state = State::AtCentralDirectory;
                return Ok(None);
            }
            _ if first => return Err(Error::Zip(ZipError::NotAZip)),
            sig => {
                return Err(Error::Zip(ZipError::Malformed(format!(
                    "unexpected signature 0x{sig:08x} at offset {}",
                    self.input.position()
                ))));
            }
        }
        self.state = State::Entries;
        let (info, mut data) = self.read_local_header()?;
        if let Some(left) = self.budget_left {
            data.limit_output(left);
        }
        self.current = Some(data);
        Ok(Some(info))
    }

    /// Parse the local file header at the input position (its signature is checked) and
    /// consume it. The whole header always fits in the input buffer.
    fn read_local_header(&mut self) -> Result<(EntryInfo, EntryData)> {
        let truncated = Error::Zip(ZipError::Truncated {
            context: "local file header",
        });
        if self.input.fill_to(LOCAL_HEADER_LEN)? < LOCAL_HEADER_LEN {
            return Err(truncated);
        }
        let a = self.input.available();
        let flags = le16(a, 6);
        let method = le16(a, 8);
        let (time, date) = (le16(a, 10), le16(a, 12));
        let crc = le32(a, 14);
        let csize32 = le32(a, 18);
        let usize32 = le32(a, 22);
        let name_len = usize::from(le16(a, 26));
        let extra_len = usize::from(le16(a, 28));
        if name_len > MAX_NAME_LEN {
            return Err(Error::Zip(ZipError::EntryNameTooLong { len: name_len }));
        }
        let total = LOCAL_HEADER_LEN + name_len + extra_len;
        if self.input.fill_to(total)? < total {
            return Err(truncated);
        }
        let a = self.input.available();
        let name = decode_name(&a[LOCAL_HEADER_LEN..LOCAL_HEADER_LEN + name_len])?;
        let mut csize = u64::from(csize32);
        let mut usize = u64::from(usize32);
        let extras = parse_extras(
            &a[LOCAL_HEADER_LEN + name_len..total],
            Zip64Fields {
                uncompressed: &mut usize,
                compressed: &mut csize,
                local_offset: None,
            },
        );
        self.input.consume(total);

        if flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS) != 0 {
            return Err(Error::Zip(ZipError::Unsupported {
                entry: name,
                feature: "encryption".into(),
            }));
        }
        let bit3 = flags & FLAG_DATA_DESCRIPTOR != 0;
        // With bit 3 a zero (or an unresolved 0xFFFFFFFF) means "in the data descriptor".
        let claimed = |v: u64| {
            if bit3 {
                (v != 0 && v != u64::from(u32::MAX)).then_some(v)
            } else {
                Some(v)
            }
        };
        let method = CompressionMethod::from_u16(method);
        let mode = match method {
            CompressionMethod::Stored => match (claimed(csize), claimed(usize)) {
                (Some(c), _) | (None, Some(c)) => Mode::Stored { remaining: c },
                (None, None) => Mode::StoredScan,
            },
            CompressionMethod::Deflated => Mode::Deflate {
                input_remaining: (!bit3).then_some(csize),
            },
            CompressionMethod::Other(m) => Mode::Unsupported {
                skip: (!bit3).then_some(csize),
                feature: format!("compression method {m}"),
            },
        };
        let expect = Expect {
            crc: (!bit3).then_some(crc),
            compressed: claimed(csize),
            uncompressed: claimed(usize),
        };
        let trailer = if bit3 {
            Trailer::Descriptor {
                zip64_first: extras.zip64,
            }
        } else {
            Trailer::None
        };
        let info = EntryInfo {
            is_dir: name.ends_with('/'),
            modified: extras.mtime.or_else(|| dos_to_unix(date, time)),
            method,
            compressed_size: claimed(csize),
            uncompressed_size: claimed(usize),
            name,
        };
        let data = EntryData::new(info.name.clone(), mode, expect, trailer, &mut self.inflater);
        Ok((info, data))
    }

    /// Walk the central directory records up to and including the end record.
    fn walk_central_directory(&mut self) -> Result<()> {
        loop {
            let a = self.need(4)?;
            match le32(a, 0) {
                SIG_CENTRAL => {
                    let a = self.need(CENTRAL_HEADER_LEN)?;
                    let rest =
                        u64::from(le16(a, 28)) + u64::from(le16(a, 30)) + u64::from(le16(a, 32));
                    self.input.consume(CENTRAL_HEADER_LEN);
                    self.skip_or_missing(rest)?;
                }
                SIG_DIGITAL_SIGNATURE => {
                    let a = self.need(6)?;
                    let rest = u64::from(le16(a, 4));
                    self.input.consume(6);
                    self.skip_or_missing(rest)?;
                }
                SIG_ZIP64_EOCD => {
                    let a = self.need(56)?;
                    let rest = le64(a, 4);
                    if rest < 44 {
                        return Err(Error::Zip(ZipError::Malformed(
                            "zip64 end of central directory record too short".into(),
                        )));
                    }
                    self.input.consume(12);
                    self.skip_or_missing(rest)?;
                }
                SIG_ZIP64_LOCATOR => {
                    self.need(20)?;
                    self.input.consume(20);
                }
                SIG_EOCD => {
                    let eocd_at = self.input.position();
                    let a = self.need(EOCD_LEN)?;
                    let cd_size = le32(a, 12);
                    let cd_offset = le32(a, 16);
                    if cd_size != u32::MAX
                        && cd_offset != u32::MAX
                        && u64::from(cd_offset) + u64::from(cd_size) > eocd_at
                    {
                        return Err(Error::Zip(ZipError::Malformed(format!(
                            "central directory ({cd_size} bytes at offset {cd_offset}) extends past its end record at {eocd_at}"
                        ))));
                    }
                    self.input.consume(EOCD_LEN);
                    return Ok(());
                }
                sig => {
                    return Err(Error::Zip(ZipError::Malformed(format!(
                        "unexpected signature 0x{sig:08x} in the central directory at offset {}",
                        self.input.position()
                    ))));
                }
            }
        }
    }

    /// At least `n` bytes of look-ahead, or [`ZipError::MissingEndOfCentralDirectory`](crate::ZipError::MissingEndOfCentralDirectory).
    fn need(&mut self, n: usize) -> Result<&[u8]> {
        if self.input.fill_to(n)? < n {
            return Err(Error::Zip(ZipError::MissingEndOfCentralDirectory));
        }
        Ok(self.input.available())
    }

    fn skip_or_missing(&mut self, n: u64) -> Result<()> {
        if self.input.skip(n)? < n {
            return Err(Error::Zip(ZipError::MissingEndOfCentralDirectory));
        }
        Ok(())
    }
}

/// The error returned by every call after a failed one.
fn failed() -> Error {
    Error::Zip(ZipError::Malformed(
        "the archive cannot be read past an earlier error".into(),
    ))
}

/// The current entry of a [`ZipStreamReader`] as an `io::Read`; see
/// [`ZipStreamReader::entry_reader`].
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct StreamEntryReader<'a, R: Read> {
    reader: &'a mut ZipStreamReader<R>,
}

#[cfg(test)]
impl<R: Read> Read for StreamEntryReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf).map_err(super::crate_error_into_io)
    }
}
