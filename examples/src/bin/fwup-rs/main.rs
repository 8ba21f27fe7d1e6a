//! `fwup-rs`: a command line that takes C fwup's flags, built on `nerveshub-fwup`.
//!
//! Every mode of fwup 1.16 (`-a`, `-c`, `-S`, `-g`, `-m`, `-l`, `-V`, `-D`, `-z`, easy mode
//! `fwup-rs file.fw`) with its options; `usage()` lists them. The archive comes from `-i FILE`,
//! or standard input for `-i -` or no `-i` (framed with `--framing`), as nerves_hub_link
//! streams it. Results and errors go to stdout exactly as fwup 1.16.0 prints them; the exit
//! status is 0 or 1.
#![allow(clippy::print_stdout)]

mod apply;
mod args;
mod create;
mod detect;
mod output;

use std::fs::File;
use std::io::{self, Read};
use std::process::ExitCode;

use nerveshub_fwup::{
    ApplyError, ArchiveError, ArchiveReader, Error, FWUP_VERSION, MAX_PUBLIC_KEYS, MetaConfError,
    PublicKey, SignatureStatus, Variables,
};

use args::{Mode, Options};
use output::{FramedReader, Output};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        print!("{}", usage());
        return ExitCode::FAILURE;
    }
    let mut options = match args::parse(argv) {
        Ok(options) => options,
        Err(err) => {
            // getopt's complaint on stderr, then the usage, as fwup does (`-?` included).
            Output::new(false).diagnostic(&format!("fwup-rs: {err}"));
            print!("{}", usage());
            return ExitCode::FAILURE;
        }
    };
    if options.show_version {
        // Exactly fwup's version: nerves_hub_link sends this text as the device's
        // `fwup_version`, and NervesHub decides on delta updates by it.
        println!("{FWUP_VERSION}");
        return ExitCode::SUCCESS;
    }
    if options.show_help {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let mut out = Output::new(options.framing);
    let fail = |out: &mut Output, message: &str| {
        let _ = out.error(message);
        ExitCode::FAILURE
    };
    match options.mode {
        Some(Mode::Detect) => {
            return match out.result(&detect::detect_text()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Some(Mode::SelectedDevice) => {
            return match detect::autoselect() {
                Ok(card) => match out.result(&format!("{}\n", card.path)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::FAILURE,
                },
                Err(message) if message.is_empty() => ExitCode::FAILURE,
                Err(message) => fail(&mut out, &message),
            };
        }
        _ => {}
    }
    if options.quiet && options.numeric_progress {
        return fail(&mut out, "pick either -n or -q, but not both");
    }
    // Easy mode: `fwup-rs file.fw` applies task `complete` to the memory card found.
    if !options.not_easy && options.positional.len() == 1 {
        options.mode = Some(Mode::Apply);
        options.input = options.positional.pop();
        options.task.get_or_insert_with(|| "complete".to_owned());
    }
    if let Some(extra) = options.positional.first() {
        return fail(&mut out, &format!("unexpected parameter: {extra}"));
    }
    let Some(mode) = options.mode else {
        return fail(&mut out, "specify one of -a, -c, -l, -m, -S, -V, or -z");
    };
    if mode == Mode::Apply {
        // fwup checks these before it reports any progress.
        if options.task.is_none() {
            return fail(&mut out, "specify a task (-t)");
        }
        if options.destination.is_none() {
            let stdin = options.input.as_deref().is_none_or(|i| i == "-");
            match detect::autoselect_and_confirm(options.accept_found_device, stdin) {
                Ok(device) => options.destination = Some(device),
                // The candidates were listed on stderr already.
                Err(message) if message.is_empty() => return ExitCode::FAILURE,
                Err(message) => return fail(&mut out, &message),
            }
        }
    }
    let result = match mode {
        Mode::Metadata | Mode::List | Mode::Verify => read_mode(mode, &options, &mut out),
        Mode::Create | Mode::Sign | Mode::GenKeys => {
            create::run(mode, &options, &mut out).map_err(|(message, diagnostic)| Failure {
                message,
                diagnostic,
            })
        }
        Mode::Apply => return apply::main(&options, &mut out),
        Mode::SparseCheck => sparse_check(&options, &mut out),
        Mode::Detect | Mode::SelectedDevice => Ok(()),
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
            Error::Archive(ArchiveError::MetaConfNotFirst)
                if matches!(mode, Mode::Metadata | Mode::List) =>
            {
                Self::message(format!("Expecting meta.conf to be at beginning of {input}"))
            }
            Error::Archive(ArchiveError::MetaConfNotFirst) => Self::message(format!(
                "Expecting meta.conf to be at the beginning of {input}"
            )),
            Error::MetaConf(MetaConfError::Syntax { line, message }) => Self {
                message: "Unexpected error parsing meta.conf".to_owned(),
                diagnostic: Some(format!("[buf]:{line}: {message}")),
            },
            err @ Error::MetaConf(MetaConfError::RequiresNewerFwup { .. }) => Self {
                message: "Unexpected error parsing meta.conf".to_owned(),
                diagnostic: Some(format!("[buf]: {err}")),
            },
            other => Self::message(wording(&other)),
        }
    }
}

/// fwup's text for a library error. The library keeps an operating-system error as the
/// source rather than in its message; fwup prints `strerror` after the message, so it is
/// added here for the errors whose fwup wording has it.
pub(crate) fn wording(err: &Error) -> String {
    match err {
        Error::Io(source) => format!("I/O error: {source}"),
        Error::Apply(ApplyError::Host { source, .. }) => format!("{err}: {source}"),
        other => other.to_string(),
    }
}

/// `--sparse-check PATH [--sparse-check-size N]` (N defaults to 4096, read as C's `strtol`).
fn sparse_check(options: &Options, out: &mut Output) -> Result<(), Failure> {
    let path = options.sparse_check.clone().unwrap_or_default();
    let size = options
        .other
        .iter()
        .rev()
        .find(|(key, _)| key == "sparse-check-size")
        .and_then(|(_, value)| value.as_deref())
        .map_or(4096, c_strtol_int);
    nerveshub_fwup::sparse_file_supported(std::path::Path::new(&path), size)
        .map_err(|err| Failure::message(wording(&err)))?;
    out.result("Sparse files supported\n")
        .map_err(|err| Failure::message(format!("Error writing output: {err}")))
}

/// `(int) strtol(s, NULL, 0)`: leading white space, a sign, a `0x`/`0` prefix and the
/// longest run of digits; 0 when there are none.
fn c_strtol_int(s: &str) -> i32 {
    let t = s.trim_start();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, hex)
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let magnitude =
        i64::from_str_radix(&digits[..end], radix).unwrap_or(if end == 0 { 0 } else { i64::MAX });
    let value = if negative { -magnitude } else { magnitude };
    // C truncates the long to an int.
    #[allow(clippy::cast_possible_truncation)]
    let int = value as i32;
    int
}

/// `-m`, `-l` and `-V`: the modes that only read an archive.
fn read_mode(mode: Mode, options: &Options, out: &mut Output) -> Result<(), Failure> {
    let keys = load_public_keys(options)?;
    // No -i means standard input, as in fwup.
    let input_name = options.input.clone().unwrap_or_else(|| "-".to_owned());
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
                    // fwup prints a missing value with printf's "%s" of NULL.
                    Some(key) => info
                        .get(key)
                        .map_or_else(|| "(null)\n".to_owned(), |v| format!("{v}\n")),
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
                .map_err(|err| Failure::message(wording(&err)))?,
        );
    }
    for text in &options.public_keys {
        keys.push(
            PublicKey::from_base64(text)
                .map_err(|_| Failure::message("Error decoding public key"))?,
        );
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
        "fwup-rs: fwup {FWUP_VERSION} rebuilt on nerveshub-fwup; a self-contained utility for\n\
creating and applying firmware update files. Firmware update (.fw) files are zip archives\n\
containing metadata, a limited set of instructions, and data.\n\
\n\
Usage: fwup-rs [OPTION]...\n\
       fwup-rs FILE.fw   (easy mode: -a -i FILE.fw -t complete on the memory card found)\n\
\n\
Options:\n\
  -a, --apply   Apply the firmware update\n\
  -c, --create  Create the firmware update\n\
  -d <file> Device file for the memory card\n\
  -D, --detect List attached SDCards or MMC devices and their sizes\n\
  -E, --eject Eject removable media after successfully writing firmware.\n\
  --no-eject Do not eject media after writing firmware\n\
  --enable-trim Enable use of the hardware TRIM command\n\
  --exit-handshake Send a Ctrl+Z on exit and wait for stdin to close (Erlang)\n\
  -f <fwup.conf> Specify the firmware update configuration file\n\
  -F, --framing Apply framing on stdin/stdout\n\
  -g, --gen-keys Generate firmware signing keys (fwup-key.pub and fwup-key.priv, or specify with -o)\n\
  -h, --help Print this help\n\
  -i <input.fw> Specify the input firmware update file (Use - for stdin; stdin if left out)\n\
  -l, --list   List the available tasks in a firmware update\n\
  --max-size <blocks> Max size of the destination in 512-byte blocks (usually automatic)\n\
  -m, --metadata   Print metadata in the firmware update\n\
  --metadata-key <key> Only output the specified key's value when printing metadata\n\
  --minimize-writes Skip write if contents match destination\n\
  --no-minimize-writes Don't try to minimize writes when applying firmware updates (default)\n\
  -n   Report numeric progress\n\
  -o <output.fw> Specify the output file when creating an update (Use - for stdout)\n\
  -p, --public-key-file <keyfile> A public key file for verifying firmware updates (can specify multiple times)\n\
  --private-key <key> A private key for signing firmware updates\n\
  --progress-low <number> When displaying progress, this is the lowest number (normally 0 for 0%)\n\
  --progress-high <number> When displaying progress, this is the highest number (normally 100 for 100%)\n\
  --public-key <key> A public key for verifying firmware updates (can specify multiple times)\n\
  -q, --quiet   Quiet\n\
  --reboot-param-path Path to write reboot parameters (defaults to systemd and Nerves locations)\n\
  -s, --private-key-file <keyfile> A private key file for signing firmware updates\n\
  -S, --sign Sign an existing firmware file (specify -i and -o)\n\
  --sparse-check <path> Check if the OS and file system supports sparse files at path\n\
  --sparse-check-size <bytes> Hole size to check for --sparse-check\n\
  -t, --task <task> Task to apply within the firmware update\n\
  -u, --unmount Unmount all partitions on device first\n\
  -U, --no-unmount Do not try to unmount partitions on device\n\
  --unsafe Allow unsafe commands (consider applying only signed archives)\n\
  -v, --verbose   Verbose\n\
  -V, --verify  Verify an existing firmware file (specify -i)\n\
  --verify-writes Verify writes when applying firmware updates to detect corruption (default for writing to device files)\n\
  --no-verify-writes Do not verify writes when applying firmware updates (default for regular files)\n\
  --version Print out the version of fwup this implements\n\
  -y   Accept automatically found memory card when applying a firmware update\n\
  -z   Print the memory card that would be automatically detected and exit\n\
  -1   Fast compression (for create)\n\
  -9   Best compression (default)\n\
\n\
Not supported: UBI volumes (ubi_volume_write).\n"
    )
}
