//! Whole-archive verification, with fwup -V's rules.

use std::collections::HashSet;
use std::io::Read;

use blake2::digest::Digest as _;

use crate::archive::{ArchiveHead, ArchiveReader, FirmwareInfo, ResourceEntry, SignatureStatus};
use crate::keys::PublicKey;
use crate::metaconf::{MetaConf, Variables};
use crate::uuid::FirmwareUuid;
use crate::{Error, Result};

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
pub fn verify<R: Read>(input: R, keys: &[PublicKey], vars: &Variables) -> Result<VerifiedArchive> {
    let mut reader = ArchiveReader::open(input)?;
    let signature = reader.head().check_signature(keys)?;
    let meta_conf = reader.head().parse(vars)?;

    let mut seen = HashSet::new();
    let mut buf = vec![0u8; CHUNK_LEN];
    while let Some(mut entry) = reader.next_resource()? {
        let name = entry.name().to_owned();
        let resource = meta_conf
            .resource(&name)
            .ok_or_else(|| Error::UnknownResource(name.clone()))?;
        if !seen.insert(name.clone()) {
            return Err(Error::DuplicateResource(name));
        }
        let expected_hash = resource
            .blake2b_256()
            .ok_or_else(|| Error::InvalidResourceHash(name.clone()))?;
        let expected_len = resource.data_len();
        if let Some(declared) = entry.declared_size()
            && declared != expected_len
        {
            return Err(Error::ResourceLengthMismatch {
                name,
                expected: expected_len,
                actual: declared,
            });
        }
        let (len, hash) = hash_entry(&mut entry, &mut buf)?;
        if len != expected_len {
            return Err(Error::ResourceLengthMismatch {
                name,
                expected: expected_len,
                actual: len,
            });
        }
        if hash != expected_hash {
            return Err(Error::ResourceHashMismatch(name));
        }
    }
    let archive_len = reader.position();
    let head = reader.finish()?;
    if let Some(missing) = meta_conf
        .resources()
        .iter()
        .find(|resource| !seen.contains(resource.name()))
    {
        return Err(Error::MissingResource(missing.name().to_owned()));
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
