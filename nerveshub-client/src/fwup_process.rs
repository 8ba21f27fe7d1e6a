//! Applying a download with an external `fwup` process, as nerves_hub_link does:
//! `fwup --framing --exit-handshake --apply --no-unmount -d DEV --task TASK --public-key …`,
//! the archive on stdin in length-prefixed packets, `OK`/`ER`/`WN`/`PR` packets on stdout.
//!
//! fwup cannot be vetoed before `on-finish`, so the last [`HOLD_BACK`] bytes of the download
//! are held back until the whole-file checksum is known: fwup cannot finish an archive
//! whose end (central directory) it has not seen, and a mismatch ends its input early,
//! which makes it fail without switching slots.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use nerveshub_fwup::PublicKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tracing::debug;

use crate::apply::ApplyFailure;
use crate::client::FwupMessage;
use crate::download::Chunk;
use crate::error::UpdateError;
use crate::verify::StreamCheck;

/// Bytes held back from fwup until the download's checksum is checked (1 MiB: far more
/// than the central directory of any fwup archive).
pub(crate) const HOLD_BACK: usize = 1024 * 1024;

/// Largest stdout packet accepted from fwup.
const MAX_PACKET: usize = 1024 * 1024;

/// What the external engine needs.
pub(crate) struct ExternalJob {
    pub(crate) program: PathBuf,
    pub(crate) devpath: PathBuf,
    pub(crate) task: String,
    pub(crate) extra_args: Vec<String>,
    pub(crate) keys: Vec<PublicKey>,
    pub(crate) check: StreamCheck,
}

/// A packet fwup wrote on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    /// `OK` with its code.
    Ok(u16),
    /// `ER` with its message.
    Error(String),
    /// `WN` with its message.
    Warning(String),
    /// `PR` with its percentage.
    Progress(u16),
}

/// Parses one packet payload (type, code, text).
pub(crate) fn parse_packet(payload: &[u8]) -> Option<Packet> {
    if payload.len() < 4 {
        return None;
    }
    let code = u16::from_be_bytes([payload[2], payload[3]]);
    let text = String::from_utf8_lossy(&payload[4..]).into_owned();
    match &payload[..2] {
        b"OK" => Some(Packet::Ok(code)),
        b"ER" => Some(Packet::Error(text)),
        b"WN" => Some(Packet::Warning(text)),
        b"PR" => Some(Packet::Progress(code)),
        _ => None,
    }
}

async fn read_packets(mut stdout: ChildStdout, tx: mpsc::UnboundedSender<Packet>) {
    loop {
        let mut len = [0u8; 4];
        if stdout.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_PACKET {
            return;
        }
        let mut payload = vec![0u8; len];
        if stdout.read_exact(&mut payload).await.is_err() {
            return;
        }
        let Some(packet) = parse_packet(&payload) else {
            continue;
        };
        let last = matches!(packet, Packet::Ok(_) | Packet::Error(_));
        if tx.send(packet).is_err() || last {
            // After OK/ER come only the raw exit-handshake bytes.
            return;
        }
    }
}

async fn send_packet(stdin: &mut ChildStdin, data: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(data.len()).map_err(std::io::Error::other)?;
    stdin.write_all(&len.to_be_bytes()).await?;
    stdin.write_all(data).await
}

/// fwup's own report (its `ER` message, or how it ended): text from another process.
fn process_failure(message: String) -> ApplyFailure {
    ApplyFailure::Engine(UpdateError::FwupProcess(message))
}

/// Applies the download arriving on `rx` with the `fwup` program.
pub(crate) async fn apply_external(
    job: ExternalJob,
    mut rx: mpsc::Receiver<Chunk>,
    report: mpsc::UnboundedSender<FwupMessage>,
) -> Result<(), ApplyFailure> {
    let mut cmd = Command::new(&job.program);
    cmd.args([
        "--framing",
        "--exit-handshake",
        "--apply",
        "--no-unmount",
        "-i",
        "-",
        "-d",
    ])
    .arg(&job.devpath)
    .args(["--task", &job.task])
    .args(&job.extra_args);
    for key in &job.keys {
        cmd.args(["--public-key", &key.to_base64()]);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let spawn_error = |source| {
        ApplyFailure::Engine(UpdateError::FwupSpawn {
            program: job.program.clone(),
            source,
        })
    };
    let mut child = cmd.spawn().map_err(spawn_error)?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(process_failure("fwup's stdin or stdout is missing".into()));
    };
    let (ptx, mut prx) = mpsc::unbounded_channel();
    tokio::spawn(read_packets(stdout, ptx));

    let mut check = job.check;
    let mut held: VecDeque<Bytes> = VecDeque::new();
    let mut held_len = 0usize;
    let mut input_open = true;
    let mut stdin_ok = true;
    let outcome = loop {
        tokio::select! {
            biased;
            packet = prx.recv() => match packet {
                Some(Packet::Progress(p)) => {
                    let _ = report.send(FwupMessage::Progress(u8::try_from(p.min(100)).unwrap_or(100)));
                }
                Some(Packet::Warning(w)) => {
                    let _ = report.send(FwupMessage::Warning(w));
                }
                Some(Packet::Ok(0)) => break Ok(()),
                Some(Packet::Ok(code)) => break Err(process_failure(format!("fwup returned {code}"))),
                Some(Packet::Error(e)) => break Err(process_failure(e)),
                None => break Err(process_failure("fwup exited without a result".into())),
            },
            chunk = rx.recv(), if input_open => match chunk {
                Some(Chunk::Data(data)) => {
                    if let Err(reason) = check.update(&data) {
                        break Err(ApplyFailure::Download(reason));
                    }
                    held_len += data.len();
                    held.push_back(data);
                    while held.front().is_some_and(|f| held_len - f.len() >= HOLD_BACK) {
                        if let Some(front) = held.pop_front() {
                            held_len -= front.len();
                            stdin_ok = stdin_ok && send_packet(&mut stdin, &front).await.is_ok();
                        }
                    }
                }
                Some(Chunk::Failed(reason)) => break Err(ApplyFailure::Download(reason)),
                None => break Err(ApplyFailure::Download("aborted".into())),
                Some(Chunk::End) => {
                    input_open = false;
                    if let Err(reason) = check.finish() {
                        break Err(ApplyFailure::Download(reason));
                    }
                    for data in held.drain(..) {
                        stdin_ok = stdin_ok && send_packet(&mut stdin, &data).await.is_ok();
                    }
                    stdin_ok = stdin_ok && send_packet(&mut stdin, &[]).await.is_ok();
                    debug!(stdin_ok, bytes = check.total(), "archive handed to fwup");
                }
            },
        }
    };
    // Closing stdin ends fwup's exit handshake (or its input, on a failed download).
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    match (outcome, status) {
        (Ok(()), Ok(Ok(s))) if s.success() => Ok(()),
        (Ok(()), Ok(Ok(s))) => Err(process_failure(format!("fwup exited with {s}"))),
        (Ok(()), _) => Err(process_failure("fwup did not exit".into())),
        (Err(e), _) => {
            let _ = child.start_kill();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets() {
        assert_eq!(parse_packet(b"OK\0\0"), Some(Packet::Ok(0)));
        assert_eq!(parse_packet(b"PR\0\x2a"), Some(Packet::Progress(42)));
        assert_eq!(
            parse_packet(b"ER\0\0bad signature"),
            Some(Packet::Error("bad signature".into()))
        );
        assert_eq!(
            parse_packet(b"WN\0\0hi"),
            Some(Packet::Warning("hi".into()))
        );
        assert_eq!(parse_packet(b"XX\0\0"), None);
        assert_eq!(parse_packet(b"OK"), None);
    }

    proptest::proptest! {
        /// Whatever fwup (or something pretending to be it) writes: no panic, and a packet's
        /// kind always comes from its first two bytes.
        #[test]
        fn any_payload_parses_without_panicking(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Some(packet) = parse_packet(&payload) {
                let kind = &payload[..2];
                let expected = match packet {
                    Packet::Ok(_) => b"OK",
                    Packet::Error(_) => b"ER",
                    Packet::Warning(_) => b"WN",
                    Packet::Progress(_) => b"PR",
                };
                proptest::prop_assert_eq!(kind, expected);
            }
        }
    }
}
