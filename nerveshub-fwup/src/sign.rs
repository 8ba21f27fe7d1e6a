//! Re-signing an existing archive (`fwup -S`).
//!
//! As fwup does: any old signature is dropped, meta.conf keeps its exact bytes (so the UUID
//! is unchanged) and gets a new signature and the caller's creation time as its mtime, and
//! every other entry is copied in order, re-deflated at level 9. With the same
//! `SOURCE_DATE_EPOCH`, `-S` on an unsigned archive gives the same layout as `-c -s`.
//!
//! Unlike fwup (which writes `<input>.tmp` and renames it), the output is written to a
//! temporary file beside the output, and nothing is left behind on failure.

use std::io::{Read, Write};
use std::path::Path;

use crate::archive::ArchiveReader;
use crate::create::{DEFAULT_COMPRESSION_LEVEL, ZipWriter, write_atomically, write_head};
use crate::keys::PrivateKey;
use crate::{ArchiveError, Error, Result};

/// Reads the archive from `input` and writes it, signed with `key`, to `out`.
/// `creation_time` (Unix seconds) becomes meta.conf's mtime.
pub fn sign<R: Read, W: Write>(
    input: R,
    out: W,
    key: &PrivateKey,
    creation_time: i64,
) -> Result<W> {
    let mut reader = ArchiveReader::open(input).map_err(|e| match e {
        Error::Archive(ArchiveError::MetaConfNotFirst) => {
            Error::Archive(ArchiveError::SignMetaConfNotFirst)
        }
        other => other,
    })?;
    let meta_conf = reader.head().meta_conf_bytes().to_vec();
    let mut zip = ZipWriter::new(out, DEFAULT_COMPRESSION_LEVEL);
    write_head(&mut zip, &meta_conf, Some(key), creation_time)?;
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(mut entry) = reader.next_resource()? {
        let name = match entry.name().strip_prefix('/') {
            Some(root) => root.to_owned(),
            None => format!("data/{}", entry.name()),
        };
        let size = entry.declared_size().unwrap_or(0);
        let mut w = zip.start_entry(&name, size, None, false)?;
        loop {
            let n = entry.read_chunk(&mut buf)?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n])?;
        }
        w.finish()?;
    }
    reader.finish()?;
    Ok(zip.finish()?)
}

/// `fwup -S -s KEY -i input -o output`: signs `input` into `output` through a temporary
/// file, so a failure leaves no partial output. `input` and `output` may be the same file.
pub fn sign_file(input: &Path, output: &Path, key: &PrivateKey, creation_time: i64) -> Result<()> {
    let file = std::fs::File::open(input)?;
    let reader = std::io::BufReader::with_capacity(64 * 1024, file);
    write_atomically(output, |out| {
        sign(reader, out, key, creation_time).map(drop)
    })
}
