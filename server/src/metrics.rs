//! Counters and gauges, rendered in the Prometheus text format at `/metrics`.
//!
//! Plain atomics: cheap on hot paths, no registry to keep in sync.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::StoreStats;

#[derive(Debug, Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_client_errors: AtomicU64,
    pub http_server_errors: AtomicU64,
    pub rate_limited: AtomicU64,
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub sync_rounds: AtomicU64,
    pub sync_micros_total: AtomicU64,
    pub sync_bytes_in: AtomicU64,
    pub sync_bytes_out: AtomicU64,
    pub docs_sent: AtomicU64,
    pub changes_accepted: AtomicU64,
    pub changes_rejected: AtomicU64,
    pub doc_loads: AtomicU64,
    pub doc_cache_hits: AtomicU64,
    pub ws_connections: AtomicU64,
    pub pushes: AtomicU64,
}

impl Metrics {
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dec(&self, c: &AtomicU64) {
        c.fetch_sub(1, Ordering::Relaxed);
    }

    /// The exposition text, with storage figures and the number of loaded documents.
    pub fn render(&self, stats: &StoreStats, cached_documents: usize) -> String {
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!("# HELP fieldline_{name} {help}\n# TYPE fieldline_{name} {kind}\nfieldline_{name} {value}\n"));
        };
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        put(
            "http_requests_total",
            "counter",
            "HTTP requests handled.",
            g(&self.http_requests),
        );
        put(
            "http_client_errors_total",
            "counter",
            "Responses with a 4xx status.",
            g(&self.http_client_errors),
        );
        put(
            "http_server_errors_total",
            "counter",
            "Responses with a 5xx status.",
            g(&self.http_server_errors),
        );
        put(
            "rate_limited_total",
            "counter",
            "Requests refused with 429.",
            g(&self.rate_limited),
        );
        put(
            "logins_total",
            "counter",
            "Successful sign-ins.",
            g(&self.logins),
        );
        put(
            "login_failures_total",
            "counter",
            "Failed sign-ins.",
            g(&self.login_failures),
        );
        put(
            "sync_rounds_total",
            "counter",
            "Sync rounds answered (HTTP, WebSocket and pushes).",
            g(&self.sync_rounds),
        );
        put(
            "sync_seconds_total",
            "counter",
            "Server time spent in sync rounds, in microseconds.",
            g(&self.sync_micros_total),
        );
        put(
            "sync_bytes_received_total",
            "counter",
            "Encoded sync request bytes.",
            g(&self.sync_bytes_in),
        );
        put(
            "sync_bytes_sent_total",
            "counter",
            "Encoded sync response bytes.",
            g(&self.sync_bytes_out),
        );
        put(
            "documents_sent_total",
            "counter",
            "Documents (whole or changes) sent to devices.",
            g(&self.docs_sent),
        );
        put(
            "changes_accepted_total",
            "counter",
            "Uploaded changes accepted.",
            g(&self.changes_accepted),
        );
        put(
            "changes_rejected_total",
            "counter",
            "Uploaded changes refused and parked for review.",
            g(&self.changes_rejected),
        );
        put(
            "document_loads_total",
            "counter",
            "Documents loaded from storage.",
            g(&self.doc_loads),
        );
        put(
            "document_cache_hits_total",
            "counter",
            "Document lookups served by the cache.",
            g(&self.doc_cache_hits),
        );
        put(
            "websocket_connections",
            "gauge",
            "Open sync WebSockets.",
            g(&self.ws_connections),
        );
        put(
            "pushes_total",
            "counter",
            "Live pushes sent over WebSockets.",
            g(&self.pushes),
        );
        put(
            "documents_loaded",
            "gauge",
            "Documents held in memory now.",
            cached_documents as u64,
        );
        put(
            "stored_documents",
            "gauge",
            "Documents stored.",
            stats.documents,
        );
        put("stored_changes", "gauge", "Changes stored.", stats.changes);
        put("users", "gauge", "Users.", stats.users);
        put(
            "open_reviews",
            "gauge",
            "Refused changes waiting for review.",
            stats.open_reviews,
        );
        put(
            "sequence",
            "gauge",
            "The last change sequence number.",
            stats.last_seq,
        );
        out
    }
}
