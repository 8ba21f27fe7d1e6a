//! The product's decisions: the role of nerves_hub_link's `NervesHubLink.Client` behaviour.

use std::time::Duration;

use nerveshub_proto::{FirmwareMetadata, UpdatePayload};

use crate::error::Error;

/// An update the server offers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UpdateInfo {
    /// The `update` message as received.
    pub payload: UpdatePayload,
    /// The UUID of the firmware running now (`nerves_fw_uuid` of the join params).
    pub running_uuid: Option<String>,
}

impl UpdateInfo {
    /// The target firmware's metadata.
    pub fn firmware_meta(&self) -> &FirmwareMetadata {
        &self.payload.firmware_meta
    }

    /// Whether the offered firmware is the one running (same UUID).
    pub fn is_running_firmware(&self) -> bool {
        self.payload.firmware_meta.uuid.is_some()
            && self.payload.firmware_meta.uuid == self.running_uuid
    }
}

/// What to do with an offered update.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateDecision {
    /// Download and apply it now.
    Apply,
    /// Decline it: `status_update ignored` with the reason (may be empty).
    Ignore(String),
    /// Take it later: `status_update rescheduled` with `delay_for` in minutes (the server
    /// sends the update again when the delay is over).
    Reschedule {
        /// How long to wait, in minutes.
        delay_for_minutes: u64,
        /// Why, if the product wants to say.
        reason: Option<String>,
    },
}

impl UpdateDecision {
    /// Reschedule after `delay`, rounded to minutes with nerves_hub_link's minimum of 5.
    pub fn reschedule_after(delay: Duration) -> Self {
        let minutes = (delay.as_secs() + 30) / 60;
        UpdateDecision::Reschedule {
            delay_for_minutes: minutes.max(5),
            reason: None,
        }
    }
}

/// Why the device should reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebootReason {
    /// An update was applied (`status_update completed` was sent).
    UpdateApplied,
    /// The server asked (`reboot`; `rebooting` was sent).
    ServerRequest,
}

/// What the product does when a reboot is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebootAction {
    /// Stop: [`Device::run`](crate::Device::run) returns
    /// [`Stopped::Reboot`](crate::Stopped::Reboot) so the caller reboots (or simulates it).
    Stop,
    /// Keep running (the product reboots by itself later, or not at all).
    Continue,
}

/// A message from the update engine (fwup's `PR`, `WN`, `ER`, `OK`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FwupMessage {
    /// Percent applied.
    Progress(u8),
    /// An `info()` message or a warning.
    Warning(String),
    /// The update failed; the text is the reason sent to the server.
    Error(String),
    /// The update was applied.
    Ok,
}

/// The product's side of the client. Every method has nerves_hub_link's default behaviour,
/// so implement only what the product decides.
///
/// Methods are called from the task running [`Device::run`](crate::Device::run) and must
/// return quickly.
pub trait Client: Send + 'static {
    /// An update is available. The default applies it unless it is the running firmware.
    fn update_available(&mut self, info: &UpdateInfo) -> UpdateDecision {
        if info.is_running_firmware() {
            UpdateDecision::Ignore(String::new())
        } else {
            UpdateDecision::Apply
        }
    }

    /// Progress and results of an update.
    fn fwup_message(&mut self, _message: &FwupMessage) {}

    /// Something went wrong: a failed connection attempt, a closed channel, a failed
    /// update. The client retries by itself.
    fn error(&mut self, _error: &Error) {}

    /// The device joined `device` on the server (after every connect).
    fn connected(&mut self) {}

    /// A reboot is due. The default stops [`Device::run`](crate::Device::run).
    fn reboot(&mut self, _reason: RebootReason) -> RebootAction {
        RebootAction::Stop
    }

    /// The server asks the device to identify itself (blink an LED).
    fn identify(&mut self) {}
}

/// A [`Client`] with every default: apply new firmware, stop for reboots.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClient;

impl Client for DefaultClient {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reschedule_rounds_to_minutes_with_minimum_five() {
        assert_eq!(
            UpdateDecision::reschedule_after(Duration::from_secs(60)),
            UpdateDecision::Reschedule {
                delay_for_minutes: 5,
                reason: None
            }
        );
        assert_eq!(
            UpdateDecision::reschedule_after(Duration::from_secs(10 * 60 + 31)),
            UpdateDecision::Reschedule {
                delay_for_minutes: 11,
                reason: None
            }
        );
    }
}
