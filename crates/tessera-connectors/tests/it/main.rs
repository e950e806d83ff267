//! The LDAP connector against a real slapd (TESSERA_TEST_LDAP_URL and TESSERA_TEST_LDAP_CA, started by
//! scripts/test.sh from scripts/ldap/seed.ldif): search, bind, groups (nested), escaping, StartTLS,
//! refresh, and a directory that is not there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failing test should stop loudly

use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, Mod};
use serde_json::{Value, json};
use tessera_connectors::ldap::LdapConnector;
use tessera_connectors::{ConnectorError, PasswordConnector, RefreshConnector, Scopes};

fn directory() -> Option<(String, String)> {
    match (std::env::var("TESSERA_TEST_LDAP_URL"), std::env::var("TESSERA_TEST_LDAP_CA")) {
        (Ok(url), Ok(ca)) => Some((url.trim_start_matches("ldap://").to_owned(), ca)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but TESSERA_TEST_LDAP_URL is not: run scripts/test.sh")
        }
        _ => {
            eprintln!("SKIPPED: TESSERA_TEST_LDAP_URL is not set; the LDAP tests did not run");
            None
        }
    }
}

fn config(host: &str, extra: Value) -> Value {
    let mut config = json!({
        "host": host,
        "insecureNoSSL": true,
        "userSearch": {
            "baseDN": "ou=people,dc=example,dc=org",
            "filter": "(objectClass=inetOrgPerson)",
            "username": "uid",
            "idAttr": "uid",
            "emailAttr": "mail",
            "nameAttr": "cn",
            "preferredUsernameAttr": "displayName"
        },
        "groupSearch": {
            "baseDN": "ou=groups,dc=example,dc=org",
            "filter": "(objectClass=groupOfNames)",
            "userMatchers": [{"userAttr": "DN", "groupAttr": "member"}],
            "nameAttr": "cn"
        }
    });
    merge(&mut config, extra);
    config
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(base), Value::Object(extra)) = (base, extra) {
        for (key, value) in extra {
            match base.get_mut(&key) {
                Some(existing) if existing.is_object() && value.is_object() => merge(existing, value),
                _ => {
                    base.insert(key, value);
                }
            }
        }
    }
}

const ALL: Scopes = Scopes { offline_access: true, groups: true };

#[tokio::test]
async fn a_user_logs_in_with_groups() {
    let Some((host, _)) = directory() else { return };
    let ldap = LdapConnector::open(&config(&host, json!({}))).unwrap();
    let jane = ldap.login(ALL, "jane", "foo").await.unwrap().expect("jane's password is foo");
    assert_eq!(
        (jane.claims.user_id.as_str(), jane.claims.username.as_str(), jane.claims.preferred_username.as_str()),
        ("jane", "Jane Doe", "jdoe")
    );
    assert_eq!(jane.claims.email, "jane@example.org");
    assert!(jane.claims.email_verified);
    assert_eq!(jane.claims.groups, vec!["admins", "developers"]);
    let john = ldap.login(Scopes::default(), "john", "bar").await.unwrap().unwrap();
    assert!(john.claims.groups.is_empty(), "groups only with the groups scope");
    assert!(john.connector_data.is_empty(), "refresh data only with offline_access");
    assert_eq!(ldap.prompt(), "Username");
}

#[tokio::test]
async fn wrong_empty_and_injected_credentials_are_refused() {
    let Some((host, _)) = directory() else { return };
    let ldap = LdapConnector::open(&config(&host, json!({}))).unwrap();
    assert!(ldap.login(ALL, "jane", "bar").await.unwrap().is_none(), "wrong password");
    assert!(ldap.login(ALL, "jane", "").await.unwrap().is_none(), "an empty password never binds");
    assert!(ldap.login(ALL, "nobody", "foo").await.unwrap().is_none());
    for injected in ["*", "jane)(uid=*", "j*", "*)(|(uid=*"] {
        assert!(ldap.login(ALL, injected, "foo").await.unwrap().is_none(), "{injected} is escaped");
    }
}

#[tokio::test]
async fn several_username_attributes_nested_groups_and_a_service_account() {
    let Some((host, _)) = directory() else { return };
    let extra = json!({
        "bindDN": "cn=admin,dc=example,dc=org",
        "bindPW": "admin",
        "usernamePrompt": "Email or username",
        "userSearch": {"username": ["uid", "mail"]},
        "groupSearch": {"userMatchers": [{"userAttr": "DN", "groupAttr": "member", "recursionGroupAttr": "DN"}]}
    });
    let ldap = LdapConnector::open(&config(&host, extra)).unwrap();
    assert_eq!(ldap.prompt(), "Email or username");
    let john = ldap.login(ALL, "john@example.org", "bar").await.unwrap().expect("found by mail");
    assert_eq!(john.claims.user_id, "john");
    assert_eq!(john.claims.groups, vec!["developers", "staff"], "staff holds developers");

    let wrong_service =
        LdapConnector::open(&config(&host, json!({"bindDN": "cn=admin,dc=example,dc=org", "bindPW": "nope"}))).unwrap();
    assert!(matches!(wrong_service.login(ALL, "jane", "foo").await, Err(ConnectorError::Failed(_))));
}

#[tokio::test]
async fn start_tls_with_the_test_ca() {
    let Some((host, ca)) = directory() else { return };
    let tls = |extra: Value| {
        LdapConnector::open(&config(&host, merge_into(json!({"insecureNoSSL": false, "startTLS": true}), extra)))
    };
    let verified = tls(json!({"rootCA": ca})).unwrap();
    assert!(verified.login(ALL, "jane", "foo").await.unwrap().is_some());
    let pem = std::fs::read(&ca).unwrap();
    let inline =
        tls(json!({"rootCAData": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem)})).unwrap();
    assert!(inline.login(ALL, "jane", "foo").await.unwrap().is_some());
    let skipped = tls(json!({"insecureSkipVerify": true})).unwrap();
    assert!(skipped.login(ALL, "jane", "foo").await.unwrap().is_some());
    let untrusted = tls(json!({})).unwrap();
    assert!(untrusted.login(ALL, "jane", "foo").await.is_err(), "the test CA is not a system root");
}

fn merge_into(mut base: Value, extra: Value) -> Value {
    merge(&mut base, extra);
    base
}

#[tokio::test]
async fn refresh_finds_the_user_again_and_notices_they_left() {
    let Some((host, _)) = directory() else { return };
    let uid = format!("temp{}", std::process::id());
    let dn = format!("uid={uid},ou=people,dc=example,dc=org");
    let (conn, mut admin) = LdapConnAsync::new(&format!("ldap://{host}")).await.unwrap();
    ldap3::drive!(conn);
    admin.simple_bind("cn=admin,dc=example,dc=org", "admin").await.unwrap().success().unwrap();
    let attrs = vec![
        ("objectClass", ["inetOrgPerson"].into_iter().collect()),
        ("uid", [uid.as_str()].into_iter().collect()),
        ("cn", ["Temp User"].into_iter().collect()),
        ("sn", ["User"].into_iter().collect()),
        ("mail", ["temp@example.org"].into_iter().collect()),
        ("userPassword", ["secret"].into_iter().collect()),
    ];
    admin.add(&dn, attrs).await.unwrap().success().unwrap();

    let ldap = LdapConnector::open(&config(&host, json!({}))).unwrap();
    let identity = ldap.login(ALL, &uid, "secret").await.unwrap().unwrap();
    assert!(!identity.connector_data.is_empty());
    admin
        .modify(&dn, vec![Mod::Replace("cn", ["Renamed User"].into_iter().collect())])
        .await
        .unwrap()
        .success()
        .unwrap();
    let refreshed = ldap.refresh(ALL, identity.clone()).await.unwrap();
    assert_eq!(refreshed.claims.username, "Renamed User", "the directory's current values");

    admin.delete(&dn).await.unwrap().success().unwrap();
    assert!(matches!(ldap.refresh(ALL, identity).await, Err(ConnectorError::Revoked(_))));
    let _ = admin.unbind().await;
}

#[tokio::test]
async fn a_directory_that_is_down_fails_promptly() {
    let started = Instant::now();
    let ldap = LdapConnector::open(&config("127.0.0.1:1", json!({}))).unwrap();
    assert!(matches!(ldap.login(ALL, "jane", "foo").await, Err(ConnectorError::Failed(_))));
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

#[test]
fn bad_configurations_are_refused() {
    let open = |value: Value| LdapConnector::open(&value).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(open(json!({})).contains("host is required"));
    assert!(
        open(json!({"host": "x", "userSearch": {"baseDN": "dc=x"}}))
            .contains("userSearch.baseDN and userSearch.username")
    );
    assert!(open(json!({"host": "x", "insecureNoSSL": true, "startTLS": true, "userSearch": {"baseDN": "dc=x", "username": "uid"}}))
        .contains("cannot both be set"));
    assert!(
        open(json!({"host": "x", "userSearch": {"baseDN": "dc=x", "username": "uid", "scope": "deep"}}))
            .contains("unknown scope")
    );
    assert!(open(json!({"host": "x", "hots": 1})).contains("unknown field `hots`"));
}
