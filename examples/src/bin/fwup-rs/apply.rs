//! `fwup-rs -a`: apply a task of an archive to an image file or a block device, with fwup's
//! output modes (normal, `-q`, `-n`, `--framing`), progress range and exit handshake.

use std::io::{self, Read};
use std::process::ExitCode;
use std::time::Instant;

use nerveshub_fwup::apply::{ApplyEvents, ApplyOptions, FileTarget, PercentScale, Progress};
use nerveshub_fwup::{Error, Variables};

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
}

impl CliEvents<'_> {
    fn show(&mut self, percent: u8) {
        if self.last == Some(percent) {
            return;
        }
        self.last = Some(percent);
        // A closed stdout must not stop the update; fwup ignores these write errors too.
        let _ = match self.mode {
            ProgressMode::Quiet => Ok(()),
            ProgressMode::Numeric => self.out.text(&format!("{percent}\n")),
            ProgressMode::Framed => self.out.progress_packet(percent),
            ProgressMode::Normal => {
                let filled = usize::from(percent) * 36 / 100;
                self.out.text(&format!(
                    "\r\x1b[K{percent:3}% [{}{}]",
                    "=".repeat(filled),
                    " ".repeat(36 - filled)
                ))
            }
        };
    }
}

impl ApplyEvents for CliEvents<'_> {
    fn progress(&mut self, progress: Progress) {
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
    let started = Instant::now();
    let handshake = other_flag(options, "exit-handshake");
    let result = run(options, out, started);
    let code = match result {
        Ok(()) => 0u8,
        Err(failure) => {
            if let Some(detail) = &failure.diagnostic {
                out.diagnostic(detail);
            }
            if out.is_framed() {
                // fwup ends its (framed) progress line on stderr before a framed error.
                out.diagnostic("");
            } else if !options.quiet && !options.numeric_progress {
                let _ = out.text("\r\x1b[K");
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

fn run(options: &Options, out: &mut Output, started: Instant) -> Result<(), Failure> {
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

    let mut events = CliEvents {
        out,
        mode,
        scale: PercentScale::new(low, high),
        last: None,
    };
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

    let input = open_input(&input_name, options.framing)?;
    let mut apply_options = ApplyOptions::new(task);
    apply_options.public_keys = keys;
    apply_options.variables = std::env::vars().collect::<Variables>();
    apply_options.unsafe_mode = options.unsafe_mode;
    apply_options.enable_trim = other_flag(options, "enable-trim");
    apply_options.reboot_param_path = other_value(options, "reboot-param-path").map(Into::into);

    let fail = |err: Error| Failure::from_error(err, Mode::Apply, &input_name);
    nerveshub_fwup::apply::apply(input, &mut target, &apply_options, &mut events).map_err(fail)?;
    target
        .sync()
        .map_err(|err| Failure::message(err.to_string()))?;

    events.show(events.scale.end());
    if mode == ProgressMode::Normal {
        let elapsed = started.elapsed().as_secs_f64();
        let _ = events
            .out
            .text(&format!("\nSuccess!\nElapsed time: {elapsed:.3} s\n"));
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
