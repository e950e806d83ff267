//! The Postgres enricher against a real PostgreSQL (TESSERA_TEST_POSTGRES_URL, started by
//! scripts/test.sh): the seed's multi-tenant example, the type table, injection, start-up checks,
//! timeouts and a database that goes away and comes back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failing test should stop loudly

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use tessera_claims::reserved::Guard;
use tessera_claims::{ClaimsEnricher, EnrichmentContext, OnEmpty, PostgresEnricher, PostgresEnricherSettings};

/// A fresh database seeded with the seed document's `users` table; its URI.
async fn database() -> Option<(PgConnectOptions, String, String)> {
    let url = match std::env::var("TESSERA_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI is set but TESSERA_TEST_POSTGRES_URL is not"),
        Err(_) => {
            eprintln!("SKIPPED: TESSERA_TEST_POSTGRES_URL is not set; the Postgres enricher tests did not run");
            return None;
        }
    };
    let admin: PgConnectOptions = url.parse().unwrap();
    let name = format!("claims_{}", std::process::id()) + &format!("_{}", rand_suffix());
    let mut conn = admin.connect().await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    conn.close().await.unwrap();
    let mut db = admin.clone().database(&name).connect().await.unwrap();
    db.execute(
        "CREATE TABLE users (user_id text PRIMARY KEY, email text NOT NULL, role text, org text, plan text);
         INSERT INTO users VALUES
           ('u-1', 'alice@acme.example', 'owner', 'acme', 'enterprise'),
           ('u-2', 'bob@acme.example', 'member', 'acme', NULL),
           ('twin', 'twin@example.com', 'a', 'x', 'free'),
           ('twin2', 'twin@example.com', 'b', 'y', 'free');",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let uri = format!("{}/{name}?sslmode=disable", url.rsplit_once('/').unwrap().0);
    Some((admin, name, uri))
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    format!("{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos())
}

fn user(user_id: &str, email: &str) -> EnrichmentContext {
    let identity = tessera_core::model::Claims {
        user_id: user_id.into(),
        email: email.into(),
        groups: vec!["admins".into(), "devs".into()],
        ..Default::default()
    };
    EnrichmentContext { identity, ..EnrichmentContext::default() }
}

fn settings(uri: &str, query: &str, args: &[&str]) -> PostgresEnricherSettings {
    PostgresEnricherSettings::new(uri, query, args.iter().map(|a| (*a).to_owned()).collect())
}

async fn claims(enricher: &PostgresEnricher, context: &EnrichmentContext) -> Value {
    let mut claims = Map::new();
    enricher.enrich(context, &mut claims).await.unwrap();
    Value::Object(claims)
}

const SEED_QUERY: &str = "SELECT role, org, plan FROM users WHERE user_id = $1 AND email = $2 LIMIT 1";

#[tokio::test]
async fn the_seed_example_adds_role_org_and_plan() {
    let Some((_, _, uri)) = database().await else { return };
    let enricher =
        PostgresEnricher::connect(&settings(&uri, SEED_QUERY, &["{{.UserID}}", "{{.Email}}"]), &Guard::default())
            .await
            .unwrap();
    assert_eq!(
        claims(&enricher, &user("u-1", "alice@acme.example")).await,
        json!({"role": "owner", "org": "acme", "plan": "enterprise"})
    );
    assert_eq!(
        claims(&enricher, &user("u-2", "bob@acme.example")).await,
        json!({"role": "member", "org": "acme"}),
        "NULL omits the claim"
    );
    assert_eq!(claims(&enricher, &user("nobody", "x@y")).await, json!({}), "no row adds nothing");
}

#[tokio::test]
async fn an_email_cannot_inject_sql() {
    let Some((_, _, uri)) = database().await else { return };
    let query = "SELECT role FROM users WHERE email = $1";
    let enricher = PostgresEnricher::connect(&settings(&uri, query, &["{{.Email}}"]), &Guard::default()).await.unwrap();
    for attack in ["' OR 1=1 --", "alice@acme.example' OR '1'='1", "x'; DROP TABLE users; --"] {
        assert_eq!(claims(&enricher, &user("u", attack)).await, json!({}), "{attack} is just a string");
    }
    assert_eq!(
        claims(&enricher, &user("u", "alice@acme.example")).await,
        json!({"role": "owner"}),
        "the table is intact"
    );
}

#[tokio::test]
async fn empty_and_ambiguous_results() {
    let Some((_, _, uri)) = database().await else { return };
    let query = "SELECT role FROM users WHERE email = $1";
    let mut strict = settings(&uri, query, &["{{.Email}}"]);
    strict.on_empty = OnEmpty::Error;
    let enricher = PostgresEnricher::connect(&strict, &Guard::default()).await.unwrap();
    let mut out = Map::new();
    let err = enricher.enrich(&user("u", "nobody@x"), &mut out).await.unwrap_err();
    assert_eq!(err.to_string(), "the query returned no row");
    let err = enricher.enrich(&user("u", "twin@example.com"), &mut out).await.unwrap_err();
    assert_eq!(err.to_string(), "the query returned more than one row");
    assert!(out.is_empty(), "nothing partial");
}

#[tokio::test]
async fn every_row_of_the_type_table() {
    let Some((admin, name, uri)) = database().await else { return };
    let mut db = admin.database(&name).connect().await.unwrap();
    db.execute("CREATE TYPE mood AS ENUM ('happy', 'sad'); CREATE DOMAIN short_text AS text;").await.unwrap();
    let query = r#"SELECT
        'text'::text AS t, 'varchar'::varchar(20) AS v, 'c'::char(3) AS ch, 'happy'::mood AS e,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, 'dom'::short_text AS d,
        7::int2 AS i2, (-2147483648)::int4 AS i4, 9007199254740991::int8 AS safe, 9007199254740993::int8 AS big,
        12.50::numeric AS n_exact, 12345678901234.123456::numeric AS n_long, 7::numeric AS n_int,
        0.5::float4 AS f4, 1.25::float8 AS f8, true AS yes, false AS no,
        '2026-11-23 13:00:00+01'::timestamptz AS at, '2026-11-23 12:00:00.25+00'::timestamptz AS at_frac,
        '2026-11-23'::date AS day, '{"a": [1, null]}'::json AS j, '{"b": true}'::jsonb AS jb,
        ARRAY['x', 'y'] AS tags, ARRAY[1, 2]::int4[] AS nums, '\xdeadbeef'::bytea AS raw,
        NULL::text AS missing"#;
    let enricher = PostgresEnricher::connect(&settings(&uri, query, &[]), &Guard::default()).await.unwrap();
    assert_eq!(
        claims(&enricher, &EnrichmentContext::default()).await,
        json!({
            "t": "text", "v": "varchar", "ch": "c", "e": "happy",
            "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "d": "dom",
            "i2": 7, "i4": -2147483648_i64, "safe": 9007199254740991_i64, "big": "9007199254740993",
            "n_exact": 12.5, "n_long": "12345678901234.123456", "n_int": 7,
            "f4": 0.5, "f8": 1.25, "yes": true, "no": false,
            "at": "2026-11-23T12:00:00Z", "at_frac": "2026-11-23T12:00:00.250000Z",
            "day": "2026-11-23", "j": {"a": [1, null]}, "jb": {"b": true},
            "tags": ["x", "y"], "nums": [1, 2], "raw": "3q2-7w"
        })
    );
    let nan =
        PostgresEnricher::connect(&settings(&uri, "SELECT 'NaN'::float8 AS f", &[]), &Guard::default()).await.unwrap();
    let err = nan.enrich(&EnrichmentContext::default(), &mut Map::new()).await.unwrap_err();
    assert_eq!(err.to_string(), "column \"f\": NaN and infinities are not JSON numbers");
}

#[tokio::test]
async fn parameters_bind_by_their_type() {
    let Some((admin, name, uri)) = database().await else { return };
    let mut db = admin.database(&name).connect().await.unwrap();
    db.execute(
        "CREATE TABLE tenants (id uuid PRIMARY KEY, seats int4, active bool);
                INSERT INTO tenants VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 25, true);",
    )
    .await
    .unwrap();
    let query = "SELECT seats, 'admins' = ANY($2) AS is_admin FROM tenants WHERE id = $1 AND active = $3";
    let enricher = PostgresEnricher::connect(
        &settings(&uri, query, &["{{.UserID}}", "{{.Groups}}", "{{.EmailVerified}}"]),
        &Guard::default(),
    )
    .await
    .unwrap();
    let mut context = user("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "x");
    context.identity.email_verified = true;
    assert_eq!(claims(&enricher, &context).await, json!({"seats": 25, "is_admin": true}));
    let mut out = Map::new();
    let err = enricher.enrich(&user("not-a-uuid", "x"), &mut out).await.unwrap_err();
    assert_eq!(err.to_string(), "argument $1 is not a valid uuid");
}

async fn setup_error(uri: &str, query: &str, args: &[&str]) -> String {
    match PostgresEnricher::connect(&settings(uri, query, args), &Guard::default()).await {
        Ok(_) => panic!("{query} should be refused"),
        Err(err) => err.to_string(),
    }
}

#[tokio::test]
async fn mistakes_fail_at_start_up_with_a_clear_message() {
    let Some((_, _, uri)) = database().await else { return };
    assert_eq!(
        setup_error(&uri, "SELECT user_id AS sub, role FROM users WHERE user_id = $1", &["{{.UserID}}"]).await,
        "column \"sub\": claim \"sub\" is reserved and can never be set by custom claims"
    );
    assert!(
        setup_error(&uri, "SELECT email FROM users WHERE user_id = $1", &["{{.UserID}}"])
            .await
            .contains("allowOverride")
    );
    assert_eq!(setup_error(&uri, "SELECT role, org AS role FROM users", &[]).await, "column \"role\" appears twice");
    assert_eq!(setup_error(&uri, "SELECT 1", &[]).await, "column 1 has no name: give it one with AS");
    assert_eq!(
        setup_error(&uri, SEED_QUERY, &["{{.UserID}}"]).await,
        "the query has 2 parameter(s) but 1 argument template(s) are given"
    );
    assert!(
        setup_error(&uri, SEED_QUERY, &["{{.UserId}}", "{{.Email}}"])
            .await
            .starts_with("argument template: unknown field \"UserId\"")
    );
    assert!(setup_error(&uri, "SELEC role FROM users", &[]).await.starts_with("the query does not prepare:"));
    assert!(setup_error(&uri, "SELECT rolez FROM users", &[]).await.contains("rolez"));
    assert_eq!(
        setup_error(&uri, "SELECT now()::time AS at", &[]).await,
        "column \"at\" has type TIME, which has no claim mapping (see the type table): cast it in the query"
    );
    assert_eq!(
        setup_error(&uri, "SELECT role FROM users WHERE now() > $1", &["{{.UserID}}"]).await,
        "parameter $1 has type TIMESTAMPTZ, which tessera cannot bind: cast it in the query ($1::text)"
    );
    assert!(
        setup_error(&uri, "SELECT role FROM users WHERE user_id = ANY($1)", &["{{.UserID}}"])
            .await
            .contains("is not {{.Groups}}")
    );
    let unreachable =
        setup_error("postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", "SELECT 1 AS one", &[])
            .await;
    assert!(unreachable.starts_with("cannot connect:"), "{unreachable}");
}

#[tokio::test]
async fn a_slow_query_hits_the_statement_timeout() {
    let Some((_, _, uri)) = database().await else { return };
    let mut slow = settings(&uri, "SELECT pg_sleep(5) IS NOT NULL AS slept", &[]);
    slow.statement_timeout = Duration::from_millis(300);
    let enricher = PostgresEnricher::connect(&slow, &Guard::default()).await.unwrap();
    let started = Instant::now();
    let err = enricher.enrich(&EnrichmentContext::default(), &mut Map::new()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "bounded: {:?}", started.elapsed());
    assert!(err.to_string().contains("statement timeout"), "{err}");
}

#[tokio::test]
async fn the_enricher_survives_the_database_going_away() {
    let Some((admin, name, uri)) = database().await else { return };
    let mut query = settings(&uri, SEED_QUERY, &["{{.UserID}}", "{{.Email}}"]);
    query.acquire_timeout = Duration::from_millis(500);
    let enricher = PostgresEnricher::connect(&query, &Guard::default()).await.unwrap();
    let alice = user("u-1", "alice@acme.example");
    assert_eq!(claims(&enricher, &alice).await["org"], "acme");

    let mut control = admin.connect().await.unwrap();
    control.execute(sqlx::AssertSqlSafe(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))).await.unwrap();
    control
        .execute(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )))
        .await
        .unwrap();
    let started = Instant::now();
    assert!(enricher.enrich(&alice, &mut Map::new()).await.is_err(), "down: the enrichment fails");
    assert!(started.elapsed() < Duration::from_secs(5), "and fails promptly: {:?}", started.elapsed());

    control.execute(sqlx::AssertSqlSafe(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))).await.unwrap();
    assert_eq!(claims(&enricher, &alice).await["org"], "acme", "back: the same enricher works again");
}
