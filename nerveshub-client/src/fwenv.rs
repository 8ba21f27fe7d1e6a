//! The device's firmware metadata, read from its U-Boot environment the way Nerves keeps it:
//! `nerves_fw_active` names the active slot (`a` or `b`) and the slot's keys carry that
//! prefix (`a.nerves_fw_version`, …).

use std::path::{Path, PathBuf};

use nerveshub_fwup::{FileTarget, UbootEnv, UbootEnvLocation, read_uboot_env, write_uboot_env};
use nerveshub_proto::{DeviceJoinParams, DeviceMeta};
use serde_json::Value;

use crate::error::{Error, Result};

/// Where the Nerves systems keep their U-Boot environment: 16 blocks of 512 bytes at block
/// 16, no redundant copy.
pub const NERVES_UBOOT_ENV: UbootEnvLocation = UbootEnvLocation {
    offset: 16 * 512,
    size: 16 * 512,
    redundant_offset: None,
};

/// A device's U-Boot environment, read from an image file or block device.
#[derive(Debug, Clone)]
pub struct FirmwareEnv {
    env: UbootEnv,
    path: PathBuf,
    location: UbootEnvLocation,
}

impl FirmwareEnv {
    /// Reads the environment at `location` of the image or block device at `path`.
    ///
    /// # Errors
    /// [`Error::File`] for a missing file, [`Error::Fwup`] when it cannot be opened or holds
    /// no valid environment.
    pub fn read(path: &Path, location: UbootEnvLocation) -> Result<Self> {
        // FileTarget::open creates missing files; a missing image is an error here.
        std::fs::metadata(path).map_err(|e| Error::file(path, e))?;
        let mut target = FileTarget::open(path)?;
        let env = read_uboot_env(&mut target, &location)?;
        Ok(FirmwareEnv {
            env,
            path: path.to_owned(),
            location,
        })
    }

    /// An environment held in memory (not tied to a file; [`write`](Self::write) fails).
    pub fn from_env(env: UbootEnv) -> Self {
        FirmwareEnv {
            env,
            path: PathBuf::new(),
            location: NERVES_UBOOT_ENV,
        }
    }

    /// The environment's variables.
    pub fn env(&self) -> &UbootEnv {
        &self.env
    }

    /// The active slot (`nerves_fw_active`), e.g. `a`.
    pub fn active_slot(&self) -> Option<&str> {
        self.env.get("nerves_fw_active")
    }

    /// A variable of the active slot, without its prefix: `get_active("nerves_fw_version")`
    /// reads `a.nerves_fw_version` when slot `a` is active.
    pub fn get_active(&self, name: &str) -> Option<&str> {
        let slot = self.active_slot()?;
        self.env.get(&format!("{slot}.{name}"))
    }

    /// Whether the running firmware is validated, as nerves_hub_link decides it:
    /// `upgrade_available` (`0` valid, `1` not), else `nerves_fw_validated` (`0` not valid,
    /// anything else or missing valid), else the active slot's `nerves_fw_validated`.
    pub fn firmware_validated(&self) -> bool {
        if let Some(v) = self.env.get("upgrade_available") {
            return v != "1";
        }
        let validated = self
            .env
            .get("nerves_fw_validated")
            .or_else(|| self.get_active("nerves_fw_validated"));
        validated != Some("0")
    }

    /// Whether the bootloader went back to the other slot: the other slot's
    /// `nerves_fw_validated` is `0` and it names a platform and an architecture.
    pub fn auto_revert_detected(&self) -> bool {
        let other = match self.active_slot() {
            Some("a") => "b",
            Some("b") => "a",
            _ => return false,
        };
        let get = |k: &str| self.env.get(&format!("{other}.{k}")).unwrap_or("");
        get("nerves_fw_validated") == "0"
            && !get("nerves_fw_platform").is_empty()
            && !get("nerves_fw_architecture").is_empty()
    }

    /// The join params nerves_hub_link sends: every active-slot variable with its prefix
    /// removed, plus `meta` (validation and auto-revert). The caller adds `fwup_version`;
    /// the client adds the protocol versions and download state.
    pub fn join_params(&self) -> DeviceJoinParams {
        let mut map = serde_json::Map::new();
        if let Some(slot) = self.active_slot() {
            let prefix = format!("{slot}.");
            for (name, value) in self.env.iter() {
                let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value))
                else {
                    continue;
                };
                if let Some(key) = name.strip_prefix(&prefix) {
                    map.insert(key.to_owned(), Value::String(value.to_owned()));
                }
            }
        }
        // Every value is a string, which all the typed fields accept; an unexpected shape
        // cannot occur, and the fallback keeps the keys anyway.
        let mut params =
            DeviceJoinParams::from_payload(Value::Object(map.clone())).unwrap_or_else(|_| {
                DeviceJoinParams {
                    extra: map,
                    ..DeviceJoinParams::default()
                }
            });
        params.meta = Some(DeviceMeta {
            firmware_auto_revert_detected: Some(self.auto_revert_detected()),
            firmware_validated: Some(self.firmware_validated()),
            extra: Default::default(),
        });
        params
    }

    /// Marks the running firmware validated as `Nerves.Runtime.validate_firmware/0` does:
    /// `nerves_fw_validated=1`, and `upgrade_available=0` when that variable exists. The
    /// change is in memory; call [`write`](Self::write) to store it.
    pub fn validate(&mut self) {
        self.env.set("nerves_fw_validated", "1");
        if self.env.get("upgrade_available").is_some() {
            self.env.set("upgrade_available", "0");
        }
    }

    /// Writes the environment back where it was read from.
    ///
    /// # Errors
    /// [`Error::Fwup`] on I/O errors; [`Error::Config`] for an environment not read from a
    /// file.
    pub fn write(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            return Err(Error::config("environment was not read from a file"));
        }
        let mut target = FileTarget::open(&self.path)?;
        write_uboot_env(&mut target, &self.location, &self.env)?;
        target.sync()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> FirmwareEnv {
        let mut e = UbootEnv::new();
        for (k, v) in pairs {
            e.set(k, v);
        }
        FirmwareEnv::from_env(e)
    }

    #[test]
    fn active_slot_keys_become_join_params() {
        let e = env(&[
            ("nerves_fw_active", "b"),
            ("a.nerves_fw_version", "1.0.0"),
            ("b.nerves_fw_version", "2.0.0"),
            ("b.nerves_fw_uuid", "u-2"),
            ("b.nerves_fw_devpath", "/dev/mmcblk0"),
            ("nerves_fw_validated", "0"),
        ]);
        let p = e.join_params();
        assert_eq!(p.nerves_fw_version.as_deref(), Some("2.0.0"));
        assert_eq!(p.nerves_fw_uuid.as_deref(), Some("u-2"));
        assert_eq!(p.extra["nerves_fw_devpath"], "/dev/mmcblk0");
        let meta = p.meta.unwrap();
        assert_eq!(meta.firmware_validated, Some(false));
        assert_eq!(meta.firmware_auto_revert_detected, Some(false));
    }

    #[test]
    fn validation_rules() {
        assert!(env(&[]).firmware_validated());
        assert!(!env(&[("upgrade_available", "1")]).firmware_validated());
        let mut e = env(&[("upgrade_available", "1"), ("nerves_fw_validated", "0")]);
        e.validate();
        assert!(e.firmware_validated());
        assert_eq!(e.env().get("upgrade_available"), Some("0"));
        let reverted = env(&[
            ("nerves_fw_active", "a"),
            ("b.nerves_fw_validated", "0"),
            ("b.nerves_fw_platform", "rpi4"),
            ("b.nerves_fw_architecture", "arm"),
        ]);
        assert!(reverted.auto_revert_detected());
    }
}
