//! The bridge from the function dispatcher and the requirements to the MBR, GPT and U-Boot
//! environment modules.

use super::target::Target;
use super::uboot_env;
use crate::Result;
use crate::metaconf::{Gpt, Mbr, UbootEnvironment};
use crate::partition;

/// `mbr_write(mbr)`.
pub(super) fn write_mbr(target: &mut dyn Target, section: &Mbr) -> Result<()> {
    partition::write_mbr(target, section)
}

/// `gpt_write(gpt)`.
pub(super) fn write_gpt(target: &mut dyn Target, section: &Gpt) -> Result<()> {
    partition::write_gpt(target, section)
}

/// Start block of MBR partition `partition` (0–3), `None` when it is not there.
pub(super) fn partition_offset(target: &mut dyn Target, partition: u8) -> Result<Option<u64>> {
    partition::partition_offset(target, partition)
}

/// `uboot_clearenv(env)`.
pub(super) fn uboot_clearenv(target: &mut dyn Target, env: &UbootEnvironment) -> Result<()> {
    uboot_env::clear_env(target, env)
}

/// `uboot_setenv(env, name, value)`: read (a CRC error is fatal), modify, write back.
pub(super) fn uboot_setenv(
    target: &mut dyn Target,
    env: &UbootEnvironment,
    name: &str,
    value: &str,
) -> Result<()> {
    let mut vars = uboot_env::read_env(target, env)?;
    vars.set(name, value);
    uboot_env::write_env(target, env, &vars)
}

/// `uboot_unsetenv(env, name)`: read, modify, write back.
pub(super) fn uboot_unsetenv(
    target: &mut dyn Target,
    env: &UbootEnvironment,
    name: &str,
) -> Result<()> {
    let mut vars = uboot_env::read_env(target, env)?;
    vars.unset(name);
    uboot_env::write_env(target, env, &vars)
}

/// `uboot_recover(env)`.
pub(super) fn uboot_recover(target: &mut dyn Target, env: &UbootEnvironment) -> Result<()> {
    uboot_env::recover_env(target, env)
}

/// The value of `name` in the environment, `None` when unset.
pub(super) fn uboot_get(
    target: &mut dyn Target,
    env: &UbootEnvironment,
    name: &str,
) -> Result<Option<String>> {
    Ok(uboot_env::read_env(target, env)?
        .get(name)
        .map(str::to_owned))
}
