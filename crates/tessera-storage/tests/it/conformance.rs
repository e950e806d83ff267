//! Dex's storage conformance suite (`storage/conformance` in Dex), written once for every backend.
//! Each case gets an empty storage and panics on the first broken guarantee.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tessera_core::id::new_id;
use tessera_core::model::*;
use tessera_storage::{Entity, GcResult, StaticObjects, Storage, StorageError, Versioned};
use time::macros::offset;
use time::{Duration, OffsetDateTime, UtcOffset};

/// The test epoch with nanoseconds, which every backend must keep (or round the same way).
fn now() -> OffsetDateTime {
    tessera_core::clock::test_epoch().replace_nanosecond(123_456_789).unwrap_or(tessera_core::clock::test_epoch())
}

fn claims() -> Claims {
    Claims {
        user_id: "0-385-28089-0".into(),
        username: "Kilgore Trout".into(),
        preferred_username: "kilgore".into(),
        email: "kilgore@kilgore.trout".into(),
        email_verified: true,
        groups: vec!["authors".into(), "readers".into()],
    }
}

fn pkce() -> Pkce {
    Pkce { code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(), code_challenge_method: "S256".into() }
}

pub fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        secret: "secret".into(),
        redirect_uris: vec!["https://app.example/callback".into(), "http://127.0.0.1:5555/cb".into()],
        trusted_peers: vec!["peer-app".into()],
        name: "Example App".into(),
        logo_url: "https://app.example/logo.png".into(),
        allowed_connectors: vec!["local".into()],
        client_credentials_claims: Some(ClientCredentialsClaims { groups: vec!["machines".into()] }),
        sso_shared_with: Some(vec!["peer-app".into()]),
        backchannel_logout_uri: "https://app.example/logout".into(),
        ..Client::default()
    }
}

fn auth_request(expiry: OffsetDateTime) -> AuthRequest {
    AuthRequest {
        id: new_id(),
        client_id: "app".into(),
        response_types: vec!["code".into(), "id_token".into()],
        scopes: vec!["openid".into(), "email".into()],
        redirect_uri: "https://app.example/callback".into(),
        nonce: "n-0S6_WzA2Mj".into(),
        state: "af0ifjsldkj".into(),
        force_approval_prompt: true,
        prompt: "consent".into(),
        max_age: 3600,
        auth_time: Some(now()),
        expiry,
        logged_in: true,
        claims: claims(),
        connector_id: "local".into(),
        connector_data: br#"{"upstream":"data"}"#.to_vec(),
        pkce: pkce(),
        hmac_key: vec![0, 1, 2, 254, 255],
        session_id: String::new(),
        login_hint: String::new(),
    }
}

fn auth_code(expiry: OffsetDateTime) -> AuthCode {
    AuthCode {
        id: new_id(),
        client_id: "app".into(),
        redirect_uri: "https://app.example/callback".into(),
        nonce: "nonce".into(),
        scopes: vec!["openid".into(), "groups".into()],
        connector_id: "ldap".into(),
        connector_data: b"opaque".to_vec(),
        claims: claims(),
        expiry,
        auth_time: None,
        pkce: pkce(),
        session_id: "session-1".into(),
    }
}

pub fn refresh_token() -> RefreshToken {
    RefreshToken {
        id: new_id(),
        token: "secret-1".into(),
        obsolete_token: String::new(),
        created_at: now(),
        last_used: now(),
        client_id: "app".into(),
        connector_id: "local".into(),
        connector_data: vec![],
        claims: claims(),
        scopes: vec!["openid".into(), "offline_access".into()],
        nonce: "0".into(),
    }
}

fn password(email: &str) -> Password {
    Password {
        email: email.into(),
        hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W".into(),
        username: "jane".into(),
        name: "Jane Doe".into(),
        preferred_username: "jd".into(),
        email_verified: Some(false),
        user_id: "08a8684b-db88-4b73-90a9-3cd1661f5466".into(),
        groups: vec!["admins".into()],
    }
}

fn device_request(expiry: OffsetDateTime) -> DeviceRequest {
    DeviceRequest {
        user_code: format!("BCDF-{}", &new_id()[..4].to_uppercase()),
        device_code: new_id(),
        client_id: "tv".into(),
        client_secret: "tv-secret".into(),
        scopes: vec!["openid".into()],
        expiry,
    }
}

fn device_token(expiry: OffsetDateTime) -> DeviceToken {
    DeviceToken {
        device_code: new_id(),
        status: "authorization_pending".into(),
        token: String::new(),
        expiry,
        last_request_time: now(),
        poll_interval_seconds: 5,
        pkce: pkce(),
    }
}

fn jwk(kid: &str) -> serde_json::Value {
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
           "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
}

/// The CRUD contract for one entity: create, duplicate, get, update, list, delete, get-after-delete.
async fn round_trip<E>(s: &Storage, value: E, change: impl Fn(&mut E) + Send + Sync)
where
    E: Entity + Clone + PartialEq + std::fmt::Debug,
{
    let key = value.key();
    s.create(&value).await.unwrap();
    assert!(matches!(s.create(&value).await, Err(StorageError::AlreadyExists)), "duplicate create must fail");
    assert_eq!(s.get::<E>(&key).await.unwrap(), value, "get must return what was created, nested data included");

    let mut expected = value.clone();
    change(&mut expected);
    assert_ne!(expected, value, "the test's change must change something");
    let updated = s
        .update::<E, _, StorageError>(&key, |mut current| {
            change(&mut current);
            Ok(current)
        })
        .await
        .unwrap();
    assert_eq!(updated, expected);
    assert_eq!(s.get::<E>(&key).await.unwrap(), expected, "the update must be stored");

    let listed = s.list::<E>().await.unwrap();
    assert_eq!(listed, vec![expected]);

    s.delete::<E>(&key).await.unwrap();
    assert!(matches!(s.get::<E>(&key).await, Err(StorageError::NotFound)), "get after delete");
    assert!(matches!(s.delete::<E>(&key).await, Err(StorageError::NotFound)), "second delete");
    assert!(s.list::<E>().await.unwrap().is_empty());
}

pub async fn client_round_trip(s: Storage) {
    round_trip(&s, client("app"), |c| {
        c.secret = "rotated".into();
        c.redirect_uris.push("https://app.example/other".into());
        c.client_credentials_claims = None;
    })
    .await;
}

pub async fn auth_request_round_trip(s: Storage) {
    round_trip(&s, auth_request(now() + Duration::hours(24)), |r| {
        r.logged_in = false;
        r.claims.groups.push("new".into());
        r.pkce.code_challenge_method = "plain".into();
        r.expiry += Duration::minutes(5);
    })
    .await;
}

pub async fn auth_code_round_trip(s: Storage) {
    round_trip(&s, auth_code(now() + Duration::minutes(30)), |c| {
        c.auth_time = Some(now());
        c.claims.email_verified = false;
    })
    .await;
}

pub async fn refresh_token_round_trip(s: Storage) {
    round_trip(&s, refresh_token(), |t| {
        t.obsolete_token = t.token.clone();
        t.token = "secret-2".into();
        t.last_used += Duration::seconds(30);
    })
    .await;
}

pub async fn password_round_trip_with_case_insensitive_email(s: Storage) {
    let jane = password("Jane@Example.com");
    s.create(&jane).await.unwrap();
    assert!(matches!(s.create(&password("jane@example.COM")).await, Err(StorageError::AlreadyExists)));
    assert_eq!(s.get_password("JANE@example.com").await.unwrap(), jane);
    let updated = s
        .update::<Password, _, StorageError>("jane@EXAMPLE.com", |mut p| {
            p.groups.push("devs".into());
            Ok(p)
        })
        .await
        .unwrap();
    assert_eq!(updated.groups, vec!["admins", "devs"]);
    assert_eq!(s.list::<Password>().await.unwrap(), vec![updated]);
    s.delete::<Password>("JANE@EXAMPLE.COM").await.unwrap();
    assert!(matches!(s.get_password("jane@example.com").await, Err(StorageError::NotFound)));
}

pub async fn offline_sessions_round_trip(s: Storage) {
    let mut refresh = BTreeMap::new();
    refresh.insert(
        "app".to_owned(),
        RefreshTokenRef {
            id: new_id(),
            client_id: "app".into(),
            created_at: now(),
            last_used: now(),
            session_id: String::new(),
        },
    );
    let sessions = OfflineSessions {
        user_id: "user:with:colons".into(),
        conn_id: "ldap".into(),
        refresh,
        connector_data: br#"{"refresh_token":"upstream"}"#.to_vec(),
    };
    // A user ID and connector ID that concatenate to the same text must stay distinct.
    let lookalike = OfflineSessions { user_id: "user:with:colonsl".into(), conn_id: "dap".into(), ..sessions.clone() };
    s.create(&sessions).await.unwrap();
    s.create(&lookalike).await.unwrap();
    assert_eq!(s.get_offline_sessions("user:with:colons", "ldap").await.unwrap(), sessions);
    let updated = s
        .update_offline_sessions::<_, StorageError>("user:with:colons", "ldap", |mut o| {
            o.refresh.insert(
                "cli".into(),
                RefreshTokenRef {
                    id: "r2".into(),
                    client_id: "cli".into(),
                    created_at: now(),
                    last_used: now(),
                    session_id: String::new(),
                },
            );
            Ok(o)
        })
        .await
        .unwrap();
    assert_eq!(updated.refresh.len(), 2);
    assert_eq!(s.get_offline_sessions("user:with:colons", "ldap").await.unwrap(), updated);
    assert_eq!(s.get_offline_sessions("user:with:colonsl", "dap").await.unwrap(), lookalike);
    s.delete_offline_sessions("user:with:colons", "ldap").await.unwrap();
    assert!(matches!(s.get_offline_sessions("user:with:colons", "ldap").await, Err(StorageError::NotFound)));
    assert_eq!(s.list::<OfflineSessions>().await.unwrap(), vec![lookalike]);
}

pub async fn connector_round_trip(s: Storage) {
    let connector = Connector {
        id: "ldap".into(),
        kind: "ldap".into(),
        name: "Corporate LDAP".into(),
        resource_version: "1".into(),
        config: json!({"host": "ldap.example:636", "userSearch": {"baseDN": "ou=people", "username": ["uid", "mail"]}}),
        grant_types: Some(vec!["authorization_code".into()]),
    };
    round_trip(&s, connector, |c| {
        c.resource_version = "2".into();
        c.config["insecureNoSSL"] = json!(true);
        c.grant_types = None;
    })
    .await;
}

pub async fn device_request_round_trip(s: Storage) {
    round_trip(&s, device_request(now() + Duration::minutes(5)), |r| r.scopes.push("groups".into())).await;
}

pub async fn device_token_round_trip(s: Storage) {
    round_trip(&s, device_token(now() + Duration::minutes(5)), |t| {
        t.status = "complete".into();
        t.token = r#"{"access_token":"a","token_type":"bearer"}"#.into();
        t.poll_interval_seconds = 10;
    })
    .await;
}

pub async fn keys_round_trip(s: Storage) {
    assert!(matches!(s.get_keys().await, Err(StorageError::NotFound)), "no keys before the first rotation");
    let first = s
        .update_keys::<_, StorageError>(|mut k| {
            assert_eq!(k, Keys::default(), "the first updater sees empty keys");
            k.signing_key = Some(jwk("k1"));
            k.signing_key_pub = Some(jwk("k1"));
            k.next_rotation = now() + Duration::hours(6);
            Ok(k)
        })
        .await
        .unwrap();
    assert_eq!(s.get_keys().await.unwrap(), first);
    let rotated = s
        .update_keys::<_, StorageError>(|mut k| {
            let old = k.signing_key_pub.take().unwrap();
            k.verification_keys.push(VerificationKey { public_key: old, expiry: now() + Duration::hours(24) });
            k.signing_key = Some(jwk("k2"));
            k.signing_key_pub = Some(jwk("k2"));
            k.next_rotation = now() + Duration::hours(12);
            Ok(k)
        })
        .await
        .unwrap();
    let stored = s.get_keys().await.unwrap();
    assert_eq!(stored, rotated);
    assert_eq!(stored.verification_keys[0].public_key["kid"], "k1");
    assert_eq!(stored.signing_key.unwrap()["kid"], "k2");
}

fn auth_session(created: OffsetDateTime) -> AuthSession {
    let state = ClientAuthState {
        authenticated_at: created,
        last_activity: created,
        via_sso: false,
        last_token_issued_at: None,
    };
    AuthSession {
        id: new_id(),
        secret: new_id(),
        user_id: "user-1".into(),
        connector_id: "local".into(),
        claims: claims(),
        client_states: [("example-app".to_owned(), state)].into(),
        auth_time: created,
        created_at: created,
        last_activity: created,
        absolute_expiry: created + Duration::hours(24),
        idle_expiry: created + Duration::hours(1),
        logout_state: None,
        remember_me: true,
        ip_address: "192.0.2.1".into(),
        user_agent: "Mozilla/5.0".into(),
    }
}

/// A browser session reads back as written, and is collected by its earlier (idle) expiry, moved by
/// an update.
pub async fn auth_session_round_trip_and_collection(s: Storage) {
    let created = now();
    let session = auth_session(created);
    s.create(&session).await.unwrap();
    assert_eq!(s.get::<AuthSession>(&session.id).await.unwrap(), session);
    let moved = created + Duration::minutes(50);
    s.update::<AuthSession, _, StorageError>(&session.id, |mut stored| {
        stored.idle_expiry = moved + Duration::hours(1);
        Ok(stored)
    })
    .await
    .unwrap();
    let result = s.garbage_collect(created + Duration::minutes(90)).await.unwrap();
    assert_eq!(result.auth_sessions, 0, "the update moved the idle expiry");
    let result = s.garbage_collect(moved + Duration::hours(1) + Duration::nanoseconds(1)).await.unwrap();
    assert_eq!(result.auth_sessions, 1);
    assert!(matches!(s.get::<AuthSession>(&session.id).await, Err(StorageError::NotFound)));
}

/// Concurrent first logins create one identity, and every writer's change is kept.
pub async fn user_identity_upsert_creates_once_then_updates(s: Storage) {
    let user = new_id();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (s, user) = (s.clone(), user.clone());
            tokio::spawn(async move {
                let first = UserIdentity {
                    user_id: user,
                    connector_id: "local".into(),
                    claims: claims(),
                    consents: BTreeMap::new(),
                    created_at: now(),
                    last_login: now(),
                };
                s.upsert_user_identity(first, |mut identity| {
                    identity.consents.insert(format!("client-{i}"), vec!["email".into()]);
                    Ok(identity)
                })
                .await
                .unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stored = s.get_user_identity(&user, "local").await.unwrap();
    assert_eq!(stored.consents.len(), 8, "{:?}", stored.consents);
    assert_eq!(s.list::<UserIdentity>().await.unwrap().iter().filter(|u| u.user_id == user).count(), 1);
}

pub async fn updater_error_keeps_the_old_value(s: Storage) {
    let original = client("app");
    s.create(&original).await.unwrap();
    let result = s
        .update::<Client, _, StorageError>("app", |mut c| {
            c.secret = "half-written".into();
            Err(StorageError::NotFound)
        })
        .await;
    assert!(matches!(result, Err(StorageError::NotFound)), "the updater's error is returned: {result:?}");
    assert_eq!(s.get::<Client>("app").await.unwrap(), original, "a failed update leaves the old value");
}

pub async fn updater_may_not_change_the_key(s: Storage) {
    s.create(&client("app")).await.unwrap();
    let result = s
        .update::<Client, _, StorageError>("app", |mut c| {
            c.id = "other".into();
            Ok(c)
        })
        .await;
    assert!(matches!(result, Err(StorageError::KeyChanged { .. })), "{result:?}");
    assert!(matches!(s.get::<Client>("other").await, Err(StorageError::NotFound)));
    assert_eq!(s.get::<Client>("app").await.unwrap(), client("app"));
}

pub async fn update_of_missing_object_is_not_found(s: Storage) {
    let result = s.update::<Client, _, StorageError>("ghost", Ok).await;
    assert!(matches!(result, Err(StorageError::NotFound)), "{result:?}");
    let result = s.update::<RefreshToken, _, StorageError>("ghost", Ok).await;
    assert!(matches!(result, Err(StorageError::NotFound)), "{result:?}");
}

/// Dex's transaction test: an update issued from inside another update's updater (so it commits
/// between the outer update's read and write) makes exactly one of the two fail, and the stored value
/// is the successful one's.
async fn nested_update<E>(s: &Storage, value: E, set: fn(&mut E, &str), get: fn(&E) -> String)
where
    E: Entity + Clone,
{
    let key = value.key();
    s.create(&value).await.unwrap();
    let handle = tokio::runtime::Handle::current();
    let mut inner_result = None;
    let outer_result = s
        .update::<E, _, StorageError>(&key, |mut current| {
            set(&mut current, "outer");
            let inner = tokio::task::block_in_place(|| {
                handle.block_on(s.update::<E, _, StorageError>(&key, |mut current| {
                    set(&mut current, "inner");
                    Ok(current)
                }))
            });
            inner_result = Some(inner.map(|_| ()));
            Ok(current)
        })
        .await;
    let inner_result = inner_result.expect("the outer updater ran");
    assert!(
        outer_result.is_ok() != inner_result.is_ok(),
        "exactly one of the two updates must fail: outer {:?}, inner {:?}",
        outer_result.as_ref().map(|_| ()),
        inner_result
    );
    let winner = if outer_result.is_ok() { "outer" } else { "inner" };
    assert_eq!(get(&s.get::<E>(&key).await.unwrap()), winner, "the stored value is the successful update's");
}

pub async fn nested_update_exactly_one_fails(s: Storage) {
    nested_update(&s, client("app"), |c, v| c.secret = v.into(), |c| c.secret.clone()).await;
    let request = auth_request(now() + Duration::hours(1));
    nested_update(&s, request, |r, v| r.state = v.into(), |r| r.state.clone()).await;
    nested_update(&s, password("jane@example.com"), |p, v| p.name = v.into(), |p| p.name.clone()).await;
    let kid = |k: &Keys| k.signing_key.as_ref().map(|v| v["kid"].to_string().replace('"', "")).unwrap_or_default();
    nested_update(&s, Keys::default(), |k, v| k.signing_key = Some(jwk(v)), kid).await;
    nested_update(&s, refresh_token(), |t, v| t.token = v.into(), |t| t.token.clone()).await;
}

/// The other side of compare-and-swap: a write that lands between an update's read and its write is
/// not overwritten; the update re-reads and re-runs its updater on the new value.
pub async fn update_that_lost_a_race_retries_without_losing_it(s: Storage) {
    let token = refresh_token();
    s.create(&token).await.unwrap();
    let handle = tokio::runtime::Handle::current();
    let runs = AtomicUsize::new(0);
    let updated = s
        .update::<RefreshToken, _, StorageError>(&token.id, |mut t| {
            if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::task::block_in_place(|| {
                    handle.block_on(s.update::<RefreshToken, _, StorageError>(&token.id, |mut t| {
                        t.scopes.push("from-the-racer".into());
                        Ok(t)
                    }))
                })
                .unwrap();
            }
            t.scopes.push("from-the-updater".into());
            Ok(t)
        })
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the updater runs again after losing the race");
    assert_eq!(updated.scopes, vec!["openid", "offline_access", "from-the-racer", "from-the-updater"]);
    assert_eq!(s.get::<RefreshToken>(&token.id).await.unwrap(), updated);
}

/// An update against an earlier versioned read: written as is when nothing changed since, and when
/// something did, the stale read is not written over it (the updater re-runs on the new value).
pub async fn update_against_an_earlier_read_detects_writes_since(s: Storage) {
    let token = refresh_token();
    s.create(&token).await.unwrap();
    let read = s.get_versioned::<RefreshToken>(&token.id).await.unwrap();
    assert_eq!(read.value, token);
    let runs = AtomicUsize::new(0);
    let updated = s
        .update_read::<RefreshToken, _, StorageError>(read, |mut t| {
            runs.fetch_add(1, Ordering::SeqCst);
            t.token = "first".into();
            Ok(t)
        })
        .await
        .unwrap();
    assert_eq!((runs.swap(0, Ordering::SeqCst), updated.token.as_str()), (1, "first"), "no write since: one run");

    let stale = s.get_versioned::<RefreshToken>(&token.id).await.unwrap();
    s.update::<RefreshToken, _, StorageError>(&token.id, |mut t| {
        t.scopes.push("written-since".into());
        Ok(t)
    })
    .await
    .unwrap();
    let updated = s
        .update_read::<RefreshToken, _, StorageError>(stale, |mut t| {
            runs.fetch_add(1, Ordering::SeqCst);
            t.token = "second".into();
            Ok(t)
        })
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the stale read is retried on the new value");
    assert_eq!(updated.scopes.last().map(String::as_str), Some("written-since"));
    assert_eq!(s.get::<RefreshToken>(&token.id).await.unwrap(), updated);
    assert!(matches!(s.get_versioned::<RefreshToken>("missing").await, Err(StorageError::NotFound)));
}

/// Dex's concurrency test: 100 parallel increments of one refresh token, none lost.
pub async fn concurrent_refresh_token_updates_lose_nothing(s: Storage) {
    let token = refresh_token();
    s.create(&token).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let s = s.clone();
        let id = token.id.clone();
        tasks.push(tokio::spawn(async move {
            s.update::<RefreshToken, _, StorageError>(&id, |mut t| {
                t.nonce = (t.nonce.parse::<u32>().unwrap() + 1).to_string();
                Ok(t)
            })
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("every concurrent update succeeds");
    }
    assert_eq!(s.get::<RefreshToken>(&token.id).await.unwrap().nonce, "100");
}

pub fn sessions_of(token: &RefreshToken) -> OfflineSessions {
    OfflineSessions {
        user_id: token.claims.user_id.clone(),
        conn_id: token.connector_id.clone(),
        refresh: BTreeMap::new(),
        connector_data: vec![],
    }
}

fn versioned_pair(
    s: &Storage,
    token: &RefreshToken,
) -> impl std::future::Future<Output = (Versioned<RefreshToken>, Versioned<OfflineSessions>)> {
    let (s, token) = (s.clone(), token.clone());
    async move {
        let read = s.get_versioned::<RefreshToken>(&token.id).await.unwrap();
        let sessions = s.get_versioned::<OfflineSessions>(&sessions_of(&token).key()).await.unwrap();
        (read, sessions)
    }
}

/// A token read with its offline session (one statement on SQL): none until the session exists, the
/// session once it does, both with versions that the paired write accepts.
pub async fn linked_read_returns_the_token_and_its_session(s: Storage) {
    assert!(matches!(
        s.get_versioned_linked::<RefreshToken, OfflineSessions>("missing").await,
        Err(StorageError::NotFound)
    ));
    let token = refresh_token();
    s.create(&token).await.unwrap();
    let (read, sessions) = s.get_versioned_linked::<RefreshToken, OfflineSessions>(&token.id).await.unwrap();
    assert_eq!((read.value, sessions.map(|v| v.value)), (token.clone(), None));

    // Another user's session on the same connector is not this token's.
    let other = OfflineSessions { user_id: "someone-else".into(), ..sessions_of(&token) };
    s.create(&other).await.unwrap();
    let (_, sessions) = s.get_versioned_linked::<RefreshToken, OfflineSessions>(&token.id).await.unwrap();
    assert!(sessions.is_none());

    s.create(&sessions_of(&token)).await.unwrap();
    let (read, sessions) = s.get_versioned_linked::<RefreshToken, OfflineSessions>(&token.id).await.unwrap();
    let sessions = sessions.expect("the token's session");
    assert_eq!(sessions.value, sessions_of(&token));
    let runs = AtomicUsize::new(0);
    let (t, o) = s
        .update_read_then(
            read,
            |mut t: RefreshToken| {
                runs.fetch_add(1, Ordering::SeqCst);
                t.token = "rotated".into();
                Ok::<_, StorageError>(t)
            },
            sessions,
            |t: &RefreshToken, mut o: OfflineSessions| {
                runs.fetch_add(1, Ordering::SeqCst);
                o.connector_data = t.token.clone().into_bytes();
                Ok::<_, StorageError>(o)
            },
        )
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the linked read's versions are current: no re-run");
    let (read, sessions) = s.get_versioned_linked::<RefreshToken, OfflineSessions>(&token.id).await.unwrap();
    assert_eq!((read.value, sessions.map(|v| v.value)), (t, Some(o.unwrap())));
}

/// The refresh grant's write: a token and its offline session, the session after the token. Written
/// as read when nothing changed since; a write in between to either is not overwritten (that side's
/// updater re-runs on the new value), and the session's updater sees the token as written.
pub async fn paired_update_writes_both_and_detects_writes_since(s: Storage) {
    let token = refresh_token();
    s.create(&token).await.unwrap();
    s.create(&sessions_of(&token)).await.unwrap();
    let runs = (AtomicUsize::new(0), AtomicUsize::new(0));
    let rotate = |label: &'static str| {
        let runs = &runs.0;
        move |mut t: RefreshToken| {
            runs.fetch_add(1, Ordering::SeqCst);
            t.token = label.into();
            Ok::<_, StorageError>(t)
        }
    };
    let record = |t: &RefreshToken, mut o: OfflineSessions| {
        runs.1.fetch_add(1, Ordering::SeqCst);
        o.connector_data = t.token.clone().into_bytes();
        Ok::<_, StorageError>(o)
    };
    let stored_pair = || async {
        let token = s.get::<RefreshToken>(&token.id).await.unwrap();
        let sessions = s.get_offline_sessions(&token.claims.user_id, &token.connector_id).await.unwrap();
        (token, sessions)
    };
    let counted = || (runs.0.swap(0, Ordering::SeqCst), runs.1.swap(0, Ordering::SeqCst));

    let (read, sessions) = versioned_pair(&s, &token).await;
    let (t, o) = s.update_read_then(read, rotate("first"), sessions, record).await.unwrap();
    let o = o.unwrap();
    assert_eq!((t.token.as_str(), o.connector_data.as_slice()), ("first", b"first".as_slice()));
    assert_eq!(counted(), (1, 1), "nothing written since: each updater runs once");
    assert_eq!(stored_pair().await, (t, o));

    // The session written since the read: the token is written, the session's updater re-runs.
    let (read, sessions) = versioned_pair(&s, &token).await;
    s.update_offline_sessions::<_, StorageError>(&token.claims.user_id, &token.connector_id, |mut o| {
        let reference = RefreshTokenRef {
            id: "r".into(),
            client_id: "other".into(),
            created_at: now(),
            last_used: now(),
            session_id: String::new(),
        };
        o.refresh.insert("written-since".into(), reference);
        Ok(o)
    })
    .await
    .unwrap();
    let (t, o) = s.update_read_then(read, rotate("second"), sessions, record).await.unwrap();
    let o = o.unwrap();
    assert_eq!(counted(), (1, 2));
    assert_eq!(o.connector_data, b"second");
    assert!(o.refresh.contains_key("written-since"), "the write in between is kept");
    assert_eq!(stored_pair().await, (t, o));

    // The token written since the read: both re-run, the session after the token's new value.
    let (read, sessions) = versioned_pair(&s, &token).await;
    s.update::<RefreshToken, _, StorageError>(&token.id, |mut t| {
        t.scopes.push("written-since".into());
        Ok(t)
    })
    .await
    .unwrap();
    let (t, o) = s.update_read_then(read, rotate("third"), sessions, record).await.unwrap();
    let o = o.unwrap();
    assert_eq!(counted(), (2, 2));
    assert_eq!(t.scopes.last().map(String::as_str), Some("written-since"));
    assert_eq!(o.connector_data, b"third");
    assert_eq!(stored_pair().await, (t, o));
}

/// The first updater's error writes nothing; the second's, or the second object gone, leaves the
/// first written and says so.
pub async fn paired_update_errors_write_only_what_came_before(s: Storage) {
    let token = refresh_token();
    s.create(&token).await.unwrap();
    let sessions = sessions_of(&token);
    s.create(&sessions).await.unwrap();
    let keep = |o: OfflineSessions| Ok::<_, StorageError>(o);

    let (read, versioned) = versioned_pair(&s, &token).await;
    let refused = s
        .update_read_then(
            read,
            |_| Err::<RefreshToken, _>(StorageError::NotFound),
            versioned,
            |_: &RefreshToken, mut o: OfflineSessions| {
                o.connector_data = b"must not be written".to_vec();
                Ok::<_, StorageError>(o)
            },
        )
        .await;
    assert!(matches!(refused, Err(StorageError::NotFound)));
    assert_eq!(s.get::<RefreshToken>(&token.id).await.unwrap(), token);
    assert_eq!(s.get::<OfflineSessions>(&sessions.key()).await.unwrap(), sessions);

    let (read, versioned) = versioned_pair(&s, &token).await;
    let rotate = |mut t: RefreshToken| {
        t.token = "rotated".into();
        Ok::<_, StorageError>(t)
    };
    let (t, o) = s
        .update_read_then(read, rotate, versioned, |_: &RefreshToken, _| {
            Err::<OfflineSessions, _>(StorageError::Conflict { kind: "offline_sessions", attempts: 0 })
        })
        .await
        .unwrap();
    assert!(matches!(o, Err(StorageError::Conflict { .. })));
    assert_eq!(s.get::<RefreshToken>(&token.id).await.unwrap(), t);
    assert_eq!(t.token, "rotated");
    assert_eq!(s.get::<OfflineSessions>(&sessions.key()).await.unwrap(), sessions);

    // The token written since the read: the session must not be written with the first attempt's
    // value (here its updater refuses when it re-runs, so it stays as it was).
    let (read, versioned) = versioned_pair(&s, &token).await;
    s.update::<RefreshToken, _, StorageError>(&token.id, |mut t| {
        t.scopes.push("written-since".into());
        Ok(t)
    })
    .await
    .unwrap();
    let attempts = AtomicUsize::new(0);
    let (_, o) = s
        .update_read_then(read, rotate, versioned, |_: &RefreshToken, mut o: OfflineSessions| {
            if attempts.fetch_add(1, Ordering::SeqCst) > 0 {
                return Err(StorageError::Conflict { kind: "offline_sessions", attempts: 1 });
            }
            o.connector_data = b"from a stale token".to_vec();
            Ok(o)
        })
        .await
        .unwrap();
    assert!(matches!(o, Err(StorageError::Conflict { .. })));
    assert_eq!(s.get::<OfflineSessions>(&sessions.key()).await.unwrap(), sessions);

    let (read, versioned) = versioned_pair(&s, &token).await;
    s.delete_offline_sessions(&sessions.user_id, &sessions.conn_id).await.unwrap();
    let rotate_again = |mut t: RefreshToken| {
        t.token = "rotated again".into();
        Ok::<_, StorageError>(t)
    };
    let (t, o) = s.update_read_then(read, rotate_again, versioned, |_: &RefreshToken, o| keep(o)).await.unwrap();
    assert!(matches!(o, Err(StorageError::NotFound)), "the session went away: nothing to write");
    assert_eq!(s.get::<RefreshToken>(&token.id).await.unwrap(), t);
}

/// Many refreshes of one token and session at once: every paired write lands, none is lost.
pub async fn concurrent_paired_updates_lose_nothing(s: Storage) {
    let token = refresh_token();
    s.create(&token).await.unwrap();
    s.create(&sessions_of(&token)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (s, token) = (s.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let (read, sessions) = versioned_pair(&s, &token).await;
            let increment = |mut t: RefreshToken| {
                t.nonce = (t.nonce.parse::<u32>().unwrap() + 1).to_string();
                Ok::<_, StorageError>(t)
            };
            let record = |t: &RefreshToken, mut o: OfflineSessions| {
                let reference = RefreshTokenRef {
                    id: t.nonce.clone(),
                    client_id: i.to_string(),
                    created_at: now(),
                    last_used: now(),
                    session_id: String::new(),
                };
                o.refresh.insert(i.to_string(), reference);
                Ok::<_, StorageError>(o)
            };
            let (_, o) = s.update_read_then(read, increment, sessions, record).await?;
            o.map(|_| ())
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("every concurrent paired update succeeds");
    }
    assert_eq!(s.get::<RefreshToken>(&token.id).await.unwrap().nonce, "40");
    let sessions = s.get_offline_sessions(&token.claims.user_id, &token.connector_id).await.unwrap();
    assert_eq!(sessions.refresh.len(), 40);
    let mut nonces: Vec<u32> = sessions.refresh.values().map(|r| r.id.parse().unwrap()).collect();
    nonces.sort_unstable();
    assert_eq!(nonces, (1..=40).collect::<Vec<_>>(), "each session write saw its own token write");
}

/// Deleting is the single-use gate for codes: of many concurrent deletes, exactly one wins.
pub async fn concurrent_deletes_have_one_winner(s: Storage) {
    let code = auth_code(now() + Duration::minutes(30));
    s.create(&code).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        let id = code.id.clone();
        tasks.push(tokio::spawn(async move { s.delete::<AuthCode>(&id).await }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => winners += 1,
            Err(StorageError::NotFound) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners, 1);
}

/// Several instances starting at once each try to create the first keys: one creates, the others
/// update what it wrote, and nothing is lost.
pub async fn concurrent_first_key_updates_create_once(s: Storage) {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.update_keys::<_, StorageError>(move |mut k| {
                k.verification_keys.push(VerificationKey { public_key: jwk(&format!("k{i}")), expiry: now() });
                Ok(k)
            })
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut kids: Vec<String> =
        s.get_keys().await.unwrap().verification_keys.iter().map(|k| k.public_key["kid"].to_string()).collect();
    kids.sort();
    assert_eq!(kids.len(), 10, "every instance's change is kept: {kids:?}");
}

pub async fn garbage_collection_at_the_expiry_boundary_in_several_time_zones(s: Storage) {
    let zones: [(&str, UtcOffset); 3] = [("UTC", offset!(UTC)), ("EST", offset!(-5)), ("PST", offset!(-8))];
    for (zone, offset) in zones {
        let expiry = now().to_offset(offset);
        let request = auth_request(expiry);
        let code = auth_code(expiry);
        let device_req = device_request(expiry);
        let device_tok = device_token(expiry);
        s.create(&request).await.unwrap();
        s.create(&code).await.unwrap();
        s.create(&device_req).await.unwrap();
        s.create(&device_tok).await.unwrap();
        let token = refresh_token();
        s.create(&token).await.unwrap();

        let stored = s.get::<AuthRequest>(&request.id).await.unwrap();
        assert_eq!(stored.expiry.offset(), offset, "{zone}: the stored time keeps its zone");
        assert_eq!(stored.expiry, expiry, "{zone}: and its instant");

        for before in [expiry - Duration::seconds(1), expiry - Duration::nanoseconds(1), expiry] {
            let result = s.garbage_collect(before.to_offset(offset!(+9))).await.unwrap();
            assert!(result.is_empty(), "{zone}: nothing expires until after its expiry ({before}): {result:?}");
        }
        s.get::<AuthCode>(&code.id).await.unwrap();

        let result = s.garbage_collect(expiry + Duration::nanoseconds(1)).await.unwrap();
        assert_eq!(
            result,
            GcResult { auth_requests: 1, auth_codes: 1, device_requests: 1, device_tokens: 1, ..GcResult::default() },
            "{zone}"
        );
        assert!(matches!(s.get::<AuthRequest>(&request.id).await, Err(StorageError::NotFound)));
        assert!(matches!(s.get::<AuthCode>(&code.id).await, Err(StorageError::NotFound)));
        assert!(matches!(s.get::<DeviceRequest>(&device_req.user_code).await, Err(StorageError::NotFound)));
        assert!(matches!(s.get::<DeviceToken>(&device_tok.device_code).await, Err(StorageError::NotFound)));
        s.get::<RefreshToken>(&token.id).await.expect("refresh tokens are never collected");
    }
}

pub async fn static_objects_are_read_only_overlays(s: Storage) {
    let mut statics = StaticObjects::default();
    statics.add(&client("static-app")).unwrap();
    statics.add(&password("Admin@Example.com")).unwrap();
    assert!(matches!(statics.add(&client("static-app")), Err(StorageError::AlreadyExists)));
    let s = s.with_statics(statics);

    assert_eq!(s.get::<Client>("static-app").await.unwrap(), client("static-app"));
    assert_eq!(s.get_password("admin@example.COM").await.unwrap().email, "Admin@Example.com");
    s.create(&client("dynamic-app")).await.unwrap();
    let ids: Vec<String> = s.list::<Client>().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec!["static-app", "dynamic-app"]);

    assert!(matches!(s.create(&client("static-app")).await, Err(StorageError::AlreadyExists)));
    assert!(matches!(s.delete::<Client>("static-app").await, Err(StorageError::ReadOnly { .. })));
    let update = s.update::<Client, _, StorageError>("static-app", Ok).await;
    assert!(matches!(update, Err(StorageError::ReadOnly { .. })), "{update:?}");
    assert!(matches!(s.delete::<Password>("ADMIN@example.com").await, Err(StorageError::ReadOnly { .. })));
    // Stored objects stay fully writable.
    s.delete::<Client>("dynamic-app").await.unwrap();
}

const FIVE_IN_15M: tessera_core::limits::Limit =
    tessera_core::limits::Limit::new(5, std::time::Duration::from_secs(900));

pub async fn failure_counters_charge_withdraw_reset_and_expire(s: Storage) {
    use tessera_core::limits::Verdict;
    let key = "password-ip:abc";
    let at = |seconds: i64| now() + Duration::seconds(seconds);
    assert_eq!(s.failure_verdict(key, FIVE_IN_15M, at(0)).await.unwrap(), Verdict::Allowed);
    for second in 0..5 {
        assert_eq!(s.charge_failure(key, FIVE_IN_15M, at(second)).await.unwrap(), Verdict::Allowed);
    }
    let refused = Verdict::Refused { retry_after: std::time::Duration::from_secs(900 - 5) };
    assert_eq!(s.charge_failure(key, FIVE_IN_15M, at(5)).await.unwrap(), refused, "the sixth is refused");
    assert_eq!(s.failure_verdict(key, FIVE_IN_15M, at(5)).await.unwrap(), refused, "and was not counted");

    s.withdraw_failure(key, at(4)).await.unwrap();
    assert_eq!(s.failure_verdict(key, FIVE_IN_15M, at(5)).await.unwrap(), Verdict::Allowed, "withdrawn exactly");
    s.record_failure(key, FIVE_IN_15M, at(6)).await.unwrap();
    assert!(matches!(s.failure_verdict(key, FIVE_IN_15M, at(6)).await.unwrap(), Verdict::Refused { .. }));

    s.reset_failures(key).await.unwrap();
    s.reset_failures(key).await.unwrap();
    s.withdraw_failure(key, at(6)).await.unwrap();
    assert_eq!(s.failure_verdict(key, FIVE_IN_15M, at(6)).await.unwrap(), Verdict::Allowed, "reset");

    s.record_failure(key, FIVE_IN_15M, at(10)).await.unwrap();
    let gone = at(10) + Duration::seconds(900) + Duration::nanoseconds(1);
    assert_eq!(s.garbage_collect(at(11)).await.unwrap().failure_counters, 0);
    assert_eq!(s.garbage_collect(gone).await.unwrap().failure_counters, 1);
}

/// Fifty attempts at once on a fresh counter (on a real database, from many connections): exactly five
/// are charged, whatever the interleaving, as replicas sharing a database would see it.
pub async fn concurrent_charges_never_pass_the_limit(s: Storage) {
    use tessera_core::limits::Verdict;
    let attempts = (0..50).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            s.charge_failure("client-auth:race", FIVE_IN_15M, now() + Duration::milliseconds(i)).await.unwrap()
        })
    });
    let mut allowed = 0;
    for attempt in attempts {
        if attempt.await.unwrap() == Verdict::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
}
