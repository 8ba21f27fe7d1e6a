//! Starting and stopping a server: database, first admin, listeners.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth;
use crate::config::Config;
use crate::db::{self, Actor, Audit, Db, SecretCipher};
use crate::device::{self, DeviceHub};
use crate::error::ServerError;
use crate::state::AppState;
use crate::storage::Storage;
use crate::tls::{self, DeviceTlsIdentity};
use crate::{api, device_endpoint, files, listener};

/// How long a shutdown waits for device sockets to close.
const DEVICE_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The server admin created on a first start, with credentials shown only this once.
#[non_exhaustive]
pub struct FirstAdmin {
    /// The admin's email.
    pub email: String,
    /// The random password.
    pub password: String,
    /// An API token (`nhu_…`), also written to `<data-dir>/admin-token`.
    pub token: String,
}

impl fmt::Debug for FirstAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirstAdmin")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A running server. Dropping it does not stop it; call [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    api_addr: SocketAddr,
    device_addr: SocketAddr,
    first_admin: Option<FirstAdmin>,
    dev_ca_file: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    state: AppState,
}

impl RunningServer {
    /// Starts a server: opens (and migrates) the database, creates the first admin when there
    /// are no users, loads or makes the device endpoint's certificate, and binds both listeners.
    ///
    /// # Errors
    /// Anything that stops the server from starting, as a [`ServerError`].
    pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ServerError::io(format!("creating {}", config.data_dir.display()), e))?;
        files::restrict_data_dir(&config.data_dir)?;
        let url = config
            .database_url
            .clone()
            .unwrap_or_else(|| Db::sqlite_url(&config.data_dir));
        if config.database_url.is_none() {
            files::restrict_sqlite_files(&config.data_dir)?;
        }
        let db = Db::connect(&url).await?;
        let secrets = Arc::new(SecretCipher::load_or_create(&config.data_dir)?);
        let sealed = db::seal_plaintext_secrets(&db, &secrets).await?;
        if sealed > 0 {
            tracing::info!(
                count = sealed,
                "encrypted shared secrets stored in plaintext"
            );
        }
        tracing::info!(database = %db::redact_url(&url), backend = ?db.backend(), "database ready");
        let first_admin = bootstrap_admin(&db, &config).await?;

        let identity = DeviceTlsIdentity::load_or_generate(&config)?;
        let devices = DeviceHub::load(&db).await?;
        let tls = identity.server_config(devices.trust_store())?;

        let api_listener = TcpListener::bind(config.api_addr)
            .await
            .map_err(|e| ServerError::io(format!("binding the API to {}", config.api_addr), e))?;
        let device_listener = TcpListener::bind(config.device_addr).await.map_err(|e| {
            ServerError::io(
                format!("binding the device endpoint to {}", config.device_addr),
                e,
            )
        })?;
        let api_addr = local_addr(&api_listener)?;
        let device_addr = local_addr(&device_listener)?;

        let storage = Storage::open(&config, device_addr)?;
        tracing::info!(storage = %storage.describe(), "firmware storage ready");
        let state = AppState {
            db,
            config: Arc::new(config),
            devices,
            storage,
            secrets,
            logins: Arc::default(),
        };
        let (stop, stopped) = watch::channel(false);
        let limits = &state.config.connection_limits;
        let descriptors = listener::descriptor_limit();
        let device_limits = limits.device(descriptors);
        tracing::info!(
            descriptors = ?descriptors,
            device_connections = device_limits.max_connections,
            api_connections = limits.api().max_connections,
            "connection limits"
        );
        let api_task = tokio::spawn(listener::serve(
            "api",
            api_listener,
            None,
            listener::harden(api::router(state.clone())),
            limits.api(),
            stopped.clone(),
            DEVICE_SHUTDOWN_GRACE,
        ));
        let device_task = tokio::spawn(listener::serve(
            "device",
            device_listener,
            Some(tokio_rustls::TlsAcceptor::from(tls)),
            listener::harden(device_endpoint::router(state.clone())),
            device_limits,
            stopped.clone(),
            DEVICE_SHUTDOWN_GRACE,
        ));
        let sweep_task = tokio::spawn(crate::storage::sweep_task(
            state.db.clone(),
            state.storage.clone(),
            state.config.orphan_min_age,
            stopped.clone(),
        ));
        let maintenance_task = tokio::spawn(device::maintenance(state.clone(), stopped));
        tracing::info!(api = %api_addr, devices = %device_addr, "nerveshub-server listening");
        Ok(RunningServer {
            api_addr,
            device_addr,
            first_admin,
            dev_ca_file: identity.dev_ca_file,
            stop,
            tasks: vec![api_task, device_task, maintenance_task, sweep_task],
            state,
        })
    }

    /// The management API's address (the port is real when 0 was asked for).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The device endpoint's address.
    pub fn device_addr(&self) -> SocketAddr {
        self.device_addr
    }

    /// The admin created by this start, if it was the first.
    pub fn first_admin(&self) -> Option<&FirstAdmin> {
        self.first_admin.as_ref()
    }

    /// The development CA devices must trust, when the server made its own certificate.
    pub fn dev_ca_file(&self) -> Option<&std::path::Path> {
        self.dev_ca_file.as_deref()
    }

    /// Stops accepting, lets open requests finish, and closes the database.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Device sockets close with "going away" and record their disconnection first.
        self.state.devices.shutdown(DEVICE_SHUTDOWN_GRACE).await;
        for task in self.tasks {
            let _ = task.await;
        }
        self.state.db.close().await;
        tracing::info!("nerveshub-server stopped");
    }
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, ServerError> {
    listener
        .local_addr()
        .map_err(|e| ServerError::io("reading a listener's address", e))
}

/// Creates the server admin when the database has no users yet.
async fn bootstrap_admin(db: &Db, config: &Config) -> Result<Option<FirstAdmin>, ServerError> {
    if db.user_count().await? > 0 {
        return Ok(None);
    }
    let email = config.admin_email.trim().to_lowercase();
    let internal = |e: crate::error::ApiError| ServerError::Config(e.to_string());
    let password = auth::random_password().map_err(internal)?;
    let password_hash = auth::hash_password(&password).map_err(internal)?;
    let token = auth::new_token().map_err(internal)?;
    let mut tx = db.begin().await?;
    let user = db::insert_user(&mut tx, "admin", &email, &password_hash, true).await?;
    db::insert_token(&mut tx, user.id, &token.hash, "created on first start").await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::System,
            resource_type: "user",
            resource_id: &email,
            action: "create",
            description: format!("server admin {email} created on first start"),
        },
    )
    .await?;
    // The token file is written before the commit: if it cannot be written, no admin exists
    // whose only credentials were lost.
    tls::write_file(
        &config.data_dir.join("admin-token"),
        format!("{}\n", token.text).as_bytes(),
        true,
    )?;
    tx.commit().await?;
    Ok(Some(FirstAdmin {
        email,
        password,
        token: token.text,
    }))
}
