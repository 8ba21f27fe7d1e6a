//! FatFs's name handling: a path segment becomes an 8.3 name (SFN) with NT case flags,
//! plus the long name (LFN) entries when the name is not a plain 8.3 name.
//!
//! fwup hands FatFs the path's bytes as they are (UTF-8 in practice) and FatFs reads them as
//! code page 850 characters: bytes 0x80-0xFF become CP850 characters in the long name, and
//! FatFs's upper-case table gives their short-name bytes.

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
        .any(|&b| b < b' ' || b"*:<>|\"?\x7F".contains(&b))
    {
        return None;
    }
    let mut lfn: Vec<u16> = bytes.iter().map(|&b| oem_to_unicode(b)).collect();
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
        let mut c = u8::try_from(wc).unwrap_or(b'_');
        if wc < 0x80 && (c == b' ' || (c == b'.' && si != di)) {
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
        if wc >= 0x80 {
            flags |= NS_LFN;
            c = oem_upper(unicode_to_oem(wc).unwrap_or(b'_'));
        }
        let mut out = c;
        if wc < 0x80 && b"+,;=[]".contains(&c) {
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

/// Code page 850 bytes 0x80-0xFF as Unicode (FatFs's `uc850`).
const CP850_TO_UNICODE: [u16; 128] = [
    0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7, 0x00EA, 0x00EB, 0x00E8, 0x00EF,
    0x00EE, 0x00EC, 0x00C4, 0x00C5, 0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2, 0x00FB, 0x00F9,
    0x00FF, 0x00D6, 0x00DC, 0x00F8, 0x00A3, 0x00D8, 0x00D7, 0x0192, 0x00E1, 0x00ED, 0x00F3, 0x00FA,
    0x00F1, 0x00D1, 0x00AA, 0x00BA, 0x00BF, 0x00AE, 0x00AC, 0x00BD, 0x00BC, 0x00A1, 0x00AB, 0x00BB,
    0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x00C1, 0x00C2, 0x00C0, 0x00A9, 0x2563, 0x2551, 0x2557,
    0x255D, 0x00A2, 0x00A5, 0x2510, 0x2514, 0x2534, 0x252C, 0x251C, 0x2500, 0x253C, 0x00E3, 0x00C3,
    0x255A, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256C, 0x00A4, 0x00F0, 0x00D0, 0x00CA, 0x00CB,
    0x00C8, 0x0131, 0x00CD, 0x00CE, 0x00CF, 0x2518, 0x250C, 0x2588, 0x2584, 0x00A6, 0x00CC, 0x2580,
    0x00D3, 0x00DF, 0x00D4, 0x00D2, 0x00F5, 0x00D5, 0x00B5, 0x00FE, 0x00DE, 0x00DA, 0x00DB, 0x00D9,
    0x00FD, 0x00DD, 0x00AF, 0x00B4, 0x00AD, 0x00B1, 0x2017, 0x00BE, 0x00B6, 0x00A7, 0x00F7, 0x00B8,
    0x00B0, 0x00A8, 0x00B7, 0x00B9, 0x00B3, 0x00B2, 0x25A0, 0x00A0,
];

/// FatFs's upper-case conversion of code page 850 bytes 0x80-0xFF for short names and
/// labels (`TBL_CT850`).
const CP850_UPPER: [u8; 128] = [
    0x43, 0x55, 0x45, 0x41, 0x41, 0x41, 0x41, 0x43, 0x45, 0x45, 0x45, 0x49, 0x49, 0x49, 0x41, 0x41,
    0x45, 0x92, 0x92, 0x4F, 0x4F, 0x4F, 0x55, 0x55, 0x59, 0x4F, 0x55, 0x4F, 0x9C, 0x4F, 0x9E, 0x9F,
    0x41, 0x49, 0x4F, 0x55, 0xA5, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF,
    0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0x41, 0x41, 0x41, 0xB8, 0xB9, 0xBA, 0xBB, 0xBC, 0xBD, 0xBE, 0xBF,
    0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0x41, 0x41, 0xC8, 0xC9, 0xCA, 0xCB, 0xCC, 0xCD, 0xCE, 0xCF,
    0xD1, 0xD1, 0x45, 0x45, 0x45, 0x49, 0x49, 0x49, 0x49, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0x49, 0xDF,
    0x4F, 0xE1, 0x4F, 0x4F, 0x4F, 0x4F, 0xE6, 0xE8, 0xE8, 0x55, 0x55, 0x55, 0x59, 0x59, 0xEE, 0xEF,
    0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF,
];

/// A path byte as FatFs reads it (an OEM code page 850 byte), in Unicode.
pub(super) fn oem_to_unicode(b: u8) -> u16 {
    match b.checked_sub(0x80) {
        None => u16::from(b),
        Some(i) => CP850_TO_UNICODE.get(usize::from(i)).copied().unwrap_or(0),
    }
}

/// The upper-case short-name byte of an OEM byte (FatFs's `ExCvt` for code page 850).
pub(super) fn oem_upper(b: u8) -> u8 {
    match b.checked_sub(0x80) {
        None => b.to_ascii_uppercase(),
        Some(i) => CP850_UPPER.get(usize::from(i)).copied().unwrap_or(b),
    }
}

/// The code page 850 byte of a Unicode character, if it has one.
fn unicode_to_oem(c: u16) -> Option<u8> {
    if c < 0x80 {
        return u8::try_from(c).ok();
    }
    CP850_TO_UNICODE
        .iter()
        .position(|&u| u == c)
        .and_then(|i| u8::try_from(i + 0x80).ok())
}

/// Unicode upper case of one UTF-16 unit, as FatFs's `ff_wtoupper` for the characters code
/// page 850 can hold (single-character mappings only).
pub(super) fn wtoupper(c: u16) -> u16 {
    if c < 0x80 {
        return u16::from(u8::try_from(c).unwrap_or(0).to_ascii_uppercase());
    }
    let Some(ch) = char::from_u32(u32::from(c)) else {
        return c;
    };
    let mut up = ch.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(c),
        _ => c,
    }
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
                let ch = char::from_u32(u32::from(oem_to_unicode(c))).unwrap_or('?');
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
        assert!(parse("a\u{1}").is_none());
    }

    #[test]
    fn utf8_bytes_are_read_as_code_page_850() {
        // "é" is C3 A9 in UTF-8: CP850 '├' and '®'; FatFs upper-cases them in the SFN.
        let n = parse("café.txt").unwrap();
        assert_eq!(String::from_utf16(&n.lfn).unwrap(), "caf├®.txt");
        assert_eq!(n.flags & NS_LFN, NS_LFN);
        assert_eq!(&n.sfn[8..], b"TXT");
        assert_eq!(&n.sfn[..3], b"CAF");
        assert_eq!(n.sfn[3], oem_upper(0xC3));
        assert_eq!(n.sfn[4], oem_upper(0xA9));
        assert_eq!(wtoupper(0xE9), 0xC9);
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
