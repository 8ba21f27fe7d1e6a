//! The NervesHub device client: what a Rust device embeds to take firmware updates from a
//! NervesHub server, behaving on the wire like nerves_hub_link 2.x.
//!
//! - [`Device`] drives the `nerveshub-proto` channel session with tokio: it connects over
//!   TLS with a client certificate ([`Identity`]) or NH1 shared-secret headers
//!   ([`SharedSecret`], signed fresh for every attempt, with the server's `Date` as a clock
//!   hint after a refusal), joins `device` with the firmware metadata, heartbeats, rejoins
//!   and reconnects with backoff and jitter.
//! - Updates are downloaded with HTTP Range resume and nerves_hub_link's retry policy
//!   ([`DownloadPolicy`]) and streamed straight into the built-in fwup engine or an external
//!   `fwup` ([`Updater`]); the download's SHA-256 is checked before the engine may switch
//!   the active slot. Progress and status go to the server as nerves_hub_link sends them.
//! - Or the device polls over HTTP instead ([`Transport::Poll`]): the same authentication,
//!   the same update path, reports posted instead of pushed.
//! - The product decides through the [`Client`] trait: apply, ignore or reschedule an
//!   update, reboot, identify.
//! - [`FirmwareEnv`] reads the firmware metadata from the U-Boot environment, as Nerves
//!   keeps it.
//!
//! Firmware is only applied when it is signed by a key the device trusts
//! ([`Config::firmware_keys`]; the server's keys only with
//! [`Config::accept_server_keys`]). With no key, every update is refused with
//! nerves_hub_link's reason ([`NO_PUBLIC_KEYS`]).
//!
//! TLS uses rustls with the crypto provider in [`Config::crypto_provider`], passed
//! explicitly (no process-wide default): aws-lc-rs with [`Config::new`], or any provider
//! (ring, a FIPS provider…) with [`Config::new_with_provider`].
//!
//! Errors keep their cause: [`Error`] groups connection failures in [`ConnectError`] (with
//! the rustls and tungstenite errors as sources; [`Error::rustls_error`] finds a failed
//! handshake's), polls in [`PollError`] and failed updates in [`UpdateError`] (the fwup
//! engine's or the operating system's error as source).
//!
//! # Example
//!
//! A device with a certificate, its firmware metadata read from its disk image, taking
//! updates with the built-in engine until a reboot is due:
//!
//! ```no_run
//! use std::path::Path;
//! use nerveshub_client::{
//!     Auth, Config, DefaultClient, Device, FirmwareEnv, Identity, NERVES_UBOOT_ENV, PublicKey,
//!     Stopped, Trust, Updater,
//! };
//!
//! # async fn demo(shutdown: impl std::future::Future<Output = ()>) -> Result<(), Box<dyn std::error::Error>> {
//! let image = Path::new("/dev/mmcblk0");
//! let identity = Identity::from_files(Path::new("cert.pem"), Path::new("key.pem"))?;
//! let mut config = Config::new(
//!     "wss://devices.example.com",
//!     Auth::Certificate(identity),
//!     Trust::ca_file(Path::new("ca.pem"))?,
//!     Updater::built_in(image),
//! );
//! config.join_params = FirmwareEnv::read(image, NERVES_UBOOT_ENV)?.join_params();
//! config.firmware_keys = vec![PublicKey::from_base64("…fwup-key.pub contents…")?];
//!
//! let mut device = Device::new(config, DefaultClient)?;
//! tokio::select! {
//!     stopped = device.run() => match stopped? {
//!         Stopped::Reboot(_) => { /* reboot into the new slot */ }
//!         _ => {}
//!     },
//!     () = shutdown => { /* dropping `run` disconnects (and abandons an update) */ }
//! }
//! # Ok(()) }
//! ```
//!
//! # Crate features
//!
//! - `aws-lc-rs` (default): rustls' aws-lc-rs provider for [`Config::new`]. Without it,
//!   build the configuration with [`Config::new_with_provider`].
//! - `fwup-process` (default): applying updates with an external `fwup` program
//!   ([`Updater::fwup`], `Updater::Fwup`), as nerves_hub_link does, through tokio's process
//!   support. Without it, updates are applied by the built-in engine only
//!   ([`Updater::built_in`]).
#![forbid(unsafe_code)]

mod apply;
mod client;
mod config;
mod connection;
mod device;
mod download;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod fwenv;
#[cfg(feature = "fwup-process")]
mod fwup_process;
mod handle;
mod tls;
mod update;
mod verify;

pub use client::{
    Client, DefaultClient, FwupMessage, RebootAction, RebootReason, UpdateDecision, UpdateInfo,
};
pub use config::{
    Auth, Config, DownloadPolicy, SharedSecret, Transport, Updater, WallClock, system_clock,
};
pub use device::{Device, NO_PUBLIC_KEYS, Stopped};
pub use error::{ConfigError, ConnectError, Error, PollError, Result, UpdateError};
pub use fwenv::{FirmwareEnv, NERVES_UBOOT_ENV};
pub use handle::DeviceHandle;
pub use tls::{Identity, Trust, certificates_from_bytes, private_key_from_bytes};

/// Re-exported so callers can name U-Boot environment locations and keys.
pub use nerveshub_fwup::PublicKey;
pub use nerveshub_fwup::UbootEnvLocation;
