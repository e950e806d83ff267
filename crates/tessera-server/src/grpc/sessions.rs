//! The session and user-identity methods, behind `DEX_API_SESSIONS_IDENTITIES_CRUD` as in Dex:
//! reading browser sessions and identities, ending sessions (each ending tells the session's clients
//! over the back channel and revokes the user's refresh tokens on that connector), erasing a user,
//! and revoking a consent so the approval screen shows again.

use tessera_core::model::{AuthSession, UserIdentity};
use tessera_storage::{Optional, StorageError};
use time::OffsetDateTime;
use tonic::Status;

use super::status::{invalid, storage as storage_error};
use super::{Api, proto};
use crate::logout::{Ending, end_session};

fn unix(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() { Err(invalid(field, "required")) } else { Ok(()) }
}

fn session_to_proto(session: AuthSession) -> proto::AuthSession {
    proto::AuthSession {
        id: session.id,
        user_id: session.user_id,
        connector_id: session.connector_id,
        client_states: session
            .client_states
            .into_iter()
            .map(|(client_id, state)| proto::ClientAuthState {
                client_id,
                authenticated_at: unix(state.authenticated_at),
                last_activity: unix(state.last_activity),
                last_token_issued_at: state.last_token_issued_at.map_or(0, unix),
                via_sso: state.via_sso,
            })
            .collect(),
        created_at: unix(session.created_at),
        last_activity: unix(session.last_activity),
        ip_address: session.ip_address,
        user_agent: session.user_agent,
        absolute_expiry: unix(session.absolute_expiry),
        idle_expiry: unix(session.idle_expiry),
    }
}

fn identity_to_proto(identity: UserIdentity) -> proto::UserIdentity {
    proto::UserIdentity {
        user_id: identity.user_id,
        connector_id: identity.connector_id,
        email: identity.claims.email,
        email_verified: identity.claims.email_verified,
        username: identity.claims.username,
        groups: identity.claims.groups,
        consents: identity
            .consents
            .into_iter()
            .map(|(client_id, scopes)| proto::ConsentEntry { client_id, scopes })
            .collect(),
        mfa_devices: Vec::new(),
        created_at: unix(identity.created_at),
        last_login: unix(identity.last_login),
        blocked_until: 0,
    }
}

impl Api {
    fn sessions_crud_enabled(&self) -> Result<(), Status> {
        if self.app.config.flags.api_sessions_identities_crud {
            Ok(())
        } else {
            Err(Status::failed_precondition(
                "api_sessions_identities_crud feature flag is not enabled (set DEX_API_SESSIONS_IDENTITIES_CRUD=true)",
            ))
        }
    }

    pub(super) async fn get_auth_session(
        &self,
        req: proto::GetAuthSessionReq,
    ) -> Result<proto::GetAuthSessionResp, Status> {
        self.sessions_crud_enabled()?;
        required("id", &req.id)?;
        match self.storage.get::<AuthSession>(&req.id).await {
            Ok(session) => Ok(proto::GetAuthSessionResp { session: Some(session_to_proto(session)) }),
            Err(StorageError::NotFound) => Err(Status::not_found(format!("auth session {:?} not found", req.id))),
            Err(err) => Err(storage_error("get auth session", err)),
        }
    }

    pub(super) async fn list_auth_sessions(
        &self,
        req: proto::ListAuthSessionsReq,
    ) -> Result<proto::ListAuthSessionsResp, Status> {
        self.sessions_crud_enabled()?;
        let sessions = self.matching_sessions(|s| {
            (req.user_id.is_empty() || s.user_id == req.user_id)
                && (req.connector_id.is_empty() || s.connector_id == req.connector_id)
        });
        Ok(proto::ListAuthSessionsResp { sessions: sessions.await?.into_iter().map(session_to_proto).collect() })
    }

    async fn matching_sessions(&self, matches: impl Fn(&AuthSession) -> bool) -> Result<Vec<AuthSession>, Status> {
        let all = self.storage.list::<AuthSession>().await.map_err(|err| storage_error("list auth sessions", err))?;
        Ok(all.into_iter().filter(|s| matches(s)).collect())
    }

    pub(super) async fn delete_auth_session(
        &self,
        req: proto::DeleteAuthSessionReq,
    ) -> Result<proto::DeleteAuthSessionResp, Status> {
        self.sessions_crud_enabled()?;
        required("id", &req.id)?;
        let Some(session) = self
            .storage
            .get::<AuthSession>(&req.id)
            .await
            .optional()
            .map_err(|err| storage_error("get auth session", err))?
        else {
            return Ok(proto::DeleteAuthSessionResp { not_found: true });
        };
        let ended = self.terminate(&[session]).await?;
        Ok(proto::DeleteAuthSessionResp { not_found: ended == 0 })
    }

    /// Ends each session as a logout does (back-channel included), with the operator's revocation.
    async fn terminate(&self, sessions: &[AuthSession]) -> Result<i64, Status> {
        let mut ended = 0;
        for session in sessions {
            if end_session(&self.app, session, Ending::Terminated)
                .await
                .map_err(|err| storage_error("end auth session", err))?
            {
                ended += 1;
            }
        }
        Ok(ended)
    }

    pub(super) async fn terminate_sessions_by_connector(
        &self,
        req: proto::TerminateSessionsByConnectorReq,
    ) -> Result<proto::TerminateSessionsByConnectorResp, Status> {
        self.sessions_crud_enabled()?;
        required("connector_id", &req.connector_id)?;
        let sessions = self.matching_sessions(|s| s.connector_id == req.connector_id).await?;
        let sessions_terminated = self.terminate(&sessions).await?;
        tracing::info!(connector_id = %req.connector_id, count = sessions_terminated, "gRPC API: terminated sessions by connector");
        Ok(proto::TerminateSessionsByConnectorResp { sessions_terminated })
    }

    pub(super) async fn terminate_sessions_by_user(
        &self,
        req: proto::TerminateSessionsByUserReq,
    ) -> Result<proto::TerminateSessionsByUserResp, Status> {
        self.sessions_crud_enabled()?;
        required("user_id", &req.user_id)?;
        let sessions = self.matching_sessions(|s| s.user_id == req.user_id).await?;
        let sessions_terminated = self.terminate(&sessions).await?;
        tracing::info!(user_id = %req.user_id, count = sessions_terminated, "gRPC API: terminated sessions by user");
        Ok(proto::TerminateSessionsByUserResp { sessions_terminated })
    }

    pub(super) async fn get_user_identity(
        &self,
        req: proto::GetUserIdentityReq,
    ) -> Result<proto::GetUserIdentityResp, Status> {
        self.sessions_crud_enabled()?;
        required("user_id", &req.user_id)?;
        required("connector_id", &req.connector_id)?;
        match self.storage.get_user_identity(&req.user_id, &req.connector_id).await {
            Ok(identity) => Ok(proto::GetUserIdentityResp { identity: Some(identity_to_proto(identity)) }),
            Err(StorageError::NotFound) => Err(Status::not_found(format!(
                "user identity {:?} through connector {:?} not found",
                req.user_id, req.connector_id
            ))),
            Err(err) => Err(storage_error("get user identity", err)),
        }
    }

    pub(super) async fn list_user_identities(&self) -> Result<proto::ListUserIdentitiesResp, Status> {
        self.sessions_crud_enabled()?;
        let all =
            self.storage.list::<UserIdentity>().await.map_err(|err| storage_error("list user identities", err))?;
        Ok(proto::ListUserIdentitiesResp { identities: all.into_iter().map(identity_to_proto).collect() })
    }

    /// Erases the user as Dex does: sessions (clients told), refresh tokens, offline sessions, the
    /// password entry with the identity's email, then the identity.
    pub(super) async fn delete_user_identity(
        &self,
        req: proto::DeleteUserIdentityReq,
    ) -> Result<proto::DeleteUserIdentityResp, Status> {
        self.sessions_crud_enabled()?;
        required("user_id", &req.user_id)?;
        required("connector_id", &req.connector_id)?;
        let fail = |what: &'static str| move |err| storage_error(what, err);
        let Some(identity) = self
            .storage
            .get_user_identity(&req.user_id, &req.connector_id)
            .await
            .optional()
            .map_err(fail("get user identity"))?
        else {
            return Ok(proto::DeleteUserIdentityResp { not_found: true });
        };
        let sessions =
            self.matching_sessions(|s| s.user_id == req.user_id && s.connector_id == req.connector_id).await?;
        self.terminate(&sessions).await?;
        self.refresh_tokens.revoke_all(&req.user_id, &req.connector_id).await.map_err(fail("revoke refresh tokens"))?;
        self.storage
            .delete_offline_sessions(&req.user_id, &req.connector_id)
            .await
            .optional()
            .map_err(fail("delete offline sessions"))?;
        if !identity.claims.email.is_empty() {
            match self.storage.delete::<tessera_core::model::Password>(&identity.claims.email).await {
                Ok(()) | Err(StorageError::NotFound) => {}
                // A password of the configuration file cannot be erased through the API.
                Err(StorageError::ReadOnly { .. }) => {}
                Err(err) => return Err(storage_error("delete password", err)),
            }
        }
        let deleted = self
            .storage
            .delete_user_identity(&req.user_id, &req.connector_id)
            .await
            .optional()
            .map_err(fail("delete user identity"))?;
        tracing::info!(user_id = %req.user_id, connector_id = %req.connector_id, "gRPC API: erased a user identity");
        Ok(proto::DeleteUserIdentityResp { not_found: deleted.is_none() })
    }

    /// Forgets the scopes the user approved for one client: the approval screen shows at the next
    /// login there.
    pub(super) async fn revoke_consent(
        &self,
        req: proto::RevokeConsentReq,
    ) -> Result<proto::RevokeConsentResp, Status> {
        self.sessions_crud_enabled()?;
        required("user_id", &req.user_id)?;
        required("connector_id", &req.connector_id)?;
        required("client_id", &req.client_id)?;
        let updated = self
            .storage
            .update_user_identity::<_, Option<StorageError>>(&req.user_id, &req.connector_id, |mut identity| {
                if identity.consents.remove(&req.client_id).is_none() {
                    return Err(None);
                }
                Ok(identity)
            })
            .await;
        match updated {
            Ok(_) => {
                tracing::info!(user_id = %req.user_id, client_id = %req.client_id, "gRPC API: revoked consent");
                Ok(proto::RevokeConsentResp { not_found: false })
            }
            Err(None) | Err(Some(StorageError::NotFound)) => Ok(proto::RevokeConsentResp { not_found: true }),
            Err(Some(err)) => Err(storage_error("revoke consent", err)),
        }
    }
}
