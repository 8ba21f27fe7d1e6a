//! Controlling a running [`Device`](crate::Device) from another task.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// The command channel of the `run` in progress.
pub(crate) type CommandSlot = Arc<Mutex<Option<mpsc::UnboundedSender<Command>>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Close the socket and reconnect.
    Reconnect,
    /// Push `firmware_validated` and report validation in later joins.
    FirmwareValidated,
}

/// Controls a [`Device`](crate::Device) while [`Device::run`](crate::Device::run) runs, from another task. Commands given while
/// the device is not running are dropped.
#[derive(Debug, Clone)]
pub struct DeviceHandle {
    pub(crate) commands: CommandSlot,
}

impl DeviceHandle {
    fn send(&self, command: Command) {
        let slot = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = slot.as_ref() {
            // A closed channel means `run` just ended: the command has nothing to act on.
            let _ = tx.send(command);
        }
    }

    /// Closes the socket; the device reconnects through its usual backoff (nerves_hub_link's
    /// `NervesHubLink.reconnect/0`).
    pub fn reconnect(&self) {
        self.send(Command::Reconnect);
    }

    /// The running firmware was validated after connecting: pushes `firmware_validated` and
    /// reports `firmware_validated: true` in later joins.
    pub fn firmware_validated(&self) {
        self.send(Command::FirmwareValidated);
    }
}
