//! fwup's block cache, as far as it decides which bytes reach the destination and when.
//!
//! * The destination is handled in 128 KiB segments aligned on 128 KiB. A segment that
//!   becomes completely written is sent to the destination at once (fwup hands it to its
//!   writer thread); partly written segments wait in the cache.
//! * When a partly written segment leaves the cache (eviction when the cache is full, or the
//!   final flush), the bytes not written are read from the destination first and the whole
//!   segment is written back. A regular file therefore grows in whole segments: its size
//!   ends up at the end of the highest segment written (clipped at a known end of media).
//! * [`BlockCache::discard`] drops what is still cached: fwup does this on an error, before
//!   `on-error` runs, so a failure caught while the data is still cached leaves the
//!   destination untouched.
//! * [`BlockCache::flush`] writes the remaining segments least recently written first, so
//!   the last writes of a task (an A/B switch in `on-finish`) land last.
//! * Writes or reads past a known end of media fail at once with
//!   [`ApplyError::PastEndOfMedia`](crate::ApplyError::PastEndOfMedia).
//!
//! The cache is itself a [`Target`], so everything the apply functions write and read goes
//! through it and reads see earlier writes of the same apply.

use std::collections::HashMap;

use super::target::Target;
use crate::{ApplyError, Error, Result};

/// Size of a cache segment (fwup's `BLOCK_CACHE_SEGMENT_SIZE`).
pub const SEGMENT_SIZE: usize = 128 * 1024;
const SEGMENT_SIZE_U64: u64 = SEGMENT_SIZE as u64;
/// fwup's block size.
const BLOCK: usize = 512;
const BLOCKS_PER_SEGMENT: usize = SEGMENT_SIZE / BLOCK;
const MASK_WORDS: usize = BLOCKS_PER_SEGMENT / 64;

/// One bit per 512-byte block of a segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BlockMask([u64; MASK_WORDS]);

impl BlockMask {
    const FULL: BlockMask = BlockMask([u64::MAX; MASK_WORDS]);

    fn get(&self, block: usize) -> bool {
        self.0
            .get(block / 64)
            .is_some_and(|word| word & (1 << (block % 64)) != 0)
    }

    fn set_range(&mut self, first: usize, end: usize) {
        for block in first..end {
            if let Some(word) = self.0.get_mut(block / 64) {
                *word |= 1 << (block % 64);
            }
        }
    }

    fn is_full(&self) -> bool {
        *self == Self::FULL
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

#[derive(Debug)]
struct Segment {
    data: Box<[u8]>,
    /// Blocks whose bytes in `data` are current (written, or read from the destination).
    valid: BlockMask,
    /// Blocks written and not yet sent to the destination.
    dirty: BlockMask,
    /// When the segment was last written (a counter, not a clock).
    last_write: u64,
}

/// fwup's write cache in front of a [`Target`]. See the module documentation.
#[derive(Debug)]
pub struct BlockCache<T: Target> {
    inner: T,
    segments: HashMap<u64, Segment>,
    /// Segments fully trimmed: they read as zeros without touching the destination.
    trimmed: std::collections::HashSet<u64>,
    max_segments: usize,
    counter: u64,
    spare: Vec<Box<[u8]>>,
    enable_trim: bool,
}

impl<T: Target> BlockCache<T> {
    /// A cache of `size_mb` MiB (fwup's `block-cache-size-mb`, at least 1) in front of
    /// `inner`. With `enable_trim`, trims are passed on to the destination.
    pub fn new(inner: T, size_mb: u64, enable_trim: bool) -> Self {
        let max_segments = usize::try_from(size_mb.clamp(1, 1024) * 8).unwrap_or(8);
        Self {
            inner,
            segments: HashMap::new(),
            trimmed: std::collections::HashSet::new(),
            max_segments,
            counter: 0,
            spare: Vec::new(),
            enable_trim,
        }
    }

    /// The destination behind the cache.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The destination behind the cache, for writes that bypass it.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Gives up the cache, returning the destination. Unflushed data is lost.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Drops everything still cached without writing it (fwup does this on an error).
    pub fn discard(&mut self) {
        for (_, segment) in self.segments.drain() {
            self.spare.push(segment.data);
        }
        self.spare.truncate(4);
    }

    /// Writes every cached segment with unwritten changes, least recently written first.
    ///
    /// # Errors
    /// An I/O error of the destination.
    pub fn flush(&mut self) -> Result<()> {
        let mut order: Vec<(u64, u64)> = self
            .segments
            .iter()
            .filter(|(_, s)| !s.dirty.is_empty())
            .map(|(&offset, s)| (s.last_write, offset))
            .collect();
        order.sort_unstable();
        for (_, offset) in order {
            self.write_back(offset)?;
        }
        self.discard();
        self.inner.flush()
    }

    fn check_end(&self, offset: u64, len: u64) -> Result<()> {
        if let Some(size) = self.inner.size() {
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(Error::Apply(ApplyError::PastEndOfMedia {
                    offset,
                    len,
                    size,
                }));
            }
        } else if offset.checked_add(len).is_none() {
            return Err(Error::Apply(ApplyError::PastEndOfMedia {
                offset,
                len,
                size: u64::MAX,
            }));
        }
        Ok(())
    }

    /// How many bytes of the segment at `offset` exist on a destination with a known end.
    fn segment_len(&self, offset: u64) -> usize {
        match self.inner.size() {
            Some(size) => usize::try_from(size.saturating_sub(offset).min(SEGMENT_SIZE_U64))
                .unwrap_or(SEGMENT_SIZE),
            None => SEGMENT_SIZE,
        }
    }

    /// Makes every block of a cached segment valid by reading what was not written.
    fn load(&mut self, offset: u64) -> Result<()> {
        let len = self.segment_len(offset);
        let trimmed = self.trimmed.contains(&offset);
        let Some(segment) = self.segments.get_mut(&offset) else {
            return Ok(());
        };
        if segment.valid.is_full() {
            return Ok(());
        }
        let mut fresh = vec![0u8; SEGMENT_SIZE];
        if !trimmed
            && len > 0
            && let Some(head) = fresh.get_mut(..len)
        {
            self.inner.read_at(offset, head)?;
        }
        for block in 0..BLOCKS_PER_SEGMENT {
            if !segment.valid.get(block) {
                let range = block * BLOCK..(block + 1) * BLOCK;
                if let (Some(dst), Some(src)) =
                    (segment.data.get_mut(range.clone()), fresh.get(range))
                {
                    dst.copy_from_slice(src);
                }
            }
        }
        segment.valid = BlockMask::FULL;
        Ok(())
    }

    /// Sends a cached segment to the destination (completing it first) and forgets it.
    fn write_back(&mut self, offset: u64) -> Result<()> {
        self.load(offset)?;
        let len = self.segment_len(offset);
        if let Some(segment) = self.segments.remove(&offset) {
            if !segment.dirty.is_empty() {
                if let Some(bytes) = segment.data.get(..len) {
                    self.inner.write_at(offset, bytes)?;
                }
                self.trimmed.remove(&offset);
            }
            self.spare.push(segment.data);
        }
        Ok(())
    }

    /// The cached segment at `offset`, created empty (nothing valid) when absent. Evicts the
    /// least recently written segment when the cache is full.
    fn segment(&mut self, offset: u64) -> Result<&mut Segment> {
        if !self.segments.contains_key(&offset) {
            if self.segments.len() >= self.max_segments {
                let oldest = self
                    .segments
                    .iter()
                    .min_by_key(|(_, s)| s.last_write)
                    .map(|(&o, _)| o);
                if let Some(oldest) = oldest {
                    self.write_back(oldest)?;
                }
            }
            let data = self
                .spare
                .pop()
                .unwrap_or_else(|| vec![0u8; SEGMENT_SIZE].into_boxed_slice());
            self.segments.insert(
                offset,
                Segment {
                    data,
                    valid: BlockMask::default(),
                    dirty: BlockMask::default(),
                    last_write: 0,
                },
            );
        }
        self.segments
            .get_mut(&offset)
            .ok_or(Error::Apply(ApplyError::PastEndOfMedia {
                offset,
                len: 0,
                size: 0,
            }))
    }
}

/// The part of an access that falls into one cache segment.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// Bytes of the access before this part.
    done: usize,
    /// Byte offset of this part on the destination.
    pos: u64,
    /// Offset of the segment it falls in.
    seg_offset: u64,
    /// Where it starts inside that segment.
    within: usize,
    /// Its length.
    n: usize,
}

/// Cuts an access of `len` bytes at `offset` at segment boundaries.
fn spans(offset: u64, len: usize) -> impl Iterator<Item = Span> {
    let mut done = 0usize;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let pos = offset + done as u64;
        let seg_offset = pos - pos % SEGMENT_SIZE_U64;
        // Less than SEGMENT_SIZE, so it fits.
        let within = (pos - seg_offset) as usize;
        let n = (SEGMENT_SIZE - within).min(len - done);
        let span = Span {
            done,
            pos,
            seg_offset,
            within,
            n,
        };
        done += n;
        Some(span)
    })
}

impl<T: Target> Target for BlockCache<T> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_end(offset, buf.len() as u64)?;
        for span in spans(offset, buf.len()) {
            let Span {
                done,
                pos,
                seg_offset,
                within,
                n,
            } = span;
            let out = buf.get_mut(done..done + n).unwrap_or_default();
            if self.segments.contains_key(&seg_offset) {
                self.load(seg_offset)?;
                if let Some(src) = self
                    .segments
                    .get(&seg_offset)
                    .and_then(|s| s.data.get(within..within + n))
                {
                    out.copy_from_slice(src);
                }
            } else if self.trimmed.contains(&seg_offset) {
                out.fill(0);
            } else {
                self.inner.read_at(pos, out)?;
            }
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_end(offset, data.len() as u64)?;
        for span in spans(offset, data.len()) {
            let Span {
                done,
                seg_offset,
                within,
                n,
                ..
            } = span;
            let src = data.get(done..done + n).unwrap_or_default();
            // A whole segment not in the cache goes straight to the destination, as fwup's
            // writer thread would take it the moment it filled.
            if n == SEGMENT_SIZE && !self.segments.contains_key(&seg_offset) {
                let len = self.segment_len(seg_offset);
                self.inner
                    .write_at(seg_offset, src.get(..len).unwrap_or(src))?;
                self.trimmed.remove(&seg_offset);
                continue;
            }
            let first = within / BLOCK;
            let end = (within + n).div_ceil(BLOCK);
            let whole_blocks = within.is_multiple_of(BLOCK) && (within + n).is_multiple_of(BLOCK);
            let needs_load = !whole_blocks && {
                let segment = self.segment(seg_offset)?;
                !(segment.valid.get(first) && segment.valid.get(end - 1))
            };
            if needs_load {
                self.load(seg_offset)?;
            }
            self.counter += 1;
            let counter = self.counter;
            let segment = self.segment(seg_offset)?;
            if let Some(dst) = segment.data.get_mut(within..within + n) {
                dst.copy_from_slice(src);
            }
            segment.valid.set_range(first, end);
            segment.dirty.set_range(first, end);
            segment.last_write = counter;
            if segment.dirty.is_full() {
                self.write_back(seg_offset)?;
            }
        }
        Ok(())
    }

    fn size(&self) -> Option<u64> {
        self.inner.size()
    }

    fn end_hint(&self) -> Option<u64> {
        self.inner.end_hint()
    }

    fn flush(&mut self) -> Result<()> {
        BlockCache::flush(self)
    }

    fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        let end = offset.saturating_add(len);
        if let Some(size) = self.inner.size()
            && end > size
        {
            return Err(Error::Apply(ApplyError::PastEndOfMedia {
                offset,
                len,
                size,
            }));
        }
        let mut pos = offset;
        while pos < end {
            let seg_offset = pos - pos % SEGMENT_SIZE_U64;
            let seg_end = seg_offset.saturating_add(SEGMENT_SIZE_U64);
            let piece_end = end.min(seg_end);
            if pos == seg_offset && piece_end == seg_end {
                if let Some(segment) = self.segments.remove(&seg_offset) {
                    self.spare.push(segment.data);
                }
                self.trimmed.insert(seg_offset);
            } else {
                // Part of a segment: it reads as zeros from now on.
                let zeros = vec![0u8; (piece_end - pos) as usize];
                self.write_at(pos, &zeros)?;
            }
            pos = piece_end;
        }
        // Like fwup, discard on the device only the whole segments inside the range: the
        // partial ones at its ends were zeroed above.
        let first = offset
            .checked_next_multiple_of(SEGMENT_SIZE_U64)
            .unwrap_or(u64::MAX);
        let last = end - end % SEGMENT_SIZE_U64;
        if self.enable_trim && last > first {
            self.inner.trim(first, last - first)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::MemoryTarget;

    #[test]
    fn a_partial_segment_grows_the_file_to_the_segment_end() {
        let mut cache = BlockCache::new(MemoryTarget::new(), 8, false);
        cache.write_at(131_072, &[1u8; 65536]).unwrap();
        assert!(cache.inner().as_bytes().is_empty(), "still cached");
        cache.flush().unwrap();
        assert_eq!(cache.inner().as_bytes().len(), 262_144);
    }

    #[test]
    fn discard_drops_partial_segments_but_full_ones_are_written() {
        let mut cache = BlockCache::new(MemoryTarget::new(), 8, false);
        cache.write_at(0, &vec![7u8; SEGMENT_SIZE + 512]).unwrap();
        cache.discard();
        assert_eq!(cache.inner().as_bytes().len(), SEGMENT_SIZE);
    }

    #[test]
    fn reads_see_cached_writes_and_existing_bytes() {
        let mut cache = BlockCache::new(MemoryTarget::from_bytes(vec![9u8; 4096]), 8, false);
        cache.write_at(10, b"abc").unwrap();
        let mut buf = [0u8; 16];
        cache.read_at(8, &mut buf).unwrap();
        assert_eq!(&buf[..6], &[9, 9, b'a', b'b', b'c', 9]);
        cache.flush().unwrap();
        assert_eq!(cache.inner().as_bytes().len(), SEGMENT_SIZE);
        assert_eq!(
            &cache.inner().as_bytes()[8..14],
            &[9, 9, b'a', b'b', b'c', 9]
        );
    }

    #[test]
    fn a_known_end_is_enforced_and_clips_segments() {
        let mut cache = BlockCache::new(MemoryTarget::with_size(51_200).unwrap(), 8, false);
        let err = cache.write_at(131_072, &[1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "read/write failed at offset 131072 since past end of media (51200)."
        );
        cache.write_at(0, &[1u8; 512]).unwrap();
        cache.flush().unwrap();
        assert_eq!(cache.inner().as_bytes().len(), 51_200);
    }

    #[test]
    fn trimmed_ranges_read_as_zeros() {
        let mut cache = BlockCache::new(MemoryTarget::from_bytes(vec![5u8; 400_000]), 8, false);
        // One whole segment and the head of the next.
        cache.trim(131_072, 131_072 + 1024).unwrap();
        let mut buf = vec![1u8; 2048];
        cache.read_at(131_072 * 2, &mut buf).unwrap();
        assert!(buf[..1024].iter().all(|b| *b == 0));
        assert!(buf[1024..].iter().all(|b| *b == 5));
        cache.read_at(131_072 + 7, &mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 0));
        // Writing into a trimmed segment completes it with zeros, not the old bytes.
        cache.write_at(131_072, b"x").unwrap();
        cache.flush().unwrap();
        let bytes = cache.inner().as_bytes();
        assert_eq!(bytes[131_072], b'x');
        assert!(bytes[131_073..262_144 + 1024].iter().all(|b| *b == 0));
        assert_eq!(bytes[262_144 + 1024], 5);
    }

    #[test]
    fn eviction_keeps_every_write() {
        let mut cache = BlockCache::new(MemoryTarget::new(), 1, false);
        for i in 0..20u64 {
            cache
                .write_at(i * SEGMENT_SIZE_U64 + 512, &[i as u8 + 1; 512])
                .unwrap();
        }
        cache.flush().unwrap();
        for i in 0..20u64 {
            let at = (i * SEGMENT_SIZE_U64 + 512) as usize;
            assert_eq!(cache.inner().as_bytes()[at], i as u8 + 1);
        }
    }
}
