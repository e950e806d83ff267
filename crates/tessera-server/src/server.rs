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
use tokio::task::JoinSet;

use crate::config::Config;
use crate::connections::serve_plain;
use crate::connectors::Connectors;
use crate::metrics::Metrics;
use crate::refresh_tokens::RefreshTokens;
use crate::sessions::Sessions;
use crate::signer::Signer;
use crate::state::Shared;
use crate::storage_health::Health;
use crate::tls::{GrpcTls, Https};
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
    #[error("{0}")]
    DexImport(#[from] crate::dex_import::FirstStartError),
    #[error("connectors: {0}")]
    Connectors(#[from] crate::connectors::ConnectorsError),
    #[error("{0}")]
    Pages(#[from] crate::web::PagesError),
    #[error("{0}")]
    Claims(#[from] crate::custom_claims::ClaimsSetupError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::signer::SignerError),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("grpc.reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
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
    http: Option<TcpListener>,
    https: Option<(TcpListener, Https)>,
    telemetry: Option<TcpListener>,
    /// The gRPC listener, its TLS and the API's router.
    grpc: Option<(TcpListener, Option<GrpcTls>, axum::Router)>,
}

/// `web.http`, bound; Dex's default address when neither HTTP nor HTTPS is configured (a `Config`
/// built in code: the file's check requires one of them).
async fn bind_http(web: &crate::config::Web) -> Result<Option<TcpListener>, StartError> {
    match (&web.http, &web.https) {
        (Some(address), _) => Ok(Some(bind("web.http", address).await?)),
        (None, None) => Ok(Some(bind("web.http", "0.0.0.0:5556").await?)),
        (None, Some(_)) => Ok(None),
    }
}

/// `web.https`, bound, with its certificate loaded.
async fn bind_https(web: &crate::config::Web) -> Result<Option<(TcpListener, Https)>, StartError> {
    let Some(tls) = Https::from_config(web)? else { return Ok(None) };
    let address = web.https.as_deref().unwrap_or_default();
    Ok(Some((bind("web.https", address).await?, tls)))
}

/// `grpc.addr`, bound, with its TLS loaded; nothing when no address is set (never a default: the API
/// administers the whole server).
async fn bind_grpc(grpc: &crate::config::Grpc) -> Result<Option<(TcpListener, Option<GrpcTls>)>, StartError> {
    let Some(address) = &grpc.addr else { return Ok(None) };
    let tls = GrpcTls::from_config(grpc)?;
    let mutual_tls = tls.as_ref().is_some_and(|tls| tls.client_ca.is_some());
    if !mutual_tls {
        // As Dex warns: without client certificates, whoever reaches the port administers the server.
        tracing::warn!(
            tls = tls.is_some(),
            "grpc: the API has no client certificate authentication (grpc.tlsClientCA is unset) and gives full \
             administrative access; make sure only a trusted, authenticated service can reach grpc.addr, or set \
             grpc.tlsClientCA to require mutual TLS"
        );
    }
    let listener = bind("grpc.addr", address).await?;
    tracing::info!(tls = tls.is_some(), mutual_tls, reflection = grpc.reflection, "gRPC API enabled");
    Ok(Some((listener, tls)))
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
        // Before the signer looks for keys: a Dex's keys, once imported, are the ones it finds.
        crate::dex_import::import_on_first_start(&config, &storage, clock.now()).await?;
        let http = bind_http(&config.web).await?;
        let https = bind_https(&config.web).await?;
        let telemetry = match &config.telemetry.http {
            Some(address) => Some(bind("telemetry.http", address).await?),
            None => None,
        };
        let grpc = bind_grpc(&config.grpc).await?;
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
        let sessions = Sessions::new(&config, storage.clone(), clock.clone()).map(Arc::new);
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
            sessions,
            backchannel: Arc::new(crate::logout::backchannel::Backchannel::new()),
        });
        let grpc = match grpc {
            Some((listener, tls)) => Some((listener, tls, crate::grpc::router(&state)?)),
            None => None,
        };
        Ok(Self { state, http, https, telemetry, grpc })
    }

    /// The plain HTTP listener's address.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// The HTTPS listener's address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn telemetry_addr(&self) -> Option<SocketAddr> {
        self.telemetry.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// The gRPC API's address.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|(listener, _, _)| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to
    /// [`SHUTDOWN_GRACE`]) and stops the background tasks.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut background = tasks::spawn(&self.state, stop_rx.clone());

        let router = http::router(self.state.clone());
        let headers = self.state.config.request_limits.header_read_timeout;
        let mut listeners = JoinSet::new();
        if let Some(listener) = self.http {
            listeners.spawn(serve_plain(listener, router.clone(), headers, stop_rx.clone()));
        }
        if let Some((listener, https)) = self.https {
            background.push(tokio::spawn(crate::tls::watch(https.certificate, stop_rx.clone())));
            listeners.spawn(crate::tls::serve_tls(listener, router, https.config, headers, stop_rx.clone()));
        }
        if let Some(listener) = self.telemetry {
            let telemetry = http::telemetry::router(self.state.clone());
            listeners.spawn(serve_plain(listener, telemetry, headers, stop_rx.clone()));
        }
        if let Some((listener, tls, api)) = self.grpc {
            match tls {
                Some(tls) => {
                    background.push(tokio::spawn(crate::tls::watch(tls.certificate, stop_rx.clone())));
                    if let Some(client_ca) = tls.client_ca {
                        background.push(tokio::spawn(crate::tls::watch(client_ca, stop_rx.clone())));
                    }
                    listeners.spawn(crate::tls::serve_tls(listener, api, tls.config, headers, stop_rx.clone()));
                }
                None => {
                    listeners.spawn(serve_plain(listener, api, headers, stop_rx.clone()));
                }
            }
        }

        // A listener that stops by itself has failed: stop everything.
        tokio::select! {
            () = shutdown => tracing::info!("shutting down: finishing in-flight requests"),
            Some(ended) = listeners.join_next() => {
                let _ = stop_tx.send(true);
                background.iter().for_each(|task| task.abort());
                return ended.unwrap_or_else(|join| Err(std::io::Error::other(join)));
            }
        }
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            let mut outcome = Ok(());
            while let Some(ended) = listeners.join_next().await {
                if let Err(err) = ended.unwrap_or_else(|join| Err(std::io::Error::other(join))) {
                    outcome = Err(err);
                }
            }
            outcome
        })
        .await;
        for task in background {
            task.abort();
        }
        drained.unwrap_or_else(|_| {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
            Ok(())
        })
    }
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a SIGTERM that arrives as soon as the listeners answer (the serve loops run
/// on other threads) must stop the server gracefully, not kill it by the signal's default action.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let received = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
