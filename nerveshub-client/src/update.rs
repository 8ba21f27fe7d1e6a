//! One firmware update: the downloader and the apply engine run side by side, joined by a
//! bounded channel; what the driver must report comes back as [`UpdateMsg`]s.

use nerveshub_fwup::PublicKey;
use nerveshub_proto::UpdatePayload;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::apply::{ApplyFailure, BuiltInJob, apply_built_in};
use crate::client::FwupMessage;
use crate::config::{DownloadPolicy, Updater};
use crate::download::{download, redacted};
use crate::error::UpdateError;
#[cfg(feature = "fwup-process")]
use crate::fwup_process::{ExternalJob, apply_external};
use crate::verify::StreamCheck;

/// Chunks buffered between the downloader and the engine.
const CHANNEL_DEPTH: usize = 16;

/// What an update task tells the driver.
#[derive(Debug)]
pub(crate) enum UpdateMsg {
    /// The downloader (re)connected: push `status_update started`.
    Started,
    /// Progress or a warning from the engine.
    Fwup(FwupMessage),
    /// The update ended: `Ok` applied, `Err` failed (its text is the `failed` reason).
    Finished(Result<(), UpdateError>),
}

/// Everything one update needs.
pub(crate) struct UpdateJob {
    pub(crate) payload: UpdatePayload,
    pub(crate) keys: Vec<PublicKey>,
    pub(crate) updater: Updater,
    pub(crate) policy: DownloadPolicy,
    pub(crate) http: reqwest::Client,
}

/// Runs the update, reporting to `tx`. Never fails itself: the outcome is the last message.
pub(crate) async fn run_update(job: UpdateJob, tx: mpsc::UnboundedSender<UpdateMsg>) {
    let result = update(job, &tx).await;
    match &result {
        Ok(()) => info!("update applied"),
        Err(reason) => warn!(%reason, "update failed"),
    }
    let _ = tx.send(UpdateMsg::Finished(result));
}

async fn update(job: UpdateJob, tx: &mpsc::UnboundedSender<UpdateMsg>) -> Result<(), UpdateError> {
    let url = reqwest::Url::parse(&job.payload.firmware_url)
        .map_err(|e| UpdateError::InvalidUrl(Box::new(e)))?;
    let check = StreamCheck::new(
        job.payload.checksum.as_deref(),
        job.payload.partials_checksums.as_deref(),
    )
    .map_err(UpdateError::Download)?;
    info!(url = %redacted(&url), size = ?job.payload.size, "downloading firmware");

    let (chunk_tx, chunk_rx) = mpsc::channel(CHANNEL_DEPTH);
    let (fwup_tx, mut fwup_rx) = mpsc::unbounded_channel();
    let forward = {
        let tx = tx.clone();
        async move {
            while let Some(m) = fwup_rx.recv().await {
                let _ = tx.send(UpdateMsg::Fwup(m));
            }
        }
    };
    let apply = async {
        match job.updater {
            Updater::BuiltIn { devpath, task } => {
                let job = BuiltInJob {
                    devpath,
                    task,
                    keys: job.keys,
                    check,
                };
                apply_built_in(job, chunk_rx, fwup_tx).await
            }
            #[cfg(feature = "fwup-process")]
            Updater::Fwup {
                program,
                devpath,
                task,
                extra_args,
            } => {
                let job = ExternalJob {
                    program,
                    devpath,
                    task,
                    extra_args,
                    keys: job.keys,
                    check,
                };
                apply_external(job, chunk_rx, fwup_tx).await
            }
        }
    };
    let started_tx = tx.clone();
    let fetch = async {
        download(&job.http, &url, &job.policy, &chunk_tx, || {
            let _ = started_tx.send(UpdateMsg::Started);
        })
        .await
    };
    let (downloaded, applied, ()) = tokio::join!(fetch, apply, forward);
    match (downloaded, applied) {
        (_, Ok(())) => Ok(()),
        (Err(reason), _) if reason != "aborted" => Err(UpdateError::Download(reason)),
        (_, Err(ApplyFailure::Download(reason))) => Err(UpdateError::Download(reason)),
        (_, Err(ApplyFailure::Engine(e))) => Err(e),
    }
}
