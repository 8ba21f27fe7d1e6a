//! Starting and stopping a server: database, first admin, listeners.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth;
use crate::cluster::{self, Cluster};
use crate::config::Config;
use crate::db::{self, Actor, Audit, Db, SecretCipher};
use crate::device::{self, DeviceHub};
use crate::error::ServerError;
use crate::fleet::{self, Fleet, Timing};
use crate::state::AppState;
use crate::storage::Storage;
use crate::tls::{self, DeviceTlsIdentity};
use crate::user_ca::UserCa;
use crate::web;
use crate::{api, device_endpoint, files, listener, observability};

/// How long a shutdown waits for open requests, for the device sockets left after the
/// paced drain, and for their disconnections to be written.
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
    metrics_addr: Option<SocketAddr>,
    first_admin: Option<FirstAdmin>,
    dev_ca_file: Option<PathBuf>,
    /// Stops the listeners (the first step of a shutdown).
    accepting: watch::Sender<bool>,
    /// Stops the orchestrator supervisor, which stops its workers and resigns their leads.
    orchestrators: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    /// Stops the remaining tasks, once the device sockets are closed.
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    api_tls_addr: Option<SocketAddr>,
    state: AppState,
    /// This node counts as alive for servers this process starts later until this is dropped.
    _running_here: cluster::RunningHere,
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
        // Every listener is bound before anything is created: a port in use must fail the
        // start before the first admin's one-time password is made (and lost with the error).
        let backlog = config.connection_limits.listen_backlog;
        let role = config.node_role;
        // A device node's API listener serves only /health and /ready; an API node has no
        // device listener.
        let api_listener = bind(config.api_addr, backlog, "the API")?;
        let device_listener = if role.serves_devices() {
            Some(bind(config.device_addr, backlog, "the device endpoint")?)
        } else {
            None
        };
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(bind(addr, backlog, "the metrics endpoint")?),
            None => None,
        };
        let api_addr = local_addr(&api_listener)?;
        let device_addr = match &device_listener {
            Some(listener) => local_addr(listener)?,
            None => config.device_addr,
        };
        let metrics_addr = metrics_listener.as_ref().map(local_addr).transpose()?;
        let api_tls_listener = match config.api_tls_addr {
            Some(addr) => Some(bind(addr, backlog, "the HTTPS API")?),
            None => None,
        };
        let api_tls_addr = api_tls_listener.as_ref().map(local_addr).transpose()?;
        if metrics_listener.is_some() {
            observability::install_recorder();
        }

        if config.database_url.is_none() {
            files::restrict_sqlite_files(&config.data_dir)?;
        }
        let db = Db::connect(&url, db::PoolSizes::of(&config))
            .await?
            .with_clock(config.clock.clone());
        let secrets = Arc::new(SecretCipher::load_or_create(&config.data_dir)?);
        let sealed = db::seal_plaintext_secrets(&db, &secrets).await?;
        if sealed > 0 {
            tracing::info!(
                count = sealed,
                "encrypted shared secrets stored in plaintext"
            );
        }
        tracing::info!(database = %db::redact_url(&url), backend = ?db.backend(), "database ready");
        cluster::check_secrets_key(&db, &secrets).await?;
        let cluster = Cluster::join(&db, &config, config.storage.is_local()).await?;
        let running_here = cluster::RunningHere::mark(cluster.node_id());
        let first_admin = bootstrap_admin(&db, &config).await?;

        let identity = DeviceTlsIdentity::load_or_generate(&config)?;
        let devices = DeviceHub::load(&db, &cluster, &config.crypto_provider).await?;
        let tls = identity.server_config(
            devices.trust_store(),
            config.connection_limits.tls_session_cache,
            &config.crypto_provider,
        )?;
        let api_tls = api_tls_config(&config, &identity)?;

        let url_secret = cluster::shared_url_secret(&db, &config).await?;
        let storage = Storage::open(&config, device_addr, url_secret)?;
        tracing::info!(storage = %storage.describe(), "firmware storage ready");
        let fleet = Fleet::new(
            Timing {
                coalesce: config.rollout_coalesce,
                backup_tick: config.rollout_backup_tick,
                in_flight_timeout: config.update_in_flight_timeout,
            },
            cluster.bus().cloned(),
        );
        let state = AppState {
            db,
            clock: config.clock.clone(),
            config: Arc::new(config),
            devices,
            storage,
            fleet,
            secrets,
            logins: Arc::default(),
            cluster,
        };
        let (stop, stopped) = watch::channel(false);
        let (accepting, not_accepting) = watch::channel(false);
        let limits = &state.config.connection_limits;
        let descriptors = listener::descriptor_limit();
        let device_limits = limits.device(descriptors);
        tracing::info!(
            descriptors = ?descriptors,
            device_connections = device_limits.max_connections,
            api_connections = limits.api().max_connections,
            "connection limits"
        );
        let api_router = if role.serves_api() {
            api_routes(&state, false)
        } else {
            observability::health_routes(state.clone())
        };
        let api_task = tokio::spawn(listener::serve(
            "api",
            api_listener,
            None,
            listener::harden(observability::layer(api_router, "api")),
            limits.api(),
            not_accepting.clone(),
            DEVICE_SHUTDOWN_GRACE,
        ));
        let mut tasks = vec![api_task];
        if let Some(device_listener) = device_listener {
            tasks.push(tokio::spawn(listener::serve(
                "device",
                device_listener,
                Some(tokio_rustls::TlsAcceptor::from(tls)),
                listener::harden(observability::layer(
                    device_endpoint::router(state.clone()),
                    "device",
                )),
                device_limits,
                not_accepting.clone(),
                DEVICE_SHUTDOWN_GRACE,
            )));
        }
        if let (Some(listener), Some(tls), true) = (api_tls_listener, api_tls, role.serves_api()) {
            // The same API behind TLS; a verified user certificate travels to `Caller` as the
            // connection's PeerCertificates.
            tasks.push(tokio::spawn(listener::serve(
                "api-tls",
                listener,
                Some(tokio_rustls::TlsAcceptor::from(tls)),
                listener::harden(observability::layer(api_routes(&state, true), "api-tls")),
                limits.api(),
                not_accepting.clone(),
                DEVICE_SHUTDOWN_GRACE,
            )));
        }
        if let Some(listener) = metrics_listener {
            let router =
                observability::layer(observability::metrics_router(state.clone()), "metrics");
            let mut metrics_stop = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = metrics_stop.wait_for(|stop| *stop).await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            }));
        }
        if role.serves_api() {
            tasks.push(tokio::spawn(crate::storage::sweep_task(
                state.db.clone(),
                state.storage.clone(),
                state.config.orphan_min_age,
                stopped.clone(),
            )));
        }
        tasks.push(tokio::spawn(cluster::run(state.clone(), stopped.clone())));
        tasks.push(tokio::spawn(cluster::bus::listen(
            state.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(
            state.devices.presence.clone().run(stopped.clone()),
        ));
        tasks.push(tokio::spawn(device::maintenance(
            state.clone(),
            stopped.clone(),
        )));
        let orchestrators = role.serves_api().then(|| {
            let (stop, stopped) = watch::channel(false);
            let supervisor = tokio::spawn(fleet::orchestrator::supervise(state.clone(), stopped));
            (stop, supervisor)
        });
        match metrics_addr {
            Some(metrics) => {
                tracing::info!(api = %api_addr, devices = %device_addr, %metrics, "nerveshub-server listening")
            }
            None => {
                tracing::info!(api = %api_addr, devices = %device_addr, "nerveshub-server listening")
            }
        }
        Ok(RunningServer {
            api_addr,
            device_addr,
            metrics_addr,
            first_admin,
            dev_ca_file: identity.dev_ca_file,
            accepting,
            orchestrators,
            stop,
            tasks,
            state,
            api_tls_addr,
            _running_here: running_here,
        })
    }

    /// The HTTPS listener of the management API, when `api_tls_addr` was configured.
    pub fn api_tls_addr(&self) -> Option<SocketAddr> {
        self.api_tls_addr
    }

    /// Test hook: takes every connection of the device endpoint's database pool and keeps
    /// them until the returned value is dropped (as a reconnect storm would).
    ///
    /// # Errors
    /// The database failed.
    #[doc(hidden)]
    pub async fn hold_device_pool(&self) -> Result<impl Send + use<>, ServerError> {
        Ok(self.state.db.hold_device_pool().await?)
    }

    /// The management API's address (the port is real when 0 was asked for).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The device endpoint's address.
    pub fn device_addr(&self) -> SocketAddr {
        self.device_addr
    }

    /// The metrics listener's address, when one was configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The admin created by this start, if it was the first.
    pub fn first_admin(&self) -> Option<&FirstAdmin> {
        self.first_admin.as_ref()
    }

    /// The development CA devices must trust, when the server made its own certificate.
    pub fn dev_ca_file(&self) -> Option<&std::path::Path> {
        self.dev_ca_file.as_deref()
    }

    /// Test-only fault injection: while `fail` is true, the device presence writer's database
    /// writes (disconnections, "last seen") fail as if the database were down; they are kept
    /// and retried.
    #[doc(hidden)]
    pub fn fail_presence_writes(&self, fail: bool) {
        self.state.devices.presence.set_failing(fail);
    }

    /// Test-only: devices whose presence change (disconnection, "last seen") is not yet
    /// written.
    #[doc(hidden)]
    pub fn pending_presence_writes(&self) -> usize {
        self.state.devices.presence.pending_count()
    }

    /// Test-only: how many times the device trust store was read whole from the database
    /// again since start (the initial load not counted).
    #[doc(hidden)]
    pub fn trust_reloads(&self) -> u64 {
        self.state.devices.trust_reloads()
    }

    /// Test-only: the deployments whose orchestrator this node leads, in id order.
    #[doc(hidden)]
    pub fn leading_deployments(&self) -> Vec<i64> {
        self.state.cluster.election().leading()
    }

    /// Test-only: [`leading_deployments`](Self::leading_deployments) as a function that
    /// outlives `self`, to watch a node's leads while it shuts down.
    #[doc(hidden)]
    pub fn leading_probe(&self) -> impl Fn() -> Vec<i64> + Send + Sync + 'static + use<> {
        let cluster = self.state.cluster.clone();
        move || cluster.election().leading()
    }

    /// Stops the node gracefully: stops accepting connections; stops the rollout
    /// orchestrators and resigns their leads (another node takes them over at once); closes
    /// the device sockets at the pace of [`Config::drain`] (they reconnect to other nodes)
    /// and writes their disconnections; then stops the rest, leaves the cluster and closes
    /// the database. Without devices it takes moments.
    pub async fn shutdown(self) {
        let _ = self.accepting.send(true);
        if let Some((stop, task)) = self.orchestrators {
            let _ = stop.send(true);
            let _ = task.await;
        }
        // The supervisor resigned what it led; this covers a supervisor that panicked.
        self.state.cluster.election().resign_all().await;
        // The lease, the presence writer and the bus keep running meanwhile: a long drain
        // must not make the devices still here look offline.
        self.state
            .devices
            .shutdown(self.state.config.drain, DEVICE_SHUTDOWN_GRACE)
            .await;
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        cluster::leave(&self.state.db, self.state.cluster.node_id()).await;
        self.state.db.close().await;
        tracing::info!("nerveshub-server stopped");
    }
}

/// Binds a listener with a listen queue of `backlog` connections (tokio's `bind` asks for 128:
/// in a reconnect storm the kernel then drops SYNs and devices wait 1, 3, 7 s in retries). The
/// kernel caps it at `net.core.somaxconn`.
/// What an API listener serves: the management API, health probes, the web UI (its cookies
/// `Secure` on the TLS listener) and a product's extension routes under `/ext`.
fn api_routes(state: &AppState, secure_cookies: bool) -> axum::Router {
    let router = api::router(state.clone())
        .merge(observability::health_routes(state.clone()))
        .merge(web::router(state.clone(), secure_cookies));
    match &state.config.api_extension {
        Some(extension) => router.nest(crate::config::EXTENSION_PREFIX, extension.clone()),
        None => router,
    }
}

fn bind(addr: SocketAddr, backlog: u32, what: &str) -> Result<TcpListener, ServerError> {
    let err = |e| ServerError::io(format!("binding {what} to {addr}"), e);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // What `TcpListener::bind` does too: a restarted server rebinds while old connections
    // linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(backlog).map_err(err)
}

/// The HTTPS API's TLS configuration, when it is asked for. The user CA is made (or loaded)
/// on every start, so `POST /api/users/me/certificates` always has one.
fn api_tls_config(
    config: &Config,
    identity: &DeviceTlsIdentity,
) -> Result<Option<Arc<rustls::ServerConfig>>, ServerError> {
    let user_ca = UserCa::load_or_generate(&config.data_dir.join("tls"))?;
    if config.api_tls_addr.is_none() {
        return Ok(None);
    }
    let (chain, key) = match (&config.api_tls_cert, &config.api_tls_key) {
        (Some(cert), Some(key)) => (tls::read_chain(cert)?, tls::read_key(key)?),
        (None, None) => (identity.chain.clone(), identity.key.clone_key()),
        _ => {
            return Err(ServerError::Config(
                "--api-tls-cert and --api-tls-key must be given together".into(),
            ));
        }
    };
    Ok(Some(user_ca.api_tls_config(
        chain,
        key,
        &config.crypto_provider,
    )?))
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

/// Gives the user `email` a new random password, offline: on the database `config` names,
/// with the server stopped or running. Returns the password, which is shown only this once.
/// The user's API tokens stay valid; the change is in the audit log.
///
/// # Errors
/// [`ServerError::Config`] when no user has that email; database errors as they come.
pub async fn reset_password(config: &Config, email: &str) -> Result<String, ServerError> {
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| Db::sqlite_url(&config.data_dir));
    if config.database_url.is_none() && !config.data_dir.join("nerveshub.db").exists() {
        return Err(ServerError::Config(format!(
            "no database in {} (is --data-dir right?)",
            config.data_dir.display()
        )));
    }
    let db = Db::connect(&url, db::PoolSizes::of(config)).await?;
    let result = reset_password_in(&db, email).await;
    db.close().await;
    result
}

async fn reset_password_in(db: &Db, email: &str) -> Result<String, ServerError> {
    let email = email.trim().to_lowercase();
    let internal = |e: crate::error::ApiError| ServerError::Config(e.to_string());
    let user = db
        .user_by_email(&email)
        .await?
        .ok_or_else(|| ServerError::Config(format!("no user with the email {email}")))?;
    let password = auth::random_password().map_err(internal)?;
    let password_hash = auth::hash_password(&password).map_err(internal)?;
    let mut tx = db.begin().await?;
    db::set_user_password(&mut tx, user.id, &password_hash).await?;
    db::audit(
        &mut tx,
        Audit {
            org_id: None,
            actor: Actor::System,
            resource_type: "user",
            resource_id: &email,
            action: "reset_password",
            description: format!("password of {email} reset from the command line"),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user = %email, "password reset");
    Ok(password)
}
