//! `fwup-rs -a`: apply a task of an archive to an image file or a block device, with fwup's
//! output modes (normal, `-q`, `-n`, `--framing`), progress range and exit handshake.

use std::cell::Cell;
use std::io::{self, Read};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use nerveshub_fwup::{
    ApplyEvents, ApplyOptions, Error, FileTarget, PercentScale, Progress, Variables,
};

use crate::args::{Mode, Options};
use crate::output::Output;
use crate::{Failure, load_public_keys, open_input};

/// How progress is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProgressMode {
    /// `-q`: none.
    Quiet,
    /// `-n`: one number per line when it changes.
    Numeric,
    /// `--framing`: `PR` packets.
    Framed,
    /// A progress bar redrawn in place.
    Normal,
}

struct CliEvents<'o> {
    out: &'o mut Output,
    mode: ProgressMode,
    scale: PercentScale,
    last: Option<u8>,
    /// Archive bytes read so far (the "in" of fwup's progress bar).
    input_bytes: Rc<Cell<u64>>,
    /// The last progress reported.
    progress: Progress,
    /// When the first progress with a known total came (fwup times from there, and
    /// prints no elapsed time without it).
    started: Option<Instant>,
}

/// fwup's `find_natural_units`: decimal units for the progress bar's byte counts.
fn natural_units(amount: u64) -> (f64, &'static str) {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    let (unit, name) = UNITS
        .iter()
        .copied()
        .find(|&(unit, _)| amount >= unit)
        .unwrap_or((1, "bytes"));
    // Display only: the precision of f64 is plenty.
    #[allow(clippy::cast_precision_loss)]
    let value = amount as f64 / unit as f64;
    (value, name)
}

impl CliEvents<'_> {
    fn show(&mut self, percent: u8) {
        if self.last.is_some_and(|last| percent <= last) {
            return;
        }
        self.last = Some(percent);
        // A closed stdout must not stop the update; fwup ignores these write errors too.
        let _ = match self.mode {
            ProgressMode::Quiet => Ok(()),
            ProgressMode::Numeric => self.out.text(&format!("{percent}\n")),
            ProgressMode::Framed => self.out.progress_packet(percent),
            ProgressMode::Normal => {
                // fwup's bar: no erase-line escape here (only messages get one), and the
                // byte counts once the total is known.
                let filled = usize::from(percent) * 36 / 100;
                let mut line = format!("\r{percent:3}% [{:<36}]", "=".repeat(filled));
                if self.progress.total > 0 {
                    let (input, input_unit) = natural_units(self.input_bytes.get());
                    let (output, output_unit) = natural_units(self.progress.done);
                    line.push_str(&format!(
                        " {input:.2} {input_unit} in / {output:.2} {output_unit} out     \x08\x08\x08\x08\x08"
                    ));
                }
                self.out.text(&line)
            }
        };
    }

    /// fwup's "Elapsed time" line, or nothing when no progress was timed.
    fn elapsed_line(&self) -> String {
        let Some(started) = self.started else {
            return String::new();
        };
        let ms = started.elapsed().as_millis();
        if ms > 60_000 {
            let seconds = ms / 1000;
            format!("Elapsed time: {} min {:02} s\n", seconds / 60, seconds % 60)
        } else {
            format!("Elapsed time: {}.{:03} s\n", ms / 1000, ms % 1000)
        }
    }
}

impl ApplyEvents for CliEvents<'_> {
    fn progress(&mut self, progress: Progress) {
        if self.started.is_none() && progress.total > 0 {
            self.started = Some(Instant::now());
        }
        self.progress = progress;
        let percent = self.scale.percent(progress);
        self.show(percent);
    }

    fn info(&mut self, message: &str) {
        if self.mode == ProgressMode::Normal {
            let _ = self.out.text("\r\x1b[K");
        }
        let _ = self.out.warning(message);
    }
}

/// Counts the archive bytes read, for the progress bar.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get().saturating_add(n as u64));
        Ok(n)
    }
}

fn other_value<'a>(options: &'a Options, name: &str) -> Option<&'a str> {
    options
        .other
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.as_deref())
}

fn other_flag(options: &Options, name: &str) -> bool {
    options.other.iter().any(|(key, _)| key == name)
}

/// Which of an on/off pair of flags came last, if either was given.
fn last_switch(options: &Options, on: &str, off: &str) -> Option<bool> {
    options.other.iter().rev().find_map(|(key, _)| {
        (key == on)
            .then_some(true)
            .or((key == off).then_some(false))
    })
}

fn percent_option(options: &Options, name: &str, default: u8) -> Result<u8, Failure> {
    match other_value(options, name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|v| *v <= 100)
            .ok_or_else(|| Failure::message(format!("--{name} must be between 0 and 100"))),
    }
}

/// Runs `-a` and reports its outcome; returns the exit status.
pub(crate) fn main(options: &Options, out: &mut Output) -> ExitCode {
    let handshake = other_flag(options, "exit-handshake");
    let mut progress_shown = false;
    let result = run(options, out, &mut progress_shown);
    let code = match result {
        Ok(()) => 0u8,
        Err(failure) => {
            if let Some(detail) = &failure.diagnostic {
                out.diagnostic(detail);
            }
            // Once progress is shown, fwup ends its line on stderr unless -q, and in the
            // progress bar's mode starts the message with the erase-line escape. Errors in
            // the options come before that, plain.
            if progress_shown && !options.quiet {
                out.diagnostic("");
                if !out.is_framed() && !options.numeric_progress {
                    let _ = out.text("\r\x1b[K");
                }
            }
            let _ = out.error(&failure.message);
            1
        }
    };
    if handshake {
        // Erlang ports: Ctrl-Z and the exit status, then wait for stdin to close.
        let _ = out.text_bytes(&[0x1a, code]);
        let mut sink = [0u8; 4096];
        let mut stdin = io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    }
    ExitCode::from(code)
}

fn run(options: &Options, out: &mut Output, progress_shown: &mut bool) -> Result<(), Failure> {
    let low = percent_option(options, "progress-low", 0)?;
    let high = percent_option(options, "progress-high", 100)?;
    if low > high {
        return Err(Failure::message(
            "--progress-low must be less than --progress-high",
        ));
    }
    let mode = if out.is_framed() {
        ProgressMode::Framed
    } else if options.quiet {
        ProgressMode::Quiet
    } else if options.numeric_progress {
        ProgressMode::Numeric
    } else {
        ProgressMode::Normal
    };
    let keys = load_public_keys(options)?;
    let task = options
        .task
        .clone()
        .ok_or_else(|| Failure::message("specify a task (-t)"))?;
    // Without -i fwup reads the archive from standard input: nerves_hub_link streams it
    // that way, framed when --framing is on.
    let input_name = options
        .input
        .clone()
        .or_else(|| options.positional.first().cloned())
        .unwrap_or_else(|| "-".to_owned());
    let destination = options
        .destination
        .clone()
        .ok_or_else(|| Failure::message("specify a destination (-d)"))?;
    let max_size = match other_value(options, "max-size") {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<u64>()
                .ok()
                .and_then(|blocks| blocks.checked_mul(512))
                .ok_or_else(|| Failure::message(format!("Invalid --max-size '{text}'")))?,
        ),
    };

    let input_bytes = Rc::new(Cell::new(0u64));
    let mut events = CliEvents {
        out,
        mode,
        scale: PercentScale::new(low, high),
        last: None,
        input_bytes: input_bytes.clone(),
        progress: Progress { done: 0, total: 0 },
        started: None,
    };
    *progress_shown = true;
    events.show(events.scale.start());

    // fwup opens (and creates) the destination before it reads the archive.
    let unmount = !other_flag(options, "no-unmount") || other_flag(options, "unmount");
    if unmount {
        unmount_partitions(&destination);
    }
    let mut target = FileTarget::open(&destination).map_err(|err| {
        Failure::message(format!("Cannot open destination '{destination}': {err}"))
    })?;
    if let Some(bytes) = max_size {
        target = target.with_max_size(bytes);
    }
    // The last of --verify-writes/--no-verify-writes wins; unset, devices are verified.
    let is_null = destination == "/dev/null";
    let verify = last_switch(options, "verify-writes", "no-verify-writes")
        .unwrap_or_else(|| target.is_block_device());
    let minimize = last_switch(options, "minimize-writes", "no-minimize-writes").unwrap_or(false);
    target = target.with_write_checks(verify && !is_null, minimize && !is_null);

    let mut enable_trim = other_flag(options, "enable-trim");
    if enable_trim && !target.is_block_device() {
        events.info("ignoring --enable-trim since operating on a regular file");
        enable_trim = false;
    }

    let input = CountingReader {
        inner: open_input(&input_name, options.framing)?,
        count: input_bytes,
    };
    let mut apply_options = ApplyOptions::new(task);
    apply_options.public_keys = keys;
    apply_options.variables = std::env::vars().collect::<Variables>();
    apply_options.unsafe_mode = options.unsafe_mode;
    apply_options.enable_trim = enable_trim;
    apply_options.reboot_param_path = other_value(options, "reboot-param-path").map(Into::into);

    let fail = |err: Error| Failure::from_error(err, Mode::Apply, &input_name);
    nerveshub_fwup::apply(input, &mut target, &apply_options, &mut events).map_err(fail)?;
    target
        .sync()
        .map_err(|err| Failure::message(crate::wording(&err)))?;
    for (start, end) in target.trim_failures() {
        events.info(&format!(
            "BLKDISCARD (TRIM command) failed on range {start} to {end} (ignoring)"
        ));
    }

    events.show(events.scale.end());
    if mode == ProgressMode::Normal {
        let text = format!("\nSuccess!\n{}", events.elapsed_line());
        let _ = events.out.text(&text);
    }
    if mode == ProgressMode::Framed {
        events
            .out
            .result("")
            .map_err(|err| Failure::message(format!("Error writing output: {err}")))?;
    }
    Ok(())
}

/// Unmounts every mounted partition of `device` (fwup's default; `-U` turns it off), with
/// the system's `umount`. Only block devices are considered.
fn unmount_partitions(device: &str) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::FileTypeExt;
        let is_block = std::fs::metadata(device).is_ok_and(|m| m.file_type().is_block_device());
        if !is_block {
            return;
        }
        let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
            return;
        };
        for line in mounts.lines() {
            let mut fields = line.split_whitespace();
            let (Some(source), Some(mount_point)) = (fields.next(), fields.next()) else {
                continue;
            };
            if source.starts_with(device) {
                let _ = std::process::Command::new("umount")
                    .arg(mount_point)
                    .status();
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = device;
}
