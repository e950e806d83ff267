//! Prometheus metrics, served at the telemetry listener's `/metrics`: Dex's HTTP, build-info and
//! process metrics (Linux) under Dex's names, and tessera's own under `tessera_`. One registry per server
//! (tests start many in one process), never a global one.
//!
//! Every label value comes from a bounded set: route templates, HTTP methods and codes, grant types,
//! OAuth error codes, connector and enricher names from the configuration or storage, fixed outcome
//! and cause names. Never a user, an email, a secret, a claim value or a path as asked for.

mod http;
mod observers;
#[cfg(target_os = "linux")]
mod process;

use std::sync::Arc;

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tessera_core::error::ErrorCode;
use tessera_core::grant;
use tessera_storage::{GcResult, Kind, Operation, PoolStats, Storage, StorageObserver};

use self::http::HttpMetrics;
pub use self::http::HttpMetricsLayer;
use self::observers::{ClaimsObserver, StorageTimes};

/// The content type of Prometheus' text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a login through a connector ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The connector vouched for the user.
    Success,
    /// Wrong username or password.
    InvalidCredentials,
    /// The upstream knows the user, but the connector refuses them (not in a required group).
    Denied,
    /// The connector failed (its upstream unreachable or answering nonsense).
    Error,
}

impl LoginOutcome {
    fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::InvalidCredentials => "invalid_credentials",
            LoginOutcome::Denied => "denied",
            LoginOutcome::Error => "error",
        }
    }
}

/// The kinds garbage collection removes, as [`GcResult`] counts them.
const COLLECTED: [Kind; 7] = [
    Kind::AuthRequest,
    Kind::AuthCode,
    Kind::DeviceRequest,
    Kind::DeviceToken,
    Kind::AuthSession,
    Kind::BackchannelLogout,
    Kind::FailureCounter,
];

/// The brute-force limits, as `tessera_rate_limited_total` names them.
pub const RATE_LIMITS: [&str; 5] = [
    "password_per_account_and_ip",
    "password_per_ip",
    "password_per_account",
    "client_auth_per_client_and_ip",
    "user_code_per_ip",
];

/// Dex's durations (seconds) and response sizes (bytes), bucketed as Dex does.
const DEX_DURATION_BUCKETS: [f64; 6] = [0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const DEX_SIZE_BUCKETS: [f64; 4] = [200.0, 500.0, 900.0, 1500.0];
/// An enricher answers in microseconds (static) to milliseconds (a query).
const ENRICHMENT_BUCKETS: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// A storage round trip: microseconds in memory, around a millisecond on a database.
const STORAGE_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

pub struct Metrics {
    registry: Registry,
    http: Arc<HttpMetrics>,
    tokens_issued: IntCounterVec,
    token_errors: IntCounterVec,
    logins: IntCounterVec,
    enrichment_duration: HistogramVec,
    enrichment_failures: IntCounterVec,
    reserved_dropped: IntCounterVec,
    enrichment_omitted: IntCounterVec,
    cache_lookups: IntCounterVec,
    storage_times: Arc<StorageTimes>,
    pool_max: IntGaugeVec,
    pool_in_use: IntGaugeVec,
    pool_idle: IntGaugeVec,
    pool_waiting: IntGaugeVec,
    key_rotations: IntCounter,
    gc_removed: IntCounterVec,
    backchannel_logouts: IntCounterVec,
    rate_limited: IntCounterVec,
}

/// What happened to a back-channel logout token (undelivered expired ones are counted by garbage
/// collection, `kind="backchannel_logout"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackchannelOutcome {
    /// Queued when a session ended.
    Queued,
    /// The client answered 2xx.
    Delivered,
    /// One attempt failed (refused, timed out, 4xx or 5xx); it is retried.
    Failed,
}

impl BackchannelOutcome {
    const ALL: [BackchannelOutcome; 3] =
        [BackchannelOutcome::Queued, BackchannelOutcome::Delivered, BackchannelOutcome::Failed];

    fn as_str(self) -> &'static str {
        match self {
            BackchannelOutcome::Queued => "queued",
            BackchannelOutcome::Delivered => "delivered",
            BackchannelOutcome::Failed => "failed",
        }
    }
}

impl Metrics {
    /// Every metric registered, the bounded label sets that are known now set to zero (so that a
    /// rate over them starts at once), and the process metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http = Arc::new(HttpMetrics {
            requests: register(
                &registry,
                IntCounterVec::new(Opts::new("http_requests_total", "Count of all HTTP requests."), &HTTP_LABELS)?,
            )?,
            duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("request_duration_seconds", "A histogram of latencies for requests.")
                        .buckets(DEX_DURATION_BUCKETS.to_vec()),
                    &HTTP_LABELS,
                )?,
            )?,
            size: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("response_size_bytes", "A histogram of response sizes for requests.")
                        .buckets(DEX_SIZE_BUCKETS.to_vec()),
                    &HTTP_LABELS,
                )?,
            )?,
        });
        let build_info = register(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "dex_build_info",
                    "A metric with a constant '1' value labeled by version from which Dex was built.",
                ),
                &["version", "go_version", "platform"],
            )?,
        )?;
        build_info.get_metric_with_label_values(&build_labels())?.set(1.0);
        #[cfg(target_os = "linux")]
        registry.register(Box::new(process::ProcessCollector::new()?))?;

        let tokens_issued = register(
            &registry,
            IntCounterVec::new(
                Opts::new("tessera_tokens_issued_total", "Tokens issued, by grant type (implicit: from /auth)."),
                &["grant_type"],
            )?,
        )?;
        for grant_type in grant::ALL_GRANT_TYPES {
            tokens_issued.get_metric_with_label_values(&[grant_type])?;
        }
        let storage_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "tessera_storage_operation_duration_seconds",
                    "Duration of storage round trips, by operation.",
                )
                .buckets(STORAGE_BUCKETS.to_vec()),
                &["operation"],
            )?,
        )?;
        let by_operation = Operation::ALL
            .iter()
            .map(|operation| storage_duration.get_metric_with_label_values(&[operation.as_str()]))
            .collect::<Result<Vec<Histogram>, _>>()?;
        let gc_removed = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "tessera_gc_removed_objects_total",
                    "Expired objects removed by garbage collection, by kind.",
                ),
                &["kind"],
            )?,
        )?;
        for kind in COLLECTED {
            gc_removed.get_metric_with_label_values(&[kind.as_str()])?;
        }
        let rate_limited = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "tessera_rate_limited_total",
                    "Attempts refused by a brute-force limit (rateLimits), by the limit that refused them.",
                ),
                &["limit"],
            )?,
        )?;
        for limit in RATE_LIMITS {
            rate_limited.get_metric_with_label_values(&[limit])?;
        }
        let pool_gauge = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            register(&registry, IntGaugeVec::new(Opts::new(name, help), &["pool"])?)
        };
        Ok(Self {
            http,
            tokens_issued,
            token_errors: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("tessera_token_errors_total", "Error responses of /token, by OAuth error code."),
                    &["error"],
                )?,
            )?,
            backchannel_logouts: {
                let counter = register(
                    &registry,
                    IntCounterVec::new(
                        Opts::new(
                            "tessera_backchannel_logout_deliveries_total",
                            "Back-channel logout tokens queued, delivered, and delivery attempts that failed.",
                        ),
                        &["outcome"],
                    )?,
                )?;
                for outcome in BackchannelOutcome::ALL {
                    counter.get_metric_with_label_values(&[outcome.as_str()])?;
                }
                counter
            },
            logins: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("tessera_logins_total", "Logins through a connector, by connector and outcome."),
                    &["connector", "outcome"],
                )?,
            )?,
            enrichment_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "tessera_claims_enrichment_duration_seconds",
                        "Duration of each custom-claims enricher's run, failed ones included.",
                    )
                    .buckets(ENRICHMENT_BUCKETS.to_vec()),
                    &["enricher"],
                )?,
            )?,
            enrichment_failures: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_claims_enrichment_failures_total",
                        "Custom-claims enricher failures (each blocked a token), by enricher and cause.",
                    ),
                    &["enricher", "cause"],
                )?,
            )?,
            reserved_dropped: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_claims_reserved_dropped_total",
                        "Reserved claims an enricher produced at run time and the chain dropped, by enricher.",
                    ),
                    &["enricher"],
                )?,
            )?,
            enrichment_omitted: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_claims_enrichment_omitted_total",
                        "Tokens issued without a failed enricher's claims (its onError: omit), by enricher.",
                    ),
                    &["enricher"],
                )?,
            )?,
            cache_lookups: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tessera_claims_cache_lookups_total",
                        "Lookups in a custom-claims enricher's cache, by enricher and result (hit or miss).",
                    ),
                    &["enricher", "result"],
                )?,
            )?,
            storage_times: Arc::new(StorageTimes { by_operation }),
            pool_max: pool_gauge("tessera_pool_connections_max", "The most connections a pool opens.")?,
            pool_in_use: pool_gauge(
                "tessera_pool_connections_in_use",
                "Connections of a pool held by callers or being opened, at the scrape.",
            )?,
            pool_idle: pool_gauge(
                "tessera_pool_connections_idle",
                "Open connections of a pool not in use, at the scrape.",
            )?,
            pool_waiting: pool_gauge(
                "tessera_pool_waiting",
                "Callers waiting for a connection of a pool that has all of its connections in use, at the scrape.",
            )?,
            key_rotations: register(
                &registry,
                IntCounter::new(
                    "tessera_signing_key_rotations_total",
                    "Signing-key rotations this replica performed (the first key included).",
                )?,
            )?,
            gc_removed,
            rate_limited,
            registry,
        })
    }

    /// The layer recording Dex's HTTP metrics on the public router, whose routes are under
    /// `issuer_path`.
    pub fn http_layer(&self, issuer_path: &str) -> HttpMetricsLayer {
        HttpMetricsLayer::new(self.http.clone(), issuer_path)
    }

    /// The counter of tokens issued for `grant_type`, to keep and increment on a hot path.
    pub fn tokens_issued(&self, grant_type: &'static str) -> Option<IntCounter> {
        child(&self.tokens_issued, &[grant_type])
    }

    pub fn token_error(&self, code: ErrorCode) {
        if let Some(counter) = child(&self.token_errors, &[code.as_str()]) {
            counter.inc();
        }
    }

    pub fn backchannel(&self, outcome: BackchannelOutcome) {
        if let Some(counter) = child(&self.backchannel_logouts, &[outcome.as_str()]) {
            counter.inc();
        }
    }

    /// A login through `connector` (a configured or stored connector's ID, never a user's input).
    pub fn login(&self, connector: &str, outcome: LoginOutcome) {
        if let Some(counter) = child(&self.logins, &[connector, outcome.as_str()]) {
            counter.inc();
        }
    }

    /// Times storage round trips by operation.
    pub fn storage_observer(&self) -> Arc<dyn StorageObserver> {
        self.storage_times.clone()
    }

    /// Records a custom-claims chain whose links are named `names`, in order.
    pub fn claims_observer(&self, names: &[&str]) -> Arc<dyn tessera_claims::ChainObserver> {
        Arc::new(ClaimsObserver::new(
            names,
            &self.enrichment_duration,
            &self.enrichment_failures,
            &self.reserved_dropped,
            &self.enrichment_omitted,
            &self.cache_lookups,
        ))
    }

    /// An attempt refused by the brute-force limit `limit` (one of [`RATE_LIMITS`]).
    pub fn rate_limited(&self, limit: &'static str) {
        if let Some(counter) = child(&self.rate_limited, &[limit]) {
            counter.inc();
        }
    }

    pub fn key_rotations(&self) -> IntCounter {
        self.key_rotations.clone()
    }

    pub fn garbage_collected(&self, result: &GcResult) {
        let counts = [
            result.auth_requests,
            result.auth_codes,
            result.device_requests,
            result.device_tokens,
            result.auth_sessions,
            result.backchannel_logouts,
            result.failure_counters,
        ];
        for (kind, count) in COLLECTED.iter().zip(counts) {
            if let Some(counter) = child(&self.gc_removed, &[kind.as_str()]) {
                counter.inc_by(count);
            }
        }
    }

    /// The exposition in Prometheus' text format, with the connection pools sampled now.
    pub fn render(&self, storage: &Storage, claims: &tessera_claims::Chain) -> Result<String, prometheus::Error> {
        if let Some(stats) = storage.pool_stats() {
            self.sample_pool("storage", stats);
        }
        for (enricher, stats) in claims.pool_stats() {
            self.sample_pool(&format!("enricher:{enricher}"), stats);
        }
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    fn sample_pool(&self, pool: &str, stats: PoolStats) {
        let gauges = [
            (&self.pool_max, stats.max_connections),
            (&self.pool_in_use, stats.in_use),
            (&self.pool_idle, stats.idle),
            (&self.pool_waiting, stats.waiting),
        ];
        for (gauge, value) in gauges {
            if let Some(gauge) = child(gauge, &[pool]) {
                gauge.set(i64::from(value));
            }
        }
    }
}

/// Dex's labels, in Dex's order.
const HTTP_LABELS: [&str; 3] = ["code", "method", "handler"];

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

/// The series of `vec` with these label values; `None` only if their number is wrong, which the
/// callers here never get wrong (a metric lost is better than a request failed).
fn child<T: MetricVecBuilder>(vec: &MetricVec<T>, values: &[&str]) -> Option<T::M> {
    vec.get_metric_with_label_values(values).ok()
}

/// `dex_build_info`'s labels: tessera's version; the Rust compiler's version where Dex puts Go's
/// (`rust1.95.0` beside Dex's `go1.25.8`); the platform in Go's words (`linux/amd64`), as Dex shows it.
fn build_labels() -> [String; 3] {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        other => other,
    };
    [env!("CARGO_PKG_VERSION").to_owned(), format!("rust{}", env!("TESSERA_RUSTC_VERSION")), format!("{os}/{arch}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_servers_in_one_process_have_registries_of_their_own() {
        let (first, second) = (Metrics::new().unwrap(), Metrics::new().unwrap());
        first.token_error(ErrorCode::InvalidGrant);
        let storage = Storage::new(Arc::new(tessera_storage::memory::MemoryBackend::new()));
        let chain = tessera_claims::Chain::default();
        assert!(
            first.render(&storage, &chain).unwrap().contains("tessera_token_errors_total{error=\"invalid_grant\"} 1")
        );
        assert!(!second.render(&storage, &chain).unwrap().contains("tessera_token_errors_total{"));
    }

    #[test]
    fn build_info_names_this_build() {
        let [version, compiler, platform] = build_labels();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        assert!(compiler.starts_with("rust1."), "{compiler}");
        assert!(platform.contains('/') && !platform.contains("x86_64"), "{platform}");
    }
}
