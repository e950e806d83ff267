//! The configuration after validation: typed, defaults applied, environment variables resolved.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_core::client_ip::ClientIpRule;
use tessera_core::lifetimes;
use tessera_core::model::{Client, Connector, Password};
use tessera_storage::StorageSettings;
use url::Url;

#[derive(Debug, Clone)]
pub struct Config {
    /// The issuer exactly as written (discovery repeats it verbatim).
    pub issuer: String,
    pub issuer_url: Url,
    pub storage: StorageSettings,
    pub web: Web,
    pub telemetry: Telemetry,
    pub grpc: Grpc,
    pub logger: Logger,
    pub frontend: Frontend,
    pub expiry: Expiry,
    pub signer: Signer,
    pub oauth2: OAuth2,
    pub static_clients: Vec<Client>,
    pub enable_password_db: bool,
    pub static_passwords: Vec<Password>,
    /// Configured connectors, plus `local` when the password database is enabled.
    pub connectors: Vec<Connector>,
    /// Custom-claims enrichers, in the order they run.
    pub custom_claims: Vec<EnricherConfig>,
    /// Dex's CEL `authPolicy` and `tokenPolicy`, global and per client, compiled and checked.
    pub policies: std::sync::Arc<tessera_claims::policy::Policies>,
    /// Browser sessions: `Some` exactly when `DEX_SESSIONS_ENABLED=true`.
    pub sessions: Option<Sessions>,
    /// `rateLimits:`, the brute-force limits (on by default).
    pub rate_limits: tessera_core::limits::RateLimits,
    /// Bounds on each request: not in the file (tessera's fixed defaults; tests shorten them).
    pub request_limits: RequestLimits,
    pub flags: Flags,
}

/// What one request may cost the server before a handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// A larger body is refused with 413 (every body tessera accepts is a small form).
    pub max_body_bytes: usize,
    /// A form with more fields is refused with 400 (the largest tessera reads has about a dozen).
    pub max_form_fields: usize,
    /// A client that has not sent a request's headers by then is disconnected; this also bounds how
    /// long an idle keep-alive connection stays open (hyper starts the clock when it waits for a request).
    pub header_read_timeout: Duration,
    /// A client that has not sent the body by then gets 408.
    pub body_read_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_form_fields: 100,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(15),
        }
    }
}

/// Dex's `sessions:` section, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    pub cookie_name: String,
    /// From creation; a session never outlives it, however busy.
    pub absolute_lifetime: Duration,
    /// A session unused this long is over.
    pub valid_if_not_used_for: Duration,
    pub remember_me_checked_by_default: bool,
    /// The AES-GCM key (16, 24 or 32 bytes) the cookie is sealed with; `None`: signed only.
    pub cookie_encryption_key: Option<Vec<u8>>,
    pub sso_shared_with_default: SsoDefault,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            cookie_name: "dex_session".into(),
            absolute_lifetime: Duration::from_secs(24 * 3600),
            valid_if_not_used_for: Duration::from_secs(3600),
            remember_me_checked_by_default: true,
            cookie_encryption_key: None,
            sso_shared_with_default: SsoDefault::None,
        }
    }
}

/// What a client without its own `ssoSharedWith` shares its sign-in with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SsoDefault {
    #[default]
    None,
    All,
}

/// One configured custom-claims enricher.
#[derive(Debug, Clone)]
pub struct EnricherConfig {
    pub name: String,
    pub source: EnricherSource,
    pub destinations: tessera_claims::Destinations,
    pub guard: tessera_claims::reserved::Guard,
    /// Only for these grant types / clients (empty: all).
    pub grant_types: Vec<String>,
    pub clients: Vec<String>,
    /// What its failure means: no token (`deny`, the default) or a token without its claims (`omit`).
    pub on_error: tessera_claims::OnError,
    /// Off unless configured.
    pub cache: Option<tessera_claims::CacheSettings>,
}

#[derive(Debug, Clone)]
pub enum EnricherSource {
    /// A JSON object (already checked).
    Static(serde_json::Value),
    Postgres(tessera_claims::PostgresEnricherSettings),
    /// A webhook (`type: http`).
    Http(tessera_claims::HttpEnricherSettings),
}

impl Config {
    /// The grant types this server offers (and lists in discovery), as Dex computes them.
    pub fn grant_types(&self) -> Vec<&'static str> {
        tessera_core::grant::effective_grant_types(
            &self.oauth2.grant_types,
            &self.oauth2.response_types,
            self.oauth2.password_connector.is_some(),
            self.flags.client_credential_grant_enabled_by_default,
        )
    }

    /// The issuer's path without a trailing slash: every route is mounted under it (`/dex`, or ``).
    pub fn issuer_path(&self) -> &str {
        self.issuer_url.path().trim_end_matches('/')
    }
}

/// Dex's `DEX_*` feature flags that change how the configuration is read or used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub expand_env: bool,
    pub disallow_unknown_fields: bool,
    pub client_credential_grant_enabled_by_default: bool,
    pub continue_on_connector_failure: bool,
    pub sessions_enabled: bool,
    /// Connector CRUD through the gRPC API (Dex's `DEX_API_CONNECTORS_CRUD`, off by default).
    pub api_connectors_crud: bool,
    /// Session and user-identity methods of the gRPC API (`DEX_API_SESSIONS_IDENTITIES_CRUD`, off by default).
    pub api_sessions_identities_crud: bool,
    /// tessera's own: import a Dex's state on the first start (`TESSERA_IMPORT_DEX`, on by default).
    pub import_dex: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Web {
    pub http: Option<String>,
    pub https: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls_min_version: Option<String>,
    pub tls_max_version: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub allowed_origins: Vec<String>,
    pub allowed_headers: Vec<String>,
    /// `clientRemoteIP`: which address a request is attributed to.
    pub client_ip: ClientIpRule,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Telemetry {
    pub http: Option<String>,
    pub enable_profiling: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grpc {
    pub addr: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls_client_ca: Option<String>,
    pub tls_min_version: Option<String>,
    pub tls_max_version: Option<String>,
    pub reflection: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logger {
    pub level: LogLevel,
    pub format: LogFormat,
    pub exclude_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    pub dir: Option<String>,
    pub logo_url: Option<String>,
    /// The product name shown on pages (Dex: "dex").
    pub issuer: String,
    pub theme: String,
    pub extra: BTreeMap<String, String>,
}

impl Default for Frontend {
    fn default() -> Self {
        Self { dir: None, logo_url: None, issuer: "dex".into(), theme: "light".into(), extra: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub signing_keys: Option<Duration>,
    pub id_tokens: Duration,
    pub auth_requests: Duration,
    pub device_requests: Duration,
    pub refresh_tokens: RefreshTokenExpiry,
}

impl Default for Expiry {
    fn default() -> Self {
        Self {
            signing_keys: None,
            id_tokens: lifetimes::ID_TOKENS,
            auth_requests: lifetimes::AUTH_REQUESTS,
            device_requests: lifetimes::DEVICE_REQUESTS,
            refresh_tokens: RefreshTokenExpiry::default(),
        }
    }
}

/// Zero means disabled or unlimited, as in Dex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshTokenExpiry {
    pub disable_rotation: bool,
    pub reuse_interval: Duration,
    pub absolute_lifetime: Duration,
    pub valid_if_not_used_for: Duration,
}

impl RefreshTokenExpiry {
    /// The rules tessera-core applies to refresh tokens.
    pub fn policy(&self) -> tessera_core::refresh::RefreshPolicy {
        tessera_core::refresh::RefreshPolicy {
            rotation: !self.disable_rotation,
            reuse_interval: self.reuse_interval,
            absolute_lifetime: self.absolute_lifetime,
            valid_if_not_used_for: self.valid_if_not_used_for,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SigningAlgorithm {
    #[default]
    RS256,
    ES256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub keys_rotation_period: Duration,
    pub algorithm: SigningAlgorithm,
}

impl Default for Signer {
    fn default() -> Self {
        Self { keys_rotation_period: lifetimes::KEYS_ROTATION_PERIOD, algorithm: SigningAlgorithm::RS256 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2 {
    /// As configured; empty means Dex's default set.
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub skip_approval_screen: bool,
    pub always_show_login_screen: bool,
    pub password_connector: Option<String>,
    pub pkce_enforce: bool,
    pub code_challenge_methods_supported: Vec<String>,
}

impl Default for OAuth2 {
    fn default() -> Self {
        Self {
            grant_types: Vec::new(),
            response_types: vec!["code".into()],
            skip_approval_screen: false,
            always_show_login_screen: false,
            password_connector: None,
            pkce_enforce: false,
            code_challenge_methods_supported: vec!["S256".into(), "plain".into()],
        }
    }
}
