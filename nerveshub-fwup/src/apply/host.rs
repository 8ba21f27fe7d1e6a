//! What an apply may do on the host besides writing its destination: run commands, write
//! host files, and look at mounted filesystems. The engine asks a [`Host`], so an embedding
//! program (or a test) decides what these mean; [`SystemHost`] does what C fwup does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{ApplyError, Error, Result};

/// A sink for `path_write`/`pipe_write` data. [`HostSink::finish`] is called once all the
/// data was written.
pub trait HostSink: Write {
    /// Completes the output (closes the file; closes the pipe and waits for the command).
    ///
    /// # Errors
    /// The command failed, or the output could not be completed.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Host operations of an apply. Every method that changes the host is reached only with
/// `--unsafe` (except [`Host::write_reboot_param`], which fwup allows always).
pub trait Host {
    /// `execute(cmd)` and `require-execute(cmd)`: runs `cmd` with the shell; `Ok(true)` when
    /// it exits with status 0.
    ///
    /// # Errors
    /// The command could not be started.
    fn execute(&mut self, command: &str) -> Result<bool>;

    /// `path_write(path)`: a sink that creates or truncates the host file `path`.
    ///
    /// # Errors
    /// The file cannot be created.
    fn open_path(&mut self, path: &str) -> Result<Box<dyn HostSink>>;

    /// `pipe_write(cmd)`: a sink feeding the standard input of `cmd` run with the shell.
    ///
    /// # Errors
    /// The command cannot be started.
    fn open_pipe(&mut self, command: &str) -> Result<Box<dyn HostSink>>;

    /// `reboot_param(args)`: writes `args` to `path`, or where fwup writes it when `path` is
    /// `None` (`/run/systemd/reboot-param`, else `/run/reboot-param`).
    ///
    /// # Errors
    /// The file cannot be written.
    fn write_reboot_param(&mut self, path: Option<&Path>, args: &str) -> Result<()>;

    /// `require-path-on-device(path, device)`: whether the filesystem holding `path` is on
    /// the block device `device`.
    ///
    /// # Errors
    /// Only for host failures other than "not found" (which mean "no").
    fn path_on_device(&mut self, path: &str, device: &str) -> Result<bool>;

    /// `require-path-at-offset(path, block_offset)`: whether the filesystem holding `path` is
    /// on a partition starting at `block_offset` (512-byte blocks).
    ///
    /// # Errors
    /// Only for host failures other than "not found" (which mean "no").
    fn path_at_offset(&mut self, path: &str, block_offset: u64) -> Result<bool>;
}

/// The host as C fwup treats it: `/bin/sh -c` for commands, real files, `/sys` for
/// partition offsets.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemHost;

struct FileSink(std::fs::File);

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl HostSink for FileSink {
    fn finish(self: Box<Self>) -> Result<()> {
        let mut file = self.0;
        file.flush()?;
        Ok(())
    }
}

struct PipeSink {
    child: Child,
    command: String,
}

impl Write for PipeSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.child.stdin.as_mut() {
            Some(stdin) => stdin.write(buf),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.child.stdin.as_mut() {
            Some(stdin) => stdin.flush(),
            None => Ok(()),
        }
    }
}

impl HostSink for PipeSink {
    fn finish(self: Box<Self>) -> Result<()> {
        let mut this = *self;
        drop(this.child.stdin.take());
        let status = this.child.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Apply(ApplyError::FunctionFailed {
                function: "pipe_write".to_owned(),
                message: format!("'{}' failed ({status})", this.command),
            }))
        }
    }
}

fn shell(command: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command);
    cmd
}

impl Host for SystemHost {
    fn execute(&mut self, command: &str) -> Result<bool> {
        let _ = std::io::stdout().flush();
        Ok(shell(command).status()?.success())
    }

    fn open_path(&mut self, path: &str) -> Result<Box<dyn HostSink>> {
        let file = std::fs::File::create(path).map_err(|e| ApplyError::Host {
            function: "path_write".to_owned(),
            message: format!("can't open '{path}'"),
            source: e,
        })?;
        Ok(Box::new(FileSink(file)))
    }

    fn open_pipe(&mut self, command: &str) -> Result<Box<dyn HostSink>> {
        let _ = std::io::stdout().flush();
        let child = shell(command).stdin(Stdio::piped()).spawn()?;
        Ok(Box::new(PipeSink {
            child,
            command: command.to_owned(),
        }))
    }

    fn write_reboot_param(&mut self, path: Option<&Path>, args: &str) -> Result<()> {
        let candidates: Vec<PathBuf> = match path {
            Some(path) => vec![path.to_owned()],
            None => vec![
                PathBuf::from("/run/systemd/reboot-param"),
                PathBuf::from("/run/reboot-param"),
            ],
        };
        let mut last = None;
        for candidate in candidates {
            match std::fs::write(&candidate, args) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some((candidate, e)),
            }
        }
        // There is always at least one candidate, so `last` is set; the error of the last
        // one tried is the one reported.
        let (path, source) = last.unwrap_or_else(|| {
            (
                PathBuf::new(),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        });
        Err(ApplyError::Host {
            function: "reboot_param".to_owned(),
            message: format!("can't write '{}'", path.display()),
            source,
        }
        .into())
    }

    #[cfg(unix)]
    fn path_on_device(&mut self, path: &str, device: &str) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let (Ok(path_meta), Ok(dev_meta)) = (std::fs::metadata(path), std::fs::metadata(device))
        else {
            return Ok(false);
        };
        Ok(is_block(&dev_meta) && path_meta.dev() == dev_meta.rdev())
    }

    #[cfg(not(unix))]
    fn path_on_device(&mut self, _path: &str, _device: &str) -> Result<bool> {
        Ok(false)
    }

    #[cfg(unix)]
    fn path_at_offset(&mut self, path: &str, block_offset: u64) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(false);
        };
        let dev = meta.dev();
        let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
        let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
        let start = format!("/sys/dev/block/{major}:{minor}/start");
        Ok(std::fs::read_to_string(start)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            == Some(block_offset))
    }

    #[cfg(not(unix))]
    fn path_at_offset(&mut self, _path: &str, _block_offset: u64) -> Result<bool> {
        Ok(false)
    }
}

#[cfg(unix)]
fn is_block(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_block_device()
}
