//! Where fwup's results and errors go: plain text on stdout (errors as `fwup: msg`), or
//! `--framing` packets (`[u32 BE length][2-byte type][u16 BE code][text]`).

use std::io::{self, Write};

/// Writes results, errors and diagnostics in the mode the user chose.
pub(crate) struct Output {
    framing: bool,
    stdout: io::Stdout,
}

impl Output {
    pub(crate) fn new(framing: bool) -> Self {
        Self {
            framing,
            stdout: io::stdout(),
        }
    }

    /// A successful result (`OK` packet when framing).
    pub(crate) fn result(&mut self, text: &str) -> io::Result<()> {
        if self.framing {
            self.packet(b"OK", 0, text.as_bytes())
        } else {
            let mut out = self.stdout.lock();
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    }

    /// An error: `fwup: msg` on stdout as fwup prints it, or an `ER` packet.
    pub(crate) fn error(&mut self, message: &str) -> io::Result<()> {
        if self.framing {
            self.packet(b"ER", 0, message.as_bytes())
        } else {
            let mut out = self.stdout.lock();
            writeln!(out, "fwup: {message}")?;
            out.flush()
        }
    }

    /// Whether output is framed (`--framing`).
    pub(crate) fn is_framed(&self) -> bool {
        self.framing
    }

    /// A warning or `info()` message: `fwup: msg` on stdout, or a `WN` packet.
    pub(crate) fn warning(&mut self, message: &str) -> io::Result<()> {
        if self.framing {
            self.packet(b"WN", 0, message.as_bytes())
        } else {
            let mut out = self.stdout.lock();
            writeln!(out, "fwup: {message}")?;
            out.flush()
        }
    }

    /// A progress report: a `PR` packet carrying the percentage (framing only).
    pub(crate) fn progress_packet(&mut self, percent: u8) -> io::Result<()> {
        self.packet(b"PR", u16::from(percent), b"")
    }

    /// Unformatted text on stdout (progress lines of `-n` and normal mode).
    pub(crate) fn text(&mut self, text: &str) -> io::Result<()> {
        let mut out = self.stdout.lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// Raw bytes on stdout (the exit handshake).
    pub(crate) fn text_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut out = self.stdout.lock();
        out.write_all(bytes)?;
        out.flush()
    }

    /// A diagnostic for stderr (fwup sends only its config parser's messages there).
    pub(crate) fn diagnostic(&mut self, message: &str) {
        let _ = writeln!(io::stderr().lock(), "{message}");
    }

    fn packet(&mut self, kind: &[u8; 2], code: u16, text: &[u8]) -> io::Result<()> {
        let len = u32::try_from(4 + text.len())
            .map_err(|_| io::Error::other("framed message longer than 4 GiB"))?;
        let mut out = self.stdout.lock();
        out.write_all(&len.to_be_bytes())?;
        out.write_all(kind)?;
        out.write_all(&code.to_be_bytes())?;
        out.write_all(text)?;
        out.flush()
    }
}

/// Reads fwup's framed input: packets of `[u32 BE length][bytes]`, ended by a zero-length
/// packet (or end of input), presented as one continuous stream.
pub(crate) struct FramedReader<R> {
    inner: R,
    remaining: u32,
    done: bool,
}

impl<R: io::Read> FramedReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            done: false,
        }
    }
}

impl<R: io::Read> io::Read for FramedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.remaining == 0 {
            if self.done {
                return Ok(0);
            }
            let mut len = [0u8; 4];
            match self.inner.read_exact(&mut len) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                    self.done = true;
                    return Ok(0);
                }
                Err(err) => return Err(err),
            }
            self.remaining = u32::from_be_bytes(len);
            if self.remaining == 0 {
                self.done = true;
            }
        }
        let want = buf.len().min(self.remaining as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "framed input ended inside a packet",
            ));
        }
        self.remaining -= n as u32;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn framed_input_is_unwrapped_until_the_empty_packet() {
        let mut framed = Vec::new();
        for chunk in [&b"hel"[..], b"lo", b""] {
            framed.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            framed.extend_from_slice(chunk);
        }
        framed.extend_from_slice(b"ignored after the end");
        let mut text = String::new();
        FramedReader::new(&framed[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello");
    }
}
