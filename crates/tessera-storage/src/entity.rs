//! How each of Dex's entities maps onto the document store: its kind, its key, its expiry.

use serde::{Serialize, de::DeserializeOwned};
use tessera_core::model::{
    AuthCode, AuthRequest, AuthSession, BackchannelLogout, Client, Connector, DeviceRequest, DeviceToken, Keys,
    OfflineSessions, Password, RefreshToken, UserIdentity,
};
use time::OffsetDateTime;

use crate::Kind;

pub trait Entity: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: Kind;
    /// The key this value is stored under.
    fn key(&self) -> String;
    /// Turns a lookup key into the stored key (passwords are found by email, case-insensitively).
    fn normalize_key(key: &str) -> String {
        key.to_owned()
    }
    /// When garbage collection may delete it; `None` for kinds that are never collected.
    fn expiry(&self) -> Option<OffsetDateTime> {
        None
    }
    /// The one other object this value names, stored with it so that
    /// [`crate::Storage::get_versioned_linked`] reads both in one statement.
    fn link(&self) -> Option<(Kind, String)> {
        None
    }
}

macro_rules! entity {
    ($ty:ty, $kind:expr, |$v:ident| $key:expr) => {
        impl Entity for $ty {
            const KIND: Kind = $kind;
            fn key(&self) -> String {
                let $v = self;
                $key
            }
        }
    };
    ($ty:ty, $kind:expr, |$v:ident| $key:expr, expires) => {
        impl Entity for $ty {
            const KIND: Kind = $kind;
            fn key(&self) -> String {
                let $v = self;
                $key
            }
            fn expiry(&self) -> Option<OffsetDateTime> {
                Some(self.expiry)
            }
        }
    };
}

entity!(Client, Kind::Client, |c| c.id.clone());
entity!(Connector, Kind::Connector, |c| c.id.clone());
entity!(Keys, Kind::Keys, |_k| KEYS_KEY.to_owned());
entity!(AuthRequest, Kind::AuthRequest, |r| r.id.clone(), expires);
entity!(AuthCode, Kind::AuthCode, |c| c.id.clone(), expires);
entity!(DeviceRequest, Kind::DeviceRequest, |r| r.user_code.clone(), expires);
entity!(DeviceToken, Kind::DeviceToken, |t| t.device_code.clone(), expires);

/// Collected once either expiry passes; a live session rewrites its expiry with every use.
impl Entity for AuthSession {
    const KIND: Kind = Kind::AuthSession;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn expiry(&self) -> Option<OffsetDateTime> {
        Some(tessera_core::session::expiry(self))
    }
}

/// Collected once its logout token expires, delivered or not.
impl Entity for BackchannelLogout {
    const KIND: Kind = Kind::BackchannelLogout;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn expiry(&self) -> Option<OffsetDateTime> {
        Some(self.expiry)
    }
}

/// One per user and connector, like the offline sessions.
impl Entity for UserIdentity {
    const KIND: Kind = Kind::UserIdentity;
    fn key(&self) -> String {
        offline_sessions_key(&self.user_id, &self.connector_id)
    }
}

/// The single key under which the signing keys live.
pub(crate) const KEYS_KEY: &str = "keys";

impl Entity for Password {
    const KIND: Kind = Kind::Password;
    fn key(&self) -> String {
        Self::normalize_key(&self.email)
    }
    fn normalize_key(key: &str) -> String {
        key.to_lowercase()
    }
}

impl Entity for RefreshToken {
    const KIND: Kind = Kind::RefreshToken;
    fn key(&self) -> String {
        self.id.clone()
    }
    /// A refresh reads the user's offline session with the token.
    fn link(&self) -> Option<(Kind, String)> {
        Some((Kind::OfflineSessions, offline_sessions_key(&self.claims.user_id, &self.connector_id)))
    }
}

impl Entity for OfflineSessions {
    const KIND: Kind = Kind::OfflineSessions;
    fn key(&self) -> String {
        offline_sessions_key(&self.user_id, &self.conn_id)
    }
}

/// A user ID and a connector ID joined unambiguously (either may contain any character).
pub(crate) fn offline_sessions_key(user_id: &str, conn_id: &str) -> String {
    format!("{}:{user_id}{conn_id}", user_id.len())
}
