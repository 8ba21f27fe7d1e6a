//! `-c` (create), `-S` (sign) and `-g` (generate keys), with fwup's messages and exit
//! status. Unlike fwup, a failed `-c`/`-S` leaves no partial output file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use nerveshub_fwup::{
    CreateError, CreateOptions, CreationTime, Error, MetaConfError, PrivateKey, Variables,
};

use crate::args::{Mode, Options};
use crate::output::Output;

/// A failure: fwup's one-line message and, for config parse errors, the libconfuse-style
/// diagnostic fwup prints on stderr.
pub(crate) type Failure = (String, Option<String>);

fn fail(message: impl Into<String>) -> Failure {
    (message.into(), None)
}

/// Runs `-c`, `-S` or `-g`.
pub(crate) fn run(mode: Mode, options: &Options, out: &mut Output) -> Result<(), Failure> {
    match mode {
        Mode::Create => create(options, out),
        Mode::Sign => sign(options, out),
        _ => gen_keys(options, out),
    }
}

/// The creation time fwup uses: `SOURCE_DATE_EPOCH`, else a well-formed `NOW`, else the
/// clock. A malformed `NOW` is reported in verbose mode, as fwup does.
fn creation_time(options: &Options, out: &mut Output) -> i64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let var = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let time = CreationTime::from_env(
        var("SOURCE_DATE_EPOCH").as_deref(),
        var("NOW").as_deref(),
        clock,
    );
    if time.now_ignored && options.verbose {
        let _ = out.warning(
            "NOW environment variable set, but not in YYYY-MM-DDTHH:MM:SSZ format so ignoring",
        );
    }
    time.unix
}

/// `-s FILE` / `--private-key BASE64`.
fn signing_key(options: &Options) -> Result<Option<PrivateKey>, Failure> {
    if let Some(text) = &options.private_key {
        // fwup's words for a key given as an argument (also used, deliberately, for a
        // well-formed key whose public half is not its seed's: fwup would sign with it and
        // make archives no public key verifies).
        return PrivateKey::from_base64(text)
            .map(Some)
            .map_err(|_| fail("Error decoding private key"));
    }
    let Some(path) = &options.private_key_file else {
        return Ok(None);
    };
    let contents = std::fs::read(path).map_err(|_| {
        fail(format!(
            "Error reading or decoding private key from file '{path}'"
        ))
    })?;
    PrivateKey::from_file_contents(&contents, path)
        .map(Some)
        .map_err(|e| fail(crate::wording(&e)))
}

fn library_failure(err: Error) -> Failure {
    match err {
        Error::Create(CreateError::ConfigSyntax {
            path,
            line,
            message,
        }) => (
            format!("Error parsing configuration file '{path}'"),
            Some(if line == 0 {
                format!("{path}: {message}")
            } else {
                format!("{path}:{line}: {message}")
            }),
        ),
        other => fail(crate::wording(&other)),
    }
}

fn create(options: &Options, out: &mut Output) -> Result<(), Failure> {
    let config = options
        .config
        .clone()
        .unwrap_or_else(|| "fwupdate.conf".to_owned());
    let output = options
        .output
        .clone()
        .ok_or_else(|| fail("Specify an output firmware file"))?;
    let create_options = CreateOptions {
        compression_level: options.compression_level.unwrap_or(9),
        signing_key: signing_key(options)?,
        env: std::env::vars().collect::<Variables>(),
        creation_time: creation_time(options, out),
        working_dir: PathBuf::from("."),
    };
    if config == "-" || output == "-" {
        let text = if config == "-" {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut text)
                .map_err(|_| fail("Error parsing configuration from stdin"))?;
            text
        } else {
            std::fs::read(&config)
                .map_err(|_| fail(format!("Error opening configuration file '{config}'")))?
        };
        let config_path = if config == "-" {
            Path::new("./-")
        } else {
            Path::new(&config)
        };
        if output == "-" {
            // Built in memory first so that nothing reaches stdout on failure.
            let bytes = nerveshub_fwup::create(&text, config_path, Vec::new(), &create_options)
                .map_err(library_failure)?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| fail(format!("Error writing output: {e}")))?;
            return Ok(());
        }
        let prepared =
            nerveshub_fwup::PreparedFirmware::prepare(&text, config_path, &create_options)
                .map_err(|e| match e {
                    Error::MetaConf(MetaConfError::Syntax { line, message }) => (
                        "Error parsing configuration from stdin".to_owned(),
                        Some(format!("-:{line}: {message}")),
                    ),
                    other => library_failure(other),
                })?;
        let bytes = prepared
            .write(Vec::new(), &create_options)
            .map_err(library_failure)?;
        return write_file_atomically(&output, &bytes);
    }
    nerveshub_fwup::create_file(Path::new(&config), Path::new(&output), &create_options)
        .map_err(library_failure)
}

/// Writes `bytes` to `path` through a temporary file beside it.
fn write_file_atomically(path: &str, bytes: &[u8]) -> Result<(), Failure> {
    let path = Path::new(path);
    let tmp = path.with_extension("fwup-rs-tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(format!("Error creating archive '{}': {e}", path.display()))
        })
}

fn sign(options: &Options, out: &mut Output) -> Result<(), Failure> {
    let input = options
        .input
        .clone()
        .ok_or_else(|| fail("Specify an input firmware file"))?;
    let output = options
        .output
        .clone()
        .ok_or_else(|| fail("Specify an output firmware file"))?;
    let key = signing_key(options)?.ok_or_else(|| fail("Specify a signing key"))?;
    nerveshub_fwup::sign_file(
        Path::new(&input),
        Path::new(&output),
        &key,
        creation_time(options, out),
    )
    .map_err(library_failure)
}

/// fwup prints at most 32 characters of each file name.
fn short(name: &str) -> String {
    name.chars().take(32).collect()
}

fn gen_keys(options: &Options, out: &mut Output) -> Result<(), Failure> {
    let prefix = options
        .output
        .clone()
        .unwrap_or_else(|| "fwup-key".to_owned());
    let pub_path = format!("{prefix}.pub");
    let priv_path = format!("{prefix}.priv");
    let key = PrivateKey::generate().map_err(|e| fail(crate::wording(&e)))?;
    save_key(&pub_path, key.public_key().to_base64().as_bytes())?;
    save_key(&priv_path, key.to_base64().as_bytes())?;
    let base = |p: &str| {
        short(
            &Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    };
    let (pub_name, priv_name) = (base(&pub_path), base(&priv_path));
    let message = format!(
        "Firmware signing keys created and saved to '{pub_name}' and '{priv_name}'\n\n\
         Distribute '{pub_name}' with your system so that firmware updates can be\n\
         authenticated. Keep '{priv_name}' in a safe location.\n"
    );
    out.result(&message)
        .map_err(|e| fail(format!("Error writing output: {e}")))
}

/// Creates `path` (never overwriting) with mode 0600 and writes `contents`.
fn save_key(path: &str, contents: &[u8]) -> Result<(), Failure> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        open.mode(0o600);
    }
    let mut file = open.open(path).map_err(|e| {
        let reason = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "File exists".to_owned()
        } else {
            e.to_string()
        };
        fail(format!("Couldn't create '{path}': {reason}"))
    })?;
    file.write_all(contents)
        .map_err(|e| fail(format!("Couldn't write to '{path}': {e}")))
}
