//! Budgets in this process, when no Redis is configured (one replica): the same sliding
//! window of amounts as `spend.lua`, on the monotonic clock. Buckets whose window has
//! emptied are swept every few thousand decisions, so memory follows the callers active
//! within a window.

use super::{Ask, Entry, Receipt, Spend};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SWEEP_EVERY: u32 = 4096;

#[derive(Default)]
pub struct LocalBudgets {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    buckets: HashMap<String, Log>,
    next_id: u64,
    decisions: u32,
}

#[derive(Default)]
struct Log {
    /// (when, amount, id), oldest first.
    entries: VecDeque<(Instant, u64, u64)>,
    total: u64,
    window: Duration,
}

impl Log {
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, amount, _)) = self.entries.front() {
            if now.duration_since(at) < self.window {
                break;
            }
            self.entries.pop_front();
            self.total -= amount;
        }
    }
}

impl LocalBudgets {
    pub fn spend(&self, bucket: &str, ask: Ask) -> Spend {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.decisions += 1;
        if state.decisions >= SWEEP_EVERY {
            state.decisions = 0;
            state.buckets.retain(|_, log| {
                log.expire(now);
                !log.entries.is_empty()
            });
        }
        state.next_id += 1;
        let id = state.next_id;
        let log = state.buckets.entry(bucket.to_string()).or_default();
        log.window = ask.window;
        log.expire(now);
        if log.total + ask.amount <= ask.limit {
            log.entries.push_back((now, ask.amount, id));
            log.total += ask.amount;
            let oldest = log.entries.front().map_or(now, |e| e.0);
            return Spend::Granted {
                remaining: ask.limit - log.total,
                reset: (oldest + ask.window).saturating_duration_since(now),
                receipt: Receipt {
                    bucket: bucket.to_string(),
                    amount: ask.amount,
                    entry: Entry::Local(id),
                },
            };
        }
        let remaining = ask.limit.saturating_sub(log.total);
        let need = log.total + ask.amount - ask.limit;
        let mut freed = 0;
        let wait = log
            .entries
            .iter()
            .find(|(_, amount, _)| {
                freed += amount;
                freed >= need
            })
            .map_or(ask.window, |(at, _, _)| {
                (*at + ask.window).saturating_duration_since(now)
            });
        Spend::Refused { remaining, wait }
    }

    pub fn give_back(&self, bucket: &str, id: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = state.buckets.get_mut(bucket) {
            if let Some(at) = log.entries.iter().position(|e| e.2 == id) {
                if let Some((_, amount, _)) = log.entries.remove(at) {
                    log.total -= amount;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASK: Ask = Ask {
        limit: 10,
        window: Duration::from_secs(60),
        amount: 4,
    };

    #[test]
    fn amounts_add_up_to_the_limit_and_no_further() {
        let budgets = LocalBudgets::default();
        let granted = |spend: &Spend| matches!(spend, Spend::Granted { .. });
        let first = budgets.spend("b", ASK);
        assert!(granted(&first));
        assert!(granted(&budgets.spend("b", ASK)));
        // 8 spent: 4 more would be 12.
        let refused = budgets.spend("b", ASK);
        assert!(
            matches!(refused, Spend::Refused { remaining: 2, wait } if wait <= ASK.window),
            "{refused:?}"
        );
        assert!(granted(&budgets.spend("b", Ask { amount: 2, ..ASK })));
        assert!(granted(&budgets.spend("other", ASK)));
        // A refund makes room again.
        let Spend::Granted { receipt, .. } = first else {
            unreachable!()
        };
        let Entry::Local(id) = receipt.entry else {
            unreachable!()
        };
        budgets.give_back("b", id);
        assert!(matches!(
            budgets.spend("b", ASK),
            Spend::Granted { remaining: 0, .. }
        ));
    }

    #[test]
    fn amounts_leave_with_their_window() {
        let budgets = LocalBudgets::default();
        let short = Ask {
            window: Duration::from_millis(30),
            ..ASK
        };
        assert!(matches!(
            budgets.spend(
                "b",
                Ask {
                    amount: 10,
                    ..short
                }
            ),
            Spend::Granted { .. }
        ));
        assert!(matches!(budgets.spend("b", short), Spend::Refused { .. }));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(
            budgets.spend("b", short),
            Spend::Granted { remaining: 6, .. }
        ));
    }
}
