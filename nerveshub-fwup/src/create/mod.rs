//! Creating `.fw` archives from a fwup.conf, as `fwup -c` does.
//!
//! Steps, in fwup's order: parse the config ([`conf`]: `define…`, `include`, variables,
//! `FWUP_SIZE_*`, create-time checks), compute every resource's length (sparse map) and
//! BLAKE2b-256, print meta.conf exactly as fwup's `cfgprint` does (so `meta-uuid` equals
//! fwup's), then write the archive: the stored 64-byte `meta.conf.ed25519` first when
//! signing, `meta.conf` with its mtime set to the caller's creation time, then one deflated
//! entry per `file-resource` in config order (`data/<name>`, or `<name>` at the archive root
//! for titles starting with `/`). `assert-size-*` is checked as each resource is added.
//!
//! Unlike fwup, a failed [`create_file`] leaves **no partial output**: the archive is
//! written to a temporary file beside the output and renamed into place only when complete
//! (fwup leaves an archive holding just meta.conf behind, research §8.2).
//!
//! Nothing here reads the clock or the environment: the creation time
//! (`SOURCE_DATE_EPOCH` or now) and the variables are the caller's.

mod conf;
mod eval;
mod sparse;
mod validate;
mod zipwrite;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use blake2::digest::Digest as _;

use crate::keys::PrivateKey;
use crate::metaconf::{MetaConf, Resource, Variables, print_meta_conf};
use crate::{CreateError, Error, MetaConfError, Result};

pub use sparse::sparse_file_supported;
pub(crate) use zipwrite::ZipWriter;

/// The deflate level fwup uses when none is given (`-9`).
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 9;

/// Everything `fwup -c` takes besides the config and the output.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Deflate level 1–9 (`-1`…`-9`; default 9).
    pub compression_level: u32,
    /// Sign meta.conf with this key (`-s` / `--private-key`).
    pub signing_key: Option<PrivateKey>,
    /// The variables fwup would see in its environment (`${VAR}` and `define` defaults).
    pub env: Variables,
    /// The meta.conf entry's mtime, as Unix seconds (`SOURCE_DATE_EPOCH`, else now).
    pub creation_time: i64,
    /// The directory relative `FWUP_SIZE_*` stats and `bootstrap-code-host-path` resolve
    /// against (fwup: the process's current directory).
    pub working_dir: PathBuf,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            signing_key: None,
            env: Variables::new(),
            creation_time: 0,
            working_dir: PathBuf::from("."),
        }
    }
}

/// When an archive is created, by fwup's rules (`get_creation_timestamp`): the meta.conf
/// entry's mtime, which readers show as `meta-creation-date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreationTime {
    /// Unix seconds.
    pub unix: i64,
    /// `NOW` was set but not as `YYYY-MM-DDTHH:MM:SSZ`, so the clock was used (fwup says
    /// so in verbose mode).
    pub now_ignored: bool,
}

impl CreationTime {
    /// `SOURCE_DATE_EPOCH` when set (read as C's `strtoul(…, 0)`: a numeric prefix,
    /// decimal, `0x` hex or `0` octal), else `NOW` when it parses as fwup's
    /// `%Y-%m-%dT%H:%M:%SZ` (trailing text ignored), else `clock`. The caller passes the
    /// variables and the clock; nothing is read here.
    pub fn from_env(source_date_epoch: Option<&str>, now: Option<&str>, clock: i64) -> Self {
        if let Some(epoch) = source_date_epoch {
            // time_t from an unsigned long: modulo 2⁶⁴, as in C.
            let unix = crate::metaconf::strtoul(epoch).value as i64;
            return Self {
                unix,
                now_ignored: false,
            };
        }
        match now.map(crate::civil::parse_now) {
            Some(Some(unix)) => Self {
                unix,
                now_ignored: false,
            },
            Some(None) => Self {
                unix: clock,
                now_ignored: true,
            },
            None => Self {
                unix: clock,
                now_ignored: false,
            },
        }
    }
}

/// A parsed fwup.conf with every resource measured and hashed: what the archive is made
/// from.
#[derive(Debug, Clone)]
pub struct PreparedFirmware {
    conf: MetaConf,
    meta_conf: String,
    /// Per resource: where its data comes from.
    sources: Vec<Source>,
}

#[derive(Debug, Clone)]
enum Source {
    Files {
        written: String,
        paths: Vec<PathBuf>,
        map: sparse::SparseMap,
    },
    Contents(String),
}

impl PreparedFirmware {
    /// Parses the fwup.conf `text`, read from `config_path` (includes and host paths are
    /// relative to the file they are written in), and hashes every resource.
    pub fn prepare(text: &[u8], config_path: &Path, options: &CreateOptions) -> Result<Self> {
        let (mut conf, files) = conf::parse(text, config_path, &options.env, &options.working_dir)?;
        let mut sources = Vec::with_capacity(conf.resources.len());
        for (i, r) in conf.resources.iter_mut().enumerate() {
            sources.push(measure(
                r,
                files.get(i).map_or(config_path, PathBuf::as_path),
            )?);
        }
        let meta_conf = print_meta_conf(&conf);
        Ok(Self {
            conf,
            meta_conf,
            sources,
        })
    }

    /// The meta.conf text that goes into the archive.
    pub fn meta_conf(&self) -> &str {
        &self.meta_conf
    }

    /// The parsed configuration.
    pub fn conf(&self) -> &MetaConf {
        &self.conf
    }

    /// Writes the archive to `out` and returns it.
    pub fn write<W: Write>(&self, out: W, options: &CreateOptions) -> Result<W> {
        let mut zip = ZipWriter::new(out, options.compression_level);
        write_head(
            &mut zip,
            self.meta_conf.as_bytes(),
            options.signing_key.as_ref(),
            options.creation_time,
        )?;
        for (r, source) in self.conf.resources.iter().zip(&self.sources) {
            match source {
                Source::Files {
                    written,
                    paths,
                    map,
                } => {
                    check_assertions(r, written, map.total_len())?;
                    let name = archive_path(&r.name)?;
                    let mut entry = zip.start_entry(&name, map.data_len(), None, false)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    for (path, regions) in paths.iter().zip(&map.data) {
                        let mut file =
                            File::open(path).map_err(|source| CreateError::ResourceOpen {
                                path: written.clone(),
                                resource: r.name.clone(),
                                source,
                            })?;
                        for &(offset, len) in regions {
                            file.seek(SeekFrom::Start(offset))?;
                            copy_exact(&mut file, len, &mut buf, |chunk| {
                                entry.write_all(chunk).map_err(Error::from)
                            })?;
                        }
                    }
                    entry.finish()?;
                }
                Source::Contents(text) => {
                    let name = archive_path(&r.name)?;
                    let mut entry = zip.start_entry(&name, text.len() as u64, None, false)?;
                    entry.write_all(text.as_bytes())?;
                    entry.finish()?;
                }
            }
        }
        Ok(zip.finish()?)
    }
}

/// Reads exactly `len` bytes from `file` in chunks, handing each to `f`.
fn copy_exact(
    file: &mut File,
    len: u64,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "resource file shrank while creating the archive",
            )));
        }
        f(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Builds the sparse map and hash of one resource and records them in the model.
/// `section_file` is the config file its `file-resource` section is in.
fn measure(r: &mut Resource, section_file: &Path) -> Result<Source> {
    let mut hasher = blake2::Blake2b256::new();
    let source = if let Some(written) = r.host_path.clone() {
        let mut map = sparse::SparseMap::default();
        let mut paths = Vec::new();
        let open_err = |source| CreateError::ResourceOpen {
            path: written.clone(),
            resource: r.name.clone(),
            source,
        };
        for part in written.split(';').filter(|p| !p.is_empty()) {
            let path = conf::relative_to(section_file, part);
            let file = File::open(&path).map_err(|source| CreateError::ResourceOpen {
                path: part.to_owned(),
                resource: r.name.clone(),
                source,
            })?;
            map.add_file(&file, r.skip_holes)?;
            paths.push(path);
        }
        if paths.is_empty() {
            return Err(Error::Create(CreateError::InvalidResource(format!(
                "must specify a host-path for resource '{}'",
                r.name
            ))));
        }
        let mut buf = vec![0u8; 64 * 1024];
        for (path, regions) in paths.iter().zip(&map.data) {
            let mut file = File::open(path).map_err(open_err)?;
            for &(offset, len) in regions {
                file.seek(SeekFrom::Start(offset))?;
                copy_exact(&mut file, len, &mut buf, |chunk| {
                    hasher.update(chunk);
                    Ok(())
                })?;
            }
        }
        r.length = map.runs.clone();
        Source::Files {
            written,
            paths,
            map,
        }
    } else {
        let text = r.contents.clone().unwrap_or_default();
        hasher.update(text.as_bytes());
        r.length = vec![text.len() as u64];
        Source::Contents(text)
    };
    r.blake2b_256 = Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    );
    Ok(source)
}

fn check_assertions(r: &Resource, written: &str, size: u64) -> Result<()> {
    let lte = r.assert_size_lte.wrapping_mul(512);
    let gte = r.assert_size_gte.wrapping_mul(512);
    let size_i = i64::try_from(size).unwrap_or(i64::MAX);
    if gte >= 0 && size_i < gte {
        return Err(Error::Create(CreateError::AssertSize {
            path: written.to_owned(),
            size,
            op: ">=",
            limit: gte,
            blocks: gte / 512,
        }));
    }
    if lte >= 0 && size_i > lte {
        return Err(Error::Create(CreateError::AssertSize {
            path: written.to_owned(),
            size,
            op: "<=",
            limit: lte,
            blocks: lte / 512,
        }));
    }
    Ok(())
}

/// fwup's `resource_name_to_archive_path`.
pub(crate) fn archive_path(resource: &str) -> Result<String> {
    let bad = |m: String| Err(Error::Create(CreateError::InvalidResource(m)));
    if resource.len() + 6 > 1024 {
        return bad(format!("resource name '{resource}' is too long"));
    }
    if resource.is_empty() {
        return bad("resource name can't be empty".into());
    }
    if resource.ends_with('/') {
        return bad(format!("resource name '{resource}' can't end in a '/'"));
    }
    match resource.strip_prefix('/') {
        Some(rest) => {
            if rest.is_empty() {
                return bad("resource name can't be the root directory".into());
            }
            if resource == "/meta.conf" {
                return bad("resources can't be named /meta.conf".into());
            }
            if resource == "/data" || resource.starts_with("/data/") {
                return bad("use a normal resource name rather than specifying /data".into());
            }
            Ok(rest.to_owned())
        }
        None => Ok(format!("data/{resource}")),
    }
}

/// Writes the optional signature entry and meta.conf.
pub(crate) fn write_head<W: Write>(
    zip: &mut ZipWriter<W>,
    meta_conf: &[u8],
    key: Option<&PrivateKey>,
    creation_time: i64,
) -> Result<()> {
    if let Some(key) = key {
        let signature = key.sign(meta_conf);
        let mut entry = zip.start_entry("meta.conf.ed25519", signature.len() as u64, None, true)?;
        entry.write_all(&signature)?;
        entry.finish()?;
    }
    let mut entry = zip.start_entry(
        "meta.conf",
        meta_conf.len() as u64,
        Some(creation_time),
        false,
    )?;
    entry.write_all(meta_conf)?;
    entry.finish()?;
    Ok(())
}

/// Creates `output` from the fwup.conf at `config` (`fwup -c -f config -o output`).
///
/// The archive is written to a temporary file in the output's directory and renamed over
/// `output` only once it is complete, so a failure leaves nothing behind.
pub fn create_file(config: &Path, output: &Path, options: &CreateOptions) -> Result<()> {
    let text = std::fs::read(config).map_err(|source| CreateError::ConfigOpen {
        path: config.display().to_string(),
        source,
    })?;
    let prepared = PreparedFirmware::prepare(&text, config, options)
        .map_err(|e| config_error(e, &config.display().to_string()))?;
    write_atomically(output, |file| prepared.write(file, options).map(drop))
}

/// Creates an archive from fwup.conf `text` into any writer (`-o -`). `config_path` is what
/// relative paths in the config resolve against.
pub fn create<W: Write>(
    text: &[u8],
    config_path: &Path,
    out: W,
    options: &CreateOptions,
) -> Result<W> {
    let prepared = PreparedFirmware::prepare(text, config_path, options)
        .map_err(|e| config_error(e, &config_path.display().to_string()))?;
    prepared.write(out, options)
}

/// Turns a meta.conf syntax error into fwup's "Error parsing configuration file".
fn config_error(e: Error, path: &str) -> Error {
    match e {
        Error::MetaConf(MetaConfError::Syntax { line, message }) => {
            Error::Create(CreateError::ConfigSyntax {
                path: path.to_owned(),
                line,
                message,
            })
        }
        Error::MetaConf(MetaConfError::RequiresNewerFwup { required, .. }) => {
            Error::Create(CreateError::ConfigSyntax {
                path: path.to_owned(),
                line: 0,
                message: format!(
                    "fwup version '{required}' required. This is fwup version '{}'.",
                    crate::FWUP_VERSION
                ),
            })
        }
        other => other,
    }
}

/// Fuzzing entry point: the fwup.conf parser and meta.conf printer on arbitrary bytes,
/// without touching the file system, then the printed meta.conf through the reader.
#[doc(hidden)]
pub fn fuzz_fwup_conf(data: &[u8]) {
    let path = Path::new("/nonexistent/fuzz.conf");
    if let Ok((mut conf, _)) = conf::parse_with(data, path, &Variables::new(), None) {
        for r in &mut conf.resources {
            r.length = vec![r.contents.as_ref().map_or(0, |c| c.len() as u64)];
            r.blake2b_256 = Some("0".repeat(64));
        }
        let text = print_meta_conf(&conf);
        let _ = MetaConf::parse(text.as_bytes(), &Variables::new());
    }
}

/// Writes through a temporary file beside `output`, renamed into place on success.
pub(crate) fn write_atomically(
    output: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&mut File>) -> Result<()>,
) -> Result<()> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".fwup-rs-")
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    {
        let mut buffered = std::io::BufWriter::with_capacity(256 * 1024, tmp.as_file_mut());
        write(&mut buffered)?;
        buffered.flush()?;
    }
    tmp.as_file().sync_all()?;
    // fwup's archives are created 0644 (umask applied); tempfile makes 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(output).map_err(|e| Error::Io(e.error))?;
    Ok(())
}
