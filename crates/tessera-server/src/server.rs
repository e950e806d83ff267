//! Start-up and shutdown: open the storage the config names (with its static objects overlaid),
//! bind the listeners, run the HTTP servers and background tasks, and stop cleanly on a signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::clock::Clock;
use tessera_storage::{StaticObjects, Storage, StorageError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::connectors::Connectors;
use crate::metrics::Metrics;
use crate::refresh_tokens::RefreshTokens;
use crate::signer::Signer;
use crate::state::Shared;
use crate::storage_health::Health;
use crate::token_issuer::TokenIssuer;
use crate::web::Pages;
use crate::{AppState, http, tasks};

/// How long in-flight requests may take to finish after a shutdown signal (Dex: one minute).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage ({kind}): {source}")]
    Storage {
        kind: &'static str,
        #[source]
        source: StorageError,
    },
    #[error("connectors: {0}")]
    Connectors(#[from] crate::connectors::ConnectorsError),
    #[error("{0}")]
    Pages(#[from] crate::web::PagesError),
    #[error("{0}")]
    Claims(#[from] crate::custom_claims::ClaimsSetupError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::signer::SignerError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {address} ({what}): {source}")]
    Bind {
        what: &'static str,
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// The objects the config file defines, as storage's read-only overlay.
pub fn static_objects(config: &Config) -> Result<StaticObjects, StorageError> {
    let mut statics = StaticObjects::default();
    config.static_clients.iter().try_for_each(|client| statics.add(client))?;
    config.static_passwords.iter().try_for_each(|password| statics.add(password))?;
    config.connectors.iter().try_for_each(|connector| statics.add(connector))?;
    Ok(statics)
}

/// Opens (and migrates) the configured storage, with the static objects overlaid.
pub async fn open_storage(config: &Config) -> Result<Storage, StartError> {
    let kind = config.storage.type_name();
    let storage =
        tessera_storage::open(&config.storage).await.map_err(|source| StartError::Storage { kind, source })?;
    let statics = static_objects(config).map_err(|source| StartError::Storage { kind, source })?;
    Ok(storage.with_statics(statics))
}

/// Go's listeners take `:5556` to mean every interface.
fn normalize_address(address: &str) -> String {
    if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_owned() }
}

async fn bind(what: &'static str, address: &str) -> Result<TcpListener, StartError> {
    let address = normalize_address(address);
    TcpListener::bind(&address).await.map_err(|source| StartError::Bind { what, address, source })
}

/// A server whose storage is open and whose sockets are bound, ready to run.
pub struct BoundServer {
    pub state: AppState,
    web: TcpListener,
    telemetry: Option<TcpListener>,
}

impl BoundServer {
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        Self::start_with(config, clock, Vec::new()).await
    }

    /// As [`BoundServer::start`], with connectors built in code besides the configured ones (for
    /// programs that embed tessera with a connector of their own).
    pub async fn start_with(
        config: Config,
        clock: Arc<dyn Clock>,
        embedded_connectors: Vec<tessera_connectors::OpenedConnector>,
    ) -> Result<Self, StartError> {
        // First, so that the first key rotation below is counted.
        let metrics = Arc::new(Metrics::new()?);
        let storage = open_storage(&config).await?.observed(metrics.storage_observer());
        let web = bind("web.http", config.web.http.as_deref().unwrap_or("0.0.0.0:5556")).await?;
        let telemetry = match &config.telemetry.http {
            Some(address) => Some(bind("telemetry.http", address).await?),
            None => None,
        };
        let health = Arc::new(Health::new(clock.now()));
        // Like Dex, make sure a signing key exists before serving.
        let signer =
            Arc::new(Signer::new(storage.clone(), clock.clone(), &config).counting_rotations(metrics.key_rotations()));
        signer.rotate_and_load().await?;
        let connectors = Arc::new(
            Connectors::open(&storage, config.flags.continue_on_connector_failure, embedded_connectors).await?,
        );
        let pages = Pages::new(&config)?;
        let chain = crate::custom_claims::build_chain(&config).await?;
        let claims_observer = metrics.claims_observer(&chain.names());
        let claims = Arc::new(chain.observed(claims_observer));
        let issuer = Arc::new(TokenIssuer::new(
            config.issuer.clone(),
            config.expiry.id_tokens,
            signer.clone(),
            claims.clone(),
            storage.clone(),
            clock.clone(),
        ));
        let refresh_policy = config.expiry.refresh_tokens.policy();
        let refresh_tokens = Arc::new(RefreshTokens::new(storage.clone(), clock.clone(), refresh_policy));
        let config = Arc::new(config);
        let state = AppState::new(Shared {
            config,
            storage,
            clock,
            health,
            signer,
            connectors,
            pages,
            claims,
            issuer,
            refresh_tokens,
            metrics,
        });
        Ok(Self { state, web, telemetry })
    }

    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web.local_addr().ok()
    }

    pub fn telemetry_addr(&self) -> Option<SocketAddr> {
        self.telemetry.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to
    /// [`SHUTDOWN_GRACE`]) and stops the background tasks.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let background = tasks::spawn(&self.state, stop_rx.clone());

        let web = serve(self.web, http::router(self.state.clone()), stop_rx.clone());
        let telemetry = self.telemetry.map(|listener| {
            tokio::spawn(serve(listener, http::telemetry::router(self.state.clone()), stop_rx.clone()))
        });
        let mut web = tokio::spawn(web);

        tokio::select! {
            () = shutdown => tracing::info!("shutting down: finishing in-flight requests"),
            result = &mut web => {
                let _ = stop_tx.send(true);
                return result.unwrap_or_else(|join| Err(std::io::Error::other(join)));
            }
        }
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            let web = web.await;
            if let Some(telemetry) = telemetry {
                let _ = telemetry.await;
            }
            web
        })
        .await;
        for task in background {
            task.abort();
        }
        match drained {
            Ok(result) => result.unwrap_or_else(|join| Err(std::io::Error::other(join))),
            Err(_) => {
                tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
                Ok(())
            }
        }
    }
}

async fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .await
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
