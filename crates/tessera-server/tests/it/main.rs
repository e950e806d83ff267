//! tessera-server's integration tests: configuration reading, and the server started for real.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failing test should stop loudly

mod authproxy;
mod browser;
mod cel_policies;
mod chromium;
mod claims_cache;
mod config;
mod custom_claims;
mod discovery_and_keys;
mod grants;
mod grpc;
mod http_enricher;
mod https;
mod ldap;
mod lifecycle;
mod log_capture;
mod login;
mod logs;
mod metrics;
mod oidc;
mod pages;
mod request_ids;
mod serve;
mod sessions;
mod upstream_apis;
mod userinfo;
