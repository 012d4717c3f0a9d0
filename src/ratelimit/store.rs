//! Where decisions are made: the shared store (`crate::store`) when configured and
//! answering, this process otherwise. While the shared store is marked down each policy
//! does what its `on_store_failure` says.

use super::budget::Budgets;
use super::local::LocalStore;
use super::shared_window::SharedWindow;
use super::window::{Decision, Rule};
use crate::config::{RedisSpec, StoreFailure};
use crate::store::SharedStore;
use crate::telemetry::metrics::{labels, METRICS};
use once_cell::sync::OnceCell;
use prometheus::Histogram;
use std::sync::Arc;
use std::time::Instant;

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

/// Where a decision was made: the position of its name in
/// [`labels::RATELIMIT_STORES`](crate::telemetry::metrics::labels::RATELIMIT_STORES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Redis = 0,
    Local = 1,
}

/// The store column of a decision that no store made (the store was down).
pub const NO_STORE: usize = 2;

/// `usher_ratelimit_store_duration_seconds` of each store, made on its first decision.
static STORE_DURATION: [OnceCell<Histogram>; 2] = [OnceCell::new(), OnceCell::new()];

fn store_duration(store: StoreKind) -> &'static Histogram {
    STORE_DURATION[store as usize].get_or_init(|| {
        let store = labels::RATELIMIT_STORES[store as usize];
        METRICS.ratelimit_store_duration.with_label_values(&[store])
    })
}

/// The stores one process counts in. Kept across reloads while the shared store is, so
/// counts survive a configuration change.
pub struct Limiter {
    local: LocalStore,
    shared: Option<(Arc<SharedStore>, SharedWindow)>,
    pub budgets: Budgets,
}

impl Limiter {
    /// Counts in `shared` when given (and answering), else in this process.
    pub fn new(shared: Option<Arc<SharedStore>>) -> Limiter {
        Limiter {
            local: LocalStore::default(),
            shared: shared.map(|store| (store, SharedWindow::default())),
            budgets: Budgets::default(),
        }
    }

    /// The shared store this limiter counts in, if any.
    pub fn shared_store(&self) -> Option<&Arc<SharedStore>> {
        self.shared.as_ref().map(|(store, _)| store)
    }

    /// Buckets held by the in-process store.
    pub fn local_buckets(&self) -> usize {
        self.local.bucket_count()
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
        let (Some((store, window)), Some(spec)) = (&self.shared, spec) else {
            let (decision, at) = self.decide_locally(bucket, rule);
            return Verdict::Decided {
                decision,
                store: StoreKind::Local,
                limit: rule.limit,
                receipt: Receipt::Local(at),
            };
        };
        let decided = store
            .guarded(spec, |redis| async move {
                let started = Instant::now();
                let result = window.decide(redis, bucket, rule).await;
                store_duration(StoreKind::Redis).observe(started.elapsed().as_secs_f64());
                result
            })
            .await;
        match decided {
            Some(Ok((decision, member))) => {
                return Verdict::Decided {
                    decision,
                    store: StoreKind::Redis,
                    limit: rule.limit,
                    receipt: Receipt::Redis(member),
                };
            }
            Some(Err(_)) => {}
            None => METRICS
                .ratelimit_store_errors
                .with_label_values(&["circuit_open"])
                .inc(),
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

    /// Forgets an admitted request that another policy refused, so it does not use up this
    /// policy's quota. Best effort: if Redis cannot take it now, the entry ages out with its
    /// window.
    pub async fn give_back(&self, bucket: &str, receipt: Receipt) {
        match (receipt, &self.shared) {
            (Receipt::Local(at), _) => self.local.give_back(bucket, at),
            (Receipt::Redis(member), Some((store, window))) => {
                if let Err(error) = window.give_back(store.unguarded(), bucket, member).await {
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
        store_duration(StoreKind::Local).observe(started.elapsed().as_secs_f64());
        decision
    }
}
