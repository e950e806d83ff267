//! The load driver for the scenarios wrk cannot drive because each request depends on the answer to
//! the one before: `refresh` (each connection logs a user in once, then refreshes in a loop, always
//! with the refresh token the last answer rotated to) and `authcode` (each connection walks the whole
//! browser login: `/auth`, the password page, the redirect with a code, the code redeemed).
//!
//! Prints `RESULT <per second> <p50 ms> <p99 ms> <errors>` for the measured period, after a warm-up.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tessera_bench::flow::{App, Browser};
use tessera_bench::stats::Record;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// The refresh-token grant with rotation.
    Refresh,
    /// The full browser authorization-code flow, one login (bcrypt check) per operation.
    Authcode,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(value_enum)]
    scenario: Scenario,
    /// The issuer URL of the server under test.
    #[arg(long)]
    issuer: String,
    #[arg(long, default_value = "web")]
    client_id: String,
    #[arg(long, default_value = "web-secret")]
    client_secret: String,
    #[arg(long, default_value = "http://127.0.0.1:1/callback")]
    redirect_uri: String,
    /// Connection i logs in as `user{i mod users}@example.com`; refresh tokens are one per user and
    /// client, so the refresh scenario needs a user per connection.
    #[arg(long, default_value_t = 16)]
    users: usize,
    #[arg(long, default_value = "password")]
    password: String,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds of warm-up (not recorded), then of measurement.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

const SCOPE: &str = "openid email profile groups offline_access";

/// One connection's loop until `end`; operations that finish before `record_from` are not recorded.
async fn connection(args: &Args, index: usize, record_from: Instant, end: Instant) -> anyhow::Result<Record> {
    let app = App {
        issuer: args.issuer.clone(),
        client_id: args.client_id.clone(),
        client_secret: args.client_secret.clone(),
        redirect_uri: args.redirect_uri.clone(),
    };
    let browser = Browser::new(app)?;
    let login = format!("user{}@example.com", index % args.users.max(1));
    let mut record = Record::default();
    let mut refresh_token: Option<String> = None;
    while Instant::now() < end {
        let started = Instant::now();
        let outcome = match (args.scenario, refresh_token.take()) {
            (Scenario::Refresh, Some(token)) => browser.refresh(&token).await.map(|t| t.refresh_token),
            // The refresh scenario's first login (and a new one after an error) is set-up, not load.
            (Scenario::Refresh, None) => {
                refresh_token = browser.log_in(&login, &args.password, SCOPE).await?.refresh_token;
                continue;
            }
            (Scenario::Authcode, _) => browser.log_in(&login, &args.password, SCOPE).await.map(|_| None),
        };
        if started < record_from {
            refresh_token = outcome.ok().flatten();
            continue;
        }
        match outcome {
            Ok(next) => {
                record.success(started.elapsed());
                refresh_token = next;
            }
            Err(err) => {
                if record.errors == 0 {
                    eprintln!("connection {index}: {err:#}");
                }
                record.errors += 1;
            }
        }
    }
    Ok(record)
}

// One thread: the driver shares the machine with the server it measures, and a single-threaded
// runtime spends no CPU handing wake-ups between threads. Same allocator as tessera.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: &'static Args = Box::leak(Box::new(Args::parse()));
    let record_from = Instant::now() + Duration::from_secs(args.warmup);
    let end = record_from + Duration::from_secs(args.duration);
    let workers: Vec<_> = (0..args.connections).map(|i| tokio::spawn(connection(args, i, record_from, end))).collect();
    let mut total = Record::default();
    for worker in workers {
        total.merge(worker.await??);
    }
    println!("{}", total.result_line(Duration::from_secs(args.duration)));
    Ok(())
}
