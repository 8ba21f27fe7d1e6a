//! The bridge from the function dispatcher to the MBR, GPT and U-Boot environment code
//! (`mbr.rs`, `gpt.rs`, `uboot_env.rs`). Until those land, the functions report that they
//! are not supported.

use super::target::Target;
use crate::metaconf::{Gpt, Mbr, UbootEnvironment};
use crate::{Error, Result};

fn missing(function: &str, what: &'static str) -> Error {
    Error::ApplyNotSupported {
        function: function.to_owned(),
        what,
    }
}

/// `mbr_write(mbr)`.
pub(super) fn write_mbr(_target: &mut dyn Target, _mbr: &Mbr) -> Result<()> {
    Err(missing("mbr_write", "MBR writing"))
}

/// `gpt_write(gpt)`.
pub(super) fn write_gpt(_target: &mut dyn Target, _gpt: &Gpt) -> Result<()> {
    Err(missing("gpt_write", "GPT writing"))
}

/// Start block of MBR partition `partition` (0–3), `None` when it is not there.
pub(super) fn partition_offset(_target: &mut dyn Target, _partition: u8) -> Result<Option<u64>> {
    Err(missing("require-partition-offset", "MBR reading"))
}

/// `uboot_clearenv(env)`.
pub(super) fn uboot_clearenv(_target: &mut dyn Target, _env: &UbootEnvironment) -> Result<()> {
    Err(missing("uboot_clearenv", "U-Boot environments"))
}

/// `uboot_setenv(env, name, value)`.
pub(super) fn uboot_setenv(
    _target: &mut dyn Target,
    _env: &UbootEnvironment,
    _name: &str,
    _value: &str,
) -> Result<()> {
    Err(missing("uboot_setenv", "U-Boot environments"))
}

/// `uboot_unsetenv(env, name)`.
pub(super) fn uboot_unsetenv(
    _target: &mut dyn Target,
    _env: &UbootEnvironment,
    _name: &str,
) -> Result<()> {
    Err(missing("uboot_unsetenv", "U-Boot environments"))
}

/// `uboot_recover(env)`.
pub(super) fn uboot_recover(_target: &mut dyn Target, _env: &UbootEnvironment) -> Result<()> {
    Err(missing("uboot_recover", "U-Boot environments"))
}

/// The value of `name` in the environment, `None` when unset.
pub(super) fn uboot_get(
    _target: &mut dyn Target,
    _env: &UbootEnvironment,
    _name: &str,
) -> Result<Option<String>> {
    Err(missing("require-uboot-variable", "U-Boot environments"))
}
