//! The process metrics Dex's dashboards read, under the names and units of Go's Prometheus client:
//! CPU seconds, resident and virtual memory, open and maximum file descriptors, start time. Read from
//! `/proc` at each scrape. Written here rather than taken from the `prometheus` crate, whose collector
//! counts CPU time in whole seconds: an IdP mostly idle would show no CPU use at all.

use std::sync::{Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge};

pub(super) struct ProcessCollector {
    cpu_seconds: Counter,
    /// Serialises the CPU counter's catch-up, which two concurrent scrapes would both add.
    cpu_update: Mutex<()>,
    resident_memory: IntGauge,
    virtual_memory: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    start_time: Gauge,
}

impl ProcessCollector {
    pub fn new() -> Result<Self, prometheus::Error> {
        let collector = Self {
            cpu_seconds: Counter::new("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")?,
            cpu_update: Mutex::new(()),
            resident_memory: IntGauge::new("process_resident_memory_bytes", "Resident memory size in bytes.")?,
            virtual_memory: IntGauge::new("process_virtual_memory_bytes", "Virtual memory size in bytes.")?,
            open_fds: IntGauge::new("process_open_fds", "Number of open file descriptors.")?,
            max_fds: IntGauge::new("process_max_fds", "Maximum number of open file descriptors.")?,
            start_time: Gauge::new(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )?,
        };
        // Fixed for the process's life.
        if let (Ok(stat), Ok(boot)) =
            (procfs::process::Process::myself().and_then(|p| p.stat()), procfs::boot_time_secs())
        {
            collector.start_time.set(boot as f64 + stat.starttime as f64 / ticks_per_second());
        }
        Ok(collector)
    }

    /// Reads `/proc/self` into the metrics; what cannot be read keeps its last value.
    fn sample(&self) {
        let Ok(process) = procfs::process::Process::myself() else { return };
        if let Ok(stat) = process.stat() {
            let cpu = (stat.utime + stat.stime) as f64 / ticks_per_second();
            let _serial = self.cpu_update.lock().unwrap_or_else(PoisonError::into_inner);
            let behind = cpu - self.cpu_seconds.get();
            if behind > 0.0 {
                self.cpu_seconds.inc_by(behind);
            }
            self.virtual_memory.set(saturating_i64(stat.vsize));
            self.resident_memory.set(saturating_i64(stat.rss.saturating_mul(procfs::page_size())));
        }
        if let Ok(count) = process.fd_count() {
            self.open_fds.set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        if let Ok(limits) = process.limits() {
            let max = match limits.max_open_files.soft_limit {
                procfs::process::LimitValue::Value(max) => saturating_i64(max),
                procfs::process::LimitValue::Unlimited => i64::MAX,
            };
            self.max_fds.set(max);
        }
    }
}

fn ticks_per_second() -> f64 {
    procfs::ticks_per_second().max(1) as f64
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.cpu_seconds.desc(),
            self.resident_memory.desc(),
            self.virtual_memory.desc(),
            self.open_fds.desc(),
            self.max_fds.desc(),
            self.start_time.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.sample();
        [
            self.cpu_seconds.collect(),
            self.resident_memory.collect(),
            self.virtual_memory.collect(),
            self.open_fds.collect(),
            self.max_fds.collect(),
            self.start_time.collect(),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's CPU seconds, read from `/proc/self/stat` by hand (utime and stime, in ticks).
    fn cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / ticks_per_second()
    }

    #[test]
    fn the_process_is_measured_in_go_units() {
        let collector = ProcessCollector::new().unwrap();
        // Spend some CPU, so that the time has a part below a second to lose if it were truncated.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let before = cpu_seconds();
        collector.sample();
        let after = cpu_seconds();
        let cpu = collector.cpu_seconds.get();
        assert!(before > 0.0 && (before..=after).contains(&cpu), "{before} <= {cpu} <= {after}");
        assert!(collector.resident_memory.get() > 1 << 20);
        assert!(collector.open_fds.get() > 0 && collector.max_fds.get() >= collector.open_fds.get());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let started = collector.start_time.get();
        assert!(started > now - 86_400.0 && started <= now + 1.0, "started at {started}, now {now}");
    }
}
