//! Applying a download with the built-in fwup engine: the engine runs on a blocking thread
//! and reads the download straight from the channel (no copy on disk). The download's
//! checksums are checked as the bytes pass, and the whole-file SHA-256 in the engine's last
//! hook before `on-finish`, so a bad download never switches the active slot.

use std::cell::RefCell;
use std::io::{self, Read};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;
use nerveshub_fwup::{ApplyEvents, ApplyOptions, FileTarget, PercentScale, Progress, PublicKey};
use tokio::sync::mpsc;

use crate::client::FwupMessage;
use crate::download::Chunk;
use crate::error::UpdateError;
use crate::verify::StreamCheck;

/// Why an apply failed.
#[derive(Debug)]
pub(crate) enum ApplyFailure {
    /// The download failed or did not match its checksums (nerves_hub_link's reason).
    Download(String),
    /// The engine failed.
    Engine(UpdateError),
}

struct Feed {
    rx: mpsc::Receiver<Chunk>,
    buf: Bytes,
    check: StreamCheck,
    eof: bool,
    failure: Option<String>,
}

impl Feed {
    fn fill(&mut self) -> io::Result<()> {
        while self.buf.is_empty() && !self.eof {
            match self.rx.blocking_recv() {
                Some(Chunk::Data(data)) => {
                    if let Err(reason) = self.check.update(&data) {
                        return Err(self.fail(reason));
                    }
                    self.buf = data;
                }
                Some(Chunk::End) => self.eof = true,
                Some(Chunk::Failed(reason)) => return Err(self.fail(reason)),
                None => return Err(self.fail("aborted".into())),
            }
        }
        Ok(())
    }

    fn fail(&mut self, reason: String) -> io::Error {
        let err = io::Error::other(format!("download failed: {reason}"));
        self.failure.get_or_insert(reason);
        err
    }

    /// Reads the rest of the download and checks the whole-file checksum.
    fn finish(&mut self) -> Result<(), String> {
        loop {
            self.buf = Bytes::new();
            self.fill()
                .map_err(|_| self.failure.clone().unwrap_or_default())?;
            if self.eof {
                break;
            }
        }
        self.check.finish().inspect_err(|reason| {
            self.failure.get_or_insert(reason.clone());
        })
    }
}

struct FeedReader(Rc<RefCell<Feed>>);

impl Read for FeedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut feed = self.0.borrow_mut();
        feed.fill()?;
        let n = out.len().min(feed.buf.len());
        out[..n].copy_from_slice(&feed.buf.split_to(n));
        Ok(n)
    }
}

struct Events {
    feed: Rc<RefCell<Feed>>,
    scale: PercentScale,
    last: Option<u8>,
    report: mpsc::UnboundedSender<FwupMessage>,
}

impl ApplyEvents for Events {
    fn progress(&mut self, progress: Progress) {
        let pct = self.scale.percent(progress);
        if self.last.is_none_or(|l| pct > l) {
            self.last = Some(pct);
            // The receiver outlives the apply; a send error only means nobody listens.
            let _ = self.report.send(FwupMessage::Progress(pct));
        }
    }

    fn info(&mut self, message: &str) {
        let _ = self.report.send(FwupMessage::Warning(message.to_owned()));
    }

    fn before_finish(&mut self) -> Result<(), String> {
        self.feed.borrow_mut().finish()
    }
}

/// What the built-in engine needs.
pub(crate) struct BuiltInJob {
    pub(crate) devpath: PathBuf,
    pub(crate) task: String,
    pub(crate) keys: Vec<PublicKey>,
    pub(crate) check: StreamCheck,
}

/// Applies the download arriving on `rx` on a blocking thread.
pub(crate) async fn apply_built_in(
    job: BuiltInJob,
    rx: mpsc::Receiver<Chunk>,
    report: mpsc::UnboundedSender<FwupMessage>,
) -> Result<(), ApplyFailure> {
    let handle = tokio::task::spawn_blocking(move || {
        let feed = Rc::new(RefCell::new(Feed {
            rx,
            buf: Bytes::new(),
            check: job.check,
            eof: false,
            failure: None,
        }));
        let mut options = ApplyOptions::new(job.task);
        options.public_keys = job.keys;
        let mut events = Events {
            feed: feed.clone(),
            scale: PercentScale::default(),
            last: None,
            report,
        };
        let result = FileTarget::open(&job.devpath).and_then(|target| {
            nerveshub_fwup::apply(FeedReader(feed.clone()), target, &options, &mut events)
        });
        let failure = feed.borrow().failure.clone();
        match (result, failure) {
            (Ok(_), _) => Ok(()),
            (Err(_), Some(reason)) => Err(ApplyFailure::Download(reason)),
            (Err(e), None) => Err(ApplyFailure::Engine(UpdateError::Fwup(e))),
        }
    });
    handle
        .await
        .unwrap_or_else(|e| Err(ApplyFailure::Engine(UpdateError::ApplyTask(e))))
}
