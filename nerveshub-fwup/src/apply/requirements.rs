//! Task requirements: whether a task may be selected for this destination.
//!
//! fwup evaluates them through its block cache, before anything is written. A requirement
//! that cannot be evaluated (an unreadable partition table or environment, a missing path)
//! does not hold. `require-unmounted-destination` is accepted and ignored, as fwup 1.16
//! does (it unmounts the destination itself unless `-U`).

use super::cache::BlockCache;
use super::engine::ApplyOptions;
use super::functions::{BLOCK, parse_int};
use super::host::Host;
use super::partitions;
use super::target::Target;
use crate::metaconf::{FunctionCall, MetaConf, Task};
use crate::{ApplyError, Error, Result};

/// Whether every requirement of `task` holds.
///
/// # Errors
/// Only [`ApplyError::NotSupported`](crate::ApplyError::NotSupported) for requirements this version cannot evaluate (none
/// at the moment); every other failure means "does not hold".
pub(super) fn task_applies<T: Target>(
    task: &Task,
    meta: &MetaConf,
    options: &ApplyOptions,
    cache: &mut BlockCache<T>,
    host: &mut dyn Host,
) -> Result<bool> {
    if let Some(offset) = task.require_partition1_offset() {
        let want = u64::try_from(offset).ok();
        if partitions::partition_offset(cache, 1).ok().flatten() != want {
            return Ok(false);
        }
    }
    for requirement in task.requirements() {
        match holds(requirement, meta, options, cache, host) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(err @ Error::Apply(ApplyError::NotSupported { .. })) => return Err(err),
            Err(_) => return Ok(false),
        }
    }
    Ok(true)
}

fn arg(call: &FunctionCall, index: usize) -> Result<&str> {
    call.args().get(index).map(String::as_str).ok_or_else(|| {
        Error::Apply(ApplyError::FunctionFailed {
            function: call.name().to_owned(),
            message: "missing argument".to_owned(),
        })
    })
}

fn arg_u64(call: &FunctionCall, index: usize) -> Result<u64> {
    let text = arg(call, index)?;
    parse_int(text)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| {
            Error::Apply(ApplyError::FunctionFailed {
                function: call.name().to_owned(),
                message: format!("invalid number '{text}'"),
            })
        })
}

fn holds<T: Target>(
    call: &FunctionCall,
    meta: &MetaConf,
    options: &ApplyOptions,
    cache: &mut BlockCache<T>,
    host: &mut dyn Host,
) -> Result<bool> {
    Ok(match call.name() {
        "require-partition-offset" => {
            let partition = u8::try_from(arg_u64(call, 0)?).unwrap_or(u8::MAX);
            let offset = arg_u64(call, 1)?;
            partition <= 3 && partitions::partition_offset(cache, partition)? == Some(offset)
        }
        "require-uboot-variable" => {
            let env_name = arg(call, 0)?;
            let Some(env) = meta
                .uboot_environments()
                .iter()
                .find(|e| e.name() == env_name)
            else {
                return Ok(false);
            };
            let value = partitions::uboot_get(cache, env, arg(call, 1)?)?;
            value.as_deref() == Some(arg(call, 2)?)
        }
        "require-path-on-device" => host.path_on_device(arg(call, 0)?, arg(call, 1)?)?,
        "require-path-at-offset" => {
            let blocks = arg_u64(call, 1)?;
            let _ = BLOCK;
            host.path_at_offset(arg(call, 0)?, blocks)?
        }
        "require-execute" => {
            // fwup does not run an empty command (the shell would succeed): not met.
            let command = arg(call, 0)?;
            options.unsafe_mode && !command.is_empty() && host.execute(command)?
        }
        "require-fat-file-exists" | "require-fat-file-match" => {
            let base = arg_u64(call, 0)?.checked_mul(BLOCK).ok_or_else(|| {
                Error::Apply(ApplyError::FunctionFailed {
                    function: call.name().to_owned(),
                    message: "invalid block offset".to_owned(),
                })
            })?;
            let mut vol = super::fat::Volume::mount(cache, base)?;
            let path = arg(call, 1)?;
            match vol.stat(path)? {
                Some(entry) if !entry.is_dir() => {}
                _ => return Ok(false),
            }
            if call.name() == "require-fat-file-exists" {
                return Ok(true);
            }
            let pattern = arg(call, 2)?.as_bytes();
            if pattern.is_empty() {
                return Ok(true);
            }
            if pattern.len() >= 4096 {
                return Ok(false);
            }
            // 4 KiB at a time, keeping the last bytes for matches across reads.
            let mut file = vol.open_read(path)?;
            let mut window: Vec<u8> = Vec::with_capacity(8192);
            let mut buf = [0u8; 4096];
            loop {
                let n = vol.read(&mut file, &mut buf)?;
                if n == 0 {
                    break false;
                }
                window.extend_from_slice(buf.get(..n).unwrap_or_default());
                if window.windows(pattern.len()).any(|w| w == pattern) {
                    break true;
                }
                let keep = window.len().min(pattern.len() - 1);
                window.drain(..window.len() - keep);
            }
        }
        _ => false,
    })
}
