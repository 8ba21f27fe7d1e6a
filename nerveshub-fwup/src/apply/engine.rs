//! The apply engine: task selection, the event handlers in fwup's order, and error handling.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;

use super::cache::BlockCache;
use super::crypto::SectorCipher;
use super::functions::{self, DeltaSource, Stream};
use super::host::{Host, SystemHost};
use super::progress::Progress;
use super::requirements;
use super::target::Target;
use crate::archive::ArchiveReader;
use crate::metaconf::{MetaConf, OnResource, Resource, Task, Variables};
use crate::{
    ApplyError, ArchiveError, DeltaError, Error, FirmwareUuid, PublicKey, Result, SignatureStatus,
};

/// What to apply and how: the `fwup -a` options that reach the engine.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// Task name prefix (`-t`): the first task in meta.conf order whose name starts with it
    /// and whose requirements hold is applied.
    pub task: String,
    /// Public keys (`-p`, `--public-key`). When not empty the archive must be signed by one
    /// of them; this is checked before anything is written.
    pub public_keys: Vec<PublicKey>,
    /// Values for `${VAR}` references left in meta.conf for apply time (fwup takes them from
    /// its environment). `FWUP_META_UUID` and `FWUP_META_NICKNAME` are set by the engine.
    pub variables: Variables,
    /// `--unsafe`: allows `path_write`, `pipe_write`, `execute` and `require-execute`.
    pub unsafe_mode: bool,
    /// `--reboot-param-path`: where `reboot_param` writes.
    pub reboot_param_path: Option<PathBuf>,
    /// `--enable-trim`: pass `trim` on to the destination.
    pub enable_trim: bool,
}

impl ApplyOptions {
    /// Options applying the task selected by `task` (a name prefix), with nothing else set.
    pub fn new(task: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            ..Self::default()
        }
    }
}

/// What the engine tells its caller while it works, and the caller's chance to stop it.
///
/// Every method has a default that does nothing (or allows), so implement only what is
/// needed.
pub trait ApplyEvents {
    /// The task that will be applied was chosen (its requirements hold).
    fn task_selected(&mut self, _task: &str) {}

    /// Work done so far. Called after each chunk of data and each function.
    fn progress(&mut self, _progress: Progress) {}

    /// An `info("…")` message of the task.
    fn info(&mut self, _message: &str) {}

    /// Called once every resource was written and checked, right before `on-finish` runs
    /// (where A/B firmware switches the active slot). Returning `Err(reason)` fails the
    /// apply instead: the still cached writes are dropped, `on-error` runs, and the apply
    /// returns [`ApplyError::Vetoed`](crate::ApplyError::Vetoed). A device client checks the download's SHA-256 here.
    ///
    /// # Errors
    /// The reason for the veto.
    fn before_finish(&mut self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Ignores every event and never vetoes.
impl ApplyEvents for () {}

/// The result of a successful apply.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApplyReport {
    /// The name of the task applied.
    pub task: String,
    /// Whether the archive's signature was checked.
    pub signature: SignatureStatus,
    /// The archive's `meta-uuid`.
    pub uuid: FirmwareUuid,
}

/// Applies the archive read from `input` to `target`, as `fwup -a` does (see
/// [`apply_with_host`]; host operations here are those of [`SystemHost`]).
///
/// # Errors
/// Every failure of the archive, the task or the destination; see [`apply_with_host`].
pub fn apply<R: Read, T: Target>(
    input: R,
    target: T,
    options: &ApplyOptions,
    events: &mut dyn ApplyEvents,
) -> Result<ApplyReport> {
    apply_with_host(input, target, options, events, &mut SystemHost)
}

/// Applies the archive read from `input` to `target` with fwup's semantics.
///
/// 1. The head is read; with public keys the signature is checked, then meta.conf is
///    parsed with the apply-time variables.
/// 2. The first task whose name starts with [`ApplyOptions::task`] and whose requirements
///    hold is selected ([`ApplyError::NoApplicableTask`](crate::ApplyError::NoApplicableTask) otherwise). A function the task calls
///    that fwup does not know fails it now ([`ApplyError::UnknownFunction`](crate::ApplyError::UnknownFunction)), before anything is
///    written.
/// 3. `on-init` runs; then, for each archive entry in archive order, the task's
///    `on-resource` for it (entries without a handler are skipped unread); every handler
///    must have run. Data is hashed as it streams and checked against meta.conf.
/// 4. [`ApplyEvents::before_finish`] may veto; `on-finish` runs; the write cache is flushed.
///
/// On an error after the task was selected, the writes still cached are dropped, `on-error`
/// runs (its own errors ignored), what it wrote is flushed, and the first error is
/// returned. Writes go through fwup's block cache, so the destination's bytes (and an image
/// file's size) are those fwup produces.
///
/// # Errors
/// Archive and signature errors, [`ApplyError::NoApplicableTask`](crate::ApplyError::NoApplicableTask), [`ApplyError::UnknownFunction`](crate::ApplyError::UnknownFunction),
/// function failures, [`ApplyError::HashMismatch`](crate::ApplyError::HashMismatch), [`ArchiveError::MissingResource`](crate::ArchiveError::MissingResource),
/// [`ApplyError::Vetoed`](crate::ApplyError::Vetoed), destination I/O errors.
pub fn apply_with_host<R: Read, T: Target>(
    input: R,
    target: T,
    options: &ApplyOptions,
    events: &mut dyn ApplyEvents,
    host: &mut dyn Host,
) -> Result<ApplyReport> {
    let reader = ArchiveReader::open(input)?;
    let signature = reader.head().check_signature(&options.public_keys)?;
    let meta = reader.head().parse(&options.variables)?;
    let uuid = reader.head().uuid();
    let mut cache = BlockCache::new(target, meta.block_cache_size_mb(), options.enable_trim);

    let task = select_task(&meta, options, &mut cache, host)?;
    events.task_selected(task.name());
    let total = functions::check_and_count(&meta, task)?;

    let mut ctx = functions::Context {
        cache,
        meta: &meta,
        options,
        events,
        host,
        progress: Progress { done: 0, total },
    };
    match run_task(&mut ctx, task, reader) {
        Ok(()) => {
            ctx.cache.flush()?;
            Ok(ApplyReport {
                task: task.name().to_owned(),
                signature,
                uuid,
            })
        }
        Err(err) => {
            ctx.cache.discard();
            // fwup ignores the errors of on-error and of its flush: the first error counts.
            let _ = functions::run_list(&mut ctx, task.on_error(), None);
            let _ = ctx.cache.flush();
            Err(err)
        }
    }
}

/// fwup's rule for delta resources: an entry of one data run whose ZIP size differs from
/// meta.conf's length is an xdelta3 patch, to be applied against the handler's
/// `delta-source-raw-offset`/`-count` range or `delta-source-fat-offset`/`-path` file.
fn delta_source(
    handler: &OnResource,
    resource: &Resource,
    name: &str,
    declared: Option<u64>,
) -> Result<Option<DeltaSource>> {
    let runs = resource.length_runs();
    let expected = resource.data_len();
    let Some(size) = declared.filter(|size| runs.len() == 1 && *size != expected) else {
        return Ok(None);
    };
    let blocks = |text: &str| {
        parse_unsigned(text)
            .and_then(|b| b.checked_mul(512))
            .ok_or_else(|| {
                Error::Delta(DeltaError::Malformed(format!(
                    "bad delta source offset '{text}'"
                )))
            })
    };
    let raw_count = handler.delta_source_raw_count().filter(|c| *c > 0);
    if let (Some(offset), Some(count)) = (handler.delta_source_raw_offset(), raw_count) {
        let cipher = match handler.delta_source_raw_options() {
            Some(options) => SectorCipher::from_options(&[options.to_owned()])?,
            None => None,
        };
        let len = u64::try_from(count).unwrap_or(0).saturating_mul(512);
        return Ok(Some(DeltaSource::Raw {
            offset: blocks(offset)?,
            len,
            cipher,
        }));
    }
    if let (Some(offset), Some(path)) = (
        handler.delta_source_fat_offset(),
        handler.delta_source_fat_path(),
    ) {
        return Ok(Some(DeltaSource::Fat {
            base: blocks(offset)?,
            path: path.to_owned(),
        }));
    }
    Err(Error::Delta(DeltaError::NotEnabled {
        name: name.to_owned(),
        size,
        expected,
    }))
}

/// `strtoul(text, 0, 0)` for the offsets fwup keeps as strings: decimal, `0x` hex, `0`
/// octal.
fn parse_unsigned(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()
    } else {
        t.parse().ok()
    }
}

/// Walks the tasks in meta.conf order; the first with a matching name and requirements
/// that hold wins.
fn select_task<'m, T: Target>(
    meta: &'m MetaConf,
    options: &ApplyOptions,
    cache: &mut BlockCache<T>,
    host: &mut dyn Host,
) -> Result<&'m Task> {
    for task in meta.tasks() {
        if task.name().starts_with(&options.task)
            && requirements::task_applies(task, meta, options, cache, host)?
        {
            return Ok(task);
        }
    }
    Err(Error::Apply(ApplyError::NoApplicableTask(
        options.task.clone(),
    )))
}

fn run_task<R: Read, T: Target>(
    ctx: &mut functions::Context<'_, T>,
    task: &Task,
    mut reader: ArchiveReader<R>,
) -> Result<()> {
    ctx.report();
    functions::run_list(ctx, task.on_init(), None)?;

    let mut seen = HashSet::new();
    while let Some(mut entry) = reader.next_resource()? {
        let name = entry.name().to_owned();
        let Some(handler) = task.on_resource(&name) else {
            continue;
        };
        let resource = ctx
            .meta
            .resource(&name)
            .ok_or_else(|| Error::Archive(ArchiveError::UnknownResource(name.clone())))?;
        let declared = entry.declared_size();
        let delta = delta_source(handler, resource, &name, declared)?;
        let mut read = |buf: &mut [u8]| entry.read_chunk(buf);
        let mut stream = Stream::new(resource, &mut read);
        if let Some(source) = delta {
            stream = stream.with_delta(source);
        }
        functions::run_list(ctx, handler.functions(), Some(&mut stream))?;
        seen.insert(name);
    }
    reader.finish()?;
    if let Some(missing) = task
        .on_resources()
        .iter()
        .find(|h| !seen.contains(h.resource()))
    {
        return Err(Error::Archive(ArchiveError::MissingResource(
            missing.resource().to_owned(),
        )));
    }

    ctx.events.before_finish().map_err(ApplyError::Vetoed)?;
    functions::run_list(ctx, task.on_finish(), None)?;
    Ok(())
}
