//! A fixed-size input buffer with look-ahead, used by both readers.

use std::io::{self, Read};

/// Buffered input that can guarantee a minimum look-ahead (for headers) and counts the
/// bytes handed out. The buffer never grows.
#[derive(Debug)]
pub(crate) struct InBuf<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    consumed: u64,
}

impl<R: Read> InBuf<R> {
    /// A buffer of `capacity` bytes over `inner`.
    pub(crate) fn new(inner: R, capacity: usize) -> Self {
        Self {
            inner,
            buf: vec![0u8; capacity.max(64)].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            consumed: 0,
        }
    }

    /// The buffered, not yet consumed bytes.
    pub(crate) fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Mark `n` buffered bytes as consumed (`n` ≤ `available().len()`).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.consumed += n as u64;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> u64 {
        self.consumed
    }

    /// Whether the inner reader has reported the end of its input (bytes may still be buffered).
    pub(crate) fn input_ended(&self) -> bool {
        self.eof
    }

    /// Read once from the inner reader into the free tail of the buffer.
    fn read_more(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    // A misbehaving reader could claim more than it was given.
                    let n = n.min(self.buf.len() - self.end);
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Make at least `n` bytes available unless the input ends first (`n` is capped at the
    /// buffer size). Returns the number of bytes available.
    pub(crate) fn fill_to(&mut self, n: usize) -> io::Result<usize> {
        let n = n.min(self.buf.len());
        if self.end - self.start >= n {
            return Ok(self.end - self.start);
        }
        if self.buf.len() - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < n {
            if self.read_more()? == 0 {
                break;
            }
        }
        Ok(self.end - self.start)
    }

    /// Make some bytes available if none are. Returns the number available (0 at the end).
    pub(crate) fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.read_more()?;
        }
        Ok(self.end - self.start)
    }

    /// With nothing buffered, read straight into `out` (for large stored reads). Returns 0 at
    /// the end of the input.
    pub(crate) fn read_direct(&mut self, out: &mut [u8]) -> io::Result<usize> {
        debug_assert_eq!(self.start, self.end);
        if self.eof || out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.inner.read(out) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    let n = n.min(out.len());
                    self.consumed += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The buffer's capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Discard up to `n` bytes. Returns how many were discarded (fewer at the end of input).
    pub(crate) fn skip(&mut self, mut n: u64) -> io::Result<u64> {
        let wanted = n;
        while n > 0 {
            if self.fill()? == 0 {
                break;
            }
            let take = usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(self.end - self.start);
            self.consume(take);
            n -= take as u64;
        }
        Ok(wanted - n)
    }
}
