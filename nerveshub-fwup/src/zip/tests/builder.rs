//! A small ZIP writer for tests: every layout the readers must handle (bit 3 with and
//! without descriptor signature, 32- and 64-bit descriptors, Zip64 extra fields and end
//! records, stored entries of unknown length), which the `zip` crate does not all write.

use std::io::Write;

use flate2::Compression;
use flate2::write::DeflateEncoder;

/// One entry to write.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) name: String,
    pub(super) data: Vec<u8>,
    pub(super) deflate: bool,
    /// General purpose bit 3: CRC-32 and sizes in a data descriptor after the data.
    pub(super) bit3: bool,
    /// The data descriptor starts with `PK\x07\x08`.
    pub(super) descriptor_sig: bool,
    /// Zip64 extra fields (local and central) and a 24-byte data descriptor.
    pub(super) zip64: bool,
    /// With bit 3, still write the uncompressed size (and for stored entries the compressed
    /// size) in the local header, as fwup does.
    pub(super) sizes_in_header: bool,
    /// A `UT` extra field with this mtime.
    pub(super) mtime: Option<u32>,
    /// Extra general purpose flags (e.g. encryption).
    pub(super) extra_flags: u16,
    /// Override the method number (to test unknown methods); data is written stored.
    pub(super) method_override: Option<u16>,
}

impl Spec {
    /// A plain entry with the sizes in the local header.
    pub(super) fn new(name: &str, data: &[u8], deflate: bool) -> Self {
        Self {
            name: name.into(),
            data: data.to_vec(),
            deflate,
            bit3: false,
            descriptor_sig: true,
            zip64: false,
            sizes_in_header: true,
            mtime: None,
            extra_flags: 0,
            method_override: None,
        }
    }

    /// An entry as fwup writes it: bit 3, descriptor with signature, usize in the header.
    pub(super) fn fwup(name: &str, data: &[u8], deflate: bool) -> Self {
        Self {
            bit3: true,
            ..Self::new(name, data, deflate)
        }
    }
}

/// DOS date 1980-01-01, time 00:00.
const DOS_DATE: u16 = 0x0021;
const DOS_TIME: u16 = 0;

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn crc(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.finalize()
}

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u64le(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Write the archive: local entries, central directory, (Zip64 end record and locator when
/// `zip64_end`), end record.
pub(super) fn build(specs: &[Spec], zip64_end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for s in specs {
        let offset = out.len() as u64;
        let method = s.method_override.unwrap_or(if s.deflate { 8 } else { 0 });
        let body = if s.deflate && s.method_override.is_none() {
            deflate(&s.data)
        } else {
            s.data.clone()
        };
        let (c, u, k) = (body.len() as u64, s.data.len() as u64, crc(&s.data));
        let flags = if s.bit3 { 8 } else { 0 } | s.extra_flags;
        let stored = method == 0;
        // What the local header claims.
        let (hc, hu) = if !s.bit3 {
            (c, u)
        } else if s.sizes_in_header {
            (if stored { c } else { 0 }, u)
        } else {
            (0, 0)
        };
        let mut ut_local = Vec::new();
        if let Some(m) = s.mtime {
            u16le(&mut ut_local, 0x5455);
            u16le(&mut ut_local, 5);
            ut_local.push(1);
            u32le(&mut ut_local, m);
        }
        let mut extra = Vec::new();
        if s.zip64 {
            u16le(&mut extra, 1);
            u16le(&mut extra, 16);
            u64le(&mut extra, hu);
            u64le(&mut extra, hc);
        }
        extra.extend_from_slice(&ut_local);

        u32le(&mut out, 0x0403_4b50);
        u16le(&mut out, if s.zip64 { 45 } else { 20 });
        u16le(&mut out, flags);
        u16le(&mut out, method);
        u16le(&mut out, DOS_TIME);
        u16le(&mut out, DOS_DATE);
        u32le(&mut out, if s.bit3 { 0 } else { k });
        if s.zip64 {
            u32le(&mut out, u32::MAX);
            u32le(&mut out, u32::MAX);
        } else {
            u32le(&mut out, hc as u32);
            u32le(&mut out, hu as u32);
        }
        u16le(&mut out, s.name.len() as u16);
        u16le(&mut out, extra.len() as u16);
        out.extend_from_slice(s.name.as_bytes());
        out.extend_from_slice(&extra);
        out.extend_from_slice(&body);
        if s.bit3 {
            if s.descriptor_sig {
                u32le(&mut out, 0x0807_4b50);
            }
            u32le(&mut out, k);
            if s.zip64 {
                u64le(&mut out, c);
                u64le(&mut out, u);
            } else {
                u32le(&mut out, c as u32);
                u32le(&mut out, u as u32);
            }
        }

        let mut cextra = Vec::new();
        if s.zip64 {
            u16le(&mut cextra, 1);
            u16le(&mut cextra, 24);
            u64le(&mut cextra, u);
            u64le(&mut cextra, c);
            u64le(&mut cextra, offset);
        }
        cextra.extend_from_slice(&ut_local);
        u32le(&mut central, 0x0201_4b50);
        u16le(&mut central, 0x031e);
        u16le(&mut central, if s.zip64 { 45 } else { 20 });
        u16le(&mut central, flags);
        u16le(&mut central, method);
        u16le(&mut central, DOS_TIME);
        u16le(&mut central, DOS_DATE);
        u32le(&mut central, k);
        if s.zip64 {
            u32le(&mut central, u32::MAX);
            u32le(&mut central, u32::MAX);
        } else {
            u32le(&mut central, c as u32);
            u32le(&mut central, u as u32);
        }
        u16le(&mut central, s.name.len() as u16);
        u16le(&mut central, cextra.len() as u16);
        u16le(&mut central, 0);
        u16le(&mut central, 0);
        u16le(&mut central, 0);
        u32le(&mut central, 0);
        u32le(&mut central, if s.zip64 { u32::MAX } else { offset as u32 });
        central.extend_from_slice(s.name.as_bytes());
        central.extend_from_slice(&cextra);
    }
    let cd_offset = out.len() as u64;
    let cd_size = central.len() as u64;
    out.extend_from_slice(&central);
    let n = specs.len() as u64;
    if zip64_end {
        let record = out.len() as u64;
        u32le(&mut out, 0x0606_4b50);
        u64le(&mut out, 44);
        u16le(&mut out, 45);
        u16le(&mut out, 45);
        u32le(&mut out, 0);
        u32le(&mut out, 0);
        u64le(&mut out, n);
        u64le(&mut out, n);
        u64le(&mut out, cd_size);
        u64le(&mut out, cd_offset);
        u32le(&mut out, 0x0706_4b50);
        u32le(&mut out, 0);
        u64le(&mut out, record);
        u32le(&mut out, 1);
    }
    u32le(&mut out, 0x0605_4b50);
    u16le(&mut out, 0);
    u16le(&mut out, 0);
    let n16 = if zip64_end { u16::MAX } else { n as u16 };
    u16le(&mut out, n16);
    u16le(&mut out, n16);
    u32le(&mut out, if zip64_end { u32::MAX } else { cd_size as u32 });
    u32le(
        &mut out,
        if zip64_end {
            u32::MAX
        } else {
            cd_offset as u32
        },
    );
    u16le(&mut out, 0);
    out
}

/// Where the central directory of a [`build`] archive starts.
pub(super) fn central_directory_offset(archive: &[u8]) -> usize {
    let eocd = archive.len() - 22;
    let mut b = [0u8; 4];
    b.copy_from_slice(&archive[eocd + 16..eocd + 20]);
    u32::from_le_bytes(b) as usize
}
