//! Rate limiting and overload shedding, after authentication (limits are keyed by the
//! verified identity) and before anything that spends upstream capacity.
//!
//! - [`key`]: which bucket a request counts against, built so it cannot be evaded.
//! - [`window`]: the algorithm (sliding-window log), shared by both stores.
//! - [`store`]: the shared Redis (`crate::store`) through the window script of
//!   `shared_window`, with the in-process store as fallback or as the only store when no
//!   Redis is configured.
//! - [`headers`]: the IETF `RateLimit-Policy` / `RateLimit` fields.
//! - [`shedding`]: lower tiers first when Usher or an upstream is near capacity.
//! - [`budget`]: policies that count an amount from the body, decided once it is in.
//!
//! A request counts against every policy on its route; they are asked concurrently, one
//! store call each. When one policy refuses, the others that admitted the request give
//! their entry back (one more store call each, on the refusal path only), so a refusal
//! never uses up another policy's quota.

pub mod budget;
pub mod headers;
pub mod key;
mod local;
mod member;
mod shared_window;
pub mod shedding;
pub mod store;
pub mod window;

pub use store::{Limiter, StoreKind, Verdict};

use crate::config::{PolicySpec, RateLimiting, RouteSpec};
use crate::security::events::Severity;
use crate::telemetry::metrics::{labels, CounterGrid, METRICS};
use key::KeySource;
use std::sync::Arc;
use std::time::Duration;
use window::{Block, Rule};

/// One policy's standing for this caller after this request, for the response headers.
#[derive(Debug, Clone)]
pub struct Quota {
    pub policy: Arc<str>,
    /// The limit in force for this caller (tier and fallback share applied).
    pub limit: u32,
    pub window: Duration,
    pub remaining: u32,
    /// Admitted: until a counted request leaves the window. Refused: until one would pass.
    pub reset: Duration,
}

#[derive(Debug, Clone)]
pub enum Admission {
    Admitted(Vec<Quota>),
    Limited {
        quotas: Vec<Quota>,
        retry_after: Duration,
    },
    /// A policy failing closed could not be decided.
    Unavailable {
        retry_after: Duration,
    },
}

/// A policy's `usher_ratelimit_decisions_total` counters, by result (a [`Ruling`]) and store.
pub type Decisions =
    CounterGrid<{ labels::RATELIMIT_RESULTS.len() }, { labels::RATELIMIT_STORES.len() }>;

/// `policy`'s decision counters, each made on first use.
pub fn decisions(policy: &PolicySpec) -> Decisions {
    CounterGrid::new(
        |m| &m.ratelimit_decisions,
        Some(&policy.name),
        &labels::RATELIMIT_RESULTS,
        &labels::RATELIMIT_STORES,
    )
}

/// What a policy made of a request: the position of its name in
/// [`labels::RATELIMIT_RESULTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ruling {
    Allowed = 0,
    Limited = 1,
    Blocked = 2,
    /// Let through uncounted: the store was down and the policy fails open.
    Unlimited = 3,
    /// Refused uncounted: the store was down and the policy fails closed.
    Unavailable = 4,
}

/// The limit `policy` sets for a caller of tier `multiplier`.
pub fn effective_limit(policy: &PolicySpec, multiplier: f64) -> u32 {
    if !policy.tiered {
        return policy.limit;
    }
    ((f64::from(policy.limit) * multiplier).round() as u32).max(1)
}

/// Counts the request against every policy of `route`, each decision in `decisions`
/// (indexed like `config.policies`). `event` records security events.
pub async fn admit(
    limiter: &Limiter,
    config: &RateLimiting,
    decisions: &[Decisions],
    route: &RouteSpec,
    source: &KeySource<'_>,
    multiplier: f64,
    event: &(dyn Fn(&'static str, Severity) + Sync),
) -> Admission {
    let counted = route.rate_limits.iter().filter(|attached| {
        // Budgets count the body's amount, once the body is in (`budget`).
        config.policies[attached.policy].amount.is_none()
    });
    let checks = counted.map(|attached| {
        let policy = &config.policies[attached.policy];
        let bucket = key::bucket_key(policy, attached, source);
        let rule = Rule {
            limit: effective_limit(policy, multiplier),
            window_us: policy.window.as_micros() as u64,
            block_after: policy.block.map_or(0, |b| b.after),
            block_us: policy.block.map_or(0, |b| b.duration.as_micros() as u64),
        };
        async move {
            let verdict = limiter
                .decide(
                    &bucket,
                    &rule,
                    config.redis.as_ref(),
                    policy.on_store_failure,
                )
                .await;
            (attached.policy, bucket, verdict)
        }
    });
    let verdicts = futures_util::future::join_all(checks).await;
    let mut quotas = Vec::with_capacity(verdicts.len());
    let mut retry_after: Option<Duration> = None;
    let mut unavailable = false;
    // Policies that admitted the request: their bucket, receipt and quota's index.
    let mut admitted = Vec::new();
    for (index, bucket, verdict) in verdicts {
        let policy = &config.policies[index];
        let name = &*policy.name;
        let (ruling, store) = match verdict {
            Verdict::Unlimited => (Ruling::Unlimited, store::NO_STORE),
            Verdict::Unavailable => {
                unavailable = true;
                (Ruling::Unavailable, store::NO_STORE)
            }
            Verdict::Decided {
                decision,
                store,
                limit,
                receipt,
            } => {
                if decision.allowed {
                    admitted.push((bucket, receipt, quotas.len()));
                }
                let reset = Duration::from_micros(decision.wait_us);
                quotas.push(Quota {
                    policy: Arc::clone(&policy.name),
                    limit,
                    window: policy.window,
                    remaining: decision.remaining,
                    reset,
                });
                if !decision.allowed {
                    retry_after = Some(retry_after.map_or(reset, |r| r.max(reset)));
                    if decision.block == Block::Started {
                        METRICS.ratelimit_blocks.with_label_values(&[name]).inc();
                        event("rate_limit_blocked", Severity::Medium);
                    }
                    if policy
                        .bot_after
                        .is_some_and(|n| decision.rejections == n + 1)
                    {
                        METRICS
                            .ratelimit_bot_signals
                            .with_label_values(&[name])
                            .inc();
                        event("rate_limit_bot_suspected", Severity::High);
                    }
                }
                let ruling = match (decision.allowed, decision.block) {
                    (true, _) => Ruling::Allowed,
                    (false, Block::None) => Ruling::Limited,
                    (false, _) => Ruling::Blocked,
                };
                (ruling, store as usize)
            }
        };
        decisions[index].get(ruling as usize, store).inc();
    }
    if unavailable || retry_after.is_some() {
        let give_backs = admitted
            .iter()
            .map(|(bucket, receipt, _)| limiter.give_back(bucket, *receipt));
        futures_util::future::join_all(give_backs).await;
        for (_, _, quota) in &admitted {
            quotas[*quota].remaining += 1;
        }
    }
    if unavailable {
        let retry_after = config
            .redis
            .as_ref()
            .map_or(Duration::from_secs(1), |r| r.retry_interval);
        return Admission::Unavailable { retry_after };
    }
    match retry_after {
        Some(retry_after) => Admission::Limited {
            quotas,
            retry_after,
        },
        None => Admission::Admitted(quotas),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rulings_and_stores_are_counted_under_their_names() {
        let results = labels::RATELIMIT_RESULTS;
        for (ruling, name) in [
            (Ruling::Allowed, "allowed"),
            (Ruling::Limited, "limited"),
            (Ruling::Blocked, "blocked"),
            (Ruling::Unlimited, "unlimited"),
            (Ruling::Unavailable, "unavailable"),
        ] {
            assert_eq!(results[ruling as usize], name);
        }
        let stores = labels::RATELIMIT_STORES;
        assert_eq!(stores[StoreKind::Redis as usize], "redis");
        assert_eq!(stores[StoreKind::Local as usize], "local");
        assert_eq!(stores[store::NO_STORE], "none");
        assert_eq!(labels::RATELIMIT_DECIDED, ["allowed", "limited", "blocked"]);
    }
}
