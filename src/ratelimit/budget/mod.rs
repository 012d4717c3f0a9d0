//! Budgets: rate-limit policies with an `amount`, which count how much a request asks for
//! (the tickets in a batch, a quantity) instead of one per request. A budget is decided
//! once the body is in (`proxy::admission::budget`), with the rate limiter's exactness: a
//! sliding-window log of amounts, in Redis for every replica (`spend.lua`, one atomic
//! script per decision) or in this process when no Redis is configured ([`local`]).
//!
//! A budget guards money, so it never counts on its own: while Redis cannot answer, its
//! requests are refused (503). An amount spent on a request that did not happen (refused
//! by another budget, never sent, or refused by the upstream) is given back.

mod local;

use super::member::Members;
use crate::store::redis::{LuaScript, Redis, StoreError};
use crate::store::Place;
use fred::types::Value;
use std::time::Duration;

/// One request's amount under one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub limit: u64,
    pub window: Duration,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// Spent; `reset`: until the oldest amount in the window leaves it.
    Granted {
        remaining: u64,
        reset: Duration,
        receipt: Receipt,
    },
    /// Not enough left; `wait`: until enough has left the window for this amount.
    Refused { remaining: u64, wait: Duration },
    /// The shared store cannot answer: the request is refused (503).
    Unavailable,
}

/// What [`Budgets::give_back`] needs to undo a spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    bucket: String,
    amount: u64,
    entry: Entry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Local(u64),
    Redis(String),
}

/// The scripts and the in-process logs. One per process (kept with the rate limiter).
pub struct Budgets {
    local: local::LocalBudgets,
    spend: LuaScript,
    give_back: LuaScript,
    members: Members,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            local: local::LocalBudgets::default(),
            spend: LuaScript::new(include_str!("spend.lua")),
            give_back: LuaScript::new(include_str!("give_back.lua")),
            members: Members::default(),
        }
    }
}

impl Budgets {
    pub async fn spend(&self, at: Place<'_>, bucket: &str, ask: Ask) -> Spend {
        match at {
            Place::Local => self.local.spend(bucket, ask),
            Place::Missing => Spend::Unavailable,
            Place::Shared(store, spec) => {
                let mut member = self.members.name(self.members.next());
                member.push(':');
                member.push_str(itoa::Buffer::new().format(ask.amount));
                let reply = store
                    .guarded(spec, |redis| self.spend_in(redis, bucket, &member, ask))
                    .await;
                match reply {
                    Some(Ok(spend)) => spend,
                    Some(Err(_)) | None => Spend::Unavailable,
                }
            }
        }
    }

    async fn spend_in(
        &self,
        redis: &Redis,
        bucket: &str,
        member: &str,
        ask: Ask,
    ) -> Result<Spend, StoreError> {
        let keys = log_keys(redis, bucket);
        let reply: Vec<i64> = redis
            .run_script(
                &self.spend,
                || keys.to_vec(),
                || {
                    vec![
                        Value::from(ask.limit as i64),
                        Value::from(ask.window.as_micros() as i64),
                        Value::from(member),
                        Value::from(ask.amount as i64),
                    ]
                },
            )
            .await?;
        let &[granted, remaining, wait_us] = reply.as_slice() else {
            return Err(StoreError::Failed(format!("unexpected reply {reply:?}")));
        };
        let remaining = remaining.max(0) as u64;
        let wait = Duration::from_micros(wait_us.max(0) as u64);
        Ok(match granted {
            1 => Spend::Granted {
                remaining,
                reset: wait,
                receipt: Receipt {
                    bucket: bucket.to_string(),
                    amount: ask.amount,
                    entry: Entry::Redis(member.to_string()),
                },
            },
            _ => Spend::Refused { remaining, wait },
        })
    }

    /// Undoes a spend. Best effort: if Redis cannot take it now, the amount stays spent
    /// until it leaves the window (counted in `usher_budget_total{outcome="refund_failed"}`).
    pub async fn give_back(&self, at: Place<'_>, receipt: &Receipt) -> bool {
        match (&receipt.entry, at) {
            (Entry::Local(id), _) => {
                self.local.give_back(&receipt.bucket, *id);
                true
            }
            (Entry::Redis(member), Place::Shared(store, _)) => {
                let redis = store.unguarded();
                let keys = log_keys(redis, &receipt.bucket);
                let given: Result<i64, _> = redis
                    .run_script(
                        &self.give_back,
                        || keys.to_vec(),
                        || {
                            vec![
                                Value::from(member.as_str()),
                                Value::from(receipt.amount as i64),
                            ]
                        },
                    )
                    .await;
                given.is_ok()
            }
            (Entry::Redis(_), _) => false,
        }
    }
}

/// The log and its sum, under one hash tag.
fn log_keys(redis: &Redis, bucket: &str) -> [String; 2] {
    let log = format!("{}budget:{{{bucket}}}", redis.settings().key_prefix);
    let sum = format!("{log}:sum");
    [log, sum]
}
