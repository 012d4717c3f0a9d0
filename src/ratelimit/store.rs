//! Where decisions are made: Redis when configured and healthy, this process otherwise.
//!
//! A small breaker guards Redis: after `failure_threshold` consecutive failed calls the
//! store is marked down and no request waits on it; every `retry_interval` one request tries
//! it again, as does a background probe ([`Limiter::probe_while_down`]), and the first
//! success marks it up. Each transition is logged once and shown in
//! `usher_ratelimit_fallback_active` and `/health`. While it is down each policy does what its
//! `on_store_failure` says.

use super::local::LocalStore;
use super::redis::{RedisSettings, RedisStore, StoreError};
use super::window::{Decision, Rule};
use crate::config::{RedisSpec, StoreFailure};
use crate::telemetry::metrics::METRICS;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

/// What a store said about one request under one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Decided {
        decision: Decision,
        store: StoreKind,
        /// The limit applied: the policy's for the caller's tier, or the fallback share.
        limit: u32,
        /// Where the admitted request was logged, to give it back if another policy
        /// refuses the request.
        receipt: Receipt,
    },
    /// The shared store is down and the policy fails open.
    Unlimited,
    /// The shared store is down and the policy fails closed.
    Unavailable,
}

/// Which entry a decision logged: an arrival time in this process, or a member in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    Local(u64),
    Redis(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Redis,
    Local,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Redis => "redis",
            StoreKind::Local => "local",
        }
    }
}

/// The stores one process uses. Kept across reloads while the Redis settings stay the same,
/// so counts (and remembered key lookups) survive a configuration change.
pub struct Limiter {
    local: LocalStore,
    shared: Option<Shared>,
    /// Answers of [`Limiter::key_exists`], by key: found or not, and when.
    lookups: Mutex<HashMap<String, (bool, Instant)>>,
}

/// What [`Limiter::key_exists`] learned about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// No Redis is configured.
    NoStore,
    /// Redis answered now.
    Fresh(bool),
    /// Redis answered within `fresh_for`.
    Cached(bool),
    /// Redis cannot answer; it answered within `stale_for`.
    Stale(bool),
    Unavailable,
}

/// Remembered lookups beyond this drop those past any use, or all of them.
const MAX_LOOKUPS: usize = 100_000;

struct Shared {
    redis: RedisStore,
    failures: AtomicU32,
    down: AtomicBool,
    /// While down: microseconds since `epoch` before which no call is tried.
    next_try: AtomicU64,
    epoch: Instant,
}

impl Limiter {
    pub fn local_only() -> Limiter {
        Limiter {
            local: LocalStore::default(),
            shared: None,
            lookups: Mutex::default(),
        }
    }

    /// Starts connecting to Redis in the background; never waits for it.
    pub fn with_redis(settings: RedisSettings) -> Result<Limiter, String> {
        Ok(Limiter {
            local: LocalStore::default(),
            shared: Some(Shared {
                redis: RedisStore::connect(settings)?,
                failures: AtomicU32::new(0),
                down: AtomicBool::new(false),
                next_try: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
            lookups: Mutex::default(),
        })
    }

    /// Waits up to `limit` for Redis's first connection; true without Redis.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        match &self.shared {
            Some(shared) => shared.redis.wait_connected(limit).await,
            None => true,
        }
    }

    pub fn redis_settings(&self) -> Option<&RedisSettings> {
        self.shared.as_ref().map(|s| s.redis.settings())
    }

    /// Whether Redis is configured and currently marked down.
    pub fn fallback_active(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.down.load(Ordering::Relaxed))
    }

    /// Buckets held by the in-process store.
    pub fn local_buckets(&self) -> usize {
        self.local.bucket_count()
    }

    /// While Redis is marked down, asks it every `retry_interval` (with its `timeout`, both
    /// from `spec()`, the settings in force) whether it answers again, so the fallback ends,
    /// and `usher_ratelimit_fallback_active` says so, without waiting for a request to try
    /// it: an idle replica would otherwise report the fallback long after Redis is back.
    /// Ends when the limiter is dropped (no configuration uses it any more).
    pub async fn probe_while_down(limiter: Weak<Limiter>, spec: impl Fn() -> (Duration, Duration)) {
        loop {
            let (interval, timeout) = spec();
            tokio::time::sleep(interval).await;
            let Some(limiter) = limiter.upgrade() else {
                return;
            };
            let Some(shared) = &limiter.shared else {
                return;
            };
            if shared.down.load(Ordering::Relaxed) && shared.redis.ping(timeout).await.is_ok() {
                shared.succeeded();
            }
        }
    }

    /// `None` without Redis; else whether it answers a PING within `limit`.
    pub async fn ping(&self, limit: Duration) -> Option<Result<(), String>> {
        match &self.shared {
            Some(shared) => Some(shared.redis.ping(limit).await),
            None => None,
        }
    }

    /// Counts one request against `bucket` under `rule`. `spec` carries the fallback
    /// settings of the configuration in force.
    pub async fn decide(
        &self,
        bucket: &str,
        rule: &Rule,
        spec: Option<&RedisSpec>,
        on_failure: StoreFailure,
    ) -> Verdict {
        let (Some(shared), Some(spec)) = (&self.shared, spec) else {
            let (decision, at) = self.decide_locally(bucket, rule);
            return Verdict::Decided {
                decision,
                store: StoreKind::Local,
                limit: rule.limit,
                receipt: Receipt::Local(at),
            };
        };
        if shared.may_try(spec) {
            let started = Instant::now();
            let result = shared.redis.decide(bucket, rule).await;
            METRICS
                .ratelimit_store_duration
                .with_label_values(&["redis"])
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok((decision, member)) => {
                    shared.succeeded();
                    return Verdict::Decided {
                        decision,
                        store: StoreKind::Redis,
                        limit: rule.limit,
                        receipt: Receipt::Redis(member),
                    };
                }
                Err(error) => shared.failed(spec, &error),
            }
        } else {
            METRICS
                .ratelimit_store_errors
                .with_label_values(&["circuit_open"])
                .inc();
        }
        match on_failure {
            StoreFailure::Open => Verdict::Unlimited,
            StoreFailure::Closed => Verdict::Unavailable,
            StoreFailure::Local => {
                let share = Rule {
                    // The epsilon keeps 6 × 0.3333… from rounding down to 1; a share below
                    // one request still admits one (documented).
                    limit: ((f64::from(rule.limit) * spec.fallback_share + 1e-6).floor() as u32)
                        .max(1),
                    ..*rule
                };
                let (decision, at) = self.decide_locally(bucket, &share);
                Verdict::Decided {
                    decision,
                    store: StoreKind::Local,
                    limit: share.limit,
                    receipt: Receipt::Local(at),
                }
            }
        }
    }

    /// Whether `key` exists in Redis, behind the same breaker as decisions (it is the same
    /// Redis). An answer is reused for `fresh_for`, and while Redis cannot answer, for
    /// `stale_for`.
    pub async fn key_exists(
        &self,
        key: &str,
        spec: Option<&RedisSpec>,
        fresh_for: Duration,
        stale_for: Duration,
    ) -> Lookup {
        let (Some(shared), Some(spec)) = (&self.shared, spec) else {
            return Lookup::NoStore;
        };
        if let Some(found) = self.remembered(key, fresh_for) {
            return Lookup::Cached(found);
        }
        let answer = if shared.may_try(spec) {
            match shared.redis.exists(key).await {
                Ok(found) => {
                    shared.succeeded();
                    Some(found)
                }
                Err(error) => {
                    shared.failed(spec, &error);
                    None
                }
            }
        } else {
            None
        };
        let Some(found) = answer else {
            return self
                .remembered(key, stale_for)
                .map_or(Lookup::Unavailable, Lookup::Stale);
        };
        let mut lookups = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
        if lookups.len() >= MAX_LOOKUPS {
            lookups.retain(|_, (_, at)| at.elapsed() < stale_for.max(fresh_for));
            if lookups.len() >= MAX_LOOKUPS {
                lookups.clear();
            }
        }
        lookups.insert(key.to_string(), (found, Instant::now()));
        Lookup::Fresh(found)
    }

    fn remembered(&self, key: &str, max_age: Duration) -> Option<bool> {
        let lookups = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
        let (found, at) = lookups.get(key)?;
        (at.elapsed() < max_age).then_some(*found)
    }

    /// Forgets an admitted request that another policy refused, so it does not use up this
    /// policy's quota. Best effort: if Redis cannot take it now, the entry ages out with its
    /// window.
    pub async fn give_back(&self, bucket: &str, receipt: Receipt) {
        match (receipt, &self.shared) {
            (Receipt::Local(at), _) => self.local.give_back(bucket, at),
            (Receipt::Redis(member), Some(shared)) => {
                if let Err(error) = shared.redis.give_back(bucket, member).await {
                    METRICS
                        .ratelimit_store_errors
                        .with_label_values(&[error.kind()])
                        .inc();
                }
            }
            (Receipt::Redis(_), None) => {}
        }
    }

    fn decide_locally(&self, bucket: &str, rule: &Rule) -> (Decision, u64) {
        let started = Instant::now();
        let decision = self.local.decide(bucket, rule);
        METRICS
            .ratelimit_store_duration
            .with_label_values(&["local"])
            .observe(started.elapsed().as_secs_f64());
        decision
    }
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Up: always. Down: one caller per `retry_interval`.
    fn may_try(&self, spec: &RedisSpec) -> bool {
        if !self.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.now();
        let next = self.next_try.load(Ordering::Relaxed);
        now >= next
            && self
                .next_try
                .compare_exchange(
                    next,
                    now + spec.retry_interval.as_micros() as u64,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.down.swap(false, Ordering::AcqRel) {
            METRICS.ratelimit_fallback_active.set(0);
            tracing::warn!(
                "rate-limit store (Redis) answers again; shared limits are back in force"
            );
        }
    }

    fn failed(&self, spec: &RedisSpec, error: &StoreError) {
        METRICS
            .ratelimit_store_errors
            .with_label_values(&[error.kind()])
            .inc();
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= spec.failure_threshold {
            self.next_try.store(
                self.now() + spec.retry_interval.as_micros() as u64,
                Ordering::Relaxed,
            );
            if !self.down.swap(true, Ordering::AcqRel) {
                METRICS.ratelimit_fallback_active.set(1);
                tracing::error!(
                    error = ?error,
                    failures,
                    "rate-limit store (Redis) is not answering; policies use their fallback until it does"
                );
            }
        }
    }
}
