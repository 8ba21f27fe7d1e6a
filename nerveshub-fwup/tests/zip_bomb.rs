//! Zip bombs (issue 25 item 7): a resource declaring 4 KiB whose entry inflates to 1 GiB of
//! zeros from about 1 MiB of input. Verify and apply must stop inflating one byte past the
//! declared length with a typed error, never inflate the rest; the work done is observed as
//! the input bytes consumed (deterministic, no timing).

use nerveshub_fwup::{
    ApplyError, ApplyOptions, ArchiveError, Error, MemoryTarget, Variables, ZipError, verify,
    verify_with_limit,
};
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use blake2::Digest as _;
use flate2::{Compress, Compression, FlushCompress};

const DECLARED: usize = 4096;
/// 1 GiB of zeros, deflated.
const BOMB_MIB: usize = 1024;

/// A raw deflate stream of `mib` MiB of zeros: one sync-flushed block of 1 MiB of zeros
/// repeated (its matches only reach back into itself), then an empty final block.
fn zeros_deflated(mib: usize) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut block = Vec::with_capacity(8192);
    compress
        .compress_vec(&vec![0u8; 1 << 20], &mut block, FlushCompress::Sync)
        .unwrap();
    let mut out = Vec::with_capacity(block.len() * mib + 2);
    for _ in 0..mib {
        out.extend_from_slice(&block);
    }
    // BFINAL=1, fixed Huffman, end-of-block.
    out.extend_from_slice(&[0x03, 0x00]);
    out
}

fn meta_conf() -> String {
    let hash: [u8; 32] = blake2::Blake2b256::digest(vec![0u8; DECLARED]).into();
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "meta-product = \"bomb\"\nfile-resource bomb {{\n  length = {DECLARED}\n  blake2b-256 = \"{hex}\"\n}}\n\
         task complete {{\n  on-resource bomb {{ raw_write(0) }}\n}}\n\
         task other {{\n  on-init {{ raw_memset(0, 1, 0xaa) }}\n}}\n"
    )
}

/// How the bomb's sizes are declared in its local header.
#[derive(Clone, Copy, Debug)]
enum Header {
    /// The header lies: 4096 bytes.
    Lying,
    /// Bit 3: sizes only in the data descriptor after the data.
    DataDescriptor,
}

/// A hand-built archive: stored meta.conf, then `data/bomb`.
fn archive(header: Header) -> Vec<u8> {
    let meta = meta_conf().into_bytes();
    let bomb = zeros_deflated(BOMB_MIB);
    let crc_4k = crc32fast::hash(&vec![0u8; DECLARED]);
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut entry = |out: &mut Vec<u8>,
                     name: &str,
                     method: u16,
                     flags: u16,
                     crc: u32,
                     csize: u32,
                     usize: u32,
                     data: &[u8]| {
        let offset = out.len() as u32;
        for (target, sig) in [(&mut *out, 0x0403_4b50u32), (&mut central, 0x0201_4b50)] {
            target.extend_from_slice(&sig.to_le_bytes());
            if sig == 0x0201_4b50 {
                target.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            target.extend_from_slice(&20u16.to_le_bytes()); // needed
            target.extend_from_slice(&flags.to_le_bytes());
            target.extend_from_slice(&method.to_le_bytes());
            target.extend_from_slice(&[0, 0, 0x21, 0]); // DOS time, date (1980-01-01)
            target.extend_from_slice(&crc.to_le_bytes());
            target.extend_from_slice(&csize.to_le_bytes());
            target.extend_from_slice(&usize.to_le_bytes());
            target.extend_from_slice(&(name.len() as u16).to_le_bytes());
            target.extend_from_slice(&0u16.to_le_bytes()); // extra
            if sig == 0x0201_4b50 {
                target.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
                target.extend_from_slice(&0u32.to_le_bytes()); // external attributes
                target.extend_from_slice(&offset.to_le_bytes());
            }
            target.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(data);
    };
    let meta_crc = crc32fast::hash(&meta);
    let meta_len = meta.len() as u32;
    entry(
        &mut out,
        "meta.conf",
        0,
        0,
        meta_crc,
        meta_len,
        meta_len,
        &meta,
    );
    match header {
        Header::Lying => entry(
            &mut out,
            "data/bomb",
            8,
            0,
            crc_4k,
            bomb.len() as u32,
            DECLARED as u32,
            &bomb,
        ),
        Header::DataDescriptor => {
            entry(&mut out, "data/bomb", 8, 0x08, 0, 0, 0, &bomb);
            out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
            out.extend_from_slice(&crc_4k.to_le_bytes());
            out.extend_from_slice(&(bomb.len() as u32).to_le_bytes());
            out.extend_from_slice(&(DECLARED as u32).to_le_bytes());
        }
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 2, 0, 2, 0]);
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Counts the input bytes taken from the archive.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn counting(bytes: &[u8]) -> (Counting<&[u8]>, Arc<AtomicU64>) {
    let read = Arc::new(AtomicU64::new(0));
    (
        Counting {
            inner: bytes,
            read: read.clone(),
        },
        read,
    )
}

/// At most this much input is taken before the error: the reader's 256 KiB buffer and
/// change. Inflating the whole bomb would take all of its ~1 MiB.
const FAST: u64 = 300 * 1024;

#[test]
fn the_bomb_is_about_a_mebibyte_of_input() {
    let bytes = archive(Header::Lying);
    assert!(bytes.len() > 900 * 1024, "{}", bytes.len());
    assert!(bytes.len() < 4 << 20, "{}", bytes.len());
}

#[test]
fn verify_stops_one_byte_past_the_declared_length() {
    for header in [Header::Lying, Header::DataDescriptor] {
        let bytes = archive(header);
        let (input, read) = counting(&bytes);
        let err = verify(input, &[], &Variables::default()).unwrap_err();
        match &err {
            Error::Archive(ArchiveError::ResourceTooLong { name, expected }) => {
                assert_eq!((name.as_str(), *expected), ("bomb", DECLARED as u64));
            }
            _ => panic!("{header:?}: unexpected error {err:?}"),
        }
        assert_eq!(
            err.to_string(),
            "ZIP data length mismatch for bomb: expected 4096 bytes, got more"
        );
        let taken = read.load(Ordering::Relaxed);
        assert!(taken < FAST, "{header:?}: read {taken} bytes of input");
    }
}

#[test]
fn apply_stops_too_and_writes_nothing() {
    for header in [Header::Lying, Header::DataDescriptor] {
        let bytes = archive(header);
        let (input, read) = counting(&bytes);
        let mut target = MemoryTarget::new();
        let err =
            nerveshub_fwup::apply(input, &mut target, &ApplyOptions::new("complete"), &mut ())
                .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Zip(ZipError::InflateLimit { .. })
                    | Error::Apply(ApplyError::HashMismatch { .. })
            ),
            "{header:?}: {err:?}"
        );
        let taken = read.load(Ordering::Relaxed);
        assert!(taken < FAST, "{header:?}: read {taken} bytes of input");
        assert!(target.into_bytes().iter().all(|b| *b == 0));
    }
}

#[test]
fn an_entry_the_task_does_not_use_is_skipped_without_inflating() {
    // Task `other` has no handler for the bomb: its known-size entry is skipped unread (as
    // libarchive skips it for fwup), so the apply succeeds.
    let bytes = archive(Header::Lying);
    let mut target = MemoryTarget::new();
    nerveshub_fwup::apply(
        &bytes[..],
        &mut target,
        &ApplyOptions::new("other"),
        &mut (),
    )
    .unwrap();
    assert_eq!(target.into_bytes()[..512], [0xaa; 512]);
}

#[test]
fn verify_with_limit_refuses_large_declarations_before_inflating() {
    let bytes = archive(Header::Lying);
    let (input, read) = counting(&bytes);
    let err = verify_with_limit(input, &[], &Variables::default(), 1024).unwrap_err();
    assert!(
        matches!(err, Error::Zip(ZipError::InflateLimit { limit: 1024, .. })),
        "{err:?}"
    );
    assert!(read.load(Ordering::Relaxed) < FAST);
}
