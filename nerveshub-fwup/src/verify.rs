//! Whole-archive verification, with fwup -V's rules.

use std::collections::HashSet;
use std::io::Read;
use std::sync::mpsc;
use std::thread;

use blake2::digest::Digest as _;

use crate::archive::{ArchiveHead, ArchiveReader, FirmwareInfo, ResourceEntry, SignatureStatus};
use crate::keys::PublicKey;
use crate::metaconf::{MetaConf, Variables};
use crate::uuid::FirmwareUuid;
use crate::{Error, Result};

/// Size of one decompressed chunk handed from the reading thread to the hashing thread.
const CHUNK_LEN: usize = 256 * 1024;
/// Chunks in flight between the two threads: bounds memory at `CHUNKS * CHUNK_LEN`.
const CHUNKS: usize = 4;

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
/// Decompressed data is hashed on a second thread while the next chunk is inflated; memory
/// stays at a few fixed-size buffers whatever the archive's size.
pub fn verify<R: Read>(input: R, keys: &[PublicKey], vars: &Variables) -> Result<VerifiedArchive> {
    let mut reader = ArchiveReader::open(input)?;
    let signature = reader.head().check_signature(keys)?;
    let meta_conf = reader.head().parse(vars)?;

    let mut seen = HashSet::new();
    thread::scope(|scope| -> Result<()> {
        let mut pipe = HashPipe::start(scope);
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
            let (len, hash) = pipe.hash_entry(&mut entry)?;
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
        Ok(())
    })?;
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

/// Message to the hashing thread.
enum Job {
    /// Hash the first `len` bytes of the buffer, then hand it back.
    Data(Vec<u8>, usize),
    /// The entry is over: send its digest and start a new one.
    Finish,
}

/// Inflating and hashing overlap: the caller's thread reads chunks, a scoped thread hashes
/// them. Buffers circulate through `free`, so nothing is allocated per chunk.
struct HashPipe {
    jobs: mpsc::SyncSender<Job>,
    free: mpsc::Receiver<Vec<u8>>,
    digests: mpsc::Receiver<[u8; 32]>,
}

impl HashPipe {
    fn start<'scope>(scope: &'scope thread::Scope<'scope, '_>) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(CHUNKS);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        let (digest_tx, digest_rx) = mpsc::channel::<[u8; 32]>();
        for _ in 0..CHUNKS {
            // The receiver is alive in this function, so the send cannot fail.
            let _ = free_tx.send(vec![0u8; CHUNK_LEN]);
        }
        scope.spawn(move || {
            let mut hasher = blake2::Blake2b256::new();
            for job in jobs_rx {
                let sent = match job {
                    Job::Data(buf, len) => {
                        hasher.update(&buf[..len]);
                        free_tx.send(buf).is_ok()
                    }
                    Job::Finish => digest_tx.send(hasher.finalize_reset().into()).is_ok(),
                };
                if !sent {
                    break;
                }
            }
        });
        Self {
            jobs: jobs_tx,
            free: free_rx,
            digests: digest_rx,
        }
    }

    /// Reads the entry to its end; returns its length and BLAKE2b-256.
    fn hash_entry<R: Read>(&mut self, entry: &mut ResourceEntry<'_, R>) -> Result<(u64, [u8; 32])> {
        let mut total = 0u64;
        loop {
            let mut buf = self.free.recv().map_err(|_| hasher_gone())?;
            let n = entry.read_chunk(&mut buf)?;
            if n == 0 {
                // Keep the buffer in circulation.
                self.jobs
                    .send(Job::Data(buf, 0))
                    .map_err(|_| hasher_gone())?;
                break;
            }
            total += n as u64;
            self.jobs
                .send(Job::Data(buf, n))
                .map_err(|_| hasher_gone())?;
        }
        self.jobs.send(Job::Finish).map_err(|_| hasher_gone())?;
        let digest = self.digests.recv().map_err(|_| hasher_gone())?;
        Ok((total, digest))
    }
}

fn hasher_gone() -> Error {
    Error::Io(std::io::Error::other(
        "the hashing thread stopped unexpectedly",
    ))
}
