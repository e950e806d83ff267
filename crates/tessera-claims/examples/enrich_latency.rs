//! What custom claims add to a token request: the latency of the static and Postgres enrichers and of
//! the chain, against a real PostgreSQL (TESSERA_BENCH_POSTGRES_URL). Run by bench/claims.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark stops on any failure

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Map;
use sqlx::{ConnectOptions, Connection, Executor};
use tessera_claims::reserved::Guard;
use tessera_claims::{
    CacheSettings, Cached, Chain, ClaimsEnricher, EnrichmentContext, Link, PostgresEnricher, PostgresEnricherSettings,
    StaticEnricher,
};

const CALLS: usize = 5000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure(name: &str, chain: &Chain, users: usize) {
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let context = EnrichmentContext {
            identity: tessera_core::model::Claims {
                user_id: format!("user-{}", i % users),
                email: format!("user-{}@example.com", i % users),
                ..Default::default()
            },
            ..Default::default()
        };
        let started = Instant::now();
        chain.run(&context).await.unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / CALLS as u32;
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} |",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6
    );
}

fn chain(links: Vec<(&str, Arc<dyn ClaimsEnricher>)>) -> Chain {
    Chain::new(links.into_iter().map(|(name, enricher)| Link::new(name, enricher)).collect())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("TESSERA_BENCH_POSTGRES_URL").expect("TESSERA_BENCH_POSTGRES_URL");
    let admin: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut conn = admin.connect().await.unwrap();
    conn.execute("DROP TABLE IF EXISTS users; CREATE TABLE users (user_id text PRIMARY KEY, email text, role text, org text, plan text);
                  INSERT INTO users SELECT 'user-' || i, 'user-' || i || '@example.com', 'member', 'org-' || (i % 100), 'pro'
                  FROM generate_series(0, 9999) AS i; ANALYZE users;")
        .await
        .unwrap();
    conn.close().await.unwrap();

    let statik: Arc<dyn ClaimsEnricher> = Arc::new(
        StaticEnricher::from_json(r#"{"policy": {"pgrole": "authn"}, "tier": 3}"#, &Guard::default()).unwrap(),
    );
    let settings = PostgresEnricherSettings::new(
        format!("{url}?sslmode=disable"),
        "SELECT role, org, plan FROM users WHERE user_id = $1 AND email = $2 LIMIT 1",
        vec!["{{.UserID}}".into(), "{{.Email}}".into()],
    );
    let postgres: Arc<dyn ClaimsEnricher> =
        Arc::new(PostgresEnricher::connect(&settings, &Guard::default()).await.unwrap());
    // Warm the pool and the prepared statements.
    let mut warm = Map::new();
    for _ in 0..200 {
        postgres
            .enrich(
                &EnrichmentContext {
                    identity: tessera_core::model::Claims {
                        user_id: "user-1".into(),
                        email: "user-1@example.com".into(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                &mut warm,
            )
            .await
            .unwrap();
    }

    println!("| chain ({CALLS} sequential calls) | p50 µs | p99 µs | mean µs |");
    println!("| --- | --- | --- | --- |");
    measure("empty (no enrichers)", &chain(vec![]), 10_000).await;
    measure("static", &chain(vec![("static", statik.clone())]), 10_000).await;
    measure("postgres (seed query, 10k users)", &chain(vec![("postgres", postgres.clone())]), 10_000).await;
    measure("static + postgres", &chain(vec![("static", statik), ("postgres", postgres.clone())]), 10_000).await;
    // The same query behind the cache: 100 users, so all but the first 100 of the calls are hits.
    let cache = CacheSettings { ttl: Duration::from_secs(300), max_entries: 10_000, notify_channel: None };
    let cached: Arc<dyn ClaimsEnricher> =
        Arc::new(Cached::new(PostgresEnricher::connect(&settings, &Guard::default()).await.unwrap(), &cache));
    measure("postgres + cache (100 users: 98 % hits)", &chain(vec![("postgres", cached)]), 100).await;

    // Concurrency: 16 tasks sharing the pool, as concurrent token requests would.
    let started = Instant::now();
    let shared = Arc::new(chain(vec![("postgres", postgres)]));
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let shared = shared.clone();
            tokio::spawn(async move {
                for i in 0..CALLS / 16 {
                    let n = (t * 1000 + i) % 10_000;
                    let context = EnrichmentContext {
                        identity: tessera_core::model::Claims {
                            user_id: format!("user-{n}"),
                            email: format!("user-{n}@example.com"),
                            ..Default::default()
                        },
                        ..Default::default()
                    };
                    shared.run(&context).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!();
    println!(
        "postgres enrichments with 16 concurrent callers (pool of 4): {:.0}/s",
        (CALLS / 16 * 16) as f64 / elapsed.as_secs_f64()
    );
}
