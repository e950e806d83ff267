//! Dex's gRPC administration API (`proto/api.proto`, package `api`, service `Dex`) on `grpc.addr`:
//! clients, passwords, connectors and refresh tokens managed from code, with Dex's answers. Each
//! domain has its module of handlers; they translate messages to the rules in
//! `tessera_core::admin` and to storage, and `status.rs` turns every failure into a gRPC status.

mod clients;
mod connectors;
mod info;
mod passwords;
mod refresh;
mod service;
mod sessions;
mod status;

use std::sync::Arc;

use tessera_core::client_ip::ClientIpRule;
use tessera_storage::Storage;

use crate::AppState;
use crate::connectors::Connectors;
use crate::refresh_tokens::RefreshTokens;

/// The messages and the service trait, generated at build time from `proto/api.proto`.
#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub mod proto {
    tonic::include_proto!("api");
}

/// The compiled proto, served by reflection when `grpc.reflection` is on.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/api_descriptor.bin"));

/// Dex's API version number (its `apiVersion`), which clients compare to know which methods exist.
pub const API_VERSION: i32 = 4;

/// What the API works with: the storage and the few services it changes or reads.
pub struct Api {
    storage: Storage,
    connectors: Arc<Connectors>,
    refresh_tokens: Arc<RefreshTokens>,
    discovery: proto::DiscoveryResp,
    /// `DEX_API_CONNECTORS_CRUD`.
    connectors_crud: bool,
    /// One bcrypt comparison per core for VerifyPassword, off the executor.
    bcrypt_checks: Arc<tokio::sync::Semaphore>,
    /// The server, for what ends sessions as a logout does (back-channel logout included).
    app: AppState,
}

impl Api {
    pub fn new(state: &AppState) -> Self {
        let checks = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
        Self {
            storage: state.storage.clone(),
            connectors: state.connectors.clone(),
            refresh_tokens: state.refresh_tokens.clone(),
            discovery: info::discovery(&state.config, state.signer.algorithm()),
            connectors_crud: state.config.flags.api_connectors_crud,
            bcrypt_checks: Arc::new(tokio::sync::Semaphore::new(checks)),
            app: state.clone(),
        }
    }
}

/// The gRPC service as an HTTP/2 router (served by the same accept loops as the web listeners),
/// with the reflection service beside it when `reflection` is set.
pub fn router(state: &AppState) -> Result<axum::Router, tonic_reflection::server::Error> {
    let mut routes = tonic::service::Routes::new(proto::dex_server::DexServer::new(Api::new(state)));
    if state.config.grpc.reflection {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        routes = routes.add_service(reflection).add_service(reflection_alpha);
    }
    // Each call gets a request ID and span, as an HTTP request does, so the log line of a failure
    // (`status.rs`) can be found from the `x-request-id` the caller got back in its metadata.
    let request_ids = crate::http::request_id::RequestIdLayer::new(ClientIpRule::default());
    Ok(routes.prepare().into_axum_router().layer(request_ids))
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use sha2::{Digest, Sha256};

    /// The compiled proto without its comments and positions is byte for byte what `protoc
    /// --descriptor_set_out` makes of Dex's `api/v2/api.proto` (master at ab64ed7; less the empty
    /// method options that protoc records for `{}` and protox does not), whose SHA-256 this is: a
    /// changed name, number, type or label anywhere would break Dex's clients, and this test.
    const DEX_DESCRIPTOR_SHA256: &str = "74ddad56b7c6d0eb8c44a5239f04d98002bdd95334d061cc46770e8e0c86409b";

    #[test]
    fn the_proto_has_dexs_wire_shape() {
        let mut set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        for file in &mut set.file {
            file.source_code_info = None;
        }
        let digest: String = Sha256::digest(set.encode_to_vec()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, DEX_DESCRIPTOR_SHA256);
    }
}
