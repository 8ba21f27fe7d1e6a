//! The `device` channel: what a join records, what is pushed after it, and what the device's
//! pushes change. Nothing here ever answers a device's push (nerves_hub_link crashes on a
//! reply to anything but its joins); the socket loop only calls in.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nerveshub_proto::{
    ChannelMessage, DeviceEvent, DeviceJoinParams, DeviceServerEvent, Progress, PublicKeys,
    StatusUpdate,
};
use serde_json::{Map, Value, json};

use super::auth::AuthKind;
use crate::db::{self, DeviceJoin, DeviceRef};
use crate::fleet::lifecycle;
use crate::state::AppState;

/// A talking device is marked seen at most this often (its join wrote "last seen"); the
/// presence writer writes the marks within seconds, so "last seen" is never older than this
/// plus a few seconds while the device talks (the stale sweep allows ten minutes).
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
    device: DeviceRef,
    connection_metadata: Map<String, Value>,
    last_seen_written: Instant,
    last_progress: Option<(String, u64, Instant)>,
    /// The `connection_established_at` this socket's join wrote.
    joined_at: Option<i64>,
    /// For a poll (no socket): how long the device counts as online after it, in ms.
    poll_online_ms: Option<i64>,
    /// A socket's peer (`ip:port`) and authentication, recorded by its join.
    remote_address: Option<String>,
    auth: Option<AuthKind>,
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
    pub(crate) fn new(state: AppState, device: DeviceRef) -> Self {
        DeviceChannel {
            state,
            device,
            connection_metadata: Map::new(),
            last_seen_written: Instant::now(),
            last_progress: None,
            joined_at: None,
            poll_online_ms: None,
            remote_address: None,
            auth: None,
        }
    }

    /// A socket's channel: its join records the peer's address and how the device
    /// authenticated.
    pub(crate) fn with_connection(mut self, peer: Option<SocketAddr>, auth: AuthKind) -> Self {
        self.remote_address = peer.map(|addr| addr.to_string());
        self.auth = Some(auth);
        self
    }

    /// The channel of one HTTP poll: its "join" records a poll, online for `online_ms`,
    /// and leaves the socket's connection state alone.
    pub(crate) fn polled(state: AppState, device: DeviceRef, online_ms: i64) -> Self {
        DeviceChannel {
            poll_online_ms: Some(online_ms),
            ..DeviceChannel::new(state, device)
        }
    }

    pub(crate) fn device(&self) -> &DeviceRef {
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
        // A NUL cannot be stored in a PostgreSQL text column (the uuid and version are kept
        // raw): refused before anything is written, like the API's input.
        if has_nul(&params) {
            tracing::info!(device = %self.device.identifier, "device join refused: NUL character in params");
            return Ok(JoinOutcome::Refused);
        }
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
        let connection_text = Value::Object(self.connection_metadata.clone()).to_string();
        let now = self.state.clock.now_ms();
        // The record and the audit row of a firmware change commit together.
        let firmware_changed = new_uuid
            .as_deref()
            .filter(|u| old_uuid.as_deref() != Some(*u));
        // Which node held the device before a socket's join: a socket there, older than this
        // one, closes (the duplicate-connection rule across nodes). Read before the
        // transaction takes its connection.
        let previous_node = if self.poll_online_ms.is_none() && self.state.devices.clustered() {
            self.state.db.device_node(self.device.id).await?
        } else {
            None
        };
        let mut tx = self.state.db.begin().await?;
        if let Some(online_ms) = self.poll_online_ms {
            db::record_device_poll(
                &mut tx,
                now,
                self.device.id,
                &firmware_text,
                new_uuid.as_deref(),
                &connection_text,
                now.saturating_add(online_ms),
            )
            .await?;
            if let Some(uuid) = firmware_changed {
                let version = params.nerves_fw_version.as_deref();
                db::audit(
                    &mut tx,
                    lifecycle::firmware_changed(self.device_ref(), uuid, version),
                )
                .await?;
            }
            tx.commit().await?;
        } else {
            let joined_at = db::record_device_join(
                &mut tx,
                now,
                self.device.id,
                &DeviceJoin {
                    firmware_metadata: &firmware_text,
                    firmware_uuid: new_uuid.as_deref(),
                    connection_metadata: &connection_text,
                    node_id: self.state.cluster.node_id(),
                    remote_address: self.remote_address.as_deref(),
                    auth: self.auth.map(AuthKind::as_str),
                },
            )
            .await?;
            if let Some(uuid) = firmware_changed {
                let version = params.nerves_fw_version.as_deref();
                db::audit(
                    &mut tx,
                    lifecycle::firmware_changed(self.device_ref(), uuid, version),
                )
                .await?;
            }
            tx.commit().await?;
            self.joined_at = Some(joined_at);
            self.last_seen_written = Instant::now();
            self.state.devices.joined_elsewhere_before(
                self.device.id,
                previous_node.as_deref(),
                joined_at,
            );
        }
        self.device.firmware_metadata = Some(firmware_text);
        let report = lifecycle::JoinReport {
            uuid: new_uuid,
            version: params.nerves_fw_version.clone(),
            platform: params.nerves_fw_platform.clone(),
            architecture: params.nerves_fw_architecture.clone(),
            validated: params.meta.as_ref().and_then(|m| m.firmware_validated),
            currently_downloading: params
                .currently_downloading_uuid
                .clone()
                .filter(|u| !u.is_empty()),
            polled: self.poll_online_ms.is_some(),
        };
        // The update lifecycle (completion, health gate) and membership; a failure there is
        // logged, the join itself stands.
        if let Err(e) = lifecycle::on_join(&self.state, self.device.id, &report).await {
            tracing::warn!(device = %self.device.identifier, error = %e, "fleet join handling failed");
        }
        let mut pushes = Vec::new();
        if params.wants_fwup_public_keys() || params.wants_archive_public_keys() {
            let keys = (self.state.db.keys(self.device.org_id).await?)
                .into_iter()
                .map(|k| k.key)
                .collect();
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
        if self.poll_online_ms.is_none() {
            crate::observability::device_joined();
        }
        Ok(JoinOutcome::Accepted(pushes))
    }

    /// Any frame from the device: marks it seen now and then, once joined. Never waits: the
    /// presence writer writes "last seen" for all devices in batches.
    pub(crate) fn heard_from(&mut self) {
        if self.joined_at.is_some() && self.last_seen_written.elapsed() >= LAST_SEEN_INTERVAL {
            self.last_seen_written = Instant::now();
            self.state.devices.presence.seen(self.device.id);
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
                let running = self.running_uuid();
                lifecycle::on_validated(&self.state, self.device_ref(), running.as_deref()).await?;
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
        let value = i64::try_from(value).unwrap_or(100);
        lifecycle::on_progress(&self.state, self.device.id, stage == "completed", value).await?;
        self.record_event(event, payload).await
    }

    /// `status_update`: the outcome (or next step) of the device's current update.
    async fn status(&mut self, status: &StatusUpdate) -> Result<(), sqlx::Error> {
        // A status starts (or ends) an update: the next progress report is written at once.
        self.last_progress = None;
        lifecycle::on_status(&self.state, self.device_ref(), status).await
    }

    fn device_ref(&self) -> lifecycle::DeviceRef<'_> {
        lifecycle::DeviceRef {
            id: self.device.id,
            org_id: self.device.org_id,
            identifier: &self.device.identifier,
        }
    }

    /// The uuid of the firmware the device reported at its join.
    fn running_uuid(&self) -> Option<String> {
        self.device
            .firmware_metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .and_then(|m| m.get("uuid").and_then(Value::as_str).map(str::to_owned))
    }
}

/// Whether any key or string anywhere in `value` holds a NUL character.
pub(crate) fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_keys_strings_and_nesting() {
        assert!(!has_nul(
            &json!({"nerves_fw_uuid": "abc", "meta": {"x": [1, "y"]}})
        ));
        assert!(has_nul(&json!({"nerves_fw_uuid": "a\u{0}b"})));
        assert!(has_nul(&json!({"meta": {"list": ["ok", "\u{0}"]}})));
        assert!(has_nul(&json!({"k\u{0}": 1})));
    }
}
