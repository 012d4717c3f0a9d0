//! Idempotency records in this process: one map behind one lock (a reservation is a
//! compare-and-set, and the money routes are few), bounded in count. Expired records go
//! when room is needed; a full store refuses new keys (503) rather than forget one that may
//! still be replayed.

use super::{Fingerprint, Reserved, Stored};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records kept at once.
pub const MAX_RECORDS: usize = 100_000;

struct Record {
    fingerprint: Fingerprint,
    state: State,
    /// When the record is forgotten (`ttl` after the reservation).
    expires: Instant,
}

enum State {
    InFlight { lease_until: Instant },
    Done(Option<Arc<Stored>>),
}

pub struct LocalStore {
    records: Mutex<HashMap<String, Record>>,
    capacity: usize,
}

impl LocalStore {
    pub fn new(capacity: usize) -> Self {
        LocalStore {
            records: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn reserve(
        &self,
        key: &str,
        fingerprint: Fingerprint,
        lease: Duration,
        ttl: Duration,
    ) -> Reserved {
        let now = Instant::now();
        let mut records = self.records();
        if let Some(record) = records.get(key).filter(|r| r.expires > now) {
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
        if records.len() >= self.capacity {
            records.retain(|_, record| record.expires > now);
            if records.len() >= self.capacity {
                return Reserved::Unavailable;
            }
        }
        records.insert(
            key.to_string(),
            Record {
                fingerprint,
                state: State::InFlight {
                    lease_until: now + lease,
                },
                expires: now + ttl.max(lease),
            },
        );
        Reserved::Fresh
    }

    pub fn complete(&self, key: &str, fingerprint: Fingerprint, answer: Option<Arc<Stored>>) {
        if let Some(record) = self.records().get_mut(key) {
            if record.fingerprint == fingerprint && matches!(record.state, State::InFlight { .. }) {
                record.state = State::Done(answer);
            }
        }
    }

    pub fn release(&self, key: &str, fingerprint: Fingerprint) {
        let mut records = self.records();
        let ours = records.get(key).is_some_and(|record| {
            record.fingerprint == fingerprint && matches!(record.state, State::InFlight { .. })
        });
        if ours {
            records.remove(key);
        }
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
        let store = LocalStore::new(10);
        assert_eq!(store.reserve("k", FP, LONG, LONG), Reserved::Fresh);
        assert_eq!(store.reserve("k", FP, LONG, LONG), Reserved::InFlight);
        assert_eq!(store.reserve("k", OTHER, LONG, LONG), Reserved::Mismatch);
        store.complete("k", FP, Some(answer()));
        assert_eq!(
            store.reserve("k", FP, LONG, LONG),
            Reserved::Replay(answer())
        );
        assert_eq!(store.reserve("k", OTHER, LONG, LONG), Reserved::Mismatch);
        // A release after completion changes nothing.
        store.release("k", FP);
        assert_eq!(
            store.reserve("k", FP, LONG, LONG),
            Reserved::Replay(answer())
        );
    }

    #[test]
    fn released_keys_are_free_and_lapsed_leases_are_unknown() {
        let store = LocalStore::new(10);
        assert_eq!(store.reserve("k", FP, LONG, LONG), Reserved::Fresh);
        store.release("k", FP);
        assert_eq!(store.reserve("k", FP, LONG, LONG), Reserved::Fresh);
        assert_eq!(
            store.reserve("lapsed", FP, Duration::ZERO, LONG),
            Reserved::Fresh
        );
        assert_eq!(
            store.reserve("lapsed", FP, LONG, LONG),
            Reserved::OutcomeUnknown
        );
        store.complete("big", FP, None);
        assert_eq!(store.reserve("big", FP, LONG, LONG), Reserved::Fresh);
        store.complete("big", FP, None);
        assert_eq!(
            store.reserve("big", FP, LONG, LONG),
            Reserved::NotReplayable
        );
    }

    #[test]
    fn a_full_store_refuses_rather_than_forgets() {
        let store = LocalStore::new(2);
        assert_eq!(store.reserve("a", FP, LONG, LONG), Reserved::Fresh);
        assert_eq!(store.reserve("b", FP, LONG, LONG), Reserved::Fresh);
        assert_eq!(store.reserve("c", FP, LONG, LONG), Reserved::Unavailable);
        // Expired records make room.
        let store = LocalStore::new(1);
        assert_eq!(
            store.reserve("a", FP, Duration::ZERO, Duration::ZERO),
            Reserved::Fresh
        );
        assert_eq!(store.reserve("b", FP, LONG, LONG), Reserved::Fresh);
    }
}
