//! FatFs's name handling: a path segment becomes an 8.3 name (SFN) with NT case flags,
//! plus the long name (LFN) entries when the name is not a plain 8.3 name.
//!
//! Only ASCII names are handled; FatFs's code page 850 conversion of other bytes is not
//! implemented yet and such names are refused ([`super::INVALID_NAME`]).

/// The SFN does not keep the whole name (a numbered `~N` name must be generated).
pub(super) const NS_LOSS: u8 = 0x01;
/// Long name entries are needed.
pub(super) const NS_LFN: u8 = 0x02;
/// The body is all lower case (NT flag).
pub(super) const NS_BODY: u8 = 0x08;
/// The extension is all lower case (NT flag).
pub(super) const NS_EXT: u8 = 0x10;

/// A parsed path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Name {
    /// The 8.3 name, space padded.
    pub(super) sfn: [u8; 11],
    /// `NS_*` flags.
    pub(super) flags: u8,
    /// The long name as UTF-16 code units (ASCII here), trailing dots and spaces removed.
    pub(super) lfn: Vec<u16>,
}

/// Parses one path segment as FatFs's `create_name` does. `None`: an invalid name.
pub(super) fn parse(segment: &str) -> Option<Name> {
    let bytes = segment.as_bytes();
    if bytes
        .iter()
        .any(|&b| !(b' '..0x80).contains(&b) || b"*:<>|\"?\x7F".contains(&b))
    {
        return None;
    }
    let mut lfn: Vec<u16> = bytes.iter().map(|&b| u16::from(b)).collect();
    while let Some(&last) = lfn.last() {
        if last == u16::from(b' ') || last == u16::from(b'.') {
            lfn.pop();
        } else {
            break;
        }
    }
    if lfn.is_empty() || lfn.len() > 255 {
        return None;
    }
    let mut sfn = [b' '; 11];
    let mut flags = 0u8;
    let mut si = lfn.iter().take_while(|&&c| c == u16::from(b' ')).count();
    if si > 0 || lfn.get(si) == Some(&u16::from(b'.')) {
        flags |= NS_LOSS | NS_LFN;
    }
    // di: index just past the last dot (0 = no extension).
    let mut di = lfn.len();
    while di > 0 && lfn.get(di - 1) != Some(&u16::from(b'.')) {
        di -= 1;
    }
    let (mut i, mut ni, mut case) = (0usize, 8usize, 0u8);
    while let Some(&wc) = lfn.get(si) {
        si += 1;
        let c = u8::try_from(wc).unwrap_or(b'_');
        if c == b' ' || (c == b'.' && si != di) {
            flags |= NS_LOSS | NS_LFN;
            continue;
        }
        if i >= ni || si == di {
            if ni == 11 {
                flags |= NS_LOSS | NS_LFN;
                break;
            }
            if si != di {
                flags |= NS_LOSS | NS_LFN;
            }
            if si > di {
                break;
            }
            si = di;
            i = 8;
            ni = 11;
            case <<= 2;
            continue;
        }
        let mut out = c;
        if b"+,;=[]".contains(&c) {
            out = b'_';
            flags |= NS_LOSS | NS_LFN;
        } else if c.is_ascii_uppercase() {
            case |= 2;
        } else if c.is_ascii_lowercase() {
            case |= 1;
            out = c - 0x20;
        }
        if let Some(slot) = sfn.get_mut(i) {
            *slot = out;
        }
        i += 1;
    }
    if sfn[0] == 0xE5 {
        sfn[0] = 0x05;
    }
    if ni == 8 {
        case <<= 2;
    }
    if case & 0x0C == 0x0C || case & 0x03 == 0x03 {
        flags |= NS_LFN;
    }
    if flags & NS_LFN == 0 {
        if case & 0x01 != 0 {
            flags |= NS_EXT;
        }
        if case & 0x04 != 0 {
            flags |= NS_BODY;
        }
    }
    Some(Name { sfn, flags, lfn })
}

/// FatFs's `gen_numname`: the SFN body with a `~N` suffix (a hash-based number from the
/// sixth collision on).
pub(super) fn numbered(src: &[u8; 11], lfn: &[u16], seq: u32) -> [u8; 11] {
    let mut dst = *src;
    let mut seq = seq;
    if seq > 5 {
        let mut sreg = seq;
        for &w in lfn {
            let mut wc = w;
            for _ in 0..16 {
                sreg = (sreg << 1).wrapping_add(u32::from(wc & 1));
                wc >>= 1;
                if sreg & 0x10000 != 0 {
                    sreg ^= 0x11021;
                }
            }
        }
        seq = sreg;
    }
    let mut ns = [0u8; 8];
    let mut i = 7usize;
    loop {
        let mut c = (seq % 16) as u8 + b'0';
        seq /= 16;
        if c > b'9' {
            c += 7;
        }
        if let Some(slot) = ns.get_mut(i) {
            *slot = c;
        }
        i -= 1;
        if i == 0 || seq == 0 {
            break;
        }
    }
    if let Some(slot) = ns.get_mut(i) {
        *slot = b'~';
    }
    let mut j = 0usize;
    while j < i && dst.get(j).is_some_and(|&c| c != b' ') {
        j += 1;
    }
    loop {
        let c = if i < 8 {
            let c = ns.get(i).copied().unwrap_or(b' ');
            i += 1;
            c
        } else {
            b' '
        };
        if let Some(slot) = dst.get_mut(j) {
            *slot = c;
        }
        j += 1;
        if j >= 8 {
            break;
        }
    }
    dst
}

/// The checksum of an SFN stored in its LFN entries.
pub(super) fn sfn_sum(sfn: &[u8]) -> u8 {
    sfn.iter().take(11).fold(0u8, |sum, &c| {
        (sum >> 1).wrapping_add(sum << 7).wrapping_add(c)
    })
}

/// Offsets of the 13 characters in an LFN entry.
pub(super) const LFN_OFFSETS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// FatFs's `put_lfn`: LFN entry number `ord` (1-based) of `lfn`.
pub(super) fn lfn_entry(lfn: &[u16], ord: u8, sum: u8) -> [u8; 32] {
    let mut dir = [0u8; 32];
    dir[13] = sum;
    dir[11] = 0x0F;
    let mut i = (usize::from(ord) - 1) * 13;
    let mut wc: u16 = 0;
    for &off in &LFN_OFFSETS {
        if wc != 0xFFFF {
            wc = lfn.get(i).copied().unwrap_or(0);
            i += 1;
        }
        let [lo, hi] = wc.to_le_bytes();
        dir[off] = lo;
        dir[off + 1] = hi;
        if wc == 0 {
            wc = 0xFFFF;
        }
    }
    let mut ord = ord;
    if wc == 0xFFFF || lfn.get(i).is_none_or(|&c| c == 0) {
        ord |= 0x40;
    }
    dir[0] = ord;
    dir
}

/// The 13 characters of an LFN entry, up to its terminator.
pub(super) fn lfn_chars(dir: &[u8; 32]) -> Vec<u16> {
    let mut out = Vec::with_capacity(13);
    for &off in &LFN_OFFSETS {
        let wc = u16::from_le_bytes([dir[off], dir[off + 1]]);
        if wc == 0 || wc == 0xFFFF {
            break;
        }
        out.push(wc);
    }
    out
}

/// The 8.3 name of an entry as text (`NAME.EXT`, NT case flags applied).
pub(super) fn sfn_text(dir: &[u8; 32]) -> String {
    let nt = dir[12];
    let part = |bytes: &[u8], lower: bool| -> String {
        bytes
            .iter()
            .take_while(|&&c| c != b' ')
            .map(|&c| {
                let c = if c == 0x05 { 0xE5 } else { c };
                let ch = char::from(c);
                if lower { ch.to_ascii_lowercase() } else { ch }
            })
            .collect()
    };
    let body = part(&dir[..8], nt & NS_BODY != 0);
    let ext = part(&dir[8..11], nt & NS_EXT != 0);
    if ext.is_empty() {
        body
    } else {
        format!("{body}.{ext}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sfn(s: &[u8; 11]) -> [u8; 11] {
        *s
    }

    #[test]
    fn plain_83_names_use_nt_flags() {
        let n = parse("boot").unwrap();
        assert_eq!(n.sfn, sfn(b"BOOT       "));
        assert_eq!(n.flags & (NS_LFN | NS_LOSS), 0);
        assert_eq!(n.flags & (NS_BODY | NS_EXT), NS_BODY);
        let n = parse("config.txt").unwrap();
        assert_eq!(n.sfn, sfn(b"CONFIG  TXT"));
        assert_eq!(n.flags & (NS_BODY | NS_EXT), NS_BODY | NS_EXT);
        let n = parse("README.TXT").unwrap();
        assert_eq!(n.flags, 0);
    }

    #[test]
    fn mixed_case_and_long_names_need_lfn() {
        let n = parse("zImage").unwrap();
        assert_eq!(n.sfn, sfn(b"ZIMAGE     "));
        assert_eq!(n.flags, NS_LFN);
        let n = parse("u-boot.bin.tmp").unwrap();
        assert_eq!(n.sfn, sfn(b"U-BOOTBITMP"));
        assert_eq!(n.flags & NS_LOSS, NS_LOSS);
        assert_eq!(numbered(&n.sfn, &n.lfn, 1), sfn(b"U-BOOT~1TMP"));
        let n = parse("config.txt.bak").unwrap();
        assert_eq!(numbered(&n.sfn, &n.lfn, 1), sfn(b"CONFIG~1BAK"));
        let hashed = numbered(&n.sfn, &n.lfn, 12);
        assert_eq!(&hashed[..2], b"CO");
        assert!(hashed[..8].contains(&b'~'));
    }

    #[test]
    fn invalid_names_are_refused() {
        assert!(parse("").is_none());
        assert!(parse("...").is_none());
        assert!(parse("a*b").is_none());
        assert!(parse("é").is_none());
    }

    #[test]
    fn lfn_entries_round_trip() {
        let name: Vec<u16> = "config.txt.bak".encode_utf16().collect();
        let sum = sfn_sum(b"CONFIG~1BAK");
        let e2 = lfn_entry(&name, 2, sum);
        let e1 = lfn_entry(&name, 1, sum);
        assert_eq!(e2[0], 0x42);
        assert_eq!(e1[0], 0x01);
        let mut all = lfn_chars(&e1);
        all.extend(lfn_chars(&e2));
        assert_eq!(String::from_utf16(&all).unwrap(), "config.txt.bak");
    }
}
