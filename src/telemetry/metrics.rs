//! Every Prometheus metric Usher exports, in one registry served on the admin `/metrics`.
//! Each is documented in docs/metrics.md; keep the two in step.

use crate::config::StoreFailure;
use http::Method;
use once_cell::sync::{Lazy, OnceCell};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub responses: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    process_cpu: prometheus::Counter,
    process_resident: IntGauge,
    process_virtual: IntGauge,
    process_open_fds: IntGauge,
    process_max_fds: IntGauge,
    process_threads: IntGauge,
    process_start_time: prometheus::Gauge,
    pub body_buffered: IntGauge,
    pub upstream_attempt_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub upstream_rejections: IntCounterVec,
    pub upstream_abandoned: IntCounterVec,
    pub breaker_state: IntGaugeVec,
    pub upstream_peers: IntGaugeVec,
    pub upstream_healthy_peers: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub access_log_dropped: IntCounter,
    pub security_events: IntCounterVec,
    pub ratelimit_decisions: IntCounterVec,
    pub ratelimit_store_duration: HistogramVec,
    pub ratelimit_store_errors: IntCounterVec,
    pub ratelimit_fallback_active: IntGauge,
    pub ratelimit_blocks: IntCounterVec,
    pub ratelimit_bot_signals: IntCounterVec,
    pub shed_requests: IntCounterVec,
    pub idempotency: IntCounterVec,
    pub validation_refusals: IntCounterVec,
    pub budget_requests: IntCounterVec,
    pub budget_amount: IntCounterVec,
    pub approvals: IntCounterVec,
    pub signature_verifications: IntCounterVec,
    pub shed_level: IntGauge,
    pub revocation_checks: IntCounterVec,
    pub trace_spans: IntCounterVec,
}

/// Store call buckets from 50 µs to the longest deadline a Redis call may have (1 s).
const STORE_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Latency buckets from 1 ms to 120 s (the longest route deadline we ship).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

pub static METRICS: Lazy<Metrics> = Lazy::new(Metrics::new);

/// How a finished span ended: the `outcome` of `usher_trace_spans_total`.
pub mod span_outcome {
    pub const EXPORTED: &str = "exported";
    pub const QUEUE_FULL: &str = "queue_full";
    pub const EXPORT_FAILED: &str = "export_failed";
    pub const ALL: [&str; 3] = [EXPORTED, QUEUE_FULL, EXPORT_FAILED];
}

/// The label values the code gives each family, so that every series a configuration can
/// produce exists from the start at zero rather than at its first event (a `rate()` over a
/// series that appears mid-incident reads nothing). A counting site either names its value
/// by position in its list (a [`CounterGrid`], for the per-request families) or checks it
/// against the list in debug builds ([`labels::check`]), so the lists cannot drift from
/// the code without a test failing; docs/metrics.md describes the same values.
pub mod labels {
    /// `usher_upstream_errors_total{kind}`.
    pub const UPSTREAM_ERRORS: [&str; 8] = [
        "connect_refused",
        "connect_timeout",
        "connect_error",
        "read_timeout",
        "write_timeout",
        "read_error",
        "write_error",
        "status_5xx",
    ];
    /// `usher_upstream_rejected_total{reason}`.
    pub const UPSTREAM_REJECTIONS: [&str; 4] = [
        "circuit_open",
        "bulkhead_full",
        "connection_share",
        "no_healthy_peer",
    ];
    /// `usher_config_reloads_total{result}`.
    pub const RELOADS: [&str; 2] = ["success", "failure"];
    /// `usher_ratelimit_decisions_total{result}`: decided in a store, or, with the store
    /// down, let through uncounted (`unlimited`) or refused (`unavailable`) under `store`
    /// `none`.
    pub const RATELIMIT_RESULTS: [&str; 5] =
        ["allowed", "limited", "blocked", "unlimited", "unavailable"];
    pub const RATELIMIT_DECIDED: &[&str] = RATELIMIT_RESULTS.split_at(3).0;
    /// `usher_ratelimit_decisions_total{store}` and `usher_ratelimit_store_duration_seconds`.
    pub const RATELIMIT_STORES: [&str; 3] = ["redis", "local", "none"];
    /// `usher_ratelimit_store_errors_total{kind}`.
    pub const STORE_ERRORS: [&str; 3] = ["timeout", "error", "circuit_open"];
    /// `usher_revocation_checks_total{result}` and `{source}`.
    pub const REVOCATION_RESULTS: [&str; 3] = ["valid", "revoked", "unavailable"];
    pub const REVOCATION_SOURCES: [&str; 4] = ["file", "cache", "redis", "stale"];
    /// `usher_idempotency_total{outcome}`.
    pub const IDEMPOTENCY: [&str; 10] = [
        "reserved",
        "replayed",
        "in_flight",
        "outcome_unknown",
        "not_replayable",
        "key_reused",
        "key_missing",
        "key_invalid",
        "unavailable",
        "unrecorded",
    ];
    /// `usher_validation_refusals_total{code}`.
    pub const VALIDATION: [&str; 4] = [
        "invalid_parameter",
        "unsupported_media_type",
        "malformed_json",
        "invalid_body",
    ];
    /// `usher_budget_requests_total{outcome}`.
    pub const BUDGET_REQUESTS: [&str; 7] = [
        "spent",
        "refused",
        "over_cap",
        "invalid",
        "unavailable",
        "refunded",
        "refund_failed",
    ];
    /// `usher_budget_amount_total{outcome}`.
    pub const BUDGET_AMOUNTS: [&str; 3] = ["spent", "refused", "refunded"];
    /// `usher_approvals_total{outcome}`.
    pub const APPROVALS: [&str; 8] = [
        "requested",
        "pending",
        "approved",
        "granted",
        "used",
        "restored",
        "expired",
        "refused",
    ];
    /// `usher_signature_verifications_total{result}` for webhook schemes.
    pub const WEBHOOK_RESULTS: [&str; 7] = [
        "valid",
        "missing",
        "stale",
        "mismatch",
        "replayed",
        "unavailable",
        "unrecorded",
    ];
    /// `usher_signature_verifications_total{result}` for `rfc9421`.
    pub const SIGNATURE_RESULTS: [&str; 8] = [
        "valid",
        "malformed",
        "unknown_key",
        "incomplete",
        "stale",
        "mismatch",
        "replayed",
        "unavailable",
    ];

    /// In debug builds (the tests), that `value` is one of `family`'s listed values.
    pub fn check(family: &str, listed: &[&str], value: &str) {
        debug_assert!(
            listed.contains(&value),
            "{family}: \"{value}\" is not in its list in telemetry::metrics::labels"
        );
    }
}

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
        let plain_gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let in_flight = plain_gauge(
            "usher_http_requests_in_flight",
            "Requests currently being handled on the public listener.",
        );
        let float = |metric: Box<dyn prometheus::core::Collector>| {
            registry.register(metric).expect("unique metric");
        };
        let process_cpu = prometheus::Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )
        .expect("valid metric");
        float(Box::new(process_cpu.clone()));
        let process_start_time = prometheus::Gauge::new(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        )
        .expect("valid metric");
        float(Box::new(process_start_time.clone()));
        let process_resident = plain_gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        let process_virtual = plain_gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        );
        let process_open_fds = plain_gauge("process_open_fds", "Number of open file descriptors.");
        let process_max_fds = plain_gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        );
        let process_threads =
            plain_gauge("process_threads", "Number of OS threads in the process.");
        let build_info = gauge(
            "usher_build_info",
            "This build: 1, labelled with its version, git revision and Pingora version.",
            &["version", "git_revision", "pingora_version"],
        );
        build_info
            .with_label_values(&[super::VERSION, super::GIT_REVISION, super::PINGORA_VERSION])
            .set(1);
        let body_buffered = plain_gauge(
            "usher_request_body_buffered_bytes",
            "Bytes reserved for request bodies read before any upstream contact (buffer_body).",
        );
        let ratelimit_store_duration = {
            let opts = HistogramOpts::new(
                "usher_ratelimit_store_duration_seconds",
                "Time one rate-limit decision took in its store (redis, local), failures included.",
            )
            .buckets(STORE_BUCKETS.to_vec());
            let metric = HistogramVec::new(opts, &["store"]).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let access_log_dropped = IntCounter::new(
            "usher_access_log_dropped_total",
            "Access log lines dropped because the writer could not keep up.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(access_log_dropped.clone()))
            .expect("unique metric");
        let metrics = Metrics {
            requests: counter(
                "usher_http_requests_total",
                "Requests answered, by route, method and status class (2xx, 3xx, 4xx, 5xx).",
                &["route", "method", "status_class"],
            ),
            responses: counter(
                "usher_http_responses_total",
                "Requests answered, by route and status code (0: no response was sent).",
                &["route", "code"],
            ),
            request_duration: histogram(
                "usher_http_request_duration_seconds",
                "Time from request start to the end of the response, by route.",
                &["route"],
            ),
            in_flight,
            process_cpu,
            process_resident,
            process_virtual,
            process_open_fds,
            process_max_fds,
            process_threads,
            process_start_time,
            body_buffered,
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
            upstream_abandoned: counter(
                "usher_upstream_abandoned_total",
                "Requests whose client left while the upstream was working on them; their bulkhead slot is held for the upstream's typical wait.",
                &["upstream"],
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
            security_events: counter(
                "usher_security_events_total",
                "Security events (authentication failures, denied roles, spoofed identity headers, refused requests), by reason and severity.",
                &["reason", "severity"],
            ),
            ratelimit_decisions: counter(
                "usher_ratelimit_decisions_total",
                "Rate-limit decisions, by policy, result (allowed, limited, blocked, unlimited when failing open, unavailable when failing closed) and store (redis, local, none).",
                &["policy", "result", "store"],
            ),
            ratelimit_store_duration,
            ratelimit_store_errors: counter(
                "usher_ratelimit_store_errors_total",
                "Redis calls (rate-limit decisions, revocation lookups) that gave no answer, by kind (timeout, error), and calls skipped while the store is marked down (circuit_open).",
                &["kind"],
            ),
            ratelimit_fallback_active: plain_gauge(
                "usher_ratelimit_fallback_active",
                "1 while Redis is marked down and policies use their fallback (local store, open or closed).",
            ),
            ratelimit_blocks: counter(
                "usher_ratelimit_blocks_total",
                "Callers blocked for repeatedly exceeding a policy, by policy.",
                &["policy"],
            ),
            ratelimit_bot_signals: counter(
                "usher_ratelimit_bot_signals_total",
                "Callers whose refusals within one window passed the policy's bot_after, by policy.",
                &["policy"],
            ),
            shed_requests: counter(
                "usher_shed_requests_total",
                "Requests shed (503) because of overload, by caller tier.",
                &["tier"],
            ),
            idempotency: counter(
                "usher_idempotency_total",
                "Requests on routes with Idempotency-Key handling, by route and outcome (reserved, replayed, in_flight, outcome_unknown, not_replayable, key_reused, key_missing, key_invalid, unavailable, unrecorded).",
                &["route", "outcome"],
            ),
            budget_requests: counter(
                "usher_budget_requests_total",
                "Requests counted by budgets (policies with an amount), by policy and outcome (spent, refused, over_cap, invalid, unavailable, refunded, refund_failed).",
                &["policy", "outcome"],
            ),
            budget_amount: counter(
                "usher_budget_amount_total",
                "Amounts asked of budgets, by policy and outcome (spent: reserved before forwarding; refused; refunded: given back after the request did not happen).",
                &["policy", "outcome"],
            ),
            signature_verifications: counter(
                "usher_signature_verifications_total",
                "Signed requests checked at the edge, by route, scheme (stripe, standard, github, rfc9421) and result (valid, missing, stale, mismatch, replayed, unavailable, unrecorded; for rfc9421 also malformed, unknown_key, incomplete).",
                &["route", "scheme", "result"],
            ),
            approvals: counter(
                "usher_approvals_total",
                "Two-person approvals by outcome (requested, pending, approved, granted, used, restored, expired, refused).",
                &["outcome"],
            ),
            validation_refusals: counter(
                "usher_validation_refusals_total",
                "Requests refused by their route's validate section, by route and code (invalid_parameter, unsupported_media_type, malformed_json, invalid_body).",
                &["route", "code"],
            ),
            shed_level: plain_gauge(
                "usher_shed_level",
                "Tiers being shed at the last admission decision: 0 none, up to the number of tiers with shed_at.",
            ),
            revocation_checks: counter(
                "usher_revocation_checks_total",
                "Token revocation checks by result (valid, revoked, unavailable) and by where the answer came from (file, cache, redis, stale: an older answer while Redis cannot answer).",
                &["result", "source"],
            ),
            trace_spans: counter(
                "usher_trace_spans_total",
                "Finished spans of sampled requests, by outcome (exported; queue_full: dropped because the export queue was full; export_failed: the collector refused them or could not be reached in time).",
                &["outcome"],
            ),
            registry,
        };
        // Families whose label values are all known from the start, zero-valued; those
        // that name what the configuration holds follow each load ([`Metrics::present`]).
        for outcome in span_outcome::ALL {
            metrics.trace_spans.with_label_values(&[outcome]);
        }
        for result in labels::RELOADS {
            metrics.config_reloads.with_label_values(&[result]);
        }
        for kind in labels::STORE_ERRORS {
            metrics.ratelimit_store_errors.with_label_values(&[kind]);
        }
        for result in labels::REVOCATION_RESULTS {
            for source in labels::REVOCATION_SOURCES {
                metrics
                    .revocation_checks
                    .with_label_values(&[result, source]);
            }
        }
        for outcome in labels::APPROVALS {
            metrics.approvals.with_label_values(&[outcome]);
        }
        for (reason, severity) in crate::security::events::REASONS {
            metrics
                .security_events
                .with_label_values(&[reason, severity.as_str()]);
        }
        metrics
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        self.in_flight.set(crate::load::requests_in_flight());
        let process = super::process::sample();
        // A counter only grows: it takes what the process's CPU time grew by since.
        let grown = process.cpu_seconds - self.process_cpu.get();
        if grown > 0.0 {
            self.process_cpu.inc_by(grown);
        }
        self.process_resident.set(process.resident_bytes as i64);
        self.process_virtual.set(process.virtual_bytes as i64);
        self.process_open_fds.set(process.open_fds as i64);
        self.process_max_fds.set(process.max_fds as i64);
        self.process_threads.set(process.threads as i64);
        self.process_start_time.set(process.start_time_seconds);
        self.body_buffered.set(crate::load::bytes_buffered() as i64);
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics");
        buffer
    }

    /// Makes every series `config` can produce, at zero where it is new: per upstream, per
    /// route with idempotency, validation or signatures, per budget, per policy that
    /// blocks or watches for bots, per tier that is shed. On every load, before the
    /// configuration serves.
    pub fn present(&self, config: &crate::config::Config) {
        self.retire_unconfigured(config);
        for upstream in &config.upstreams {
            let name = &*upstream.name;
            self.upstream_abandoned.with_label_values(&[name]);
            for kind in labels::UPSTREAM_ERRORS {
                self.upstream_errors.with_label_values(&[name, kind]);
            }
            for reason in labels::UPSTREAM_REJECTIONS {
                self.upstream_rejections.with_label_values(&[name, reason]);
            }
        }
        for route in &config.routes {
            let name = &*route.name;
            if route.idempotency.is_some() {
                for outcome in labels::IDEMPOTENCY {
                    self.idempotency.with_label_values(&[name, outcome]);
                }
            }
            for code in route.validation_codes() {
                self.validation_refusals.with_label_values(&[name, code]);
            }
            if let Some(webhook) = &route.webhook {
                for result in labels::WEBHOOK_RESULTS {
                    let scheme = webhook.scheme.as_str();
                    self.signature_verifications
                        .with_label_values(&[name, scheme, result]);
                }
            }
            if route.auth.signatures {
                for result in labels::SIGNATURE_RESULTS {
                    self.signature_verifications
                        .with_label_values(&[name, "rfc9421", result]);
                }
            }
        }
        // Decisions are counted in Redis where the file configures it, and in process
        // without it or while it is down (`on_store_failure: local`); with Redis down, an
        // open policy lets requests through uncounted, a closed one refuses them.
        let redis = config.rate_limiting.redis.is_some();
        let stores: &[&str] = if redis {
            &["redis", "local"]
        } else {
            &["local"]
        };
        for store in stores {
            self.ratelimit_store_duration.with_label_values(&[store]);
        }
        for policy in &config.rate_limiting.policies {
            let name = &*policy.name;
            // Budgets are counted by their own family, once the body is in.
            for result in labels::RATELIMIT_DECIDED
                .iter()
                .filter(|_| policy.amount.is_none())
            {
                for store in stores {
                    self.ratelimit_decisions
                        .with_label_values(&[name, result, store]);
                }
            }
            let undecided = match policy.on_store_failure {
                StoreFailure::Open => Some("unlimited"),
                StoreFailure::Closed => Some("unavailable"),
                StoreFailure::Local => None,
            };
            if let (true, true, Some(result)) = (redis, policy.amount.is_none(), undecided) {
                self.ratelimit_decisions
                    .with_label_values(&[name, result, "none"]);
            }
            if policy.amount.is_some() {
                for outcome in labels::BUDGET_REQUESTS {
                    self.budget_requests.with_label_values(&[name, outcome]);
                }
                for outcome in labels::BUDGET_AMOUNTS {
                    self.budget_amount.with_label_values(&[name, outcome]);
                }
            }
            if policy.block.is_some() {
                self.ratelimit_blocks.with_label_values(&[name]);
            }
            if policy.bot_after.is_some() {
                self.ratelimit_bot_signals.with_label_values(&[name]);
            }
        }
        for tier in &config.rate_limiting.tiers.levels {
            if tier.shed_at.is_some() {
                self.shed_requests.with_label_values(&[&tier.name]);
            }
        }
        // A route's request series appear with its first request (a table of 10,000 routes
        // would otherwise hold hundreds of thousands); the families are there from the start
        // through the requests no route matches, whose first is usually a 404.
        UNMATCHED.series(&Method::GET, 404);
    }

    /// Removes the series that name what `config` no longer counts: a route that lost its
    /// idempotency, validation or signatures (or changed its webhook's scheme), a policy
    /// that went or lost its budget, block or bot watch, a tier no longer shed. Removed
    /// routes and upstreams are [`Metrics::forget_routes`] and [`Metrics::forget_upstreams`].
    fn retire_unconfigured(&self, config: &crate::config::Config) {
        let routes = |has: &dyn Fn(&crate::config::RouteSpec) -> bool| -> HashSet<&str> {
            config
                .routes
                .iter()
                .filter(|r| has(r))
                .map(|r| &*r.name)
                .collect()
        };
        let policies = |has: &dyn Fn(&crate::config::PolicySpec) -> bool| -> HashSet<&str> {
            let all = config.rate_limiting.policies.iter();
            all.filter(|p| has(p)).map(|p| &*p.name).collect()
        };
        remove_where(
            &self.idempotency,
            outside("route", routes(&|r| r.idempotency.is_some())),
        );
        let validating = routes(&|r| r.validation_codes().next().is_some());
        remove_where(&self.validation_refusals, outside("route", validating));
        let schemes: HashMap<&str, Vec<&str>> = (config.routes.iter())
            .map(|r| {
                let webhook = r.webhook.as_ref().map(|w| w.scheme.as_str());
                let signed = r.auth.signatures.then_some("rfc9421");
                (&*r.name, webhook.into_iter().chain(signed).collect())
            })
            .collect();
        remove_where(&self.signature_verifications, |labels| {
            let (route, scheme) = (labels.get("route"), labels.get("scheme"));
            let current = route.and_then(|route| schemes.get(route));
            !current.is_some_and(|schemes| scheme.is_some_and(|s| schemes.contains(s)))
        });
        let budgets = || policies(&|p| p.amount.is_some());
        remove_where(&self.budget_requests, outside("policy", budgets()));
        remove_where(&self.budget_amount, outside("policy", budgets()));
        let counted = policies(&|p| p.amount.is_none());
        remove_where(&self.ratelimit_decisions, outside("policy", counted));
        let blocking = policies(&|p| p.block.is_some());
        remove_where(&self.ratelimit_blocks, outside("policy", blocking));
        let watching = policies(&|p| p.bot_after.is_some());
        remove_where(&self.ratelimit_bot_signals, outside("policy", watching));
        let tiers = config.rate_limiting.tiers.levels.iter();
        let shed: HashSet<&str> = tiers
            .filter(|t| t.shed_at.is_some())
            .map(|t| &*t.name)
            .collect();
        remove_where(&self.shed_requests, outside("tier", shed));
    }

    /// Removes every series of the upstreams a reload removed.
    pub fn forget_upstreams(&self, upstreams: &HashSet<&str>) {
        for gauge in [
            &self.breaker_state,
            &self.upstream_peers,
            &self.upstream_healthy_peers,
        ] {
            remove_series(gauge, "upstream", upstreams);
        }
        for counter in [
            &self.upstream_errors,
            &self.upstream_rejections,
            &self.upstream_abandoned,
        ] {
            remove_series(counter, "upstream", upstreams);
        }
        remove_series(&self.upstream_attempt_duration, "upstream", upstreams);
    }

    /// Removes every series of the routes a reload removed, so `/metrics` follows the
    /// configuration instead of growing with every route ever loaded.
    pub fn forget_routes(&self, routes: &HashSet<&str>) {
        remove_series(&self.requests, "route", routes);
        remove_series(&self.responses, "route", routes);
        remove_series(&self.request_duration, "route", routes);
        remove_series(&self.idempotency, "route", routes);
        remove_series(&self.validation_refusals, "route", routes);
        remove_series(&self.signature_verifications, "route", routes);
    }
}

/// Removes the series of `vec` whose `label` is one of `values`, whatever its other labels:
/// one pass over the family, however many values go.
fn remove_series<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    label: &str,
    values: &HashSet<&str>,
) {
    if values.is_empty() {
        return;
    }
    remove_where(vec, |labels| {
        labels.get(label).is_some_and(|v| values.contains(v))
    });
}

/// Picks the series whose `label` is not one of `kept`.
fn outside<'a>(
    label: &'static str,
    kept: HashSet<&'a str>,
) -> impl Fn(&HashMap<&str, &str>) -> bool + 'a {
    move |labels| labels.get(label).is_some_and(|v| !kept.contains(v))
}

/// Removes the series of `vec` whose labels `unwanted` picks.
fn remove_where<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    unwanted: impl Fn(&HashMap<&str, &str>) -> bool,
) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|p| (p.name(), p.value()))
                .collect();
            if unwanted(&labels) {
                let _ = vec.remove(&labels);
            }
        }
    }
}

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// The counters of a family whose last two labels each take a listed value (`rows`, then
/// `columns`), after an optional leading label (a route's or a policy's name). Each is
/// resolved on first use and kept: counting is an index into the grid, not a lookup by
/// label values, and a series appears only once something counted in it.
pub struct CounterGrid<const R: usize, const C: usize> {
    family: fn(&Metrics) -> &IntCounterVec,
    leading: Option<Box<str>>,
    rows: &'static [&'static str; R],
    columns: &'static [&'static str; C],
    cells: [[OnceCell<IntCounter>; C]; R],
}

impl<const R: usize, const C: usize> CounterGrid<R, C> {
    pub fn new(
        family: fn(&Metrics) -> &IntCounterVec,
        leading: Option<&str>,
        rows: &'static [&'static str; R],
        columns: &'static [&'static str; C],
    ) -> Self {
        CounterGrid {
            family,
            leading: leading.map(Box::from),
            rows,
            columns,
            cells: std::array::from_fn(|_| std::array::from_fn(|_| OnceCell::new())),
        }
    }

    /// The counter of `rows[row]` and `columns[column]`.
    pub fn get(&self, row: usize, column: usize) -> &IntCounter {
        self.cells[row][column].get_or_init(|| {
            let family = (self.family)(&METRICS);
            let (row, column) = (self.rows[row], self.columns[column]);
            match &self.leading {
                Some(leading) => family.with_label_values(&[leading, row, column]),
                None => family.with_label_values(&[row, column]),
            }
        })
    }
}

/// A route's request metrics, resolved once per route rather than looked up by label on
/// every request, each made on its first use: a table of thousands of routes exports only
/// the series of what it served.
pub struct RouteMetrics {
    route: String,
    duration: OnceCell<Histogram>,
    requests: CounterGrid<{ METHODS.len() }, { STATUS_CLASSES.len() }>,
    /// By status code, 0 to 599 (anything else counts as 0), resolved on first use. The
    /// table itself is made on the route's first request: 600 slots are 10 KiB, and most
    /// of a large route table is rarely asked for.
    responses: OnceCell<Box<[OnceCell<IntCounter>]>>,
}

/// Status codes a route's counters are kept for: 0 (no response) to 599.
const STATUS_CODES: usize = 600;

/// The metrics of requests that matched no route.
pub static UNMATCHED: Lazy<RouteMetrics> = Lazy::new(|| RouteMetrics::new("unmatched"));

impl RouteMetrics {
    pub fn new(route: &str) -> Self {
        RouteMetrics {
            route: route.to_string(),
            duration: OnceCell::new(),
            requests: CounterGrid::new(|m| &m.requests, Some(route), &METHODS, &STATUS_CLASSES),
            responses: OnceCell::new(),
        }
    }

    /// Counts one answered request and its duration. `status` 0: no response was sent.
    pub fn observe(&self, method: &Method, status: u16, elapsed: Duration) {
        let (requests, responses, duration) = self.series(method, status);
        requests.inc();
        responses.inc();
        duration.observe(elapsed.as_secs_f64());
    }

    /// The series a request with `method` answered `status` counts in, made on first use.
    fn series(&self, method: &Method, status: u16) -> (&IntCounter, &IntCounter, &Histogram) {
        let (m, c) = (method_index(method), status_class_index(status));
        let requests = self.requests.get(m, c);
        let code = if usize::from(status) < STATUS_CODES {
            status
        } else {
            0
        };
        let responses = self
            .responses
            .get_or_init(|| (0..STATUS_CODES).map(|_| OnceCell::new()).collect());
        let responses = responses[usize::from(code)].get_or_init(|| {
            let mut text = itoa::Buffer::new();
            METRICS
                .responses
                .with_label_values(&[&self.route, text.format(code)])
        });
        let duration = self
            .duration
            .get_or_init(|| METRICS.request_duration.with_label_values(&[&self.route]));
        (requests, responses, duration)
    }
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn status_class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series a file warrants are made on its load, and those of what the next load
    /// took away (a feature or a policy) are removed.
    #[test]
    fn series_follow_what_the_configuration_counts() {
        use crate::config::testing::file;
        let exported = |name: &str| String::from_utf8(METRICS.render()).unwrap().contains(name);
        let first = file(
            "upstreams: { pres: { targets: [\"127.0.0.1:1\"] } }\n\
             rate_limiting: { policies: { pres-policy: { limit: 1, window: 1s, key: [client], block: { after: 2, duration: 1m } } } }\n\
             routes: [{ name: pres-route, match: { path: /p }, upstream: pres, public: true, rate_limits: [pres-policy] }]",
        );
        METRICS.present(&first);
        let blocks = r#"usher_ratelimit_blocks_total{policy="pres-policy"} 0"#;
        let errors = r#"usher_upstream_errors_total{kind="connect_refused",upstream="pres"} 0"#;
        let decided = r#"usher_ratelimit_decisions_total{policy="pres-policy",result="limited",store="local"} 0"#;
        assert!(exported(blocks) && exported(errors) && exported(decided));
        let second = file(
            "upstreams: { pres: { targets: [\"127.0.0.1:1\"] } }\n\
             routes: [{ name: pres-route, match: { path: /p }, upstream: pres, public: true }]",
        );
        METRICS.present(&second);
        assert!(
            !exported(blocks) && !exported(decided),
            "a removed policy's series stay"
        );
        assert!(exported(errors));
    }

    #[test]
    fn a_grid_counts_in_the_series_of_its_cell_made_on_first_use() {
        const ROWS: [&str; 2] = ["grid-row-a", "grid-row-b"];
        const COLUMNS: [&str; 3] = ["grid-col-a", "grid-col-b", "grid-col-c"];
        let grid = CounterGrid::new(|m| &m.requests, Some("grid-test-route"), &ROWS, &COLUMNS);
        let exported = |row: &str, column: &str| {
            let series = format!(
                r#"usher_http_requests_total{{method="{row}",route="grid-test-route",status_class="{column}"}}"#
            );
            String::from_utf8(METRICS.render())
                .unwrap()
                .lines()
                .find_map(|line| {
                    line.strip_prefix(&series)
                        .map(|value| value.trim().to_string())
                })
        };
        assert_eq!(exported("grid-row-b", "grid-col-c"), None);
        grid.get(1, 2).inc();
        grid.get(1, 2).inc();
        assert!(std::ptr::eq(grid.get(1, 2), grid.get(1, 2)));
        assert_eq!(exported("grid-row-b", "grid-col-c").as_deref(), Some("2"));
        assert_eq!(
            exported("grid-row-a", "grid-col-c"),
            None,
            "an unused cell exports nothing"
        );
    }

    #[test]
    fn route_metrics_count_by_method_and_status_class() {
        let metrics = RouteMetrics::new("metrics-test-route");
        metrics.observe(&Method::GET, 204, Duration::from_millis(3));
        metrics.observe(&Method::GET, 200, Duration::from_millis(3));
        metrics.observe(&Method::from_bytes(b"PROPFIND").unwrap(), 0, Duration::ZERO);
        let counter = |method: &str, class: &str| {
            METRICS
                .requests
                .with_label_values(&["metrics-test-route", method, class])
                .get()
        };
        assert_eq!(counter("GET", "2xx"), 2);
        assert_eq!(counter("OTHER", "none"), 1);
        assert_eq!(metrics.duration.get().unwrap().get_sample_count(), 3);
        assert_eq!(
            metrics.requests.get(0, 1).get(),
            2,
            "the grid's GET 2xx cell"
        );
    }
}
