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
//! * fwup's validators run where libconfuse runs them, and report that line: each function
//!   call and requirement when its `)` is read ([`super::validate`]), each `mbr`, `gpt` and
//!   `uboot-environment` section when it closes (partition offsets and sizes in range, no
//!   overlapping partitions or EBRs, …).
//! * A `host-path` is relative to the directory of the file that holds its `file-resource`
//!   (an included file's own directory; fwup's `update_relative_path` on `sec->filename`),
//!   and paths starting with `/` or `~` are taken as they are.
//! * `FWUP_META_UUID`/`FWUP_META_NICKNAME` are preset to their own `${…}` text so they
//!   survive to apply time.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::metaconf::{
    Call, HookAction, Item, MetaConf, Section, Token, Value, Variables, gpt_of, mbr_of,
    parse_fwup_conf, uboot_of,
};
use crate::{Error, MetaConfError, PartitionError, Result};

use super::eval::eval_math;
use super::validate::{self, Declared};

fn err(line: u32, message: impl Into<String>) -> Error {
    Error::MetaConf(MetaConfError::Syntax {
        line,
        message: message.into(),
    })
}

/// A partition table fwup refuses, reported as libconfuse reports a bad section: at the
/// line that closes it, with fwup's message.
fn at_line(line: u32, e: Error) -> Error {
    match e {
        Error::Partition(PartitionError::Invalid(message)) => err(line, message),
        other => other,
    }
}

/// fwup's `update_relative_path`: an absolute path as it is, otherwise relative to the
/// directory of `base_file`.
pub(crate) fn relative_to(base_file: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    // fwup leaves `~…` alone too (it does not expand it).
    if p.is_absolute() || path.starts_with('~') {
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
/// Also returns, per `file-resource` in order, the file its section is in (what its
/// relative `host-path`s resolve against).
pub(crate) fn parse(
    text: &[u8],
    config_path: &Path,
    env: &Variables,
    working_dir: &Path,
) -> Result<(MetaConf, Vec<PathBuf>)> {
    parse_with(text, config_path, env, Some(working_dir))
}

/// [`parse`]; with `working_dir` `None` the file system is never touched (includes fail as
/// missing files, `FWUP_SIZE_*` stays unset, bootstrap code is not read): for fuzzing.
pub(crate) fn parse_with(
    text: &[u8],
    config_path: &Path,
    env: &Variables,
    working_dir: Option<&Path>,
) -> Result<(MetaConf, Vec<PathBuf>)> {
    let mut vars = env.clone();
    vars.set("FWUP_META_UUID", "${FWUP_META_UUID}");
    vars.set("FWUP_META_NICKNAME", "${FWUP_META_NICKNAME}");

    // Shared by both hooks: the files read so far (index = `Call::file`) and the sections
    // later calls may refer to.
    let files: RefCell<Vec<PathBuf>> = RefCell::new(vec![config_path.to_path_buf()]);
    let declared = RefCell::new(Declared::default());
    let mut hook = |path: &[&str], call: &Call, vars: &mut Variables| -> Result<HookAction> {
        let line = call.close_line;
        match path {
            ["task", event]
                if matches!(*event, "on-init" | "on-finish" | "on-error" | "on-resource") =>
            {
                let in_resource = *event == "on-resource";
                validate::function(&call.name, &call.args, in_resource, &declared.borrow())
                    .map_err(|m| err(line, m))?;
            }
            ["task"] => {
                validate::requirement(&call.name, &call.args, &declared.borrow())
                    .map_err(|m| err(line, m))?;
            }
            _ => {}
        }
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
                let base = files.borrow().get(call.file).cloned().unwrap_or_default();
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
                files.borrow_mut().push(resolved);
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
    let mut resource_files: Vec<PathBuf> = Vec::new();
    let mut section_hook = |path: &[&str],
                            sec: &Section,
                            tokens: &[Token],
                            vars: &mut Variables|
     -> Result<()> {
        let title = sec.title.as_ref().map(|t| t.text.as_str()).unwrap_or("");
        let line = sec.close_line;
        match (path, sec.name.as_str()) {
            ([], "mbr") => {
                if let Some(mut mbr) = mbr_of(tokens, sec) {
                    if let Some(dir) = working_dir {
                        read_bootstrap_code(&mut mbr, dir).map_err(|m| err(line, m))?;
                    }
                    crate::partition::verify_mbr_cfg(&mbr).map_err(|e| at_line(line, e))?;
                }
                declared.borrow_mut().mbrs.push(title.to_owned());
            }
            ([], "gpt") => {
                if let Some(gpt) = gpt_of(tokens, sec) {
                    crate::partition::verify_gpt_cfg(&gpt).map_err(|e| at_line(line, e))?;
                }
                declared.borrow_mut().gpts.push(title.to_owned());
            }
            ([], "uboot-environment") => {
                if let Some(env) = uboot_of(tokens, sec) {
                    validate::uboot_environment(&env).map_err(|m| err(line, m))?;
                }
                declared
                    .borrow_mut()
                    .uboot_environments
                    .push(title.to_owned());
            }
            ([], "file-resource") => {
                let host = scalar(sec, "host-path");
                let contents = scalar(sec, "contents");
                match (host, contents) {
                    (None, None) => {
                        return Err(err(
                            line,
                            format!(
                                "host-path or contents must be set for file-resource '{title}'"
                            ),
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(err(
                            line,
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
                let file = files.borrow().get(sec.file).cloned();
                resource_files.push(file.unwrap_or_else(|| config_path.to_path_buf()));
            }
            (["task"], "on-resource") if !resources.iter().any(|r| r == title) => {
                return Err(err(line, format!("unknown resource: {title}")));
            }
            _ => {}
        }
        Ok(())
    };

    let (mut conf, _vars) = parse_fwup_conf(text, vars, &mut hook, &mut section_hook)?;
    fix_up(&mut conf, working_dir)?;
    Ok((conf, resource_files))
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

/// fwup's `cb_validate_mbr`: `bootstrap-code-host-path` (relative to the working
/// directory, as fwup opens it) becomes `bootstrap-code` unless that is set.
fn read_bootstrap_code(
    mbr: &mut crate::Mbr,
    working_dir: &Path,
) -> std::result::Result<(), String> {
    let (Some(path), None) = (&mbr.bootstrap_code_host_path, &mbr.bootstrap_code) else {
        return Ok(());
    };
    let bytes = std::fs::read(working_dir.join(path))
        .map_err(|_| format!("mbr bootstrap code path '{path}' required, but can't be read"))?;
    let Some(code) = bytes.get(..440) else {
        return Err(format!(
            "mbr bootstrap code in '{path}' should be 440 bytes"
        ));
    };
    mbr.bootstrap_code = Some(code.iter().map(|b| format!("{b:02x}")).collect());
    Ok(())
}

/// The changes fwup's validators make to the parsed config before it is printed.
fn fix_up(conf: &mut MetaConf, working_dir: Option<&Path>) -> Result<()> {
    for task in &mut conf.tasks {
        for on_resource in &mut task.on_resources {
            for f in &mut on_resource.functions {
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
    if let Some(dir) = working_dir {
        for mbr in &mut conf.mbrs {
            read_bootstrap_code(mbr, dir).map_err(|m| err(0, m))?;
        }
    }
    Ok(())
}
