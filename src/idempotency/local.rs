//! Idempotency records in this process: [`SHARDS`] maps, each behind its own lock (a
//! reservation is a compare-and-set), bounded in count. When a shard needs room its oldest
//! record goes first, if it has expired, completed, or its lease has lapsed: a record
//! evicted before its `ttl` means a retry after that many newer keys runs again, which is
//! why a deployment with more than one replica keeps its records in Redis. A record whose
//! lease still runs is never evicted; a shard full of them refuses new keys (503).
//!
//! Shards keep each map small: a full map that evicts one record per new key fills with
//! tombstones and is rehashed whole every few ten thousand keys, a pause of milliseconds
//! at 100,000 records; at 1/64 of that, a pause of tens of microseconds.

use super::{Fingerprint, Reserved, Stored};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records kept at once, across all shards.
pub const MAX_RECORDS: usize = 100_000;
/// Maps the records are spread over, by a hash of their key.
pub const SHARDS: usize = 64;

struct Record {
    fingerprint: Fingerprint,
    /// The reservation's own token: only its request completes or releases it.
    token: String,
    /// When it was reserved: tells its entry in `order` from a stale one.
    reserved: Instant,
    state: State,
    /// When the record is forgotten (`ttl` after the reservation).
    expires: Instant,
}

enum State {
    InFlight { lease_until: Instant },
    Done(Option<Arc<Stored>>),
}

pub struct LocalStore {
    shards: Box<[Mutex<Records>]>,
    /// Records one shard keeps at once.
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Default)]
struct Records {
    by_key: HashMap<String, Record>,
    /// Keys in the order they were reserved (a key reserved again after it was given back
    /// or expired appears again; a stale entry is skipped).
    order: VecDeque<(String, Instant)>,
}

impl LocalStore {
    /// At most `capacity` records, spread over `shards` maps.
    pub fn new(capacity: usize, shards: usize) -> Self {
        let shards = shards.max(1);
        LocalStore {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            capacity: capacity.div_ceil(shards),
            hasher: Default::default(),
        }
    }

    fn records(&self, key: &str) -> std::sync::MutexGuard<'_, Records> {
        use std::hash::BuildHasher;
        let shard = self.hasher.hash_one(key) as usize % self.shards.len();
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn reserve(
        &self,
        key: &str,
        fingerprint: Fingerprint,
        token: &str,
        lease: Duration,
        ttl: Duration,
    ) -> Reserved {
        let now = Instant::now();
        let mut records = self.records(key);
        if let Some(record) = records.by_key.get(key).filter(|r| r.expires > now) {
            if record.fingerprint != fingerprint {
                return Reserved::Mismatch;
            }
            return match &record.state {
                State::InFlight { lease_until } if *lease_until > now => Reserved::InFlight,
                State::InFlight { .. } => Reserved::OutcomeUnknown,
                State::Done(Some(answer)) => Reserved::Replay(Arc::clone(answer)),
                State::Done(None) => Reserved::NotReplayable,
            };
        }
        if records.by_key.len() >= self.capacity && !records.make_room(now) {
            return Reserved::Unavailable;
        }
        records.by_key.insert(
            key.to_string(),
            Record {
                fingerprint,
                token: token.to_string(),
                reserved: now,
                state: State::InFlight {
                    lease_until: now + lease,
                },
                expires: now + ttl.max(lease),
            },
        );
        records.order.push_back((key.to_string(), now));
        // Keys given back leave their entries behind; keep the queue near the map's size.
        if records.order.len() > 2 * self.capacity {
            let Records { by_key, order } = &mut *records;
            order
                .retain(|(key, reserved)| by_key.get(key).is_some_and(|r| r.reserved == *reserved));
        }
        Reserved::Fresh
    }

    pub fn complete(&self, key: &str, token: &str, answer: Option<Arc<Stored>>) {
        if let Some(record) = self.records(key).by_key.get_mut(key) {
            if record.token == token && matches!(record.state, State::InFlight { .. }) {
                record.state = State::Done(answer);
            }
        }
    }

    pub fn release(&self, key: &str, token: &str) {
        let mut records = self.records(key);
        let ours = records.by_key.get(key).is_some_and(|record| {
            record.token == token && matches!(record.state, State::InFlight { .. })
        });
        if ours {
            records.by_key.remove(key);
        }
    }
}

impl Records {
    /// Evicts the oldest record that has expired or completed; false when every record is
    /// in flight. Amortized constant: each reservation adds one entry to `order`.
    fn make_room(&mut self, now: Instant) -> bool {
        let mut in_flight = Vec::new();
        let mut made = false;
        while let Some((key, reserved)) = self.order.pop_front() {
            let Some(record) = self.by_key.get(&key).filter(|r| r.reserved == reserved) else {
                continue; // given back, or reserved again later
            };
            // A lapsed lease ("outcome unknown") may go too: records in flight are what
            // callers could otherwise fill the store with by walking away mid-request.
            let lapsed =
                matches!(record.state, State::InFlight { lease_until } if lease_until <= now);
            if record.expires <= now || lapsed || matches!(record.state, State::Done(_)) {
                self.by_key.remove(&key);
                made = true;
                break;
            }
            in_flight.push((key, reserved));
        }
        // Records in flight keep their place at the front, oldest first.
        for entry in in_flight.into_iter().rev() {
            self.order.push_front(entry);
        }
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const FP: Fingerprint = [1; 32];
    const OTHER: Fingerprint = [2; 32];
    const LONG: Duration = Duration::from_secs(60);

    fn answer() -> Arc<Stored> {
        Arc::new(Stored {
            status: 201,
            headers: Vec::new(),
            body: Bytes::from_static(b"{}"),
        })
    }

    #[test]
    fn one_request_per_key_and_its_answer_after() {
        let store = LocalStore::new(10, 1);
        assert_eq!(store.reserve("k", FP, "t", LONG, LONG), Reserved::Fresh);
        assert_eq!(store.reserve("k", FP, "t", LONG, LONG), Reserved::InFlight);
        assert_eq!(
            store.reserve("k", OTHER, "t", LONG, LONG),
            Reserved::Mismatch
        );
        store.complete("k", "t", Some(answer()));
        assert_eq!(
            store.reserve("k", FP, "t", LONG, LONG),
            Reserved::Replay(answer())
        );
        assert_eq!(
            store.reserve("k", OTHER, "t", LONG, LONG),
            Reserved::Mismatch
        );
        // A release after completion changes nothing.
        store.release("k", "t");
        assert_eq!(
            store.reserve("k", FP, "t", LONG, LONG),
            Reserved::Replay(answer())
        );
    }

    #[test]
    fn released_keys_are_free_and_lapsed_leases_are_unknown() {
        let store = LocalStore::new(10, 1);
        assert_eq!(store.reserve("k", FP, "t", LONG, LONG), Reserved::Fresh);
        store.release("k", "t");
        assert_eq!(store.reserve("k", FP, "t", LONG, LONG), Reserved::Fresh);
        assert_eq!(
            store.reserve("lapsed", FP, "t", Duration::ZERO, LONG),
            Reserved::Fresh
        );
        assert_eq!(
            store.reserve("lapsed", FP, "t", LONG, LONG),
            Reserved::OutcomeUnknown
        );
        store.complete("big", "t", None);
        assert_eq!(store.reserve("big", FP, "t", LONG, LONG), Reserved::Fresh);
        store.complete("big", "t", None);
        assert_eq!(
            store.reserve("big", FP, "t", LONG, LONG),
            Reserved::NotReplayable
        );
    }

    #[test]
    fn a_full_store_refuses_rather_than_forgets() {
        let store = LocalStore::new(2, 1);
        assert_eq!(store.reserve("a", FP, "t", LONG, LONG), Reserved::Fresh);
        assert_eq!(store.reserve("b", FP, "t", LONG, LONG), Reserved::Fresh);
        assert_eq!(
            store.reserve("c", FP, "t", LONG, LONG),
            Reserved::Unavailable
        );
        // Expired records make room.
        let store = LocalStore::new(1, 1);
        assert_eq!(
            store.reserve("a", FP, "t", Duration::ZERO, Duration::ZERO),
            Reserved::Fresh
        );
        assert_eq!(store.reserve("b", FP, "t", LONG, LONG), Reserved::Fresh);
    }
}
