//! `mbr_write` and `require-partition-offset`: the master boot record and extended boot
//! records exactly as fwup's `mbr.c` builds them.
//!
//! Partitions 0–3 are primary. When partition 3 has type 0x05 or 0x0F it is an extended
//! partition and partitions 4–11 are logical partitions, each described by an EBR; the EBRs
//! sit in consecutive blocks at the start of the extended partition. CHS values use 255
//! heads and 63 sectors and are left zero when the LBA is too large. An `expand` partition
//! (and always the extended partition) grows to the end of the destination when its size
//! is known.
//!
//! Integer fields are C `uint32_t`s: sums wrap as they do in fwup.

#[cfg(feature = "apply")]
use crate::apply::Target;
use crate::{Error, Mbr, PartitionError, Result};

#[cfg(feature = "apply")]
const SECTORS_PER_HEAD: u32 = 63;
#[cfg(feature = "apply")]
const HEADS_PER_CYLINDER: u32 = 255;
const PRIMARY: usize = 4;
const MAX_PARTITIONS: usize = 12;
#[cfg(feature = "apply")]
const BLOCK: usize = 512;

pub(super) use crate::metaconf::strtoul;

/// `(int) strtoul(title, NULL, 0)`: how fwup numbers `partition` and `osii` sections.
pub(super) fn section_index(title: &str) -> i32 {
    // The truncation to a C int is what fwup does.

    strtoul(title).value as u32 as i32
}

/// A block offset option as fwup checks it (`mbr.c`, `gpt.c`): required, `strtoul`, below
/// 2³² − 1, nothing after the number.
pub(super) fn parse_block_offset(value: Option<&str>, ix: i64) -> Result<u32> {
    let s = match value {
        Some(s) if !s.is_empty() => s,
        _ => {
            return Err(Error::Partition(PartitionError::Invalid(format!(
                "partition {ix}'s block_offset is required"
            ))));
        }
    };
    let p = strtoul(s);
    if p.overflow || p.value >= u64::from(u32::MAX) {
        return Err(Error::Partition(PartitionError::Invalid(format!(
            "partition {ix}'s block_offset must be positive and less than 2^32 - 1: '{s}'"
        ))));
    }
    if !p.complete {
        return Err(Error::Partition(PartitionError::Invalid(format!(
            "error parsing partition {ix}'s block offset"
        ))));
    }
    // Checked just above.
    Ok(u32::try_from(p.value).unwrap_or(u32::MAX))
}

/// C's conversion of a `long` option to `uint32_t` (modulo 2³²).
pub(super) fn as_u32(v: i64) -> u32 {
    v as u32
}

/// fwup's `struct mbr_partition`.
#[derive(Debug, Clone, Copy, Default)]
struct Part {
    boot: bool,
    expand: bool,
    partition_type: i32,
    block_offset: u32,
    block_count: u32,
    record_offset: u32,
}

fn is_extended_type(t: i32) -> bool {
    t == 0x05 || t == 0x0f
}

fn err<T>(msg: String) -> Result<T> {
    Err(Error::Partition(PartitionError::Invalid(msg)))
}

/// fwup's `mbr_cfg_to_partitions`: the 12 partitions and the number of logical ones.
fn cfg_to_partitions(mbr: &Mbr) -> Result<([Part; MAX_PARTITIONS], usize)> {
    let mut table = [Part::default(); MAX_PARTITIONS];
    let mut num_extended = 0usize;
    let mut found = 0u32;
    for cfg in mbr.partitions() {
        let ix = section_index(cfg.title());
        let Ok(slot) = usize::try_from(ix) else {
            return err(format!(
                "partition must be numbered 0 through {}",
                MAX_PARTITIONS - 1
            ));
        };
        if slot >= MAX_PARTITIONS {
            return err(format!(
                "partition must be numbered 0 through {}",
                MAX_PARTITIONS - 1
            ));
        }
        if found & (1 << slot) != 0 {
            return err(format!(
                "invalid or duplicate partition number found for {ix}"
            ));
        }
        found |= 1 << slot;
        if slot >= PRIMARY {
            num_extended = slot - PRIMARY + 1;
        }

        let partition_type = cfg.partition_type() as i32;
        if !(0..=0xff).contains(&partition_type) {
            return err(format!("partition {ix}'s type must be between 0 and 255"));
        }
        let part = &mut table[slot];
        part.partition_type = partition_type;
        part.block_offset = parse_block_offset(cfg.block_offset(), i64::from(ix))?;
        part.block_count = as_u32(cfg.block_count());
        part.record_offset = 0;
        if is_extended_type(partition_type) {
            if slot != 3 {
                return err(
                    "only partition 3 may be specified as the extended partition".to_string(),
                );
            }
            part.boot = false;
            part.expand = true;
            if part.block_count >= i32::MAX as u32 {
                part.block_count = 1;
            }
        } else {
            part.boot = cfg.boot();
            part.expand = cfg.expand();
            if part.block_count >= i32::MAX as u32 {
                return err(format!(
                    "partition {ix}'s block-count must be specified and less than 2^31 - 1"
                ));
            }
        }
    }

    if num_extended > 0 {
        if !is_extended_type(table[3].partition_type) {
            return err("to use more than 4 partitions with MBR, partition 3 must have extended partition type 0xf or 0x5".to_string());
        }
        let mut record_offset = table[3].block_offset;
        for part in table[PRIMARY..].iter_mut() {
            if part.partition_type == 0 {
                break;
            }
            part.record_offset = record_offset;
            record_offset = record_offset.wrapping_add(1);
        }
    }
    Ok((table, num_extended))
}

/// fwup's `struct osip_header` with its descriptors, already encoded per descriptor.
#[cfg(feature = "apply")]
#[derive(Debug, Clone, Copy)]
struct Osii {
    os_minor: u16,
    os_major: u16,
    start_block_offset: u32,
    ddr_load_address: u32,
    entry_point: u32,
    image_size: u32,
    attribute: u8,
}

/// A valid OSIP; what it holds is only needed to write it.
#[derive(Debug)]
struct Osip {
    #[cfg(feature = "apply")]
    minor: u8,
    #[cfg(feature = "apply")]
    major: u8,
    #[cfg(feature = "apply")]
    num_pointers: u8,
    #[cfg(feature = "apply")]
    descriptors: Vec<Osii>,
}

/// fwup's `mbr_cfg_to_osip`; `None` without `include-osip`.
fn cfg_to_osip(mbr: &Mbr) -> Result<Option<Osip>> {
    if !mbr.include_osip() {
        return Ok(None);
    }
    #[cfg(feature = "apply")]
    let zero = Osii {
        os_minor: 0,
        os_major: 0,
        start_block_offset: 0,
        ddr_load_address: 0,
        entry_point: 0,
        image_size: 0,
        attribute: 0,
    };
    #[cfg(feature = "apply")]
    let mut descriptors = [zero; 16];
    let mut found = 0u32;
    let mut num_images = 0usize;
    for cfg in mbr.osiis() {
        let ix = section_index(cfg.title());
        let slot = match usize::try_from(ix) {
            Ok(slot) if slot < 15 => slot,
            _ => return err("osii must be numbered 0 through 15".to_string()),
        };
        if found & (1 << slot) != 0 {
            return err("invalid or duplicate osii number found".to_string());
        }
        found |= 1 << slot;
        num_images = num_images.max(slot + 1);
        #[cfg(feature = "apply")]
        {
            descriptors[slot] = Osii {
                os_major: cfg.os_major() as u16,
                os_minor: cfg.os_minor() as u16,
                start_block_offset: as_u32(cfg.start_block_offset()),
                ddr_load_address: as_u32(cfg.ddr_load_address()),
                entry_point: as_u32(cfg.entry_point()),
                image_size: as_u32(cfg.image_size_blocks()),
                attribute: cfg.attribute() as u8,
            };
        }
    }
    if num_images == 0 {
        return err("need to specify one or more osii".to_string());
    }
    Ok(Some(Osip {
        #[cfg(feature = "apply")]
        minor: mbr.osip_minor() as u8,
        #[cfg(feature = "apply")]
        major: mbr.osip_major() as u8,
        #[cfg(feature = "apply")]
        num_pointers: mbr.osip_num_pointers() as u8,
        #[cfg(feature = "apply")]
        descriptors: descriptors[..num_images].to_vec(),
    }))
}

/// fwup's `hex_to_bytes` for the 440 bytes of bootstrap code.
#[cfg(feature = "apply")]
fn bootstrap_code(hex: &str) -> Result<[u8; 440]> {
    let mut out = [0u8; 440];
    if hex.len() != 880 {
        return err(format!(
            "hex string should have length 880, but got {}",
            hex.len()
        ));
    }
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => *byte = (h * 16 + l) as u8,
            _ => return err("Invalid character in hex string".to_string()),
        }
    }
    Ok(out)
}

/// fwup's `mbr_verify` on the expanded table.
fn verify(table: &[Part; MAX_PARTITIONS]) -> Result<()> {
    let mut expanding = false;
    for (i, p) in table.iter().enumerate() {
        let ileft = p.block_offset;
        let iright = ileft.wrapping_add(p.block_count);
        if p.partition_type == 0 || (ileft == iright && !p.expand) {
            continue;
        }
        if expanding {
            return err(
                "a partition can't be specified after the one with \"expand = true\"".to_string(),
            );
        }
        if p.expand && i != 3 && !is_extended_type(p.partition_type) {
            expanding = true;
        }
        for (j, q) in table.iter().enumerate().skip(i + 1) {
            if q.partition_type == 0 {
                continue;
            }
            let jleft = q.block_offset;
            let jright = jleft.wrapping_add(q.block_count);
            if jleft == jright {
                continue;
            }
            let overlap_required = i == 3 && is_extended_type(p.partition_type);
            let overlaps = !(ileft >= jright || iright <= jleft);
            let ebr_i_overlaps =
                p.record_offset > 0 && p.record_offset >= jleft && p.record_offset < jright;
            let ebr_j_overlaps =
                q.record_offset > 0 && q.record_offset >= ileft && q.record_offset < iright;
            if overlaps != overlap_required {
                return if overlap_required {
                    err(format!(
                        "partition 3, the extended partition, is expected to contain partition {j}"
                    ))
                } else {
                    err(format!(
                        "partitions {i} (blocks {ileft} to {iright}) and {j} (blocks {jleft} to {jright}) overlap"
                    ))
                };
            }
            if ebr_j_overlaps != overlap_required {
                return if overlap_required {
                    err(format!(
                        "partition 3, the extended partition, is expected to contain the EBR for partition {j}"
                    ))
                } else {
                    err(format!(
                        "partition {i} (blocks {ileft} to {iright}) overlaps the EBR at {} for partition {j}",
                        q.record_offset
                    ))
                };
            }
            if ebr_i_overlaps {
                return err(format!(
                    "partition {j} (blocks {jleft} to {jright}) overlaps the EBR at {} for partition {i}",
                    p.record_offset
                ));
            }
        }
    }
    Ok(())
}

/// fwup's `expand_partitions`: the table with `expand` partitions grown to `num_blocks`
/// (at least the end of the furthest partition) and every expand flag cleared.
fn expand(table: &[Part; MAX_PARTITIONS], num_blocks: u32) -> [Part; MAX_PARTITIONS] {
    let num_blocks = table
        .iter()
        .map(|p| p.block_offset.wrapping_add(p.block_count))
        .fold(num_blocks, u32::max);
    let mut out = *table;
    for p in &mut out {
        if p.expand && num_blocks > p.block_offset.wrapping_add(p.block_count) {
            p.block_count = num_blocks.wrapping_sub(p.block_offset);
        }
        p.expand = false;
    }
    out
}

#[cfg(feature = "apply")]
fn lba_to_chs(lba: u32, out: &mut [u8]) {
    if lba <= SECTORS_PER_HEAD * HEADS_PER_CYLINDER * 0x3ff {
        let cylinder = lba / (SECTORS_PER_HEAD * HEADS_PER_CYLINDER);
        let head = (lba / SECTORS_PER_HEAD) % HEADS_PER_CYLINDER;
        let sector = lba % SECTORS_PER_HEAD + 1;
        // All three fit their bytes by construction (cylinder < 1024).
        {
            out[0] = head as u8;
            out[1] = (((cylinder & 0x300) >> 2) | sector) as u8;
            out[2] = (cylinder & 0xff) as u8;
        }
    }
}

#[cfg(feature = "apply")]
/// fwup's `create_partition`: one 16-byte partition entry.
fn encode_partition(p: &Part, out: &mut [u8]) {
    if p.partition_type > 0 {
        out[0] = if p.boot { 0x80 } else { 0 };
        lba_to_chs(p.block_offset, &mut out[1..4]);
        {
            out[4] = p.partition_type as u8;
        }
        lba_to_chs(
            p.block_offset.wrapping_add(p.block_count).wrapping_sub(1),
            &mut out[5..8],
        );
    } else {
        out[..8].fill(0);
    }
    // fwup keeps offset and count of unused entries too (some boards store data there).
    out[8..12].copy_from_slice(&p.block_offset.to_le_bytes());
    out[12..16].copy_from_slice(&p.block_count.to_le_bytes());
}

#[cfg(feature = "apply")]
fn encode_osip(osip: &Osip, out: &mut [u8]) {
    out[..4].copy_from_slice(b"$OS$");
    out[4] = 0;
    out[5] = osip.minor;
    out[6] = osip.major;
    out[7] = 0;
    out[8] = osip.num_pointers;
    // At most 15 images.
    let num_images = osip.descriptors.len() as u8;
    out[9] = num_images;
    let header_size = 32 + 24 * osip.descriptors.len();
    out[10..12].copy_from_slice(&(header_size as u16).to_le_bytes());
    out[12..32].fill(0);
    for (d, o) in osip.descriptors.iter().zip(out[32..].chunks_exact_mut(24)) {
        o[0..2].copy_from_slice(&d.os_minor.to_le_bytes());
        o[2..4].copy_from_slice(&d.os_major.to_le_bytes());
        o[4..8].copy_from_slice(&d.start_block_offset.to_le_bytes());
        o[8..12].copy_from_slice(&d.ddr_load_address.to_le_bytes());
        o[12..16].copy_from_slice(&d.entry_point.to_le_bytes());
        o[16..20].copy_from_slice(&d.image_size.to_le_bytes());
        o[20] = d.attribute;
        o[21..24].fill(0);
    }
    out[7] = out[..header_size].iter().fold(0, |a, b| a ^ b);
}

/// fwup's `mbr_verify_cfg`, run when an `mbr` section of a fwup.conf closes: bootstrap
/// code of 440 bytes, a valid OSIP, not both, valid partitions that do not overlap (nor
/// their EBRs) once `expand` partitions are grown as for a destination of unknown size.
///
/// # Errors
/// [`PartitionError::Invalid`](crate::PartitionError::Invalid) with fwup's message.
#[cfg(feature = "create")]
pub(crate) fn verify_cfg(mbr: &Mbr) -> Result<()> {
    if mbr.bootstrap_code().is_some_and(|hex| hex.len() != 440 * 2) {
        return err("bootstrap-code should be exactly 440 bytes".to_string());
    }
    let osip = cfg_to_osip(mbr)?;
    if osip.is_some() && mbr.bootstrap_code().is_some() {
        return err("cannot specify OSIP if including bootstrap code".to_string());
    }
    let (table, _) = cfg_to_partitions(mbr)?;
    verify(&expand(&table, 0))
}

#[cfg(feature = "apply")]
/// The MBR and EBR blocks of `mbr` for a destination of `num_blocks` blocks (0 when
/// unknown), each with its block offset, in fwup's write order.
fn create(mbr: &Mbr, num_blocks: u32) -> Result<Vec<(u32, [u8; BLOCK])>> {
    let (table, num_extended) = cfg_to_partitions(mbr)?;
    let osip = cfg_to_osip(mbr)?;
    let bootstrap = mbr.bootstrap_code().map(bootstrap_code).transpose()?;
    let signature = { mbr.signature().map_or(0, |s| strtoul(s).value as u32) };

    // fwup ignores mbr_create's errors and then writes nothing (a silent no-op); this
    // implementation reports them instead.
    if bootstrap.is_some() && osip.is_some() {
        return err("Can't specify both bootstrap and OSIP in MBR".to_string());
    }
    let table = expand(&table, num_blocks);
    verify(&table)?;

    let mut raw = [0u8; BLOCK];
    if let Some(code) = &bootstrap {
        raw[..440].copy_from_slice(code);
    }
    if let Some(osip) = &osip {
        encode_osip(osip, &mut raw);
    }
    raw[440..444].copy_from_slice(&signature.to_le_bytes());
    for (i, p) in table[..PRIMARY].iter().enumerate() {
        encode_partition(p, &mut raw[446 + i * 16..462 + i * 16]);
    }
    raw[510] = 0x55;
    raw[511] = 0xaa;
    let mut out = vec![(0u32, raw)];

    for i in 0..num_extended {
        let p = &table[PRIMARY + i];
        let mut ebr = [0u8; BLOCK];
        let logical = Part {
            boot: false,
            expand: false,
            partition_type: p.partition_type,
            block_offset: p.block_offset.wrapping_sub(p.record_offset),
            block_count: p.block_count,
            record_offset: 0,
        };
        encode_partition(&logical, &mut ebr[446..462]);
        if i + 1 < num_extended {
            let next = Part {
                boot: false,
                expand: false,
                partition_type: 0xf,
                // i < 8
                block_offset: u32::try_from(i + 1).unwrap_or(0),
                block_count: 1,
                record_offset: 0,
            };
            encode_partition(&next, &mut ebr[462..478]);
        }
        ebr[510] = 0x55;
        ebr[511] = 0xaa;
        out.push((p.record_offset, ebr));
    }
    Ok(out)
}

#[cfg(feature = "apply")]
/// fwup's destination size in blocks as `mbr_write` and `gpt_write` see it: the end hint
/// divided by 512 and truncated to 32 bits, 0 when unknown.
pub(super) fn num_blocks(target: &dyn Target) -> u32 {
    target.end_hint().map_or(0, |s| (s / BLOCK as u64) as u32)
}

#[cfg(feature = "apply")]
/// `mbr_write(mbr)`: writes the MBR at block 0 and one EBR per logical partition.
///
/// # Errors
/// [`PartitionError::Invalid`](crate::PartitionError::Invalid) for a section fwup refuses (with fwup's message) or whose
/// partitions overlap after `expand`, and the target's write errors.
pub(crate) fn write_mbr(target: &mut dyn Target, mbr: &Mbr) -> Result<()> {
    let blocks = create(mbr, num_blocks(target))?;
    for (block, data) in &blocks {
        target.write_at(u64::from(*block) * BLOCK as u64, data)?;
    }
    Ok(())
}

#[cfg(feature = "apply")]
/// `require-partition-offset(partition, …)`: the start LBA of primary partition 0–3 of the
/// MBR at block 0, or `None` when block 0 has no 0x55AA signature or `partition` is not
/// 0–3. fwup treats a read error as "requirement not met".
///
/// # Errors
/// The target's read errors.
pub(crate) fn partition_offset(target: &mut dyn Target, partition: u8) -> Result<Option<u64>> {
    let mut block = [0u8; BLOCK];
    target.read_at(0, &mut block)?;
    if block[510] != 0x55 || block[511] != 0xaa || usize::from(partition) >= PRIMARY {
        return Ok(None);
    }
    let at = 446 + usize::from(partition) * 16 + 8;
    let mut le = [0u8; 4];
    le.copy_from_slice(&block[at..at + 4]);
    Ok(Some(u64::from(u32::from_le_bytes(le))))
}

#[cfg(all(test, feature = "apply"))]
mod tests;
