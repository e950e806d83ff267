//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0), delivered durably: a session's end
//! queues one signed `logout_token` per client in storage; every replica runs a deliverer that
//! claims due deliveries by compare-and-swap, POSTs them, deletes them on 2xx and backs off on
//! anything else, until the token expires. A client that is down, or a replica that dies mid-way,
//! loses nothing; the user's logout never waits for a client. (Dex sends once and forgets.)

use std::time::Duration;

use tessera_core::id::new_id;
use tessera_core::logout::{self, DELIVERY_TIMEOUT, LOGOUT_TOKEN_LIFETIME};
use tessera_core::model::{AuthSession, BackchannelLogout, Client};
use tessera_core::subject::encode_subject;
use tessera_storage::{Optional, StorageError};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::AppState;
use crate::metrics::BackchannelOutcome;

/// How often each replica looks for deliveries that are due (retries, and those another replica
/// queued); a replica's own new deliveries go at once.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The deliverer's wake-up call and its HTTP client.
pub struct Backchannel {
    wake: Notify,
    http: reqwest::Client,
}

impl Backchannel {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            // The token goes to the URI the client registered, not wherever that URI points today.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { wake: Notify::new(), http }
    }
}

impl Default for Backchannel {
    fn default() -> Self {
        Self::new()
    }
}

/// Queues a logout token for every client of `session` that registered a `backchannelLogoutURI`,
/// and wakes this replica's deliverer. The number queued.
pub async fn enqueue(state: &AppState, session: &AuthSession) -> Result<usize, StorageError> {
    let now = state.clock.now();
    let subject = encode_subject(&session.user_id, &session.connector_id);
    let mut queued = 0;
    for client_id in session.client_states.keys() {
        let Some(client) = state.storage.get::<Client>(client_id).await.optional()? else { continue };
        if client.backchannel_logout_uri.is_empty() {
            continue;
        }
        let claims =
            logout::logout_token_claims(&state.config.issuer, client_id, &subject, &session.id, &new_id(), now);
        let Some(token) = sign(state, &claims).await else { continue };
        let delivery = BackchannelLogout {
            id: format!("{}/{client_id}", session.id),
            session_id: session.id.clone(),
            user_id: session.user_id.clone(),
            client_id: client_id.clone(),
            uri: client.backchannel_logout_uri.clone(),
            logout_token: token,
            attempts: 0,
            next_attempt: now,
            last_error: String::new(),
            expiry: now + LOGOUT_TOKEN_LIFETIME,
        };
        match state.storage.create(&delivery).await {
            Ok(()) => {
                queued += 1;
                state.metrics.backchannel(BackchannelOutcome::Queued);
            }
            // Ended twice (two replicas, or a logout racing expiry): it is queued once.
            Err(StorageError::AlreadyExists) => {}
            Err(err) => return Err(err),
        }
    }
    if queued > 0 {
        state.backchannel.wake.notify_one();
    }
    Ok(queued)
}

async fn sign(state: &AppState, claims: &serde_json::Value) -> Option<String> {
    let Some(keys) = state.signer.active() else {
        tracing::error!("no signing key: a logout token cannot be signed");
        return None;
    };
    let payload = serde_json::to_vec(claims).ok()?;
    match state.signer.sign(&keys, payload).await {
        Ok(token) => Some(token),
        Err(err) => {
            tracing::error!(error = %err, "signing a logout token failed");
            None
        }
    }
}

/// The deliverer: runs until shutdown, waking at each poll interval and whenever a delivery is
/// queued here.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        deliver_due(&state).instrument(tracing::info_span!("task", task = "backchannel-logout")).await;
        tokio::select! {
            () = state.backchannel.wake.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = crate::tasks::stopped(&mut shutdown) => return,
        }
    }
}

/// Attempts every due delivery once, concurrently (a hanging client delays nobody else).
pub async fn deliver_due(state: &AppState) {
    let queued = match state.storage.list::<BackchannelLogout>().await {
        Ok(queued) => queued,
        Err(err) => {
            tracing::warn!(error = %err, "reading the back-channel logout queue failed; retrying");
            return;
        }
    };
    let now = state.clock.now();
    let mut attempts = tokio::task::JoinSet::new();
    for delivery in queued.into_iter().filter(|d| logout::is_due(d, now)) {
        let state = state.clone();
        attempts.spawn(async move { attempt(&state, delivery).await }.in_current_span());
    }
    while attempts.join_next().await.is_some() {}
}

/// Claims one delivery (another replica may have), POSTs it, and records the outcome.
async fn attempt(state: &AppState, delivery: BackchannelLogout) {
    let now = state.clock.now();
    let claimed = state
        .storage
        .update::<BackchannelLogout, _, Option<StorageError>>(&delivery.id, |current| {
            if logout::is_due(&current, now) { Ok(logout::claim(current, now)) } else { Err(None) }
        })
        .await;
    let claimed = match claimed {
        Ok(claimed) => claimed,
        // Delivered, claimed or expired meanwhile.
        Err(None) | Err(Some(StorageError::NotFound)) => return,
        Err(Some(err)) => {
            tracing::warn!(error = %err, client_id = %delivery.client_id, "claiming a back-channel logout failed");
            return;
        }
    };
    match post(state, &claimed).await {
        Ok(()) => {
            state.metrics.backchannel(BackchannelOutcome::Delivered);
            tracing::info!(
                client_id = %claimed.client_id,
                session_id = %claimed.session_id,
                attempts = claimed.attempts,
                "back-channel logout delivered"
            );
            if let Err(err) = state.storage.delete::<BackchannelLogout>(&claimed.id).await.optional() {
                tracing::warn!(error = %err, "removing a delivered back-channel logout failed; it may be sent again");
            }
        }
        Err(reason) => {
            state.metrics.backchannel(BackchannelOutcome::Failed);
            tracing::warn!(
                client_id = %claimed.client_id,
                uri = %claimed.uri,
                attempts = claimed.attempts,
                error = %reason,
                "back-channel logout delivery failed; retrying"
            );
            let later = state.clock.now();
            let recorded = state
                .storage
                .update::<BackchannelLogout, _, StorageError>(&claimed.id, |current| {
                    Ok(logout::failed(current, reason.clone(), later))
                })
                .await;
            if let Err(err) = recorded.optional() {
                tracing::warn!(error = %err, "recording a failed back-channel logout failed");
            }
        }
    }
}

/// One POST of the logout token (Back-Channel Logout §2.5): 2xx is delivered, anything else fails.
async fn post(state: &AppState, delivery: &BackchannelLogout) -> Result<(), String> {
    let response = state
        .backchannel
        .http
        .post(&delivery.uri)
        .header(reqwest::header::CACHE_CONTROL, "no-cache, no-store")
        .form(&[("logout_token", delivery.logout_token.as_str())])
        .send()
        .await
        .map_err(|err| if err.is_timeout() { "timed out".to_owned() } else { err.to_string() })?;
    let status = response.status();
    if status.is_success() { Ok(()) } else { Err(format!("answered {}", status.as_u16())) }
}
