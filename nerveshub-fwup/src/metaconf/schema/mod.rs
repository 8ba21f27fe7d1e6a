//! The schema layer: fwup 1.16.0's option table applied to the generic tree, as
//! libconfuse does with `CFGF_IGNORE_UNKNOWN` (unknown options and function calls are
//! skipped, unknown sections are errors).

#[cfg(feature = "create")]
mod check;
mod sections;

use std::collections::HashSet;

use super::lexer::Token;
use super::model::{FunctionCall, Gpt, Mbr, Metadata, Resource, Task, UbootEnvironment};
use super::syntax::{
    Call, IgnoreOutcome, Item, OptionItem, Section, Spanned, Value, replay_ignore, syntax_error,
};
use super::values::{IntError, funlist_argc, parse_bool, parse_long};

/// fwup's `FUN_MAX_ARGS`: a call has at most this many argv entries, name included.
pub(crate) const FUN_MAX_ARGS: usize = 10;

/// What an option name means in a given section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    IntList,
    StrList,
    Titled,
    Untitled,
    Func,
}

/// Functions allowed in `on-init`, `on-finish`, `on-error` and `on-resource`.
pub(crate) const EVENT_FUNCTIONS: &[&str] = &[
    "raw_memset",
    "raw_write",
    "fat_mkfs",
    "fat_attrib",
    "fat_write",
    "fat_cp",
    "fat_mv",
    "fat_mv!",
    "fat_rm",
    "fat_rm!",
    "fat_mkdir",
    "fat_setlabel",
    "fat_touch",
    "gpt_write",
    "mbr_write",
    "trim",
    "uboot_clearenv",
    "uboot_recover",
    "uboot_setenv",
    "uboot_unsetenv",
    "error",
    "info",
    "path_write",
    "pipe_write",
    "ubi_volume_write",
    "execute",
    "reboot_param",
    "include",
];

/// Requirement functions allowed in a `task`.
pub(crate) const REQUIREMENT_FUNCTIONS: &[&str] = &[
    "require-partition-offset",
    "require-fat-file-exists",
    "require-uboot-variable",
    "require-path-on-device",
    "require-path-at-offset",
    "require-fat-file-match",
    "require-execute",
    "include",
];

fn top_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "meta-product"
        | "meta-description"
        | "meta-version"
        | "meta-author"
        | "meta-platform"
        | "meta-architecture"
        | "meta-creation-date"
        | "meta-fwup-version"
        | "meta-vcs-identifier"
        | "meta-misc"
        | "meta-uuid"
        | "meta-nickname"
        | "require-fwup-version"
        | "__unknown" => Kind::Str,
        "block-cache-size-mb" => Kind::Int,
        "define" | "define!" | "define-eval" | "define-eval!" | "include" => Kind::Func,
        "file-resource" | "mbr" | "gpt" | "task" | "uboot-environment" => Kind::Titled,
        _ => return None,
    })
}

fn resource_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "include" => Kind::Func,
        "host-path" | "contents" | "blake2b-256" | "sha256" | "__unknown" => Kind::Str,
        "skip-holes" => Kind::Bool,
        "length" => Kind::IntList,
        "assert-size-lte" | "assert-size-gte" => Kind::Int,
        _ => return None,
    })
}

fn mbr_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "bootstrap-code-host-path" | "bootstrap-code" | "signature" | "__unknown" => Kind::Str,
        "include-osip" => Kind::Bool,
        "osip-major" | "osip-minor" | "osip-num-pointers" => Kind::Int,
        "partition" | "osii" => Kind::Titled,
        _ => return None,
    })
}

fn mbr_partition_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "block-offset" | "__unknown" => Kind::Str,
        "block-count" | "type" => Kind::Int,
        "boot" | "expand" => Kind::Bool,
        _ => return None,
    })
}

fn osii_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "os-major" | "os-minor" | "start-block-offset" | "ddr-load-address" | "entry-point"
        | "image-size-blocks" | "attribute" => Kind::Int,
        "__unknown" => Kind::Str,
        _ => return None,
    })
}

fn gpt_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "guid" | "__unknown" => Kind::Str,
        "partition" => Kind::Titled,
        _ => return None,
    })
}

fn gpt_partition_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "block-offset" | "type" | "guid" | "name" | "flags" | "__unknown" => Kind::Str,
        "block-count" => Kind::Int,
        "expand" | "boot" => Kind::Bool,
        _ => return None,
    })
}

fn uboot_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "block-offset" | "block-offset-redund" | "__unknown" => Kind::Str,
        "block-count" => Kind::Int,
        _ => return None,
    })
}

fn task_kind(name: &str) -> Option<Kind> {
    if REQUIREMENT_FUNCTIONS.contains(&name) {
        return Some(Kind::Func);
    }
    Some(match name {
        "reqlist" => Kind::StrList,
        "require-partition1-offset" => Kind::Int,
        "require-unmounted-destination" | "verify-on-the-fly" => Kind::Bool,
        "on-init" | "on-finish" | "on-error" => Kind::Untitled,
        "on-resource" => Kind::Titled,
        "__unknown" => Kind::Str,
        _ => return None,
    })
}

fn event_kind(name: &str) -> Option<Kind> {
    if EVENT_FUNCTIONS.contains(&name) {
        return Some(Kind::Func);
    }
    (name == "funlist").then_some(Kind::StrList)
}

fn on_resource_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "verify-on-the-fly" => Kind::Bool,
        "delta-source-raw-offset"
        | "delta-source-raw-options"
        | "delta-source-fat-offset"
        | "delta-source-fat-path" => Kind::Str,
        "delta-source-raw-count" => Kind::Int,
        _ => return event_kind(name),
    })
}

/// Why the schema pass stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// This error comes first in the file.
    Error(crate::Error),
    /// Report the parse error recorded by the syntax layer instead.
    UsePending,
}

impl From<crate::Error> for Stop {
    fn from(e: crate::Error) -> Self {
        Stop::Error(e)
    }
}

type Res<T> = Result<T, Stop>;

/// Everything meta.conf describes, before the reserved-metadata check.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) metadata: Metadata,
    pub(crate) resources: Vec<Resource>,
    pub(crate) mbrs: Vec<Mbr>,
    pub(crate) gpts: Vec<Gpt>,
    pub(crate) uboot_environments: Vec<UbootEnvironment>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) require_fwup_version: Option<String>,
    pub(crate) block_cache_size_mb: i64,
    pub(crate) sets_reserved_metadata: bool,
}

/// One kind of item seen inside a section, already checked against the section's table.
enum Entry<'a> {
    Scalar(&'a str, &'a Spanned),
    List(&'a str, bool, &'a [Spanned]),
    Call(&'a Call),
    Section(&'a Section),
}

/// Walks `section`'s items, skipping unknown options and calls, rejecting misuse of known
/// names with libconfuse's messages, and hands each valid entry to `f`.
fn walk<'a>(
    tokens: &[Token],
    section: &'a Section,
    kind_of: fn(&str) -> Option<Kind>,
    mut f: impl FnMut(Entry<'a>) -> Res<()>,
) -> Res<()> {
    let mut titles: HashSet<(&str, &str)> = HashSet::new();
    for item in &section.items {
        match item {
            Item::Option(OptionItem {
                name,
                op_line,
                append,
                value,
            }) => {
                let Some(kind) = kind_of(name) else { continue };
                match kind {
                    Kind::Titled => {
                        return Err(syntax_error(
                            *op_line,
                            format!("missing title for section '{name}'"),
                        )
                        .into());
                    }
                    Kind::Untitled => {
                        return Err(syntax_error(
                            *op_line,
                            format!("missing opening brace for section '{name}'"),
                        )
                        .into());
                    }
                    Kind::Func => {
                        return Err(syntax_error(
                            *op_line,
                            format!("missing parenthesis for function '{name}'"),
                        )
                        .into());
                    }
                    Kind::IntList | Kind::StrList => match value {
                        Value::Scalar(v) => f(Entry::List(name, *append, std::slice::from_ref(v)))?,
                        Value::List { items, .. } => f(Entry::List(name, *append, items))?,
                    },
                    Kind::Str | Kind::Int | Kind::Bool => {
                        if *append {
                            return Err(syntax_error(
                                *op_line,
                                format!("attempt to append to non-list option '{name}'"),
                            )
                            .into());
                        }
                        match value {
                            Value::Scalar(v) => f(Entry::Scalar(name, v))?,
                            Value::List { open_line, .. } => {
                                return Err(syntax_error(*open_line, "unexpected token '{'").into());
                            }
                        }
                    }
                }
            }
            Item::Call(call) => match kind_of(&call.name) {
                None => {}
                Some(Kind::Func) => f(Entry::Call(call))?,
                Some(Kind::Titled) => {
                    return Err(syntax_error(
                        call.open_line,
                        format!("missing title for section '{}'", call.name),
                    )
                    .into());
                }
                Some(Kind::Untitled) => {
                    let msg = format!("missing opening brace for section '{}'", call.name);
                    return Err(syntax_error(call.open_line, msg).into());
                }
                Some(_) => {
                    let msg = format!("missing equal sign after option '{}'", call.name);
                    return Err(syntax_error(call.open_line, msg).into());
                }
            },
            Item::Section(sec) => {
                let first_line = sec.title.as_ref().map_or(sec.open_line, |t| t.line);
                match kind_of(&sec.name) {
                    None => {
                        return Err(match replay_ignore(tokens, sec.name_token) {
                            IgnoreOutcome::Error(line, message) => {
                                Stop::Error(syntax_error(line, message))
                            }
                            IgnoreOutcome::Recovered => Stop::Error(syntax_error(
                                sec.open_line,
                                format!("unknown section '{}'", sec.name),
                            )),
                            IgnoreOutcome::OutOfTokens => Stop::UsePending,
                        });
                    }
                    Some(Kind::Titled) => {
                        let Some(title) = &sec.title else {
                            let msg = format!("missing title for section '{}'", sec.name);
                            return Err(syntax_error(sec.open_line, msg).into());
                        };
                        if !titles.insert((sec.name.as_str(), title.text.as_str())) {
                            let msg = format!("found duplicate title '{}'", title.text);
                            return Err(syntax_error(sec.open_line, msg).into());
                        }
                        f(Entry::Section(sec))?;
                    }
                    Some(Kind::Untitled) => {
                        if sec.title.is_some() {
                            let msg = format!("missing opening brace for section '{}'", sec.name);
                            return Err(syntax_error(first_line, msg).into());
                        }
                        f(Entry::Section(sec))?;
                    }
                    Some(Kind::Func) => {
                        let msg = format!("missing parenthesis for function '{}'", sec.name);
                        return Err(syntax_error(first_line, msg).into());
                    }
                    Some(_) => {
                        let msg = format!("missing equal sign after option '{}'", sec.name);
                        return Err(syntax_error(first_line, msg).into());
                    }
                }
            }
        }
    }
    Ok(())
}

fn int_value(name: &str, v: &Spanned) -> Res<i64> {
    parse_long(&v.text).map_err(|e| {
        let msg = match e {
            IntError::Invalid => format!("invalid integer value for option '{name}'"),
            IntError::OutOfRange => format!("integer value for option '{name}' is out of range"),
        };
        Stop::Error(syntax_error(v.line, msg))
    })
}

fn bool_value(name: &str, v: &Spanned) -> Res<bool> {
    parse_bool(&v.text).ok_or_else(|| {
        Stop::Error(syntax_error(
            v.line,
            format!("invalid boolean value for option '{name}'"),
        ))
    })
}

fn title_of(sec: &Section) -> String {
    sec.title
        .as_ref()
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// Sets or appends to a string list option (`=` replaces, `+=` appends).
fn assign_list(list: &mut Vec<String>, append: bool, values: &[Spanned]) {
    if !append {
        list.clear();
    }
    list.extend(values.iter().map(|v| v.text.clone()));
}

/// Appends a function call to a funlist/reqlist the way fwup's callbacks do.
fn append_call(list: &mut Vec<String>, call: &Call) -> Res<()> {
    if call.name == "include" {
        let path = call.args.first().map_or("", String::as_str);
        let msg =
            format!("Cannot include '{path}': include is not supported when reading meta.conf");
        return Err(syntax_error(call.close_line, msg).into());
    }
    if call.args.len() + 1 > FUN_MAX_ARGS {
        return Err(syntax_error(
            call.close_line,
            format!("Too many arguments passed to '{}'", call.name),
        )
        .into());
    }
    list.push((call.args.len() + 1).to_string());
    list.push(call.name.clone());
    list.extend(call.args.iter().cloned());
    Ok(())
}

/// Decodes `{argc, name, arg…, argc, name, …}` as fwup's `fun_apply_funlist` does.
pub(crate) fn decode_funlist(
    list: &[String],
    what: &str,
    line: u32,
) -> crate::Result<Vec<FunctionCall>> {
    let mut out = Vec::new();
    let mut rest = list;
    while let Some((argc, tail)) = rest.split_first() {
        let argc = funlist_argc(argc);
        let Some(n) = usize::try_from(argc)
            .ok()
            .filter(|n| (1..=FUN_MAX_ARGS).contains(n))
        else {
            return Err(syntax_error(
                line,
                format!("Unexpected argc value in {what}"),
            ));
        };
        if tail.len() < n {
            return Err(syntax_error(line, format!("Unexpected error with {what}")));
        }
        let (call, next) = tail.split_at(n);
        out.push(FunctionCall {
            name: call[0].clone(),
            args: call[1..].to_vec(),
        });
        rest = next;
    }
    Ok(out)
}

/// The raw funlist of an event section and the line to blame when it does not decode.
#[derive(Default)]
struct RawList {
    items: Vec<String>,
    line: u32,
}

impl RawList {
    fn entry(&mut self, entry: &Entry<'_>, list_name: &str) -> Res<bool> {
        match entry {
            Entry::List(name, append, values) if *name == list_name => {
                assign_list(&mut self.items, *append, values);
                self.line = values.last().map_or(self.line, |v| v.line);
                Ok(true)
            }
            Entry::Call(call) => {
                append_call(&mut self.items, call)?;
                self.line = call.close_line;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn decode(&self, what: &str) -> Res<Vec<FunctionCall>> {
        Ok(decode_funlist(&self.items, what, self.line)?)
    }
}

#[cfg(feature = "create")]
pub(crate) use check::check_known_names;
pub(crate) use sections::build;
#[cfg(feature = "create")]
pub(crate) use sections::{gpt_of, mbr_of, uboot_of};
