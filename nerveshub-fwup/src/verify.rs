//! Whole-archive verification, with fwup -V's rules.

use std::collections::HashSet;
use std::io::Read;

use blake2::digest::Digest as _;

use crate::archive::{ArchiveHead, ArchiveReader, FirmwareInfo, ResourceEntry, SignatureStatus};
use crate::delta::DeltaDecoder;
use crate::keys::PublicKey;
use crate::metaconf::{MetaConf, Variables};
use crate::uuid::FirmwareUuid;
use crate::{ArchiveError, Error, Result, ZipError};

/// Size of the buffer decompressed data is hashed from.
const CHUNK_LEN: usize = 256 * 1024;

/// An archive that passed [`verify`]: the signature (when keys were given) verified, meta.conf
/// parsed, and every resource present once with the length and BLAKE2b-256 that meta.conf
/// declares. Only [`verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedArchive {
    head: ArchiveHead,
    meta_conf: MetaConf,
    signature: SignatureStatus,
    archive_len: u64,
}

impl VerifiedArchive {
    /// The signature and the exact meta.conf bytes.
    pub fn head(&self) -> &ArchiveHead {
        &self.head
    }

    /// The parsed meta.conf.
    pub fn meta_conf(&self) -> &MetaConf {
        &self.meta_conf
    }

    /// How the signature check came out.
    pub fn signature(&self) -> SignatureStatus {
        self.signature
    }

    /// The `meta-uuid`.
    pub fn uuid(&self) -> FirmwareUuid {
        self.head.uuid()
    }

    /// The metadata `fwup -m` prints.
    pub fn firmware_info(&self) -> FirmwareInfo {
        self.head.firmware_info(&self.meta_conf)
    }

    /// Bytes read from the input, up to the end of the last entry.
    pub fn archive_len(&self) -> u64 {
        self.archive_len
    }
}

/// Verifies a whole archive read front to back, as `fwup -V` does.
///
/// With `keys`, the archive must be signed by one of them; this is checked before meta.conf
/// is parsed. Without keys any signature is ignored ([`SignatureStatus::Unverified`]).
/// Then every entry must name a `file-resource` (`data/X` → `X`, other names `Y` → `/Y`),
/// appear only once, and have exactly the declared length and BLAKE2b-256; every declared
/// resource must be present, used by a task or not; and the archive must end with its
/// central directory. `vars` supplies apply-time `${VAR}` values for meta.conf.
///
/// Memory stays at meta.conf plus fixed-size buffers, whatever the archive's size.
///
/// Inflating is bounded by what meta.conf declares: an entry stops one byte past its
/// resource's length, and all entries together past the sum of the lengths, so a zip bomb
/// fails fast ([`ArchiveError::ResourceTooLong`](crate::ArchiveError::ResourceTooLong), [`ZipError::InflateLimit`](crate::ZipError::InflateLimit)). [`verify_with_limit`]
/// also caps that sum.
pub fn verify<R: Read>(input: R, keys: &[PublicKey], vars: &Variables) -> Result<VerifiedArchive> {
    verify_with_limit(input, keys, vars, u64::MAX)
}

/// [`verify`], refusing an archive whose resources together declare more than
/// `max_inflated` bytes before inflating anything ([`ZipError::InflateLimit`](crate::ZipError::InflateLimit)). A server takes
/// uploads with this: the work one upload can cost is bounded by a number it chooses.
///
/// # Errors
/// Those of [`verify`], and [`ZipError::InflateLimit`](crate::ZipError::InflateLimit) for an archive declaring more.
pub fn verify_with_limit<R: Read>(
    input: R,
    keys: &[PublicKey],
    vars: &Variables,
    max_inflated: u64,
) -> Result<VerifiedArchive> {
    let mut reader = ArchiveReader::open(input)?;
    let signature = reader.head().check_signature(keys)?;
    let meta_conf = reader.head().parse(vars)?;
    let declared = meta_conf
        .resources()
        .iter()
        .fold(0u64, |sum, r| sum.saturating_add(r.data_len()));
    if declared > max_inflated {
        return Err(Error::Zip(ZipError::InflateLimit {
            entry: "(all resources)".to_owned(),
            limit: max_inflated,
        }));
    }
    // Each resource appears once (a duplicate fails), so the sum bounds the whole walk.
    reader.set_inflate_budget(declared);

    let mut seen = HashSet::new();
    let mut buf = vec![0u8; CHUNK_LEN];
    while let Some(mut entry) = reader.next_resource()? {
        let name = entry.name().to_owned();
        let resource = meta_conf
            .resource(&name)
            .ok_or_else(|| Error::Archive(ArchiveError::UnknownResource(name.clone())))?;
        if !seen.insert(name.clone()) {
            return Err(Error::Archive(ArchiveError::DuplicateResource(name)));
        }
        let expected_hash = resource
            .blake2b_256()
            .ok_or_else(|| Error::Archive(ArchiveError::InvalidResourceHash(name.clone())))?;
        let expected_len = resource.data_len();
        if let Some(declared) = entry.declared_size()
            && declared != expected_len
        {
            if resource.length_runs().len() == 1 {
                // An xdelta3 patch, as fwup sees it: without the source only its header
                // can be checked; the rest of the entry is skipped unread.
                let mut read = |buf: &mut [u8]| entry.read_chunk(buf);
                DeltaDecoder::new(0).read_header(&mut read)?;
                continue;
            }
            return Err(Error::Archive(ArchiveError::ResourceLengthMismatch {
                name,
                expected: expected_len,
                actual: declared,
            }));
        }
        entry.limit_len(expected_len);
        let (len, hash) = hash_entry(&mut entry, &mut buf).map_err(|err| match err {
            Error::Zip(ZipError::InflateLimit { limit, .. }) if limit == expected_len => {
                Error::Archive(ArchiveError::ResourceTooLong {
                    name: name.clone(),
                    expected: expected_len,
                })
            }
            other => other,
        })?;
        if len != expected_len {
            return Err(Error::Archive(ArchiveError::ResourceLengthMismatch {
                name,
                expected: expected_len,
                actual: len,
            }));
        }
        if hash != expected_hash {
            return Err(Error::Archive(ArchiveError::ResourceHashMismatch(name)));
        }
    }
    let archive_len = reader.position();
    let head = reader.finish()?;
    if let Some(missing) = meta_conf
        .resources()
        .iter()
        .find(|resource| !seen.contains(resource.name()))
    {
        return Err(Error::Archive(ArchiveError::MissingResource(
            missing.name().to_owned(),
        )));
    }
    Ok(VerifiedArchive {
        head,
        meta_conf,
        signature,
        archive_len,
    })
}

/// Reads the entry to its end; returns its length and BLAKE2b-256.
///
/// Hashing runs inline: measured on 2 cores, handing chunks to a second hashing thread was
/// slower than this (inflating is about an eighth of the time; moving every chunk between
/// cores cost more than the overlap saved). See BENCHMARKS.md.
fn hash_entry<R: Read>(
    entry: &mut ResourceEntry<'_, R>,
    buf: &mut [u8],
) -> Result<(u64, [u8; 32])> {
    let mut hasher = blake2::Blake2b256::new();
    let mut total = 0u64;
    loop {
        let n = entry.read_chunk(buf)?;
        if n == 0 {
            return Ok((total, hasher.finalize().into()));
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}
