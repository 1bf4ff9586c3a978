//! Benchmark scenarios for `fieldline-bench`, and their reporting.
//!
//! Figures are printed, never asserted: speed is measured here, correctness in the tests.

pub mod client;
pub mod server;

use std::time::Duration;

/// Prints one figure as a JSON line.
pub fn report(scenario: &str, metric: &str, value: f64, unit: &str) {
    let v = (value * 1000.0).round() / 1000.0;
    println!(
        "{}",
        serde_json::json!({ "scenario": scenario, "metric": metric, "value": v, "unit": unit })
    );
}

/// Progress on stderr.
pub fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Reports p50/p90/p99/max of latencies in milliseconds.
pub fn report_latencies(scenario: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    report(scenario, "p50", ms(at(0.50)), "ms");
    report(scenario, "p90", ms(at(0.90)), "ms");
    report(scenario, "p99", ms(at(0.99)), "ms");
    report(scenario, "max", ms(samples[samples.len() - 1]), "ms");
    report(scenario, "samples", samples.len() as f64, "count");
}

/// A small deterministic generator for picking accounts and queries.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
