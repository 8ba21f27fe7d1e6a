//! The connection's read side as hyper sees it: every byte passes the head [`Scanner`] first
//! (see `heads.rs` for why), and a refused head closes the connection without resetting it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::heads::{Event, Refusal, Scanner};

/// Bytes read per scanned read (request heads, chunked framing).
const SCAN_READ: usize = 8 * 1024;
/// What a refused client may still send that is read and dropped: closing a socket with
/// unread input resets it, and the reset can destroy the JSON answer before the client reads
/// it (a client that sent a 600 KiB header section is still sending when refused).
const DRAIN_BUDGET: usize = 4 * 1024 * 1024;
/// How long a refused connection waits, after sending its answer and its end, for the client
/// to close too.
const LINGER: Duration = Duration::from_secs(2);

/// What the connection's service and its read side tell each other: the service numbers the
/// requests hyper hands it, in the order of the heads the scanner released.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    inner: Mutex<SharedState>,
}

#[derive(Debug, Default)]
struct SharedState {
    next_request: u64,
    refusal: Option<(u64, Refusal)>,
    /// The latest answered request: its number and whether it switched protocols.
    answered: Option<(u64, bool)>,
    /// The read side waiting for an upgrade head's answer.
    waiting: Option<Waker>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers the next request hyper hands the service; a refused head's stand-in gets its
    /// refusal back.
    pub(crate) fn next_request(&self) -> (u64, Option<Refusal>) {
        let mut state = self.state();
        let index = state.next_request;
        state.next_request += 1;
        let refusal = state
            .refusal
            .filter(|(refused, _)| *refused == index)
            .map(|(_, refusal)| refusal);
        (index, refusal)
    }

    /// Records the answer to request `index`.
    pub(crate) fn answered(&self, index: u64, upgraded: bool) {
        let mut state = self.state();
        state.answered = Some((index, upgraded));
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
    }

    fn refused(&self, index: u64, refusal: Refusal) {
        self.state().refusal = Some((index, refusal));
    }

    /// Whether request `index` switched protocols, or `None` (and a wake-up later) while it
    /// is unanswered.
    fn answer_to(&self, index: u64, waker: &Waker) -> Option<bool> {
        let mut state = self.state();
        match state.answered {
            Some((answered, upgraded)) if answered == index => Some(upgraded),
            _ => {
                state.waiting = Some(waker.clone());
                None
            }
        }
    }
}

/// The connection below hyper, scanned on the way in.
pub(crate) struct Guarded<I> {
    io: I,
    scanner: Scanner,
    shared: Arc<Shared>,
    /// Scanned bytes hyper has not taken yet.
    out: Vec<u8>,
    out_at: usize,
    /// Input read past an upgrade head, held until its answer.
    held: Vec<u8>,
    drained: usize,
    write_shut: bool,
    linger: Option<Pin<Box<Sleep>>>,
}

impl<I> Guarded<I> {
    pub(crate) fn new(io: I, shared: Arc<Shared>) -> Self {
        Guarded {
            io,
            scanner: Scanner::default(),
            shared,
            out: Vec::new(),
            out_at: 0,
            held: Vec::new(),
            drained: 0,
            write_shut: false,
            linger: None,
        }
    }

    fn feed(&mut self, input: &[u8]) {
        match self.scanner.feed(input, &mut self.out) {
            Event::None => {}
            Event::Refused { index, refusal } => self.shared.refused(index, refusal),
            Event::AwaitUpgrade { consumed, .. } => {
                self.held.extend_from_slice(&input[consumed..]);
            }
        }
    }
}

impl<I: AsyncRead + Unpin> Guarded<I> {
    /// Reads and drops input until the client's end, an error or the budget; `Pending` while
    /// the client may still send.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; SCAN_READ];
        while self.drained < DRAIN_BUDGET {
            let mut read = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    self.drained += read.filled().len();
                }
                Poll::Ready(_) => return Poll::Ready(()),
            }
        }
        Poll::Ready(())
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_at < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_at);
                buf.put_slice(&this.out[this.out_at..this.out_at + n]);
                this.out_at += n;
                if this.out_at == this.out.len() {
                    this.out.clear();
                    this.out_at = 0;
                    if this.out.capacity() > 2 * SCAN_READ {
                        this.out = Vec::new();
                    }
                }
                return Poll::Ready(Ok(()));
            }
            if this.scanner.is_refused() {
                // hyper gets nothing more; its answer to the stand-in closes the connection.
                // Input is dropped meanwhile so that a client still sending is not blocked
                // before it reads the answer.
                let _ = this.drain(cx);
                return Poll::Pending;
            }
            if let Some(index) = this.scanner.awaiting_upgrade() {
                let Some(upgraded) = this.shared.answer_to(index, cx.waker()) else {
                    return Poll::Pending;
                };
                this.scanner.upgrade_answered(upgraded);
                let held = std::mem::take(&mut this.held);
                this.feed(&held);
                continue;
            }
            if let Some(limit) = this.scanner.direct() {
                // Bodies and upgraded streams go to hyper straight from the socket.
                let n = if limit >= buf.remaining() as u64 {
                    let before = buf.filled().len();
                    std::task::ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                    buf.filled().len() - before
                } else {
                    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                    let mut part = ReadBuf::new(buf.initialize_unfilled_to(limit));
                    std::task::ready!(Pin::new(&mut this.io).poll_read(cx, &mut part))?;
                    let n = part.filled().len();
                    buf.advance(n);
                    n
                };
                this.scanner.passed_direct(n);
                return Poll::Ready(Ok(()));
            }
            let mut scratch = [0u8; SCAN_READ];
            let mut read = ReadBuf::new(&mut scratch);
            std::task::ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client's end reaches hyper; a head cut short is simply dropped.
                return Poll::Ready(Ok(()));
            }
            let n = read.filled().len();
            this.feed(&scratch[..n]);
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// After a refusal: the answer and our end are sent, then input is drained until the
    /// client closes (or [`LINGER`] passes) so that closing does not reset the connection.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.scanner.is_refused() {
            return Pin::new(&mut this.io).poll_shutdown(cx);
        }
        if !this.write_shut {
            std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.write_shut = true;
        }
        let linger = this
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
        if linger.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        this.drain(cx).map(Ok)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
