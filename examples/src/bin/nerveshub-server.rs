//! `nerveshub-server`: the NervesHub update server on its embedded defaults (SQLite and local
//! firmware storage in `./nerveshub-data`, a development certificate for the device endpoint),
//! or on PostgreSQL and S3 for scale.
//!
//! Every setting is a flag, an environment variable and a key of the `--config` TOML file,
//! taken in that order of precedence (flags > environment > file > built-in defaults).
//! `nerveshub-server config print` shows the result with secrets masked;
//! `nerveshub-server admin reset-password EMAIL` sets a new password offline.

/// With the `mimalloc` feature (the default) the server allocates with mimalloc: at 19,000
/// devices it held 36 % less memory than glibc's allocator, whose per-thread arenas keep what
/// a connection burst fragmented (BENCHMARKS.md compares the two).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use nerveshub_server::{
    Config, DEFAULT_MAX_FIRMWARE_SIZE, DrainPacing, NodeRole, RunningServer, StorageConfig,
};
use serde::Deserialize;

#[path = "../logging.rs"]
mod logging;

use logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "nerveshub-server",
    version,
    about = "The NervesHub firmware update server",
    after_help = "Each flag can also be set by its environment variable or as a key of the \
                  --config file (the flag's name without dashes in front: `data-dir = \"/var/lib/nerveshub\"`); \
                  flags win over the environment, the environment over the file. \
                  RUST_LOG filters the log (default `info`; e.g. `info,nerveshub_server=debug`)."
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Server administration that works on the database directly (no running server needed).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Give a user a new random password (printed once) — for a lost first-admin password.
    ResetPassword {
        /// The user's email.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as a --config file, with secrets masked.
    Print,
}

/// Every setting, from flags and environment (clap) or from the file (serde). `None` means
/// "not given here": the next source down decides.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Settings {
    /// Read settings from this TOML file.
    #[arg(long, env = "NERVESHUB_CONFIG", global = true)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Holds the SQLite database, local firmware storage, development TLS files and the first
    /// admin's token [default: ./nerveshub-data].
    #[arg(long, env = "NERVESHUB_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// `postgres://…` to keep data in PostgreSQL instead of SQLite.
    #[arg(
        long,
        env = "NERVESHUB_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    /// Database connections for the API (and rollouts) [default: 4 on SQLite, 8 on PostgreSQL].
    #[arg(long, env = "NERVESHUB_API_DB_CONNECTIONS", global = true)]
    api_db_connections: Option<u32>,
    /// Database connections for the device endpoint [default: 8 on SQLite, 16 on PostgreSQL].
    #[arg(long, env = "NERVESHUB_DEVICE_DB_CONNECTIONS", global = true)]
    device_db_connections: Option<u32>,
    /// Management API address, plain HTTP; also serves /health and /ready
    /// [default: 127.0.0.1:4000].
    #[arg(long, env = "NERVESHUB_API_ADDR", global = true)]
    api_addr: Option<SocketAddr>,
    /// Device endpoint address, HTTPS [default: 0.0.0.0:4001].
    #[arg(long, env = "NERVESHUB_DEVICE_ADDR", global = true)]
    device_addr: Option<SocketAddr>,
    /// Device endpoint certificate chain (PEM). Without it, a development CA and certificate
    /// are made in `<data-dir>/tls` on first start.
    #[arg(long, env = "NERVESHUB_DEVICE_CERT", global = true)]
    device_cert: Option<PathBuf>,
    /// Device endpoint private key (PEM).
    #[arg(long, env = "NERVESHUB_DEVICE_KEY", global = true)]
    device_key: Option<PathBuf>,
    /// Another DNS name or IP address devices reach the server by (repeat, or comma-separated
    /// in the environment variable). Only adds it to the development certificate, which is
    /// made on first start for localhost, 127.0.0.1 and ::1 (delete `<data-dir>/tls` to
    /// remake it); it changes no URL.
    #[arg(
        long = "device-host",
        env = "NERVESHUB_DEVICE_HOSTS",
        value_delimiter = ',',
        global = true
    )]
    #[serde(rename = "device-host")]
    device_hosts: Option<Vec<String>>,
    /// Email of the server admin created on first start (default: admin@localhost).
    #[arg(long, env = "NERVESHUB_ADMIN_EMAIL", global = true)]
    admin_email: Option<String>,
    /// Firmware storage: `local` (under the data directory), `s3://bucket` or
    /// `s3://bucket/prefix` (configured by --storage-option or AWS_ENDPOINT, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP) [default: local].
    #[arg(long, env = "NERVESHUB_STORAGE", global = true)]
    storage: Option<String>,
    /// An S3 setting as `KEY=VALUE` (object_store's names: aws_endpoint, aws_region,
    /// aws_access_key_id, aws_secret_access_key, aws_allow_http, …); repeatable. In the
    /// file: a `[storage-option]` table.
    #[arg(long = "storage-option", value_parser = parse_key_value, global = true)]
    #[serde(skip)]
    storage_option_flags: Vec<(String, String)>,
    #[arg(skip)]
    storage_option: Option<std::collections::BTreeMap<String, String>>,
    /// Largest firmware upload accepted, in bytes [default: 209715200].
    #[arg(long, env = "NERVESHUB_MAX_FIRMWARE_SIZE", global = true)]
    max_firmware_size: Option<u64>,
    /// Base of the firmware download URLs handed to devices when firmware is stored locally,
    /// e.g. `https://updates.example.com` when devices reach the server through a proxy or a
    /// name the server cannot see. By default each device gets URLs on the host it connected
    /// to (its Host header), which works for any device that reached the server.
    #[arg(long, env = "NERVESHUB_DEVICE_URL", global = true)]
    device_url: Option<String>,
    /// Seconds between polls the server asks of devices that poll over HTTP, unless their
    /// product sets its own [default: 3600]. A device polling sooner gets 429.
    #[arg(long, env = "NERVESHUB_DEVICE_POLL_INTERVAL", global = true,
          value_parser = clap::value_parser!(u64).range(10..=604_800))]
    device_poll_interval: Option<u64>,
    /// Connections each listener's kernel queue holds before accept (capped by
    /// net.core.somaxconn) [default: 4096].
    #[arg(long, env = "NERVESHUB_LISTEN_BACKLOG", global = true)]
    listen_backlog: Option<u32>,
    /// TLS 1.2 sessions the device endpoint remembers for resumption by session ID, about
    /// 100 bytes each (0: off) [default: 32768].
    #[arg(long, env = "NERVESHUB_TLS_SESSION_CACHE", global = true)]
    tls_session_cache: Option<usize>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` on a listener of its own (off by
    /// default; keep it private).
    #[arg(long, env = "NERVESHUB_METRICS_ADDR", global = true)]
    metrics_addr: Option<SocketAddr>,
    /// Log format on stderr: `text` (colours only on a terminal) or `json` (one object per
    /// line) [default: text].
    #[arg(long, env = "NERVESHUB_LOG_FORMAT", value_enum, global = true)]
    log_format: Option<LogFormat>,
    /// Also serve the management API over HTTPS on this address (e.g. 127.0.0.1:4443), where
    /// user certificates (`nerveshub login --certificate`) sign in.
    #[arg(long, env = "NERVESHUB_API_TLS", global = true)]
    api_tls: Option<SocketAddr>,
    /// The HTTPS API's certificate chain (PEM) [default: the device endpoint's]
    #[arg(
        long,
        env = "NERVESHUB_API_TLS_CERT",
        requires = "api_tls_key",
        global = true
    )]
    api_tls_cert: Option<PathBuf>,
    /// The HTTPS API's private key (PEM)
    #[arg(
        long,
        env = "NERVESHUB_API_TLS_KEY",
        requires = "api_tls_cert",
        global = true
    )]
    api_tls_key: Option<PathBuf>,
    /// What this node does when several share one PostgreSQL database: `device` (device
    /// sockets, polling, firmware downloads), `api` (the management API and the rollout
    /// orchestrators) or `all` of it [default: all].
    #[arg(long, env = "NERVESHUB_NODE_ROLE", value_parser = ["all", "device", "api"], global = true)]
    node_role: Option<String>,
    /// This node's name in the cluster (letters, digits, '-', '_', '.'; at most 48)
    /// [default: the hostname and a random suffix, new at every start].
    #[arg(long, env = "NERVESHUB_NODE_ID", global = true)]
    node_id: Option<String>,
    /// Device sockets a stopping node closes at once; it waits --drain-interval between
    /// batches, so the fleet reconnects to the other nodes gradually [default: 1000].
    #[arg(long, env = "NERVESHUB_DRAIN_BATCH", global = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    drain_batch: Option<u32>,
    /// Seconds between two batches of closed device sockets when a node stops [default: 4].
    #[arg(long, env = "NERVESHUB_DRAIN_INTERVAL", global = true,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    drain_interval: Option<u64>,
    /// Firmware stored `local`ly is on a directory every node shares (NFS or the like):
    /// lets more than one node start on local storage (`--local-storage-shared=false` undoes
    /// the file's or the environment's setting).
    #[arg(long, env = "NERVESHUB_LOCAL_STORAGE_SHARED", global = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    local_storage_shared: Option<bool>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

/// The settings after every source, with the built-in defaults filled in.
#[derive(Debug)]
struct Effective {
    config: Config,
    log_format: LogFormat,
}

impl Settings {
    /// Reads the `--config` file, if any.
    fn load_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("in the configuration file {}", path.display()))
    }

    /// `self` (flags and environment) over `file`, then the defaults.
    fn resolve(self, file: Settings) -> anyhow::Result<Effective> {
        let mut config = Config::new(
            self.data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./nerveshub-data")),
        );
        config.database_url = self.database_url.or(file.database_url);
        config.api_db_connections = self.api_db_connections.or(file.api_db_connections);
        config.device_db_connections = self.device_db_connections.or(file.device_db_connections);
        if let Some(addr) = self.api_addr.or(file.api_addr) {
            config.api_addr = addr;
        }
        if let Some(addr) = self.device_addr.or(file.device_addr) {
            config.device_addr = addr;
        }
        // A certificate and its key come from the same source, never one from each.
        let (cert, key) = match (self.device_cert, self.device_key) {
            (None, None) => (file.device_cert, file.device_key),
            pair => pair,
        };
        match (&cert, &key) {
            (Some(_), None) => bail!("--device-cert needs --device-key"),
            (None, Some(_)) => bail!("--device-key needs --device-cert"),
            _ => {}
        }
        config.device_cert = cert;
        config.device_key = key;
        config.device_hosts = self
            .device_hosts
            .or(file.device_hosts)
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        if let Some(email) = self.admin_email.or(file.admin_email) {
            config.admin_email = email;
        }
        let storage_spec = self.storage.or(file.storage);
        // Options merge key by key: a flag overrides the file's value of the same key.
        let mut storage_options = file.storage_option.unwrap_or_default();
        storage_options.extend(self.storage_option_flags);
        config.max_firmware_size = self
            .max_firmware_size
            .or(file.max_firmware_size)
            .unwrap_or(DEFAULT_MAX_FIRMWARE_SIZE);
        config.device_url = self.device_url.or(file.device_url);
        if let Some(secs) = self.device_poll_interval.or(file.device_poll_interval) {
            config.device_poll_interval = std::time::Duration::from_secs(secs);
        }
        if let Some(backlog) = self.listen_backlog.or(file.listen_backlog) {
            config.connection_limits.listen_backlog = backlog;
        }
        if let Some(sessions) = self.tls_session_cache.or(file.tls_session_cache) {
            config.connection_limits.tls_session_cache = sessions;
        }
        config.metrics_addr = self.metrics_addr.or(file.metrics_addr);
        config.api_tls_addr = self.api_tls.or(file.api_tls);
        config.api_tls_cert = self.api_tls_cert.or(file.api_tls_cert);
        config.api_tls_key = self.api_tls_key.or(file.api_tls_key);
        if let Some(role) = self.node_role.or(file.node_role) {
            config.node_role = role.parse::<NodeRole>()?;
        }
        config.node_id = self.node_id.or(file.node_id);
        let default = DrainPacing::default();
        let batch = self
            .drain_batch
            .or(file.drain_batch)
            .unwrap_or(default.batch);
        if batch == 0 {
            bail!("drain-batch must be at least 1");
        }
        let interval = self
            .drain_interval
            .or(file.drain_interval)
            .map_or(default.interval, std::time::Duration::from_secs);
        config.drain = DrainPacing::new(batch, interval);
        let local_storage_shared = self
            .local_storage_shared
            .or(file.local_storage_shared)
            .unwrap_or(false);
        config.storage = match storage_spec {
            Some(spec) => StorageConfig::parse(&spec)?,
            None => StorageConfig::local(),
        };
        match &mut config.storage {
            StorageConfig::Local { shared, .. } => *shared = local_storage_shared,
            StorageConfig::S3 { options, .. } => *options = storage_options.into_iter().collect(),
            // A backend added to the library later: nothing of ours to apply.
            _ => {}
        }
        Ok(Effective {
            config,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
        })
    }
}

/// Reads every source: flags and environment from `cli`, then the file it names.
fn effective(settings: Settings) -> anyhow::Result<Effective> {
    let file = match &settings.config {
        Some(path) => Settings::load_file(path)?,
        None => Settings::default(),
    };
    settings.resolve(file)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let effective = effective(cli.settings)?;
    match cli.command {
        Some(Command::Config(ConfigCommand::Print)) => {
            write_stdout(&print_config(&effective));
            Ok(())
        }
        Some(Command::Admin(AdminCommand::ResetPassword { email })) => {
            logging::init(effective.log_format);
            let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
            let password = runtime
                .block_on(nerveshub_server::reset_password(&effective.config, &email))
                .context("resetting the password")?;
            write_stdout(&format!(
                "New password for {} (shown only this once):\n  {password}\n",
                email.trim().to_lowercase()
            ));
            Ok(())
        }
        None => {
            logging::init(effective.log_format);
            let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
            runtime.block_on(serve(effective.config))
        }
    }
}

/// Written, not println!-ed: a closed stdout must not stop the server.
fn write_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = ShutdownSignal::install();
    let data_dir = config.data_dir.clone();
    let server = RunningServer::start(config)
        .await
        .context("starting nerveshub-server")?;
    let mut banner = String::new();
    if let Some(admin) = server.first_admin() {
        // Shown once, to the terminal only: the password is never stored in clear.
        banner += "Created the server admin (shown only this once):\n";
        banner += &format!("  email:    {}\n", admin.email);
        banner += &format!("  password: {}\n", admin.password);
        banner += &format!("  token:    {}\n", admin.token);
        banner += &format!(
            "The token is also in {} (mode 0600). Lost the password? \
             `nerveshub-server admin reset-password {}`.\n",
            data_dir.join("admin-token").display(),
            admin.email
        );
    }
    banner += &format!("Management API: http://{}/api\n", server.api_addr());
    banner += &format!("Device endpoint: https://{}\n", server.device_addr());
    if let Some(metrics) = server.metrics_addr() {
        banner += &format!("Metrics: http://{metrics}/metrics\n");
    }
    if let Some(addr) = server.api_tls_addr() {
        banner += &format!("Management API (HTTPS, user certificates): https://{addr}/api\n");
    }
    if let Some(ca) = server.dev_ca_file() {
        banner += &format!("Devices must trust the development CA {}\n", ca.display());
    }
    write_stdout(&banner);
    shutdown.wait().await;
    // The drain closes device sockets a batch at a time and logs how many are left.
    tracing::info!(
        "shutting down: stopping the listeners, handing the rollouts over, closing device sockets"
    );
    server.shutdown().await;
    Ok(())
}

/// The effective configuration as a TOML `--config` file; the database password and secret
/// storage options are masked.
fn print_config(effective: &Effective) -> String {
    use toml::Value;
    let c = &effective.config;
    let mut table = toml::Table::new();
    let path = |p: &Path| Value::String(p.display().to_string());
    table.insert("data-dir".into(), path(&c.data_dir));
    if let Some(url) = &c.database_url {
        table.insert("database-url".into(), Value::String(mask_url(url)));
    }
    for (key, n) in [
        ("api-db-connections", c.api_db_connections),
        ("device-db-connections", c.device_db_connections),
    ] {
        if let Some(n) = n {
            table.insert(key.into(), Value::Integer(i64::from(n)));
        }
    }
    table.insert("api-addr".into(), Value::String(c.api_addr.to_string()));
    table.insert(
        "device-addr".into(),
        Value::String(c.device_addr.to_string()),
    );
    if let Some(cert) = &c.device_cert {
        table.insert("device-cert".into(), path(cert));
    }
    if let Some(key) = &c.device_key {
        table.insert("device-key".into(), path(key));
    }
    table.insert(
        "device-host".into(),
        Value::Array(
            c.device_hosts
                .iter()
                .map(|h| Value::String(h.clone()))
                .collect(),
        ),
    );
    table.insert("admin-email".into(), Value::String(c.admin_email.clone()));
    table.insert("storage".into(), Value::String(c.storage.to_string()));
    table.insert(
        "max-firmware-size".into(),
        Value::Integer(i64::try_from(c.max_firmware_size).unwrap_or(i64::MAX)),
    );
    if let Some(url) = &c.device_url {
        table.insert("device-url".into(), Value::String(url.clone()));
    }
    table.insert(
        "device-poll-interval".into(),
        Value::Integer(i64::try_from(c.device_poll_interval.as_secs()).unwrap_or(i64::MAX)),
    );
    table.insert(
        "listen-backlog".into(),
        Value::Integer(i64::from(c.connection_limits.listen_backlog)),
    );
    table.insert(
        "tls-session-cache".into(),
        Value::Integer(i64::try_from(c.connection_limits.tls_session_cache).unwrap_or(i64::MAX)),
    );
    if let Some(addr) = c.metrics_addr {
        table.insert("metrics-addr".into(), Value::String(addr.to_string()));
    }
    if let Some(addr) = c.api_tls_addr {
        table.insert("api-tls".into(), Value::String(addr.to_string()));
    }
    for (key, path) in [
        ("api-tls-cert", &c.api_tls_cert),
        ("api-tls-key", &c.api_tls_key),
    ] {
        if let Some(path) = path {
            table.insert(key.into(), Value::String(path.display().to_string()));
        }
    }
    table.insert(
        "node-role".into(),
        Value::String(c.node_role.as_str().to_owned()),
    );
    if let Some(id) = &c.node_id {
        table.insert("node-id".into(), Value::String(id.clone()));
    }
    table.insert(
        "drain-batch".into(),
        Value::Integer(i64::from(c.drain.batch)),
    );
    table.insert(
        "drain-interval".into(),
        Value::Integer(i64::try_from(c.drain.interval.as_secs()).unwrap_or(i64::MAX)),
    );
    table.insert(
        "local-storage-shared".into(),
        Value::Boolean(matches!(
            c.storage,
            StorageConfig::Local { shared: true, .. }
        )),
    );
    table.insert(
        "log-format".into(),
        Value::String(
            match effective.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
            .to_owned(),
        ),
    );
    if let StorageConfig::S3 { options, .. } = &c.storage
        && !options.is_empty()
    {
        let options = options
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_option(k) { "***" } else { v };
                (k.clone(), Value::String(shown.to_owned()))
            })
            .collect::<toml::Table>();
        table.insert("storage-option".into(), Value::Table(options));
    }
    table.to_string()
}

/// Storage options whose values are credentials.
fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "token", "password", "key_id", "access_key"]
        .iter()
        .any(|s| key.contains(s))
}

/// `scheme://user:***@host/…`: the URL without its password.
fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Listens for Ctrl-C and SIGTERM from the moment it is made, so a signal that arrives while
/// the server is still starting is not lost.
struct ShutdownSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    fn install() -> Self {
        #[cfg(unix)]
        let term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => Some(term),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                None
            }
        };
        ShutdownSignal {
            #[cfg(unix)]
            term,
        }
    }

    /// Resolves on Ctrl-C or SIGTERM.
    async fn wait(self) {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match self.term {
                Some(mut term) => {
                    term.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }
}
