//! `nerveshub-loadgen`: a fleet simulator to run against a NervesHub server — thousands of
//! devices joining `device` as nerves_hub_link does, heartbeating, taking updates and
//! reconnecting after a storm — with a JSON summary of what it measured.
//!
//! ```text
//! nerveshub-loadgen --server wss://127.0.0.1:4001 --ca server-ca.pem \
//!     --shared-key nhp_… --shared-secret … --devices 19000 --storms 1 --summary run.json
//! ```

mod device;
mod identity;
mod stats;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use rustls_pki_types::ServerName;
use tokio::sync::watch;
use tokio::task::JoinSet;

use device::{Firmware, Fleet, UpdateMode};
use identity::{Credentials, TlsOptions};
use stats::Stats;

#[derive(Parser, Debug)]
#[command(
    name = "nerveshub-loadgen",
    version,
    about = "Simulates a fleet of NervesHub devices against a server and reports what it measured"
)]
struct Cli {
    /// The server's device endpoint, e.g. `wss://127.0.0.1:4001`.
    #[arg(long)]
    server: String,
    /// The CA certificate(s) the server's certificate chains to (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// TLS server name, when it differs from the URL's host.
    #[arg(long)]
    sni: Option<String>,
    /// NH1: the product key (`nhp_…`); each device signs its own identifier with it.
    #[arg(long, requires = "shared_secret", conflicts_with = "device_ca_cert")]
    shared_key: Option<String>,
    /// NH1: the product secret.
    #[arg(long, requires = "shared_key")]
    shared_secret: Option<String>,
    /// Certificates: a Device CA registered on the server (PEM); each device gets a
    /// certificate from it at its first connection (JITP).
    #[arg(long, requires = "device_ca_key")]
    device_ca_cert: Option<PathBuf>,
    /// The Device CA's private key (PKCS#8 PEM).
    #[arg(long, requires = "device_ca_cert")]
    device_ca_key: Option<PathBuf>,
    /// Also offer TLS 1.3 (devices speak TLS 1.2 only by default, as nerves_hub_link does).
    #[arg(long)]
    tls13: bool,
    /// Devices do not resume TLS sessions when they reconnect (they do by default, as
    /// Erlang's `ssl` does).
    #[arg(long)]
    no_resumption: bool,
    /// How many devices.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Device identifiers are this prefix and a six-digit number.
    #[arg(long, default_value = "loadgen-")]
    prefix: String,
    /// Devices started per second at the cold start; 0 starts them all at once.
    #[arg(long, default_value_t = 0)]
    connect_rate: u32,
    /// Source addresses, spread over the devices: addresses or ranges
    /// (`127.0.0.2-127.0.0.250`), comma-separated. Default: 127.0.0.1–127.0.0.254 when the
    /// server is on IPv4 loopback (one address runs out of ports in a storm), else the
    /// system's choice.
    #[arg(long, value_delimiter = ',')]
    source: Vec<String>,
    /// Heartbeat interval (nerves_hub_link: 30 s).
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u64,
    /// The longest a connection attempt may take, from TCP connect to the upgrade's answer.
    #[arg(long, default_value_t = 30)]
    attempt_timeout_secs: u64,
    /// The longest each phase (cold start, storm, updates) waits for every device.
    #[arg(long, default_value_t = 120)]
    phase_timeout_secs: u64,
    /// Seconds the fleet stays connected after the cold start and after each storm.
    #[arg(long, default_value_t = 0)]
    hold_secs: u64,
    /// Reconnect storms to run: every device drops its connection at once and reconnects
    /// with nerves_hub_link's backoff (1 s plus up to 50 %).
    #[arg(long, default_value_t = 0)]
    storms: u32,
    /// What a device does with an `update`.
    #[arg(long, value_enum, default_value = "report")]
    updates: UpdateMode,
    /// After the storms, wait until this many devices took an update (rejoined on its
    /// firmware; with `--updates ignore`, received it).
    #[arg(long, default_value_t = 0)]
    wait_updates: u64,
    /// Firmware UUID the devices report at first.
    #[arg(long, default_value = "00000000-0000-4000-8000-000000000000")]
    firmware_uuid: String,
    /// Firmware version the devices report at first.
    #[arg(long, default_value = "0.0.1")]
    firmware_version: String,
    /// Firmware product the devices report.
    #[arg(long, default_value = "loadgen")]
    firmware_product: String,
    /// Firmware platform the devices report.
    #[arg(long, default_value = "host")]
    firmware_platform: String,
    /// Firmware architecture the devices report.
    #[arg(long, default_value = "x86_64")]
    firmware_architecture: String,
    /// Also write the JSON summary to this file (it always goes to standard output).
    #[arg(long)]
    summary: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs the phases; true when every phase reached every device.
async fn run(cli: Cli) -> Result<bool> {
    raise_descriptor_limit();
    let url = reqwest::Url::parse(&cli.server).context("--server")?;
    let host = url.host_str().context("--server has no host")?.to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let server = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let server_name = ServerName::try_from(cli.sni.clone().unwrap_or_else(|| host.clone()))
        .context("server name")?;
    let roots = identity::roots_from_pem(&std::fs::read(&cli.ca).context("--ca")?)?;
    let tls_options = TlsOptions {
        tls12_only: !cli.tls13,
        resume: !cli.no_resumption,
    };
    let (credentials, path) = match (&cli.shared_key, &cli.device_ca_cert) {
        (Some(key), None) => (
            Credentials::shared_secret(
                key.clone(),
                cli.shared_secret.clone().unwrap_or_default(),
                roots,
                tls_options,
            )?,
            "/device-socket/websocket",
        ),
        (None, Some(cert)) => {
            let key = cli.device_ca_key.as_ref().context("--device-ca-key")?;
            let ca = nerveshub_pki::DeviceCa::from_pem(
                &std::fs::read_to_string(cert).context("--device-ca-cert")?,
                &std::fs::read_to_string(key).context("--device-ca-key")?,
            )
            .context("loading the Device CA")?;
            (
                Credentials::certificates(ca, roots, tls_options),
                "/socket/websocket",
            )
        }
        _ => bail!("give --shared-key/--shared-secret or --device-ca-cert/--device-ca-key"),
    };
    let scheme = if url.scheme() == "ws" { "ws" } else { "wss" };
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(credentials.download_tls()?)
        .build()
        .context("download client")?;
    let sources = source_addresses(&cli.source, server.ip())?;
    let (storm_tx, storm_rx) = watch::channel(0u64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stats = Arc::new(Stats::new());
    let fleet = Arc::new(Fleet {
        stats: stats.clone(),
        server,
        server_name: server_name.to_owned(),
        url: format!("{scheme}://{host}:{port}{path}?vsn=2.0.0"),
        credentials,
        sources,
        prefix: cli.prefix.clone(),
        firmware: Firmware {
            uuid: cli.firmware_uuid.clone(),
            version: cli.firmware_version.clone(),
            product: cli.firmware_product.clone(),
            platform: cli.firmware_platform.clone(),
            architecture: cli.firmware_architecture.clone(),
        },
        heartbeat: Duration::from_secs(cli.heartbeat_secs.max(1)),
        attempt_timeout: Duration::from_secs(cli.attempt_timeout_secs.max(1)),
        updates: cli.updates,
        http,
        storm: storm_rx,
        stop: stop_rx,
    });
    let devices = cli.devices as u64;
    let phase_timeout = Duration::from_secs(cli.phase_timeout_secs);
    let mut complete = true;

    stats.begin_phase("cold_start");
    tracing::info!(devices, "phase cold_start: starting devices");
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for index in 0..cli.devices {
        if cli.connect_rate > 0 {
            let due = started + Duration::from_secs_f64(index as f64 / f64::from(cli.connect_rate));
            tokio::time::sleep_until(due.into()).await;
        }
        tasks.spawn(device::run(fleet.clone(), index));
    }
    complete &= wait_for("cold_start", phase_timeout, || {
        stats.joined_in_phase.load(Ordering::SeqCst) >= devices
    })
    .await;
    hold(cli.hold_secs).await;

    for storm in 1..=cli.storms {
        let name = format!("storm_{storm}");
        stats.begin_phase(&name);
        tracing::info!("phase {name}: dropping every connection");
        storm_tx.send_modify(|n| *n += 1);
        complete &= wait_for(&name, phase_timeout, || {
            stats.joined_in_phase.load(Ordering::SeqCst) >= devices
                && stats.joined_now.load(Ordering::SeqCst) >= devices
        })
        .await;
        hold(cli.hold_secs).await;
    }

    if cli.wait_updates > 0 {
        stats.begin_phase("updates");
        tracing::info!(
            expected = cli.wait_updates,
            "phase updates: waiting for updates"
        );
        let counter = if cli.updates == UpdateMode::Ignore {
            &stats.updates_received
        } else {
            &stats.updates_done
        };
        complete &= wait_for("updates", phase_timeout, || {
            counter.load(Ordering::SeqCst) >= cli.wait_updates
        })
        .await;
    }

    tracing::info!("stopping: closing every connection");
    let _ = stop_tx.send(true);
    let closing = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), closing)
        .await
        .is_err()
    {
        tracing::warn!("some devices did not close within 30 s");
    }
    let summary = stats.summary(devices);
    let text = serde_json::to_string_pretty(&summary)?;
    writeln!(std::io::stdout().lock(), "{text}")?;
    if let Some(path) = &cli.summary {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(complete)
}

/// Waits until `done` holds or the phase times out; logs either way.
async fn wait_for(phase: &str, timeout: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() >= timeout {
            tracing::warn!("phase {phase}: timed out after {timeout:?}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(
        "phase {phase} complete after {} ms",
        started.elapsed().as_millis()
    );
    true
}

async fn hold(secs: u64) {
    if secs > 0 {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
}

/// The source addresses devices bind to before connecting.
fn source_addresses(given: &[String], server: IpAddr) -> Result<Vec<IpAddr>> {
    if given.is_empty() {
        return Ok(match server {
            IpAddr::V4(v4) if v4.is_loopback() => (1..=254)
                .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                .collect(),
            _ => Vec::new(),
        });
    }
    let mut addresses = Vec::new();
    for item in given {
        match item.split_once('-') {
            Some((first, last)) => {
                let first: Ipv4Addr = first.trim().parse().with_context(|| item.clone())?;
                let last: Ipv4Addr = last.trim().parse().with_context(|| item.clone())?;
                let (first, last) = (u32::from(first), u32::from(last));
                if last < first || last - first > 1 << 20 {
                    bail!("--source {item}: not a range of at most 2^20 addresses");
                }
                addresses.extend((first..=last).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
            }
            None => addresses.push(item.trim().parse().with_context(|| item.clone())?),
        }
    }
    if let Some(bad) = addresses.iter().find(|a| a.is_ipv4() != server.is_ipv4()) {
        bail!("--source {bad}: not the server's address family");
    }
    Ok(addresses)
}

/// One process holds every simulated device's socket: take the hard descriptor limit.
fn raise_descriptor_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!(error = %e, "could not raise the descriptor limit");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ranges_expand_and_loopback_defaults_spread() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(source_addresses(&[], loopback).unwrap().len(), 254);
        let given = vec!["127.0.0.2-127.0.0.4".to_owned(), "127.0.0.9".to_owned()];
        let addrs = source_addresses(&given, loopback).unwrap();
        assert_eq!(
            addrs,
            ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]
                .map(|a| a.parse::<IpAddr>().unwrap())
        );
        assert!(source_addresses(&["127.0.0.9-127.0.0.2".to_owned()], loopback).is_err());
        assert!(source_addresses(&["::1".to_owned()], loopback).is_err());
        assert!(
            source_addresses(&[], "10.0.0.1".parse().unwrap())
                .unwrap()
                .is_empty()
        );
    }
}
