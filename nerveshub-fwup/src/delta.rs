//! VCDIFF (RFC 3284) decoding of the delta resources fwup applies: patches as
//! `xdelta3 -e -A -S` writes them (no application header, no secondary compression), with
//! xdelta3's Adler-32 checksum of each target window.
//!
//! The decoder is a parser of untrusted input: every length is bounded before anything is
//! allocated, every address is checked against the window it points into, and nothing
//! panics. Memory is one target window (at most [`MAX_WINDOW`], xdelta3's hard limit) and
//! its delta encoding; source bytes are read on demand through a callback, so the source
//! (a partition of the destination, or a file in a FAT filesystem) is never held whole.
//!
//! Our own decoder rather than a crate: the maintained Rust VCDIFF crates either bind C
//! xdelta3 (C in the device's update path, against the workspace's all-Rust rule) or do
//! not implement xdelta3's Adler-32 window extension that fwup's patches carry; decoding
//! is a few hundred lines of a fully specified format, fuzzed here (`fuzz/fuzz_targets/delta.rs`).

use crate::{DeltaError, Error, Result};

/// The largest target window accepted: xdelta3's `XD3_HARDMAXWINSIZE` (16 MiB). xdelta3
/// itself never writes larger windows (its default is 8 MiB).
pub const MAX_WINDOW: usize = 1 << 24;

/// The largest delta encoding of one window accepted: twice the largest window, which no
/// encoder that chooses COPY over ADD only when it is shorter can exceed.
const MAX_ENCODING: u64 = 2 * MAX_WINDOW as u64 + 4096;

const MAGIC: [u8; 4] = [0xd6, 0xc3, 0xc4, 0x00];

// Hdr_Indicator bits.
const VCD_DECOMPRESS: u8 = 0x01;
const VCD_CODETABLE: u8 = 0x02;
const VCD_APPHEADER: u8 = 0x04;

// Win_Indicator bits (VCD_ADLER32 is xdelta3's extension).
const VCD_SOURCE: u8 = 0x01;
const VCD_TARGET: u8 = 0x02;
const VCD_ADLER32: u8 = 0x04;

/// Application headers are skipped; this bounds what a patch can make us skip.
const MAX_APP_HEADER: u64 = 64 * 1024;

fn bad(message: impl Into<String>) -> Error {
    Error::Delta(DeltaError::Malformed(message.into()))
}

/// Reads patch bytes: `Ok(0)` at the end of the patch.
pub(crate) type PatchRead<'a> = dyn FnMut(&mut [u8]) -> Result<usize> + 'a;

/// Fills a buffer with source bytes at an offset into the source.
pub(crate) type SourceRead<'a> = dyn FnMut(u64, &mut [u8]) -> Result<()> + 'a;

/// The patch input with a small look-ahead buffer, so headers can be parsed byte by byte.
#[derive(Debug)]
struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    consumed: u64,
}

impl Input {
    fn new() -> Self {
        Self {
            buf: vec![0u8; 64 * 1024],
            start: 0,
            end: 0,
            eof: false,
            consumed: 0,
        }
    }

    /// Makes a byte available unless the patch is over; `Ok(false)` at its end.
    fn fill(&mut self, patch: &mut PatchRead<'_>) -> Result<bool> {
        if self.start < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        self.start = 0;
        self.end = 0;
        let n = patch(&mut self.buf)?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.end = n.min(self.buf.len());
        Ok(true)
    }

    fn byte(&mut self, patch: &mut PatchRead<'_>, what: &str) -> Result<u8> {
        if !self.fill(patch)? {
            return Err(bad(format!("patch ends inside the {what}")));
        }
        let b = self.buf.get(self.start).copied().unwrap_or_default();
        self.start += 1;
        self.consumed += 1;
        Ok(b)
    }

    /// A VCDIFF integer: base-128 digits, most significant first, the high bit on every
    /// byte but the last. At most 64 bits.
    fn varint(&mut self, patch: &mut PatchRead<'_>, what: &str) -> Result<u64> {
        let mut value = 0u64;
        for _ in 0..10 {
            let b = self.byte(patch, what)?;
            if value > (u64::MAX >> 7) {
                return Err(bad(format!("{what} overflows 64 bits")));
            }
            value = (value << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad(format!("{what} is longer than 10 bytes")))
    }

    /// Exactly `len` bytes into `out` (cleared first).
    fn exact(
        &mut self,
        patch: &mut PatchRead<'_>,
        out: &mut Vec<u8>,
        len: usize,
        what: &str,
    ) -> Result<()> {
        out.clear();
        out.reserve(len);
        while out.len() < len {
            if !self.fill(patch)? {
                return Err(bad(format!("patch ends inside the {what}")));
            }
            let take = (len - out.len()).min(self.end - self.start);
            out.extend_from_slice(
                self.buf
                    .get(self.start..self.start + take)
                    .unwrap_or_default(),
            );
            self.start += take;
            self.consumed += take as u64;
        }
        Ok(())
    }
}

/// One instruction of a code table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    Noop,
    Add(u8),
    Run(u8),
    /// Size, then the address mode.
    Copy(u8, u8),
}

/// RFC 3284 §5.6's default code table (near cache 4, same cache 3).
fn default_code_table() -> [(Inst, Inst); 256] {
    let mut table = [(Inst::Noop, Inst::Noop); 256];
    table[0] = (Inst::Run(0), Inst::Noop);
    let mut i = 1;
    for size in 0..=17u8 {
        table[i] = (Inst::Add(size), Inst::Noop);
        i += 1;
    }
    for mode in 0..=8u8 {
        table[i] = (Inst::Copy(0, mode), Inst::Noop);
        i += 1;
        for size in 4..=18u8 {
            table[i] = (Inst::Copy(size, mode), Inst::Noop);
            i += 1;
        }
    }
    for mode in 0..=5u8 {
        for add in 1..=4u8 {
            for copy in 4..=6u8 {
                table[i] = (Inst::Add(add), Inst::Copy(copy, mode));
                i += 1;
            }
        }
    }
    for mode in 6..=8u8 {
        for add in 1..=4u8 {
            table[i] = (Inst::Add(add), Inst::Copy(4, mode));
            i += 1;
        }
    }
    for mode in 0..=8u8 {
        table[i] = (Inst::Copy(4, mode), Inst::Add(1));
        i += 1;
    }
    table
}

const NEAR: usize = 4;
const SAME: usize = 3;

/// RFC 3284's address caches, reset at every window.
struct AddressCache {
    near: [u64; NEAR],
    next: usize,
    same: [u64; SAME * 256],
}

impl AddressCache {
    fn new() -> Self {
        Self {
            near: [0; NEAR],
            next: 0,
            same: [0; SAME * 256],
        }
    }

    fn update(&mut self, addr: u64) {
        if let Some(slot) = self.near.get_mut(self.next) {
            *slot = addr;
        }
        self.next = (self.next + 1) % NEAR;
        let i = usize::try_from(addr % (SAME as u64 * 256)).unwrap_or(0);
        if let Some(slot) = self.same.get_mut(i) {
            *slot = addr;
        }
    }
}

/// Reads the bytes of a section in order.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    name: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], name: &'static str) -> Self {
        Self {
            bytes,
            pos: 0,
            name,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn byte(&mut self) -> Result<u8> {
        let b = self
            .bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| bad(format!("{} section too short", self.name)))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| bad(format!("{} section too short", self.name)))?;
        let out = self.bytes.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for _ in 0..10 {
            let b = self.byte()?;
            if value > (u64::MAX >> 7) {
                return Err(bad(format!(
                    "integer in the {} section overflows",
                    self.name
                )));
            }
            value = (value << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad(format!(
            "integer in the {} section too long",
            self.name
        )))
    }
}

/// Adler-32 (RFC 1950), as xdelta3 checks each target window.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 is the most bytes before the sums can overflow 32 bits.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Where a window's COPY instructions may read: its source segment.
#[derive(Debug, Clone, Copy)]
struct Segment {
    len: u64,
    pos: u64,
}

/// A streaming VCDIFF decoder: [`DeltaDecoder::read`] hands out the target bytes in order,
/// decoding one window at a time.
#[derive(Debug)]
pub(crate) struct DeltaDecoder {
    input: Input,
    header_done: bool,
    finished: bool,
    source_len: u64,
    window: Vec<u8>,
    out_pos: usize,
    data: Vec<u8>,
    inst: Vec<u8>,
    addr: Vec<u8>,
}

impl DeltaDecoder {
    /// A decoder whose COPY instructions may read `source_len` bytes of source.
    pub(crate) fn new(source_len: u64) -> Self {
        Self {
            input: Input::new(),
            header_done: false,
            finished: false,
            source_len,
            window: Vec::new(),
            out_pos: 0,
            data: Vec::new(),
            inst: Vec::new(),
            addr: Vec::new(),
        }
    }

    #[cfg(feature = "apply")]
    /// Sets how many source bytes COPY instructions may read (known once the source is
    /// open).
    pub(crate) fn set_source_len(&mut self, len: u64) {
        self.source_len = len;
    }

    /// Reads and checks the file header: magic, and only what xdelta3 `-S` writes (no
    /// secondary compressor, no custom code table; an application header is skipped).
    pub(crate) fn read_header(&mut self, patch: &mut PatchRead<'_>) -> Result<()> {
        if self.header_done {
            return Ok(());
        }
        for expected in MAGIC {
            let b = self.input.byte(patch, "VCDIFF header")?;
            if b != expected {
                return Err(bad("not a VCDIFF patch (bad magic)"));
            }
        }
        let indicator = self.input.byte(patch, "VCDIFF header")?;
        if indicator & !(VCD_DECOMPRESS | VCD_CODETABLE | VCD_APPHEADER) != 0 {
            return Err(bad(format!(
                "unknown header indicator bits 0x{indicator:02x}"
            )));
        }
        if indicator & VCD_DECOMPRESS != 0 {
            return Err(bad(
                "secondary compression is not supported (create patches with xdelta3 -S)",
            ));
        }
        if indicator & VCD_CODETABLE != 0 {
            return Err(bad("application-defined code tables are not supported"));
        }
        if indicator & VCD_APPHEADER != 0 {
            let len = self.input.varint(patch, "application header length")?;
            if len > MAX_APP_HEADER {
                return Err(bad(format!("application header of {len} bytes")));
            }
            for _ in 0..len {
                self.input.byte(patch, "application header")?;
            }
        }
        self.header_done = true;
        Ok(())
    }

    /// The next target bytes into `out`; `Ok(0)` once the patch is over.
    pub(crate) fn read(
        &mut self,
        out: &mut [u8],
        patch: &mut PatchRead<'_>,
        source: &mut SourceRead<'_>,
    ) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        self.read_header(patch)?;
        while self.out_pos >= self.window.len() {
            if self.finished || !self.decode_window(patch, source)? {
                self.finished = true;
                return Ok(0);
            }
        }
        let avail = self.window.get(self.out_pos..).unwrap_or_default();
        let n = avail.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(avail.get(..n).unwrap_or_default());
        self.out_pos += n;
        Ok(n)
    }

    /// Decodes the next window into `self.window`; `Ok(false)` at the end of the patch.
    fn decode_window(
        &mut self,
        patch: &mut PatchRead<'_>,
        source: &mut SourceRead<'_>,
    ) -> Result<bool> {
        if !self.input.fill(patch)? {
            return Ok(false);
        }
        let indicator = self.input.byte(patch, "window header")?;
        if indicator & !(VCD_SOURCE | VCD_TARGET | VCD_ADLER32) != 0 {
            return Err(bad(format!(
                "unknown window indicator bits 0x{indicator:02x}"
            )));
        }
        if indicator & VCD_TARGET != 0 {
            return Err(bad("target-window (VCD_TARGET) copies are not supported"));
        }
        let segment = if indicator & VCD_SOURCE != 0 {
            let len = self.input.varint(patch, "source segment length")?;
            let pos = self.input.varint(patch, "source segment position")?;
            let end = len.saturating_add(pos);
            if end > self.source_len {
                return Err(bad(format!(
                    "xdelta tried to load outside of allowed byte range (0-{}): offset: {pos}, count: {len}",
                    self.source_len
                )));
            }
            Segment { len, pos }
        } else {
            Segment { len: 0, pos: 0 }
        };
        let encoding_len = self.input.varint(patch, "delta encoding length")?;
        if encoding_len > MAX_ENCODING {
            return Err(bad(format!(
                "delta encoding of {encoding_len} bytes is larger than allowed"
            )));
        }
        let start = self.input.consumed;
        let target_len = self.input.varint(patch, "target window length")?;
        let target_len = usize::try_from(target_len)
            .ok()
            .filter(|len| *len <= MAX_WINDOW)
            .ok_or_else(|| {
                bad(format!(
                    "target window of {target_len} bytes is larger than {MAX_WINDOW}"
                ))
            })?;
        let delta_indicator = self.input.byte(patch, "delta indicator")?;
        if delta_indicator != 0 {
            return Err(bad(
                "compressed sections are not supported (create patches with xdelta3 -S)",
            ));
        }
        let data_len = self.input.varint(patch, "data section length")?;
        let inst_len = self.input.varint(patch, "instructions section length")?;
        let addr_len = self.input.varint(patch, "addresses section length")?;
        let checksum = if indicator & VCD_ADLER32 != 0 {
            let mut c = 0u32;
            for _ in 0..4 {
                c = (c << 8) | u32::from(self.input.byte(patch, "window checksum")?);
            }
            Some(c)
        } else {
            None
        };
        let header_len = self.input.consumed - start;
        let sections = data_len
            .checked_add(inst_len)
            .and_then(|s| s.checked_add(addr_len))
            .and_then(|s| s.checked_add(header_len));
        if sections != Some(encoding_len) {
            return Err(bad(format!(
                "delta encoding length {encoding_len} does not match its sections"
            )));
        }
        // Each fits: their sum is at most MAX_ENCODING.
        let as_len = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let mut data = std::mem::take(&mut self.data);
        let mut inst = std::mem::take(&mut self.inst);
        let mut addr = std::mem::take(&mut self.addr);
        self.input
            .exact(patch, &mut data, as_len(data_len), "data section")?;
        self.input
            .exact(patch, &mut inst, as_len(inst_len), "instructions section")?;
        self.input
            .exact(patch, &mut addr, as_len(addr_len), "addresses section")?;

        let mut window = std::mem::take(&mut self.window);
        let result = decode_instructions(
            &data,
            &inst,
            &addr,
            segment,
            target_len,
            &mut window,
            source,
        );
        self.data = data;
        self.inst = inst;
        self.addr = addr;
        result?;
        if let Some(expected) = checksum {
            let actual = adler32(&window);
            if actual != expected {
                self.window = window;
                return Err(bad(format!(
                    "target window checksum mismatch: 0x{actual:08x} != 0x{expected:08x}"
                )));
            }
        }
        self.window = window;
        self.out_pos = 0;
        Ok(true)
    }
}

/// Runs a window's instructions, producing exactly `target_len` bytes into `window`.
fn decode_instructions(
    data: &[u8],
    inst: &[u8],
    addr: &[u8],
    segment: Segment,
    target_len: usize,
    window: &mut Vec<u8>,
    source: &mut SourceRead<'_>,
) -> Result<()> {
    let table = default_code_table();
    let mut data = Cursor::new(data, "data");
    let mut insts = Cursor::new(inst, "instructions");
    let mut addrs = Cursor::new(addr, "addresses");
    let mut cache = AddressCache::new();
    window.clear();
    window.reserve(target_len);
    while !insts.done() {
        let code = insts.byte()?;
        let (first, second) = table
            .get(usize::from(code))
            .copied()
            .unwrap_or((Inst::Noop, Inst::Noop));
        for inst in [first, second] {
            let size_of = |size: u8, insts: &mut Cursor<'_>| -> Result<usize> {
                let size = if size == 0 {
                    insts.varint()?
                } else {
                    u64::from(size)
                };
                let room = (target_len - window.len()) as u64;
                if size > room {
                    return Err(bad("instructions produce more than the target window"));
                }
                Ok(usize::try_from(size).unwrap_or(0))
            };
            match inst {
                Inst::Noop => {}
                Inst::Add(size) => {
                    let n = size_of(size, &mut insts)?;
                    window.extend_from_slice(data.take(n)?);
                }
                Inst::Run(size) => {
                    let n = size_of(size, &mut insts)?;
                    let byte = data.byte()?;
                    window.resize(window.len() + n, byte);
                }
                Inst::Copy(size, mode) => {
                    let n = size_of(size, &mut insts)?;
                    // `here`: the address of the current position in source + target.
                    let here = segment.len + window.len() as u64;
                    let a = match mode {
                        0 => addrs.varint()?,
                        1 => here
                            .checked_sub(addrs.varint()?)
                            .ok_or_else(|| bad("COPY address before the window"))?,
                        m if usize::from(m) < 2 + NEAR => cache
                            .near
                            .get(usize::from(m) - 2)
                            .copied()
                            .unwrap_or(0)
                            .checked_add(addrs.varint()?)
                            .ok_or_else(|| bad("COPY address overflows"))?,
                        m => {
                            let b = usize::from(addrs.byte()?);
                            let i = (usize::from(m) - 2 - NEAR) * 256 + b;
                            cache.same.get(i).copied().unwrap_or(0)
                        }
                    };
                    cache.update(a);
                    if a >= here {
                        return Err(bad("COPY address at or after the current position"));
                    }
                    copy(window, a, n, segment, source)?;
                }
            }
        }
    }
    if window.len() != target_len {
        return Err(bad(format!(
            "instructions produce {} bytes, the window declares {target_len}",
            window.len()
        )));
    }
    if !data.done() || !addrs.done() {
        return Err(bad("unused bytes in the data or addresses section"));
    }
    Ok(())
}

/// A COPY of `n` bytes from address `a` of source segment + target window.
fn copy(
    window: &mut Vec<u8>,
    a: u64,
    n: usize,
    segment: Segment,
    source: &mut SourceRead<'_>,
) -> Result<()> {
    let mut a = a;
    let mut left = n;
    if a < segment.len {
        // The part in the source segment, read straight into the window.
        let from_source = usize::try_from((segment.len - a).min(left as u64)).unwrap_or(left);
        let start = window.len();
        window.resize(start + from_source, 0);
        source(segment.pos + a, window.get_mut(start..).unwrap_or_default())?;
        left -= from_source;
        a += from_source as u64;
        if left == 0 {
            return Ok(());
        }
    }
    // The rest from the target window, byte by byte: it may overlap what it produces.
    let start = usize::try_from(a - segment.len).unwrap_or(usize::MAX);
    for t in start..start.saturating_add(left) {
        let b = window
            .get(t)
            .copied()
            .ok_or_else(|| bad("COPY from beyond the decoded target"))?;
        window.push(b);
    }
    Ok(())
}

/// Decodes a whole patch against an in-memory source, bounded to `max_output` bytes: for
/// fuzzing and tests.
///
/// # Errors
/// [`DeltaError::Malformed`](crate::DeltaError::Malformed) for any malformed patch, or output past `max_output`.
#[doc(hidden)]
pub fn fuzz_delta(patch: &[u8], source: &[u8], max_output: u64) -> Result<Vec<u8>> {
    let mut rest = patch;
    let mut read_patch = |buf: &mut [u8]| -> Result<usize> {
        let n = rest.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(rest.get(..n).unwrap_or_default());
        rest = rest.get(n..).unwrap_or_default();
        Ok(n)
    };
    let mut read_source = |offset: u64, buf: &mut [u8]| -> Result<()> {
        let start = usize::try_from(offset).map_err(|_| bad("source offset"))?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| source.get(start..end))
            .ok_or_else(|| bad("source read out of range"))?;
        buf.copy_from_slice(bytes);
        Ok(())
    };
    let mut decoder = DeltaDecoder::new(source.len() as u64);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = decoder.read(&mut buf, &mut read_patch, &mut read_source)?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() as u64 + n as u64 > max_output {
            return Err(bad("output larger than allowed"));
        }
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_table_matches_rfc_3284() {
        let t = default_code_table();
        assert_eq!(t[0], (Inst::Run(0), Inst::Noop));
        assert_eq!(t[1], (Inst::Add(0), Inst::Noop));
        assert_eq!(t[18], (Inst::Add(17), Inst::Noop));
        assert_eq!(t[19], (Inst::Copy(0, 0), Inst::Noop));
        assert_eq!(t[20], (Inst::Copy(4, 0), Inst::Noop));
        assert_eq!(t[162], (Inst::Copy(18, 8), Inst::Noop));
        assert_eq!(t[163], (Inst::Add(1), Inst::Copy(4, 0)));
        assert_eq!(t[234], (Inst::Add(4), Inst::Copy(6, 5)));
        assert_eq!(t[235], (Inst::Add(1), Inst::Copy(4, 6)));
        assert_eq!(t[246], (Inst::Add(4), Inst::Copy(4, 8)));
        assert_eq!(t[247], (Inst::Copy(4, 0), Inst::Add(1)));
        assert_eq!(t[255], (Inst::Copy(4, 8), Inst::Add(1)));
    }

    #[test]
    fn adler32_of_known_text() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
    }

    /// A hand-made patch: ADD "abc", COPY 4 from source at 0, RUN 3 x 'z', one window with
    /// a checksum.
    fn hand_patch(checksum: Option<u32>) -> Vec<u8> {
        let data = b"abcz".to_vec();
        // ADD 3 (code 4), COPY size 4 mode 0 (code 20), RUN size 0 + varint 3 (code 0).
        let inst = vec![4, 20, 0, 3];
        let addr = vec![0];
        let mut enc = vec![
            10u8,
            0,
            data.len() as u8,
            inst.len() as u8,
            addr.len() as u8,
        ];
        if let Some(c) = checksum {
            enc.extend_from_slice(&c.to_be_bytes());
        }
        enc.extend_from_slice(&data);
        enc.extend_from_slice(&inst);
        enc.extend_from_slice(&addr);
        let mut p = MAGIC.to_vec();
        p.push(0);
        p.push(VCD_SOURCE | if checksum.is_some() { VCD_ADLER32 } else { 0 });
        p.extend_from_slice(&[8, 2]); // segment of 8 bytes at source offset 2
        p.push(enc.len() as u8);
        p.extend_from_slice(&enc);
        p
    }

    #[test]
    fn decodes_add_copy_run_with_checksum() {
        let source = b"..SOURCE..";
        let want = b"abcSOURzzz";
        let out = fuzz_delta(&hand_patch(None), source, 1 << 20).unwrap();
        assert_eq!(out, want);
        let out = fuzz_delta(&hand_patch(Some(adler32(want))), source, 1 << 20).unwrap();
        assert_eq!(out, want);
        let err = fuzz_delta(&hand_patch(Some(1)), source, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn refuses_source_segments_outside_the_source() {
        let err = fuzz_delta(&hand_patch(None), b"short", 1 << 20).unwrap_err();
        assert!(
            err.to_string().contains("outside of allowed byte range"),
            "{err}"
        );
    }

    #[test]
    fn truncated_and_garbage_patches_fail_cleanly() {
        let patch = hand_patch(None);
        for cut in 0..patch.len() {
            // A header and no window is an empty target; any other cut is an error.
            let result = fuzz_delta(&patch[..cut], b"..SOURCE..", 1 << 20);
            if cut == 5 {
                assert_eq!(result.unwrap(), b"");
            } else {
                assert!(result.is_err(), "cut {cut}");
            }
        }
        assert!(fuzz_delta(b"PK\x03\x04", b"", 1 << 20).is_err());
    }
}
