//! Prometheus metrics of one host (store, runtime and HTTP serving), kept
//! with `prometheus-client` and exported as Prometheus/OpenMetrics text by
//! the admin listener's `/metrics`.
//!
//! Every counter and histogram is updated where the event happens; the
//! per-instance gauges (live sessions, bytes used) are read from the store
//! when scraped ([`Metrics::set_instance`]).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `app`, `status` of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The instance that answered (`-` when no app is mounted there).
    pub app: String,
    /// The HTTP status code.
    pub status: u16,
}

/// The app of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    /// The instance.
    pub app: String,
}

/// A guest failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuestLabels {
    /// The instance.
    pub app: String,
    /// `trap`, `deadline` or `memory-limit`.
    pub kind: &'static str,
}

/// A state operation and its outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// The operation (`get`, `set`, `map-set`, …).
    pub op: &'static str,
    /// `ok` or the error's code (`etag-mismatch`, `quota-exceeded`, …).
    pub result: &'static str,
}

/// An instance, for per-instance gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    /// The instance.
    pub instance: String,
}

/// The metrics of a host. Cheap to share (`Arc`).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<AppLabels, Histogram>,
    guest_failures: Family<GuestLabels, Counter>,
    state_ops: Family<OpLabels, Counter>,
    commit_batch: Histogram,
    commit_seconds: Histogram,
    checkpoint_seconds: Histogram,
    writer_queue: Gauge,
    sessions_live: Family<InstanceLabels, Gauge>,
    bytes_used: Family<InstanceLabels, Gauge>,
    /// Held while a scrape swaps in its per-instance gauges and encodes
    /// them, so two scrapes at once cannot drop each other's.
    scrape: std::sync::Mutex<()>,
}

/// One instance's gauges, read at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceGauges {
    /// The instance.
    pub instance: String,
    /// Its live sessions.
    pub sessions: u64,
    /// Bytes it stores (with its sessions).
    pub bytes: u64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wasm_state");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by app and status",
            requests.clone(),
        );
        let request_seconds =
            Family::<AppLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until the response head), by app",
            request_seconds.clone(),
        );
        let guest_failures = Family::<GuestLabels, Counter>::default();
        registry.register(
            "guest_failures",
            "Guest calls stopped by a trap, their deadline or their memory limit",
            guest_failures.clone(),
        );
        let state_ops = Family::<OpLabels, Counter>::default();
        registry.register(
            "state_operations",
            "State operations by kind and result (ok or the error code)",
            state_ops.clone(),
        );
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "commit_batch_requests",
            "Write requests group-committed together (redb: one fsync per batch)",
            commit_batch.clone(),
        );
        let commit_seconds = latency_histogram();
        registry.register(
            "commit_duration_seconds",
            "Time to apply and durably commit one batch (the fsync included)",
            commit_seconds.clone(),
        );
        let checkpoint_seconds = latency_histogram();
        registry.register(
            "checkpoint_duration_seconds",
            "Time one checkpoint of the redb store took (a durable commit of the state file, after which the commit log file it covered is written again); it runs beside the writer, and log syncs are slower meanwhile",
            checkpoint_seconds.clone(),
        );
        let writer_queue = Gauge::default();
        registry.register(
            "writer_queue_depth",
            "Write requests waiting for the writer when the last batch started",
            writer_queue.clone(),
        );
        let sessions_live = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "sessions_live",
            "Live sessions per instance (read when scraped)",
            sessions_live.clone(),
        );
        let bytes_used = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "instance_bytes",
            "Bytes of state an instance uses (what its quota counts; read when scraped)",
            bytes_used.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            guest_failures,
            state_ops,
            commit_batch,
            commit_seconds,
            checkpoint_seconds,
            writer_queue,
            sessions_live,
            bytes_used,
            scrape: std::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    /// A fresh set, shared.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// A request answered.
    pub fn request(&self, app: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                app: app.to_string(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&AppLabels {
                app: app.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// A guest call stopped (`trap`, `deadline`, `memory-limit`).
    pub fn guest_failure(&self, app: &str, kind: &'static str) {
        self.guest_failures
            .get_or_create(&GuestLabels {
                app: app.to_string(),
                kind,
            })
            .inc();
    }

    /// A state operation finished (`result`: `ok` or an error code).
    pub fn state_op(&self, op: &'static str, result: &'static str) {
        self.state_ops.get_or_create(&OpLabels { op, result }).inc();
    }

    /// A commit batch of `requests` write requests took `took`, with
    /// `waiting` more queued behind it.
    pub fn commit(&self, requests: usize, took: Duration, waiting: usize) {
        self.commit_batch.observe(requests as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        self.writer_queue.set(waiting as i64);
    }

    /// A checkpoint of the redb store took `took` (done or failed), from
    /// its start until the writer took in its outcome.
    pub fn checkpoint(&self, took: Duration) {
        self.checkpoint_seconds.observe(took.as_secs_f64());
    }

    /// Everything, as OpenMetrics text, with the per-instance gauges of
    /// exactly `instances` (read for this scrape: a destroyed instance
    /// disappears). The swap and the encoding happen as one, whatever
    /// other scrapes run at the same time.
    pub fn encode_with(&self, instances: &[InstanceGauges]) -> String {
        let _one_at_a_time = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.sessions_live.clear();
        self.bytes_used.clear();
        for i in instances {
            let l = InstanceLabels {
                instance: i.instance.clone(),
            };
            self.sessions_live
                .get_or_create(&l)
                .set(i64::try_from(i.sessions).unwrap_or(i64::MAX));
            self.bytes_used
                .get_or_create(&l)
                .set(i64::try_from(i.bytes).unwrap_or(i64::MAX));
        }
        self.text()
    }

    /// Everything as it stands, as OpenMetrics text (the per-instance
    /// gauges of the last scrape).
    pub fn encode(&self) -> String {
        let _one_at_a_time = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.text()
    }

    fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_was_counted() {
        let m = Metrics::default();
        m.request("shop", 200, Duration::from_millis(3));
        m.request("shop", 200, Duration::from_millis(5));
        m.guest_failure("shop", "deadline");
        m.state_op("set", "ok");
        m.state_op("set", "quota-exceeded");
        m.commit(4, Duration::from_micros(900), 2);
        m.checkpoint(Duration::from_millis(120));
        let shop = InstanceGauges {
            instance: "shop".into(),
            sessions: 3,
            bytes: 1234,
        };
        let text = m.encode_with(std::slice::from_ref(&shop));
        for line in [
            r#"wasm_state_http_requests_total{app="shop",status="200"} 2"#,
            r#"wasm_state_http_request_duration_seconds_count{app="shop"} 2"#,
            r#"wasm_state_guest_failures_total{app="shop",kind="deadline"} 1"#,
            r#"wasm_state_state_operations_total{op="set",result="quota-exceeded"} 1"#,
            "wasm_state_commit_batch_requests_count 1",
            "wasm_state_writer_queue_depth 2",
            "wasm_state_checkpoint_duration_seconds_count 1",
            // 120 ms: above the 102.4 ms bucket's bound, within 204.8 ms.
            r#"wasm_state_checkpoint_duration_seconds_bucket{le="0.1024"} 0"#,
            r#"wasm_state_checkpoint_duration_seconds_bucket{le="0.2048"} 1"#,
            r#"wasm_state_sessions_live{instance="shop"} 3"#,
            r#"wasm_state_instance_bytes{instance="shop"} 1234"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(!m.encode_with(&[]).contains("sessions_live{"));
    }

    /// Scrapes at once each see their own instances whole: none sees
    /// another's gauges half swapped in (a scrape cleared them while
    /// another was setting them).
    #[test]
    fn scrapes_at_once_do_not_drop_each_others_gauges() {
        let m = Arc::new(Metrics::default());
        let gauges = |n: u64| -> Vec<InstanceGauges> {
            (0..50)
                .map(|i| InstanceGauges {
                    instance: format!("i{i}"),
                    sessions: n,
                    bytes: n,
                })
                .collect()
        };
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let m = m.clone();
                let mine = gauges(t);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let text = m.encode_with(&mine);
                        let n = text.matches("wasm_state_sessions_live{").count();
                        assert_eq!(n, 50, "a scrape lost gauges:\n{text}");
                        assert!(text.contains(&format!("sessions_live{{instance=\"i49\"}} {t}")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
