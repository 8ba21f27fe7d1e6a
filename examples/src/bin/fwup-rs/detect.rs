//! Memory card detection (`-D`, `-z`, and easy mode without `-d`), with fwup's Linux rules:
//! `/dev/sda`…`/dev/sdy` and `/dev/mmcblk0`…`/dev/mmcblk15` that exist, are removable (or
//! MMC), hold at least 1 MiB and are not the disk the root filesystem is on.

use std::io::{self, Read, Write};

/// A card fwup would offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Card {
    pub(crate) path: String,
    pub(crate) size: u64,
}

/// fwup's `MMC_MIN_AUTODETECTED_SIZE`.
const MIN_SIZE: u64 = 1024 * 1024;
/// fwup's `MMC_MAX_DEVICES`.
const MAX_DEVICES: usize = 16;

/// Every card fwup would list with `-D`, in its order.
pub(crate) fn scan() -> Vec<Card> {
    #[cfg(target_os = "linux")]
    {
        linux::scan()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// `-D`: one `path,size` line per card.
pub(crate) fn detect_text() -> String {
    scan()
        .iter()
        .map(|card| format!("{},{}\n", card.path, card.size))
        .collect()
}

/// The one card easy mode and `-z` would use, or fwup's message when there is not exactly one
/// (the list of candidates goes to stderr first, as fwup prints it).
pub(crate) fn autoselect() -> Result<Card, String> {
    let mut cards = scan();
    match cards.len() {
        1 => Ok(cards.remove(0)),
        0 => Err("No memory cards found. Try reinserting the card.".to_owned()),
        _ => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "Too many possible memory cards found: ");
            for card in &cards {
                let _ = writeln!(err, "  {} ({})", card.path, pretty_size(card.size));
            }
            let _ = writeln!(
                err,
                "Automatic selection not possible. Specify one using the -d option."
            );
            Err(String::new())
        }
    }
}

/// Easy mode without `-d`: the auto-selected card, confirmed on the terminal unless `-y`.
/// fwup cannot ask when the archive itself comes on standard input.
pub(crate) fn autoselect_and_confirm(accept: bool, input_is_stdin: bool) -> Result<String, String> {
    let card = autoselect()?;
    if accept {
        return Ok(card.path);
    }
    if input_is_stdin {
        return Err(format!(
            "Cannot confirm use of {} when using stdin.\nRerun with -y if location is correct.",
            card.path
        ));
    }
    let mut err = io::stderr().lock();
    let _ = write!(
        err,
        "Use {} memory card found at {}? [y/N] ",
        pretty_size(card.size),
        card.path
    );
    let _ = err.flush();
    let mut answer = [0u8; 1];
    let got = io::stdin().lock().read(&mut answer).unwrap_or(0);
    if got == 1 && matches!(answer[0], b'y' | b'Y') {
        Ok(card.path)
    } else {
        Err("aborted by user".to_owned())
    }
}

/// fwup's `format_pretty_auto`: decimal units, two decimals.
pub(crate) fn pretty_size(size: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    let (unit, name) = UNITS
        .iter()
        .copied()
        .find(|(unit, _)| size >= *unit)
        .unwrap_or((1, "bytes"));
    // Display only: two decimals of a disk size need no more precision than f64 has.
    #[allow(clippy::cast_precision_loss)]
    let value = size as f64 / unit as f64;
    format!("{value:.2} {name}")
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;

    use super::{Card, MAX_DEVICES, MIN_SIZE};

    /// `mmcblk` devices' block major (Linux `MMC_BLOCK_MAJOR`).
    const MMC_BLOCK_MAJOR: u64 = 179;

    fn read_sysfs(path: &str) -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    }

    fn major(rdev: u64) -> u64 {
        ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff)
    }

    fn card(name: &str) -> Option<(Card, u64, bool)> {
        let path = format!("/dev/{name}");
        let meta = std::fs::metadata(&path).ok()?;
        // Seeking to the end needs read permission; sysfs is the fallback, as in fwup.
        let size = std::fs::File::open(&path)
            .and_then(|mut f| f.seek(SeekFrom::End(0)))
            .ok()
            .filter(|s| *s > 0)
            .or_else(|| {
                read_sysfs(&format!("/sys/block/{name}/size"))
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|blocks| blocks.saturating_mul(512))
            })
            .unwrap_or(0);
        let removable = major(meta.rdev()) == MMC_BLOCK_MAJOR
            || read_sysfs(&format!("/sys/block/{name}/removable")).is_some_and(|s| s == "1");
        Some((Card { path, size }, meta.rdev(), removable))
    }

    pub(super) fn scan() -> Vec<Card> {
        // fwup masks the partition bits off the root filesystem's device number.
        let root = std::fs::metadata("/").map_or(0, |m| m.dev() & 0xfff0);
        // fwup stops before 'z' (its loop runs while c != 'z').
        let names = ('a'..='y')
            .map(|c| format!("sd{c}"))
            .chain((0..16).map(|i| format!("mmcblk{i}")));
        names
            .filter_map(|name| card(&name))
            .take(MAX_DEVICES)
            .filter(|(card, rdev, removable)| *rdev != root && card.size >= MIN_SIZE && *removable)
            .map(|(card, _, _)| card)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_in_decimal_units_as_fwup() {
        assert_eq!(pretty_size(15_931_539_456), "15.93 GB");
        assert_eq!(pretty_size(999), "999.00 bytes");
        assert_eq!(pretty_size(2_000_000), "2.00 MB");
    }

    #[test]
    fn detect_lists_path_and_size_lines() {
        // The build machine has no removable cards, or some: either way every line parses.
        for line in detect_text().lines() {
            let (path, size) = line.split_once(',').unwrap();
            assert!(path.starts_with("/dev/"));
            assert!(size.parse::<u64>().unwrap() >= MIN_SIZE);
        }
    }
}
