//! Decoding one entry's data: stored copy, raw inflate, or a scan for the data descriptor of
//! a stored entry of unknown length; then the data descriptor and the CRC-32/size checks.

use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};

use super::input::InBuf;
use super::{
    SIG_CENTRAL, SIG_DATA_DESCRIPTOR, SIG_DIGITAL_SIGNATURE, SIG_EOCD, SIG_LOCAL, SIG_ZIP64_EOCD,
    le32, le64,
};
use crate::{Error, Result, ZipError};

/// Look-ahead needed to recognise a data descriptor: signature, CRC-32, two 64-bit sizes, and
/// the signature of the record after it.
const DESCRIPTOR_LOOKAHEAD: usize = 4 + 4 + 8 + 8 + 4;

/// How the entry's data is laid out in the input.
/// fwup reads its input in blocks of this size (`DEFAULT_LIBARCHIVE_BLOCK_SIZE`), and
/// libarchive hands back, per call, what the rest of the current block decompresses to.
/// One `read` never consumes input across a boundary of these blocks (counted from the
/// archive's first byte) either, so data arrives in the same chunks as in fwup. That
/// matters where chunking shows in the result: FatFs leaves its sector buffer's stale bytes
/// after the end of a file written by `fat_write`.
pub(crate) const ARCHIVE_READ_BLOCK: u64 = 16 * 1024;

/// Bytes from input position `position` to the end of its [`ARCHIVE_READ_BLOCK`].
fn to_read_block_end(position: u64) -> usize {
    // At most ARCHIVE_READ_BLOCK, so it fits.
    usize::try_from(ARCHIVE_READ_BLOCK - position % ARCHIVE_READ_BLOCK).unwrap_or(usize::MAX)
}

#[derive(Debug)]
pub(crate) enum Mode {
    /// Stored data of known length.
    Stored {
        /// Bytes still to copy.
        remaining: u64,
    },
    /// Stored data of unknown length: it ends at a `PK\x07\x08` data descriptor whose CRC-32
    /// and sizes match the data before it.
    StoredScan,
    /// Raw deflate: inflate until the deflate stream ends.
    Deflate {
        /// Compressed bytes left when the compressed size is known (`None`: bit 3 entry).
        input_remaining: Option<u64>,
    },
    /// A method (or feature) we cannot decode.
    Unsupported {
        /// Compressed size, when known, so the entry can be skipped unread.
        skip: Option<u64>,
        /// What is unsupported, for the error.
        feature: String,
    },
}

/// Values the headers claim; each present one is checked at the end of the data.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Expect {
    /// CRC-32 of the uncompressed data.
    pub(crate) crc: Option<u32>,
    /// Compressed size.
    pub(crate) compressed: Option<u64>,
    /// Uncompressed size.
    pub(crate) uncompressed: Option<u64>,
}

/// What follows the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trailer {
    /// Nothing (or nothing we read: the seekable reader).
    None,
    /// A data descriptor (flag bit 3), with or without signature, 32- or 64-bit sizes.
    Descriptor {
        /// Try the 64-bit form first (the local header had a Zip64 extra field).
        zip64_first: bool,
    },
}

/// What a data descriptor holds.
#[derive(Debug, Clone, Copy)]
struct Descriptor {
    crc: u32,
    compressed: u64,
    uncompressed: u64,
}

/// The decoding state of one entry.
#[derive(Debug)]
pub(crate) struct EntryData {
    name: String,
    mode: Mode,
    expect: Expect,
    trailer: Trailer,
    crc: crc32fast::Hasher,
    compressed_read: u64,
    produced: u64,
    /// Most bytes the data may inflate to: the uncompressed size the local header declares,
    /// or a lower bound the caller sets ([`EntryData::limit_output`]). Inflating stops one
    /// byte past it, so a zip bomb costs no more than its declared length.
    output_limit: Option<u64>,
    done: bool,
}

impl EntryData {
    /// Start decoding an entry whose data begins at the current input position. Resets
    /// `inflater` for a new raw deflate stream.
    pub(crate) fn new(
        name: String,
        mode: Mode,
        expect: Expect,
        trailer: Trailer,
        inflater: &mut Decompress,
    ) -> Self {
        inflater.reset(false);
        Self {
            name,
            mode,
            expect,
            trailer,
            crc: crc32fast::Hasher::new(),
            compressed_read: 0,
            produced: 0,
            output_limit: expect.uncompressed,
            done: false,
        }
    }

    /// Lowers the most bytes this entry may produce (see `output_limit`).
    pub(crate) fn limit_output(&mut self, limit: u64) {
        self.output_limit = Some(self.output_limit.map_or(limit, |l| l.min(limit)));
    }

    /// How much of `buf` one read may fill: up to one byte past the output limit, so going
    /// over it is seen without inflating more.
    fn capped(&self, len: usize) -> usize {
        match self.output_limit {
            Some(limit) => {
                let room = limit.saturating_add(1).saturating_sub(self.produced);
                len.min(usize::try_from(room).unwrap_or(usize::MAX))
            }
            None => len,
        }
    }

    /// The error once more than `output_limit` bytes came out.
    fn check_limit(&self) -> Result<()> {
        match self.output_limit {
            Some(limit) if self.produced > limit => Err(Error::Zip(ZipError::InflateLimit {
                entry: self.name.clone(),
                limit,
            })),
            _ => Ok(()),
        }
    }

    /// Whether all data has been read and checked.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Decompressed data into `buf`; `Ok(0)` at the end of the entry (after the checks) or
    /// when `buf` is empty.
    pub(crate) fn read<R: Read>(
        &mut self,
        input: &mut InBuf<R>,
        inflater: &mut Decompress,
        buf: &mut [u8],
    ) -> Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let cap = self.capped(buf.len());
        let buf = &mut buf[..cap];
        if buf.is_empty() {
            // Only reached with a limit of u64::MAX bytes already produced.
            return Err(Error::Zip(ZipError::InflateLimit {
                entry: self.name.clone(),
                limit: self.output_limit.unwrap_or(u64::MAX),
            }));
        }
        let n = self.read_mode(input, inflater, buf)?;
        self.check_limit()?;
        Ok(n)
    }

    fn read_mode<R: Read>(
        &mut self,
        input: &mut InBuf<R>,
        inflater: &mut Decompress,
        buf: &mut [u8],
    ) -> Result<usize> {
        match &self.mode {
            Mode::Stored { remaining } => {
                let remaining = *remaining;
                self.read_stored(input, buf, remaining)
            }
            Mode::StoredScan => self.read_scan(input, buf),
            Mode::Deflate { input_remaining } => {
                let limit = *input_remaining;
                self.read_deflate(input, inflater, buf, limit)
            }
            Mode::Unsupported { feature, .. } => Err(Error::Zip(ZipError::Unsupported {
                entry: self.name.clone(),
                feature: feature.clone(),
            })),
        }
    }

    /// Read (and check) whatever is left of the entry, using `scratch` as the output buffer.
    /// Entries of an unsupported method are skipped unread when their size is known.
    pub(crate) fn drain<R: Read>(
        &mut self,
        input: &mut InBuf<R>,
        inflater: &mut Decompress,
        scratch: &mut [u8],
    ) -> Result<()> {
        if self.done {
            return Ok(());
        }
        if let Mode::Unsupported { skip, feature } = &self.mode {
            let Some(size) = *skip else {
                return Err(Error::Zip(ZipError::Unsupported {
                    entry: self.name.clone(),
                    feature: format!("{feature} with its size in a data descriptor"),
                }));
            };
            if input.skip(size)? < size {
                return Err(Error::Zip(ZipError::Truncated {
                    context: "entry data",
                }));
            }
            self.done = true;
            return Ok(());
        }
        // A deflated entry of known compressed size is skipped unread, as libarchive skips
        // it for fwup: nothing is inflated (a zip bomb in an unused entry costs nothing),
        // and its CRC is not checked.
        if let (
            Mode::Deflate {
                input_remaining: Some(left),
            },
            Trailer::None,
        ) = (&self.mode, self.trailer)
        {
            let left = *left;
            if input.skip(left)? < left {
                return Err(Error::Zip(ZipError::Truncated {
                    context: "entry data",
                }));
            }
            self.done = true;
            return Ok(());
        }
        while self.read(input, inflater, scratch)? != 0 {}
        Ok(())
    }

    fn read_stored<R: Read>(
        &mut self,
        input: &mut InBuf<R>,
        buf: &mut [u8],
        remaining: u64,
    ) -> Result<usize> {
        if remaining == 0 {
            self.finish(input)?;
            return Ok(0);
        }
        let max = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len())
            .min(to_read_block_end(input.position()));
        let n = if input.available().is_empty() && max >= input.capacity() {
            input.read_direct(&mut buf[..max])?
        } else {
            input.fill()?;
            let avail = input.available();
            let n = avail.len().min(max);
            buf[..n].copy_from_slice(&avail[..n]);
            input.consume(n);
            n
        };
        if n == 0 {
            return Err(Error::Zip(ZipError::Truncated {
                context: "entry data",
            }));
        }
        self.crc.update(&buf[..n]);
        self.compressed_read += n as u64;
        self.produced += n as u64;
        self.mode = Mode::Stored {
            remaining: remaining - n as u64,
        };
        Ok(n)
    }

    fn read_deflate<R: Read>(
        &mut self,
        input: &mut InBuf<R>,
        inflater: &mut Decompress,
        buf: &mut [u8],
        mut limit: Option<u64>,
    ) -> Result<usize> {
        let mut stalls = 0u32;
        loop {
            if input.available().is_empty() && limit != Some(0) {
                input.fill()?;
            }
            let to_block_end = to_read_block_end(input.position());
            let avail = input.available();
            let in_len = match limit {
                Some(l) => avail.len().min(usize::try_from(l).unwrap_or(usize::MAX)),
                None => avail.len(),
            }
            .min(to_block_end);
            let before_in = inflater.total_in();
            let before_out = inflater.total_out();
            let status = inflater
                .decompress(&avail[..in_len], buf, FlushDecompress::None)
                .map_err(|_| self.decompress_error())?;
            // Both deltas are bounded by the slice lengths passed in.
            let used = usize::try_from(inflater.total_in() - before_in).unwrap_or(in_len);
            let made = usize::try_from(inflater.total_out() - before_out).unwrap_or(buf.len());
            let (used, made) = (used.min(in_len), made.min(buf.len()));
            input.consume(used);
            if let Some(l) = limit.as_mut() {
                *l -= used as u64;
            }
            self.compressed_read += used as u64;
            self.produced += made as u64;
            self.crc.update(&buf[..made]);
            self.mode = Mode::Deflate {
                input_remaining: limit,
            };
            if status == Status::StreamEnd {
                self.finish(input)?;
                return Ok(made);
            }
            if made > 0 {
                return Ok(made);
            }
            if used == 0 {
                if in_len == 0 {
                    if limit == Some(0) {
                        // The compressed size is used up but the deflate stream goes on.
                        return Err(self.decompress_error());
                    }
                    return Err(Error::Zip(ZipError::Truncated {
                        context: "entry data",
                    }));
                }
                stalls += 1;
                if stalls > 4 {
                    return Err(self.decompress_error());
                }
            } else {
                stalls = 0;
            }
        }
    }

    fn read_scan<R: Read>(&mut self, input: &mut InBuf<R>, buf: &mut [u8]) -> Result<usize> {
        let n = input.fill_to(DESCRIPTOR_LOOKAHEAD)?;
        if n == 0 {
            return Err(Error::Zip(ZipError::Truncated {
                context: "stored entry data (no data descriptor found)",
            }));
        }
        let ended = input.input_ended();
        let avail = input.available();
        let mut from = 0;
        // An empty entry may be followed by a descriptor without signature: all zeros.
        if self.compressed_read == 0
            && let Some(len) = empty_descriptor_without_signature(avail, ended)
        {
            input.consume(len);
            self.expect.crc = Some(0);
            self.expect.compressed = Some(0);
            self.expect.uncompressed = Some(0);
            self.trailer = Trailer::None;
            self.finish(input)?;
            return Ok(0);
        }
        if n >= 4 && le32(avail, 0) == SIG_DATA_DESCRIPTOR {
            if let Some((len, d)) = self.scan_candidate(avail, ended) {
                input.consume(len);
                self.expect.crc = Some(d.crc);
                self.expect.compressed = Some(d.compressed);
                self.expect.uncompressed = Some(d.uncompressed);
                self.trailer = Trailer::None;
                self.finish(input)?;
                return Ok(0);
            }
            from = 1;
        }
        let emit = match find_signature(&avail[from..]) {
            Some(p) => from + p,
            None if ended => avail.len(),
            None => avail.len().saturating_sub(3).max(from),
        };
        let emit = emit.min(buf.len());
        buf[..emit].copy_from_slice(&avail[..emit]);
        input.consume(emit);
        self.crc.update(&buf[..emit]);
        self.compressed_read += emit as u64;
        self.produced += emit as u64;
        Ok(emit)
    }

    /// Whether `avail` (starting with `PK\x07\x08`) is the data descriptor of the data read
    /// so far: CRC-32 and sizes match and a ZIP record (or the end of input) follows.
    fn scan_candidate(&self, avail: &[u8], ended: bool) -> Option<(usize, Descriptor)> {
        let crc = le32(avail, 4);
        if crc != self.crc.clone().finalize() {
            return None;
        }
        let follows = |len: usize| {
            (avail.len() >= len + 4 && is_record_signature(le32(avail, len)))
                || (ended && avail.len() == len)
        };
        let c = self.compressed_read;
        let u = self.produced;
        if avail.len() >= 16
            && u64::from(le32(avail, 8)) == c
            && u64::from(le32(avail, 12)) == u
            && follows(16)
        {
            return Some((
                16,
                Descriptor {
                    crc,
                    compressed: c,
                    uncompressed: u,
                },
            ));
        }
        if avail.len() >= 24 && le64(avail, 8) == c && le64(avail, 16) == u && follows(24) {
            return Some((
                24,
                Descriptor {
                    crc,
                    compressed: c,
                    uncompressed: u,
                },
            ));
        }
        None
    }

    /// The data is over: read the data descriptor if there is one, then check CRC-32 and sizes.
    fn finish<R: Read>(&mut self, input: &mut InBuf<R>) -> Result<()> {
        self.done = true;
        let actual_crc = self.crc.clone().finalize();
        let descriptor = match self.trailer {
            Trailer::None => None,
            Trailer::Descriptor { zip64_first } => Some(self.read_descriptor(input, zip64_first)?),
        };
        let claims = [
            (
                self.expect.crc,
                self.expect.compressed,
                self.expect.uncompressed,
            ),
            match descriptor {
                Some(d) => (Some(d.crc), Some(d.compressed), Some(d.uncompressed)),
                None => (None, None, None),
            },
        ];
        for (crc, _, _) in claims {
            if let Some(expected) = crc
                && expected != actual_crc
            {
                return Err(Error::Zip(ZipError::BadCrc {
                    entry: self.name.clone(),
                    expected,
                    actual: actual_crc,
                }));
            }
        }
        for (_, compressed, uncompressed) in claims {
            if let Some(expected) = compressed
                && expected != self.compressed_read
            {
                return Err(Error::Zip(ZipError::Malformed(format!(
                    "'{}': compressed size is {} bytes, headers say {expected}",
                    self.name, self.compressed_read
                ))));
            }
            if let Some(expected) = uncompressed
                && expected != self.produced
            {
                return Err(Error::Zip(ZipError::Malformed(format!(
                    "'{}': uncompressed size is {} bytes, headers say {expected}",
                    self.name, self.produced
                ))));
            }
        }
        Ok(())
    }

    /// Parse the data descriptor after the data: optional signature, CRC-32, then 32- or
    /// 64-bit sizes. The form whose sizes match the data wins; otherwise the preferred one.
    fn read_descriptor<R: Read>(
        &self,
        input: &mut InBuf<R>,
        zip64_first: bool,
    ) -> Result<Descriptor> {
        let n = input.fill_to(DESCRIPTOR_LOOKAHEAD)?;
        let a = input.available();
        let off = if n >= 4 && le32(a, 0) == SIG_DATA_DESCRIPTOR {
            4
        } else {
            0
        };
        if n < off + 12 {
            return Err(Error::Zip(ZipError::Truncated {
                context: "data descriptor",
            }));
        }
        let (c, u) = (self.compressed_read, self.produced);
        let fits64 = n >= off + 20;
        let m32 = u64::from(le32(a, off + 4)) == c & 0xffff_ffff
            && u64::from(le32(a, off + 8)) == u & 0xffff_ffff;
        let m64 = fits64 && le64(a, off + 4) == c && le64(a, off + 12) == u;
        let use64 = match (zip64_first, m32, m64) {
            (true, _, true) => true,
            (true, true, false) => false,
            (true, false, false) => fits64,
            (false, true, _) => false,
            (false, false, m64) => m64,
        };
        let crc = le32(a, off);
        let (len, d) = if use64 {
            (
                off + 20,
                Descriptor {
                    crc,
                    compressed: le64(a, off + 4),
                    uncompressed: le64(a, off + 12),
                },
            )
        } else {
            (
                off + 12,
                Descriptor {
                    crc,
                    compressed: u64::from(le32(a, off + 4)),
                    uncompressed: u64::from(le32(a, off + 8)),
                },
            )
        };
        // A 32-bit descriptor of an entry of 4 GiB or more states the sizes modulo 2^32.
        let d = if !use64 && m32 {
            Descriptor {
                compressed: c,
                uncompressed: u,
                ..d
            }
        } else {
            d
        };
        input.consume(len);
        Ok(d)
    }

    fn decompress_error(&self) -> Error {
        Error::Zip(ZipError::Decompress {
            entry: self.name.clone(),
        })
    }
}

/// The first position of `PK\x07\x08` in `bytes`.
fn find_signature(bytes: &[u8]) -> Option<usize> {
    let sig = SIG_DATA_DESCRIPTOR.to_le_bytes();
    let mut from = 0;
    while let Some(p) = bytes.get(from..)?.iter().position(|&b| b == sig[0]) {
        let at = from + p;
        match bytes.get(at..at + 4) {
            Some(w) if w == sig => return Some(at),
            Some(_) => from = at + 1,
            // A signature cut off by the end of `bytes` is not a match.
            None => return None,
        }
    }
    None
}

/// The length of an all-zero data descriptor without signature (CRC-32 and sizes of an empty
/// entry, 32- or 64-bit) at the start of `avail`, followed by a ZIP record or the end.
fn empty_descriptor_without_signature(avail: &[u8], ended: bool) -> Option<usize> {
    [12, 20].into_iter().find(|&len| {
        avail.get(..len).is_some_and(|d| d.iter().all(|&b| b == 0))
            && ((avail.len() >= len + 4 && is_record_signature(le32(avail, len)))
                || (ended && avail.len() == len))
    })
}

/// Signatures that may follow an entry.
fn is_record_signature(sig: u32) -> bool {
    matches!(
        sig,
        SIG_LOCAL | SIG_CENTRAL | SIG_EOCD | SIG_ZIP64_EOCD | SIG_DIGITAL_SIGNATURE
    )
}

/// Turn an `io::Error` from one of our `Read` adapters back into the [`Error`] it carries
/// (errors of the underlying reader become [`Error::Io`]). The crate itself never needs the
/// round trip; the tests check that it is lossless.
#[cfg(test)]
pub(crate) fn io_error_into_crate(e: io::Error) -> Error {
    match e.downcast::<Error>() {
        Ok(inner) => inner,
        Err(e) => Error::Io(e),
    }
}

/// Wrap an [`Error`] in an `io::Error` for `Read` adapters.
pub(crate) fn crate_error_into_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        other => io::Error::other(other),
    }
}
