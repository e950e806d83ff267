//! GetClient, CreateClient, UpdateClient, DeleteClient and ListClients.

use tessera_core::admin::{ClientUpdate, check_client, client_with_defaults};
use tessera_core::model::Client;
use tessera_storage::{Storage, StorageError};
use tonic::Status;

use super::proto;
use super::status::{field, invalid, storage as storage_error};

pub(super) async fn get(storage: &Storage, req: proto::GetClientReq) -> Result<proto::GetClientResp, Status> {
    match storage.get::<Client>(&req.id).await {
        Ok(client) => Ok(proto::GetClientResp { client: Some(to_proto(client)) }),
        Err(StorageError::NotFound) => Err(Status::not_found(format!("client {:?} not found", req.id))),
        Err(err) => Err(storage_error("get client", err)),
    }
}

pub(super) async fn create(storage: &Storage, req: proto::CreateClientReq) -> Result<proto::CreateClientResp, Status> {
    let Some(client) = req.client else { return Err(invalid("client", "no client supplied")) };
    let client = client_with_defaults(from_proto(client));
    check_client(&client, "client.").map_err(field)?;
    storage.check_writable::<Client>(&client.id).map_err(|err| storage_error("create client", err))?;
    match storage.create(&client).await {
        Ok(()) => Ok(proto::CreateClientResp { already_exists: false, client: Some(to_proto(client)) }),
        Err(StorageError::AlreadyExists) => Ok(proto::CreateClientResp { already_exists: true, client: None }),
        Err(err) => Err(storage_error("create client", err)),
    }
}

pub(super) async fn update(storage: &Storage, req: proto::UpdateClientReq) -> Result<proto::UpdateClientResp, Status> {
    if req.id.is_empty() {
        return Err(invalid("id", "no client ID supplied"));
    }
    let update = ClientUpdate {
        redirect_uris: req.redirect_uris,
        trusted_peers: req.trusted_peers,
        name: req.name,
        logo_url: req.logo_url,
        allowed_connectors: req.allowed_connectors,
        sso_shared_with: req.sso_shared_with,
        backchannel_logout_uri: req.backchannel_logout_uri,
        post_logout_redirect_uris: req.post_logout_redirect_uris,
        refresh_token_lifetime: req.refresh_token_lifetime,
    };
    // Only what the request brings is checked: a stored value it leaves alone is not its fault.
    check_client(&update.apply(Client::default()), "").map_err(field)?;
    match storage.update::<Client, _, StorageError>(&req.id, |old| Ok(update.apply(old))).await {
        Ok(_) => Ok(proto::UpdateClientResp { not_found: false }),
        Err(StorageError::NotFound) => Ok(proto::UpdateClientResp { not_found: true }),
        Err(err) => Err(storage_error("update client", err)),
    }
}

pub(super) async fn delete(storage: &Storage, req: proto::DeleteClientReq) -> Result<proto::DeleteClientResp, Status> {
    match storage.delete::<Client>(&req.id).await {
        Ok(()) => Ok(proto::DeleteClientResp { not_found: false }),
        Err(StorageError::NotFound) => Ok(proto::DeleteClientResp { not_found: true }),
        Err(err) => Err(storage_error("delete client", err)),
    }
}

pub(super) async fn list(storage: &Storage) -> Result<proto::ListClientResp, Status> {
    let clients = storage.list::<Client>().await.map_err(|err| storage_error("list clients", err))?;
    Ok(proto::ListClientResp { clients: clients.into_iter().map(to_info).collect() })
}

fn from_proto(c: proto::Client) -> Client {
    Client {
        id: c.id,
        secret: c.secret,
        redirect_uris: c.redirect_uris,
        post_logout_redirect_uris: c.post_logout_redirect_uris,
        trusted_peers: c.trusted_peers,
        public: c.public,
        name: c.name,
        logo_url: c.logo_url,
        allowed_connectors: c.allowed_connectors,
        refresh_token_lifetime: c.refresh_token_lifetime,
        client_credentials_claims: None,
        // The wire cannot carry "unset" apart from empty; Dex reads empty as unset.
        sso_shared_with: Some(c.sso_shared_with).filter(|peers| !peers.is_empty()),
        backchannel_logout_uri: c.backchannel_logout_uri,
    }
}

fn to_proto(c: Client) -> proto::Client {
    proto::Client {
        id: c.id,
        secret: c.secret,
        redirect_uris: c.redirect_uris,
        trusted_peers: c.trusted_peers,
        public: c.public,
        name: c.name,
        logo_url: c.logo_url,
        allowed_connectors: c.allowed_connectors,
        sso_shared_with: c.sso_shared_with.unwrap_or_default(),
        backchannel_logout_uri: c.backchannel_logout_uri,
        post_logout_redirect_uris: c.post_logout_redirect_uris,
        refresh_token_lifetime: c.refresh_token_lifetime,
    }
}

/// A client as listed: without its secret.
fn to_info(c: Client) -> proto::ClientInfo {
    proto::ClientInfo {
        id: c.id,
        redirect_uris: c.redirect_uris,
        trusted_peers: c.trusted_peers,
        public: c.public,
        name: c.name,
        logo_url: c.logo_url,
        allowed_connectors: c.allowed_connectors,
        sso_shared_with: c.sso_shared_with.unwrap_or_default(),
        backchannel_logout_uri: c.backchannel_logout_uri,
        post_logout_redirect_uris: c.post_logout_redirect_uris,
        refresh_token_lifetime: c.refresh_token_lifetime,
    }
}
