//! Every Prometheus metric Usher exports, in one registry served on the admin `/metrics`.
//! Each is documented in docs/metrics.md; keep the two in step.

use once_cell::sync::Lazy;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    pub upstream_attempt_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub upstream_rejections: IntCounterVec,
    pub breaker_state: IntGaugeVec,
    pub upstream_peers: IntGaugeVec,
    pub upstream_healthy_peers: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub access_log_dropped: IntCounter,
}

/// Latency buckets from 1 ms to 120 s (the longest route deadline we ship).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

pub static METRICS: Lazy<Metrics> = Lazy::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let metric = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let in_flight = IntGauge::new(
            "usher_http_requests_in_flight",
            "Requests currently being handled on the public listener.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("unique metric");
        let access_log_dropped = IntCounter::new(
            "usher_access_log_dropped_total",
            "Access log lines dropped because the writer could not keep up.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(access_log_dropped.clone()))
            .expect("unique metric");
        Metrics {
            requests: counter(
                "usher_http_requests_total",
                "Requests answered, by route, method and status class (2xx, 3xx, 4xx, 5xx).",
                &["route", "method", "status_class"],
            ),
            request_duration: histogram(
                "usher_http_request_duration_seconds",
                "Time from request start to the end of the response, by route.",
                &["route"],
            ),
            in_flight,
            upstream_attempt_duration: histogram(
                "usher_upstream_attempt_duration_seconds",
                "Time from choosing a peer to the upstream's response header, by upstream.",
                &["upstream"],
            ),
            upstream_errors: counter(
                "usher_upstream_errors_total",
                "Failed upstream attempts, by upstream and kind.",
                &["upstream", "kind"],
            ),
            upstream_rejections: counter(
                "usher_upstream_rejected_total",
                "Requests refused before reaching an upstream, by upstream and reason.",
                &["upstream", "reason"],
            ),
            breaker_state: gauge(
                "usher_circuit_breaker_state",
                "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
                &["upstream"],
            ),
            upstream_peers: gauge(
                "usher_upstream_peers",
                "Peers currently resolved for each upstream.",
                &["upstream"],
            ),
            upstream_healthy_peers: gauge(
                "usher_upstream_healthy_peers",
                "Peers that pass health checks and are not ejected, per upstream.",
                &["upstream"],
            ),
            config_reloads: counter(
                "usher_config_reloads_total",
                "Configuration reload attempts, by result (success, failure).",
                &["result"],
            ),
            config_info: gauge(
                "usher_config_info",
                "Always 1; labels carry the active configuration's version and content hash.",
                &["version", "hash"],
            ),
            access_log_dropped,
            registry,
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics");
        buffer
    }

    /// Removes the per-upstream series of an upstream that a reload removed.
    pub fn forget_upstream(&self, upstream: &str) {
        for gauge in [
            &self.breaker_state,
            &self.upstream_peers,
            &self.upstream_healthy_peers,
        ] {
            let _ = gauge.remove_label_values(&[upstream]);
        }
    }
}

/// `2xx`, `4xx`, ...; `0` stands for "no response was sent".
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}
