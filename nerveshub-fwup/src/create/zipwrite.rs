//! A ZIP writer laid out like libarchive's (which fwup writes through), so that C fwup's
//! streaming reader sees what it expects:
//!
//! * every local header has general-purpose flag bit 3: CRC and compressed size are 0 in
//!   the header and follow the data in a `PK\x07\x08` data descriptor (16 bytes; 24 with
//!   64-bit sizes when the entry needs Zip64). The uncompressed size is in the header.
//! * "version needed" 20 for deflate, 10 for stored.
//! * extra fields `UT` (extended timestamp: the mtime for meta.conf, flags only otherwise)
//!   and `ux` (uid/gid 0/0); entries without an mtime carry DOS date 1980-01-01 00:00.
//!
//! The compressed bytes differ from zlib's (flate2 is another deflate implementation), so
//! archives are not byte-identical to fwup's; the layout is.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::DeflateEncoder;

use crate::civil::CivilTime;

/// Sizes from which an entry gets Zip64 fields (libarchive switches at 4 GiB; a little
/// margin covers deflate's expansion of incompressible data).
const ZIP64_THRESHOLD: u64 = 0xFFFF_0000;

/// A writer that counts what passes through.
#[derive(Debug)]
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Debug)]
struct CentralEntry {
    name: String,
    method: u16,
    dos_time: u16,
    dos_date: u16,
    mtime: Option<u32>,
    crc: u32,
    csize: u64,
    usize: u64,
    offset: u64,
}

/// Writes fwup-style ZIP archives to any [`Write`].
#[derive(Debug)]
pub(crate) struct ZipWriter<W: Write> {
    out: Counting<W>,
    entries: Vec<CentralEntry>,
    level: u32,
}

/// An entry being written: feed data with [`EntryWriter::write_all`], then
/// [`ZipWriter::finish_entry`].
pub(crate) struct EntryWriter<'a, W: Write> {
    zip: &'a mut ZipWriter<W>,
    crc: crc32fast::Hasher,
    written: u64,
    start: u64,
    deflate: Option<DeflateEncoder<Vec<u8>>>,
}

impl<W: Write> std::fmt::Debug for EntryWriter<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryWriter")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// DOS time and date of a Unix time, read as UTC.
fn dos_time_date(unix: i64) -> (u16, u16) {
    let CivilTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    } = CivilTime::from_unix(unix);
    if !(1980..=2107).contains(&year) {
        return (0, 0x21);
    }
    let time = (hour << 11) | (minute << 5) | (second / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (
        u16::try_from(time).unwrap_or(0),
        u16::try_from(date).unwrap_or(0x21),
    )
}

fn extra_fields(mtime: Option<u32>, zip64: Option<&[u64]>) -> Vec<u8> {
    let mut e = Vec::new();
    if let Some(values) = zip64 {
        e.extend_from_slice(&0x0001u16.to_le_bytes());
        e.extend_from_slice(&u16::try_from(values.len() * 8).unwrap_or(0).to_le_bytes());
        for v in values {
            e.extend_from_slice(&v.to_le_bytes());
        }
    }
    e.extend_from_slice(&0x5455u16.to_le_bytes());
    match mtime {
        Some(t) => {
            e.extend_from_slice(&5u16.to_le_bytes());
            e.push(1);
            e.extend_from_slice(&t.to_le_bytes());
        }
        None => {
            e.extend_from_slice(&1u16.to_le_bytes());
            e.push(0);
        }
    }
    e.extend_from_slice(&[0x75, 0x78, 0x0b, 0x00, 1, 4, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    e
}

fn u32_or_max(v: u64) -> u32 {
    u32::try_from(v)
        .ok()
        .filter(|&v| v != u32::MAX)
        .unwrap_or(u32::MAX)
}

impl<W: Write> ZipWriter<W> {
    /// Starts an archive; `level` is the deflate level 1–9 for deflated entries.
    pub(crate) fn new(out: W, level: u32) -> Self {
        Self {
            out: Counting {
                inner: out,
                count: 0,
            },
            entries: Vec::new(),
            level: level.clamp(1, 9),
        }
    }

    /// Writes a local header and returns a writer for the entry's data. `size` is the
    /// uncompressed size; `mtime` a Unix time for the `UT` field (meta.conf only);
    /// `stored` writes the data uncompressed (the signature entry).
    pub(crate) fn start_entry(
        &mut self,
        name: &str,
        size: u64,
        mtime: Option<i64>,
        stored: bool,
    ) -> io::Result<EntryWriter<'_, W>> {
        let start = self.out.count;
        let method: u16 = if stored { 0 } else { 8 };
        let (dos_time, dos_date) = mtime.map_or((0, 0x21), dos_time_date);
        let mtime32 = mtime.and_then(|t| u32::try_from(t).ok());
        let zip64 = size >= ZIP64_THRESHOLD;
        let mut h = Vec::with_capacity(30 + name.len() + 64);
        h.extend_from_slice(b"PK\x03\x04");
        h.extend_from_slice(
            &(if zip64 {
                45u16
            } else if stored {
                10
            } else {
                20
            })
            .to_le_bytes(),
        );
        h.extend_from_slice(&0x0008u16.to_le_bytes());
        h.extend_from_slice(&method.to_le_bytes());
        h.extend_from_slice(&dos_time.to_le_bytes());
        h.extend_from_slice(&dos_date.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        let (csize_field, usize_field) = if zip64 {
            (u32::MAX, u32::MAX)
        } else if stored {
            (u32_or_max(size), u32_or_max(size))
        } else {
            (0, u32_or_max(size))
        };
        h.extend_from_slice(&csize_field.to_le_bytes());
        h.extend_from_slice(&usize_field.to_le_bytes());
        let extra = extra_fields(mtime32, zip64.then_some(&[size, 0][..]));
        h.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_le_bytes());
        h.extend_from_slice(&u16::try_from(extra.len()).unwrap_or(0).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&extra);
        self.out.write_all(&h)?;
        self.entries.push(CentralEntry {
            name: name.to_owned(),
            method,
            dos_time,
            dos_date,
            mtime: mtime32,
            crc: 0,
            csize: 0,
            usize: size,
            offset: start,
        });
        let level = self.level;
        let data_start = self.out.count;
        Ok(EntryWriter {
            zip: self,
            crc: crc32fast::Hasher::new(),
            written: 0,
            start: data_start,
            deflate: (!stored).then(|| DeflateEncoder::new(Vec::new(), Compression::new(level))),
        })
    }

    /// Writes the central directory and end records and returns the output.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let cd_start = self.out.count;
        for e in &self.entries {
            let mut z64 = Vec::new();
            if e.usize >= u64::from(u32::MAX) {
                z64.push(e.usize);
            }
            if e.csize >= u64::from(u32::MAX) {
                z64.push(e.csize);
            }
            if e.offset >= u64::from(u32::MAX) {
                z64.push(e.offset);
            }
            let extra = extra_fields(e.mtime, (!z64.is_empty()).then_some(&z64[..]));
            let needed: u16 = if !z64.is_empty() {
                45
            } else if e.method == 0 {
                10
            } else {
                20
            };
            let mut h = Vec::new();
            h.extend_from_slice(b"PK\x01\x02");
            h.extend_from_slice(&(0x0300u16 | needed).to_le_bytes());
            h.extend_from_slice(&needed.to_le_bytes());
            h.extend_from_slice(&0x0008u16.to_le_bytes());
            h.extend_from_slice(&e.method.to_le_bytes());
            h.extend_from_slice(&e.dos_time.to_le_bytes());
            h.extend_from_slice(&e.dos_date.to_le_bytes());
            h.extend_from_slice(&e.crc.to_le_bytes());
            h.extend_from_slice(&u32_or_max(e.csize).to_le_bytes());
            h.extend_from_slice(&u32_or_max(e.usize).to_le_bytes());
            h.extend_from_slice(
                &u16::try_from(e.name.len())
                    .unwrap_or(u16::MAX)
                    .to_le_bytes(),
            );
            h.extend_from_slice(&u16::try_from(extra.len()).unwrap_or(0).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // comment
            h.extend_from_slice(&0u16.to_le_bytes()); // disk
            h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            h.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
            h.extend_from_slice(&u32_or_max(e.offset).to_le_bytes());
            h.extend_from_slice(e.name.as_bytes());
            h.extend_from_slice(&extra);
            self.out.write_all(&h)?;
        }
        let cd_end = self.out.count;
        let cd_size = cd_end - cd_start;
        let count = self.entries.len() as u64;
        let mut t = Vec::new();
        if cd_start >= u64::from(u32::MAX) || count >= 0xFFFF {
            t.extend_from_slice(b"PK\x06\x06");
            t.extend_from_slice(&44u64.to_le_bytes());
            t.extend_from_slice(&45u16.to_le_bytes());
            t.extend_from_slice(&45u16.to_le_bytes());
            t.extend_from_slice(&0u32.to_le_bytes());
            t.extend_from_slice(&0u32.to_le_bytes());
            t.extend_from_slice(&count.to_le_bytes());
            t.extend_from_slice(&count.to_le_bytes());
            t.extend_from_slice(&cd_size.to_le_bytes());
            t.extend_from_slice(&cd_start.to_le_bytes());
            t.extend_from_slice(b"PK\x06\x07");
            t.extend_from_slice(&0u32.to_le_bytes());
            t.extend_from_slice(&cd_end.to_le_bytes());
            t.extend_from_slice(&1u32.to_le_bytes());
        }
        let count16 = u16::try_from(count).unwrap_or(u16::MAX);
        t.extend_from_slice(b"PK\x05\x06");
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&count16.to_le_bytes());
        t.extend_from_slice(&count16.to_le_bytes());
        t.extend_from_slice(&u32_or_max(cd_size).to_le_bytes());
        t.extend_from_slice(&u32_or_max(cd_start).to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        self.out.write_all(&t)?;
        self.out.flush()?;
        Ok(self.out.inner)
    }
}

impl<W: Write> EntryWriter<'_, W> {
    /// Adds uncompressed data to the entry.
    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.written += data.len() as u64;
        match &mut self.deflate {
            Some(enc) => {
                enc.write_all(data)?;
                let buf = enc.get_mut();
                if buf.len() >= 64 * 1024 {
                    self.zip.out.write_all(buf)?;
                    buf.clear();
                }
                Ok(())
            }
            None => self.zip.out.write_all(data),
        }
    }

    /// Ends the entry: flushes the compressor and writes the data descriptor. Returns the
    /// number of uncompressed bytes written.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        if let Some(enc) = self.deflate.take() {
            let rest = enc.finish()?;
            self.zip.out.write_all(&rest)?;
        }
        let csize = self.zip.out.count - self.start;
        let crc = self.crc.finalize();
        let usize = self.written;
        let zip64 = self
            .zip
            .entries
            .last()
            .is_some_and(|e| e.usize >= ZIP64_THRESHOLD);
        let mut d = Vec::new();
        d.extend_from_slice(b"PK\x07\x08");
        d.extend_from_slice(&crc.to_le_bytes());
        if zip64 {
            d.extend_from_slice(&csize.to_le_bytes());
            d.extend_from_slice(&usize.to_le_bytes());
        } else {
            d.extend_from_slice(&u32_or_max(csize).to_le_bytes());
            d.extend_from_slice(&u32_or_max(usize).to_le_bytes());
        }
        self.zip.out.write_all(&d)?;
        if let Some(e) = self.zip.entries.last_mut() {
            e.crc = crc;
            e.csize = csize;
            e.usize = usize;
        }
        Ok(usize)
    }
}

#[cfg(test)]
mod tests {
    use super::dos_time_date;

    #[test]
    fn dos_time_of_source_date_epoch_matches_fwup() {
        // expected/*/zip-entries.txt: meta.conf at SOURCE_DATE_EPOCH=1700000000.
        assert_eq!(dos_time_date(1_700_000_000), (0xb1aa, 0x576e));
    }
}
