//! Building and running the gateway: load keys, connect the database, bind both listeners
//! (port 0 works, for tests), then serve until told to stop and drain in-flight calls.

use crate::api::{self, error, error::Reason};
use crate::clock::Clock;
use crate::config::{Config, ConfigErrors};
use crate::data_keys::{self, DataKeys};
use crate::decision::Policy;
use crate::delivery::Delivery;
use crate::envelope::KeyRing;
use crate::state::{AppState, SharedState};
use crate::store::Store;
use anyhow::Context;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

/// How long in-flight calls may take to finish once shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Application {
    state: SharedState,
    tls: Option<crate::tls::Reloadable>,
    /// TLS on the admin listener (`admin.tls`), reloaded on SIGHUP with the other.
    admin_tls: Option<crate::tls::Reloadable>,
    api_listener: TcpListener,
    admin_listener: TcpListener,
    /// The app API's listener (Option C), when `[app]` is configured.
    app_listener: Option<crate::app_api::Listener>,
    /// Sends the life-cycle operations to TSH; `None` while `tsh.base_url` is unset.
    sender: Option<crate::lifecycle::Sender>,
    /// Delivers the webhook events; `None` without `[[webhooks]]`.
    webhooks: Option<crate::webhooks::Sender>,
}

impl Application {
    /// Validates the configuration, loads the keys, connects the database (applying its
    /// migrations) and binds the two listeners. Every failure names the setting at fault.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Clock::system()).await
    }

    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Application> {
        let policy = check_config(&config)?;
        let keys = load_key_ring(&config)?;
        let key_file = config
            .keys
            .pan_index_key_file
            .as_ref()
            .context("keys.pan_index_key_file: required")?;
        let data_keys = DataKeys::from_file(key_file)
            .map_err(|e| anyhow::anyhow!("keys.pan_index_key_file: {e}"))?;
        let store = Store::connect(
            &config.database.url,
            config.database.max_connections,
            Duration::from_millis(config.database.timeout_ms),
        )
        .await
        .map_err(|e| anyhow::anyhow!("database.url: cannot open the database: {e}"))?;
        // A 200 is answered only after a commit: say so if the database does not make that
        // commit durable (a power cut would lose it).
        match store.commits_are_durable().await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => tracing::warn!("database commits are not durable: {why}"),
            Err(e) => tracing::warn!(error = %e, "cannot read the database's durability settings"),
        }
        // Contact details sealed by earlier releases are bound to their card before serving.
        let resealed = crate::card_file::reseal_unbound_contacts(&store, &data_keys)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        if resealed > 0 {
            tracing::info!(
                cards = resealed,
                "contact details re-sealed, bound to their card"
            );
        }
        let sender = crate::lifecycle::Sender::new(
            store.clone(),
            &config.tsh,
            &config.issuer.id,
            clock.clone(),
        )?;
        let webhooks =
            crate::webhooks::Sender::new(store.clone(), &config.webhooks, clock.clone()).await?;
        let delivery = Delivery::from_config(&config)?;
        let sim_swap = crate::controls::sim_swap::SimSwap::from_config(&config.sim_swap)
            .map_err(|e| anyhow::anyhow!(e))?;
        delivery.check().await.map_err(|e| anyhow::anyhow!(e))?;
        let tls = match &config.server.tls {
            Some(files) => {
                Some(crate::tls::Reloadable::new(files).map_err(|e| anyhow::anyhow!(e))?)
            }
            None => None,
        };
        let admin_tls = match &config.admin.tls {
            Some(files) => Some(
                crate::tls::Reloadable::of(crate::tls::TlsFiles::admin(files))
                    .map_err(|e| anyhow::anyhow!(e))?,
            ),
            None => None,
        };
        let api_listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("server.listen: cannot listen on {}", config.server.listen))?;
        let admin_listener = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot listen on {}", config.admin.listen))?;
        let app_listener = match &config.app {
            Some(app) => Some(crate::app_api::Listener::bind(app).await?),
            None => None,
        };
        crate::metrics::install();
        let state = Arc::new(AppState {
            config,
            keys,
            data_keys,
            store,
            delivery,
            clock,
            policy,
            sim_swap,
        });
        Ok(Application {
            state,
            tls,
            admin_tls,
            api_listener,
            admin_listener,
            app_listener,
            sender,
            webhooks,
        })
    }

    /// The app API's address, when `[app]` is configured.
    pub fn app_addr(&self) -> Option<SocketAddr> {
        self.app_listener.as_ref().and_then(|l| l.local_addr())
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn state(&self) -> SharedState {
        self.state.clone()
    }

    /// The TLS configuration, to reload it (what SIGHUP does), when the API speaks TLS.
    pub fn tls_reloader(&self) -> Option<crate::tls::Reloadable> {
        self.tls.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight calls finish
    /// (up to [`DRAIN_TIMEOUT`]) and closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        for warning in crate::delivery::template::sms_warnings(&state.config.templates) {
            tracing::warn!("{warning}");
        }
        if state.config.server.tls.is_none() {
            tracing::warn!(
                "server.tls is not set: the TSH-facing API speaks plain HTTP (use TLS termination in front, or set server.tls.*)"
            );
        }
        // The outbox is for development: say so at every start, and in /health and /metrics.
        for channel in state.delivery.outbox_channels() {
            tracing::warn!(
                channel = channel.as_str(),
                dir = %state.config.outbox.dir.display(),
                "the {channel} channel is the outbox: messages are written to files, not delivered (serve --require-real-channels refuses this)"
            );
        }
        let outbox: Vec<&'static str> = state
            .delivery
            .outbox_channels()
            .iter()
            .map(|c| c.as_str())
            .collect();
        crate::metrics::record_outbox_channels(&outbox);
        if state.config.admin.token.is_empty() {
            tracing::warn!(
                "admin.token is not set: the admin API answers reads on loopback without a token and refuses every write (401)"
            );
        }
        let api = api_service(state.clone());
        // The admin API's calls (their bodies included) have the TSH-facing calls' deadline.
        let admin = crate::admin::router(state.clone()).layer(
            tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(state.config.server.request_timeout_ms),
            ),
        );
        let (tx, rx) = tokio::sync::watch::channel(false);
        tracing::info!(api = %self.api_addr(), admin = %self.admin_addr(), backend = state.store.backend_name(), "issuer-gateway listening");
        let app_tls = self.app_listener.as_ref().and_then(|l| l.tls.clone());
        spawn_reload_on_sighup(
            self.tls
                .iter()
                .chain(&self.admin_tls)
                .chain(&app_tls)
                .cloned()
                .collect(),
        );
        let api_task = tokio::spawn(crate::serve::serve(
            self.api_listener,
            self.tls.clone(),
            api,
            crate::serve::Limits::api(&state.config),
            "api",
            rx.clone(),
        ));
        let admin_task = tokio::spawn(crate::serve::serve(
            self.admin_listener,
            self.admin_tls.clone(),
            admin,
            crate::serve::Limits::admin(&state.config),
            "admin",
            rx.clone(),
        ));
        let app_task = self.app_listener.map(|l| {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(app = %addr, tls = l.tls.is_some(), "app API listening");
            if l.tls.is_none() {
                tracing::warn!(
                    "app.tls is not set: the app API speaks plain HTTP (use TLS termination in front, or set app.tls.*)"
                );
            }
            tokio::spawn(crate::serve::serve(
                l.listener,
                l.tls,
                crate::app_api::router(state.clone()),
                crate::app_api::limits(&state.config),
                "app",
                rx.clone(),
            ))
        });
        let purge_task = tokio::spawn(crate::retention::run_background(
            state.store.clone(),
            state.config.retention.clone(),
            state.clock.clone(),
            rx.clone(),
        ));
        let sender_task = crate::lifecycle::sender::start(&state, self.sender, rx.clone()).await;
        let notice_task = crate::notices::start(state.clone(), rx.clone());
        let webhook_task = crate::webhooks::sender::start(self.webhooks, rx.clone());
        shutdown.await;
        tracing::info!("shutting down: draining in-flight calls");
        let _ = tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            let _ = api_task.await;
            let _ = admin_task.await;
            if let Some(t) = app_task {
                let _ = t.await;
            }
            let _ = purge_task.await;
            let _ = notice_task.await;
            if let Some(t) = sender_task {
                let _ = t.await;
            }
            if let Some(t) = webhook_task {
                let _ = t.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "some calls were still running after {} s; stopping anyway",
                DRAIN_TIMEOUT.as_secs()
            );
        }
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every problem that keeps the configuration from serving, one line each: the settings'
/// (`Config::validate_for_serve`) and the decision policy's (which only `decision` can judge).
/// Returns the compiled policy.
pub fn check_config(config: &Config) -> Result<Policy, ConfigErrors> {
    let mut problems = match config.validate_for_serve() {
        Ok(()) => Vec::new(),
        Err(ConfigErrors(p)) => p,
    };
    match Policy::compile(&config.policy) {
        Ok(policy) if problems.is_empty() => Ok(policy),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(p) => {
            problems.extend(p);
            Err(ConfigErrors(problems))
        }
    }
}

/// The TSH-facing router with its layers: panics become 500 with the contract's body, and
/// beyond `server.max_concurrency` calls are shed with 503 instead of queueing.
pub fn api_service(state: SharedState) -> Router {
    let max = state.config.server.max_concurrency;
    // Overload and panics are internal faults to TSH: HTTP 500 with the `internal` code (the
    // contract declares 200, 400 and 500 only; 500 is what Thales retries).
    let internal = state.config.response_codes.number(Reason::Internal);
    // The layers wrap the whole router (not each route, as Router::layer would), so the
    // concurrency limit counts every call of every operation together.
    let guarded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            move |_: tower::BoxError| async move {
                error::response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    internal,
                    "overloaded, try again",
                )
            },
        ))
        .load_shed()
        .concurrency_limit(max)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            move |_: Box<dyn std::any::Any + Send>| {
                error::response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    internal,
                    "internal error",
                )
            },
        ))
        .service(api::router(state));
    Router::new().fallback_service(guarded)
}

/// Loads every configured PKCS#7 private key (and certificate), refusing key files that other
/// users can read.
pub fn load_key_ring(config: &Config) -> anyhow::Result<KeyRing> {
    let mut ring = KeyRing::new();
    for path in &config.keys.pkcs7_private_keys {
        let shown = path.display();
        match data_keys::check_private_file(path) {
            Ok(()) => {}
            Err(data_keys::PermError::Io(e)) => {
                anyhow::bail!("keys.pkcs7_private_keys: cannot read {shown}: {e}")
            }
            Err(data_keys::PermError::Mode(m)) => {
                anyhow::bail!(
                    "keys.pkcs7_private_keys: {shown} is readable by other users (mode {m:o}); run: chmod 600 {shown}"
                )
            }
        }
        let pem = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("keys.pkcs7_private_keys: cannot read {shown}"))?,
        );
        ring.add_private_key_pem(&pem)
            .map_err(|e| anyhow::anyhow!("keys.pkcs7_private_keys: {shown}: {e}"))?;
    }
    for path in &config.keys.pkcs7_certificates {
        let shown = path.display();
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("keys.pkcs7_certificates: cannot read {shown}"))?;
        ring.add_certificate_pem(&pem)
            .map_err(|e| anyhow::anyhow!("keys.pkcs7_certificates: {shown}: {e}"))?;
    }
    Ok(ring)
}

/// Reloads the TLS files on every SIGHUP (Unix); a failed reload keeps the running files.
/// Without TLS, SIGHUP is logged and ignored (it must never stop the gateway undrained).
fn spawn_reload_on_sighup(tls: Vec<crate::tls::Reloadable>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP");
            return;
        };
        while hup.recv().await.is_some() {
            if tls.is_empty() {
                tracing::info!(
                    "SIGHUP: nothing to reload (none of server.tls, admin.tls, app.tls is set)"
                );
            }
            for tls in &tls {
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        section = tls.section(),
                        "TLS certificate, key and client CA reloaded"
                    ),
                    Err(e) => {
                        tracing::error!(section = tls.section(), error = %e, "TLS reload failed; the previous files stay in use")
                    }
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = tls;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
