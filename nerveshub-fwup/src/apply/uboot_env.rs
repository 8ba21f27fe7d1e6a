//! U-Boot environments as fwup reads and writes them (`uboot_env.c`).
//!
//! An environment is `block-count × 512` bytes: a CRC-32 (IEEE, little-endian) of the data
//! area, for redundant environments one flag byte, then `name=value\0` pairs, a final `\0`
//! and 0xFF up to the end. The CRC covers everything after the header (the flag byte is not
//! covered). fwup writes the pairs **sorted by name** (a stable sort of its list, so
//! duplicate names read from a foreign environment keep a fixed order), whatever order they
//! were set in.
//!
//! A redundant environment has two copies. The flag byte is a wrapping counter: the copy
//! whose flag is ahead (by less than 128) is current and tried first; fwup falls back to the
//! other copy when the current one does not read. A write goes to the copy that was *not*
//! read, with the read copy's flag + 1, so the old environment survives a torn write.
//!
//! The pure functions ([`parse_uboot_env`], [`encode_uboot_env`]) work on bytes; the
//! [`read_uboot_env`] / [`write_uboot_env`] pair works on a [`Target`] at a
//! [`UbootEnvLocation`] with fwup's copy selection, for device clients that read
//! `nerves_fw_*` variables.

use super::target::Target;
use crate::{Error, Result, UbootEnvError, UbootEnvironment};

/// fwup's block size.
const BLOCK_SIZE: u64 = 512;
/// Largest `block-count` fwup accepts (`< UINT16_MAX`).
const MAX_BLOCK_COUNT: i64 = 65534;
/// Largest environment this module reads or writes (65534 blocks, about 32 MiB).
pub const MAX_UBOOT_ENV_SIZE: usize = 65534 * 512;

/// Which copies a write goes to and the flag it continues from: fwup's `write_primary`,
/// `write_secondary` and `flags`, set when an environment is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WritePlan {
    flags: u8,
    primary: bool,
    secondary: bool,
}

impl WritePlan {
    /// A fresh environment (fwup's `uboot_env_create_cfg`): both copies, flag 0 (written as 1).
    const FRESH: WritePlan = WritePlan {
        flags: 0,
        primary: true,
        secondary: true,
    };
}

/// The variables of a U-Boot environment.
///
/// It behaves like fwup's list: [`UbootEnv::get`] and [`UbootEnv::set`] act on the most
/// recent entry of a name, and [`UbootEnv::iter`] yields the pairs in the order they are
/// written (sorted by name). Names and values are byte strings without NUL bytes; they are
/// usually, but not necessarily, UTF-8.
///
/// An environment read from a target remembers which copy it came from, so writing it back
/// with [`write_uboot_env`] goes to the other copy of a redundant environment, as fwup does.
/// Two environments compare equal when they would be written the same (same pairs).
#[derive(Debug, Clone)]
pub struct UbootEnv {
    /// The pairs, oldest first: the last element is the head of fwup's list.
    vars: Vec<(Vec<u8>, Vec<u8>)>,
    plan: WritePlan,
}

impl Default for UbootEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for UbootEnv {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for UbootEnv {}

/// The part of `s` before its first NUL: what C sees of a string.
fn c_str(s: &[u8]) -> &[u8] {
    s.iter().position(|&b| b == 0).map_or(s, |n| &s[..n])
}

impl UbootEnv {
    /// An empty environment.
    pub fn new() -> Self {
        UbootEnv {
            vars: Vec::new(),
            plan: WritePlan::FRESH,
        }
    }

    /// The value of `name` when it is set and is UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The raw value of `name`.
    pub fn get_bytes(&self, name: &[u8]) -> Option<&[u8]> {
        let name = c_str(name);
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `name` to `value`, replacing the most recent entry of that name. As in fwup
    /// (C strings), both end at their first NUL byte, and no check is made on the name: a
    /// name containing `=` or an empty name is written as given, even though it will not
    /// read back the same.
    pub fn set(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let name = c_str(name.as_ref());
        let value = c_str(value.as_ref()).to_vec();
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.vars.push((name.to_vec(), value)),
        }
    }

    /// Removes the most recent entry of `name`; returns whether there was one.
    pub fn unset(&mut self, name: impl AsRef<[u8]>) -> bool {
        let name = c_str(name.as_ref());
        match self.vars.iter().rposition(|(n, _)| n == name) {
            Some(i) => {
                self.vars.remove(i);
                true
            }
            None => false,
        }
    }

    /// The `(name, value)` pairs in the order they are written: sorted by name (bytewise),
    /// entries of equal names most recent first.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        // fwup's list is newest first; glibc's qsort (a merge sort) keeps equal names in
        // list order.
        let mut pairs: Vec<(&[u8], &[u8])> = self
            .vars
            .iter()
            .rev()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        pairs.into_iter()
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

/// The size of the header before the data area.
fn data_offset(redundant: bool) -> usize {
    if redundant { 5 } else { 4 }
}

/// Decodes one copy (fwup's `uboot_env_decode`); `block` is only for the CRC message.
fn decode(bytes: &[u8], redundant: bool, block: u64) -> Result<UbootEnv> {
    let start = data_offset(redundant);
    let (Some(crc), Some(data)) = (bytes.get(..4), bytes.get(start..)) else {
        return Err(Error::UbootEnv(UbootEnvError::Invalid));
    };
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32fast::hash(data);
    if expected != actual {
        return Err(Error::UbootEnv(UbootEnvError::Crc {
            block,
            expected,
            actual,
        }));
    }

    let mut env = UbootEnv::new();
    let mut rest = data;
    while let Some((&first, _)) = rest.split_first() {
        if first == 0 {
            break;
        }
        // The name is at least one byte long, so a leading '=' belongs to it.
        let eq = rest
            .iter()
            .skip(1)
            .position(|&b| b == b'=' || b == 0)
            .map(|i| i + 1);
        let Some(eq) = eq.filter(|&i| rest[i] == b'=') else {
            return Err(Error::UbootEnv(UbootEnvError::Invalid));
        };
        let after = &rest[eq + 1..];
        let Some(nul) = after.iter().position(|&b| b == 0) else {
            return Err(Error::UbootEnv(UbootEnvError::Invalid));
        };
        env.vars.push((rest[..eq].to_vec(), after[..nul].to_vec()));
        rest = &after[nul + 1..];
    }
    Ok(env)
}

/// Parses one copy of an environment: `bytes` is the whole environment area
/// (`block-count × 512` bytes), `redundant` says whether it has the flag byte after the CRC.
///
/// # Errors
/// [`UbootEnvError::Crc`](crate::UbootEnvError::Crc) (reported for block 0) when the CRC does not match, and
/// [`UbootEnvError::Invalid`](crate::UbootEnvError::Invalid) when the pairs are malformed or `bytes` is shorter than the
/// header.
pub fn parse_uboot_env(bytes: &[u8], redundant: bool) -> Result<UbootEnv> {
    decode(bytes, redundant, 0)
}

/// Encodes `env` into an environment area of `size` bytes as fwup does: pairs sorted by
/// name, a final NUL, 0xFF fill, CRC-32. `flag` is `None` for a plain environment and the
/// flag byte for a redundant one.
///
/// # Errors
/// [`UbootEnvError::Full`](crate::UbootEnvError::Full) when the pairs do not fit (fwup keeps two bytes spare), and
/// [`UbootEnvError::Config`](crate::UbootEnvError::Config) when `size` is not larger than the header or is larger than
/// [`MAX_UBOOT_ENV_SIZE`].
pub fn encode_uboot_env(env: &UbootEnv, size: usize, flag: Option<u8>) -> Result<Vec<u8>> {
    let start = data_offset(flag.is_some());
    if size <= start || size > MAX_UBOOT_ENV_SIZE {
        return Err(Error::UbootEnv(UbootEnvError::Config(format!(
            "invalid u-boot environment size {size}"
        ))));
    }
    let mut buf = vec![0xffu8; size];
    let end = size - 2;
    let mut p = start;
    for (name, value) in env.iter() {
        let value_end = p + name.len() + 1 + value.len();
        if value_end >= end {
            return Err(Error::UbootEnv(UbootEnvError::Full));
        }
        buf[p..p + name.len()].copy_from_slice(name);
        p += name.len();
        buf[p] = b'=';
        buf[p + 1..value_end].copy_from_slice(value);
        buf[value_end] = 0;
        p = value_end + 1;
    }
    buf[p] = 0;
    let crc = crc32fast::hash(&buf[start..]);
    buf[..4].copy_from_slice(&crc.to_le_bytes());
    if let Some(flag) = flag {
        buf[4] = flag;
    }
    Ok(buf)
}

/// Where an environment lives on a target: byte offsets and the size of one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UbootEnvLocation {
    /// Byte offset of the (primary) environment.
    pub offset: u64,
    /// Size of one copy in bytes (fwup: `block-count × 512`).
    pub size: usize,
    /// Byte offset of the second copy of a redundant environment.
    pub redundant_offset: Option<u64>,
}

/// C `strtoull(s, &end, 0)`: the value (wrapped for a `-` sign, saturated on overflow),
/// and whether the whole string was used without overflow.
fn strtoull(s: &str) -> (u64, bool) {
    let p = crate::metaconf::strtoul(s);
    (p.value, p.complete && !p.overflow)
}

impl UbootEnvLocation {
    /// The location of a `uboot-environment` section, read as fwup's
    /// `uboot_env_create_cfg` does: `block-offset` as `strtoull` (a missing or partly
    /// numeric value gives what C gets), `block-count` 1–65534, and `block-offset-redund`
    /// only when it is a complete number.
    ///
    /// # Errors
    /// [`UbootEnvError::Config`](crate::UbootEnvError::Config) for a bad block count or an offset past 2⁶⁴ bytes.
    pub fn from_section(section: &UbootEnvironment) -> Result<Self> {
        let count = section.block_count();
        if !(1..=MAX_BLOCK_COUNT).contains(&count) {
            return Err(Error::UbootEnv(UbootEnvError::Config(
                "invalid u-boot environment block count".to_string(),
            )));
        }
        let bytes = |blocks: u64| {
            blocks.checked_mul(BLOCK_SIZE).ok_or_else(|| {
                Error::UbootEnv(UbootEnvError::Config(format!(
                    "u-boot environment '{}' block offset out of range",
                    section.name()
                )))
            })
        };
        let offset = bytes(section.block_offset().map_or(0, |s| strtoull(s).0))?;
        let redundant_offset = match section.block_offset_redund().map(strtoull) {
            Some((value, true)) => Some(bytes(value)?),
            _ => None,
        };
        Ok(UbootEnvLocation {
            offset,
            // 1..=65534 blocks: at most MAX_UBOOT_ENV_SIZE.
            size: usize::try_from(count).unwrap_or(0) * 512,
            redundant_offset,
        })
    }

    fn check(&self) -> Result<()> {
        if self.size <= data_offset(true) || self.size > MAX_UBOOT_ENV_SIZE {
            return Err(Error::UbootEnv(UbootEnvError::Config(format!(
                "invalid u-boot environment size {}",
                self.size
            ))));
        }
        Ok(())
    }

    fn block(&self) -> u64 {
        self.offset / BLOCK_SIZE
    }
}

fn read_copy(target: &mut dyn Target, offset: u64, size: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    target.read_at(offset, &mut buf)?;
    Ok(buf)
}

/// Reads the environment at `location` as fwup does. For a redundant environment the copy
/// with the newer flag is tried first and the other one when it does not read; the result
/// remembers which copy to write next.
///
/// # Errors
/// The target's read errors, [`UbootEnvError::Crc`](crate::UbootEnvError::Crc) / [`UbootEnvError::Invalid`](crate::UbootEnvError::Invalid) when no
/// copy reads (the error of the copy tried last), [`UbootEnvError::Config`](crate::UbootEnvError::Config) for a size
/// outside 6 bytes to [`MAX_UBOOT_ENV_SIZE`].
pub fn read_uboot_env(target: &mut dyn Target, location: &UbootEnvLocation) -> Result<UbootEnv> {
    location.check()?;
    let block = location.block();
    let Some(redundant_offset) = location.redundant_offset else {
        let buf = read_copy(target, location.offset, location.size)?;
        let mut env = decode(&buf, false, block)?;
        env.plan = WritePlan {
            flags: 0,
            primary: true,
            secondary: false,
        };
        return Ok(env);
    };
    let buf1 = read_copy(target, location.offset, location.size)?;
    let buf2 = read_copy(target, redundant_offset, location.size)?;
    let (flag1, flag2) = (buf1[4], buf2[4]);
    let delta = flag2.wrapping_sub(flag1);
    // Equal flags or a wrap prefer the first copy.
    let first_is_current = delta == 0 || delta >= 128;
    let (current, other, current_flag, other_flag) = if first_is_current {
        (&buf1, &buf2, flag1, flag2)
    } else {
        (&buf2, &buf1, flag2, flag1)
    };
    let (env, flags, current_is_primary) = match decode(current, true, block) {
        Ok(env) => (env, current_flag, first_is_current),
        Err(_) => (decode(other, true, block)?, other_flag, !first_is_current),
    };
    Ok(UbootEnv {
        plan: WritePlan {
            flags,
            primary: !current_is_primary,
            secondary: current_is_primary,
        },
        ..env
    })
}

/// Writes `env` at `location` as fwup does: a plain environment in place; a redundant one
/// to the copy it was not read from with the flag + 1 (wrapping), or to both copies with
/// flag 1 when `env` was not read from a target.
///
/// # Errors
/// [`UbootEnvError::Full`](crate::UbootEnvError::Full), [`UbootEnvError::Config`](crate::UbootEnvError::Config), and the target's write errors.
pub fn write_uboot_env(
    target: &mut dyn Target,
    location: &UbootEnvLocation,
    env: &UbootEnv,
) -> Result<()> {
    location.check()?;
    let plan = env.plan;
    let Some(redundant_offset) = location.redundant_offset else {
        let buf = encode_uboot_env(env, location.size, None)?;
        return target.write_at(location.offset, &buf);
    };
    let buf = encode_uboot_env(env, location.size, Some(plan.flags.wrapping_add(1)))?;
    if plan.primary {
        target.write_at(location.offset, &buf)?;
    }
    if plan.secondary {
        target.write_at(redundant_offset, &buf)?;
    }
    Ok(())
}

/// `require-uboot-variable`, `uboot_setenv`, `uboot_unsetenv`: the environment of a
/// section, as [`read_uboot_env`] reads it.
pub(crate) fn read_env(target: &mut dyn Target, section: &UbootEnvironment) -> Result<UbootEnv> {
    read_uboot_env(target, &UbootEnvLocation::from_section(section)?)
}

/// Writes back an environment returned by [`read_env`] (after `set`/`unset`).
pub(crate) fn write_env(
    target: &mut dyn Target,
    section: &UbootEnvironment,
    env: &UbootEnv,
) -> Result<()> {
    write_uboot_env(target, &UbootEnvLocation::from_section(section)?, env)
}

/// `uboot_clearenv`: an empty, valid environment (both copies of a redundant one, flag 1).
pub(crate) fn clear_env(target: &mut dyn Target, section: &UbootEnvironment) -> Result<()> {
    let location = UbootEnvLocation::from_section(section)?;
    write_uboot_env(target, &location, &UbootEnv::new())
}

/// `uboot_recover`: writes an empty environment (as [`clear_env`]) only when the current
/// one does not read; any read failure counts, as in fwup.
pub(crate) fn recover_env(target: &mut dyn Target, section: &UbootEnvironment) -> Result<()> {
    let location = UbootEnvLocation::from_section(section)?;
    if read_uboot_env(target, &location).is_err() {
        write_uboot_env(target, &location, &UbootEnv::new())?;
    }
    Ok(())
}

/// Fuzzing entry point: parses `data` as a plain and as a redundant environment and, when
/// that works, re-encodes it into the same size and checks that it reads back the same
/// pairs. Panics only on a round-trip mismatch (a bug).
#[doc(hidden)]
pub fn fuzz_uboot_env(data: &[u8]) {
    for redundant in [false, true] {
        let Ok(env) = parse_uboot_env(data, redundant) else {
            continue;
        };
        let _ = env.get("bootcmd");
        if let Ok(bytes) = encode_uboot_env(&env, data.len(), redundant.then_some(1)) {
            let again = parse_uboot_env(&bytes, redundant);
            let sorted = |e: &UbootEnv| {
                let mut v: Vec<(Vec<u8>, Vec<u8>)> =
                    e.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
                v.sort();
                v
            };
            assert!(again.is_ok_and(|a| sorted(&a) == sorted(&env)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::MemoryTarget;
    use crate::partition::test_support::{blocks, image, meta};
    use proptest::prelude::*;

    const UUID: &str = "bcd52840-4815-5c06-64dc-e5b654b9046d";

    fn section(group: &str) -> UbootEnvironment {
        meta(group).uboot_environments()[0].clone()
    }

    fn setenv(t: &mut dyn Target, s: &UbootEnvironment, name: &str, value: &str) {
        let mut env = read_env(t, s).unwrap();
        env.set(name, value);
        write_env(t, s, &env).unwrap();
    }

    fn unsetenv(t: &mut dyn Target, s: &UbootEnvironment, name: &str) {
        let mut env = read_env(t, s).unwrap();
        env.unset(name);
        write_env(t, s, &env).unwrap();
    }

    #[test]
    fn ab_step1_complete_matches_fwup() {
        let s = section("ab");
        let recorded = image("ab--step1-complete");
        let mut t = MemoryTarget::new();
        clear_env(&mut t, &s).unwrap();
        setenv(&mut t, &s, "active", "a");
        setenv(&mut t, &s, "fw_uuid", UUID);
        assert_eq!(blocks(t.as_bytes(), 16, 48), blocks(&recorded, 16, 48));

        let mut r = MemoryTarget::from_bytes(recorded.clone());
        let env = read_env(&mut r, &s).unwrap();
        assert_eq!(env.get("active"), Some("a"));
        assert_eq!(env.get("fw_uuid"), Some(UUID));
        assert_eq!(env.len(), 2);
        // The primary copy (flag 3) is newer than the redundant one (flag 2) …
        assert_eq!(recorded[16 * 512 + 4], 3);
        assert_eq!(recorded[32 * 512 + 4], 2);
        // … and each copy's CRC is right.
        for at in [16, 32] {
            let copy = blocks(&recorded, at, at + 16);
            let crc = u32::from_le_bytes(copy[..4].try_into().unwrap());
            assert_eq!(crc, crc32fast::hash(&copy[5..]));
            assert!(parse_uboot_env(copy, true).is_ok());
        }
    }

    #[test]
    fn ab_upgrades_match_fwup() {
        let s = section("ab");
        for (from, to, active) in [
            ("ab--step1-complete", "ab--step2-upgrade", "b"),
            ("ab--step2-upgrade", "ab--step3-upgrade", "a"),
        ] {
            let mut t = MemoryTarget::from_bytes(image(from));
            assert_ne!(read_env(&mut t, &s).unwrap().get("active"), Some(active));
            setenv(&mut t, &s, "active", active);
            let recorded = image(to);
            assert_eq!(
                blocks(t.as_bytes(), 16, 48),
                blocks(&recorded, 16, 48),
                "{to}"
            );
            let env = read_env(&mut MemoryTarget::from_bytes(recorded), &s).unwrap();
            assert_eq!(env.get("active"), Some(active));
            assert_eq!(env.get("fw_uuid"), Some(UUID));
        }
    }

    #[test]
    fn boot_fat_env_matches_fwup() {
        let s = section("boot_fat");
        let mut t = MemoryTarget::new();
        clear_env(&mut t, &s).unwrap();
        setenv(&mut t, &s, "bootcmd", "run fwup_boot");
        setenv(&mut t, &s, "temp", "to-be-removed");
        setenv(&mut t, &s, "with_equals", "a=b c");
        unsetenv(&mut t, &s, "temp");
        setenv(&mut t, &s, "stage", "a");
        let recorded = image("boot_fat--apply-complete");
        assert_eq!(blocks(t.as_bytes(), 16, 32), blocks(&recorded, 16, 32));
        let env = read_env(&mut MemoryTarget::from_bytes(recorded), &s).unwrap();
        let pairs: Vec<_> = env.iter().collect();
        assert_eq!(
            pairs,
            [
                (&b"bootcmd"[..], &b"run fwup_boot"[..]),
                (b"stage", b"a"),
                (b"with_equals", b"a=b c"),
            ]
        );
    }

    #[test]
    fn a_blank_environment_does_not_read() {
        for group in ["ab", "boot_fat"] {
            let e = read_env(&mut MemoryTarget::new(), &section(group)).unwrap_err();
            assert!(
                e.to_string().starts_with(
                    "U-boot environment (block 16) CRC32 mismatch (expected 0x00000000; got 0x"
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn redundant_read_falls_back_to_the_other_copy() {
        let s = section("ab");
        let mut t = MemoryTarget::from_bytes(image("ab--step2-upgrade"));
        // Current copy: the redundant one (flag 4, active=b). Break it.
        t.write_at(32 * 512 + 100, &[0]).unwrap();
        let env = read_env(&mut t, &s).unwrap();
        assert_eq!(env.get("active"), Some("a"));
        // The write goes over the broken copy, with the good copy's flag + 1.
        write_env(&mut t, &s, &env).unwrap();
        assert_eq!(t.as_bytes()[32 * 512 + 4], 4);
        assert_eq!(t.as_bytes()[16 * 512 + 4], 3);
        let again = read_env(&mut t, &s).unwrap();
        assert_eq!(again.get("active"), Some("a"));
        // Both broken: the error of the copy tried last.
        t.write_at(32 * 512 + 100, &[0]).unwrap();
        t.write_at(16 * 512 + 100, &[0]).unwrap();
        assert!(matches!(
            read_env(&mut t, &s),
            Err(Error::UbootEnv(UbootEnvError::Crc { block: 16, .. }))
        ));
    }

    #[test]
    fn flags_wrap() {
        let s = section("ab");
        let loc = UbootEnvLocation::from_section(&s).unwrap();
        let mut t = MemoryTarget::new();
        let mut env = UbootEnv::new();
        env.set("v", "old");
        t.write_at(
            loc.offset,
            &encode_uboot_env(&env, loc.size, Some(255)).unwrap(),
        )
        .unwrap();
        env.set("v", "new");
        t.write_at(
            32 * 512,
            &encode_uboot_env(&env, loc.size, Some(0)).unwrap(),
        )
        .unwrap();
        // 0 is one ahead of 255.
        let read = read_env(&mut t, &s).unwrap();
        assert_eq!(read.get("v"), Some("new"));
        write_env(&mut t, &s, &read).unwrap();
        assert_eq!(t.as_bytes()[16 * 512 + 4], 1);
    }

    #[test]
    fn recover_writes_only_when_the_environment_is_bad() {
        for group in ["ab", "boot_fat"] {
            let s = section(group);
            let mut t = MemoryTarget::new();
            clear_env(&mut t, &s).unwrap();
            setenv(&mut t, &s, "keep", "me");
            let before = t.as_bytes().to_vec();
            recover_env(&mut t, &s).unwrap();
            assert_eq!(t.as_bytes(), &before[..]);

            let mut blank = MemoryTarget::new();
            recover_env(&mut blank, &s).unwrap();
            let mut cleared = MemoryTarget::new();
            clear_env(&mut cleared, &s).unwrap();
            assert_eq!(blank.as_bytes(), cleared.as_bytes());
            assert!(read_env(&mut blank, &s).unwrap().is_empty());
        }
    }

    #[test]
    fn layout_of_an_encoded_environment() {
        let mut env = UbootEnv::new();
        env.set("b", "2");
        env.set("a", "1");
        let bytes = encode_uboot_env(&env, 512, None).unwrap();
        assert_eq!(&bytes[4..13], b"a=1\0b=2\0\0");
        assert!(bytes[13..].iter().all(|&b| b == 0xff));
        assert_eq!(
            u32::from_le_bytes(bytes[..4].try_into().unwrap()),
            crc32fast::hash(&bytes[4..])
        );
        let bytes = encode_uboot_env(&env, 512, Some(7)).unwrap();
        assert_eq!(bytes[4], 7);
        assert_eq!(&bytes[5..14], b"a=1\0b=2\0\0");
    }

    #[test]
    fn room_is_checked_like_fwup() {
        // 512 bytes, 4 of header, 2 spare: "n=" + value + NUL may end at byte 509 at most.
        let mut env = UbootEnv::new();
        env.set("n", "x".repeat(503));
        assert!(encode_uboot_env(&env, 512, None).is_ok());
        env.set("n", "x".repeat(504));
        assert!(matches!(
            encode_uboot_env(&env, 512, None),
            Err(Error::UbootEnv(UbootEnvError::Full))
        ));
    }

    #[test]
    fn malformed_pairs_are_invalid() {
        let with_crc = |data: &[u8]| {
            let mut b = vec![0u8; 4];
            b.extend_from_slice(data);
            let crc = crc32fast::hash(&b[4..]);
            b[..4].copy_from_slice(&crc.to_le_bytes());
            b
        };
        for bad in [&b"novalue\0\0"[..], b"a=unterminated", b"name"] {
            assert!(matches!(
                parse_uboot_env(&with_crc(bad), false),
                Err(Error::UbootEnv(UbootEnvError::Invalid))
            ));
        }
        // A leading '=' belongs to the name; values may hold '='.
        let env = parse_uboot_env(&with_crc(b"==x\0k=v=w\0\0\xff"), false).unwrap();
        assert_eq!(env.get_bytes(b"="), Some(&b"x"[..]));
        assert_eq!(env.get("k"), Some("v=w"));
        // Nothing after the last pair's NUL is needed.
        assert_eq!(
            parse_uboot_env(&with_crc(b"k=v\0"), false).unwrap().len(),
            1
        );
        assert!(parse_uboot_env(&[1, 2, 3], false).is_err());
        // CRC-32 of nothing is 0: a bare redundant header is an empty environment.
        assert!(parse_uboot_env(&[0; 5], true).unwrap().is_empty());
    }

    #[test]
    fn duplicate_names_behave_like_fwups_list() {
        let with_crc = |data: &[u8]| {
            let mut b = vec![0u8; 4];
            b.extend_from_slice(data);
            b.resize(64, 0xff);
            let crc = crc32fast::hash(&b[4..]);
            b[..4].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let mut env = parse_uboot_env(&with_crc(b"a=1\0b=x\0a=2\0\0"), false).unwrap();
        // The last occurrence is the one fwup finds.
        assert_eq!(env.get("a"), Some("2"));
        // Written with the newest first among equal names.
        let out = encode_uboot_env(&env, 64, None).unwrap();
        assert_eq!(&out[4..17], b"a=2\0a=1\0b=x\0\0");
        env.set("a", "3");
        assert!(env.unset("a"));
        assert_eq!(env.get("a"), Some("1"));
        assert!(env.unset("a"));
        assert!(!env.unset("a"));
    }

    #[test]
    fn nul_bytes_end_names_and_values() {
        let mut env = UbootEnv::new();
        env.set("ab\0cd", "v\0w");
        assert_eq!(env.get("ab"), Some("v"));
        assert_eq!(env.get("ab\0zz"), Some("v"));
    }

    #[test]
    fn section_checks() {
        let mut s = section("ab");
        s.block_count = 0;
        assert!(UbootEnvLocation::from_section(&s).is_err());
        s.block_count = 65535;
        assert!(UbootEnvLocation::from_section(&s).is_err());
        s.block_count = 65534;
        assert!(UbootEnvLocation::from_section(&s).is_ok());
        // A redundant offset that is not a complete number makes the environment plain.
        s.block_offset_redund = Some("32x".to_string());
        assert_eq!(
            UbootEnvLocation::from_section(&s).unwrap().redundant_offset,
            None
        );
        s.block_offset = Some("0x10".to_string());
        assert_eq!(UbootEnvLocation::from_section(&s).unwrap().offset, 16 * 512);
        s.block_offset = Some("-1".to_string());
        assert!(UbootEnvLocation::from_section(&s).is_err());
    }

    fn arb_env() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(("[a-zA-Z0-9_.]{1,12}", "[ -~]{0,40}"), 0..20)
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(pairs in arb_env(), redundant in any::<bool>(), flag in any::<u8>()) {
            let mut env = UbootEnv::new();
            let mut expected = std::collections::BTreeMap::new();
            for (n, v) in &pairs {
                env.set(n, v);
                expected.insert(n.clone(), v.clone());
            }
            let bytes = encode_uboot_env(&env, 2048, redundant.then_some(flag)).unwrap();
            let back = parse_uboot_env(&bytes, redundant).unwrap();
            let got: std::collections::BTreeMap<String, String> = back
                .iter()
                .map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
                .collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(&back, &env);
            // Re-encoding gives the same bytes.
            prop_assert_eq!(encode_uboot_env(&back, 2048, redundant.then_some(flag)).unwrap(), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
            fuzz_uboot_env(&data);
        }

        #[test]
        fn arbitrary_pairs_with_a_good_crc_never_panic(body in prop::collection::vec(prop::sample::select(vec![0u8, b'=', b'a', 0xff]), 0..200)) {
            let mut b = vec![0u8; 4];
            b.extend_from_slice(&body);
            let crc = crc32fast::hash(&b[4..]);
            b[..4].copy_from_slice(&crc.to_le_bytes());
            fuzz_uboot_env(&b);
        }
    }
}
