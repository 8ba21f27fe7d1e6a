//! The fwup firmware format: read, verify, create, sign and apply `.fw` archives,
//! compatible with the C [`fwup`](https://github.com/fwup-home/fwup) tool (version 1.16.0).
//!
//! A `.fw` file is a ZIP archive read strictly front to back: an optional 64-byte Ed25519
//! signature entry `meta.conf.ed25519`, then `meta.conf` (the firmware's description, in
//! fwup's libconfuse syntax), then one entry per resource. The signature covers the exact
//! bytes of `meta.conf`; `meta.conf` carries a BLAKE2b-256 of every resource, checked as the
//! data streams past.
//!
//! This crate does no network I/O and reads no clock: inputs are `Read`/`Seek` values and
//! byte slices, and anything time- or environment-dependent (apply-time variables) is passed
//! in by the caller.
//!
//! # Crate features
//!
//! Both features are on by default. With neither, the crate still reads, verifies and
//! prints archives ([`verify`], [`ArchiveReader`], [`SeekableArchive`], [`MetaConf`]) and
//! parses keys.
//!
//! - **`create`**: fwup.conf parsing, [`create`] / [`create_file`], [`sign`] /
//!   [`sign_file`], [`PrivateKey::generate`] and [`sparse_file_supported`]. Brings in
//!   `getrandom`, `tempfile` and (on Unix) `rustix`.
//! - **`apply`**: the apply engine (`apply`, targets, hosts), FAT, MBR/GPT writing,
//!   `raw_write` decryption and U-Boot environments. Brings in `aes`, `cbc`, `xts-mode` and
//!   (on Unix) `rustix`.
#![forbid(unsafe_code)]

#[cfg(feature = "apply")]
mod apply;
mod archive;
mod civil;
#[cfg(feature = "create")]
mod create;
mod delta;
mod error;
mod keys;
mod metaconf;
#[cfg(any(feature = "create", feature = "apply"))]
mod partition;
mod seekable;
#[cfg(feature = "create")]
mod sign;
mod uuid;
mod verify;
mod zip;

#[cfg(feature = "apply")]
pub use apply::{
    ApplyEvents, ApplyOptions, ApplyReport, BlockCache, FileTarget, Host, HostSink,
    MAX_UBOOT_ENV_SIZE, MemoryTarget, PercentScale, Progress, SEGMENT_SIZE, SystemHost, Target,
    UbootEnv, UbootEnvLocation, apply, apply_with_host, encode_uboot_env, parse_uboot_env,
    read_uboot_env, write_uboot_env,
};
pub use archive::{
    ArchiveHead, ArchiveReader, FirmwareInfo, META_CONF_MAX_LEN, META_CONF_MIN_LEN, ResourceEntry,
    SignatureStatus,
};
#[cfg(feature = "create")]
pub use create::{
    CreateOptions, CreationTime, DEFAULT_COMPRESSION_LEVEL, PreparedFirmware, create, create_file,
    sparse_file_supported,
};
pub use error::{
    ApplyError, ArchiveError, CreateError, DeltaError, Error, FatError, KeyError, MetaConfError,
    PartitionError, Result, SignatureError, UbootEnvError, ZipError,
};
pub use keys::{
    MAX_PUBLIC_KEYS, PRIVATE_KEY_LEN, PUBLIC_KEY_LEN, PrivateKey, PublicKey, SEED_LEN,
    SIGNATURE_LEN,
};
pub use seekable::{SeekableArchive, SeekableResource};
#[cfg(feature = "create")]
pub use sign::{sign, sign_file};
pub use uuid::FirmwareUuid;
pub use verify::{VerifiedArchive, verify, verify_with_limit};

/// The fwup version whose behaviour this crate implements. Archives that say
/// `require-fwup-version` with a newer version are refused, as fwup 1.16.0 refuses them.
pub const FWUP_VERSION: &str = "1.16.0";
pub use delta::MAX_WINDOW as MAX_DELTA_WINDOW;
pub use metaconf::{
    FunctionCall, Gpt, GptPartition, Mbr, MbrOsii, MbrPartition, MetaConf, Metadata, OnResource,
    Resource, Task, UbootEnvironment, Variables,
};

/// The entry points of the fuzz targets under `fuzz/` (and of the tests that replay their
/// corpora): each takes arbitrary bytes and must not panic. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    #[cfg(feature = "apply")]
    pub use crate::apply::{fuzz_apply, fuzz_fat, fuzz_uboot_env};
    #[cfg(feature = "create")]
    pub use crate::create::fuzz_fwup_conf;
    pub use crate::delta::fuzz_delta;
    pub use crate::zip::fuzz_zip_stream;
}
