//! What a device needs to know to connect and take updates.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nerveshub_fwup::PublicKey;
use nerveshub_proto::{DeviceJoinParams, Vsn};
use rustls::crypto::CryptoProvider;

use crate::error::{Error, Result};
use crate::tls::{Identity, Trust};

/// How the device proves who it is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Auth {
    /// A client certificate (mutual TLS). The socket path is `/socket/websocket`.
    Certificate(Identity),
    /// NH1 shared-secret headers, signed right before every connection attempt. The socket
    /// path is `/device-socket/websocket`.
    SharedSecret(SharedSecret),
}

impl Auth {
    /// The WebSocket path nerves_hub_link uses for this kind of authentication.
    pub fn socket_path(&self) -> &'static str {
        match self {
            Auth::Certificate(_) => "/socket/websocket",
            Auth::SharedSecret(_) => "/device-socket/websocket",
        }
    }
}

/// How the device reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// A long-lived WebSocket joined to the `device` channel (nerves_hub_link's way).
    #[default]
    Channel,
    /// HTTP polls (`POST /device/api/v1/poll`) at least this far apart; the server's
    /// `poll_interval_seconds`, when longer, wins. Each wait gets ±10 % jitter, as the server
    /// advises. Updates are downloaded, verified, applied and reported as in channel mode.
    Poll {
        /// The shortest time between two polls.
        interval: Duration,
    },
}

/// NH1 shared-secret credentials: a product key (`nhp_…`) and secret, or a device key and
/// secret, plus the device identifier signed into the token.
#[derive(Clone)]
pub struct SharedSecret {
    /// `x-nh-key`: the product or device key.
    pub key: String,
    /// The secret that belongs to the key.
    pub secret: Vec<u8>,
    /// The device identifier (the board serial for Nerves devices).
    pub identifier: String,
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSecret")
            .field("key", &self.key)
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

/// The downloader's retry and timeout policy; the defaults are nerves_hub_link's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadPolicy {
    /// Connection attempts in all (the first plus resumes): 10.
    pub max_attempts: u32,
    /// Fixed wait before each resume: 15 s.
    pub time_between_retries: Duration,
    /// No data for this long counts as a disconnect (and is resumed): 60 s.
    pub idle_timeout: Duration,
    /// Worst-case speed in bits per second (nerves_hub_link's formula treats its 30 000 as
    /// bits): a download of `n` bytes fails for good after `n × 8 / speed` seconds, at least
    /// [`worst_case_floor`](Self::worst_case_floor). Re-armed on every response.
    pub worst_case_speed_bits: u64,
    /// The lower bound of the worst-case timeout: 300 s.
    pub worst_case_floor: Duration,
    /// Absolute limit of one download: 24 h.
    pub max_time: Duration,
}

impl Default for DownloadPolicy {
    fn default() -> Self {
        DownloadPolicy {
            max_attempts: 10,
            time_between_retries: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            worst_case_speed_bits: 30_000,
            worst_case_floor: Duration::from_secs(300),
            max_time: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl DownloadPolicy {
    /// The worst-case timeout for a response of `len` bytes.
    pub fn worst_case_timeout(&self, len: u64) -> Duration {
        let ms = u128::from(len) * 8 * 1000 / u128::from(self.worst_case_speed_bits.max(1));
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).max(self.worst_case_floor)
    }
}

/// Where updates are applied.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Updater {
    /// The built-in fwup engine (`nerveshub-fwup`), writing to an image file or block
    /// device.
    BuiltIn {
        /// The destination (fwup's `-d`).
        devpath: PathBuf,
        /// The task (fwup's `--task`, a name prefix): `upgrade`.
        task: String,
    },
    /// An external `fwup` process, fed through `--framing --exit-handshake` (feature
    /// `fwup-process`).
    #[cfg(feature = "fwup-process")]
    Fwup {
        /// The `fwup` executable.
        program: PathBuf,
        /// The destination (`-d`).
        devpath: PathBuf,
        /// The task (`--task`).
        task: String,
        /// Extra arguments, e.g. `--unsafe`.
        extra_args: Vec<String>,
    },
}

impl Updater {
    /// The built-in engine applying task `upgrade` to `devpath`.
    pub fn built_in(devpath: impl Into<PathBuf>) -> Self {
        Updater::BuiltIn {
            devpath: devpath.into(),
            task: "upgrade".into(),
        }
    }

    /// The `fwup` program applying task `upgrade` to `devpath` (feature `fwup-process`).
    #[cfg(feature = "fwup-process")]
    pub fn fwup(program: impl Into<PathBuf>, devpath: impl Into<PathBuf>) -> Self {
        Updater::Fwup {
            program: program.into(),
            devpath: devpath.into(),
            task: "upgrade".into(),
            extra_args: Vec::new(),
        }
    }
}

/// Reads the wall clock as Unix seconds (replaceable so tests can simulate a device whose
/// clock is wrong).
pub type WallClock = fn() -> u64;

/// The system wall clock in Unix seconds.
pub fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything a [`Device`](crate::Device) needs.
///
/// Build it with [`Config::new`] and adjust the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server: `wss://host:port` (also `https://`, `ws://`, `http://`, or a bare
    /// `host:port`, which means `wss`). The path is always replaced by the socket path of
    /// the [`Auth`] kind, and `vsn` is set, as nerves_hub_link does.
    pub server: String,
    /// How the device authenticates.
    pub auth: Auth,
    /// Which servers the device trusts, for the socket and (unless
    /// [`download_trust`](Self::download_trust) is set) for firmware downloads.
    pub trust: Trust,
    /// Trust for firmware downloads when it differs from the socket's.
    pub download_trust: Option<Trust>,
    /// The TLS server name to send and check, when it is not the URL's host.
    pub sni: Option<String>,
    /// The join params: the firmware metadata (see
    /// [`FirmwareEnv::join_params`](crate::FirmwareEnv::join_params)). The client sets
    /// `device_api_version`, `console_version`, `currently_downloading_uuid` and
    /// `fwup_public_keys` itself.
    pub join_params: DeviceJoinParams,
    /// Firmware signing keys the device trusts. With none (and no server keys accepted),
    /// every update is refused.
    pub firmware_keys: Vec<PublicKey>,
    /// Ask for and use the keys the server pushes (`fwup_public_keys`). Off by default:
    /// trusting them lets whoever controls the server sign firmware for the device.
    pub accept_server_keys: bool,
    /// Where and how updates are applied.
    pub updater: Updater,
    /// The channel session's heartbeat, rejoin and reconnect backoff.
    pub session: nerveshub_proto::ClientConfig,
    /// The downloader's retry and timeout policy.
    pub download: DownloadPolicy,
    /// Minimum time between two `fwup_progress` pushes (nerves_hub_link: 500 ms).
    pub progress_interval: Duration,
    /// The serializer: V2 JSON (the default) or V3 MessagePack.
    pub vsn: Vsn,
    /// The network interface to report (`report_network_interface`, `started`).
    pub network_interface: Option<String>,
    /// Time allowed for TCP connect, TLS and the WebSocket upgrade: 30 s.
    pub connect_timeout: Duration,
    /// The wall clock used to sign shared-secret headers.
    pub wall_clock: WallClock,
    /// A socket (the default) or HTTP polling.
    pub transport: Transport,
    /// The rustls crypto provider for every TLS connection (socket, polls, downloads) and
    /// for loading the device's key: aws-lc-rs with [`Config::new`] (feature `aws-lc-rs`),
    /// or the one given to [`Config::new_with_provider`] (ring, a FIPS provider…).
    pub crypto_provider: Arc<CryptoProvider>,
}

impl Config {
    /// A configuration with nerves_hub_link's defaults and rustls' aws-lc-rs provider
    /// (feature `aws-lc-rs`).
    #[cfg(feature = "aws-lc-rs")]
    pub fn new(server: impl Into<String>, auth: Auth, trust: Trust, updater: Updater) -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Self::new_with_provider(server, auth, trust, updater, provider)
    }

    /// A configuration with nerves_hub_link's defaults whose TLS uses `crypto_provider`.
    pub fn new_with_provider(
        server: impl Into<String>,
        auth: Auth,
        trust: Trust,
        updater: Updater,
        crypto_provider: Arc<CryptoProvider>,
    ) -> Self {
        Config {
            server: server.into(),
            auth,
            trust,
            download_trust: None,
            sni: None,
            join_params: DeviceJoinParams::default(),
            firmware_keys: Vec::new(),
            accept_server_keys: false,
            updater,
            session: nerveshub_proto::ClientConfig::default(),
            download: DownloadPolicy::default(),
            progress_interval: Duration::from_millis(500),
            vsn: Vsn::V2Json,
            network_interface: None,
            connect_timeout: Duration::from_secs(30),
            wall_clock: system_clock,
            transport: Transport::Channel,
            crypto_provider,
        }
    }

    /// The URL of a polling endpoint (`path`, e.g. `/device/api/v1/poll`) on the server:
    /// `https` (or `http`) on the server's host and port.
    ///
    /// # Errors
    /// [`Error::Config`] for an unusable server address.
    pub fn poll_url(&self, path: &str) -> Result<reqwest::Url> {
        let mut url = self.socket_url()?;
        let scheme = if url.scheme() == "wss" {
            "https"
        } else {
            "http"
        };
        url.set_scheme(scheme)
            .map_err(|()| Error::config(format!("cannot use scheme {scheme}")))?;
        url.set_path(path);
        url.set_query(None);
        Ok(url)
    }

    /// The WebSocket URL: the server's scheme, host and port, the socket path of the auth
    /// kind and `?vsn=…`.
    ///
    /// # Errors
    /// [`Error::Config`] for an unusable server address.
    pub fn socket_url(&self) -> Result<reqwest::Url> {
        let raw = if self.server.contains("://") {
            self.server.clone()
        } else {
            format!("wss://{}", self.server)
        };
        let mut url = reqwest::Url::parse(&raw)
            .map_err(|e| Error::config_caused(format!("server URL {raw:?}"), e))?;
        let scheme = match url.scheme() {
            "wss" | "https" => "wss",
            "ws" | "http" => "ws",
            other => return Err(Error::config(format!("unsupported URL scheme {other:?}"))),
        };
        if url.host_str().is_none() {
            return Err(Error::config(format!("server URL {raw:?} has no host")));
        }
        // Switching between these special schemes always succeeds in the url crate.
        url.set_scheme(scheme)
            .map_err(|()| Error::config(format!("cannot use scheme {scheme}")))?;
        url.set_path(self.auth.socket_path());
        url.set_query(Some(&format!("vsn={}", self.vsn.as_str())));
        url.set_fragment(None);
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(server: &str, auth: Auth) -> Config {
        // Building a configuration uses no cryptography: any provider will do.
        let provider = Arc::new(CryptoProvider {
            cipher_suites: Vec::new(),
            kx_groups: Vec::new(),
            signature_verification_algorithms: rustls::crypto::WebPkiSupportedAlgorithms {
                all: &[],
                mapping: &[],
            },
            secure_random: &NoRandom,
            key_provider: &NoKeys,
        });
        Config::new_with_provider(
            server,
            auth,
            Trust::Pinned(vec![]),
            Updater::built_in("/tmp/x"),
            provider,
        )
    }

    #[derive(Debug)]
    struct NoRandom;

    impl rustls::crypto::SecureRandom for NoRandom {
        fn fill(
            &self,
            _buf: &mut [u8],
        ) -> std::result::Result<(), rustls::crypto::GetRandomFailed> {
            Err(rustls::crypto::GetRandomFailed)
        }
    }

    #[derive(Debug)]
    struct NoKeys;

    impl rustls::crypto::KeyProvider for NoKeys {
        fn load_private_key(
            &self,
            _key: rustls_pki_types::PrivateKeyDer<'static>,
        ) -> std::result::Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
            Err(rustls::Error::General("no keys".into()))
        }
    }

    fn secret() -> Auth {
        Auth::SharedSecret(SharedSecret {
            key: "nhp_k".into(),
            secret: b"s".to_vec(),
            identifier: "d".into(),
        })
    }

    #[test]
    fn socket_url_replaces_path_and_sets_vsn() {
        let u = cfg("wss://hub.example.com:4001/some/path?x=1", secret());
        assert_eq!(
            u.socket_url().unwrap().as_str(),
            "wss://hub.example.com:4001/device-socket/websocket?vsn=2.0.0"
        );
        let u = cfg("hub.example.com", secret());
        assert_eq!(
            u.socket_url().unwrap().as_str(),
            "wss://hub.example.com/device-socket/websocket?vsn=2.0.0"
        );
        let mut u = cfg("https://h:1", secret());
        u.vsn = Vsn::V3MsgPack;
        assert_eq!(
            u.socket_url().unwrap().as_str(),
            "wss://h:1/device-socket/websocket?vsn=3.0.0"
        );
        assert!(cfg("ftp://h", secret()).socket_url().is_err());
    }

    #[test]
    fn poll_url_uses_https_on_the_same_host() {
        let u = cfg("wss://hub.example.com:4001/x?y=1", secret());
        assert_eq!(
            u.poll_url("/device/api/v1/poll").unwrap().as_str(),
            "https://hub.example.com:4001/device/api/v1/poll"
        );
        let u = cfg("ws://h:1", secret());
        assert_eq!(
            u.poll_url("/device/update").unwrap().as_str(),
            "http://h:1/device/update"
        );
    }

    #[test]
    fn worst_case_timeout_is_nerves_hub_links() {
        let p = DownloadPolicy::default();
        assert_eq!(p.worst_case_timeout(1000), Duration::from_secs(300));
        // 100 MB at 30 kbit/s: 26 666 s.
        assert_eq!(
            p.worst_case_timeout(100_000_000),
            Duration::from_millis(26_666_666)
        );
    }
}
