//! fwup.conf → the meta.conf model: fwup's create-time parse (`cfgfile.c`) on top of the
//! shared libconfuse syntax layer.
//!
//! * `define(NAME, value)` sets a variable unless it is set (environment or an earlier
//!   define wins), `define!` always sets it, `define-eval(!)` evaluates 64-bit integer math.
//! * `include("file")` reads another file in place of the call, relative to the including
//!   file (a file stack, at most 10 deep).
//! * When a `file-resource` section closes it must have exactly one of `host-path` and
//!   `contents`, and `FWUP_SIZE_<title>` is defined from `stat(host-path)` — relative to the
//!   **working directory**, not the config file, exactly like fwup (research §8.1).
//! * `on-resource X` must name a resource declared before it (`unknown resource: X`).
//! * `FWUP_META_UUID`/`FWUP_META_NICKNAME` are preset to their own `${…}` text so they
//!   survive to apply time.

use std::path::{Path, PathBuf};

use crate::metaconf::{
    Call, HookAction, Item, MetaConf, Section, Value, Variables, parse_fwup_conf,
};
use crate::{Error, Result};

use super::eval::eval_math;

fn err(line: u32, message: impl Into<String>) -> Error {
    Error::MetaConfSyntax {
        line,
        message: message.into(),
    }
}

/// fwup's `update_relative_path`: an absolute path as it is, otherwise relative to the
/// directory of `base_file`.
pub(crate) fn relative_to(base_file: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match base_file.parent() {
        Some(dir) => dir.join(p),
        None => p.to_path_buf(),
    }
}

/// The last value assigned to a scalar option in a section's own items.
fn scalar<'a>(section: &'a Section, name: &str) -> Option<&'a str> {
    section.items.iter().rev().find_map(|item| match item {
        Item::Option(o) if o.name == name => match &o.value {
            Value::Scalar(v) => Some(v.text.as_str()),
            Value::List { .. } => None,
        },
        _ => None,
    })
}

/// Parses `text` (read from `config_path`) with `env` as the starting variables.
/// `working_dir` is what relative `FWUP_SIZE_*` stats resolve against.
pub(crate) fn parse(
    text: &[u8],
    config_path: &Path,
    env: &Variables,
    working_dir: &Path,
) -> Result<MetaConf> {
    parse_with(text, config_path, env, Some(working_dir))
}

/// [`parse`]; with `working_dir` `None` the file system is never touched (includes fail as
/// missing files, `FWUP_SIZE_*` stays unset, bootstrap code is not read): for fuzzing.
pub(crate) fn parse_with(
    text: &[u8],
    config_path: &Path,
    env: &Variables,
    working_dir: Option<&Path>,
) -> Result<MetaConf> {
    let mut vars = env.clone();
    vars.set("FWUP_META_UUID", "${FWUP_META_UUID}");
    vars.set("FWUP_META_NICKNAME", "${FWUP_META_NICKNAME}");

    let mut files: Vec<PathBuf> = vec![config_path.to_path_buf()];
    let mut hook = |path: &[&str], call: &Call, vars: &mut Variables| -> Result<HookAction> {
        let line = call.close_line;
        let two = |call: &Call| -> Result<(String, String)> {
            match call.args.as_slice() {
                [k, v] => Ok((k.clone(), v.clone())),
                _ => Err(err(line, format!("'{}' requires 2 parameters", call.name))),
            }
        };
        match call.name.as_str() {
            "include" => {
                let [target] = call.args.as_slice() else {
                    return Err(err(line, "'include' requires 1 parameters"));
                };
                if target.is_empty() {
                    return Err(err(
                        line,
                        "Cannot include the contents of an undefined variable",
                    ));
                }
                let base = files.get(call.file).cloned().unwrap_or_default();
                let resolved = relative_to(&base, target);
                if working_dir.is_none() {
                    return Err(err(
                        line,
                        format!("Cannot include '{target}': File not found"),
                    ));
                }
                let meta = std::fs::metadata(&resolved)
                    .map_err(|_| err(line, format!("Cannot include '{target}': File not found")))?;
                if !meta.is_file() {
                    return Err(err(
                        line,
                        format!("Cannot include '{target}': Not a regular file"),
                    ));
                }
                let bytes = std::fs::read(&resolved)
                    .map_err(|_| err(line, format!("Cannot include '{target}': File not found")))?;
                files.push(resolved);
                Ok(HookAction::Include(bytes))
            }
            "define" | "define!" | "define-eval" | "define-eval!" if path.is_empty() => {
                let (key, value) = two(call)?;
                let value = if call.name.starts_with("define-eval") {
                    eval_math(&value)
                        .ok_or_else(|| err(line, format!("error evaluating '{value}'")))?
                        .to_string()
                } else {
                    value
                };
                if call.name.ends_with('!') || vars.get(&key).is_none() {
                    vars.set(key, value);
                }
                Ok(HookAction::Consumed)
            }
            _ => Ok(HookAction::Keep),
        }
    };

    let mut resources: Vec<String> = Vec::new();
    let mut section_hook = |path: &[&str], sec: &Section, vars: &mut Variables| -> Result<()> {
        let title = sec.title.as_ref().map(|t| t.text.as_str()).unwrap_or("");
        match (path, sec.name.as_str()) {
            ([], "file-resource") => {
                let host = scalar(sec, "host-path");
                let contents = scalar(sec, "contents");
                match (host, contents) {
                    (None, None) => {
                        return Err(err(
                            sec.open_line,
                            format!(
                                "host-path or contents must be set for file-resource '{title}'"
                            ),
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(err(
                            sec.open_line,
                            format!(
                                "only one of host-path or contents should be set for file-resource '{title}'"
                            ),
                        ));
                    }
                    _ => {}
                }
                if let Some(host) = host {
                    let key: String = format!("FWUP_SIZE_{title}")
                        .chars()
                        .map(|c| if matches!(c, '-' | '/' | '.') { '_' } else { c })
                        .collect();
                    if let Some(Ok(meta)) = working_dir.map(|w| std::fs::metadata(w.join(host))) {
                        vars.set(key, meta.len().to_string());
                    }
                }
                resources.push(title.to_owned());
            }
            (["task"], "on-resource") if !resources.iter().any(|r| r == title) => {
                return Err(err(sec.open_line, format!("unknown resource: {title}")));
            }
            _ => {}
        }
        Ok(())
    };

    let (mut conf, _vars) = parse_fwup_conf(text, vars, &mut hook, &mut section_hook)?;
    fix_up(&mut conf, working_dir)?;
    Ok(conf)
}

/// `strtoull(s, 0)`-style parse of GPT flags.
fn parse_u64(s: &str) -> Option<u64> {
    let t = s.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()
    } else {
        t.parse().ok()
    }
}

/// fwup's create-time argument checks (`*_validate` in `functions.c`): argument counts
/// (argc counts the name) and functions that only work in `on-resource`. Argument values
/// and references to mbr/gpt/uboot-environment sections are not checked here.
fn check_call(name: &str, argc: usize, in_resource: bool) -> std::result::Result<(), String> {
    let resource_only = matches!(
        name,
        "raw_write" | "fat_write" | "path_write" | "pipe_write" | "ubi_volume_write"
    );
    if resource_only && !in_resource {
        return Err(format!("{name} only usable in on-resource"));
    }
    let (ok, message) = match name {
        "raw_write" => (argc >= 2, "raw_write requires a block offset"),
        "raw_memset" => (
            argc == 4,
            "raw_memset requires a block offset, count, and value",
        ),
        "fat_mkfs" => (
            argc == 3,
            "fat_mkfs requires a block offset and block count",
        ),
        "fat_attrib" => (
            argc == 4,
            "fat_attrib requires a block offset, filename, and attributes (SHR)",
        ),
        "fat_write" => (
            argc == 2 || argc == 3,
            "fat_write requires a block offset and optional destination filename",
        ),
        "fat_mv" | "fat_mv!" => (
            argc == 4,
            "fat_mv requires a block offset, old filename, new filename",
        ),
        "fat_rm" | "fat_rm!" => (argc == 3, "fat_rm requires a block offset and filename"),
        "fat_cp" => (
            argc == 4 || argc == 5,
            "fat_cp requires either 3 or 4 arguments",
        ),
        "fat_mkdir" => (
            argc == 3,
            "fat_mkdir requires a block offset and directory name",
        ),
        "fat_setlabel" => (argc == 3, "fat_setlabel requires a block offset and name"),
        "fat_touch" => (argc == 3, "fat_touch requires a block offset and filename"),
        "gpt_write" => (argc == 2, "gpt_write requires a gpt"),
        "mbr_write" => (argc == 2, "mbr_write requires an mbr"),
        "trim" => (argc == 3, "trim requires a block offset and count"),
        "uboot_recover" => (
            argc == 2,
            "uboot_recover requires a uboot-environment reference",
        ),
        "uboot_clearenv" => (
            argc == 2,
            "uboot_clearenv requires a uboot-environment reference",
        ),
        "uboot_setenv" => (
            argc == 4,
            "uboot_setenv requires a uboot-environment reference, variable name and value",
        ),
        "uboot_unsetenv" => (
            argc == 3,
            "uboot_unsetenv requires a uboot-environment reference and a variable name",
        ),
        "error" => (argc == 2, "error() requires a message parameter"),
        "info" => (argc == 2, "info() requires a message parameter"),
        "path_write" => (argc == 2, "path_write requires a file path"),
        "pipe_write" => (argc == 2, "pipe_write requires a command to execute"),
        "ubi_volume_write" => (
            argc == 2,
            "ubi_volume_write requires a UBI volume path (e.g. /dev/ubi0_3)",
        ),
        "execute" => (argc == 2, "execute requires a command to execute"),
        "reboot_param" => (argc == 2, "reboot_param requires a single string parameter"),
        _ => (true, ""),
    };
    if ok { Ok(()) } else { Err(message.to_owned()) }
}

/// The changes fwup's validators make to the parsed config before it is printed, and its
/// create-time function checks.
fn fix_up(conf: &mut MetaConf, working_dir: Option<&Path>) -> Result<()> {
    for task in &mut conf.tasks {
        for list in [&task.on_init, &task.on_finish, &task.on_error] {
            for f in list {
                check_call(&f.name, f.args.len() + 1, false).map_err(|m| err(0, m))?;
            }
        }
        for on_resource in &mut task.on_resources {
            for f in &mut on_resource.functions {
                check_call(&f.name, f.args.len() + 1, true).map_err(|m| err(0, m))?;
                if f.name == "fat_write" && f.args.len() == 1 {
                    // fwup defaults the file name to the resource name, in meta.conf too.
                    f.args.push(on_resource.resource.clone());
                }
            }
        }
    }
    for gpt in &mut conf.gpts {
        for p in &mut gpt.partitions {
            if p.boot {
                let flags = parse_u64(&p.flags).ok_or_else(|| {
                    err(0, format!("invalid flags for gpt partition '{}'", p.title))
                })?;
                p.flags = format!("0x{:x}", flags | 0x4);
                p.boot = false;
            }
        }
    }
    for mbr in &mut conf.mbrs {
        if let (Some(path), None) = (&mbr.bootstrap_code_host_path, &mbr.bootstrap_code) {
            let read = working_dir.map(|w| std::fs::read(w.join(path)));
            let bytes = read.and_then(|r| r.ok()).ok_or_else(|| {
                err(
                    0,
                    format!("mbr bootstrap code path '{path}' required, but can't be read"),
                )
            })?;
            let Some(code) = bytes.get(..440) else {
                return Err(err(
                    0,
                    format!("mbr bootstrap code in '{path}' should be 440 bytes"),
                ));
            };
            mbr.bootstrap_code = Some(code.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
    Ok(())
}
