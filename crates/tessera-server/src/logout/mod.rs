//! Ending browser sessions (`DEX_SESSIONS_ENABLED=true`), the one path every ending takes — a
//! user's logout, expiry, an operator through the gRPC API: the refresh tokens of clients that asked
//! for theirs to end with the session are revoked, every client of the session with a
//! `backchannelLogoutURI` is queued a logout token ([`backchannel`]), and the session is deleted.

pub mod backchannel;

use tessera_core::model::{AuthSession, Client};
use tessera_core::session::refresh_bound_to_session;
use tessera_storage::{Optional, StorageError};

use crate::AppState;

/// Why a session ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// RP-initiated logout at `/logout`.
    Logout,
    /// Its absolute or idle expiry passed.
    Expired,
    /// An operator, through the gRPC API.
    Terminated,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Logout => "logout",
            Ending::Expired => "expired",
            Ending::Terminated => "terminated",
        }
    }
}

/// Ends `session`: `false` when another request or replica ended it first (its relying parties are
/// told once either way: deliveries are keyed by session and client).
pub async fn end_session(state: &AppState, session: &AuthSession, ending: Ending) -> Result<bool, StorageError> {
    let mut bound = Vec::new();
    for client_id in session.client_states.keys() {
        if let Some(client) = state.storage.get::<Client>(client_id).await.optional()?
            && refresh_bound_to_session(&client)
        {
            bound.push(client.id);
        }
    }
    let revoked = match ending {
        // The operator's hammer, as in Dex: every refresh token the user holds on the connector.
        Ending::Terminated => state.refresh_tokens.revoke_all(&session.user_id, &session.connector_id).await?,
        // A logout or an expiry ends what the clients bound to the session, and only that.
        Ending::Logout | Ending::Expired => state.refresh_tokens.revoke_session(session, &bound).await?,
    };
    let queued = backchannel::enqueue(state, session).await?;
    let deleted = state.storage.delete::<AuthSession>(&session.id).await.optional()?.is_some();
    tracing::info!(
        session_id = %session.id,
        user_id = %session.user_id,
        connector_id = %session.connector_id,
        reason = ending.as_str(),
        refresh_tokens_revoked = revoked,
        backchannel_logouts_queued = queued,
        "session ended"
    );
    Ok(deleted)
}

/// Ends the sessions whose expiry has passed, before garbage collection would delete them
/// silently: their relying parties learn of it as of a logout.
pub async fn end_expired_sessions(state: &AppState) -> Result<usize, StorageError> {
    if state.sessions.is_none() {
        return Ok(0);
    }
    let now = state.clock.now();
    let mut ended = 0;
    for session in state.storage.list::<AuthSession>().await? {
        if !tessera_core::session::is_alive(&session, now) && end_session(state, &session, Ending::Expired).await? {
            ended += 1;
        }
    }
    Ok(ended)
}
