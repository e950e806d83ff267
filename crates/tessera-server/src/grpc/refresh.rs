//! ListRefresh and RevokeRefresh: a user's refresh tokens, named by the ID token's `sub` (which
//! carries both the user ID and the connector), one per client.

use tessera_core::model::RefreshTokenRef;
use tessera_core::subject::decode_subject;
use tessera_storage::{Storage, StorageError};
use tonic::Status;

use super::proto;
use super::status::{invalid, storage as storage_error};
use crate::refresh_tokens::RefreshTokens;

fn subject(sub: &str) -> Result<(String, String), Status> {
    decode_subject(sub).ok_or_else(|| invalid("user_id", "not a subject issued by this server (the ID token's sub)"))
}

pub(super) async fn list(storage: &Storage, req: proto::ListRefreshReq) -> Result<proto::ListRefreshResp, Status> {
    let (user_id, connector_id) = subject(&req.user_id)?;
    let sessions = match storage.get_offline_sessions(&user_id, &connector_id).await {
        Ok(sessions) => sessions,
        // No token was ever issued to this user: an empty list, as Dex answers.
        Err(StorageError::NotFound) => return Ok(proto::ListRefreshResp::default()),
        Err(err) => return Err(storage_error("list refresh tokens", err)),
    };
    Ok(proto::ListRefreshResp { refresh_tokens: sessions.refresh.into_values().map(to_proto).collect() })
}

pub(super) async fn revoke(
    tokens: &RefreshTokens,
    req: proto::RevokeRefreshReq,
) -> Result<proto::RevokeRefreshResp, Status> {
    let (user_id, connector_id) = subject(&req.user_id)?;
    let revoked = tokens
        .revoke(&user_id, &connector_id, &req.client_id)
        .await
        .map_err(|err| storage_error("revoke refresh token", err))?;
    Ok(proto::RevokeRefreshResp { not_found: !revoked })
}

fn to_proto(r: RefreshTokenRef) -> proto::RefreshTokenRef {
    proto::RefreshTokenRef {
        id: r.id,
        client_id: r.client_id,
        created_at: r.created_at.unix_timestamp(),
        last_used: r.last_used.unix_timestamp(),
    }
}
