//! meta.conf: fwup's libconfuse configuration as stored in every `.fw` archive, parsed the
//! way C fwup 1.16.0 reads it.
//!
//! Two layers:
//! * [`lexer`] and [`syntax`]: libconfuse's syntax (comments, quoting, `${VAR}`
//!   substitution, lists, sections, function calls) into a generic tree with line numbers.
//!   The later fwup.conf creation parser reuses it.
//! * [`schema`]: fwup's option table applied to that tree with libconfuse's
//!   `CFGF_IGNORE_UNKNOWN` behaviour: unknown options are skipped, unknown sections are
//!   errors, and `require-fwup-version` is checked as it is read.
//!
//! The result is a [`MetaConf`] with typed sections ([`Resource`], [`Task`], [`Mbr`], …).
//! Size limits on meta.conf are the archive layer's job; this module accepts any input and
//! never panics.

mod lexer;
mod model;
#[cfg(feature = "create")]
mod print;
mod schema;
mod syntax;
mod values;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;

pub use model::{
    FunctionCall, Gpt, GptPartition, Mbr, MbrOsii, MbrPartition, Metadata, OnResource, Resource,
    Task, UbootEnvironment,
};

#[cfg(feature = "create")]
pub(crate) use lexer::Token;
#[cfg(feature = "create")]
pub(crate) use print::print_meta_conf;
#[cfg(feature = "create")]
pub(crate) use schema::{gpt_of, mbr_of, uboot_of};
use syntax::syntax_error;
pub(crate) use syntax::{Call, HookAction};
#[cfg(feature = "create")]
pub(crate) use syntax::{CallHook, Item, Section, SectionHook, Value};
#[cfg(feature = "create")]
pub(crate) use values::strtol_int;
#[cfg(any(feature = "create", feature = "apply"))]
pub(crate) use values::strtoul;

/// The variable fwup sets to the archive's UUID before parsing meta.conf.
const META_UUID_VAR: &str = "FWUP_META_UUID";
/// The variable fwup sets to the archive's nickname before parsing meta.conf.
const META_NICKNAME_VAR: &str = "FWUP_META_NICKNAME";

/// Values for `${VAR}` substitution while parsing.
///
/// C fwup takes them from the process environment; this crate never reads the environment,
/// so the caller passes them in (including `FWUP_META_UUID` and `FWUP_META_NICKNAME`, which
/// fwup sets before it parses meta.conf).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    map: HashMap<String, String>,
}

impl Variables {
    /// An empty set: every `${VAR}` without a default becomes an empty string.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.map.insert(name.into(), value.into());
    }

    /// The value of `name`, if it is set (an empty value is still set).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }
}

impl FromIterator<(String, String)> for Variables {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Variables {
            map: iter.into_iter().collect(),
        }
    }
}

/// Quotes a string the way fwup's `cfgprint` writes meta.conf values: bare when it is a
/// non-empty run of `[A-Za-z0-9_.]`, otherwise in double quotes with only `"` and `\`
/// escaped (newlines and other bytes are written as they are).
pub(crate) fn quote_value(s: &str) -> Cow<'_, str> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Cow::Owned(out)
}

/// A parsed meta.conf.
#[derive(Debug, Clone)]
pub struct MetaConf {
    pub(crate) metadata: Metadata,
    pub(crate) resources: Vec<Resource>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) mbrs: Vec<Mbr>,
    pub(crate) gpts: Vec<Gpt>,
    pub(crate) uboot_environments: Vec<UbootEnvironment>,
    pub(crate) require_fwup_version: Option<String>,
    pub(crate) block_cache_size_mb: i64,
}

#[cfg(feature = "create")]
/// Parses a fwup.conf for `fwup -c`: the same syntax and option table as meta.conf, but
/// unknown options are errors (fwup creates without `CFGF_IGNORE_UNKNOWN`), and the caller's
/// hooks implement `define…`, `include` and the section validators. Returns the model and the
/// variables as they stand at the end of the file.
pub(crate) fn parse_fwup_conf<'h>(
    text: &[u8],
    vars: Variables,
    hook: &mut CallHook<'h>,
    section_hook: &mut SectionHook<'h>,
) -> crate::Result<(MetaConf, Variables)> {
    let doc = syntax::parse_with_sections(text, vars, hook, Some(section_hook));
    if let Some(e) = doc.error {
        return Err(e);
    }
    schema::check_known_names(&doc.root)?;
    let parsed = match schema::build(&doc.tokens, &doc.root) {
        Ok(parsed) => parsed,
        Err(schema::Stop::Error(e)) => return Err(e),
        Err(schema::Stop::UsePending) => {
            return Err(syntax_error(doc.eof_line, "premature end of file"));
        }
    };
    let conf = MetaConf {
        metadata: parsed.metadata,
        resources: parsed.resources,
        tasks: parsed.tasks,
        mbrs: parsed.mbrs,
        gpts: parsed.gpts,
        uboot_environments: parsed.uboot_environments,
        require_fwup_version: parsed.require_fwup_version,
        block_cache_size_mb: parsed.block_cache_size_mb,
    };
    Ok((conf, doc.vars))
}

/// fwup's `define`/`define!` at the top level of meta.conf: sets a variable for the rest of
/// the parse (`define` only when it is not set yet).
fn define_hook(path: &[&str], call: &Call, vars: &mut Variables) -> crate::Result<HookAction> {
    let overriding = match call.name.as_str() {
        "define" => false,
        "define!" => true,
        _ => return Ok(HookAction::Keep),
    };
    if !path.is_empty() {
        return Ok(HookAction::Keep);
    }
    let [key, value] = call.args.as_slice() else {
        return Err(syntax_error(
            call.close_line,
            format!("'{}' requires 2 parameters", call.name),
        ));
    };
    if overriding || vars.get(key).is_none() {
        vars.set(key.clone(), value.clone());
    }
    Ok(HookAction::Consumed)
}

impl MetaConf {
    /// Parses meta.conf bytes as fwup 1.16.0 does when reading an archive.
    ///
    /// `vars` supplies `${VAR}` values (set `FWUP_META_UUID`/`FWUP_META_NICKNAME` to the
    /// archive's UUID and nickname to match fwup). Errors:
    /// [`MetaConfError::Syntax`](crate::MetaConfError::Syntax) with libconfuse's message and
    /// line, [`MetaConfError::RequiresNewerFwup`](crate::MetaConfError::RequiresNewerFwup), and
    /// [`MetaConfError::ReservedMetadata`](crate::MetaConfError::ReservedMetadata) when meta.conf sets
    /// `meta-uuid`/`meta-nickname` or changes the two variables above.
    pub fn parse(text: &[u8], vars: &Variables) -> crate::Result<MetaConf> {
        let mut hook = define_hook;
        let doc = syntax::parse(text, vars.clone(), &mut hook);
        let parsed = match schema::build(&doc.tokens, &doc.root) {
            Ok(parsed) => parsed,
            Err(schema::Stop::Error(e)) => return Err(e),
            Err(schema::Stop::UsePending) => {
                return Err(doc
                    .error
                    .unwrap_or_else(|| syntax_error(doc.eof_line, "premature end of file")));
            }
        };
        if let Some(e) = doc.error {
            return Err(e);
        }
        let changed = |name: &str| doc.vars.get(name) != vars.get(name);
        if parsed.sets_reserved_metadata || changed(META_UUID_VAR) || changed(META_NICKNAME_VAR) {
            return Err(crate::Error::MetaConf(
                crate::MetaConfError::ReservedMetadata,
            ));
        }
        Ok(MetaConf {
            metadata: parsed.metadata,
            resources: parsed.resources,
            tasks: parsed.tasks,
            mbrs: parsed.mbrs,
            gpts: parsed.gpts,
            uboot_environments: parsed.uboot_environments,
            require_fwup_version: parsed.require_fwup_version,
            block_cache_size_mb: parsed.block_cache_size_mb,
        })
    }

    /// The `meta-*` strings.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The `file-resource` sections in meta.conf order.
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// The `file-resource` named `name` (as written in meta.conf, e.g. `/root-file`).
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name() == name)
    }

    /// The tasks in meta.conf order (the order fwup tries them in).
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The `mbr` sections in meta.conf order.
    pub fn mbrs(&self) -> &[Mbr] {
        &self.mbrs
    }

    /// The `gpt` sections in meta.conf order.
    pub fn gpts(&self) -> &[Gpt] {
        &self.gpts
    }

    /// The `uboot-environment` sections in meta.conf order.
    pub fn uboot_environments(&self) -> &[UbootEnvironment] {
        &self.uboot_environments
    }

    /// `require-fwup-version`, when meta.conf sets it (already checked to be satisfied).
    pub fn require_fwup_version(&self) -> Option<&str> {
        self.require_fwup_version.as_deref()
    }

    /// `block-cache-size-mb` (default 8; a negative value reads as 0).
    pub fn block_cache_size_mb(&self) -> u64 {
        u64::try_from(self.block_cache_size_mb).unwrap_or(0)
    }
}
