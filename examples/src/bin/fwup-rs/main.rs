//! `fwup-rs`: a command line that takes C fwup's flags, built on `nerveshub-fwup`.
//!
//! Implemented modes: `-m` (metadata, with `--metadata-key`), `-l` (list tasks) and `-V`
//! (verify), with `-i FILE` or `-i -`, the key options `-p FILE`/`--public-key-file FILE` and
//! `--public-key BASE64` (up to 10 keys), `--framing`, `-q` and `--version`. Results and
//! errors go to stdout exactly as fwup 1.16.0 prints them; the exit status is 0 or 1.
#![allow(clippy::print_stdout)]

mod apply;
mod args;
mod create;
mod output;

use std::fs::File;
use std::io::{self, Read};
use std::process::ExitCode;

use nerveshub_fwup::{
    ArchiveReader, Error, FWUP_VERSION, MAX_PUBLIC_KEYS, PublicKey, SignatureStatus, Variables,
};

use args::{Mode, Options};
use output::{FramedReader, Output};

fn main() -> ExitCode {
    let options = match args::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(err) => {
            Output::new(false).diagnostic(&format!("fwup-rs: {err}"));
            return ExitCode::FAILURE;
        }
    };
    if options.show_version {
        println!("{FWUP_VERSION}");
        return ExitCode::SUCCESS;
    }
    if options.show_help {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let mut out = Output::new(options.framing);
    let Some(mode) = options.mode else {
        print!("{}", usage());
        return ExitCode::FAILURE;
    };
    let result = match mode {
        Mode::Metadata | Mode::List | Mode::Verify => read_mode(mode, &options, &mut out),
        Mode::Create | Mode::Sign | Mode::GenKeys => {
            create::run(mode, &options, &mut out).map_err(|(message, diagnostic)| Failure {
                message,
                diagnostic,
            })
        }
        Mode::Apply => return apply::main(&options, &mut out),
        other => Err(Failure::message(format!(
            "{} is not available in this version of fwup-rs",
            mode_name(other)
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(detail) = &failure.diagnostic {
                out.diagnostic(detail);
            }
            // If stdout itself is gone there is nobody left to tell.
            let _ = out.error(&failure.message);
            ExitCode::FAILURE
        }
    }
}

/// An error as fwup reports it: a one-line message, and sometimes a parser diagnostic that
/// fwup prints on stderr.
struct Failure {
    message: String,
    diagnostic: Option<String>,
}

impl Failure {
    fn message(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            diagnostic: None,
        }
    }

    /// fwup's wording for a library error in the given mode.
    fn from_error(err: Error, mode: Mode, input: &str) -> Self {
        match err {
            Error::MetaConfNotFirst if matches!(mode, Mode::Metadata | Mode::List) => {
                Self::message(format!("Expecting meta.conf to be at beginning of {input}"))
            }
            Error::MetaConfNotFirst => Self::message(format!(
                "Expecting meta.conf to be at the beginning of {input}"
            )),
            Error::MetaConfSyntax { line, message } => Self {
                message: "Unexpected error parsing meta.conf".to_owned(),
                diagnostic: Some(format!("[buf]:{line}: {message}")),
            },
            err @ Error::RequiresNewerFwup { .. } => Self {
                message: "Unexpected error parsing meta.conf".to_owned(),
                diagnostic: Some(format!("[buf]: {err}")),
            },
            other => Self::message(other.to_string()),
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Apply => "Applying firmware (-a)",
        Mode::Create => "Creating firmware (-c)",
        Mode::Detect => "Detecting SD cards (-D)",
        Mode::GenKeys => "Generating keys (-g)",
        Mode::Sign => "Signing firmware (-S)",
        Mode::List => "Listing tasks (-l)",
        Mode::Metadata => "Printing metadata (-m)",
        Mode::Verify => "Verifying firmware (-V)",
    }
}

/// `-m`, `-l` and `-V`: the modes that only read an archive.
fn read_mode(mode: Mode, options: &Options, out: &mut Output) -> Result<(), Failure> {
    let keys = load_public_keys(options)?;
    let input_name = options
        .input
        .clone()
        .ok_or_else(|| Failure::message("Specify an input firmware file (-i)"))?;
    let input = open_input(&input_name, options.framing)?;
    let vars: Variables = std::env::vars().collect();
    let fail = |err: Error| Failure::from_error(err, mode, &input_name);

    let text = match mode {
        Mode::Verify => {
            let verified = nerveshub_fwup::verify(input, &keys, &vars).map_err(fail)?;
            match verified.signature() {
                SignatureStatus::Unsigned => "Valid archive without a signature\n",
                SignatureStatus::Unverified => {
                    "Valid archive with an unverified signature. Specify a public key to authenticate.\n"
                }
                _ => "Valid archive with a good signature\n",
            }
            .to_owned()
        }
        _ => {
            // -m and -l read only the archive head, as fwup does.
            let head = ArchiveReader::open(input).map_err(fail)?.into_head();
            head.check_signature(&keys).map_err(fail)?;
            let meta_conf = head.parse(&vars).map_err(fail)?;
            if mode == Mode::List {
                let mut names: Vec<&str> = meta_conf.tasks().iter().map(|t| t.name()).collect();
                names.sort_unstable();
                names.iter().map(|name| format!("{name}\n")).collect()
            } else {
                let info = head.firmware_info(&meta_conf);
                match &options.metadata_key {
                    Some(key) => info.get(key).map(|v| format!("{v}\n")).unwrap_or_default(),
                    None => info.to_fwup_text(),
                }
            }
        }
    };
    out.result(&text)
        .map_err(|err| Failure::message(format!("Error writing output: {err}")))
}

/// Loads `-p`/`--public-key-file` files and `--public-key` values, at most 10 in all.
fn load_public_keys(options: &Options) -> Result<Vec<PublicKey>, Failure> {
    if options.public_key_files.len() + options.public_keys.len() > MAX_PUBLIC_KEYS {
        return Err(Failure::message(format!(
            "Too many public keys (at most {MAX_PUBLIC_KEYS})"
        )));
    }
    let mut keys = Vec::new();
    for path in &options.public_key_files {
        let contents = std::fs::read(path).map_err(|_| {
            Failure::message(format!(
                "Error reading or decoding public key from file '{path}'"
            ))
        })?;
        keys.push(
            PublicKey::from_file_contents(&contents, path)
                .map_err(|err| Failure::message(err.to_string()))?,
        );
    }
    for text in &options.public_keys {
        keys.push(PublicKey::from_base64(text).map_err(|err| Failure::message(err.to_string()))?);
    }
    Ok(keys)
}

/// Opens `-i`: a file, or standard input for `-` (framed when `--framing` is on, as fwup
/// expects).
fn open_input(name: &str, framing: bool) -> Result<Box<dyn Read>, Failure> {
    if name == "-" {
        let stdin = io::stdin().lock();
        return Ok(if framing {
            Box::new(FramedReader::new(stdin))
        } else {
            Box::new(stdin)
        });
    }
    let file =
        File::open(name).map_err(|err| Failure::message(format!("Cannot open '{name}': {err}")))?;
    // The archive reader buffers its input itself.
    Ok(Box::new(file))
}

fn usage() -> String {
    format!(
        "Usage: fwup-rs [options]\n\
         fwup-rs {FWUP_VERSION} (the fwup version it implements), built on nerveshub-fwup\n\n\
         Modes:\n  \
           -m, --metadata         Print the firmware's metadata (--metadata-key KEY: one value)\n  \
           -l, --list             List the tasks in the firmware\n  \
           -V, --verify           Verify the whole archive\n\n\
         Options:\n  \
           -i, --input FILE       Firmware archive, or - for standard input\n  \
           -p, --public-key-file FILE  Require a signature by this key (repeatable)\n  \
           --public-key BASE64    Same, with the key inline (repeatable; 10 keys at most)\n  \
           -F, --framing          Frame input and output as fwup's --framing protocol\n  \
           -q, --quiet            Print less\n  \
           --version              Print the fwup version this implements\n"
    )
}
