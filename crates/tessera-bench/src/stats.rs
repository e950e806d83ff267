//! Latencies and errors of one scenario, summarised as bench/run.sh prints them.

use std::time::Duration;

#[derive(Debug, Default)]
pub struct Record {
    /// One entry per successful operation, in microseconds.
    latencies_us: Vec<u64>,
    pub errors: u64,
}

impl Record {
    pub fn success(&mut self, took: Duration) {
        self.latencies_us.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn merge(&mut self, other: Record) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
    }

    /// `RESULT <per second> <p50 ms> <p99 ms> <errors>`: the line bench/run.sh reads (the same as
    /// its wrk scripts print).
    pub fn result_line(&mut self, measured: Duration) -> String {
        self.latencies_us.sort_unstable();
        let per_second = self.latencies_us.len() as f64 / measured.as_secs_f64();
        format!(
            "RESULT {per_second:.0} {:.2} {:.2} {}",
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.errors
        )
    }

    /// Nearest-rank percentile of the sorted latencies, in milliseconds.
    fn percentile_ms(&self, percent: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((percent / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies_us.len()) - 1;
        self.latencies_us.get(index).copied().unwrap_or_default() as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut record = Record::default();
        for ms in 1..=100 {
            record.success(Duration::from_millis(ms));
        }
        record.errors = 2;
        assert_eq!(record.result_line(Duration::from_secs(10)), "RESULT 10 50.00 99.00 2");
    }

    #[test]
    fn an_empty_record_reports_zero() {
        assert_eq!(Record::default().result_line(Duration::from_secs(1)), "RESULT 0 0.00 0.00 0");
    }
}
