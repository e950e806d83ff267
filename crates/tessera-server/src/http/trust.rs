//! Cross-client trust as the scope rules need it: the `trustedPeers` of the clients a request's
//! `audience:server:client_id:…` scopes name, loaded once per request.

use tessera_core::model::Client;
use tessera_core::scope::cross_client_peer;
use tessera_storage::{Optional, StorageError};

use crate::AppState;

/// The `trustedPeers` of every client a request's cross-client scopes name (a missing client is
/// absent, hence untrusted), for the scope rules of tessera-core. A storage failure is a failure,
/// never an untrusted peer.
pub struct PeerTrust(Vec<(String, Vec<String>)>);

impl PeerTrust {
    pub async fn load(state: &AppState, scopes: &[String]) -> Result<Self, StorageError> {
        let mut peers = Vec::new();
        for peer in scopes.iter().filter_map(|s| cross_client_peer(s)) {
            if let Some(client) = state.storage.get::<Client>(peer).await.optional()? {
                peers.push((peer.to_owned(), client.trusted_peers));
            }
        }
        Ok(Self(peers))
    }

    pub fn trusted_peers_of(&self, peer: &str) -> Option<Vec<String>> {
        self.0.iter().find(|(id, _)| id == peer).map(|(_, trusted)| trusted.clone())
    }
}
