//! The firmware downloader: HTTP GET with Range resume and nerves_hub_link's retry and
//! timeout policy, handing the bytes on in order through a bounded channel (back-pressure
//! from the apply engine slows the download, as in nerves_hub_link).

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::DownloadPolicy;

/// One item of the download stream. The stream ends with [`Chunk::End`] or
/// [`Chunk::Failed`]; a channel that closes without either was abandoned (the update was
/// cancelled) and must not count as a complete download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// The next bytes of the file.
    Data(Bytes),
    /// The whole file was received.
    End,
    /// The download failed for good, with nerves_hub_link's reason.
    Failed(String),
}

/// The URL without its query (signed URLs carry credentials there), for logs.
pub(crate) fn redacted(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

enum Attempt {
    /// The whole file was received.
    Done,
    /// The connection broke; resume after the retry delay.
    Resume(Interruption),
    /// Give up.
    Fatal(String),
}

/// Downloads `url` into `out`, resuming with `Range` after disconnects. `started` is called
/// on every successful (re)connect (nerves_hub_link pushes `started` each time).
///
/// Returns the number of bytes downloaded, or the reason it failed (also sent into `out`).
pub(crate) async fn download(
    http: &reqwest::Client,
    url: &reqwest::Url,
    policy: &DownloadPolicy,
    out: &mpsc::Sender<Chunk>,
    mut started: impl FnMut() + Send,
) -> Result<u64, String> {
    let result = run(http, url, policy, out, &mut started).await;
    // The receiver may be gone already (the apply stopped first): nothing to tell then.
    match &result {
        Ok(_) => {
            let _ = out.send(Chunk::End).await;
        }
        Err(reason) => {
            warn!(url = %redacted(url), %reason, "download failed");
            let _ = out.send(Chunk::Failed(reason.clone())).await;
        }
    }
    result
}

/// Why a download attempt broke off (logged; the attempt is resumed).
#[derive(Debug)]
enum Interruption {
    /// No data for the idle timeout.
    IdleTimeout,
    /// The request failed.
    Request(reqwest::Error),
    /// The body broke off.
    Transfer(reqwest::Error),
    /// The body ended before its announced length.
    LengthMismatch,
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interruption::IdleTimeout => f.write_str("idle_timeout"),
            Interruption::Request(e) => write!(f, "request failed: {e}"),
            Interruption::Transfer(e) => write!(f, "transfer failed: {e}"),
            Interruption::LengthMismatch => f.write_str("downloaded_content_length_mismatch"),
        }
    }
}

struct State {
    received: u64,
    total: Option<u64>,
}

async fn run(
    http: &reqwest::Client,
    url: &reqwest::Url,
    policy: &DownloadPolicy,
    out: &mpsc::Sender<Chunk>,
    started: &mut (dyn FnMut() + Send),
) -> Result<u64, String> {
    let give_up_at = Instant::now() + policy.max_time;
    let mut state = State {
        received: 0,
        total: None,
    };
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let outcome = tokio::select! {
            o = one_attempt(http, url, policy, out, started, &mut state, attempt - 1) => o,
            () = tokio::time::sleep_until(give_up_at) => Attempt::Fatal("max_timeout_reached".into()),
        };
        match outcome {
            Attempt::Done => {
                info!(url = %redacted(url), bytes = state.received, "download complete");
                return Ok(state.received);
            }
            Attempt::Fatal(reason) => return Err(reason),
            Attempt::Resume(reason) => {
                if attempt >= policy.max_attempts {
                    warn!(%reason, attempt, "download interrupted; no attempts left");
                    return Err("max_disconnects_reached".into());
                }
                info!(%reason, received = state.received, attempt, "download interrupted; resuming");
                tokio::select! {
                    () = tokio::time::sleep(policy.time_between_retries) => {}
                    () = tokio::time::sleep_until(give_up_at) => return Err("max_timeout_reached".into()),
                }
            }
        }
    }
}

async fn one_attempt(
    http: &reqwest::Client,
    url: &reqwest::Url,
    policy: &DownloadPolicy,
    out: &mpsc::Sender<Chunk>,
    started: &mut (dyn FnMut() + Send),
    state: &mut State,
    retry_number: u32,
) -> Attempt {
    let mut request = http
        .get(url.clone())
        .header("content-type", "application/octet-stream")
        .header("x-retry-number", retry_number.to_string());
    if state.received > 0 {
        request = request.header("range", format!("bytes={}-", state.received));
    }
    let response = match tokio::time::timeout(policy.idle_timeout, request.send()).await {
        Err(_) => return Attempt::Resume(Interruption::IdleTimeout),
        Ok(Err(e)) => return Attempt::Resume(Interruption::Request(e)),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if !status.is_success() {
        return Attempt::Fatal(format!("http_error {}", status.as_u16()));
    }
    started();
    let length = response.content_length();
    // A server that ignores Range answers 200 with the whole file: skip what we have.
    let mut skip = if status.as_u16() == 206 {
        0
    } else {
        state.received
    };
    let resume_from = state.received - skip;
    if state.total.is_none() {
        state.total = length.map(|l| l + resume_from);
    }
    debug!(
        status = status.as_u16(),
        ?length,
        resume_from,
        "download response"
    );
    let worst_case = Instant::now() + policy.worst_case_timeout(length.unwrap_or(0));
    let mut body = response.bytes_stream();
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(policy.idle_timeout, body.next()) => n,
            () = tokio::time::sleep_until(worst_case) => {
                return Attempt::Fatal("worst_case_download_speed_reached".into());
            }
        };
        match next {
            Err(_) => return Attempt::Resume(Interruption::IdleTimeout),
            Ok(Some(Err(e))) => return Attempt::Resume(Interruption::Transfer(e)),
            Ok(None) => {
                return match state.total {
                    Some(total) if state.received < total => {
                        Attempt::Resume(Interruption::LengthMismatch)
                    }
                    _ => Attempt::Done,
                };
            }
            Ok(Some(Ok(mut data))) => {
                if skip > 0 {
                    let n = usize::try_from(skip).unwrap_or(usize::MAX).min(data.len());
                    let _ = data.split_to(n);
                    skip -= n as u64;
                }
                if data.is_empty() {
                    continue;
                }
                state.received += data.len() as u64;
                if out.send(Chunk::Data(data)).await.is_err() {
                    // The apply stopped (and reports why); stop downloading.
                    return Attempt::Fatal("aborted".into());
                }
            }
        }
    }
}
