//! tessera-server: Dex's configuration file, the HTTP server and its background tasks.
//!
//! [`config`] turns a Dex `config.yaml` into a validated [`config::Config`]; [`server`] opens the
//! storage it names and serves [`http`] under the issuer's path, with the [`tasks`] running beside.

pub mod config;
pub mod connections;
pub mod connectors;
pub mod custom_claims;
pub mod dex_import;
pub mod grpc;
pub mod http;
pub mod id_token_hint;
pub mod logging;
pub mod logout;
pub mod metrics;
pub mod refresh_tokens;
pub mod server;
pub mod sessions;
pub mod signer;
pub mod state;
pub mod storage_health;
pub mod tasks;
pub mod tls;
pub mod token_issuer;
pub mod web;

pub use server::{BoundServer, StartError};
pub use state::AppState;
