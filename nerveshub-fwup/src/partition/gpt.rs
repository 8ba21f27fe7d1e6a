//! `gpt_write`: a protective MBR, the primary GPT header and partition entries at LBA 0–33,
//! and the backup entries and header at the end of the destination, exactly as fwup's
//! `gpt.c` builds them.
//!
//! fwup supports 16 partitions and writes 128 entries of 128 bytes. GUIDs are stored in the
//! usual mixed-endian form, names as UTF-16LE of their first 36 bytes (each byte one code
//! unit), `boot = true` sets attribute bit 2. When the destination size is unknown (a new
//! regular file) the disk ends 34 blocks after the furthest partition end. Block numbers are
//! C `uint32_t`s: sums wrap as they do in fwup. Like fwup at apply time, no overlap check is
//! made here (fwup checks when the archive is created).

#[cfg(feature = "apply")]
use super::mbr::num_blocks;
use super::mbr::{as_u32, parse_block_offset, strtoul};
#[cfg(feature = "apply")]
use crate::apply::Target;
use crate::{Error, Gpt, PartitionError, Result};

const MAX_PARTITIONS: usize = 16;
#[cfg(feature = "apply")]
const BLOCK: usize = 512;
#[cfg(feature = "apply")]
const TABLE_BLOCKS: u32 = 32;
/// Header plus entries.
#[cfg(feature = "apply")]
const GPT_SIZE_BLOCKS: u32 = 1 + TABLE_BLOCKS;
#[cfg(feature = "apply")]
const GPT_SIZE: usize = GPT_SIZE_BLOCKS as usize * BLOCK;
#[cfg(feature = "apply")]
const ENTRY_SIZE: usize = 128;
#[cfg(feature = "apply")]
const NUM_ENTRIES: usize = TABLE_BLOCKS as usize * BLOCK / ENTRY_SIZE;

#[derive(Debug, Clone, Copy)]
struct Part {
    block_offset: u32,
    block_count: u32,
    expand: bool,
    /// What only the written entry needs (the create-time check only validates it).
    #[cfg(feature = "apply")]
    entry: Entry,
}

/// The parts of a partition entry that are not its geometry.
#[cfg(feature = "apply")]
#[derive(Debug, Clone, Copy)]
struct Entry {
    flags: u64,
    partition_type: [u8; 16],
    guid: [u8; 16],
    name: [u8; 72],
}

#[cfg(feature = "apply")]
impl Entry {
    /// The entry of a partition `cfg_to_partitions` has validated; `flags` as parsed.
    fn of(cfg: &crate::GptPartition, flags: u64) -> Self {
        let mut name = [0u8; 72];
        for (out, &c) in name
            .chunks_exact_mut(2)
            .zip(cfg.name().as_bytes().iter().take(36))
        {
            out[0] = c;
        }
        Self {
            flags: if cfg.boot() { flags | 0x4 } else { flags },
            partition_type: cfg.partition_type().and_then(uuid_me).unwrap_or_default(),
            guid: cfg.guid().and_then(uuid_me).unwrap_or_default(),
            name,
        }
    }
}

fn err<T>(msg: String) -> Result<T> {
    Err(Error::Partition(PartitionError::Invalid(msg)))
}

/// fwup's `string_to_uuid_me`: 36 characters (more are ignored) in `8-4-4-4-12` form, the
/// first three groups stored little-endian.
fn uuid_me(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() < 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    // (position in the string, index in the output)
    const MAP: [(usize, usize); 16] = [
        (0, 3),
        (2, 2),
        (4, 1),
        (6, 0),
        (9, 5),
        (11, 4),
        (14, 7),
        (16, 6),
        (19, 8),
        (21, 9),
        (24, 10),
        (26, 11),
        (28, 12),
        (30, 13),
        (32, 14),
        (34, 15),
    ];
    let mut out = [0u8; 16];
    for (pos, ix) in MAP {
        let digit = |c: u8| char::from(c).to_digit(16);
        let (h, l) = (digit(b[pos])?, digit(b[pos + 1])?);
        // Two hex digits fit a byte.
        {
            out[ix] = (h * 16 + l) as u8;
        }
    }
    Some(out)
}

/// fwup's `gpt_cfg_to_partitions`.
fn cfg_to_partitions(gpt: &Gpt) -> Result<[Option<Part>; MAX_PARTITIONS]> {
    let mut parts = [None; MAX_PARTITIONS];
    for cfg in gpt.partitions() {
        let ix64 = strtoul(cfg.title()).value;
        let ix = match usize::try_from(ix64) {
            Ok(ix) if ix < MAX_PARTITIONS => ix,
            _ => {
                return err(format!(
                    "partition must be numbered 0 through {}",
                    MAX_PARTITIONS - 1
                ));
            }
        };
        if parts[ix].is_some() {
            return err(format!(
                "invalid or duplicate partition number found for {ix}"
            ));
        }
        if cfg.partition_type().and_then(uuid_me).is_none() {
            return err(format!("partition {ix}'s type must set to a UUID"));
        }
        if cfg.guid().and_then(uuid_me).is_none() {
            return err(format!("partition {ix} must have a valid guid"));
        }
        // fwup's index fits in an i64.
        let block_offset = parse_block_offset(cfg.block_offset(), ix as i64)?;
        let block_count = as_u32(cfg.block_count());
        if block_count >= i32::MAX as u32 {
            return err(format!(
                "partition {ix}'s block-count must be specified and less than 2^31 - 1"
            ));
        }
        let f = strtoul(cfg.flags());
        if f.overflow || !f.complete {
            return err(format!("error parsing partition {ix}'s flags"));
        }
        parts[ix] = Some(Part {
            block_offset,
            block_count,
            expand: cfg.expand(),
            #[cfg(feature = "apply")]
            entry: Entry::of(cfg, f.value),
        });
    }
    Ok(parts)
}

/// fwup's `gpt_verify_cfg`, run when a `gpt` section of a fwup.conf closes: a valid disk
/// GUID, valid partitions, at least one of them, no overlaps and nothing after an `expand`
/// partition (fwup checks overlaps only here, not when writing).
///
/// # Errors
/// [`PartitionError::Invalid`](crate::PartitionError::Invalid) with fwup's message.
#[cfg(feature = "create")]
pub(crate) fn verify_cfg(gpt: &Gpt) -> Result<()> {
    if gpt.guid().and_then(uuid_me).is_none() {
        return err("GPT must have a valid disk guid".to_string());
    }
    let parts = cfg_to_partitions(gpt)?;
    if parts.iter().all(Option::is_none) {
        return err("empty partition table?".to_string());
    }
    let mut expanding = false;
    for (i, p) in parts.iter().enumerate() {
        let Some(p) = p else { continue };
        let ileft = p.block_offset;
        let iright = ileft.wrapping_add(p.block_count);
        if ileft == iright && !p.expand {
            continue;
        }
        if expanding {
            return err(
                "a partition can't be specified after the one with \"expand = true\"".to_string(),
            );
        }
        expanding |= p.expand;
        for (j, q) in parts.iter().enumerate() {
            let Some(q) = q.as_ref().filter(|_| j != i) else {
                continue;
            };
            let jleft = q.block_offset;
            let jright = jleft.wrapping_add(q.block_count);
            if (ileft >= jleft && ileft < jright) || (iright > jleft && iright <= jright) {
                return err(format!(
                    "partitions {i} (blocks {ileft} to {iright}) and {j} (blocks {jleft} to {jright}) overlap"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(feature = "apply")]
/// fwup's `create_partition` into one 128-byte entry.
fn encode_partition(p: &Part, out: &mut [u8], num_blocks: u32) {
    let mut block_count = p.block_count;
    if p.expand
        && num_blocks
            > p.block_offset
                .wrapping_add(p.block_count)
                .wrapping_add(GPT_SIZE_BLOCKS)
    {
        block_count = num_blocks
            .wrapping_sub(GPT_SIZE_BLOCKS)
            .wrapping_sub(1)
            .wrapping_sub(p.block_offset);
    }
    let first_lba = u64::from(p.block_offset);
    let last_lba = u64::from(p.block_offset.wrapping_add(block_count).wrapping_sub(1));
    out[0..16].copy_from_slice(&p.entry.partition_type);
    out[16..32].copy_from_slice(&p.entry.guid);
    out[32..40].copy_from_slice(&first_lba.to_le_bytes());
    out[40..48].copy_from_slice(&last_lba.to_le_bytes());
    out[48..56].copy_from_slice(&p.entry.flags.to_le_bytes());
    out[56..128].copy_from_slice(&p.entry.name);
}

#[cfg(feature = "apply")]
struct Header {
    current_lba: u64,
    backup_lba: u64,
    first_usable_lba: u64,
    last_usable_lba: u64,
    disk_guid: [u8; 16],
    partition_lba: u64,
    partition_crc: u32,
}

#[cfg(feature = "apply")]
/// fwup's `create_gpt_header` into one block.
fn encode_header(h: &Header, out: &mut [u8]) {
    const HEADER_SIZE: usize = 92;
    out[..BLOCK].fill(0);
    out[0..8].copy_from_slice(b"EFI PART");
    out[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    out[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    out[24..32].copy_from_slice(&h.current_lba.to_le_bytes());
    out[32..40].copy_from_slice(&h.backup_lba.to_le_bytes());
    out[40..48].copy_from_slice(&h.first_usable_lba.to_le_bytes());
    out[48..56].copy_from_slice(&h.last_usable_lba.to_le_bytes());
    out[56..72].copy_from_slice(&h.disk_guid);
    out[72..80].copy_from_slice(&h.partition_lba.to_le_bytes());
    out[80..84].copy_from_slice(&(NUM_ENTRIES as u32).to_le_bytes());
    out[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    out[88..92].copy_from_slice(&h.partition_crc.to_le_bytes());
    let crc = crc32fast::hash(&out[..HEADER_SIZE]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(feature = "apply")]
/// The GPT of `gpt` for a destination of `num_blocks` blocks (0 when unknown): the
/// protective MBR and primary GPT (34 blocks for offset 0), the backup GPT (33 blocks) and
/// its byte offset.
fn create(gpt: &Gpt, num_blocks: u32) -> Result<(Vec<u8>, Vec<u8>, u64)> {
    let parts = cfg_to_partitions(gpt)?;
    let num_blocks = if num_blocks == 0 {
        parts
            .iter()
            .flatten()
            .map(|p| p.block_offset.wrapping_add(p.block_count))
            .fold(0, u32::max)
            .wrapping_add(GPT_SIZE_BLOCKS + 1)
    } else {
        num_blocks
    };

    let mut primary = vec![0u8; BLOCK + GPT_SIZE];
    let mut secondary = vec![0u8; GPT_SIZE];

    // Protective MBR: one 0xEE partition from LBA 1 over the whole disk.
    let mbr = &mut primary[..BLOCK];
    mbr[446 + 2] = 0x02;
    mbr[446 + 4] = 0xee;
    mbr[446 + 5..446 + 8].fill(0xff);
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&num_blocks.wrapping_sub(1).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;

    for (table, at) in [(&mut primary, 2 * BLOCK), (&mut secondary, 0)] {
        for (p, out) in parts
            .iter()
            .zip(table[at..at + NUM_ENTRIES * ENTRY_SIZE].chunks_exact_mut(ENTRY_SIZE))
        {
            if let Some(p) = p {
                encode_partition(p, out, num_blocks);
            }
        }
    }
    let partition_crc = crc32fast::hash(&secondary[..NUM_ENTRIES * ENTRY_SIZE]);
    let Some(disk_guid) = gpt.guid().and_then(uuid_me) else {
        return err("GPT must have a valid disk guid".to_string());
    };

    let mut header = Header {
        current_lba: 1,
        backup_lba: u64::from(num_blocks.wrapping_sub(1)),
        first_usable_lba: u64::from(1 + GPT_SIZE_BLOCKS),
        last_usable_lba: u64::from(num_blocks.wrapping_sub(GPT_SIZE_BLOCKS).wrapping_sub(1)),
        disk_guid,
        partition_lba: 2,
        partition_crc,
    };
    encode_header(&header, &mut primary[BLOCK..2 * BLOCK]);

    header.current_lba = u64::from(num_blocks.wrapping_sub(1));
    header.backup_lba = 1;
    header.partition_lba = u64::from(num_blocks.wrapping_sub(GPT_SIZE_BLOCKS));
    encode_header(&header, &mut secondary[GPT_SIZE - BLOCK..]);

    Ok((primary, secondary, header.partition_lba * BLOCK as u64))
}

#[cfg(feature = "apply")]
/// `gpt_write(gpt)`: the protective MBR and primary GPT at offset 0, the backup GPT at the
/// end of the destination ([`Target::size`], or 34 blocks past the last partition when
/// unknown).
///
/// # Errors
/// [`PartitionError::Invalid`](crate::PartitionError::Invalid) for a section fwup refuses (with fwup's message), and the
/// target's write errors (a known size smaller than 34 blocks puts the backup GPT past the
/// end, as in fwup).
pub(crate) fn write_gpt(target: &mut dyn Target, gpt: &Gpt) -> Result<()> {
    let (primary, secondary, secondary_offset) = create(gpt, num_blocks(target))?;
    target.write_at(0, &primary)?;
    target.write_at(secondary_offset, &secondary)
}

#[cfg(all(test, feature = "apply"))]
mod tests {
    use super::*;
    use crate::apply::MemoryTarget;
    use crate::partition::test_support::{blocks, image, meta};

    fn disk() -> Gpt {
        meta("gpt").gpts()[0].clone()
    }

    #[test]
    fn gpt_on_a_new_file_matches_fwup() {
        let recorded = image("gpt--apply-complete");
        let mut t = MemoryTarget::new();
        write_gpt(&mut t, &disk()).unwrap();
        // Last partition ends at 832; the disk is 866 blocks.
        let b = t.as_bytes();
        assert_eq!(b.len(), 866 * 512);
        assert_eq!(blocks(b, 0, 34), blocks(&recorded, 0, 34));
        assert_eq!(blocks(b, 833, 866), blocks(&recorded, 833, 866));
        assert!(blocks(b, 34, 833).iter().all(|&x| x == 0));
        // The recorded image holds nothing else past the resource.
        assert!(recorded[866 * 512..].iter().all(|&x| x == 0));
    }

    #[test]
    fn gpt_with_a_known_size_matches_fwup() {
        let recorded = image("gpt--apply-complete-max-size");
        let mut t = MemoryTarget::with_size(2048 * 512).unwrap();
        write_gpt(&mut t, &disk()).unwrap();
        let b = t.as_bytes();
        assert_eq!(blocks(b, 0, 34), blocks(&recorded, 0, 34));
        assert_eq!(blocks(b, 2015, 2048), blocks(&recorded, 2015, 2048));
    }

    #[test]
    fn header_fields() {
        let (primary, secondary, offset) = create(&disk(), 0).unwrap();
        assert_eq!(offset, 833 * 512);
        let h = &primary[512..1024];
        assert_eq!(&h[..8], b"EFI PART");
        let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        assert_eq!(le64(h, 24), 1);
        assert_eq!(le64(h, 32), 865);
        assert_eq!(le64(h, 40), 34);
        assert_eq!(le64(h, 48), 832);
        assert_eq!(le64(h, 72), 2);
        let s = &secondary[32 * 512..];
        assert_eq!(le64(s, 24), 865);
        assert_eq!(le64(s, 32), 1);
        assert_eq!(le64(s, 72), 833);
        // Disk GUID b443fbeb-2c93-481b-88b3-0ecb0aeba911, mixed-endian.
        assert_eq!(
            &h[56..72],
            &[
                0xeb, 0xfb, 0x43, 0xb4, 0x93, 0x2c, 0x1b, 0x48, 0x88, 0xb3, 0x0e, 0xcb, 0x0a, 0xeb,
                0xa9, 0x11
            ]
        );
        // Entry 0: boot flag (bit 2) from meta.conf's flags=0x4, name "efi" in UTF-16LE.
        let e = &primary[1024..1024 + 128];
        assert_eq!(le64(e, 32), 64);
        assert_eq!(le64(e, 40), 319);
        assert_eq!(le64(e, 48), 4);
        assert_eq!(&e[56..62], &[b'e', 0, b'f', 0, b'i', 0]);
        let e1 = &primary[1024 + 128..1024 + 256];
        assert_eq!(le64(e1, 48), 0x8000_0000_0000_0000);
    }

    #[test]
    fn expand_and_boot() {
        let mut g = disk();
        g.partitions[1].expand = true;
        g.partitions[1].flags = "0".to_string();
        g.partitions[1].boot = true;
        let (primary, _, offset) = create(&g, 4096).unwrap();
        let e1 = &primary[1024 + 128..1024 + 256];
        let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        assert_eq!(le64(e1, 40), 4096 - 34 - 1);
        assert_eq!(le64(e1, 48), 4);
        assert_eq!(offset, (4096 - 33) * 512);
    }

    #[test]
    fn bad_sections_are_refused() {
        let mut g = disk();
        g.guid = Some("not-a-guid".to_string());
        assert_eq!(
            create(&g, 0).unwrap_err().to_string(),
            "GPT must have a valid disk guid"
        );
        let mut g = disk();
        g.partitions[0].partition_type = Some("c12a7328-f81f-11d2-ba4b-00a0c93ec9zz".to_string());
        assert_eq!(
            create(&g, 0).unwrap_err().to_string(),
            "partition 0's type must set to a UUID"
        );
        let mut g = disk();
        g.partitions[1].guid = None;
        assert_eq!(
            create(&g, 0).unwrap_err().to_string(),
            "partition 1 must have a valid guid"
        );
        let mut g = disk();
        g.partitions[1].flags = "0x1g".to_string();
        assert_eq!(
            create(&g, 0).unwrap_err().to_string(),
            "error parsing partition 1's flags"
        );
        let mut g = disk();
        g.partitions[1].title = "16".to_string();
        assert_eq!(
            create(&g, 0).unwrap_err().to_string(),
            "partition must be numbered 0 through 15"
        );
        let mut g = disk();
        g.partitions[1].title = "0".to_string();
        assert_eq!(
            create(&g, 0).unwrap_err().to_string(),
            "invalid or duplicate partition number found for 0"
        );
    }

    #[test]
    fn long_names_are_cut_to_36_bytes() {
        let mut g = disk();
        g.partitions[0].name = "x".repeat(40);
        let (primary, _, _) = create(&g, 0).unwrap();
        let name = &primary[1024 + 56..1024 + 128];
        assert!(name.chunks(2).all(|c| c == [b'x', 0]));
    }

    #[test]
    fn a_tiny_known_size_fails_like_fwup() {
        // 20 blocks: the backup GPT offset wraps and lands past the end.
        let mut t = MemoryTarget::with_size(20 * 512).unwrap();
        assert!(write_gpt(&mut t, &disk()).is_err());
    }
}
