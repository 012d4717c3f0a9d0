//! The budget stage, once the body is in: each budget on the route (a rate-limit policy
//! with an `amount`) reads its amount from the JSON body, refuses more than its per-request
//! cap (422), and spends it from the caller's bucket before the request goes upstream
//! (429 when not enough is left; 503 while the shared store cannot answer: budgets fail
//! closed). What was spent is given back when the request does not happen: another budget
//! refused it here, or [`did_not_happen`] says so of how it ended (see the phase chart in
//! `proxy/mod.rs` for when that is decided).

use crate::config::{AmountSpec, Measure, PolicySpec, RouteLimit, RouteSpec};
use crate::ratelimit::budget::{Ask, Receipt, Spend};
use crate::ratelimit::key::{self, KeySource};
use crate::ratelimit::Quota;
use crate::respond::Rejection;
use crate::snapshot::Snapshot;
use crate::store::Place;
use crate::telemetry::metrics::{labels, METRICS};
use std::sync::Arc;

/// An amount spent on a request that is on its way, to give back if it does not happen.
#[derive(Debug)]
pub struct Spent {
    policy: Arc<str>,
    receipt: Receipt,
    amount: u64,
}

/// The amount `document` holds where `spec` says (422 when it does not).
pub fn amount_in(spec: &AmountSpec, document: &serde_json::Value) -> Result<u64, Rejection> {
    let found = document.pointer(&spec.pointer);
    let (amount, what) = match spec.measure {
        Measure::Length => (
            found.and_then(|v| v.as_array()).map(|a| a.len() as u64),
            "an array",
        ),
        Measure::Number => (found.and_then(|v| v.as_u64()), "a non-negative integer"),
    };
    amount.ok_or_else(|| Rejection::AmountInvalid {
        pointer: spec.pointer.clone(),
        what,
    })
}

/// The amount `document` asks of `policy`, within its per-request cap, and never more than
/// its whole limit (which could never be granted).
fn amount_of(policy: &PolicySpec, document: &serde_json::Value) -> Result<u64, Rejection> {
    let Some(spec) = &policy.amount else {
        return Ok(0);
    };
    let amount = amount_in(spec, document)?;
    let cap = spec
        .max_per_request
        .unwrap_or(policy.limit)
        .min(policy.limit);
    if amount > u64::from(cap) {
        return Err(Rejection::AmountOverCap {
            policy: Arc::clone(&policy.name),
            cap,
        });
    }
    Ok(amount)
}

/// A request's amount under one budget of its route.
pub struct Measured<'a> {
    attached: &'a RouteLimit,
    policy: &'a Arc<PolicySpec>,
    amount: u64,
}

fn count(policy: &PolicySpec, outcome: &str) {
    labels::check("budget_requests", &labels::BUDGET_REQUESTS, outcome);
    METRICS
        .budget_requests
        .with_label_values(&[&policy.name, outcome])
        .inc();
}

/// The amounts the request asks of each budget on `route`: 422 when the body does not hold
/// one or asks for more than a cap. Checked before anything is approved or spent.
pub fn measure<'a>(
    snapshot: &'a Snapshot,
    route: &'a RouteSpec,
    document: Option<&serde_json::Value>,
) -> Result<Vec<Measured<'a>>, Rejection> {
    let Some(document) = document.filter(|_| route.has_budgets) else {
        return Ok(Vec::new());
    };
    let config = &snapshot.config.rate_limiting;
    let mut measured = Vec::new();
    for attached in &route.rate_limits {
        let policy = &config.policies[attached.policy];
        if policy.amount.is_none() {
            continue;
        }
        let amount = amount_of(policy, document).inspect_err(|refusal| {
            let outcome = match refusal {
                Rejection::AmountOverCap { .. } => "over_cap",
                _ => "invalid",
            };
            count(policy, outcome);
        })?;
        measured.push(Measured {
            attached,
            policy,
            amount,
        });
    }
    Ok(measured)
}

/// Spends what [`measure`] found from every budget, or none of them. `quotas` gets each
/// budget's standing, for the `RateLimit` fields.
pub async fn spend(
    snapshot: &Snapshot,
    measured: Vec<Measured<'_>>,
    source: &KeySource<'_>,
    quotas: &mut Vec<Quota>,
) -> Result<Vec<Spent>, Rejection> {
    if measured.is_empty() {
        return Ok(Vec::new());
    }
    let config = &snapshot.config.rate_limiting;
    let asks: Vec<_> = measured
        .iter()
        .map(|m| {
            (
                key::bucket_key(m.policy, m.attached, source),
                m.policy,
                m.amount,
            )
        })
        .collect();
    let at = Place::of(snapshot);
    let decided = futures_util::future::join_all(asks.iter().map(|(bucket, policy, amount)| {
        let ask = Ask {
            limit: u64::from(policy.limit),
            window: policy.window,
            amount: *amount,
        };
        snapshot.limiter.budgets.spend(at, bucket, ask)
    }))
    .await;
    let mut spent = Vec::new();
    let mut refusal = None;
    for ((_, policy, amount), decision) in asks.iter().zip(decided) {
        let quota = |remaining: u64, reset| Quota {
            policy: Arc::clone(&policy.name),
            limit: policy.limit,
            window: policy.window,
            remaining: remaining.min(u64::from(u32::MAX)) as u32,
            reset,
        };
        match decision {
            Spend::Granted {
                remaining,
                reset,
                receipt,
            } => {
                quotas.push(quota(remaining, reset));
                spent.push(Spent {
                    policy: Arc::clone(&policy.name),
                    receipt,
                    amount: *amount,
                });
                count(policy, "spent");
                add_amount(&policy.name, "spent", *amount);
            }
            Spend::Refused { remaining, wait } => {
                quotas.push(quota(remaining, wait));
                count(policy, "refused");
                add_amount(&policy.name, "refused", *amount);
                let longest = match refusal {
                    Some(Rejection::BudgetExhausted { retry_after }) => retry_after.max(wait),
                    _ => wait,
                };
                if !matches!(refusal, Some(Rejection::RateLimitUnavailable { .. })) {
                    refusal = Some(Rejection::BudgetExhausted {
                        retry_after: longest,
                    });
                }
            }
            Spend::Unavailable => {
                count(policy, "unavailable");
                let retry_after = config
                    .redis
                    .as_ref()
                    .map_or(std::time::Duration::from_secs(1), |r| r.retry_interval);
                refusal = Some(Rejection::RateLimitUnavailable { retry_after });
            }
        }
    }
    match refusal {
        None => Ok(spent),
        Some(refusal) => {
            give_back(snapshot, at, spent).await;
            Err(refusal)
        }
    }
}

fn add_amount(policy: &str, outcome: &str, amount: u64) {
    labels::check("budget_amount", &labels::BUDGET_AMOUNTS, outcome);
    METRICS
        .budget_amount
        .with_label_values(&[policy, outcome])
        .inc_by(amount);
}

/// Gives `spent` back: the request it was spent on did not happen.
pub async fn give_back(snapshot: &Snapshot, at: Place<'_>, spent: Vec<Spent>) {
    for spent in spent {
        let given = snapshot.limiter.budgets.give_back(at, &spent.receipt).await;
        let outcome = if given { "refunded" } else { "refund_failed" };
        METRICS
            .budget_requests
            .with_label_values(&[&spent.policy, outcome])
            .inc();
        if given {
            add_amount(&spent.policy, "refunded", spent.amount);
        }
    }
}

/// The upstream's answers that say it refused a request before doing anything: a bad,
/// unauthorized, forbidden, unknown, refused-method, conflicting, too large, wrongly typed,
/// unprocessable or rate-limited request. Any other answer (2xx, other 4xx such as 408,
/// 5xx) may come after some of the work was done.
pub const REFUSED_BEFORE_WORK: [u16; 10] = [400, 401, 403, 404, 405, 409, 413, 415, 422, 429];

/// Whether a request that spent budget (or used an approval) did not happen, by how it
/// ended: it was never sent, or the upstream answered one of [`REFUSED_BEFORE_WORK`]. A
/// timeout or a lost connection may come after the work was done, so what was spent stays
/// spent.
pub fn did_not_happen(sent: bool, upstream_status: Option<u16>) -> bool {
    match upstream_status {
        Some(status) => REFUSED_BEFORE_WORK.contains(&status),
        None => !sent,
    }
}

#[cfg(test)]
mod tests {
    use super::did_not_happen;

    #[test]
    fn only_requests_that_did_not_happen_get_their_amount_back() {
        assert!(did_not_happen(false, None));
        assert!(did_not_happen(true, Some(422)));
        assert!(did_not_happen(true, Some(409)));
        assert!(!did_not_happen(true, Some(408)));
        assert!(!did_not_happen(true, Some(410)));
        assert!(!did_not_happen(true, Some(200)));
        assert!(!did_not_happen(true, Some(500)));
        assert!(!did_not_happen(true, Some(503)));
        assert!(!did_not_happen(true, None));
    }
}
