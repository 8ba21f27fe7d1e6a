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

use super::target::Target;
use crate::{Error, Mbr, Result};

const SECTORS_PER_HEAD: u32 = 63;
const HEADS_PER_CYLINDER: u32 = 255;
const PRIMARY: usize = 4;
const MAX_PARTITIONS: usize = 12;
const BLOCK: usize = 512;

/// Result of a C `strtoul`/`strtoull` with base 0.
#[derive(Debug, Clone, Copy)]
pub(super) struct CUlong {
    /// The value as C returns it: negated modulo 2⁶⁴ after a `-`, `u64::MAX` on overflow.
    pub(super) value: u64,
    /// The whole string was used (`*endptr == '\0'`).
    pub(super) complete: bool,
    /// The digits did not fit (`errno == ERANGE`).
    pub(super) overflow: bool,
}

/// C `strtoul(s, &end, 0)` on a 64-bit `unsigned long`.
pub(super) fn strtoul(s: &str) -> CUlong {
    let b = s.as_bytes();
    let mut i = b
        .iter()
        .take_while(|&&c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .count();
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = b.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    let mut radix = 10u32;
    if b.get(i) == Some(&b'0') {
        if matches!(b.get(i + 1), Some(b'x' | b'X'))
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            radix = 16;
            i += 2;
        } else {
            radix = 8;
        }
    }
    let start = i;
    let mut value = 0u64;
    let mut overflow = false;
    while let Some(d) = b.get(i).and_then(|&c| char::from(c).to_digit(radix)) {
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    let digits = i > start;
    let value = if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    };
    CUlong {
        value: if digits { value } else { 0 },
        complete: if digits { i == b.len() } else { b.is_empty() },
        overflow,
    }
}

/// `(int) strtoul(title, NULL, 0)`: how fwup numbers `partition` and `osii` sections.
pub(super) fn section_index(title: &str) -> i32 {
    // The truncation to a C int is what fwup does.
    #[allow(clippy::cast_possible_truncation)]
    let ix = strtoul(title).value as u32 as i32;
    ix
}

/// A block offset option as fwup checks it (`mbr.c`, `gpt.c`): required, `strtoul`, below
/// 2³² − 1, nothing after the number.
pub(super) fn parse_block_offset(value: Option<&str>, ix: i64) -> Result<u32> {
    let s = match value {
        Some(s) if !s.is_empty() => s,
        _ => {
            return Err(Error::PartitionTable(format!(
                "partition {ix}'s block_offset is required"
            )));
        }
    };
    let p = strtoul(s);
    if p.overflow || p.value >= u64::from(u32::MAX) {
        return Err(Error::PartitionTable(format!(
            "partition {ix}'s block_offset must be positive and less than 2^32 - 1: '{s}'"
        )));
    }
    if !p.complete {
        return Err(Error::PartitionTable(format!(
            "error parsing partition {ix}'s block offset"
        )));
    }
    // Checked just above.
    Ok(u32::try_from(p.value).unwrap_or(u32::MAX))
}

/// C's conversion of a `long` option to `uint32_t` (modulo 2³²).
pub(super) fn as_u32(v: i64) -> u32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let v = v as u32;
    v
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
    Err(Error::PartitionTable(msg))
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

        #[allow(clippy::cast_possible_truncation)]
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

#[derive(Debug)]
struct Osip {
    minor: u8,
    major: u8,
    num_pointers: u8,
    descriptors: Vec<Osii>,
}

/// fwup's `mbr_cfg_to_osip`; `None` without `include-osip`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn cfg_to_osip(mbr: &Mbr) -> Result<Option<Osip>> {
    if !mbr.include_osip() {
        return Ok(None);
    }
    let zero = Osii {
        os_minor: 0,
        os_major: 0,
        start_block_offset: 0,
        ddr_load_address: 0,
        entry_point: 0,
        image_size: 0,
        attribute: 0,
    };
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
    if num_images == 0 {
        return err("need to specify one or more osii".to_string());
    }
    Ok(Some(Osip {
        minor: mbr.osip_minor() as u8,
        major: mbr.osip_major() as u8,
        num_pointers: mbr.osip_num_pointers() as u8,
        descriptors: descriptors[..num_images].to_vec(),
    }))
}

/// fwup's `hex_to_bytes` for the 440 bytes of bootstrap code.
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
            #[allow(clippy::cast_possible_truncation)]
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

fn lba_to_chs(lba: u32, out: &mut [u8]) {
    if lba <= SECTORS_PER_HEAD * HEADS_PER_CYLINDER * 0x3ff {
        let cylinder = lba / (SECTORS_PER_HEAD * HEADS_PER_CYLINDER);
        let head = (lba / SECTORS_PER_HEAD) % HEADS_PER_CYLINDER;
        let sector = lba % SECTORS_PER_HEAD + 1;
        // All three fit their bytes by construction (cylinder < 1024).
        #[allow(clippy::cast_possible_truncation)]
        {
            out[0] = head as u8;
            out[1] = (((cylinder & 0x300) >> 2) | sector) as u8;
            out[2] = (cylinder & 0xff) as u8;
        }
    }
}

/// fwup's `create_partition`: one 16-byte partition entry.
fn encode_partition(p: &Part, out: &mut [u8]) {
    if p.partition_type > 0 {
        out[0] = if p.boot { 0x80 } else { 0 };
        lba_to_chs(p.block_offset, &mut out[1..4]);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
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

fn encode_osip(osip: &Osip, out: &mut [u8]) {
    out[..4].copy_from_slice(b"$OS$");
    out[4] = 0;
    out[5] = osip.minor;
    out[6] = osip.major;
    out[7] = 0;
    out[8] = osip.num_pointers;
    // At most 15 images.
    #[allow(clippy::cast_possible_truncation)]
    let num_images = osip.descriptors.len() as u8;
    out[9] = num_images;
    let header_size = 32 + 24 * osip.descriptors.len();
    #[allow(clippy::cast_possible_truncation)]
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

/// The MBR and EBR blocks of `mbr` for a destination of `num_blocks` blocks (0 when
/// unknown), each with its block offset, in fwup's write order.
fn create(mbr: &Mbr, num_blocks: u32) -> Result<Vec<(u32, [u8; BLOCK])>> {
    let (table, num_extended) = cfg_to_partitions(mbr)?;
    let osip = cfg_to_osip(mbr)?;
    let bootstrap = mbr.bootstrap_code().map(bootstrap_code).transpose()?;
    let signature = {
        #[allow(clippy::cast_possible_truncation)]
        let s = mbr.signature().map_or(0, |s| strtoul(s).value as u32);
        s
    };

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

/// fwup's destination size in blocks as `mbr_write` and `gpt_write` see it: the known size
/// divided by 512 and truncated to 32 bits, 0 when unknown.
pub(super) fn num_blocks(target: &dyn Target) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let n = target.size().map_or(0, |s| (s / BLOCK as u64) as u32);
    n
}

/// `mbr_write(mbr)`: writes the MBR at block 0 and one EBR per logical partition.
///
/// # Errors
/// [`Error::PartitionTable`] for a section fwup refuses (with fwup's message) or whose
/// partitions overlap after `expand`, and the target's write errors.
pub(crate) fn write_mbr(target: &mut dyn Target, mbr: &Mbr) -> Result<()> {
    let blocks = create(mbr, num_blocks(target))?;
    for (block, data) in &blocks {
        target.write_at(u64::from(*block) * BLOCK as u64, data)?;
    }
    Ok(())
}

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

/// Fixture loading shared by the tests of the partition and environment modules.
#[cfg(test)]
pub(super) mod test_support {
    use std::io::Read;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/fixtures")
    }

    /// A recorded image, decompressed (`images/<name>.img.gz`).
    pub(in crate::apply) fn image(name: &str) -> Vec<u8> {
        let file = std::fs::File::open(fixtures().join(format!("images/{name}.img.gz"))).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The meta.conf of a fixture group, parsed without variables.
    pub(in crate::apply) fn meta(group: &str) -> crate::MetaConf {
        let text = std::fs::read(fixtures().join(format!("expected/{group}/meta.conf"))).unwrap();
        crate::MetaConf::parse(&text, &crate::Variables::new()).unwrap()
    }

    /// Blocks `from..to` of `bytes`.
    pub(in crate::apply) fn blocks(bytes: &[u8], from: usize, to: usize) -> &[u8] {
        &bytes[from * 512..to * 512]
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{blocks, image, meta};
    use super::*;
    use crate::apply::MemoryTarget;
    use crate::metaconf::{Mbr, MbrOsii, MbrPartition};

    fn mbr_named(group: &str, name: &str) -> Mbr {
        meta(group)
            .mbrs()
            .iter()
            .find(|m| m.name() == name)
            .unwrap()
            .clone()
    }

    fn part(title: &str, offset: &str, count: i64, t: i64) -> MbrPartition {
        MbrPartition {
            title: title.to_string(),
            block_offset: Some(offset.to_string()),
            block_count: count,
            partition_type: t,
            boot: false,
            expand: false,
        }
    }

    fn mbr(partitions: Vec<MbrPartition>) -> Mbr {
        Mbr {
            name: "m".to_string(),
            bootstrap_code: None,
            bootstrap_code_host_path: None,
            include_osip: false,
            osip_major: 1,
            osip_minor: 0,
            osip_num_pointers: 1,
            signature: None,
            partitions,
            osiis: Vec::new(),
        }
    }

    fn written(m: &Mbr, size: Option<u64>) -> Result<MemoryTarget> {
        let mut t = match size {
            Some(s) => MemoryTarget::with_size(s).unwrap(),
            None => MemoryTarget::new(),
        };
        write_mbr(&mut t, m)?;
        Ok(t)
    }

    #[test]
    fn boot_fat_mbr_matches_fwup() {
        let t = written(&mbr_named("boot_fat", "mbr-main"), None).unwrap();
        assert_eq!(
            t.as_bytes(),
            blocks(&image("boot_fat--apply-complete"), 0, 1)
        );
    }

    #[test]
    fn ab_mbrs_match_fwup_and_give_partition_offsets() {
        for (img, name, offset) in [
            ("ab--step1-complete", "mbr-a", 1024),
            ("ab--step2-upgrade", "mbr-b", 2048),
            ("ab--step3-upgrade", "mbr-a", 1024),
        ] {
            let recorded = image(img);
            let t = written(&mbr_named("ab", name), None).unwrap();
            assert_eq!(t.as_bytes(), blocks(&recorded, 0, 1), "{img}");
            let mut r = MemoryTarget::from_bytes(recorded);
            assert_eq!(partition_offset(&mut r, 1).unwrap(), Some(offset));
            assert_eq!(partition_offset(&mut r, 0).unwrap(), Some(64));
            assert_eq!(partition_offset(&mut r, 2).unwrap(), Some(0));
            assert_eq!(partition_offset(&mut r, 4).unwrap(), None);
        }
        // A blank destination has no MBR signature.
        assert_eq!(partition_offset(&mut MemoryTarget::new(), 1).unwrap(), None);
    }

    #[test]
    fn chs_and_entry_layout() {
        // Partition 0: 63 + 255*63 = start of cylinder 1 head 1.
        let mut m = mbr(vec![part("0", "16128", 100, 0x83)]);
        m.partitions[0].boot = true;
        m.signature = Some("0xdeadbeef".to_string());
        let t = written(&m, None).unwrap();
        let b = t.as_bytes();
        assert_eq!(&b[440..446], &[0xef, 0xbe, 0xad, 0xde, 0, 0]);
        let e = &b[446..462];
        // 16128 = cylinder 1, head 1, sector 1; 16227 = cylinder 1, head 2, sector 37.
        assert_eq!(
            e,
            &[
                0x80, 1, 1, 1, 0x83, 2, 37, 1, 0x00, 0x3f, 0, 0, 100, 0, 0, 0
            ]
        );
        assert_eq!(&b[462..510], &[0u8; 48][..]);
        assert_eq!(&b[510..], &[0x55, 0xaa]);
    }

    #[test]
    fn chs_is_zero_past_1023_cylinders() {
        let limit = 63 * 255 * 1023;
        let m = mbr(vec![part("0", &(limit + 1).to_string(), 10, 0x83)]);
        let t = written(&m, None).unwrap();
        assert_eq!(&t.as_bytes()[446..454], &[0, 0, 0, 0, 0x83, 0, 0, 0]);
        // The last LBA that still has CHS: cylinder 1023 → high bits in the sector byte.
        let m = mbr(vec![part("0", &limit.to_string(), 1, 0x83)]);
        let t = written(&m, None).unwrap();
        assert_eq!(&t.as_bytes()[447..450], &[0, 0xc1, 0xff]);
    }

    #[test]
    fn expand_uses_the_device_size() {
        let mut m = mbr(vec![part("0", "64", 64, 0xc), part("1", "128", 100, 0x83)]);
        m.partitions[1].expand = true;
        // Unknown size: stays as given.
        let t = written(&m, None).unwrap();
        assert_eq!(&t.as_bytes()[462 + 12..462 + 16], &100u32.to_le_bytes());
        // 1 MiB device: 2048 blocks, partition 1 grows to 2048 - 128.
        let t = written(&m, Some(1 << 20)).unwrap();
        assert_eq!(&t.as_bytes()[462 + 12..462 + 16], &1920u32.to_le_bytes());
        // A device smaller than the partition does not shrink it.
        let t = written(&m, Some(100 * 512)).unwrap();
        assert_eq!(&t.as_bytes()[462 + 12..462 + 16], &100u32.to_le_bytes());
    }

    #[test]
    fn extended_partition_with_logical_partitions() {
        let m = mbr(vec![
            part("0", "64", 64, 0xc),
            part("3", "1000", 0, 0x0f),
            part("4", "1010", 100, 0x83),
            part("5", "1200", 50, 0x83),
        ]);
        let t = written(&m, Some(4096 * 512)).unwrap();
        let b = t.as_bytes();
        // The extended partition grows to the end of the device.
        let ext = &b[446 + 48..446 + 64];
        assert_eq!(ext[4], 0x0f);
        assert_eq!(&ext[8..16], &[0xe8, 3, 0, 0, 0x18, 0x0c, 0, 0]);
        // EBR of partition 4 at block 1000: relative start 10, link to the next EBR at +1.
        let ebr = &b[1000 * 512..1001 * 512];
        assert_eq!(&ebr[..446], &[0u8; 446][..]);
        assert_eq!(ebr[446 + 4], 0x83);
        assert_eq!(&ebr[446 + 8..446 + 16], &[10, 0, 0, 0, 100, 0, 0, 0]);
        assert_eq!(ebr[462 + 4], 0x0f);
        assert_eq!(&ebr[462 + 8..462 + 16], &[1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&ebr[478..510], &[0u8; 32][..]);
        assert_eq!(&ebr[510..], &[0x55, 0xaa]);
        // EBR of partition 5 at block 1001: relative start 199, no next link.
        let ebr = &b[1001 * 512..1002 * 512];
        assert_eq!(&ebr[446 + 8..446 + 16], &[199, 0, 0, 0, 50, 0, 0, 0]);
        assert_eq!(&ebr[462..510], &[0u8; 48][..]);
    }

    #[test]
    fn logical_partitions_need_an_extended_partition_3() {
        let m = mbr(vec![part("0", "64", 64, 0xc), part("4", "1010", 100, 0x83)]);
        let e = written(&m, None).unwrap_err().to_string();
        assert!(
            e.contains("partition 3 must have extended partition type"),
            "{e}"
        );
        let m = mbr(vec![part("1", "64", 64, 0x5)]);
        let e = written(&m, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "only partition 3 may be specified as the extended partition"
        );
    }

    #[test]
    fn overlap_is_rejected() {
        let m = mbr(vec![part("0", "64", 64, 0xc), part("1", "100", 64, 0x83)]);
        assert_eq!(
            written(&m, None).unwrap_err().to_string(),
            "partitions 0 (blocks 64 to 128) and 1 (blocks 100 to 164) overlap"
        );
        // Unused (type 0) and empty partitions do not count.
        let m = mbr(vec![part("0", "64", 64, 0xc), part("1", "100", 64, 0)]);
        assert!(written(&m, None).is_ok());
        // Logical partitions outside the extended one.
        let m = mbr(vec![
            part("3", "1000", 10, 0x05),
            part("4", "2000", 100, 0x83),
        ]);
        assert!(written(&m, None).is_ok(), "extended grows to cover 2100");
        let m = mbr(vec![
            part("0", "64", 64, 0xc),
            part("3", "1000", 10, 0x05),
            part("4", "500", 100, 0x83),
        ]);
        let e = written(&m, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "partition 3, the extended partition, is expected to contain partition 4"
        );
    }

    #[test]
    fn bad_sections_are_refused_with_fwups_messages() {
        let cases: Vec<(Mbr, &str)> = vec![
            (
                mbr(vec![part("12", "64", 1, 0x83)]),
                "partition must be numbered 0 through 11",
            ),
            (
                mbr(vec![part("0", "64", 1, -1)]),
                "partition 0's type must be between 0 and 255",
            ),
            (
                mbr(vec![part("0", "64", i64::from(i32::MAX), 0x83)]),
                "partition 0's block-count must be specified and less than 2^31 - 1",
            ),
            (
                mbr(vec![part("0", "", 1, 0x83)]),
                "partition 0's block_offset is required",
            ),
            (
                mbr(vec![part("0", "4294967295", 1, 0x83)]),
                "partition 0's block_offset must be positive and less than 2^32 - 1: '4294967295'",
            ),
            (
                mbr(vec![part("0", "12abc", 1, 0x83)]),
                "error parsing partition 0's block offset",
            ),
            (
                mbr(vec![part("0", "1", 1, 0x83), part("0x0", "9", 1, 0x83)]),
                "invalid or duplicate partition number found for 0",
            ),
        ];
        for (m, msg) in cases {
            assert_eq!(written(&m, None).unwrap_err().to_string(), msg);
        }
    }

    #[test]
    fn bootstrap_code_and_osip() {
        let mut m = mbr(vec![part("0", "64", 64, 0xc)]);
        m.bootstrap_code = Some("a5".repeat(440));
        let t = written(&m, None).unwrap();
        assert_eq!(&t.as_bytes()[..440], &[0xa5; 440][..]);
        m.bootstrap_code = Some("a5".repeat(439));
        assert!(written(&m, None).is_err());
        m.bootstrap_code = Some(format!("{}zz", "a5".repeat(439)));
        assert!(written(&m, None).is_err());

        let mut m = mbr(vec![part("0", "64", 64, 0xc)]);
        m.include_osip = true;
        assert_eq!(
            written(&m, None).unwrap_err().to_string(),
            "need to specify one or more osii"
        );
        m.osiis.push(MbrOsii {
            title: "1".to_string(),
            os_major: 2,
            os_minor: 3,
            start_block_offset: 0x1000,
            ddr_load_address: 0x0110_0000,
            entry_point: 0x0110_1000,
            image_size_blocks: 0x20,
            attribute: 0xf,
        });
        let t = written(&m, None).unwrap();
        let b = t.as_bytes();
        assert_eq!(&b[..4], b"$OS$");
        // reserved, minor 0, major 1; pointers 1, images 2, header size 32 + 2 * 24.
        assert_eq!(&b[4..7], &[0, 0, 1]);
        assert_eq!(&b[8..12], &[1, 2, 80, 0]);
        // Descriptor 0 unused (zeros), descriptor 1 set.
        assert_eq!(&b[32..56], &[0u8; 24][..]);
        assert_eq!(&b[56..60], &[3, 0, 2, 0]);
        assert_eq!(&b[60..64], &0x1000u32.to_le_bytes());
        assert_eq!(b[76], 0xf);
        // The XOR of the header (checksum included) is zero.
        assert_eq!(b[..80].iter().fold(0, |a, x| a ^ x), 0);
        m.bootstrap_code = Some("00".repeat(440));
        assert!(written(&m, None).is_err());
    }

    #[test]
    fn strtoul_is_c_like() {
        let v = |s: &str| {
            let p = strtoul(s);
            (p.value, p.complete, p.overflow)
        };
        assert_eq!(v("0x10"), (16, true, false));
        assert_eq!(v("010"), (8, true, false));
        assert_eq!(v(" 12"), (12, true, false));
        assert_eq!(v("0x"), (0, false, false));
        assert_eq!(v(""), (0, true, false));
        assert_eq!(v("abc"), (0, false, false));
        assert_eq!(v("-1"), (u64::MAX, true, false));
        assert_eq!(v("99999999999999999999"), (u64::MAX, true, true));
        assert_eq!(section_index("4294967295"), -1);
    }
}
