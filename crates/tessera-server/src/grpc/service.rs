//! The `Dex` service: each method hands its message to the module of its domain. The MFA methods
//! answer `Unimplemented`: tessera has no second factors.

use tonic::{Request, Response, Status};

use super::proto::dex_server::Dex;
use super::proto::*;
use super::{Api, clients, info, passwords, refresh};

type Answer<T> = Result<Response<T>, Status>;

fn not_yet<T>(method: &str) -> Answer<T> {
    Err(Status::unimplemented(format!("{method} is not implemented by tessera: it has no multi-factor authentication")))
}

#[tonic::async_trait]
impl Dex for Api {
    async fn get_client(&self, request: Request<GetClientReq>) -> Answer<GetClientResp> {
        clients::get(&self.storage, request.into_inner()).await.map(Response::new)
    }

    async fn create_client(&self, request: Request<CreateClientReq>) -> Answer<CreateClientResp> {
        clients::create(&self.storage, request.into_inner()).await.map(Response::new)
    }

    async fn update_client(&self, request: Request<UpdateClientReq>) -> Answer<UpdateClientResp> {
        clients::update(&self.storage, request.into_inner()).await.map(Response::new)
    }

    async fn delete_client(&self, request: Request<DeleteClientReq>) -> Answer<DeleteClientResp> {
        clients::delete(&self.storage, request.into_inner()).await.map(Response::new)
    }

    async fn list_clients(&self, _request: Request<ListClientReq>) -> Answer<ListClientResp> {
        clients::list(&self.storage).await.map(Response::new)
    }

    async fn create_password(&self, request: Request<CreatePasswordReq>) -> Answer<CreatePasswordResp> {
        passwords::create(&self.storage, request.into_inner()).await.map(Response::new)
    }

    async fn update_password(&self, request: Request<UpdatePasswordReq>) -> Answer<UpdatePasswordResp> {
        passwords::update(&self.storage, request.into_inner()).await.map(Response::new)
    }

    async fn delete_password(&self, request: Request<DeletePasswordReq>) -> Answer<DeletePasswordResp> {
        passwords::delete(&self.storage, request.into_inner()).await.map(Response::new)
    }

    async fn list_passwords(&self, _request: Request<ListPasswordReq>) -> Answer<ListPasswordResp> {
        passwords::list(&self.storage).await.map(Response::new)
    }

    async fn verify_password(&self, request: Request<VerifyPasswordReq>) -> Answer<VerifyPasswordResp> {
        passwords::verify(&self.storage, &self.bcrypt_checks, request.into_inner()).await.map(Response::new)
    }

    async fn create_connector(&self, request: Request<CreateConnectorReq>) -> Answer<CreateConnectorResp> {
        self.create_connector(request.into_inner()).await.map(Response::new)
    }

    async fn update_connector(&self, request: Request<UpdateConnectorReq>) -> Answer<UpdateConnectorResp> {
        self.update_connector(request.into_inner()).await.map(Response::new)
    }

    async fn delete_connector(&self, request: Request<DeleteConnectorReq>) -> Answer<DeleteConnectorResp> {
        self.delete_connector(request.into_inner()).await.map(Response::new)
    }

    async fn list_connectors(&self, _request: Request<ListConnectorReq>) -> Answer<ListConnectorResp> {
        self.list_connectors().await.map(Response::new)
    }

    async fn get_version(&self, _request: Request<VersionReq>) -> Answer<VersionResp> {
        Ok(Response::new(info::version()))
    }

    async fn get_discovery(&self, _request: Request<DiscoveryReq>) -> Answer<DiscoveryResp> {
        Ok(Response::new(self.discovery.clone()))
    }

    async fn list_refresh(&self, request: Request<ListRefreshReq>) -> Answer<ListRefreshResp> {
        refresh::list(&self.storage, request.into_inner()).await.map(Response::new)
    }

    async fn revoke_refresh(&self, request: Request<RevokeRefreshReq>) -> Answer<RevokeRefreshResp> {
        refresh::revoke(&self.refresh_tokens, request.into_inner()).await.map(Response::new)
    }

    async fn get_auth_session(&self, request: Request<GetAuthSessionReq>) -> Answer<GetAuthSessionResp> {
        Api::get_auth_session(self, request.into_inner()).await.map(Response::new)
    }

    async fn list_auth_sessions(&self, request: Request<ListAuthSessionsReq>) -> Answer<ListAuthSessionsResp> {
        Api::list_auth_sessions(self, request.into_inner()).await.map(Response::new)
    }

    async fn delete_auth_session(&self, request: Request<DeleteAuthSessionReq>) -> Answer<DeleteAuthSessionResp> {
        Api::delete_auth_session(self, request.into_inner()).await.map(Response::new)
    }

    async fn terminate_sessions_by_connector(
        &self,
        request: Request<TerminateSessionsByConnectorReq>,
    ) -> Answer<TerminateSessionsByConnectorResp> {
        Api::terminate_sessions_by_connector(self, request.into_inner()).await.map(Response::new)
    }

    async fn terminate_sessions_by_user(
        &self,
        request: Request<TerminateSessionsByUserReq>,
    ) -> Answer<TerminateSessionsByUserResp> {
        Api::terminate_sessions_by_user(self, request.into_inner()).await.map(Response::new)
    }

    async fn get_user_identity(&self, request: Request<GetUserIdentityReq>) -> Answer<GetUserIdentityResp> {
        Api::get_user_identity(self, request.into_inner()).await.map(Response::new)
    }

    async fn list_user_identities(&self, _request: Request<ListUserIdentitiesReq>) -> Answer<ListUserIdentitiesResp> {
        Api::list_user_identities(self).await.map(Response::new)
    }

    async fn delete_user_identity(&self, request: Request<DeleteUserIdentityReq>) -> Answer<DeleteUserIdentityResp> {
        Api::delete_user_identity(self, request.into_inner()).await.map(Response::new)
    }

    async fn reset_mfa(&self, _request: Request<ResetMfaReq>) -> Answer<ResetMfaResp> {
        not_yet("ResetMFA")
    }

    async fn list_mfa_devices(&self, _request: Request<ListMfaDevicesReq>) -> Answer<ListMfaDevicesResp> {
        not_yet("ListMFADevices")
    }

    async fn delete_web_authn_credential(
        &self,
        _request: Request<DeleteWebAuthnCredentialReq>,
    ) -> Answer<DeleteWebAuthnCredentialResp> {
        not_yet("DeleteWebAuthnCredential")
    }

    async fn delete_mfa_secret(&self, _request: Request<DeleteMfaSecretReq>) -> Answer<DeleteMfaSecretResp> {
        not_yet("DeleteMFASecret")
    }

    async fn revoke_consent(&self, request: Request<RevokeConsentReq>) -> Answer<RevokeConsentResp> {
        Api::revoke_consent(self, request.into_inner()).await.map(Response::new)
    }
}
