//! The one error type of this crate.
//!
//! Messages follow C fwup's wording where fwup has one (the `fwup-rs` binary prints
//! `fwup: <message>` exactly as fwup does), so scripts that match on fwup's output keep
//! working. Each failure class is its own variant so callers can tell them apart without
//! looking at the text.

use std::io;

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, verifying, creating or applying a `.fw` archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the archive or writing a destination failed at the operating-system level.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    // ---- ZIP container -------------------------------------------------------------------
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
    /// A ZIP structure has an invalid field (bad signature, inconsistent sizes, …).
    #[error("Malformed ZIP archive: {0}")]
    MalformedZip(String),
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
    UnsupportedZip {
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

    // ---- fwup archive layout -------------------------------------------------------------
    /// The first entry (after an optional signature) is not `meta.conf`.
    #[error("Expecting meta.conf to be at the beginning of the archive")]
    MetaConfNotFirst,
    /// The archive holds a signature entry and nothing readable after it.
    #[error("Expecting more than meta.conf.ed25519 in archive")]
    NothingAfterSignature,
    /// The `meta.conf.ed25519` entry is not exactly 64 bytes.
    #[error("Unexpected meta.conf.ed25519 size: {0}")]
    BadSignatureSize(u64),
    /// `meta.conf` is shorter than 10 or at least 50 000 bytes.
    #[error("Unexpected meta.conf size: {0}")]
    BadMetaConfSize(u64),

    // ---- signatures and keys -------------------------------------------------------------
    /// Public keys were given but the archive carries no signature.
    #[error("Expecting signed firmware archive.")]
    MissingSignature,
    /// The signature does not verify with any of the given public keys.
    #[error("Firmware archive's meta.conf fails digital signature verification.")]
    BadSignature,
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

    // ---- meta.conf -----------------------------------------------------------------------
    /// `meta.conf` does not parse (syntax error, unknown section, bad value, …).
    #[error("Unexpected error parsing meta.conf: line {line}: {message}")]
    MetaConfSyntax {
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
    /// A `file-resource` has no valid `blake2b-256`.
    #[error("invalid blake2b-256 hash for '{0}'")]
    InvalidResourceHash(String),

    // ---- resources -----------------------------------------------------------------------
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
    /// An entry's size differs from meta.conf's and its `on-resource` names no delta source.
    #[error(
        "File '{name}' isn't expected size ({size} vs {expected}) and xdelta3 patch support not enabled on it. (Add delta-source-raw-offset / delta-source-raw-count or delta-source-fat-offset / delta-source-fat-path)"
    )]
    DeltaNotEnabled {
        /// Resource name.
        name: String,
        /// Size of the entry in the archive.
        size: u64,
        /// Length meta.conf declares.
        expected: u64,
    },
    /// A delta (VCDIFF) resource is malformed, or does not fit its source.
    #[error("xdelta3 error: {0}")]
    BadDelta(String),
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

    // ---- apply ---------------------------------------------------------------------------
    /// A read or write reaches past the known end of the destination.
    #[error("read/write failed at offset {offset} since past end of media ({size}).")]
    PastEndOfMedia {
        /// Byte offset of the access.
        offset: u64,
        /// Length of the access in bytes.
        len: u64,
        /// Size of the destination in bytes.
        size: u64,
    },
    /// The selected task calls a function this version of fwup does not know.
    #[error("Unknown function")]
    UnknownFunction(String),
    /// No task matches the `-t` prefix with all its requirements met.
    #[error(
        "Couldn't find applicable task '{0}'. If task is available, the task's requirements may not be met."
    )]
    NoApplicableTask(String),
    /// The task called `error("message")`.
    #[error("{0}")]
    TaskError(String),
    /// A resource's data did not match its `blake2b-256` (or its length) while a function
    /// streamed it.
    #[error("{function} detected blake2b mismatch on '{resource}'")]
    ApplyHashMismatch {
        /// The function that consumed the data (`raw_write`, `path_write`, …).
        function: String,
        /// The resource name.
        resource: String,
    },
    /// A second data-consuming function in one `on-resource` found no data left.
    #[error("{0} didn't write anything and was likely called twice")]
    ResourceAlreadyConsumed(String),
    /// A host-side function (`path_write`, `pipe_write`, `execute`, …) without `--unsafe`.
    #[error("{0} requires --unsafe")]
    RequiresUnsafe(String),
    /// A function or resource kind this version of the apply engine does not implement.
    #[error("{function}: {what} is not supported by this version of fwup-rs")]
    ApplyNotSupported {
        /// The function or option.
        function: String,
        /// What is missing.
        what: &'static str,
    },
    /// A function of the task failed (bad argument, missing section, failed command, …).
    #[error("{function}: {message}")]
    FunctionFailed {
        /// The function name.
        function: String,
        /// What went wrong.
        message: String,
    },
    /// The caller vetoed the apply before `on-finish` ran.
    #[error("apply vetoed before on-finish: {0}")]
    Vetoed(String),

    // ---- create and sign -----------------------------------------------------------------
    /// The fwup.conf given to `-c` cannot be opened.
    #[error("Error opening configuration file '{0}'")]
    ConfigOpen(String),
    /// The fwup.conf does not parse, or one of fwup's create-time checks on it fails.
    /// `file:line: message` is what libconfuse prints on stderr.
    #[error("Error parsing configuration file '{path}'")]
    ConfigSyntax {
        /// The configuration file as named on the command line (`-` for stdin).
        path: String,
        /// 1-based line of the problem.
        line: u32,
        /// What is wrong.
        message: String,
    },
    /// A `host-path` of a `file-resource` cannot be opened or read.
    #[error("can't open path '{path}' in file-resource '{resource}'")]
    ResourceOpen {
        /// The path as written in the config.
        path: String,
        /// The resource title.
        resource: String,
    },
    /// `assert-size-lte` / `assert-size-gte` failed.
    #[error(
        "file size assertion failed on '{path}'. Size is {size} bytes. It must be {op} {limit} bytes ({blocks} blocks)"
    )]
    AssertSize {
        /// The `host-path` as written.
        path: String,
        /// The resource's full size, holes included.
        size: u64,
        /// `<=` or `>=`.
        op: &'static str,
        /// The limit in bytes.
        limit: i64,
        /// The limit in 512-byte blocks.
        blocks: i64,
    },
    /// A resource title cannot be turned into an archive path (fwup's wording).
    #[error("{0}")]
    InvalidResourceName(String),
    /// `--sparse-check`: the file system at the path does not keep holes (or the test file
    /// could not be made), in fwup's words.
    #[error("{0}")]
    SparseCheck(String),
    /// A private key is not 64 bytes (seed and public key) of base64 or raw binary.
    #[error("Error reading or decoding private key from {origin}")]
    InvalidPrivateKey {
        /// Where the key came from (a file name or "argument").
        origin: String,
    },
    /// `-g` would overwrite an existing key file.
    #[error("Couldn't create '{0}': File exists")]
    KeyFileExists(String),
    /// The operating system's random number generator failed.
    #[error("Could not get enough random bytes")]
    Random,
    /// `-S` was given an archive without meta.conf where fwup expects it.
    #[error("Invalid firmware. meta.conf must be at the beginning of archive")]
    SignMetaConfNotFirst,

    // ---- partitions and U-Boot environment ---------------------------------------------
    /// An `mbr` or `gpt` section cannot be turned into a partition table (bad partition
    /// number, offset, count, type or GUID, overlapping partitions, bad bootstrap code). The
    /// text is fwup's.
    #[error("{0}")]
    PartitionTable(String),
    /// A `uboot-environment` section (or location) is unusable: block count outside
    /// 1–65534, an offset that does not fit.
    #[error("{0}")]
    UbootEnvConfig(String),
    /// The CRC-32 stored in a U-Boot environment does not match its data area.
    #[error(
        "U-boot environment (block {block}) CRC32 mismatch (expected 0x{expected:08x}; got 0x{actual:08x})"
    )]
    UbootEnvCrc {
        /// Block offset of the (primary) environment, 0 when parsing bytes without a location.
        block: u64,
        /// The CRC-32 stored in the environment.
        expected: u32,
        /// The CRC-32 of the data area.
        actual: u32,
    },
    /// The CRC matches but the `name=value` list is malformed (a name without `=`, a value
    /// without its terminating NUL).
    #[error("Invalid U-boot environment")]
    UbootEnvInvalid,
    /// The variables do not fit into the environment.
    #[error("Not enough room in U-boot environment")]
    UbootEnvFull,

    // ---- FAT ----
    /// A FAT filesystem operation failed. The text is fwup's: the operation, the path and
    /// FatFs's description of the failure.
    #[error("{context}({path}): {reason}")]
    Fat {
        /// The operation (`fat_mkdir`, `fat_write can't open file`, …).
        context: String,
        /// The path (or label) it was given; empty when fwup prints none.
        path: String,
        /// FatFs's result, as fwup words it.
        reason: &'static str,
    },
}
