//! The terminal side: reading a password or token (echo off on a terminal, one line from a
//! pipe), and writing to stderr (errors, progress).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, Result, bail};

/// Writes one line to stderr.
pub(crate) fn error_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Whether progress should be drawn (stderr is a terminal).
pub(crate) fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// Reads a secret: from the terminal without echo after printing `label`, or the first
/// line of stdin when it is not a terminal (scripts: `echo "$PW" | nerveshub login …`).
pub(crate) fn secret(label: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let text = if stdin.is_terminal() {
        let _ = write!(std::io::stderr().lock(), "{label}: ");
        let _ = std::io::stderr().flush();
        let text = read_without_echo()?;
        error_line("");
        text
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading stdin")?;
        line
    };
    let text = text.trim_end_matches(['\r', '\n']).to_owned();
    if text.is_empty() {
        bail!("no {} given", label.to_lowercase());
    }
    Ok(text)
}

#[cfg(unix)]
fn read_without_echo() -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // Restore echo whatever happened.
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    read.context("reading the terminal")?;
    Ok(line)
}

#[cfg(not(unix))]
fn read_without_echo() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the terminal")?;
    Ok(line)
}

/// A progress line on stderr, redrawn in place: `label  12.3 / 45.6 MB  27%`.
pub(crate) fn progress(label: &str, done: u64, total: u64) {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let mb = |n: u64| n as f64 / 1_000_000.0;
    let _ = write!(
        std::io::stderr().lock(),
        "\r{label}  {:.1} / {:.1} MB  {percent:>3}%",
        mb(done),
        mb(total)
    );
    if done >= total {
        error_line("");
    }
}
