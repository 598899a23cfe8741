//! Prometheus metrics (prometheus-client, OpenMetrics text at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::jobs::Counts;

/// Label: how a job arrived (`http`, `stow`, `dicom`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// The source.
    pub source: String,
}

/// Label: a job state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// The state.
    pub state: String,
}

/// Label: an HTTP route and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    /// Matched route template, e.g. `/v1/jobs/{id}`.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Label: outcome of forwarding one instance.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `stored` or `failed`.
    pub result: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Jobs submitted, by source.
    pub submitted: Family<SourceLabel, Counter>,
    /// Jobs finished, by final state.
    pub finished: Family<StateLabel, Counter>,
    /// Jobs per state now (set at each scrape).
    pub jobs: Family<StateLabel, Gauge>,
    /// HTTP requests, by route and status.
    pub http: Family<HttpLabel, Counter>,
    /// DICOM instances received by the SCP.
    pub instances_received: Counter,
    /// DICOM instances forwarded, by result.
    pub forwarded: Family<ResultLabel, Counter>,
    /// Wall time of one analysis (seconds).
    pub analysis_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ctt");
        let m = Metrics {
            submitted: Family::default(),
            finished: Family::default(),
            jobs: Family::default(),
            http: Family::default(),
            instances_received: Counter::default(),
            forwarded: Family::default(),
            analysis_seconds: Histogram::new(exponential_buckets(0.25, 2.0, 10)),
            registry: Registry::default(),
        };
        registry.register(
            "jobs_submitted",
            "Jobs submitted, by source",
            m.submitted.clone(),
        );
        registry.register(
            "jobs_finished",
            "Jobs finished, by final state",
            m.finished.clone(),
        );
        registry.register("jobs", "Jobs per state", m.jobs.clone());
        registry.register(
            "http_requests",
            "HTTP requests, by route and status",
            m.http.clone(),
        );
        registry.register(
            "dicom_instances_received",
            "DICOM instances received by the C-STORE SCP",
            m.instances_received.clone(),
        );
        registry.register(
            "dicom_instances_forwarded",
            "DICOM instances forwarded with C-STORE, by result",
            m.forwarded.clone(),
        );
        registry.register(
            "analysis_seconds",
            "Wall time of one analysis",
            m.analysis_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text, with the job gauges set from `counts`.
    pub fn render(&self, counts: &Counts) -> String {
        for (state, n) in [
            ("queued", counts.queued),
            ("running", counts.running),
            ("done", counts.done),
            ("failed", counts.failed),
        ] {
            self.jobs
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(n as i64);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
