//! Command-line parsing with C fwup's getopt_long semantics: bundled short flags (`-qV`),
//! attached or separate option arguments (`-ifile`, `-i file`, `--input=file`), long options
//! abbreviated to any unique prefix, and `--` ending the options.

use std::fmt;

/// What the user asked fwup to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Apply,
    Create,
    Detect,
    /// `-z`: print the memory card easy mode would pick.
    SelectedDevice,
    GenKeys,
    List,
    Metadata,
    Sign,
    /// `--sparse-check PATH`: does the file system keep holes?
    SparseCheck,
    Verify,
}

/// Every flag fwup takes. Options that only matter to modes fwup-rs does not offer yet are
/// still accepted, so existing command lines parse.
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    pub(crate) mode: Option<Mode>,
    pub(crate) input: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) config: Option<String>,
    pub(crate) destination: Option<String>,
    pub(crate) task: Option<String>,
    pub(crate) metadata_key: Option<String>,
    /// `--sparse-check PATH`.
    pub(crate) sparse_check: Option<String>,
    pub(crate) public_key_files: Vec<String>,
    pub(crate) public_keys: Vec<String>,
    pub(crate) private_key_file: Option<String>,
    pub(crate) private_key: Option<String>,
    pub(crate) framing: bool,
    pub(crate) quiet: bool,
    pub(crate) numeric_progress: bool,
    pub(crate) verbose: bool,
    pub(crate) unsafe_mode: bool,
    pub(crate) compression_level: Option<u32>,
    pub(crate) show_help: bool,
    pub(crate) show_version: bool,
    /// Options taken for compatibility whose value fwup-rs does not use yet.
    pub(crate) other: Vec<(String, Option<String>)>,
    /// Non-option arguments (fwup's "easy mode" firmware file).
    pub(crate) positional: Vec<String>,
    /// An option that turns fwup's easy mode (`fwup file.fw`) off was given.
    pub(crate) not_easy: bool,
    /// `-y`: use the automatically found memory card without asking.
    pub(crate) accept_found_device: bool,
}

/// A command line that fwup would refuse too.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One option fwup knows: its long name (if any), its short letter (if any), and whether it
/// takes an argument.
struct Spec {
    long: Option<&'static str>,
    short: Option<char>,
    takes_arg: bool,
}

const fn spec(long: Option<&'static str>, short: Option<char>, takes_arg: bool) -> Spec {
    Spec {
        long,
        short,
        takes_arg,
    }
}

const SPECS: &[Spec] = &[
    spec(Some("apply"), Some('a'), false),
    spec(Some("create"), Some('c'), false),
    spec(None, Some('d'), true),
    spec(Some("detect"), Some('D'), false),
    spec(Some("eject"), Some('E'), false),
    spec(Some("no-eject"), None, false),
    spec(Some("enable-trim"), None, false),
    spec(Some("exit-handshake"), None, false),
    spec(None, Some('f'), true),
    spec(Some("framing"), Some('F'), false),
    spec(Some("gen-keys"), Some('g'), false),
    spec(Some("help"), Some('h'), false),
    spec(Some("input"), Some('i'), true),
    spec(Some("list"), Some('l'), false),
    spec(Some("max-size"), None, true),
    spec(Some("metadata"), Some('m'), false),
    spec(Some("metadata-key"), None, true),
    spec(Some("minimize-writes"), None, false),
    spec(Some("no-minimize-writes"), None, false),
    spec(None, Some('n'), false),
    spec(Some("output"), Some('o'), true),
    spec(Some("private-key-file"), Some('s'), true),
    spec(Some("private-key"), None, true),
    spec(Some("progress-high"), None, true),
    spec(Some("progress-low"), None, true),
    spec(Some("public-key-file"), Some('p'), true),
    spec(Some("public-key"), None, true),
    spec(Some("quiet"), Some('q'), false),
    spec(Some("reboot-param-path"), None, true),
    spec(Some("sign"), Some('S'), false),
    spec(Some("sparse-check"), None, true),
    spec(Some("sparse-check-size"), None, true),
    spec(Some("task"), Some('t'), true),
    spec(Some("unmount"), Some('u'), false),
    spec(Some("no-unmount"), Some('U'), false),
    spec(Some("unsafe"), None, false),
    spec(Some("verbose"), Some('v'), false),
    spec(Some("verify"), Some('V'), false),
    spec(Some("verify-writes"), None, false),
    spec(Some("no-verify-writes"), None, false),
    spec(Some("version"), None, false),
    spec(None, Some('y'), false),
    spec(None, Some('z'), false),
];

/// Parses the arguments after the program name.
pub(crate) fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Options, UsageError> {
    let mut args = args.into_iter();
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        if arg == "--" {
            options.positional.extend(args.by_ref());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let spec = find_long(name)?;
            let value = match (spec.takes_arg, inline) {
                (true, Some(value)) => Some(value),
                (true, None) => Some(args.next().ok_or_else(|| {
                    UsageError(format!("option '--{name}' requires an argument"))
                })?),
                (false, Some(_)) => {
                    return Err(UsageError(format!(
                        "option '--{name}' doesn't allow an argument"
                    )));
                }
                (false, None) => None,
            };
            apply(&mut options, spec, value)?;
        } else if arg.len() > 1 && arg.starts_with('-') {
            let letters: Vec<char> = arg.chars().skip(1).collect();
            let mut i = 0;
            while i < letters.len() {
                let letter = letters[i];
                if let Some(level) = letter.to_digit(10).filter(|d| *d >= 1) {
                    options.compression_level = Some(level);
                    i += 1;
                    continue;
                }
                let spec = SPECS
                    .iter()
                    .find(|s| s.short == Some(letter))
                    .ok_or_else(|| UsageError(format!("invalid option -- '{letter}'")))?;
                if spec.takes_arg {
                    let rest: String = letters[i + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        args.next().ok_or_else(|| {
                            UsageError(format!("option requires an argument -- '{letter}'"))
                        })?
                    } else {
                        rest
                    };
                    apply(&mut options, spec, Some(value))?;
                    break;
                }
                apply(&mut options, spec, None)?;
                i += 1;
            }
        } else {
            options.positional.push(arg);
        }
    }
    Ok(options)
}

/// Finds a long option by its full name or by a unique prefix of it, as getopt_long does.
fn find_long(name: &str) -> Result<&'static Spec, UsageError> {
    if let Some(exact) = SPECS.iter().find(|s| s.long == Some(name)) {
        return Ok(exact);
    }
    let mut matches = SPECS
        .iter()
        .filter(|s| s.long.is_some_and(|long| long.starts_with(name)));
    match (matches.next(), matches.next()) {
        (Some(only), None) if !name.is_empty() => Ok(only),
        (Some(_), Some(_)) => Err(UsageError(format!("option '--{name}' is ambiguous"))),
        _ => Err(UsageError(format!("unrecognized option '--{name}'"))),
    }
}

fn set_mode(options: &mut Options, mode: Mode) {
    // -D and -z make fwup print and exit while it parses: the first one wins.
    if !matches!(options.mode, Some(Mode::Detect | Mode::SelectedDevice)) {
        options.mode = Some(mode);
    }
}

fn apply(options: &mut Options, spec: &Spec, value: Option<String>) -> Result<(), UsageError> {
    let key = spec
        .long
        .map(str::to_owned)
        .or_else(|| spec.short.map(String::from))
        .unwrap_or_default();
    // The options after which fwup no longer takes a lone file name as easy mode.
    if matches!(
        key.as_str(),
        "apply"
            | "create"
            | "f"
            | "gen-keys"
            | "sign"
            | "sparse-check"
            | "private-key-file"
            | "private-key"
            | "framing"
            | "input"
            | "list"
            | "metadata"
            | "output"
            | "public-key-file"
            | "verify"
    ) {
        options.not_easy = true;
    }
    match (key.as_str(), value) {
        ("apply", _) => set_mode(options, Mode::Apply),
        ("create", _) => set_mode(options, Mode::Create),
        ("detect", _) => set_mode(options, Mode::Detect),
        ("z", _) => set_mode(options, Mode::SelectedDevice),
        ("y", _) => options.accept_found_device = true,
        ("gen-keys", _) => set_mode(options, Mode::GenKeys),
        ("list", _) => set_mode(options, Mode::List),
        ("metadata", _) => set_mode(options, Mode::Metadata),
        ("sign", _) => set_mode(options, Mode::Sign),
        ("verify", _) => set_mode(options, Mode::Verify),
        ("sparse-check", value) => {
            options.sparse_check = value;
            set_mode(options, Mode::SparseCheck);
        }
        ("d", value) => options.destination = value,
        ("f", value) => options.config = value,
        ("input", value) => options.input = value,
        ("output", value) => options.output = value,
        ("task", value) => options.task = value,
        ("metadata-key", value) => {
            options.metadata_key = value;
            if options.mode.is_none() {
                set_mode(options, Mode::Metadata);
            }
        }
        ("public-key-file", Some(value)) => options.public_key_files.push(value),
        ("public-key", Some(value)) => options.public_keys.push(value),
        ("private-key-file", value) => options.private_key_file = value,
        ("private-key", value) => options.private_key = value,
        ("framing", _) => options.framing = true,
        ("quiet", _) => options.quiet = true,
        ("n", _) => options.numeric_progress = true,
        ("verbose", _) => options.verbose = true,
        ("unsafe", _) => options.unsafe_mode = true,
        ("help", _) => options.show_help = true,
        ("version", _) => options.show_version = true,
        (other, value) => options.other.push((other.to_owned(), value)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Options, UsageError> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn short_long_bundled_and_attached_forms() {
        let o = parse_str("-m -i fw/simple.fw -p a.pub --public-key-file b.pub").unwrap();
        assert_eq!(o.mode, Some(Mode::Metadata));
        assert_eq!(o.input.as_deref(), Some("fw/simple.fw"));
        assert_eq!(o.public_key_files, ["a.pub", "b.pub"]);

        let o = parse_str("-qVifw.fw").unwrap();
        assert!(o.quiet);
        assert_eq!(o.mode, Some(Mode::Verify));
        assert_eq!(o.input.as_deref(), Some("fw.fw"));

        let o = parse_str("--verify --inp=x.fw --public-key K= -9").unwrap();
        assert_eq!(o.mode, Some(Mode::Verify));
        assert_eq!(o.input.as_deref(), Some("x.fw"));
        assert_eq!(o.public_keys, ["K="]);
        assert_eq!(o.compression_level, Some(9));
    }

    #[test]
    fn metadata_key_implies_metadata_mode() {
        let o = parse_str("--metadata-key meta-uuid -i f.fw").unwrap();
        assert_eq!(o.mode, Some(Mode::Metadata));
        assert_eq!(o.metadata_key.as_deref(), Some("meta-uuid"));
    }

    #[test]
    fn refuses_what_getopt_refuses() {
        assert!(parse_str("-x").is_err());
        assert!(parse_str("-i").is_err());
        assert!(parse_str("--no").is_err(), "ambiguous prefix");
        assert!(parse_str("--bogus").is_err());
        assert!(parse_str("--list=3").is_err());
    }
}
