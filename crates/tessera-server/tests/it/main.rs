//! tessera-server's integration tests: configuration reading, and the server started for real.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failing test should stop loudly

mod authproxy;
mod browser;
mod cel_policies;
mod chromium;
mod claims_cache;
mod config;
mod custom_claims;
mod dex_db;
mod dex_import;
mod discovery_and_keys;
mod etcd_storage;
mod grants;
mod grpc;
mod grpc_sessions;
mod hardening;
mod http_enricher;
mod https;
mod ldap;
mod lifecycle;
mod limits;
mod log_capture;
mod login;
mod logout;
mod logs;
mod metrics;
mod mysql_storage;
mod oidc;
mod pages;
mod request_ids;
mod request_limits;
mod serve;
mod session_prompts;
mod sessions;
mod upstream_apis;
mod userinfo;
