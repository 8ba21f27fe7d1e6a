//! The ZIP container of `.fw` archives.
//!
//! Two readers share one entry decoder ([`entry`]):
//!
//! * [`ZipStreamReader`] walks the local file headers front to back, the way fwup (through
//!   libarchive's streaming reader) reads an archive. It handles what fwup writes — general
//!   purpose flag bit 3 on every entry, CRC-32 and compressed size deferred to a
//!   `PK\x07\x08` data descriptor — as well as archives from other writers that put the sizes
//!   in the local header. Deflated data is inflated until the deflate stream ends, so the
//!   compressed size need not be known in advance. Stored entries with bit 3 and no size in
//!   the local header are read by scanning for a data descriptor whose signature, CRC-32 and
//!   size match the data before it (as libarchive does).
//! * [`ZipSeekReader`] reads the central directory of a seekable archive and opens entries by
//!   index.
//!
//! Every length read from the archive is bounded before it is used: names are at most
//! [`MAX_NAME_LEN`] bytes, a local header (at most 30 + 512 + 65 535 bytes) always fits in the
//! fixed input buffer, and nothing is allocated from an untrusted length without a cap. The
//! memory used does not grow with the archive (the seekable reader keeps one [`EntryInfo`] per
//! central-directory record, bounded by the file size).
//!
//! Errors are [`crate::Error`] values: `NotAZip`, `Truncated`, `MissingEndOfCentralDirectory`,
//! `MalformedZip`, `UnsupportedZip`, `Decompress`, `BadCrc`, `EntryNameTooLong`, or `Io` for
//! failures of the underlying reader.
//!
//! Timestamps: fwup/libarchive read a DOS date/time (used when an entry has no `UT` extra
//! field) in the local time zone. We interpret it as UTC so results do not depend on `TZ`.

mod entry;
mod input;
mod seek;
mod stream;

#[cfg(test)]
mod tests;

pub(crate) use entry::crate_error_into_io;
#[cfg(test)]
pub(crate) use entry::io_error_into_crate;
pub(crate) use seek::{ZipEntryReader, ZipSeekReader};
pub(crate) use stream::ZipStreamReader;

/// Longest entry name accepted, in bytes (fwup's limit).
pub(crate) const MAX_NAME_LEN: usize = 512;

/// Size of the input buffer of the readers. At least 64 KiB, and large enough to hold the
/// largest possible local file header (30 + 512 + 65 535 bytes).
pub(crate) const INPUT_BUFFER_SIZE: usize = 256 * 1024;

/// Local file header signature `PK\x03\x04`.
pub(crate) const SIG_LOCAL: u32 = 0x0403_4b50;
/// Central directory file header signature `PK\x01\x02`.
pub(crate) const SIG_CENTRAL: u32 = 0x0201_4b50;
/// End of central directory record signature `PK\x05\x06`.
pub(crate) const SIG_EOCD: u32 = 0x0605_4b50;
/// Zip64 end of central directory record signature `PK\x06\x06`.
pub(crate) const SIG_ZIP64_EOCD: u32 = 0x0606_4b50;
/// Zip64 end of central directory locator signature `PK\x06\x07`.
pub(crate) const SIG_ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// Data descriptor signature `PK\x07\x08`.
pub(crate) const SIG_DATA_DESCRIPTOR: u32 = 0x0807_4b50;
/// Central directory digital signature `PK\x05\x05`.
pub(crate) const SIG_DIGITAL_SIGNATURE: u32 = 0x0505_4b50;

/// General purpose flag: the entry is encrypted.
pub(crate) const FLAG_ENCRYPTED: u16 = 1 << 0;
/// General purpose flag: CRC-32 and sizes follow the data in a data descriptor.
pub(crate) const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// General purpose flag: strong encryption.
pub(crate) const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;
/// General purpose flag: the central directory is encrypted and local headers are masked.
pub(crate) const FLAG_MASKED_HEADERS: u16 = 1 << 13;

/// Extra field id of the Zip64 extended information.
const EXTRA_ZIP64: u16 = 0x0001;
/// Extra field id of the extended timestamp (`UT`).
const EXTRA_EXTENDED_TIMESTAMP: u16 = 0x5455;

/// How an entry's data is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompressionMethod {
    /// Method 0: the data is stored as is.
    Stored,
    /// Method 8: raw deflate.
    Deflated,
    /// Any other method; such entries can be listed but not read.
    Other(u16),
}

impl CompressionMethod {
    /// The method for a ZIP method number.
    pub(crate) fn from_u16(method: u16) -> Self {
        match method {
            0 => Self::Stored,
            8 => Self::Deflated,
            other => Self::Other(other),
        }
    }
}

/// What a ZIP header says about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryInfo {
    /// The entry name (lossy UTF-8), at most [`MAX_NAME_LEN`] bytes in the archive.
    pub(crate) name: String,
    /// How the data is compressed.
    pub(crate) method: CompressionMethod,
    /// Compressed size; `None` when it is deferred to a data descriptor (streaming reader).
    pub(crate) compressed_size: Option<u64>,
    /// Uncompressed size; `None` when the local header leaves it to the data descriptor.
    /// Zip64 extra fields are honoured.
    pub(crate) uncompressed_size: Option<u64>,
    /// Modification time in Unix seconds: the `UT` extra field's mtime when present, else the
    /// DOS date/time interpreted as UTC (fwup/libarchive use local time there; we use UTC so
    /// results do not depend on `TZ`). `None` for an invalid DOS date.
    pub(crate) modified: Option<i64>,
    /// The name ends with `/`.
    pub(crate) is_dir: bool,
}

/// Walk `data` as a ZIP stream: every entry, all of its data, then the central directory.
/// Errors are ignored. This is the fuzzing entry point; it must never panic.
#[doc(hidden)]
pub fn fuzz_zip_stream(data: &[u8]) {
    let mut reader = ZipStreamReader::new(data);
    let mut buf = vec![0u8; 8192];
    loop {
        match reader.next_entry() {
            Ok(Some(_)) => loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            Ok(None) => {
                let _ = reader.finish();
                break;
            }
            Err(_) => break,
        }
    }
    // The seekable reader sees the same bytes from the other end.
    if let Ok(mut seekable) = ZipSeekReader::new(std::io::Cursor::new(data)) {
        for index in 0..seekable.entries().len() {
            if let Ok(mut entry) = seekable.open(index) {
                while let Ok(n) = entry.read_checked(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
    }
}

// ---- little helpers shared by the readers -------------------------------------------------

/// Little-endian u16 at `at`; the caller guarantees the bounds.
pub(crate) fn le16(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(src) = bytes.get(at..at + 2) {
        b.copy_from_slice(src);
    }
    u16::from_le_bytes(b)
}

/// Little-endian u32 at `at` (0 when out of bounds; callers check lengths first).
pub(crate) fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

/// Little-endian u64 at `at` (0 when out of bounds; callers check lengths first).
pub(crate) fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        b.copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// The entry name: lossy UTF-8 of at most [`MAX_NAME_LEN`] bytes.
pub(crate) fn decode_name(raw: &[u8]) -> crate::Result<String> {
    if raw.len() > MAX_NAME_LEN {
        return Err(crate::Error::Zip(crate::ZipError::EntryNameTooLong {
            len: raw.len(),
        }));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// What the extra fields of a header say.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Extras {
    /// A Zip64 extended information field is present.
    pub(crate) zip64: bool,
    /// Modification time from the `UT` field.
    pub(crate) mtime: Option<i64>,
}

/// Which 32-bit header fields are `0xFFFFFFFF` (or `0xFFFF`) and so are replaced by the Zip64
/// extra field, in the order the fields appear there. Each is updated in place.
pub(crate) struct Zip64Fields<'a> {
    /// Uncompressed size.
    pub(crate) uncompressed: &'a mut u64,
    /// Compressed size.
    pub(crate) compressed: &'a mut u64,
    /// Offset of the local header (central directory only).
    pub(crate) local_offset: Option<&'a mut u64>,
}

/// Walk the extra fields safely: a truncated trailing field is ignored, as libarchive does.
pub(crate) fn parse_extras(extra: &[u8], mut zip64: Zip64Fields<'_>) -> Extras {
    let mut out = Extras::default();
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = le16(rest, 0);
        let size = usize::from(le16(rest, 2));
        let Some(data) = rest.get(4..4 + size) else {
            break;
        };
        match id {
            EXTRA_ZIP64 => {
                out.zip64 = true;
                let mut at = 0;
                let mut take = |value: &mut u64| {
                    if *value == u64::from(u32::MAX) && at + 8 <= data.len() {
                        *value = le64(data, at);
                        at += 8;
                    }
                };
                take(zip64.uncompressed);
                take(zip64.compressed);
                if let Some(offset) = zip64.local_offset.as_deref_mut() {
                    take(offset);
                }
            }
            EXTRA_EXTENDED_TIMESTAMP => {
                if let (Some(&flags), true) = (data.first(), data.len() >= 5)
                    && flags & 1 != 0
                {
                    out.mtime = Some(i64::from(le32(data, 1) as i32));
                }
            }
            _ => {}
        }
        rest = &rest[4 + size..];
    }
    out
}

/// A DOS date and time as Unix seconds, interpreted as UTC. `None` for impossible values.
pub(crate) fn dos_to_unix(date: u16, time: u16) -> Option<i64> {
    let year = i64::from(date >> 9) + 1980;
    let month = i64::from((date >> 5) & 0x0f);
    let day = i64::from(date & 0x1f);
    let hour = i64::from(time >> 11);
    let minute = i64::from((time >> 5) & 0x3f);
    let second = i64::from(time & 0x1f) * 2;
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
