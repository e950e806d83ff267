//! The rules of the administration (gRPC) API that hold before anything is written: what a new or
//! updated client, password or refresh-token revocation must look like, and how an update merges into
//! what is stored. The server's handlers translate messages to these and back.

use crate::model::{Client, Password};
use crate::password::check_bcrypt_hash;

/// Bad input, naming the field at fault (`client.redirect_uris[0]`, `password.hash`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// A new client as Dex stores it: a random ID when none is given, and a random secret for a
/// confidential client that brings none (two IDs long, as Dex's).
pub fn client_with_defaults(mut client: Client) -> Client {
    if client.id.is_empty() {
        client.id = crate::id::new_id();
    }
    if client.secret.is_empty() && !client.public {
        client.secret = format!("{}{}", crate::id::new_id(), crate::id::new_id());
    }
    client
}

/// Checks the URIs and the refresh-token lifetime of a client about to be stored; `prefix` is how the
/// request names the client (`client.` in CreateClient, empty in UpdateClient).
pub fn check_client(client: &Client, prefix: &str) -> Result<(), FieldError> {
    for (name, uris) in
        [("redirect_uris", &client.redirect_uris), ("post_logout_redirect_uris", &client.post_logout_redirect_uris)]
    {
        for (i, uri) in uris.iter().enumerate() {
            check_uri(uri).map_err(|message| field_error(format!("{prefix}{name}[{i}]"), message))?;
        }
    }
    if !client.backchannel_logout_uri.is_empty() {
        check_uri(&client.backchannel_logout_uri)
            .map_err(|message| field_error(format!("{prefix}backchannel_logout_uri"), message))?;
    }
    check_refresh_token_lifetime(&client.refresh_token_lifetime)
        .map_err(|message| field_error(format!("{prefix}refresh_token_lifetime"), message))
}

/// A redirect target must be an absolute URI: a relative one would be resolved against whatever page
/// the browser is on. Custom schemes (`com.example.app:/cb`) and loopback addresses are fine.
fn check_uri(uri: &str) -> Result<(), String> {
    match url::Url::parse(uri) {
        Ok(_) if !uri.contains(char::is_whitespace) => Ok(()),
        _ => Err(format!("{uri:?} is not an absolute URI")),
    }
}

/// The same values the configuration file accepts.
pub fn check_refresh_token_lifetime(value: &str) -> Result<(), String> {
    match value {
        "" | "standalone" | "session" => Ok(()),
        other => Err(format!("{other:?}: expected standalone or session")),
    }
}

/// What UpdateClient may change. Dex's rule: a list or string left empty is "unchanged" (the wire
/// cannot tell empty from absent for them); the two `Option`s have explicit presence, so `Some("")`
/// clears them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientUpdate {
    pub redirect_uris: Vec<String>,
    pub trusted_peers: Vec<String>,
    pub name: String,
    pub logo_url: String,
    pub allowed_connectors: Vec<String>,
    pub sso_shared_with: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub refresh_token_lifetime: Option<String>,
}

impl ClientUpdate {
    /// The stored client with this update applied; the ID, secret and public flag never change here.
    pub fn apply(&self, mut client: Client) -> Client {
        fn replace(target: &mut Vec<String>, new: &[String]) {
            if !new.is_empty() {
                *target = new.to_vec();
            }
        }
        replace(&mut client.redirect_uris, &self.redirect_uris);
        replace(&mut client.trusted_peers, &self.trusted_peers);
        replace(&mut client.allowed_connectors, &self.allowed_connectors);
        if !self.sso_shared_with.is_empty() {
            client.sso_shared_with = Some(self.sso_shared_with.clone());
        }
        replace(&mut client.post_logout_redirect_uris, &self.post_logout_redirect_uris);
        if !self.name.is_empty() {
            client.name.clone_from(&self.name);
        }
        if !self.logo_url.is_empty() {
            client.logo_url.clone_from(&self.logo_url);
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            client.backchannel_logout_uri.clone_from(uri);
        }
        if let Some(lifetime) = &self.refresh_token_lifetime {
            client.refresh_token_lifetime.clone_from(lifetime);
        }
        client
    }
}

/// A bcrypt hash as the API receives it (bytes), checked as the configuration's `staticPasswords`
/// hashes are: bcrypt, cost 10 to 16.
pub fn check_hash(hash: &[u8], field: &str) -> Result<String, FieldError> {
    if hash.is_empty() {
        return Err(field_error(field, "no bcrypt hash supplied"));
    }
    let text = std::str::from_utf8(hash).map_err(|_| field_error(field, "not a bcrypt hash (not text)"))?;
    check_bcrypt_hash(text).map_err(|err| field_error(field, err.to_string()))?;
    Ok(text.to_owned())
}

/// A new local user: an email to log in with, a user ID for a stable `sub`, and an acceptable hash.
pub fn new_password(email: &str, hash: &[u8], username: &str, user_id: &str) -> Result<Password, FieldError> {
    if email.trim().is_empty() {
        return Err(field_error("password.email", "no email supplied"));
    }
    if user_id.is_empty() {
        return Err(field_error("password.user_id", "no user ID supplied"));
    }
    let hash = check_hash(hash, "password.hash")?;
    Ok(Password {
        email: email.to_owned(),
        hash,
        username: username.to_owned(),
        user_id: user_id.to_owned(),
        ..Password::default()
    })
}

/// What UpdatePassword changes: a new hash, a new username, or both (empty: unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordUpdate {
    pub hash: Option<String>,
    pub username: Option<String>,
}

impl PasswordUpdate {
    pub fn new(email: &str, new_hash: &[u8], new_username: &str) -> Result<Self, FieldError> {
        if email.is_empty() {
            return Err(field_error("email", "no email supplied"));
        }
        if new_hash.is_empty() && new_username.is_empty() {
            return Err(field_error("new_hash", "nothing to update: give new_hash, new_username or both"));
        }
        let hash = (!new_hash.is_empty()).then(|| check_hash(new_hash, "new_hash")).transpose()?;
        Ok(Self { hash, username: (!new_username.is_empty()).then(|| new_username.to_owned()) })
    }

    pub fn apply(&self, mut password: Password) -> Password {
        if let Some(hash) = &self.hash {
            password.hash.clone_from(hash);
        }
        if let Some(username) = &self.username {
            password.username.clone_from(username);
        }
        password
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

    fn stored() -> Client {
        Client {
            id: "app".into(),
            secret: "s".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            trusted_peers: vec!["peer".into()],
            name: "App".into(),
            logo_url: "https://app.example/logo.png".into(),
            backchannel_logout_uri: "https://app.example/logout".into(),
            refresh_token_lifetime: "session".into(),
            ..Client::default()
        }
    }

    #[test]
    fn new_clients_get_an_id_and_confidential_ones_a_secret() {
        let confidential = client_with_defaults(Client::default());
        assert_eq!(confidential.id.len(), 25);
        assert_eq!(confidential.secret.len(), 50);
        let public = client_with_defaults(Client { public: true, ..Client::default() });
        assert!(public.secret.is_empty(), "a public client keeps no secret");
        let given = client_with_defaults(Client { id: "mine".into(), secret: "s3".into(), ..Client::default() });
        assert_eq!((given.id.as_str(), given.secret.as_str()), ("mine", "s3"));
    }

    #[test]
    fn redirect_uris_must_be_absolute() {
        let ok = Client {
            redirect_uris: vec!["http://127.0.0.1:5555/cb".into(), "com.example.app:/oauth".into()],
            ..Client::default()
        };
        assert_eq!(check_client(&ok, "client."), Ok(()));
        let relative = Client { redirect_uris: vec!["https://a.example/cb".into(), "/cb".into()], ..Client::default() };
        assert_eq!(
            check_client(&relative, "client.").map_err(|e| e.to_string()),
            Err("client.redirect_uris[1]: \"/cb\" is not an absolute URI".into())
        );
        let spaced = Client { post_logout_redirect_uris: vec!["https://a.example/x y".into()], ..Client::default() };
        assert_eq!(check_client(&spaced, "").map_err(|e| e.field), Err("post_logout_redirect_uris[0]".into()));
        let lifetime = Client { refresh_token_lifetime: "forever".into(), ..Client::default() };
        assert_eq!(check_client(&lifetime, "").map_err(|e| e.field), Err("refresh_token_lifetime".into()));
    }

    #[test]
    fn an_update_replaces_only_what_it_gives() {
        let unchanged = ClientUpdate::default().apply(stored());
        assert_eq!(unchanged, stored(), "an empty update changes nothing");
        let update = ClientUpdate {
            name: "Renamed".into(),
            redirect_uris: vec!["https://new.example/cb".into()],
            backchannel_logout_uri: Some(String::new()),
            refresh_token_lifetime: None,
            ..ClientUpdate::default()
        };
        let updated = update.apply(stored());
        assert_eq!(updated.name, "Renamed");
        assert_eq!(updated.redirect_uris, vec!["https://new.example/cb".to_owned()]);
        assert_eq!(updated.backchannel_logout_uri, "", "an explicit empty value clears it");
        assert_eq!(updated.refresh_token_lifetime, "session", "absent: kept");
        assert_eq!(
            (updated.trusted_peers, updated.logo_url, updated.secret),
            (stored().trusted_peers, stored().logo_url, stored().secret)
        );
    }

    #[test]
    fn passwords_need_an_email_a_user_id_and_a_strong_bcrypt_hash() {
        let created = new_password("a@example.com", HASH.as_bytes(), "a", "u1").unwrap();
        assert_eq!((created.hash.as_str(), created.user_id.as_str()), (HASH, "u1"));
        let field = |r: Result<Password, FieldError>| r.map_err(|e| e.field).err();
        assert_eq!(field(new_password("", HASH.as_bytes(), "a", "u1")), Some("password.email".into()));
        assert_eq!(field(new_password("a@example.com", HASH.as_bytes(), "a", "")), Some("password.user_id".into()));
        assert_eq!(field(new_password("a@example.com", b"", "a", "u1")), Some("password.hash".into()));
        let weak = HASH.replacen("$10$", "$04$", 1);
        assert_eq!(
            new_password("a@example.com", weak.as_bytes(), "a", "u1").map_err(|e| e.to_string()),
            Err("password.hash: bcrypt cost 4 is below the minimum of 10".into())
        );
        assert_eq!(field(new_password("a@example.com", b"secret", "a", "u1")), Some("password.hash".into()));
        assert_eq!(field(new_password("a@example.com", &[0xff, 0xfe], "a", "u1")), Some("password.hash".into()));
    }

    #[test]
    fn a_password_update_needs_something_to_change() {
        assert_eq!(PasswordUpdate::new("", b"", "x").map_err(|e| e.field), Err("email".into()));
        assert_eq!(PasswordUpdate::new("a@example.com", b"", "").map_err(|e| e.field), Err("new_hash".into()));
        assert_eq!(PasswordUpdate::new("a@example.com", b"$2a$04$x", "").map_err(|e| e.field), Err("new_hash".into()));
        let rename = PasswordUpdate::new("a@example.com", b"", "alice").unwrap();
        let before =
            Password { email: "a@example.com".into(), hash: HASH.into(), username: "a".into(), ..Password::default() };
        let after = rename.apply(before.clone());
        assert_eq!((after.username.as_str(), after.hash.as_str()), ("alice", HASH));
    }
}
