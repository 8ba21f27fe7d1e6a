//! Reading a `.fw` archive front to back, the way fwup does: signature, meta.conf, resources.

use std::io::Read;

use crate::civil::CivilTime;
use crate::keys::{PublicKey, SIGNATURE_LEN};
use crate::metaconf::{MetaConf, Metadata, Variables, quote_value};
use crate::uuid::FirmwareUuid;
use crate::zip::{EntryInfo, ZipStreamReader, crate_error_into_io};
use crate::{ArchiveError, Error, Result, SignatureError, ZipError};

/// Name of the signature entry.
const SIGNATURE_ENTRY: &str = "meta.conf.ed25519";
/// Name of the description entry.
const META_CONF_ENTRY: &str = "meta.conf";
/// fwup reads at most this many bytes of meta.conf and refuses a meta.conf this long.
pub const META_CONF_MAX_LEN: usize = 50_000;
/// fwup refuses a meta.conf shorter than this.
pub const META_CONF_MIN_LEN: usize = 10;

/// Whether an archive's signature was checked, and how it came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureStatus {
    /// The archive carries no signature and none was required.
    Unsigned,
    /// The archive is signed but no public key was given, so the signature was not checked.
    Unverified,
    /// The signature verified with the public key at this index of the list given.
    Verified {
        /// Index into the key list passed to the check.
        key_index: usize,
    },
}

/// The front of an archive: its optional signature and the exact bytes of meta.conf.
///
/// This is all `fwup -m` and `fwup -l` look at; nothing here has been checked yet except
/// the sizes. Use [`ArchiveHead::check_signature`] before trusting it.
#[derive(Debug, Clone)]
pub struct ArchiveHead {
    signature: Option<[u8; SIGNATURE_LEN]>,
    meta_conf: Vec<u8>,
    modified: Option<i64>,
    uuid: FirmwareUuid,
}

impl ArchiveHead {
    /// The 64-byte Ed25519 signature over meta.conf, if the archive has one.
    pub fn signature(&self) -> Option<&[u8; SIGNATURE_LEN]> {
        self.signature.as_ref()
    }

    /// The exact bytes of meta.conf, as signed.
    pub fn meta_conf_bytes(&self) -> &[u8] {
        &self.meta_conf
    }

    /// The `meta-uuid`, derived from the meta.conf bytes.
    pub fn uuid(&self) -> FirmwareUuid {
        self.uuid
    }

    /// The modification time of the meta.conf entry in Unix seconds (UTC): fwup reports it
    /// as `meta-creation-date`. Taken from the ZIP `UT` extra field, else from the DOS
    /// time read as UTC (fwup reads the DOS time in the local time zone; we do not depend on
    /// the machine's time zone).
    pub fn creation_time(&self) -> Option<i64> {
        self.modified
    }

    /// Checks the signature against `keys` as fwup does when public keys are given: the
    /// archive must be signed ([`SignatureError::Missing`](crate::SignatureError::Missing)) and one key must verify it
    /// ([`SignatureError::Bad`](crate::SignatureError::Bad)). With no keys, reports whether a signature is present
    /// without checking it.
    pub fn check_signature(&self, keys: &[PublicKey]) -> Result<SignatureStatus> {
        match (&self.signature, keys.is_empty()) {
            (None, true) => Ok(SignatureStatus::Unsigned),
            (Some(_), true) => Ok(SignatureStatus::Unverified),
            (None, false) => Err(Error::Signature(SignatureError::Missing)),
            (Some(signature), false) => keys
                .iter()
                .position(|key| key.verify(&self.meta_conf, signature))
                .map(|key_index| SignatureStatus::Verified { key_index })
                .ok_or(Error::Signature(SignatureError::Bad)),
        }
    }

    /// Parses meta.conf as fwup does at read time: `${VAR}` references left in it (escaped
    /// at creation for apply time) are substituted from `vars`, with `FWUP_META_UUID` and
    /// `FWUP_META_NICKNAME` set to this archive's values.
    pub fn parse(&self, vars: &Variables) -> Result<MetaConf> {
        let mut vars = vars.clone();
        vars.set("FWUP_META_UUID", self.uuid.to_string());
        vars.set("FWUP_META_NICKNAME", self.uuid.nickname());
        MetaConf::parse(&self.meta_conf, &vars)
    }

    /// The metadata `fwup -m` prints, from an already parsed meta.conf of this archive.
    pub fn firmware_info(&self, meta_conf: &MetaConf) -> FirmwareInfo {
        FirmwareInfo {
            metadata: meta_conf.metadata().clone(),
            // Archives from fwup before 1.2.0 store the date in meta.conf; fwup prints
            // that one when present, else the meta.conf entry's mtime.
            creation_date: meta_conf
                .metadata()
                .creation_date
                .clone()
                .or_else(|| self.modified.map(format_utc_timestamp)),
            uuid: self.uuid,
        }
    }
}

/// A firmware's descriptive metadata: meta.conf's `meta-*` values plus what fwup derives
/// (creation date, UUID, nickname).
#[derive(Debug, Clone)]
pub struct FirmwareInfo {
    metadata: Metadata,
    creation_date: Option<String>,
    uuid: FirmwareUuid,
}

impl FirmwareInfo {
    /// The `meta-*` values from meta.conf.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// `meta-creation-date`, formatted `%Y-%m-%dT%H:%M:%SZ`.
    pub fn creation_date(&self) -> Option<&str> {
        self.creation_date.as_deref()
    }

    /// `meta-uuid`.
    pub fn uuid(&self) -> FirmwareUuid {
        self.uuid
    }

    /// Every set key with its value, in the order `fwup -m` prints them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let m = &self.metadata;
        let optional = [
            ("meta-product", &m.product),
            ("meta-description", &m.description),
            ("meta-version", &m.version),
            ("meta-author", &m.author),
            ("meta-platform", &m.platform),
            ("meta-architecture", &m.architecture),
            ("meta-creation-date", &self.creation_date),
            ("meta-fwup-version", &m.fwup_version),
            ("meta-misc", &m.misc),
            ("meta-vcs-identifier", &m.vcs_identifier),
        ];
        let mut pairs: Vec<(&'static str, String)> = optional
            .into_iter()
            .filter_map(|(key, value)| value.clone().map(|value| (key, value)))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        pairs.push(("meta-uuid", self.uuid.to_string()));
        pairs.push(("meta-nickname", self.uuid.nickname()));
        pairs
    }

    /// The value of one key (`fwup -m --metadata-key KEY`), unquoted.
    pub fn get(&self, key: &str) -> Option<String> {
        self.pairs()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The text `fwup -m` prints: one `key=value` line per set key, values quoted as fwup
    /// quotes them.
    pub fn to_fwup_text(&self) -> String {
        let mut text = String::new();
        for (key, value) in self.pairs() {
            text.push_str(key);
            text.push('=');
            text.push_str(&quote_value(&value));
            text.push('\n');
        }
        text
    }
}

/// Reads a `.fw` archive strictly front to back from any [`Read`], never holding more than
/// meta.conf and a fixed-size buffer in memory.
///
/// [`ArchiveReader::open`] reads the signature and meta.conf; [`ArchiveReader::next_resource`]
/// then yields each resource entry in archive order, and [`ArchiveReader::finish`] checks the
/// end of the archive. Nothing is verified by this type alone: [`crate::verify`] does that.
#[derive(Debug)]
pub struct ArchiveReader<R: Read> {
    zip: ZipStreamReader<R>,
    head: ArchiveHead,
}

impl<R: Read> ArchiveReader<R> {
    /// Reads the archive head: an optional 64-byte `meta.conf.ed25519`, then `meta.conf`.
    pub fn open(input: R) -> Result<Self> {
        let mut zip = ZipStreamReader::new(input);
        let head = read_head(&mut zip)?;
        Ok(Self { zip, head })
    }

    /// The signature and meta.conf.
    pub fn head(&self) -> &ArchiveHead {
        &self.head
    }

    /// Gives up the reader, keeping the head.
    pub fn into_head(self) -> ArchiveHead {
        self.head
    }

    /// Bytes consumed from the input so far.
    pub fn position(&self) -> u64 {
        self.zip.position()
    }

    /// Bounds the bytes all remaining entries together may inflate to: past `limit` reading
    /// fails with [`ZipError::InflateLimit`](crate::ZipError::InflateLimit) after inflating at most one byte more. A
    /// caller that knows what the archive should hold (the sum of meta.conf's resource
    /// lengths) bounds the CPU a zip bomb can cost.
    pub fn set_inflate_budget(&mut self, limit: u64) {
        self.zip.set_inflate_budget(limit);
    }

    /// Moves to the next resource entry, skipping whatever of the current one was not read:
    /// a deflated entry of known size is skipped unread, as libarchive skips it for fwup;
    /// other entries are read to their end and CRC-checked. Entry names map to resource names as fwup maps them: `data/X` is
    /// resource `X`, any other name `Y` is resource `/Y`, and a `data/` directory entry is
    /// skipped. `Ok(None)` when the entries are over.
    pub fn next_resource(&mut self) -> Result<Option<ResourceEntry<'_, R>>> {
        loop {
            let Some(info) = self.zip.next_entry()? else {
                return Ok(None);
            };
            let name = resource_name(&info.name);
            if name.is_empty() {
                continue;
            }
            return Ok(Some(ResourceEntry {
                zip: &mut self.zip,
                name,
                info,
            }));
        }
    }

    /// Checks the end of the archive after the last entry: its central directory and end
    /// record must be there (fwup: `Truncated ZIP end-of-file record`).
    pub fn finish(self) -> Result<ArchiveHead> {
        self.zip.finish()?;
        Ok(self.head)
    }
}

/// One resource entry of an archive being streamed. Read its data with
/// [`ResourceEntry::read_chunk`] (or [`Read`]); the CRC-32 is checked at its end.
#[derive(Debug)]
pub struct ResourceEntry<'a, R: Read> {
    zip: &'a mut ZipStreamReader<R>,
    name: String,
    info: EntryInfo,
}

impl<R: Read> ResourceEntry<'_, R> {
    /// The resource name, as meta.conf's `file-resource` titles it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The uncompressed size the ZIP headers declare, when they declare one.
    pub fn declared_size(&self) -> Option<u64> {
        self.info.uncompressed_size
    }

    /// Makes reading fail with [`ZipError::InflateLimit`](crate::ZipError::InflateLimit) once the entry produced more
    /// than `limit` bytes, inflating at most one byte past it (meta.conf's length for a
    /// resource: a zip bomb declaring 4 KiB costs 4 KiB of inflating).
    pub fn limit_len(&mut self, limit: u64) {
        self.zip.limit_current(limit);
    }

    /// Reads the next decompressed bytes; `Ok(0)` at the end of the entry.
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.zip.read(buf)
    }
}

impl<R: Read> Read for ResourceEntry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read_chunk(buf).map_err(crate_error_into_io)
    }
}

/// Maps an entry name to a resource name as fwup does.
pub(crate) fn resource_name(entry: &str) -> String {
    match entry.strip_prefix("data/") {
        Some(rest) => rest.to_owned(),
        None => format!("/{entry}"),
    }
}

/// The two ways of walking an archive's entries (front to back, or through the central
/// directory) as far as reading its head needs them.
pub(crate) trait EntrySource {
    /// Moves to the next entry; `Ok(None)` when there are no more.
    fn next_entry(&mut self) -> Result<Option<EntryInfo>>;
    /// Reads the current entry's data, but at most `limit` bytes of it.
    fn read_current(&mut self, limit: usize) -> Result<Vec<u8>>;
}

impl<R: Read> EntrySource for ZipStreamReader<R> {
    fn next_entry(&mut self) -> Result<Option<EntryInfo>> {
        ZipStreamReader::next_entry(self)
    }

    fn read_current(&mut self, limit: usize) -> Result<Vec<u8>> {
        read_bounded(|buf| self.read(buf), limit)
    }
}

/// Reads the head with fwup's entry rules: an optional 64-byte signature entry first, then
/// meta.conf, whose size must be at least 10 and under 50 000 bytes.
pub(crate) fn read_head(source: &mut impl EntrySource) -> Result<ArchiveHead> {
    let Some(mut entry) = source.next_entry()? else {
        return Err(Error::Archive(ArchiveError::MetaConfNotFirst));
    };
    let mut signature = None;
    if entry.name == SIGNATURE_ENTRY {
        let bytes = source.read_current(SIGNATURE_LEN + 1)?;
        let sig: [u8; SIGNATURE_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::Archive(ArchiveError::BadSignatureSize(bytes.len() as u64)))?;
        signature = Some(sig);
        entry = match source.next_entry() {
            Ok(Some(next)) => next,
            Ok(None) | Err(Error::Zip(ZipError::Truncated { .. })) => {
                return Err(Error::Archive(ArchiveError::NothingAfterSignature));
            }
            Err(other) => return Err(other),
        };
    }
    if entry.name != META_CONF_ENTRY {
        return Err(Error::Archive(ArchiveError::MetaConfNotFirst));
    }
    let meta_conf = source.read_current(META_CONF_MAX_LEN)?;
    if !(META_CONF_MIN_LEN..META_CONF_MAX_LEN).contains(&meta_conf.len()) {
        return Err(Error::Archive(ArchiveError::BadMetaConfSize(
            meta_conf.len() as u64,
        )));
    }
    Ok(ArchiveHead {
        uuid: FirmwareUuid::from_meta_conf(&meta_conf),
        signature,
        meta_conf,
        modified: entry.modified,
    })
}

/// Fills a buffer from `read` until it returns 0 or `limit` bytes have come.
pub(crate) fn read_bounded(
    mut read: impl FnMut(&mut [u8]) -> Result<usize>,
    limit: usize,
) -> Result<Vec<u8>> {
    let mut out = vec![0u8; limit];
    let mut filled = 0;
    while filled < limit {
        let n = read(&mut out[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    out.truncate(filled);
    Ok(out)
}

/// Formats Unix seconds as `%Y-%m-%dT%H:%M:%SZ` (proleptic Gregorian calendar, UTC).
fn format_utc_timestamp(unix: i64) -> String {
    let t = CivilTime::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_strftime() {
        assert_eq!(format_utc_timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc_timestamp(315_532_800), "1980-01-01T00:00:00Z");
    }

    #[test]
    fn entry_names_map_like_fwup() {
        assert_eq!(resource_name("data/rootfs.img"), "rootfs.img");
        assert_eq!(resource_name("extra.txt"), "/extra.txt");
        assert_eq!(resource_name("data/"), "");
        assert_eq!(resource_name("meta.conf.ed25519"), "/meta.conf.ed25519");
    }
}
