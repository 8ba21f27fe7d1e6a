//! The kind for creating and signing archives.

use std::io;

/// Creating an archive from a fwup.conf failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The fwup.conf given to `-c` cannot be read; the operating-system error is the source.
    #[error("Error opening configuration file '{path}'")]
    ConfigOpen {
        /// The configuration file as named.
        path: String,
        /// Why it cannot be read.
        #[source]
        source: io::Error,
    },
    /// The fwup.conf does not parse, or one of fwup's create-time checks on it fails.
    /// `file:line: message` is what libconfuse prints on stderr.
    #[error("Error parsing configuration file '{path}'")]
    ConfigSyntax {
        /// The configuration file as named on the command line (`-` for stdin).
        path: String,
        /// 1-based line of the problem (0 when fwup names no line).
        line: u32,
        /// What is wrong.
        message: String,
    },
    /// A `host-path` of a `file-resource` cannot be opened; the operating-system error is
    /// the source.
    #[error("can't open path '{path}' in file-resource '{resource}'")]
    ResourceOpen {
        /// The path as written in the config.
        path: String,
        /// The resource title.
        resource: String,
        /// Why it cannot be opened.
        #[source]
        source: io::Error,
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
    /// A resource cannot be put into the archive: its title cannot be turned into an
    /// archive path, or it has no `host-path` (fwup's wording).
    #[error("{0}")]
    InvalidResource(String),
    /// `--sparse-check`: the file system at the path does not keep holes (or the test file
    /// could not be made), in fwup's words.
    #[error("{0}")]
    SparseCheck(String),
}
