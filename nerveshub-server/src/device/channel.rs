//! The `device` channel: what a join records, what is pushed after it, and what the device's
//! pushes change. Nothing here ever answers a device's push (nerves_hub_link crashes on a
//! reply to anything but its joins); the socket loop only calls in.

use std::time::{Duration, Instant};

use nerveshub_proto::{
    ChannelMessage, DeviceEvent, DeviceJoinParams, DeviceServerEvent, Progress, PublicKeys,
    StatusUpdate,
};
use serde_json::{Map, Value, json};

use crate::db::device_session::SessionDevice;
use crate::db::{self, Actor, Audit};
use crate::state::AppState;

/// "Last seen" is written at most this often while a device keeps talking.
pub(crate) const LAST_SEEN_INTERVAL: Duration = Duration::from_secs(60);
/// Update progress is written at most this often (and at every stage change and at 100).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// A pushed payload larger than this is recorded as a note of its size.
const MAX_RECORDED_PAYLOAD: usize = 16 * 1024;
/// Event names longer than this are cut when recorded.
const MAX_EVENT_NAME: usize = 100;

/// The `device` channel state of one socket.
#[derive(Debug)]
pub(crate) struct DeviceChannel {
    state: AppState,
    device: SessionDevice,
    connection_metadata: Map<String, Value>,
    last_seen_written: Instant,
    last_progress: Option<(String, u64, Instant)>,
    /// The `connection_established_at` this socket's join wrote.
    joined_at: Option<i64>,
}

/// What the channel asks of the socket after a join.
#[derive(Debug)]
pub(crate) enum JoinOutcome {
    /// Accept with `{}`, then push these.
    Accepted(Vec<DeviceServerEvent>),
    /// Refuse with `{"error":"could not connect"}` (the device rejoins after 5 s).
    Refused,
}

/// The metadata of the firmware a device reports, as NervesHub shows it (`firmware_metadata`
/// of the device JSON): every key present, `null` when not reported.
pub(crate) fn firmware_metadata_json(params: &DeviceJoinParams) -> Value {
    let fw = params.firmware_metadata();
    json!({
        "uuid": fw.uuid,
        "product": fw.product,
        "version": fw.version,
        "platform": fw.platform,
        "architecture": fw.architecture,
        "author": fw.author,
        "description": fw.description,
        "fwup_version": fw.fwup_version,
        "vcs_identifier": fw.vcs_identifier,
        "misc": fw.misc,
    })
}

impl DeviceChannel {
    pub(crate) fn new(state: AppState, device: SessionDevice) -> Self {
        DeviceChannel {
            state,
            device,
            connection_metadata: Map::new(),
            last_seen_written: Instant::now(),
            last_progress: None,
            joined_at: None,
        }
    }

    pub(crate) fn device(&self) -> &SessionDevice {
        &self.device
    }

    /// When this socket's join was recorded (`None` before a join).
    pub(crate) fn joined_at(&self) -> Option<i64> {
        self.joined_at
    }

    /// A join of `device` with nerves_hub_link's params: records the firmware metadata and the
    /// connection, completes an update the device now runs, and says what to push after the
    /// join reply (the org's public keys when asked for `on_connect`).
    pub(crate) async fn join(&mut self, params: Value) -> Result<JoinOutcome, sqlx::Error> {
        let params = match DeviceJoinParams::from_payload(params) {
            Ok(params) => params,
            Err(e) => {
                tracing::info!(device = %self.device.identifier, error = %e, "device join refused: bad params");
                return Ok(JoinOutcome::Refused);
            }
        };
        let firmware = firmware_metadata_json(&params);
        let new_uuid = params.nerves_fw_uuid.clone().filter(|u| !u.is_empty());
        let old_uuid = self
            .device
            .firmware_metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .and_then(|m| m.get("uuid").and_then(Value::as_str).map(str::to_owned));
        let mut meta = Map::new();
        meta.insert(
            "device_api_version".into(),
            json!(params.device_api_version),
        );
        if let Some(console) = &params.console_version {
            meta.insert("console_version".into(), json!(console));
        }
        if let Some(m) = &params.meta {
            if let Some(v) = m.firmware_validated {
                meta.insert("firmware_validated".into(), json!(v));
            }
            if let Some(v) = m.firmware_auto_revert_detected {
                meta.insert("firmware_auto_revert_detected".into(), json!(v));
            }
        }
        self.connection_metadata = meta;
        let firmware_text = firmware.to_string();
        let joined_at = self
            .state
            .db
            .record_device_join(
                self.device.id,
                &firmware_text,
                &Value::Object(self.connection_metadata.clone()).to_string(),
            )
            .await?;
        self.joined_at = Some(joined_at);
        self.device.firmware_metadata = Some(firmware_text);
        if let Some(uuid) = new_uuid.filter(|u| old_uuid.as_deref() != Some(u.as_str())) {
            self.firmware_changed(&uuid, params.nerves_fw_version.as_deref())
                .await?;
        }
        let mut pushes = Vec::new();
        if params.wants_fwup_public_keys() || params.wants_archive_public_keys() {
            let keys = self.state.db.org_key_values(self.device.org_id).await?;
            let keys = PublicKeys {
                keys,
                ..Default::default()
            };
            if params.wants_fwup_public_keys() {
                pushes.push(DeviceServerEvent::FwupPublicKeys(keys.clone()));
            }
            if params.wants_archive_public_keys() {
                pushes.push(DeviceServerEvent::ArchivePublicKeys(keys));
            }
        }
        crate::observability::device_joined();
        Ok(JoinOutcome::Accepted(pushes))
    }

    /// The device runs another firmware than last time: an update to it finished.
    async fn firmware_changed(&self, uuid: &str, version: Option<&str>) -> Result<(), sqlx::Error> {
        let completed = self
            .state
            .db
            .complete_updates_to(self.device.id, uuid)
            .await?;
        if completed > 0 {
            tracing::info!(device = %self.device.identifier, firmware = uuid, version = version.unwrap_or("unknown"), "update completed: the device runs the new firmware");
        }
        let mut tx = self.state.db.begin().await?;
        db::audit(
            &mut tx,
            Audit {
                org_id: Some(self.device.org_id),
                actor: Actor::Device(self.device.id),
                resource_type: "device",
                resource_id: &self.device.identifier,
                action: "firmware_changed",
                description: format!(
                    "device {} now runs firmware {uuid} (version {}){}",
                    self.device.identifier,
                    version.unwrap_or("unknown"),
                    if completed > 0 {
                        ", completing its update"
                    } else {
                        ""
                    }
                ),
            },
        )
        .await?;
        tx.commit().await
    }

    /// Any frame from the device: writes "last seen" now and then.
    pub(crate) async fn heard_from(&mut self) {
        if self.last_seen_written.elapsed() >= LAST_SEEN_INTERVAL {
            self.last_seen_written = Instant::now();
            if let Err(e) = self.state.db.touch_device_last_seen(self.device.id).await {
                tracing::warn!(device = %self.device.identifier, error = %e, "writing last seen failed");
            }
        }
    }

    /// A push on `device`: recorded, never answered.
    pub(crate) async fn push(&mut self, event: &str, payload: Value) {
        if let Err(e) = self.record_push(event, payload).await {
            tracing::warn!(device = %self.device.identifier, event, error = %e, "recording a device push failed");
        }
    }

    async fn record_push(&mut self, event: &str, payload: Value) -> Result<(), sqlx::Error> {
        let parsed = match DeviceEvent::from_parts(event, payload.clone()) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::debug!(device = %self.device.identifier, event, error = %e, "unreadable device push recorded as is");
                return self.record_event(event, &payload).await;
            }
        };
        match &parsed {
            DeviceEvent::FwupProgress(p) | DeviceEvent::UpdateProgress(p) => {
                return self.progress(event, p, &payload).await;
            }
            DeviceEvent::StatusUpdate(status) => self.status(status).await?,
            DeviceEvent::ReportNetworkInterface(n) => {
                self.connection_metadata
                    .insert("network_interface".into(), json!(n.interface));
                self.connection_metadata
                    .insert("network_interface_type".into(), json!(n.kind()));
                self.save_connection_metadata().await?;
            }
            DeviceEvent::ConnectionTypes(c) => {
                self.connection_metadata
                    .insert("connection_types".into(), Value::Array(c.values.clone()));
                self.save_connection_metadata().await?;
            }
            DeviceEvent::FirmwareValidated(_) => {
                self.connection_metadata
                    .insert("firmware_validated".into(), json!(true));
                self.save_connection_metadata().await?;
            }
            _ => {}
        }
        self.record_event(parsed.event(), &payload).await
    }

    async fn save_connection_metadata(&self) -> Result<(), sqlx::Error> {
        self.state
            .db
            .record_connection_metadata(
                self.device.id,
                &Value::Object(self.connection_metadata.clone()).to_string(),
            )
            .await
    }

    async fn record_event(&self, event: &str, payload: &Value) -> Result<(), sqlx::Error> {
        let mut text = payload.to_string();
        if text.len() > MAX_RECORDED_PAYLOAD {
            text = json!({"truncated": true, "size": text.len()}).to_string();
        }
        let name: String = event.chars().take(MAX_EVENT_NAME).collect();
        self.state
            .db
            .insert_device_event(self.device.id, &name, &text)
            .await
    }

    /// `fwup_progress` / `update_progress`: the update's progress, written at a bounded rate.
    async fn progress(
        &mut self,
        event: &str,
        progress: &Progress,
        payload: &Value,
    ) -> Result<(), sqlx::Error> {
        let stage = progress.effective_stage().to_owned();
        let value = progress.value.min(100);
        let due = match &self.last_progress {
            None => true,
            Some((last_stage, last_value, at)) => {
                *last_stage != stage
                    || (value == 100 && *last_value != 100)
                    || (value != *last_value && at.elapsed() >= PROGRESS_INTERVAL)
            }
        };
        if !due {
            return Ok(());
        }
        self.last_progress = Some((stage.clone(), value, Instant::now()));
        if let Some(update) = self.state.db.active_update(self.device.id).await? {
            let status = if stage == "completed" {
                "completed"
            } else {
                "updating"
            };
            let value = i64::try_from(value).unwrap_or(100);
            self.state
                .db
                .set_update_state(update.id, status, value, None)
                .await?;
        }
        self.record_event(event, payload).await
    }

    /// `status_update`: the outcome (or next step) of the device's current update.
    async fn status(&mut self, status: &StatusUpdate) -> Result<(), sqlx::Error> {
        // A status starts (or ends) an update: the next progress report is written at once.
        self.last_progress = None;
        let Some(update) = self.state.db.active_update(self.device.id).await? else {
            return Ok(());
        };
        let (new_status, progress, reason) = match status {
            _ if status.is_failure() => ("failed", update.progress, failure_reason(status)),
            StatusUpdate::Received { .. } => ("received", update.progress, None),
            StatusUpdate::Started { .. } => ("started", update.progress, None),
            StatusUpdate::Completed { .. } => ("completed", 100, None),
            StatusUpdate::Ignored { reason, .. } => {
                ("ignored", update.progress, Some(reason.clone()))
            }
            StatusUpdate::Rescheduled {
                delay_for_minutes,
                reason,
                ..
            } => (
                "rescheduled",
                update.progress,
                Some(match reason {
                    Some(r) => format!("{r} (retry in {delay_for_minutes} min)"),
                    None => format!("retry in {delay_for_minutes} min"),
                }),
            ),
            _ => return Ok(()),
        };
        // A late `received` or `started` does not undo progress already reported.
        if matches!(new_status, "received" | "started") && update.status == "updating" {
            return Ok(());
        }
        match new_status {
            "failed" => {
                tracing::info!(device = %self.device.identifier, firmware = %update.firmware_uuid, reason = reason.as_deref().unwrap_or(""), "update failed")
            }
            "completed" => {
                tracing::info!(device = %self.device.identifier, firmware = %update.firmware_uuid, "update completed")
            }
            "ignored" | "rescheduled" => {
                tracing::info!(device = %self.device.identifier, firmware = %update.firmware_uuid, status = new_status, reason = reason.as_deref().unwrap_or(""), "update not taken")
            }
            _ => {
                tracing::debug!(device = %self.device.identifier, firmware = %update.firmware_uuid, status = new_status, "update status")
            }
        }
        self.state
            .db
            .set_update_state(update.id, new_status, progress, reason.as_deref())
            .await
    }
}

fn failure_reason(status: &StatusUpdate) -> Option<String> {
    match status {
        StatusUpdate::Failed { reason, .. } => Some(reason.clone()),
        other => Some(other.status().to_owned()),
    }
}
