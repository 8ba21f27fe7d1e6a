//! The functions of `on-init`, `on-resource`, `on-finish` and `on-error` handlers.
//!
//! Offsets and counts are 512-byte blocks; integers are read like C's `strtol(s, 0)`
//! (`0x…` hex, leading `0` octal). Arguments were checked when the archive was created; at
//! apply time fwup only checks that every function exists, while it computes the progress
//! total ([`check_and_count`]).

use std::io::Write as _;

use blake2::digest::Digest as _;

use super::cache::BlockCache;
use super::crypto::{self, SectorCipher};
use super::engine::{ApplyEvents, ApplyOptions};
use super::fat;
use super::host::Host;
use super::partitions;
use super::progress::Progress;
use super::target::Target;
use crate::delta::DeltaDecoder;
use crate::metaconf::{FunctionCall, MetaConf, Resource, Task};
use crate::{ApplyError, DeltaError, Error, Result};

/// fwup's block size.
pub(super) const BLOCK: u64 = 512;
/// How much resource data is read at a time (fwup's 16 KiB archive buffer).
const CHUNK: usize = 16 * 1024;
/// How much resource data is streamed at a time: one cache segment.
const DATA_CHUNK: usize = super::cache::SEGMENT_SIZE;

/// Everything a function may use while a task runs.
pub(super) struct Context<'a, T: Target> {
    pub(super) cache: BlockCache<T>,
    pub(super) meta: &'a MetaConf,
    pub(super) options: &'a ApplyOptions,
    pub(super) events: &'a mut dyn ApplyEvents,
    pub(super) host: &'a mut dyn Host,
    pub(super) progress: Progress,
}

impl<T: Target> Context<'_, T> {
    pub(super) fn report(&mut self) {
        self.events.progress(self.progress);
    }

    fn advance(&mut self, units: u64) {
        self.progress.done = self
            .progress
            .done
            .saturating_add(units)
            .min(self.progress.total);
        self.report();
    }
}

/// The data of the resource an `on-resource` handler runs for. The first function that
/// consumes data streams it; a second one finds nothing.
pub(super) struct Stream<'s> {
    resource: &'s Resource,
    read: &'s mut dyn FnMut(&mut [u8]) -> Result<usize>,
    consumed: bool,
    /// Set when the entry is an xdelta3 patch: the data read is its decoded output.
    delta: Option<Delta>,
}

/// Where a delta resource's COPY instructions read: fwup's `delta-source-raw-offset`/
/// `-count` (a range of the destination) or `delta-source-fat-offset`/`-path` (a file).
#[derive(Debug)]
pub(super) enum DeltaSource {
    /// Byte offset and length of the range.
    Raw {
        /// Byte offset on the destination.
        offset: u64,
        /// Length in bytes.
        len: u64,
        /// `delta-source-raw-options`: the range is dm-crypt encrypted.
        cipher: Option<SectorCipher>,
    },
    /// A file in the FAT filesystem at a byte offset.
    Fat {
        /// Byte offset of the filesystem.
        base: u64,
        /// The file's path.
        path: String,
    },
}

/// A delta resource being decoded.
pub(super) struct Delta {
    decoder: DeltaDecoder,
    source: DeltaSource,
    /// The source file, for FAT sources, opened on first use.
    fat_file: Option<fat::ReadFile>,
}

impl<'s> Stream<'s> {
    pub(super) fn new(
        resource: &'s Resource,
        read: &'s mut dyn FnMut(&mut [u8]) -> Result<usize>,
    ) -> Self {
        Self {
            resource,
            read,
            consumed: false,
            delta: None,
        }
    }

    /// Makes this stream decode its entry as an xdelta3 patch against `source`.
    pub(super) fn with_delta(mut self, source: DeltaSource) -> Self {
        self.delta = Some(Delta {
            decoder: DeltaDecoder::new(0),
            source,
            fat_file: None,
        });
        self
    }

    /// The resource's next data bytes: the entry's, or the patch's decoded output.
    fn read_data<T: Target>(&mut self, cache: &mut BlockCache<T>, buf: &mut [u8]) -> Result<usize> {
        let Some(delta) = self.delta.as_mut() else {
            return (self.read)(buf);
        };
        let patch = &mut *self.read;
        match &delta.source {
            DeltaSource::Raw {
                offset,
                len,
                cipher,
            } => {
                let (offset, len) = (*offset, *len);
                delta.decoder.set_source_len(len);
                let mut sectors = Vec::new();
                delta.decoder.read(buf, patch, &mut |at, out| match cipher {
                    None => cache.read_at(offset.saturating_add(at), out),
                    Some(cipher) => {
                        // Whole sectors around the range, decrypted, numbered from the
                        // source's start as they were encrypted.
                        let sector = crypto::SECTOR as u64;
                        let first = at / sector;
                        let end = (at + out.len() as u64).next_multiple_of(sector);
                        let span = usize::try_from(end - first * sector).map_err(|_| {
                            Error::Delta(DeltaError::Malformed("source read too large".into()))
                        })?;
                        sectors.resize(span, 0);
                        cache.read_at(offset.saturating_add(first * sector), &mut sectors)?;
                        cipher.decrypt(&mut sectors, first);
                        let skip = usize::try_from(at - first * sector).unwrap_or(0);
                        out.copy_from_slice(
                            sectors.get(skip..skip + out.len()).unwrap_or_default(),
                        );
                        Ok(())
                    }
                })
            }
            DeltaSource::Fat { base, path } => {
                let (base, path) = (*base, path.clone());
                let source_error = |e: Error| fat::with_context(e, "xdelta3 source", &path);
                if delta.fat_file.is_none() {
                    let mut vol = fat::Volume::mount(cache, base).map_err(source_error)?;
                    let file = vol.open_read(&path).map_err(source_error)?;
                    delta.decoder.set_source_len(file.size());
                    delta.fat_file = Some(file);
                }
                let file = delta
                    .fat_file
                    .as_mut()
                    .ok_or_else(|| Error::Delta(DeltaError::Malformed("no source".into())))?;
                delta.decoder.read(buf, patch, &mut |at, out| {
                    let mut vol = fat::Volume::mount(&mut *cache, base).map_err(source_error)?;
                    vol.pread(file, at, out).map_err(source_error)
                })
            }
        }
    }
}

/// Every function name fwup 1.16 knows, with how it counts towards progress.
#[derive(Clone, Copy)]
enum Units {
    /// Data bytes of the resource.
    Data,
    /// Data plus holes of the resource.
    DataAndHoles,
    /// `count` blocks (second argument) of bytes.
    Blocks,
    /// `count` (second argument) / 256 blocks, as fwup counts trims.
    Trim,
    /// A fixed number of units.
    Fixed(u64),
    /// The size of the U-Boot environment named by the first argument.
    UbootEnv,
}

fn known(name: &str) -> Option<Units> {
    Some(match name {
        "raw_write" => Units::Data,
        "fat_write" | "pipe_write" | "ubi_volume_write" | "path_write" => Units::DataAndHoles,
        "raw_memset" => Units::Blocks,
        "trim" => Units::Trim,
        "mbr_write" => Units::Fixed(BLOCK),
        "gpt_write" => Units::Fixed(2 * 33 * BLOCK),
        "uboot_clearenv" | "uboot_setenv" | "uboot_unsetenv" | "uboot_recover" => Units::UbootEnv,
        "fat_mkfs" | "fat_attrib" | "fat_mv" | "fat_mv!" | "fat_rm" | "fat_rm!" | "fat_cp"
        | "fat_mkdir" | "fat_setlabel" | "fat_touch" | "execute" | "reboot_param" => {
            Units::Fixed(BLOCK)
        }
        "info" | "error" => Units::Fixed(0),
        _ => return None,
    })
}

/// Checks that the task calls only functions fwup knows ([`ApplyError::UnknownFunction`](crate::ApplyError::UnknownFunction)) and
/// returns the progress total of `on-init`, the `on-resource` handlers and `on-finish`.
pub(super) fn check_and_count(meta: &MetaConf, task: &Task) -> Result<u64> {
    let mut total = 0u64;
    let mut count = |calls: &[FunctionCall], resource: Option<&Resource>| -> Result<()> {
        for call in calls {
            let units = known(call.name())
                .ok_or_else(|| Error::Apply(ApplyError::UnknownFunction(call.name().to_owned())))?;
            let n = match units {
                Units::Data => resource.map_or(0, Resource::data_len),
                Units::DataAndHoles => resource.map_or(0, Resource::total_len),
                Units::Blocks => arg_u64(call, 1).unwrap_or(0).saturating_mul(BLOCK),
                Units::Trim => arg_u64(call, 1).unwrap_or(0).saturating_mul(BLOCK) / 256,
                Units::Fixed(n) => n,
                Units::UbootEnv => call
                    .args()
                    .first()
                    .and_then(|name| meta.uboot_environments().iter().find(|e| e.name() == name))
                    .map_or(0, |env| {
                        let size = u64::try_from(env.block_count()).unwrap_or(0) * BLOCK;
                        if env.block_offset_redund().is_some() {
                            size * 2
                        } else {
                            size
                        }
                    }),
            };
            total = total.saturating_add(n);
        }
        Ok(())
    };
    count(task.on_init(), None)?;
    for handler in task.on_resources() {
        count(handler.functions(), meta.resource(handler.resource()))?;
    }
    count(task.on_finish(), None)?;
    Ok(total)
}

/// Parses an integer as C's `strtol(s, NULL, 0)` does for a whole string.
pub(super) fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(digits.get(1..)?, 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { -value } else { value })
}

fn arg_u64(call: &FunctionCall, index: usize) -> Option<u64> {
    call.args()
        .get(index)
        .and_then(|a| parse_int(a))
        .and_then(|v| u64::try_from(v).ok())
}

fn bad_args(call: &FunctionCall, what: &str) -> Error {
    Error::Apply(ApplyError::FunctionFailed {
        function: call.name().to_owned(),
        message: what.to_owned(),
    })
}

fn arg_str(call: &FunctionCall, index: usize) -> Result<&str> {
    call.args()
        .get(index)
        .map(String::as_str)
        .ok_or_else(|| bad_args(call, "missing argument"))
}

/// A block-number argument as a byte offset.
fn arg_blocks(call: &FunctionCall, index: usize) -> Result<u64> {
    arg_u64(call, index)
        .and_then(|blocks| blocks.checked_mul(BLOCK))
        .ok_or_else(|| bad_args(call, "invalid block offset or count"))
}

/// Runs `calls` in order; stops at the first error.
pub(super) fn run_list<T: Target>(
    ctx: &mut Context<'_, T>,
    calls: &[FunctionCall],
    mut stream: Option<&mut Stream<'_>>,
) -> Result<()> {
    for call in calls {
        run(ctx, call, stream.as_deref_mut())?;
    }
    Ok(())
}

fn not_supported(call: &FunctionCall, what: &'static str) -> Error {
    Error::Apply(ApplyError::NotSupported {
        function: call.name().to_owned(),
        what,
    })
}

fn require_unsafe<T: Target>(ctx: &Context<'_, T>, call: &FunctionCall) -> Result<()> {
    if ctx.options.unsafe_mode {
        Ok(())
    } else {
        Err(Error::Apply(ApplyError::RequiresUnsafe(
            call.name().to_owned(),
        )))
    }
}

fn data_stream<'a, 's>(
    call: &FunctionCall,
    stream: Option<&'a mut Stream<'s>>,
) -> Result<&'a mut Stream<'s>> {
    let stream = stream.ok_or_else(|| bad_args(call, "only usable in on-resource"))?;
    if stream.consumed {
        return Err(Error::Apply(ApplyError::ResourceAlreadyConsumed(
            call.name().to_owned(),
        )));
    }
    stream.consumed = true;
    Ok(stream)
}

fn uboot_env<'m>(
    meta: &'m MetaConf,
    call: &FunctionCall,
) -> Result<&'m crate::metaconf::UbootEnvironment> {
    let name = arg_str(call, 0)?;
    meta.uboot_environments()
        .iter()
        .find(|e| e.name() == name)
        .ok_or_else(|| bad_args(call, &format!("can't find uboot-environment '{name}'")))
}

fn run<T: Target>(
    ctx: &mut Context<'_, T>,
    call: &FunctionCall,
    stream: Option<&mut Stream<'_>>,
) -> Result<()> {
    let name = call.name();
    let units = match name {
        "raw_write" => {
            let dest = arg_blocks(call, 0)?;
            let cipher = SectorCipher::from_options(call.args().get(1..).unwrap_or_default())?;
            let stream = data_stream(call, stream)?;
            match cipher {
                None => raw_write(ctx, call, stream, dest)?,
                Some(cipher) => raw_write_encrypted(ctx, call, stream, dest, &cipher)?,
            }
            0
        }
        "path_write" | "pipe_write" => {
            require_unsafe(ctx, call)?;
            let target = arg_str(call, 0)?;
            let stream = data_stream(call, stream)?;
            let mut sink = if name == "path_write" {
                ctx.host.open_path(target)?
            } else {
                ctx.host.open_pipe(target)?
            };
            let result = stream_runs(
                ctx,
                call,
                stream,
                true,
                Chunks::Segments(0),
                &mut |_, _, data| Ok(sink.write_all(data)?),
            );
            // Close the pipe whatever happened, so the command does not wait forever.
            let finished = sink.finish();
            result?;
            finished?;
            0
        }
        "raw_memset" => {
            let offset = arg_blocks(call, 0)?;
            let len = arg_blocks(call, 1)?;
            let value = arg_u64(call, 2)
                .and_then(|v| u8::try_from(v).ok())
                .ok_or_else(|| bad_args(call, "value must be between 0 and 255"))?;
            if len == 0 {
                return Err(bad_args(call, "count can't be 0"));
            }
            let chunk = vec![value; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(chunk.len() as u64);
                let piece = chunk.get(..n as usize).unwrap_or_default();
                ctx.cache.write_at(offset + done, piece)?;
                done += n;
                ctx.advance(n);
            }
            0
        }
        "trim" => {
            let offset = arg_blocks(call, 0)?;
            let len = arg_blocks(call, 1)?;
            ctx.cache.trim(offset, len)?;
            len / 256
        }
        "mbr_write" => {
            let mbr_name = arg_str(call, 0)?;
            let mbr = ctx
                .meta
                .mbrs()
                .iter()
                .find(|m| m.name() == mbr_name)
                .ok_or_else(|| bad_args(call, &format!("can't find mbr '{mbr_name}'")))?;
            partitions::write_mbr(&mut ctx.cache, mbr)?;
            BLOCK
        }
        "gpt_write" => {
            let gpt_name = arg_str(call, 0)?;
            let gpt = ctx
                .meta
                .gpts()
                .iter()
                .find(|g| g.name() == gpt_name)
                .ok_or_else(|| bad_args(call, &format!("can't find gpt '{gpt_name}'")))?;
            partitions::write_gpt(&mut ctx.cache, gpt)?;
            2 * 33 * BLOCK
        }
        "uboot_clearenv" | "uboot_setenv" | "uboot_unsetenv" | "uboot_recover" => {
            let env = uboot_env(ctx.meta, call)?;
            match name {
                "uboot_clearenv" => partitions::uboot_clearenv(&mut ctx.cache, env)?,
                "uboot_setenv" => partitions::uboot_setenv(
                    &mut ctx.cache,
                    env,
                    arg_str(call, 1)?,
                    arg_str(call, 2)?,
                )?,
                "uboot_unsetenv" => {
                    partitions::uboot_unsetenv(&mut ctx.cache, env, arg_str(call, 1)?)?;
                }
                _ => partitions::uboot_recover(&mut ctx.cache, env)?,
            }
            let size = u64::try_from(env.block_count()).unwrap_or(0) * BLOCK;
            if env.block_offset_redund().is_some() {
                size * 2
            } else {
                size
            }
        }
        "info" => {
            ctx.events.info(arg_str(call, 0)?);
            0
        }
        "error" => {
            return Err(Error::Apply(ApplyError::TaskError(
                arg_str(call, 0)?.to_owned(),
            )));
        }
        "execute" => {
            require_unsafe(ctx, call)?;
            let command = arg_str(call, 0)?;
            if !ctx.host.execute(command)? {
                return Err(bad_args(call, &format!("'{command}' failed")));
            }
            BLOCK
        }
        "reboot_param" => {
            let args = arg_str(call, 0)?;
            let path = ctx.options.reboot_param_path.as_deref();
            ctx.host.write_reboot_param(path, args)?;
            BLOCK
        }
        "ubi_volume_write" => {
            require_unsafe(ctx, call)?;
            return Err(not_supported(call, "UBI"));
        }
        "fat_write" => {
            let base = arg_blocks(call, 0)?;
            let stream = data_stream(call, stream)?;
            let path = match call.args().get(1) {
                Some(path) => path.clone(),
                None => stream.resource.name().to_owned(),
            };
            fat_write(ctx, call, stream, base, &path)?;
            0
        }
        "fat_mkfs" | "fat_attrib" | "fat_mv" | "fat_mv!" | "fat_rm" | "fat_rm!" | "fat_cp"
        | "fat_mkdir" | "fat_setlabel" | "fat_touch" => {
            fat_function(ctx, call)?;
            BLOCK
        }
        other => return Err(Error::Apply(ApplyError::UnknownFunction(other.to_owned()))),
    };
    if units > 0 {
        ctx.advance(units);
    }
    Ok(())
}

/// The FAT functions other than `fat_write`, with fwup's error texts.
fn fat_function<T: Target>(ctx: &mut Context<'_, T>, call: &FunctionCall) -> Result<()> {
    let name = call.name();
    let base = arg_blocks(call, 0)?;
    let t: &mut dyn Target = &mut ctx.cache;
    let context = |err: Error, what: &str, path: &str| fat::with_context(err, what, path);
    match name {
        "fat_mkfs" => {
            let count = arg_u64(call, 1).ok_or_else(|| bad_args(call, "invalid block count"))?;
            fat::mkfs(t, base, count).map_err(|e| context(e, "fat_mkfs", ""))
        }
        "fat_cp" => {
            let (to_base, from, to) = if call.args().len() >= 4 {
                (arg_blocks(call, 2)?, arg_str(call, 1)?, arg_str(call, 3)?)
            } else {
                (base, arg_str(call, 1)?, arg_str(call, 2)?)
            };
            fat::cp(t, base, from, to_base, to)
                .map_err(|e| context(e, "fatfs_cp can't open file", from))
        }
        _ => {
            let arg1 = arg_str(call, 1)?;
            let mut vol = fat::Volume::mount(t, base).map_err(|e| context(e, name, arg1))?;
            let result = match name {
                "fat_attrib" => {
                    let mut attr = 0u8;
                    for c in arg_str(call, 2)?.chars() {
                        attr |= match c {
                            'R' | 'r' => fat::AM_RDO,
                            'H' | 'h' => fat::AM_HID,
                            'S' | 's' => fat::AM_SYS,
                            _ => 0,
                        };
                    }
                    vol.attrib(arg1, attr)
                }
                "fat_mv" | "fat_mv!" => vol.mv(arg1, arg_str(call, 2)?, name.ends_with('!')),
                "fat_rm" | "fat_rm!" => vol.rm(arg1, name.ends_with('!')),
                "fat_mkdir" => vol.mkdir(arg1),
                "fat_setlabel" => vol.setlabel(arg1),
                _ => vol.touch(arg1),
            };
            result.map_err(|e| context(e, name, arg1))
        }
    }
}

/// `fat_write`: creates or truncates the file, then writes the resource's data runs at
/// their offsets (holes become zeros, as fwup's `fatfs_pwrite` fills them).
fn fat_write<T: Target>(
    ctx: &mut Context<'_, T>,
    call: &FunctionCall,
    stream: &mut Stream<'_>,
    base: u64,
    path: &str,
) -> Result<()> {
    let open_error = |e: Error| fat::with_context(e, "Can't open file on FAT partition", path);
    let write_error = |e: Error| fat::with_context(e, "fat_write can't write", path);
    let (mut file, mut hint) = {
        let mut vol = fat::Volume::mount(&mut ctx.cache, base).map_err(open_error)?;
        let file = vol.create(path).map_err(open_error)?;
        (file, vol.last_cluster())
    };
    let total = stream.resource.total_len();
    let data = stream.resource.data_len();
    stream_runs(
        ctx,
        call,
        stream,
        false,
        Chunks::AsRead,
        &mut |ctx, at, bytes| {
            let mut vol = fat::Volume::mount(&mut ctx.cache, base).map_err(write_error)?;
            vol.set_last_cluster(hint);
            vol.pwrite(&mut file, at, bytes).map_err(write_error)?;
            hint = vol.last_cluster();
            Ok(())
        },
    )?;
    if file.size() < total {
        let mut vol = fat::Volume::mount(&mut ctx.cache, base).map_err(write_error)?;
        vol.set_last_cluster(hint);
        vol.pwrite(&mut file, total, &[]).map_err(write_error)?;
    }
    ctx.advance(total.saturating_sub(data));
    Ok(())
}

/// `raw_write`: data runs at their offsets (holes skipped), a partial last block of each
/// run zero-padded to 512 bytes, and one zero block at the end when the resource ends with
/// a hole, so that a file reaches its full length.
fn raw_write<T: Target>(
    ctx: &mut Context<'_, T>,
    call: &FunctionCall,
    stream: &mut Stream<'_>,
    dest: u64,
) -> Result<()> {
    let runs = stream.resource.length_runs().to_vec();
    let total = stream.resource.total_len();
    if dest.checked_add(total).is_none() {
        return Err(bad_args(call, "destination past the end of any media"));
    }
    stream_runs(
        ctx,
        call,
        stream,
        false,
        Chunks::Segments(dest),
        &mut |ctx, at, data| ctx.cache.write_at(dest + at, data),
    )?;
    // Zero-pad each data run that ends inside a block, as fwup's block-padding writer
    // does, unless the pad would reach into the next data run.
    let mut pos = 0u64;
    for (i, run) in runs.iter().enumerate() {
        let end = pos.saturating_add(*run);
        if i % 2 == 0 && *run > 0 && end % BLOCK != 0 {
            let pad = BLOCK - end % BLOCK;
            let room = runs.get(i + 1).copied().unwrap_or(u64::MAX);
            if i + 1 == runs.len() || room >= pad {
                let zeros = [0u8; BLOCK as usize];
                ctx.cache
                    .write_at(dest + end, zeros.get(..pad as usize).unwrap_or_default())?;
            }
        }
        pos = end;
    }
    // A trailing hole: one zero block (or the hole, if shorter) at the very end.
    if runs.len().is_multiple_of(2)
        && let Some(&hole) = runs.last()
        && hole > 0
    {
        let len = hole.min(BLOCK);
        let zeros = [0u8; BLOCK as usize];
        let at = dest + total - len;
        let pad_end = (at + len).next_multiple_of(BLOCK);
        let padded = (pad_end - at).min(BLOCK);
        ctx.cache
            .write_at(at, zeros.get(..padded as usize).unwrap_or_default())?;
    }
    Ok(())
}

/// `raw_write` with dm-crypt options: the data, zero-padded to whole sectors, encrypted
/// sector by sector (numbered from 0 at `dest`) and written. Chunks end on cache-segment
/// boundaries, so every chunk but the last is whole sectors.
fn raw_write_encrypted<T: Target>(
    ctx: &mut Context<'_, T>,
    call: &FunctionCall,
    stream: &mut Stream<'_>,
    dest: u64,
    cipher: &SectorCipher,
) -> Result<()> {
    if stream.resource.length_runs().len() > 1 {
        return Err(not_supported(call, "encrypted writes of sparse resources"));
    }
    if dest.checked_add(stream.resource.total_len()).is_none() {
        return Err(bad_args(call, "destination past the end of any media"));
    }
    let mut sectors = Vec::with_capacity(DATA_CHUNK);
    stream_runs(
        ctx,
        call,
        stream,
        false,
        Chunks::Segments(dest),
        &mut |ctx, at, data| {
            sectors.clear();
            sectors.extend_from_slice(data);
            sectors.resize(data.len().next_multiple_of(crypto::SECTOR), 0);
            cipher.encrypt(&mut sectors, at / crypto::SECTOR as u64);
            ctx.cache.write_at(dest + at, &sectors)
        },
    )
}

/// How [`stream_runs`] cuts the data it hands over.
#[derive(Debug, Clone, Copy)]
enum Chunks {
    /// Chunks end on the destination's cache-segment boundaries (destination offset of
    /// the resource's first byte given), so whole segments bypass the cache.
    Segments(u64),
    /// One chunk per read of the archive, as libarchive hands data to fwup (at most its
    /// 256 KiB output buffer, never across a 16 KiB archive read block): FAT files are
    /// written in these chunks, and FatFs's stale sector buffer depends on where they end.
    AsRead,
}

/// libarchive's output buffer: the most one of its reads hands to fwup.
const LIBARCHIVE_OUTPUT: usize = 256 * 1024;

/// Receives streamed data: the context, the offset inside the resource, the bytes.
type DataSink<'f, T> = dyn FnMut(&mut Context<'_, T>, u64, &[u8]) -> Result<()> + 'f;

/// Streams a resource's data runs, hashing them, and hands each chunk to `on_data` with its
/// offset inside the resource (holes included). With `fill_holes`, holes are handed over
/// as zeros. At the end the byte count and BLAKE2b-256 must match meta.conf.
fn stream_runs<T: Target>(
    ctx: &mut Context<'_, T>,
    call: &FunctionCall,
    stream: &mut Stream<'_>,
    fill_holes: bool,
    chunks: Chunks,
    on_data: &mut DataSink<'_, T>,
) -> Result<()> {
    let mismatch = || {
        Error::Apply(ApplyError::HashMismatch {
            function: call.name().to_owned(),
            resource: stream.resource.name().to_owned(),
        })
    };
    let expected = stream.resource.blake2b_256();
    let runs = stream.resource.length_runs();
    let mut hasher = blake2::Blake2b256::new();
    let mut buf = vec![0u8; DATA_CHUNK.max(LIBARCHIVE_OUTPUT)];
    let mut pos = 0u64;
    let mut short = false;
    for (i, &run) in runs.iter().enumerate() {
        if i % 2 == 1 {
            if fill_holes {
                let zeros = vec![0u8; CHUNK];
                let mut left = run;
                while left > 0 {
                    let n = left.min(CHUNK as u64);
                    on_data(ctx, pos, zeros.get(..n as usize).unwrap_or_default())?;
                    ctx.advance(n);
                    pos += n;
                    left -= n;
                }
            } else {
                pos = pos.saturating_add(run);
            }
            continue;
        }
        let mut left = run;
        while left > 0 {
            let want = match chunks {
                Chunks::Segments(align) => {
                    let to_boundary =
                        DATA_CHUNK as u64 - (align.wrapping_add(pos) % DATA_CHUNK as u64);
                    left.min(to_boundary) as usize
                }
                Chunks::AsRead => left.min(LIBARCHIVE_OUTPUT as u64) as usize,
            };
            let out = buf.get_mut(..want).unwrap_or_default();
            let mut n = 0;
            while n < want {
                let got = stream.read_data(&mut ctx.cache, out.get_mut(n..).unwrap_or_default())?;
                if got == 0 {
                    break;
                }
                n += got;
                if matches!(chunks, Chunks::AsRead) {
                    break;
                }
            }
            if n == 0 {
                short = true;
                break;
            }
            let data = out.get(..n).unwrap_or_default();
            hasher.update(data);
            on_data(ctx, pos, data)?;
            ctx.advance(n as u64);
            pos += n as u64;
            left -= n as u64;
        }
        if short {
            break;
        }
    }
    // More data than meta.conf declares is a mismatch too. One more read shows it; the
    // rest is not inflated (a zip bomb behind a small declared length costs nothing more).
    let extra = if short {
        0
    } else {
        stream.read_data(&mut ctx.cache, &mut buf)?
    };
    if short || extra > 0 || expected != Some(hasher.finalize().into()) {
        return Err(mismatch());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_strtol_base_0() {
        assert_eq!(parse_int("256"), Some(256));
        assert_eq!(parse_int("0x1A"), Some(26));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("0"), Some(0));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("x"), None);
    }
}
