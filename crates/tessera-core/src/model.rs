//! Dex's storage entities, field for field (`storage/storage.go` in Dex), as tessera keeps them.
//!
//! Times keep the offset they were created with (RFC 3339 in storage), so a value read back equals
//! the value written, whatever the time zone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bytes;

/// An OAuth2 client (a relying party).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Client {
    pub id: String,
    pub secret: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Clients allowed to request tokens with this client as the audience.
    pub trusted_peers: Vec<String>,
    /// A public client (native app, SPA) has no secret to keep.
    pub public: bool,
    pub name: String,
    pub logo_url: String,
    /// Connector IDs this client may log in with; empty means all.
    pub allowed_connectors: Vec<String>,
    /// `standalone` (default) or `session`.
    pub refresh_token_lifetime: String,
    pub client_credentials_claims: Option<ClientCredentialsClaims>,
    /// Clients that may reuse a browser session this client signed in (`*`: every client). `None`
    /// follows `sessions.ssoSharedWithDefault`; `Some([])` shares with nobody (Dex tells them apart).
    pub sso_shared_with: Option<Vec<String>>,
    /// Where a back-channel logout token would be sent; kept for the API, not used yet.
    pub backchannel_logout_uri: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientCredentialsClaims {
    pub groups: Vec<String>,
}

/// The identity a connector vouched for, carried into tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Claims {
    pub user_id: String,
    pub username: String,
    pub preferred_username: String,
    pub email: String,
    pub email_verified: bool,
    pub groups: Vec<String>,
}

/// A PKCE challenge from the authorization request (RFC 7636).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pkce {
    pub code_challenge: String,
    pub code_challenge_method: String,
}

/// A login in progress, from `/auth` until a code or token is issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub id: String,
    pub client_id: String,
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub nonce: String,
    pub state: String,
    /// Show the consent screen even if consent was given before.
    pub force_approval_prompt: bool,
    pub prompt: String,
    /// `max_age` in seconds; -1 when the client did not send one.
    pub max_age: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub auth_time: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub expiry: OffsetDateTime,
    pub logged_in: bool,
    pub claims: Claims,
    pub connector_id: String,
    #[serde(with = "bytes::hex")]
    pub connector_data: Vec<u8>,
    pub pkce: Pkce,
    /// Per-request key for the HMAC that protects each step of the login flow.
    #[serde(with = "bytes::hex")]
    pub hmac_key: Vec<u8>,
    /// The browser session the login was recorded on (sessions on), published as `sid`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_id: String,
    /// The client's `login_hint`: the username the login form starts with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub login_hint: String,
}

/// An authorization code, redeemable once at `/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub nonce: String,
    pub scopes: Vec<String>,
    pub connector_id: String,
    #[serde(with = "bytes::hex")]
    pub connector_data: Vec<u8>,
    pub claims: Claims,
    #[serde(with = "time::serde::rfc3339")]
    pub expiry: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub auth_time: Option<OffsetDateTime>,
    pub pkce: Pkce,
    /// The browser session the code was issued from: the tokens' `sid`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_id: String,
}

/// A refresh token: `id` finds it, `token` is the secret that rotates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    pub id: String,
    pub token: String,
    /// The previous secret, accepted again only within the reuse interval.
    pub obsolete_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used: OffsetDateTime,
    pub client_id: String,
    pub connector_id: String,
    #[serde(with = "bytes::hex")]
    pub connector_data: Vec<u8>,
    pub claims: Claims,
    pub scopes: Vec<String>,
    pub nonce: String,
}

/// What an offline session remembers of one refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRef {
    pub id: String,
    pub client_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used: OffsetDateTime,
    /// The browser session the token was first issued under (empty outside a browser flow): its
    /// `sid` on every refresh, and what ends it for a `refreshTokenLifetime: session` client.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_id: String,
}

/// A user's refresh tokens through one connector (one per client), and the upstream's data for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OfflineSessions {
    pub user_id: String,
    pub conn_id: String,
    /// Client ID to that client's current refresh token.
    pub refresh: BTreeMap<String, RefreshTokenRef>,
    #[serde(with = "bytes::hex")]
    pub connector_data: Vec<u8>,
}

/// One signed-in browser (Dex's `AuthSession`): the user, the connector they logged in with, and
/// the clients reached since. Found only through its cookie, so a second device starts its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSession {
    /// Random; what the cookie names.
    pub id: String,
    /// Keys the cookie's MAC: the ID alone proves nothing once it is published (as `sid`).
    pub secret: String,
    pub user_id: String,
    pub connector_id: String,
    /// The identity the connector vouched for, handed to the clients single sign-on lets in.
    pub claims: Claims,
    /// Client ID to how this session reached it.
    #[serde(default)]
    pub client_states: BTreeMap<String, ClientAuthState>,
    /// The connector's login, reported as `auth_time`.
    #[serde(with = "time::serde::rfc3339")]
    pub auth_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity: OffsetDateTime,
    /// `created_at` + `sessions.absoluteLifetime`, fixed at creation.
    #[serde(with = "time::serde::rfc3339")]
    pub absolute_expiry: OffsetDateTime,
    /// `last_activity` + `sessions.validIfNotUsedFor`, moved by every use.
    #[serde(with = "time::serde::rfc3339")]
    pub idle_expiry: OffsetDateTime,
    /// Set while the browser is at the upstream's logout page: the session ends when it comes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_state: Option<LogoutState>,
    /// The "remember me" choice: a persistent cookie rather than one for the browser's lifetime.
    #[serde(default)]
    pub remember_me: bool,
    /// The client's address (`web.clientRemoteIP`, no port) at the login that created or last
    /// renewed the session; empty when unknown. For operators (the gRPC API), never a decision.
    #[serde(default)]
    pub ip_address: String,
    /// The browser's `User-Agent` at that login, cut to `session::MAX_USER_AGENT` bytes.
    #[serde(default)]
    pub user_agent: String,
}

/// A logout parked on its session while the upstream ends its own (Dex's `LogoutState`): what the
/// relying party asked for, to answer it once the browser is back at `/logout/callback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutState {
    /// Validated against the client's registration before it was parked.
    pub post_logout_redirect_uri: String,
    pub state: String,
    pub client_id: String,
    pub connector_id: String,
}

/// What tessera keeps of a user across sessions (Dex's `UserIdentity`, kept with sessions on): the
/// last identity a connector returned and the scopes the user approved for each client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdentity {
    pub user_id: String,
    pub connector_id: String,
    pub claims: Claims,
    /// Client ID to the scopes approved for it.
    #[serde(default)]
    pub consents: BTreeMap<String, Vec<String>>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_login: OffsetDateTime,
}

/// A back-channel logout token on its way to one client (OpenID Connect Back-Channel Logout 1.0).
/// Queued in storage when a session ends, so whichever replica is alive delivers it, and retried
/// until the client answers 2xx or the token expires (then garbage collection removes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackchannelLogout {
    /// The session and the client: ending one session twice queues one delivery per client.
    pub id: String,
    pub session_id: String,
    pub user_id: String,
    pub client_id: String,
    /// The client's `backchannelLogoutURI` when the session ended.
    pub uri: String,
    /// The signed `logout_token`, the same at every attempt (its `jti` lets the client spot repeats).
    pub logout_token: String,
    pub attempts: u32,
    /// Not before: a claimed delivery is pushed past its timeout, a failed one past its backoff.
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt: OffsetDateTime,
    #[serde(default)]
    pub last_error: String,
    /// The token's `exp`: no delivery after it.
    #[serde(with = "time::serde::rfc3339")]
    pub expiry: OffsetDateTime,
}

/// How a session reached one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAuthState {
    #[serde(with = "time::serde::rfc3339")]
    pub authenticated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity: OffsetDateTime,
    /// Reached by single sign-on from another client, not by a login: such a state never lends the
    /// session on, so sharing stays one hop (A shares with B, B with C, does not take A's user to C).
    #[serde(default)]
    pub via_sso: bool,
    /// When the last code or token was issued to the client from this session.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub last_token_issued_at: Option<OffsetDateTime>,
}

/// A user of the local password database. Looked up by email, case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Password {
    pub email: String,
    /// A bcrypt hash (`$2a$…`).
    pub hash: String,
    pub username: String,
    pub name: String,
    pub preferred_username: String,
    /// Dex treats an unset value as verified.
    pub email_verified: Option<bool>,
    pub user_id: String,
    pub groups: Vec<String>,
}

/// An upstream identity connector as stored (its `config` is the connector's own JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connector {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// Bumped on each change, so servers know to re-open the connector.
    pub resource_version: String,
    pub config: serde_json::Value,
    /// Grant types this connector may be used for; `None` means all.
    pub grant_types: Option<Vec<String>>,
}

/// A public key kept for verifying tokens signed before the last rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationKey {
    /// The public key as a JWK.
    pub public_key: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub expiry: OffsetDateTime,
}

/// The signing keys, one record shared by every instance on a storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// The private signing key as a JWK; `None` before the first rotation.
    pub signing_key: Option<serde_json::Value>,
    pub signing_key_pub: Option<serde_json::Value>,
    pub verification_keys: Vec<VerificationKey>,
    #[serde(with = "time::serde::rfc3339")]
    pub next_rotation: OffsetDateTime,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            signing_key: None,
            signing_key_pub: None,
            verification_keys: Vec::new(),
            next_rotation: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

/// A device authorization request (RFC 8628), found by the code the user types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    pub user_code: String,
    pub device_code: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expiry: OffsetDateTime,
}

/// The device's side of a device flow, polled at `/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceToken {
    pub device_code: String,
    /// `authorization_pending` or `complete`.
    pub status: String,
    /// The token response, as JSON, once complete.
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expiry: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_request_time: OffsetDateTime,
    pub poll_interval_seconds: i32,
    pub pkce: Pkce,
}
