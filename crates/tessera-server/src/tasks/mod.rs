//! Background work beside the HTTP server: key rotation, storage garbage collection and health
//! checks. Each task
//! runs until the shutdown signal and never takes the server down with it.

use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use crate::AppState;

/// Dex collects expired requests and codes every 5 minutes (not configurable in Dex either).
pub const GC_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Dex checks storage health every 15 seconds.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(15);

/// Starts the background tasks; they stop when `shutdown` turns true.
pub fn spawn(state: &AppState, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let gc_state = state.clone();
    let health_state = state.clone();
    let keys_state = state.clone();
    let mut tasks = vec![
        tokio::spawn(every("key-rotation", crate::signer::ROTATION_CHECK_INTERVAL, shutdown.clone(), move || {
            let state = keys_state.clone();
            async move {
                if let Err(err) = state.signer.rotate_and_load().await {
                    tracing::error!(error = %err, "key rotation check failed");
                }
            }
        })),
        tokio::spawn(every("garbage-collection", GC_INTERVAL, shutdown.clone(), move || {
            let state = gc_state.clone();
            async move { collect_garbage(&state).await }
        })),
        tokio::spawn(every("health-check", HEALTH_INTERVAL, shutdown.clone(), move || {
            let state = health_state.clone();
            async move {
                let _ = state.health.check(&state.storage, state.clock.now()).await;
            }
        })),
    ];
    if state.sessions.is_some() {
        tasks.push(tokio::spawn(crate::logout::backchannel::run(state.clone(), shutdown)));
    }
    tasks
}

/// Runs `work` now and then at each `interval`, until shutdown; its log lines carry a `task` span
/// with `name`, as a request's carry its request ID.
async fn every<F, Fut>(name: &'static str, interval: Duration, mut shutdown: watch::Receiver<bool>, mut work: F)
where
    F: FnMut() -> Fut + Send,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => work().instrument(tracing::info_span!("task", task = name)).await,
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Completes when the shutdown flag is raised.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One garbage collection; a failure is logged and retried at the next interval. Expired browser
/// sessions are ended first, as a logout ends them, so their relying parties are told.
pub async fn collect_garbage(state: &AppState) {
    if let Err(err) = crate::logout::end_expired_sessions(state).await {
        tracing::error!(error = %err, "ending expired sessions failed");
    }
    match state.storage.garbage_collect(state.clock.now()).await {
        Ok(result) if !result.is_empty() => {
            state.metrics.garbage_collected(&result);
            tracing::info!(
                auth_requests = result.auth_requests,
                auth_codes = result.auth_codes,
                device_requests = result.device_requests,
                device_tokens = result.device_tokens,
                auth_sessions = result.auth_sessions,
                backchannel_logouts = result.backchannel_logouts,
                failure_counters = result.failure_counters,
                "garbage collection removed expired objects"
            )
        }
        Ok(_) => tracing::debug!("garbage collection found nothing expired"),
        Err(err) => tracing::error!(error = %err, "garbage collection failed"),
    }
}
