//! `nerveshub-device`: a simulated Nerves device on a disk image.
//!
//! - `provision --image FILE --firmware F.fw [--public-key-file FILE]…` applies task
//!   `complete` to the image (creating it if missing).
//! - `run --server wss://HOST:PORT --image FILE [--cert F --key F | --shared-key K
//!   --shared-secret S --identifier ID] [--ca FILE] [--public-key-file FILE]…
//!   [--uboot-env OFFSET:COUNT[:REDUNDANT_OFFSET]] [--fwup PATH] [--poll-interval SECONDS]`
//!   connects with `nerveshub-client` (or polls over HTTPS), reports the active slot's firmware, applies updates with task
//!   `upgrade` (built-in engine, or the `fwup` program given), then "reboots": re-reads the
//!   U-Boot environment, marks the firmware validated, reconnects and reports the new
//!   version. It runs until SIGTERM or Ctrl-C (exit status 0).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use nerveshub_client::{
    Auth, Client, Config, Device, FirmwareEnv, FwupMessage, Identity, PublicKey, RebootAction,
    RebootReason, SharedSecret, Stopped, Transport, Trust, UbootEnvLocation, UpdateDecision,
    UpdateInfo, Updater,
};
use nerveshub_fwup::{ApplyOptions, FileTarget};
use tracing::{debug, error, info, warn};

#[path = "../../logging.rs"]
mod logging;

use logging::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "nerveshub-device",
    version,
    about = "A simulated NervesHub device on a disk image"
)]
struct Cli {
    /// Log format on stderr: `text` (colours only on a terminal) or `json` (one object per
    /// line). RUST_LOG filters (default `info`).
    #[arg(
        long,
        env = "NERVESHUB_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Apply task `complete` of a firmware to the image (created if missing).
    Provision(ProvisionArgs),
    /// Connect to a NervesHub server and take updates until stopped.
    Run(Box<RunArgs>),
}

#[derive(Args, Debug)]
struct ProvisionArgs {
    /// The disk image.
    #[arg(long)]
    image: PathBuf,
    /// The `.fw` to provision with.
    #[arg(long)]
    firmware: PathBuf,
    /// Require a signature by this public key (fwup's `.pub` format); repeatable.
    #[arg(long = "public-key-file")]
    public_key_files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The server, e.g. `wss://localhost:4001`.
    #[arg(long)]
    server: String,
    /// The disk image (fwup's `-d`).
    #[arg(long)]
    image: PathBuf,
    /// Device certificate (PEM or DER), with `--key`.
    #[arg(long, requires = "key", conflicts_with = "shared_key")]
    cert: Option<PathBuf>,
    /// Device private key (PEM or DER), with `--cert`.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Shared-secret key (`nhp_…` product key or a device key).
    #[arg(long, requires_all = ["shared_secret", "identifier"])]
    shared_key: Option<String>,
    /// The secret of `--shared-key`.
    #[arg(long, requires = "shared_key")]
    shared_secret: Option<String>,
    /// The device identifier (signed into the shared-secret token).
    #[arg(long, requires = "shared_key")]
    identifier: Option<String>,
    /// CA certificate(s) to trust for the server and downloads (PEM or DER); default: the
    /// system bundle.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// TLS server name, when it differs from the URL's host.
    #[arg(long)]
    sni: Option<String>,
    /// Firmware signing public key (fwup's `.pub` format); repeatable.
    #[arg(long = "public-key-file")]
    public_key_files: Vec<PathBuf>,
    /// Also trust the firmware keys the server pushes (off by default).
    #[arg(long)]
    accept_server_keys: bool,
    /// U-Boot environment location in 512-byte blocks: `OFFSET:COUNT[:REDUNDANT_OFFSET]`.
    #[arg(long, default_value = "16:16")]
    uboot_env: String,
    /// Apply updates with this `fwup` program instead of the built-in engine.
    #[arg(long)]
    fwup: Option<PathBuf>,
    /// Network interface to report.
    #[arg(long)]
    interface: Option<String>,
    /// Milliseconds to wait before resuming an interrupted download (nerves_hub_link: 15 s).
    #[arg(long, default_value_t = 15_000)]
    download_retry_delay_ms: u64,
    /// Poll over HTTPS at least this many seconds apart (or the server's interval, if
    /// longer) instead of keeping a WebSocket open.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    poll_interval: Option<u64>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::Provision(args) => provision(&args),
        Command::Run(args) => run(*args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load_keys(files: &[PathBuf]) -> Result<Vec<PublicKey>> {
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            PublicKey::from_file_contents(&bytes, &f.display().to_string())
                .with_context(|| format!("public key {}", f.display()))
        })
        .collect()
}

fn provision(args: &ProvisionArgs) -> Result<()> {
    let keys = load_keys(&args.public_key_files)?;
    let input = std::fs::File::open(&args.firmware)
        .with_context(|| format!("opening {}", args.firmware.display()))?;
    let target = FileTarget::open(&args.image)
        .with_context(|| format!("opening {}", args.image.display()))?;
    let mut options = ApplyOptions::new("complete");
    options.public_keys = keys;
    info!(image = %args.image.display(), firmware = %args.firmware.display(), "provisioning (task complete)");
    let report = nerveshub_fwup::apply(std::io::BufReader::new(input), target, &options, &mut ())
        .context("applying task complete")?;
    info!(task = %report.task, uuid = %report.uuid, "provisioned");
    Ok(())
}

fn parse_uboot_env(spec: &str) -> Result<UbootEnvLocation> {
    let parts: Vec<u64> = spec
        .split(':')
        .map(|p| {
            p.parse::<u64>()
                .with_context(|| format!("--uboot-env {spec:?}"))
        })
        .collect::<Result<_>>()?;
    let (offset, count, redundant) = match parts.as_slice() {
        [o, c] => (*o, *c, None),
        [o, c, r] => (*o, *c, Some(*r)),
        _ => bail!("--uboot-env wants OFFSET:COUNT[:REDUNDANT_OFFSET], got {spec:?}"),
    };
    Ok(UbootEnvLocation {
        offset: offset * 512,
        size: usize::try_from(count * 512)?,
        redundant_offset: redundant.map(|r| r * 512),
    })
}

/// The simulated product: logs, applies new firmware, stops `run` for reboots.
#[derive(Debug, Default)]
struct SimulatedDevice {
    last_logged: Option<u8>,
}

impl Client for SimulatedDevice {
    fn update_available(&mut self, info: &UpdateInfo) -> UpdateDecision {
        let meta = info.firmware_meta();
        if info.is_running_firmware() {
            info!(uuid = ?meta.uuid, "update offered is the running firmware: ignoring");
            return UpdateDecision::Ignore(String::new());
        }
        info!(version = ?meta.version, uuid = ?meta.uuid, "update available: applying");
        self.last_logged = None;
        UpdateDecision::Apply
    }

    fn fwup_message(&mut self, message: &FwupMessage) {
        match message {
            FwupMessage::Progress(p) => {
                if self.last_logged.is_none_or(|l| *p >= l.saturating_add(10)) {
                    self.last_logged = Some(*p);
                    info!(percent = p, "applying");
                }
            }
            FwupMessage::Warning(w) => info!(message = %w, "fwup"),
            FwupMessage::Error(e) => error!(reason = %e, "update failed"),
            FwupMessage::Ok => info!("update applied"),
            other => info!(?other, "fwup"),
        }
    }

    fn error(&mut self, error: &nerveshub_client::Error) {
        // nerveshub-client has logged it (once, with a hint); this is only the callback.
        debug!(%error, "client error");
    }

    fn connected(&mut self) {
        info!("connected and joined");
    }

    fn reboot(&mut self, reason: RebootReason) -> RebootAction {
        info!(?reason, "reboot requested");
        RebootAction::Stop
    }

    fn identify(&mut self) {
        info!("identify: *blink* *blink*");
    }
}

fn read_env(image: &Path, location: UbootEnvLocation) -> Result<FirmwareEnv> {
    FirmwareEnv::read(image, location).with_context(|| {
        format!(
            "reading the U-Boot environment of {} at byte {} ({} bytes): was the image \
             provisioned (`nerveshub-device provision`), and does --uboot-env \
             (OFFSET:COUNT in 512-byte blocks) match the firmware's uboot-environment block-offset \
             and block-count?",
            image.display(),
            location.offset,
            location.size
        )
    })
}

fn run(args: RunArgs) -> Result<()> {
    let location = parse_uboot_env(&args.uboot_env)?;
    let auth = match (&args.cert, &args.key, &args.shared_key) {
        (Some(cert), Some(key), None) => Auth::Certificate(
            Identity::from_files(cert, key).context("loading the device certificate")?,
        ),
        (None, None, Some(key)) => Auth::SharedSecret(SharedSecret {
            key: key.clone(),
            secret: args.shared_secret.clone().unwrap_or_default().into_bytes(),
            identifier: args.identifier.clone().unwrap_or_default(),
        }),
        _ => bail!("give --cert and --key, or --shared-key, --shared-secret and --identifier"),
    };
    let trust = match &args.ca {
        Some(ca) => Trust::ca_file(ca).with_context(|| format!("loading {}", ca.display()))?,
        None => Trust::system_bundle()?,
    };
    let updater = match &args.fwup {
        Some(fwup) => Updater::fwup(fwup, &args.image),
        None => Updater::built_in(&args.image),
    };
    let mut config = Config::new(args.server.clone(), auth, trust, updater);
    config.sni = args.sni.clone();
    config.firmware_keys = load_keys(&args.public_key_files)?;
    config.accept_server_keys = args.accept_server_keys;
    config.network_interface = args.interface.clone();
    config.download.time_between_retries =
        std::time::Duration::from_millis(args.download_retry_delay_ms);
    if let Some(seconds) = args.poll_interval {
        config.transport = Transport::Poll {
            interval: std::time::Duration::from_secs(seconds),
        };
    }
    if config.firmware_keys.is_empty() && !config.accept_server_keys {
        warn!("no --public-key-file: every update will be refused");
    }
    let env = read_env(&args.image, location)?;
    config.join_params = env.join_params();
    let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
    runtime.block_on(serve(config, &args.image, location, env))
}

fn log_firmware(env: &FirmwareEnv) {
    let p = env.join_params();
    info!(
        slot = env.active_slot().unwrap_or("?"),
        version = p.nerves_fw_version.as_deref().unwrap_or("?"),
        uuid = p.nerves_fw_uuid.as_deref().unwrap_or("?"),
        validated = env.firmware_validated(),
        "running firmware"
    );
}

async fn serve(
    config: Config,
    image: &Path,
    location: UbootEnvLocation,
    env: FirmwareEnv,
) -> Result<()> {
    let mut device = Device::new(config, SimulatedDevice::default())?;
    info!(url = %device.socket_url(), "connecting");
    log_firmware(&env);
    loop {
        let stopped = tokio::select! {
            r = device.run() => r?,
            () = shutdown() => {
                info!("stopping");
                return Ok(());
            }
        };
        match stopped {
            Stopped::Reboot(reason) => {
                info!(?reason, "rebooting (simulated)");
                let mut env = read_env(image, location)?;
                if !env.firmware_validated() {
                    env.validate();
                    env.write().context("writing the U-Boot environment")?;
                    info!("firmware validated (nerves_fw_validated=1)");
                }
                log_firmware(&env);
                device.config_mut().join_params = env.join_params();
            }
            other => bail!("unexpected stop: {other:?}"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
