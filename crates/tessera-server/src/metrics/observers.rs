//! The metrics' side of the observer hooks of the storage and claims crates, which measure and
//! tell but depend on no metrics library. Series are resolved once, when the observer is made.

use std::time::Duration;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use tessera_claims::{ChainObserver, EnrichError};
use tessera_storage::{Operation, StorageObserver};

use super::child;

/// `tessera_storage_operation_duration_seconds`, one series per operation, indexed by
/// [`Operation::index`].
pub(super) struct StorageTimes {
    pub by_operation: Vec<Histogram>,
}

impl StorageObserver for StorageTimes {
    fn observe(&self, operation: Operation, elapsed: Duration) {
        if let Some(histogram) = self.by_operation.get(operation.index()) {
            histogram.observe(elapsed.as_secs_f64());
        }
    }
}

/// The series of one enricher of the chain.
struct Link {
    name: String,
    duration: Option<Histogram>,
    dropped: Option<IntCounter>,
    omitted: Option<IntCounter>,
    cache_hits: Option<IntCounter>,
    cache_misses: Option<IntCounter>,
}

/// The custom-claims metrics of one chain, its links in the chain's order.
pub(super) struct ClaimsObserver {
    links: Vec<Link>,
    failures: IntCounterVec,
}

impl ClaimsObserver {
    pub fn new(
        names: &[&str],
        duration: &HistogramVec,
        failures: &IntCounterVec,
        reserved_dropped: &IntCounterVec,
        omitted: &IntCounterVec,
        cache: &IntCounterVec,
    ) -> Self {
        let links = names
            .iter()
            .map(|name| Link {
                name: (*name).to_owned(),
                duration: child(duration, &[name]),
                dropped: child(reserved_dropped, &[name]),
                omitted: child(omitted, &[name]),
                cache_hits: child(cache, &[name, "hit"]),
                cache_misses: child(cache, &[name, "miss"]),
            })
            .collect();
        Self { links, failures: failures.clone() }
    }
}

impl ChainObserver for ClaimsObserver {
    fn enriched(&self, link: usize, elapsed: Duration, failure: Option<&EnrichError>) {
        let Some(link) = self.links.get(link) else { return };
        if let Some(duration) = &link.duration {
            duration.observe(elapsed.as_secs_f64());
        }
        if let Some(failure) = failure
            && let Some(counter) = child(&self.failures, &[&link.name, failure.cause()])
        {
            counter.inc();
        }
    }

    fn reserved_dropped(&self, link: usize) {
        if let Some(counter) = self.links.get(link).and_then(|link| link.dropped.as_ref()) {
            counter.inc();
        }
    }

    fn cached(&self, link: usize, hit: bool) {
        let Some(link) = self.links.get(link) else { return };
        if let Some(counter) = if hit { &link.cache_hits } else { &link.cache_misses } {
            counter.inc();
        }
    }

    fn omitted(&self, link: usize) {
        if let Some(counter) = self.links.get(link).and_then(|link| link.omitted.as_ref()) {
            counter.inc();
        }
    }
}
