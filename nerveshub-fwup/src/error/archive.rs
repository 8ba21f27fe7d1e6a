//! Kinds for reading an archive: the ZIP container, fwup's layout, signatures, keys and
//! meta.conf.

/// The ZIP container is unreadable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZipError {
    /// The input does not start with a ZIP local file header (garbage or an empty file).
    #[error("Unrecognized archive format")]
    NotAZip,
    /// The input ended in the middle of a ZIP structure or of an entry's data.
    #[error("Truncated ZIP file: {context}")]
    Truncated {
        /// What was being read when the input ended.
        context: &'static str,
    },
    /// The archive's entries are intact but its central directory / end record is missing.
    #[error("Truncated ZIP end-of-file record")]
    MissingEndOfCentralDirectory,
    /// A ZIP structure has an invalid field (bad signature, inconsistent sizes, …); the text
    /// says which.
    #[error("Malformed ZIP archive: {0}")]
    Malformed(String),
    /// An entry inflates to more than it may: the uncompressed size its ZIP header declares,
    /// the length meta.conf declares, or what is left of the archive's inflate budget.
    /// Inflating stops one byte past the limit, so a zip bomb fails fast.
    #[error("'{entry}' inflates to more than {limit} bytes")]
    InflateLimit {
        /// The entry name.
        entry: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// An entry uses a ZIP feature fwup archives never use (encryption, an unknown method, …).
    #[error("Unsupported ZIP feature in '{entry}': {feature}")]
    Unsupported {
        /// The entry name.
        entry: String,
        /// What is unsupported.
        feature: String,
    },
    /// The deflate stream of an entry is corrupt.
    #[error("ZIP decompression failed for '{entry}'")]
    Decompress {
        /// The entry name.
        entry: String,
    },
    /// An entry's data does not match the CRC-32 recorded for it.
    #[error("ZIP bad CRC: 0x{actual:x} should be 0x{expected:x}")]
    BadCrc {
        /// The entry name.
        entry: String,
        /// CRC-32 recorded in the archive.
        expected: u32,
        /// CRC-32 of the data actually read.
        actual: u32,
    },
    /// An entry name is longer than fwup's limit of 512 bytes.
    #[error("ZIP entry name too long ({len} bytes)")]
    EntryNameTooLong {
        /// Length of the name in bytes.
        len: usize,
    },
}

/// The archive's entries are not laid out as fwup expects, or a resource's data does not
/// match what meta.conf says of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The first entry (after an optional signature) is not `meta.conf`.
    #[error("Expecting meta.conf to be at the beginning of the archive")]
    MetaConfNotFirst,
    /// `-S` was given an archive without meta.conf where fwup expects it (fwup's wording
    /// for signing differs from reading's).
    #[error("Invalid firmware. meta.conf must be at the beginning of archive")]
    SignMetaConfNotFirst,
    /// The archive holds a signature entry and nothing readable after it.
    #[error("Expecting more than meta.conf.ed25519 in archive")]
    NothingAfterSignature,
    /// The `meta.conf.ed25519` entry is not exactly 64 bytes.
    #[error("Unexpected meta.conf.ed25519 size: {0}")]
    BadSignatureSize(u64),
    /// `meta.conf` is shorter than 10 or at least 50 000 bytes.
    #[error("Unexpected meta.conf size: {0}")]
    BadMetaConfSize(u64),
    /// A `file-resource` has no valid `blake2b-256`.
    #[error("invalid blake2b-256 hash for '{0}'")]
    InvalidResourceHash(String),
    /// An archive entry names no `file-resource` of meta.conf.
    #[error("Can't find file-resource for {0}")]
    UnknownResource(String),
    /// An archive entry appears twice.
    #[error("Processing {0} twice. Archive is corrupt.")]
    DuplicateResource(String),
    /// A declared resource has no entry in the archive.
    #[error("Resource {0} not found in archive")]
    MissingResource(String),
    /// A resource's size differs from the length meta.conf declares.
    #[error("ZIP data length mismatch for {name}: expected {expected} bytes, got {actual}")]
    ResourceLengthMismatch {
        /// Resource name.
        name: String,
        /// Length from meta.conf (sum of data runs).
        expected: u64,
        /// Length found in the archive.
        actual: u64,
    },
    /// A resource's data goes on past the length meta.conf declares (reading stopped one
    /// byte after it).
    #[error("ZIP data length mismatch for {name}: expected {expected} bytes, got more")]
    ResourceTooLong {
        /// Resource name.
        name: String,
        /// Length from meta.conf (sum of data runs).
        expected: u64,
    },
    /// A resource's BLAKE2b-256 differs from meta.conf's.
    #[error("Detected blake2b digest mismatch for {0}")]
    ResourceHashMismatch(String),
}

/// The archive's signature is missing or wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Public keys were given but the archive carries no signature.
    #[error("Expecting signed firmware archive.")]
    Missing,
    /// The signature does not verify with any of the given public keys.
    #[error("Firmware archive's meta.conf fails digital signature verification.")]
    Bad,
}

/// A public or private key is unusable, or none could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A public key is not 32 bytes of base64 (or raw binary) as fwup writes them.
    #[error("Error reading or decoding public key from {origin}")]
    InvalidPublicKey {
        /// Where the key came from (a file name or "argument").
        origin: String,
    },
    /// More than fwup's maximum of 10 public keys were given.
    #[error("Too many public keys (at most {max})")]
    TooManyKeys {
        /// The maximum.
        max: usize,
    },
    /// A private key is not 64 bytes (seed and public key) of base64 or raw binary.
    #[error("Error reading or decoding private key from {origin}")]
    InvalidPrivateKey {
        /// Where the key came from (a file name or "argument").
        origin: String,
    },
    /// The operating system's random number generator failed while generating a key.
    #[cfg(feature = "create")]
    #[error("Could not get enough random bytes")]
    Random(#[source] getrandom::Error),
}

/// `meta.conf` does not parse, or asks for something fwup refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaConfError {
    /// A syntax error, unknown section or option, or bad value.
    #[error("Unexpected error parsing meta.conf: line {line}: {message}")]
    Syntax {
        /// 1-based line of the problem.
        line: u32,
        /// What is wrong, as fwup's config library would say it.
        message: String,
    },
    /// The archive requires a newer fwup than the one this crate implements.
    #[error("fwup version '{required}' required. This is fwup version '{implemented}'.")]
    RequiresNewerFwup {
        /// The version the archive asks for.
        required: String,
        /// The fwup version this crate implements.
        implemented: &'static str,
    },
    /// `meta.conf` tries to set a value fwup computes itself.
    #[error(
        "meta.conf isn't allowed to change 'meta-uuid', 'meta-nickname', '$FWUP_META_UUID' or '$FWUP_META_NICKNAME'"
    )]
    ReservedMetadata,
}
