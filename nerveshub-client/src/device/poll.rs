//! Poll mode ([`Transport::Poll`]): instead of a socket, `POST /device/api/v1/poll` with the
//! join params, at the configured interval or the server's, whichever is longer, with ±10 %
//! jitter. An update in the answer goes through the same download, verification, apply and
//! reboot as in channel mode; its status and progress are posted to
//! `/device/api/v1/status` and `/progress` instead of pushed.

use std::time::{Duration, UNIX_EPOCH};

use nerveshub_fwup::PublicKey;
use nerveshub_proto::{
    ChannelMessage, DeviceEvent, DeviceMeta, DeviceServerEvent, StatusUpdate, UpdatePayload,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Device, NO_PUBLIC_KEYS, RunningUpdate, Stopped, failed, progress, progress_due};
use crate::client::{Client, FwupMessage, RebootAction, RebootReason, UpdateDecision, UpdateInfo};
use crate::error::{Error, PollError, Result, UpdateError};
use crate::handle::Command;
use crate::update::{UpdateJob, UpdateMsg, run_update};

const POLL_PATH: &str = "/device/api/v1/poll";
const STATUS_PATH: &str = "/device/api/v1/status";
const PROGRESS_PATH: &str = "/device/api/v1/progress";
/// The jitter applied to every wait, in percent either way (the server's advice).
const JITTER_PERCENT: u64 = 10;
/// After a failed poll the next comes this soon, or after the interval if that is shorter.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// A poll or report taking longer than this (beyond connecting) has failed. The server
/// answers a poll within a few seconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A poll's answer.
struct Answer {
    update: Option<UpdatePayload>,
    /// `poll_interval_seconds`.
    advised: Option<Duration>,
}

/// Why a poll did not get an answer.
enum PollFailure {
    /// 429: polled too soon; try again after this.
    TooSoon(Duration),
    Failed(Error),
}

/// A small xorshift generator for the jitter (it only needs to differ between devices).
struct Jitter(u64);

impl Jitter {
    fn apply(&mut self, d: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = 2 * JITTER_PERCENT + 1;
        let percent = 100 - JITTER_PERCENT + self.0 % span;
        d * u32::try_from(percent).unwrap_or(100) / 100
    }
}

impl<C: Client> Device<C> {
    /// [`Device::run`] in poll mode.
    pub(super) async fn run_poll(&mut self, interval: Duration) -> Result<Stopped> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*self.socket_tls).clone())
            .connect_timeout(self.config.connect_timeout)
            .timeout(self.config.connect_timeout + REQUEST_TIMEOUT)
            .user_agent(concat!("nerveshub-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config_caused("HTTP client", e))?;
        let poll_url = self.config.poll_url(POLL_PATH)?;
        let seed = getrandom::u64()
            .unwrap_or_else(|_| u64::from(std::process::id()) ^ (self.config.wall_clock)());
        let mut jitter = Jitter(seed | 1);
        let (command_tx, mut commands) = mpsc::unbounded_channel();
        *self.commands.lock().unwrap_or_else(|e| e.into_inner()) = Some(command_tx);
        info!(url = %poll_url, ?interval, "polling");
        // The first poll goes out at once: it reports the firmware (after a reboot, the
        // update's outcome).
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                Some(command) = commands.recv() => match command {
                    Command::Reconnect => info!("polling now on request"),
                    Command::FirmwareValidated => {
                        info!("firmware validated; reporting it now");
                        let meta = self.config.join_params.meta.get_or_insert_with(DeviceMeta::default);
                        meta.firmware_validated = Some(true);
                    }
                },
            }
            wait = match self.poll_once(&http, &poll_url).await {
                Ok(answer) => {
                    let every = answer.advised.map_or(interval, |a| a.max(interval));
                    if let Some(payload) = answer.update
                        && let Some(stop) = self.poll_update(&http, payload).await
                    {
                        return Ok(stop);
                    }
                    jitter.apply(every)
                }
                Err(PollFailure::TooSoon(after)) => {
                    info!(
                        ?after,
                        "the server says the device polls too often; waiting"
                    );
                    after
                }
                Err(PollFailure::Failed(e)) => {
                    warn!(error = %e, "poll failed; retrying");
                    self.client.error(&e);
                    jitter.apply(RETRY_AFTER_FAILURE.min(interval))
                }
            };
            debug!(?wait, "next poll");
        }
    }

    /// One poll: the join params out, the update (if any) and the server's interval back.
    async fn poll_once(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
    ) -> std::result::Result<Answer, PollFailure> {
        let body = self.join_params(None).to_payload();
        let response = self.send(http, url, &body).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| PollFailure::Failed(Error::Poll(PollError::Http(e))))?;
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| PollFailure::Failed(Error::Poll(PollError::Answer(e))))?;
        let advised = answer
            .get("poll_interval_seconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs);
        if let Some(keys) = answer.get("fwup_public_keys")
            && let Ok(DeviceServerEvent::FwupPublicKeys(keys)) =
                DeviceServerEvent::from_parts("fwup_public_keys", keys.clone())
        {
            let parsed: Vec<PublicKey> = keys
                .keys
                .iter()
                .filter_map(|k| PublicKey::from_base64(k).ok())
                .collect();
            // An empty list never removes keys (nerves_hub_link).
            if !parsed.is_empty() {
                self.server_keys = parsed;
            }
        }
        let update = if answer.get("update_available").and_then(Value::as_bool) == Some(true) {
            match DeviceServerEvent::from_parts("update", answer) {
                Ok(DeviceServerEvent::Update(payload)) => Some(*payload),
                Ok(_) => None,
                Err(e) => return Err(PollFailure::Failed(Error::Proto(e))),
            }
        } else {
            None
        };
        Ok(Answer { update, advised })
    }

    /// POSTs `body` with fresh credentials; a non-success status is a failure (the server's
    /// `Date` on a 401 becomes the clock hint for signing).
    async fn send(
        &mut self,
        http: &reqwest::Client,
        url: &reqwest::Url,
        body: &Value,
    ) -> std::result::Result<reqwest::Response, PollFailure> {
        let mut request = http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        for (name, value) in self.auth_headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| PollFailure::Failed(Error::Poll(PollError::Http(e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if status.as_u16() == 429 {
            let after = header("retry-after")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(60);
            return Err(PollFailure::TooSoon(Duration::from_secs(after.max(1))));
        }
        if status.as_u16() == 401
            && let Some(d) = header("date")
                .and_then(|d| httpdate::parse_http_date(&d).ok())
                .and_then(|d| d.duration_since(UNIX_EPOCH).ok())
        {
            self.clock_hint = Some((d.as_secs(), Instant::now()));
        }
        Err(PollFailure::Failed(Error::Refused {
            status: status.as_u16(),
            reason: header("nh-connection-error-reason"),
        }))
    }

    /// Posts a report (`status_update` or `fwup_progress`); a failure is logged and reported
    /// to the client, and the update carries on.
    async fn report(&mut self, http: &reqwest::Client, event: &DeviceEvent) {
        let path = match event {
            DeviceEvent::StatusUpdate(s) => {
                info!(status = s.status(), "status_update");
                STATUS_PATH
            }
            _ => PROGRESS_PATH,
        };
        let url = match self.config.poll_url(path) {
            Ok(url) => url,
            Err(e) => {
                self.client.error(&e);
                return;
            }
        };
        let body = event.to_payload();
        debug!(event = event.event(), payload = %body, "report");
        if let Err(failure) = self.send(http, &url, &body).await {
            let e = match failure {
                PollFailure::Failed(e) => e,
                PollFailure::TooSoon(_) => Error::Poll(PollError::TooManyRequests),
            };
            warn!(error = %e, event = event.event(), "report failed");
            self.client.error(&e);
        }
    }

    /// An offered update: the product decides, then download, verify, apply and report as in
    /// channel mode. `Some` when a reboot stops the device.
    async fn poll_update(
        &mut self,
        http: &reqwest::Client,
        payload: UpdatePayload,
    ) -> Option<Stopped> {
        let uuid = payload.firmware_meta.uuid.clone();
        info!(?uuid, version = ?payload.firmware_meta.version, "update available");
        let keys = self.firmware_keys();
        if keys.is_empty() {
            warn!("{NO_PUBLIC_KEYS}");
            self.report(http, &DeviceEvent::StatusUpdate(failed(NO_PUBLIC_KEYS)))
                .await;
            self.client
                .fwup_message(&FwupMessage::Error(NO_PUBLIC_KEYS.into()));
            return None;
        }
        let received = StatusUpdate::Received {
            extra: Default::default(),
        };
        self.report(http, &DeviceEvent::StatusUpdate(received))
            .await;
        let info = UpdateInfo {
            payload,
            running_uuid: self.config.join_params.nerves_fw_uuid.clone(),
        };
        let status = match self.client.update_available(&info) {
            UpdateDecision::Apply => None,
            UpdateDecision::Ignore(reason) => Some(StatusUpdate::Ignored {
                reason,
                extra: Default::default(),
            }),
            UpdateDecision::Reschedule {
                delay_for_minutes,
                reason,
            } => Some(StatusUpdate::Rescheduled {
                delay_for_minutes,
                reason,
                extra: Default::default(),
            }),
        };
        if let Some(status) = status {
            self.report(http, &DeviceEvent::StatusUpdate(status)).await;
            return None;
        }
        self.report(http, &progress(0)).await;
        let (tx, rx) = mpsc::unbounded_channel();
        let job = UpdateJob {
            payload: info.payload,
            keys,
            updater: self.config.updater.clone(),
            policy: self.config.download.clone(),
            http: self.http.clone(),
        };
        // Dropping it (the caller cancelled `run`) aborts the download.
        let mut running = RunningUpdate {
            uuid,
            rx,
            task: tokio::spawn(run_update(job, tx)),
            last_progress: Some((0, Instant::now())),
        };
        let interval = self.config.progress_interval;
        loop {
            let result = match running.rx.recv().await {
                Some(UpdateMsg::Started) => {
                    let started = StatusUpdate::Started {
                        downloader_network_interface: self.config.network_interface.clone(),
                        extra: Default::default(),
                    };
                    self.report(http, &DeviceEvent::StatusUpdate(started)).await;
                    continue;
                }
                Some(UpdateMsg::Fwup(message)) => {
                    if let FwupMessage::Progress(p) = &message
                        && progress_due(running.last_progress, *p, Instant::now(), interval)
                    {
                        running.last_progress = Some((*p, Instant::now()));
                        self.report(http, &progress(*p)).await;
                    }
                    self.client.fwup_message(&message);
                    continue;
                }
                Some(UpdateMsg::Finished(result)) => result,
                None => Err(UpdateError::TaskEnded),
            };
            return match result {
                Ok(()) => {
                    self.report(http, &progress(100)).await;
                    let completed = StatusUpdate::Completed {
                        extra: Default::default(),
                    };
                    self.report(http, &DeviceEvent::StatusUpdate(completed))
                        .await;
                    self.client.fwup_message(&FwupMessage::Ok);
                    match self.client.reboot(RebootReason::UpdateApplied) {
                        RebootAction::Stop => Some(Stopped::Reboot(RebootReason::UpdateApplied)),
                        _ => None,
                    }
                }
                Err(e) => {
                    // The wire carries the reason as text (nerves_hub_link's `failed` reason).
                    let reason = e.to_string();
                    self.report(http, &DeviceEvent::StatusUpdate(failed(&reason)))
                        .await;
                    self.client.fwup_message(&FwupMessage::Error(reason));
                    self.client.error(&Error::Update(e));
                    None
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let mut j = Jitter(0x9E37_79B9_7F4A_7C15);
        let base = Duration::from_secs(100);
        let waits: Vec<Duration> = (0..1000).map(|_| j.apply(base)).collect();
        assert!(waits.iter().all(|w| *w >= Duration::from_secs(90)));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(110)));
        // Spread, not a constant.
        assert!(waits.iter().any(|w| *w < Duration::from_secs(97)));
        assert!(waits.iter().any(|w| *w > Duration::from_secs(103)));
    }
}
