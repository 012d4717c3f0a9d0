//! The in-process store: the whole store when no Redis is configured (one replica needs
//! nothing else), and the fallback while Redis cannot answer. Same algorithm, same answers,
//! on this process's monotonic clock.
//!
//! Buckets live in sharded maps so concurrent requests rarely wait on one lock. Idle buckets
//! are swept from a shard every few thousand decisions on it, so memory follows the number
//! of callers active within a window, not the number ever seen.

use super::window::{Bucket, Decision, Rule};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 32;
const SWEEP_EVERY: u32 = 4096;

pub struct LocalStore {
    shards: Vec<Mutex<Shard>>,
    epoch: Instant,
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<String, (Bucket, u64)>,
    decisions: u32,
}

impl Default for LocalStore {
    fn default() -> Self {
        LocalStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            epoch: Instant::now(),
        }
    }
}

impl LocalStore {
    /// The decision, and the arrival time it recorded (for [`LocalStore::give_back`]).
    pub fn decide(&self, key: &str, rule: &Rule) -> (Decision, u64) {
        let mut shard = self.shard(key);
        // Read under the lock, so each bucket's log stays in arrival order.
        let now = self.epoch.elapsed().as_micros() as u64;
        shard.decisions += 1;
        if shard.decisions >= SWEEP_EVERY {
            shard.decisions = 0;
            shard
                .buckets
                .retain(|_, (bucket, window)| !bucket.is_idle(now, *window));
        }
        let decision = match shard.buckets.get_mut(key) {
            Some((bucket, window)) => {
                *window = rule.window_us;
                bucket.decide(now, rule)
            }
            None => {
                let mut bucket = Bucket::default();
                let decision = bucket.decide(now, rule);
                shard
                    .buckets
                    .insert(key.to_string(), (bucket, rule.window_us));
                decision
            }
        };
        (decision, now)
    }

    /// Forgets the request `decide` admitted at `at` in `key`'s bucket.
    pub fn give_back(&self, key: &str, at: u64) {
        if let Some((bucket, _)) = self.shard(key).buckets.get_mut(key) {
            bucket.give_back(at);
        }
    }

    /// The locked shard that holds `key`'s bucket.
    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Buckets currently held, for the health report.
    pub fn bucket_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.buckets.len()))
            .sum()
    }
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap, and keys are already caller-specific.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash = (hash ^ byte as u32).wrapping_mul(0x0100_0193);
    }
    hash as usize % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(window_us: u64) -> Rule {
        Rule {
            limit: 1,
            window_us,
            block_after: 0,
            block_us: 0,
        }
    }

    #[test]
    fn each_key_has_its_own_bucket() {
        let store = LocalStore::default();
        let minute = rule(60_000_000);
        assert!(store.decide("a", &minute).0.allowed);
        assert!(!store.decide("a", &minute).0.allowed);
        assert!(store.decide("b", &minute).0.allowed);
    }

    #[test]
    fn idle_buckets_are_swept() {
        let store = LocalStore::default();
        let inserted = 2 * SWEEP_EVERY as usize * SHARDS;
        for i in 0..inserted {
            store.decide(&format!("k{i}"), &rule(1));
        }
        assert!(
            store.bucket_count() < inserted / 2,
            "{} buckets kept",
            store.bucket_count()
        );
    }
}
