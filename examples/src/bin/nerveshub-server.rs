//! `nerveshub-server`: the NervesHub update server on its embedded defaults (SQLite and local
//! firmware storage in `./nerveshub-data`, a development certificate for the device endpoint),
//! or on PostgreSQL and S3 for scale. Every flag has an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use nerveshub_server::{Config, DEFAULT_MAX_FIRMWARE_SIZE, RunningServer};

#[derive(Debug, Parser)]
#[command(version, about = "The NervesHub firmware update server")]
struct Args {
    /// Holds the SQLite database, local firmware storage, development TLS files and the first
    /// admin's token.
    #[arg(long, env = "NERVESHUB_DATA_DIR", default_value = "./nerveshub-data")]
    data_dir: PathBuf,
    /// `postgres://…` to keep data in PostgreSQL instead of SQLite.
    #[arg(long, env = "NERVESHUB_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Management API address (plain HTTP).
    #[arg(long, env = "NERVESHUB_API_ADDR", default_value = "127.0.0.1:4000")]
    api_addr: SocketAddr,
    /// Device endpoint address (HTTPS).
    #[arg(long, env = "NERVESHUB_DEVICE_ADDR", default_value = "0.0.0.0:4001")]
    device_addr: SocketAddr,
    /// Device endpoint certificate chain (PEM). Without it, a development CA and certificate
    /// are made in `<data-dir>/tls` on first start.
    #[arg(long, env = "NERVESHUB_DEVICE_CERT", requires = "device_key")]
    device_cert: Option<PathBuf>,
    /// Device endpoint private key (PEM).
    #[arg(long, env = "NERVESHUB_DEVICE_KEY", requires = "device_cert")]
    device_key: Option<PathBuf>,
    /// Another name the development certificate is valid for (repeat, or comma-separated in
    /// the environment variable).
    #[arg(
        long = "device-host",
        env = "NERVESHUB_DEVICE_HOSTS",
        value_delimiter = ','
    )]
    device_hosts: Vec<String>,
    /// Email of the server admin created on first start.
    #[arg(long, env = "NERVESHUB_ADMIN_EMAIL", default_value = "admin@localhost")]
    admin_email: String,
    /// Firmware storage: `local` (under the data directory), `s3://bucket` or
    /// `s3://bucket/prefix` (configured by AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP).
    #[arg(long, env = "NERVESHUB_STORAGE", default_value = "local")]
    storage: String,
    /// Largest firmware upload accepted, in bytes.
    #[arg(long, env = "NERVESHUB_MAX_FIRMWARE_SIZE", default_value_t = DEFAULT_MAX_FIRMWARE_SIZE)]
    max_firmware_size: u64,
    /// Base of the URLs handed to devices (default `https://localhost:<device port>`).
    #[arg(long, env = "NERVESHUB_DEVICE_URL")]
    device_url: Option<String>,
    /// Also serve the management API over HTTPS on this address (e.g. 127.0.0.1:4443), where
    /// user certificates (`nerveshub login --certificate`) sign in.
    #[arg(long, env = "NERVESHUB_API_TLS")]
    api_tls: Option<SocketAddr>,
    /// The HTTPS API's certificate chain (PEM) [default: the device endpoint's]
    #[arg(long, env = "NERVESHUB_API_TLS_CERT", requires = "api_tls_key")]
    api_tls_cert: Option<PathBuf>,
    /// The HTTPS API's private key (PEM)
    #[arg(long, env = "NERVESHUB_API_TLS_KEY", requires = "api_tls_cert")]
    api_tls_key: Option<PathBuf>,
}

impl Args {
    fn into_config(self) -> Config {
        let mut config = Config::new(self.data_dir);
        config.database_url = self.database_url;
        config.api_addr = self.api_addr;
        config.device_addr = self.device_addr;
        config.device_cert = self.device_cert;
        config.device_key = self.device_key;
        config.device_hosts = self
            .device_hosts
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect();
        config.admin_email = self.admin_email;
        config.storage = self.storage;
        config.max_firmware_size = self.max_firmware_size;
        config.device_url = self.device_url;
        config.api_tls_addr = self.api_tls;
        config.api_tls_cert = self.api_tls_cert;
        config.api_tls_key = self.api_tls_key;
        config
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Args::parse().into_config();
    let shutdown = ShutdownSignal::install();
    let data_dir = config.data_dir.clone();
    let server = RunningServer::start(config)
        .await
        .context("starting nerveshub-server")?;
    // Written, not println!-ed: a closed stdout must not stop the server.
    let mut banner = String::new();
    if let Some(admin) = server.first_admin() {
        // Shown once, to the terminal only: the password is never stored in clear.
        banner += "Created the server admin (shown only this once):\n";
        banner += &format!("  email:    {}\n", admin.email);
        banner += &format!("  password: {}\n", admin.password);
        banner += &format!("  token:    {}\n", admin.token);
        banner += &format!(
            "The token is also in {} (mode 0600).\n",
            data_dir.join("admin-token").display()
        );
    }
    banner += &format!("Management API: http://{}/api\n", server.api_addr());
    banner += &format!("Device endpoint: https://{}\n", server.device_addr());
    if let Some(addr) = server.api_tls_addr() {
        banner += &format!("Management API (HTTPS, user certificates): https://{addr}/api\n");
    }
    if let Some(ca) = server.dev_ca_file() {
        banner += &format!("Devices must trust the development CA {}\n", ca.display());
    }
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(banner.as_bytes());
        let _ = stdout.flush();
    }
    shutdown.wait().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
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
