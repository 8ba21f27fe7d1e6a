//! fwup's create-time validators (`*_validate` in `functions.c` and `requirement.c`,
//! `uboot_env_verify_cfg`): each function call and requirement is checked when libconfuse
//! reads its `)`, and a reference to an `mbr`, `gpt` or `uboot-environment` must name a
//! section declared before it. Messages are fwup's, word for word; the caller adds the line.

use crate::UbootEnvironment;
use crate::metaconf::{strtol_int, strtoul};

/// The sections a later function call may refer to, in the order they were declared.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    pub(crate) mbrs: Vec<String>,
    pub(crate) gpts: Vec<String>,
    pub(crate) uboot_environments: Vec<String>,
}

/// fwup's `CHECK_ARG_UINT64`: the whole string is a `strtoull` number that does not
/// overflow, and it is not empty. (A leading `-` passes, as in C.)
fn is_u64(s: &str) -> bool {
    let p = strtoul(s);
    !s.is_empty() && p.complete && !p.overflow
}

/// fwup's `CHECK_ARG_UINT64_RANGE`.
fn is_u64_in(s: &str, min: u64, max: u64) -> bool {
    is_u64(s) && (min..=max).contains(&strtoul(s).value)
}

/// `INT64_MAX / FWUP_BLOCK_SIZE`: the largest block count fwup accepts.
const MAX_BLOCKS: u64 = i64::MAX as u64 / 512;

type Check = std::result::Result<(), String>;

fn require(ok: bool, message: &str) -> Check {
    if ok { Ok(()) } else { Err(message.to_owned()) }
}

fn arg(args: &[String], index: usize) -> &str {
    args.get(index).map_or("", String::as_str)
}

/// Validates the event function `name(args…)`; `in_resource` is true inside `on-resource`.
/// Names fwup does not know pass (the option table reports them).
pub(crate) fn function(
    name: &str,
    args: &[String],
    in_resource: bool,
    declared: &Declared,
) -> Check {
    // argc counts the function name, as in fwup.
    let argc = args.len() + 1;
    let a1 = arg(args, 0);
    let resource_only =
        |what: &str| require(in_resource, &format!("{what} only usable in on-resource"));
    match name {
        "raw_write" => {
            resource_only(name)?;
            require(argc >= 2, "raw_write requires a block offset")?;
            require(
                is_u64(a1),
                "raw_write requires a non-negative integer block offset",
            )
        }
        "raw_memset" => {
            require(
                argc == 4,
                "raw_memset requires a block offset, count, and value",
            )?;
            require(
                is_u64(a1),
                "raw_memset requires a non-negative integer block offset",
            )?;
            require(
                is_u64_in(arg(args, 1), 1, MAX_BLOCKS),
                "raw_memset requires a positive integer block count",
            )?;
            let value = strtol_int(arg(args, 2));
            require(
                (0..=255).contains(&value),
                "raw_memset requires value to be between 0 and 255",
            )
        }
        "fat_mkfs" => {
            require(
                argc == 3,
                "fat_mkfs requires a block offset and block count",
            )?;
            require(
                is_u64(a1),
                "fat_mkfs requires a non-negative integer block offset",
            )?;
            require(
                is_u64(arg(args, 1)),
                "fat_mkfs requires a non-negative integer block count",
            )
        }
        "fat_attrib" => {
            require(
                argc == 4,
                "fat_attrib requires a block offset, filename, and attributes (SHR)",
            )?;
            // fwup's message names fat_mkfs here.
            require(
                is_u64(a1),
                "fat_mkfs requires a non-negative integer block offset",
            )?;
            require(
                arg(args, 2).bytes().all(|c| b"SsHhRr".contains(&c)),
                "fat_attrib only supports R, H, and S attributes",
            )
        }
        "fat_write" => {
            resource_only(name)?;
            require(
                argc == 2 || argc == 3,
                "fat_write requires a block offset and optional destination filename",
            )?;
            require(
                is_u64(a1),
                "fat_write requires a non-negative integer block offset",
            )
        }
        "fat_mv" | "fat_mv!" => {
            require(
                argc == 4,
                "fat_mv requires a block offset, old filename, new filename",
            )?;
            require(
                is_u64(a1),
                "fat_mv requires a non-negative integer block offset",
            )
        }
        "fat_rm" | "fat_rm!" => {
            require(argc == 3, "fat_rm requires a block offset and filename")?;
            require(
                is_u64(a1),
                "fat_rm requires a non-negative integer block offset",
            )
        }
        "fat_cp" => match argc {
            4 => require(
                is_u64(a1),
                "fat_cp requires a non-negative integer block offset",
            ),
            5 => {
                require(
                    is_u64(a1),
                    "fat_cp requires a non-negative integer source block offset",
                )?;
                require(
                    is_u64(arg(args, 2)),
                    "fat_cp requires a non-negative integer destination block offset",
                )
            }
            _ => Err("fat_cp requires either 3 or 4 arguments".to_owned()),
        },
        "fat_mkdir" => {
            require(
                argc == 3,
                "fat_mkdir requires a block offset and directory name",
            )?;
            require(
                is_u64(a1),
                "fat_mkdir requires a non-negative integer block offset",
            )
        }
        "fat_setlabel" => {
            require(argc == 3, "fat_setlabel requires a block offset and name")?;
            require(
                is_u64(a1),
                "fat_setlabel requires a non-negative integer block offset",
            )
        }
        "fat_touch" => {
            require(argc == 3, "fat_touch requires a block offset and filename")?;
            require(
                is_u64(a1),
                "fat_touch requires a non-negative integer block offset",
            )
        }
        "gpt_write" => {
            require(argc == 2, "gpt_write requires a gpt")?;
            require(
                declared.gpts.iter().any(|g| g == a1),
                "gpt_write can't find gpt reference",
            )
        }
        "mbr_write" => {
            require(argc == 2, "mbr_write requires an mbr")?;
            require(
                declared.mbrs.iter().any(|m| m == a1),
                "mbr_write can't find mbr reference",
            )
        }
        "trim" => {
            require(argc == 3, "trim requires a block offset and count")?;
            require(
                is_u64(a1),
                "trim requires a non-negative integer block offset",
            )?;
            require(
                is_u64_in(arg(args, 1), 1, MAX_BLOCKS),
                "trim requires a block count >1",
            )
        }
        "uboot_recover" | "uboot_clearenv" | "uboot_setenv" | "uboot_unsetenv" => {
            let (want, message) = match name {
                "uboot_recover" => (2, "uboot_recover requires a uboot-environment reference"),
                "uboot_clearenv" => (2, "uboot_clearenv requires a uboot-environment reference"),
                "uboot_setenv" => (
                    4,
                    "uboot_setenv requires a uboot-environment reference, variable name and value",
                ),
                _ => (
                    3,
                    "uboot_unsetenv requires a uboot-environment reference and a variable name",
                ),
            };
            require(argc == want, message)?;
            require(
                declared.uboot_environments.iter().any(|u| u == a1),
                &format!("{name} can't find uboot-environment reference {a1}"),
            )
        }
        "error" => require(argc == 2, "error() requires a message parameter"),
        "info" => require(argc == 2, "info() requires a message parameter"),
        "path_write" => {
            resource_only(name)?;
            require(argc == 2, "path_write requires a file path")
        }
        "pipe_write" => {
            resource_only(name)?;
            require(argc == 2, "pipe_write requires a command to execute")
        }
        "ubi_volume_write" => {
            resource_only(name)?;
            require(
                argc == 2,
                "ubi_volume_write requires a UBI volume path (e.g. /dev/ubi0_3)",
            )
        }
        "execute" => require(argc == 2, "execute requires a command to execute"),
        "reboot_param" => require(argc == 2, "reboot_param requires a single string parameter"),
        _ => Ok(()),
    }
}

/// Validates the task requirement `name(args…)` (`requirement.c`).
pub(crate) fn requirement(name: &str, args: &[String], declared: &Declared) -> Check {
    let argc = args.len() + 1;
    let a1 = arg(args, 0);
    match name {
        "require-partition-offset" => {
            require(
                argc == 3,
                "require-partition-offset requires a partition number and a block offset",
            )?;
            require(
                (0..4).contains(&strtol_int(a1)),
                "require-partition-offset requires the partition number to be 0-3",
            )?;
            require(
                is_u64(arg(args, 1)),
                "require-partition-offset requires a non-negative integer block offset",
            )
        }
        "require-execute" => require(argc == 2, "require-execute requires a command"),
        "require-fat-file-exists" => {
            require(
                argc == 3,
                "require-fat-file-exists requires a FAT FS block offset and a filename",
            )?;
            require(
                is_u64(a1),
                "require-fat-file-exists requires a non-negative integer block offset",
            )
        }
        "require-fat-file-match" => {
            require(
                argc == 4,
                "require-fat-file-match requires a FAT FS block offset, a filename, and a pattern",
            )?;
            require(
                is_u64(a1),
                "require-fat-file-match requires a non-negative integer block offset",
            )
        }
        "require-uboot-variable" => {
            require(
                argc == 4,
                "require-uboot-variable requires a uboot-environment reference, variable name, and value",
            )?;
            require(
                declared.uboot_environments.iter().any(|u| u == a1),
                "require-uboot-variable can't find uboot-environment reference",
            )
        }
        "require-path-on-device" => require(
            argc == 3,
            "require-path-on-device requires a path and a device",
        ),
        "require-path-at-offset" => {
            require(
                argc == 3,
                "require-path-at-offset requires a path and a block offset",
            )?;
            require(
                is_u64(arg(args, 1)),
                "require-path-at-offset requires a non-negative integer block offset",
            )
        }
        _ => Ok(()),
    }
}

/// fwup's `cfg_get_off_t`: a present value that `strtoull` reads completely.
fn off_t(value: Option<&str>) -> Option<i64> {
    let p = strtoul(value?);
    // off_t is signed: C converts the unsigned value modulo 2⁶⁴.
    let v = p.value as i64;
    (p.complete && !p.overflow).then_some(v)
}

/// fwup's `uboot_env_verify_cfg`, run when a `uboot-environment` section closes.
pub(crate) fn uboot_environment(env: &UbootEnvironment) -> Check {
    let offset = off_t(env.block_offset()).ok_or("block-offset must be specified")?;
    // cfg_getint's long is stored in a C int.
    let count = i64::from(env.block_count() as i32);
    require(
        count > 0 && count < i64::from(u16::MAX),
        "block-count must be specified, greater than 0 and less than 2^16 - 1",
    )?;
    if let Some(left) = off_t(env.block_offset_redund()) {
        let right = left.wrapping_add(count);
        let end = offset.wrapping_add(count);
        if (left >= offset && left < end) || (right > offset && right < end) {
            return Err("block-offset-redund can't overlap primary U-Boot environment".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn zero_counts_and_bad_values_are_refused_with_fwups_words() {
        let none = Declared::default();
        let check = |name: &str, a: &[&str]| function(name, &args(a), false, &none);
        assert_eq!(
            check("raw_memset", &["0", "0", "1"]).unwrap_err(),
            "raw_memset requires a positive integer block count"
        );
        assert_eq!(
            check("trim", &["0", "0"]).unwrap_err(),
            "trim requires a block count >1"
        );
        assert_eq!(
            check("raw_memset", &["0", "1", "256"]).unwrap_err(),
            "raw_memset requires value to be between 0 and 255"
        );
        assert!(check("raw_memset", &["0x10", "1", "255"]).is_ok());
        // C's strtol gives 0 for text without digits: accepted.
        assert!(check("raw_memset", &["0", "1", "x"]).is_ok());
        assert_eq!(
            check("fat_attrib", &["0", "f", "Q"]).unwrap_err(),
            "fat_attrib only supports R, H, and S attributes"
        );
        assert_eq!(
            check("raw_write", &["0"]).unwrap_err(),
            "raw_write only usable in on-resource"
        );
        assert_eq!(
            function("raw_write", &args(&["abc"]), true, &none).unwrap_err(),
            "raw_write requires a non-negative integer block offset"
        );
        assert_eq!(
            check("mbr_write", &["m"]).unwrap_err(),
            "mbr_write can't find mbr reference"
        );
        assert_eq!(
            check("uboot_setenv", &["nope", "a", "b"]).unwrap_err(),
            "uboot_setenv can't find uboot-environment reference nope"
        );
        assert!(check("unknown_future_function", &[]).is_ok());
    }

    #[test]
    fn references_must_be_declared() {
        let declared = Declared {
            mbrs: vec!["m".into()],
            gpts: vec!["g".into()],
            uboot_environments: vec!["u".into()],
        };
        assert!(function("mbr_write", &args(&["m"]), false, &declared).is_ok());
        assert!(function("gpt_write", &args(&["g"]), false, &declared).is_ok());
        assert!(function("uboot_clearenv", &args(&["u"]), false, &declared).is_ok());
        assert!(requirement("require-uboot-variable", &args(&["u", "a", "b"]), &declared).is_ok());
        assert_eq!(
            requirement("require-partition-offset", &args(&["4", "0"]), &declared).unwrap_err(),
            "require-partition-offset requires the partition number to be 0-3"
        );
        assert_eq!(
            requirement("require-execute", &args(&[]), &declared).unwrap_err(),
            "require-execute requires a command"
        );
    }
}
