//! A reload's carry-over step, in the manner of vector's config diff: a new snapshot is
//! built from a prepared configuration and the running snapshot, taking over every part that
//! would ask the same places as the running one's (with what it learned there) and building
//! the rest. [`Running::build`] returns which it did, and the reload's log line says so.
//!
//! | part | taken over when | what it carries |
//! |---|---|---|
//! | upstream pool | its definition is equal | peers' health, breaker, bulkhead, connections |
//! | shared store (Redis) | its resolved settings are equal | connections, whether Redis answers |
//! | rate-limit counts | with the shared store (or both have none) | the in-process windows |
//! | revocation answers | with the shared store, same key template | answers, for `cache_ttl` / `stale_if_error` |
//! | issuer key set | same JWKS URL | the fetched set and its refresh schedule |
//! | user-status and venue answers | same URL template | cached answers |
//! | idempotency records, approvals, webhook deliveries | always (this process's) | keys in flight and the answers kept; approvals and deliveries kept in process (without Redis) |
//!
//! Files (keys, API keys, revoked ids) are always read anew. So a reload during a
//! dependency's outage does not forget what made requests pass before it.

use crate::prepare::Prepared;
use crate::ratelimit::Limiter;
use crate::security::Security;
use crate::snapshot::{Live, Snapshot};
use crate::store::SharedStore;
use crate::telemetry::metrics::METRICS;
use crate::upstream::Pool;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};

/// How long a new shared store waits for Redis before its configuration goes live without.
const REDIS_CONNECT_WAIT: Duration = Duration::from_secs(2);
/// Upstream names a log line lists before it only counts the rest.
const NAMES_LISTED: usize = 20;

/// One part of a snapshot that may be carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Upstream(Arc<str>),
    SharedStore,
    RateLimitCounts,
    RevocationAnswers,
    KeySet,
    UserStatusAnswers,
    VenueAnswers,
    KeptRecords,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Upstream(name) => return write!(f, "upstream {name}"),
            Part::SharedStore => "shared store",
            Part::RateLimitCounts => "rate-limit counts",
            Part::RevocationAnswers => "revocation answers",
            Part::KeySet => "key set",
            Part::UserStatusAnswers => "user-status answers",
            Part::VenueAnswers => "venue answers",
            Part::KeptRecords => "idempotency records, approvals, webhook deliveries",
        })
    }
}

/// What a new snapshot took over from the running one, and what it built.
#[derive(Debug, Default)]
pub struct CarryOver {
    pub reused: Vec<Part>,
    pub built: Vec<Part>,
}

impl CarryOver {
    fn note(&mut self, part: Part, reused: bool) {
        if reused {
            self.reused.push(part);
        } else {
            self.built.push(part);
        }
    }

    /// `reused` or `built`, for a log line: other parts by name, upstreams by name up to
    /// a few, then counted.
    pub fn describe(parts: &[Part]) -> String {
        let upstreams: Vec<&Part> = parts
            .iter()
            .filter(|p| matches!(p, Part::Upstream(_)))
            .collect();
        let mut words: Vec<String> = parts
            .iter()
            .filter(|p| !matches!(p, Part::Upstream(_)))
            .map(Part::to_string)
            .collect();
        words.extend(upstreams.iter().take(NAMES_LISTED).map(|p| p.to_string()));
        if upstreams.len() > NAMES_LISTED {
            words.push(format!("{} more upstreams", upstreams.len() - NAMES_LISTED));
        }
        words.join(", ")
    }
}

/// What outlives a snapshot: the pools and their background tasks, keyed by upstream name.
pub struct Running {
    /// For the Redis probe, which follows the settings in force.
    live: Arc<Live>,
    pools: HashMap<String, (Arc<Pool>, JoinHandle<()>)>,
    /// Pools replaced or removed by the last snapshot, stopped once it is published.
    retired: Vec<(Arc<Pool>, JoinHandle<()>)>,
    /// Upstreams the last snapshot removed: their series go once their tasks are stopped
    /// (a health check still running could write them again).
    removed: Vec<String>,
}

impl Running {
    pub fn new(live: Arc<Live>) -> Self {
        Running {
            live,
            pools: HashMap::new(),
            retired: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// The snapshot for `prepared`, taking over from `previous` what it can.
    pub async fn build(
        &mut self,
        version: u64,
        mut prepared: Prepared,
        previous: Option<&Snapshot>,
    ) -> (Snapshot, CarryOver) {
        let mut carried = CarryOver::default();
        take_over_answers(
            &mut prepared.security,
            previous.map(|p| &*p.security),
            &mut carried,
        );
        // The issuer's key set is fetched (unless taken over) before the configuration goes
        // live.
        if let Some(jwks) = prepared.security.jwt.as_ref().and_then(|jwt| jwt.jwks()) {
            jwks.start().await;
        }
        let pools = self.pools(&prepared, &mut carried).await;
        let (limiter, store_reused) = self.limiter(&prepared, previous, &mut carried).await;
        if let Some(mine) = prepared.security.revocation.as_mut() {
            let theirs = previous.and_then(|p| p.security.revocation.as_ref());
            let reused = store_reused && theirs.is_some_and(|theirs| mine.inherit(theirs));
            carried.note(Part::RevocationAnswers, reused);
        }
        let kept = previous.map(|p| p.kept.clone()).unwrap_or_default();
        carried.note(Part::KeptRecords, previous.is_some());
        (
            Snapshot::new(version, prepared, pools, limiter, kept),
            carried,
        )
    }

    /// Each upstream's pool: the running one when its definition did not change, else a new
    /// one, resolved and health-checked before it is used.
    async fn pools(&mut self, prepared: &Prepared, carried: &mut CarryOver) -> Vec<Arc<Pool>> {
        let config = &prepared.config;
        let mut fresh = JoinSet::new();
        for spec in &config.upstreams {
            let unchanged = self
                .pools
                .get(&*spec.name)
                .is_some_and(|(pool, _)| pool.spec == *spec);
            carried.note(Part::Upstream(Arc::clone(&spec.name)), unchanged);
            if !unchanged {
                let pool = Pool::new(spec.clone());
                fresh.spawn(async move {
                    pool.refresh().await;
                    pool.check_health().await;
                    pool
                });
            }
        }
        while let Some(prepared) = fresh.join_next().await {
            let pool = prepared.expect("preparing a pool does not panic");
            let task = tokio::spawn(Arc::clone(&pool).maintain());
            if let Some(old) = self.pools.insert(pool.name().to_string(), (pool, task)) {
                self.retired.push(old);
            }
        }
        let wanted: HashSet<&str> = config.upstreams.iter().map(|u| &*u.name).collect();
        let removed: Vec<String> = self
            .pools
            .keys()
            .filter(|name| !wanted.contains(name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(old) = self.pools.remove(&name) {
                self.retired.push(old);
                self.removed.push(name);
            }
        }
        config
            .upstreams
            .iter()
            .map(|spec| Arc::clone(&self.pools[&*spec.name].0))
            .collect()
    }

    /// The running rate-limit stores while the shared store's settings are unchanged
    /// (counts survive the reload), else new ones; and whether they were taken over.
    async fn limiter(
        &self,
        prepared: &Prepared,
        previous: Option<&Snapshot>,
        carried: &mut CarryOver,
    ) -> (Arc<Limiter>, bool) {
        if let Some(previous) = previous {
            let running = previous.store.as_ref().map(|store| store.settings());
            if running == prepared.redis.as_ref() {
                if previous.store.is_some() {
                    carried.note(Part::SharedStore, true);
                }
                carried.note(Part::RateLimitCounts, true);
                return (Arc::clone(&previous.limiter), true);
            }
        }
        let store = match &prepared.redis {
            Some(settings) => self.connect(settings, prepared).await,
            None => None,
        };
        if store.is_some() {
            carried.note(Part::SharedStore, false);
        }
        carried.note(Part::RateLimitCounts, false);
        (Arc::new(Limiter::new(store)), false)
    }

    /// A new shared store, given a moment to connect, with its probe.
    async fn connect(
        &self,
        settings: &crate::store::redis::RedisSettings,
        prepared: &Prepared,
    ) -> Option<Arc<SharedStore>> {
        let store = match SharedStore::connect(settings.clone()) {
            Ok(store) => Arc::new(store),
            Err(error) => {
                tracing::error!(%error, "cannot set up the Redis client; rate limits are counted in this process only");
                return None;
            }
        };
        if store.wait_connected(REDIS_CONNECT_WAIT).await {
            tracing::info!(url = %settings.url, "rate-limit store: Redis, connected");
        } else {
            tracing::warn!(url = %settings.url, "rate-limit store: Redis, not reachable yet; policies use their fallback until it is");
        }
        if let Some(first) = &prepared.config.rate_limiting.redis {
            // The settings in force, once this configuration (or a later one) is live.
            let live = Arc::clone(&self.live);
            let first = (first.retry_interval, first.timeout);
            let spec = move || {
                let snapshot = live.current();
                let redis = snapshot
                    .as_ref()
                    .and_then(|s| s.config.rate_limiting.redis.as_ref());
                redis.map_or(first, |redis| (redis.retry_interval, redis.timeout))
            };
            tokio::spawn(SharedStore::probe_while_down(Arc::downgrade(&store), spec));
        }
        Some(store)
    }

    /// Stops the tasks of the pools the last snapshot no longer uses; their metric series
    /// go with them.
    pub async fn stop_unused(&mut self) {
        for (pool, task) in self.retired.drain(..) {
            task.abort();
            // Wait for it to end, so nothing writes the pool's series after they go.
            let _ = task.await;
            tracing::info!(
                upstream = pool.name(),
                "stopped a pool that the new configuration no longer uses"
            );
        }
        let removed: HashSet<&str> = self.removed.iter().map(String::as_str).collect();
        METRICS.forget_upstreams(&removed);
        self.removed.clear();
    }

    pub async fn stop_all(&mut self) {
        self.stop_unused().await;
        for (_, (_, task)) in self.pools.drain() {
            task.abort();
        }
    }
}

/// What the running configuration fetched or was told by other services, where this one
/// asks the same places: the issuer's key set and the user-status and venue answers.
fn take_over_answers(
    security: &mut Security,
    previous: Option<&Security>,
    carried: &mut CarryOver,
) {
    let key_set = |security: &Security| security.jwt.as_ref().and_then(|jwt| jwt.jwks().cloned());
    if let Some(jwks) = key_set(security) {
        let running = previous.and_then(key_set);
        let reused = running.is_some_and(|running| jwks.inherit(&running));
        carried.note(Part::KeySet, reused);
    }
    for (part, mine, theirs) in [
        (
            Part::UserStatusAnswers,
            &mut security.user_status,
            previous.and_then(|p| p.user_status.as_ref()),
        ),
        (
            Part::VenueAnswers,
            &mut security.venue_access,
            previous.and_then(|p| p.venue_access.as_ref()),
        ),
    ] {
        if let Some(mine) = mine {
            let reused = theirs.is_some_and(|theirs| mine.inherit(theirs));
            carried.note(part, reused);
        }
    }
}
