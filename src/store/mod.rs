//! The shared store: the one Redis every replica asks, for rate-limit decisions and
//! revocation lookups alike, so a replica keeps one set of connections and one view of
//! whether Redis answers.
//!
//! - [`redis`]: the connections (one per worker thread), each call within the deadline.
//! - [`SharedStore`]: those connections behind a small breaker. After `failure_threshold`
//!   consecutive failed calls (of any kind; any success resets the count) Redis is marked
//!   down and no request waits on it; every `retry_interval` one request tries it again, as
//!   does a background probe ([`SharedStore::probe_while_down`]), and the first success
//!   marks it up. Each transition is logged once and shown in
//!   `usher_ratelimit_fallback_active` and `/health`. What a caller does while it is down
//!   (the in-process fallback of a rate limit, a stale revocation answer) is the caller's.

pub mod redis;

use crate::config::RedisSpec;
use crate::telemetry::metrics::{labels, METRICS};
use redis::{Redis, RedisSettings, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Weak;
use std::time::{Duration, Instant};

/// Where a request's records live (idempotency keys, budgets, approvals): the shared Redis
/// when the configuration has one, this process when it has none.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    Local,
    Shared(&'a SharedStore, &'a RedisSpec),
    /// Redis is configured but its client could not be set up: nothing can be recorded.
    Missing,
}

impl<'a> Place<'a> {
    pub fn of(snapshot: &'a crate::snapshot::Snapshot) -> Self {
        match (&snapshot.store, &snapshot.config.rate_limiting.redis) {
            (Some(store), Some(spec)) => Place::Shared(store, spec),
            (None, None) => Place::Local,
            _ => Place::Missing,
        }
    }
}

pub struct SharedStore {
    redis: Redis,
    failures: AtomicU32,
    down: AtomicBool,
    /// While down: microseconds since `epoch` before which no call is tried.
    next_try: AtomicU64,
    epoch: Instant,
}

impl SharedStore {
    /// Starts connecting to Redis in the background; never waits for it.
    pub fn connect(settings: RedisSettings) -> Result<SharedStore, String> {
        Ok(SharedStore {
            redis: Redis::connect(settings)?,
            failures: AtomicU32::new(0),
            down: AtomicBool::new(false),
            next_try: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    pub fn settings(&self) -> &RedisSettings {
        self.redis.settings()
    }

    /// Whether Redis is currently marked down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Waits up to `limit` for Redis's first connection.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        self.redis.wait_connected(limit).await
    }

    /// Whether Redis answers a PING within `limit`.
    pub async fn ping(&self, limit: Duration) -> Result<(), String> {
        self.redis.ping(limit).await
    }

    /// Runs `call` on Redis if the breaker lets it (always while up; one caller per
    /// `retry_interval` while down) and records how it went. `None`: not tried.
    pub async fn guarded<'a, T, F, Fut>(
        &'a self,
        spec: &RedisSpec,
        call: F,
    ) -> Option<Result<T, StoreError>>
    where
        F: FnOnce(&'a Redis) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + 'a,
    {
        if !self.may_try(spec) {
            return None;
        }
        let result = call(&self.redis).await;
        match &result {
            Ok(_) => self.succeeded(),
            Err(error) => self.failed(spec, error),
        }
        Some(result)
    }

    /// Redis without the breaker, for best-effort clean-up (giving back a counted entry)
    /// whose failure must not count against Redis.
    pub fn unguarded(&self) -> &Redis {
        &self.redis
    }

    /// While Redis is marked down, asks it every `retry_interval` (with its `timeout`, both
    /// from `spec()`, the settings in force) whether it answers again, so the fallback ends,
    /// and `usher_ratelimit_fallback_active` says so, without waiting for a request to try
    /// it: an idle replica would otherwise report the fallback long after Redis is back.
    /// Ends when the store is dropped (no configuration uses it any more).
    pub async fn probe_while_down(
        store: Weak<SharedStore>,
        spec: impl Fn() -> (Duration, Duration),
    ) {
        loop {
            let (interval, timeout) = spec();
            tokio::time::sleep(interval).await;
            let Some(store) = store.upgrade() else {
                return;
            };
            if store.is_down() && store.redis.ping(timeout).await.is_ok() {
                store.succeeded();
            }
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

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
        labels::check(
            "ratelimit_store_errors",
            &labels::STORE_ERRORS,
            error.kind(),
        );
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
