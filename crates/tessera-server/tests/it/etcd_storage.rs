//! tessera on etcd storage, served for real: an etcd that goes away fails the health check cleanly, and
//! the same server works again once etcd is back. The test runs an etcd of its own (the one the test
//! script starts is shared), from the binary that script installs.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tessera_core::clock::TestClock;
use tessera_server::config::Env;

use crate::dex_import::config_for;
use crate::serve::free_port;
use crate::serve::start;

fn now() -> time::OffsetDateTime {
    tessera_core::clock::test_epoch()
}

/// The etcd process, killed when dropped (a failing test leaves none behind).
struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An etcd on `client`/`peer` ports with its data in `dir`; returns once it answers.
async fn etcd(dir: &std::path::Path, client: u16, peer: u16) -> Etcd {
    let child = Command::new("etcd")
        .args(["--name", "outage", "--data-dir"])
        .arg(dir)
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("outage=http://127.0.0.1:{peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd is installed (scripts/test.sh installs it)");
    let child = Etcd(child);
    let status = format!("http://127.0.0.1:{client}/v3/maintenance/status");
    for _ in 0..100 {
        if reqwest::Client::new().post(&status).body("{}").send().await.is_ok_and(|r| r.status().is_success()) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not start");
}

fn stop(etcd: Etcd) {
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_storage_survives_an_outage() {
    // The script that installs etcd also sets this; without it there may be no etcd binary.
    if std::env::var_os("TESSERA_TEST_ETCD_URL").is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but TESSERA_TEST_ETCD_URL is not");
        eprintln!("SKIPPED: TESSERA_TEST_ETCD_URL is not set; the etcd outage test did not run");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tessera-etcd-outage-{}", tessera_core::id::new_id()));
    let (client, peer) = (free_port(), free_port());
    let first = etcd(&dir, client, peer).await;
    let storage = format!("  type: etcd\n  config:\n    endpoints: [127.0.0.1:{client}]\n");
    let clock = Arc::new(TestClock::new(now()));
    let running = start(config_for(&storage, free_port(), &Env::default()), clock).await;
    let state = &running.state;
    state.health.check(&state.storage, now()).await.unwrap();
    let keys = state.storage.get_keys().await.unwrap();
    let http = reqwest::Client::new();
    let healthz = || http.get(format!("{}/dex/healthz", running.base)).send();
    assert_eq!(healthz().await.unwrap().status(), 200);

    stop(first);
    assert!(state.health.check(&state.storage, now()).await.is_err());
    let down = healthz().await.unwrap();
    assert_eq!(down.status(), 500);
    assert_eq!(down.text().await.unwrap(), "Health check failed", "no internals leak");

    // The same data, back on the same address: the server needs no restart, and nothing was lost.
    let second = etcd(&dir, client, peer).await;
    state.health.check(&state.storage, now()).await.expect("the storage works again");
    assert_eq!(healthz().await.unwrap().status(), 200);
    assert_eq!(state.storage.get_keys().await.unwrap(), keys);
    running.shutdown().await;
    stop(second);
    let _ = std::fs::remove_dir_all(dir);
}
