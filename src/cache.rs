//! The one bounded cache behind everything Usher remembers of other parties' answers:
//! verified tokens, user-status and venue answers, revocation answers.
//!
//! Each entry remembers when it was stored; the reader decides from that age (and the
//! value) whether it still counts, since each cache has its own rule (a token until it
//! expires, a negative answer shorter than a positive one, a stale answer only while the
//! source cannot answer). When full, the oldest entry goes first. Entries live in shards,
//! each behind its own lock, so worker threads rarely meet on one.

use hashbrown::hash_table::{Entry, HashTable};
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct Cache<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    per_shard: usize,
    /// A key is hashed once per call: the hash picks the shard and finds the entry in it
    /// (a token is a few hundred bytes, hashed on every authenticated request).
    hasher: RandomState,
}

struct Shard<K, V> {
    entries: HashTable<Stored<K, V>>,
    /// Keys (and their hashes) in the order they were stored, with the number of the store;
    /// a key stored again leaves its older number behind, skipped on eviction.
    order: VecDeque<(u64, K, u64)>,
    stores: u64,
}

struct Stored<K, V> {
    key: K,
    hash: u64,
    value: V,
    stored: Instant,
    number: u64,
}

impl<K: Hash + Eq + Clone, V> Cache<K, V> {
    /// A cache of at most `capacity` entries (rounded up to a multiple of `shards`).
    pub fn new(capacity: usize, shards: usize) -> Self {
        let shards = shards.max(1);
        Cache {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashTable::new(),
                        order: VecDeque::new(),
                        stores: 0,
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(shards).max(1),
            hasher: RandomState::new(),
        }
    }

    /// The key's hash and its shard, locked. The shard comes from the hash's upper half: the
    /// table inside indexes by the lower bits, which would otherwise be alike for every key
    /// of a shard.
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, MutexGuard<'_, Shard<K, V>>) {
        let hash = self.hasher.hash_one(key);
        let index = (hash >> 32) as usize % self.shards.len();
        let shard = self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (hash, shard)
    }

    /// What `read` makes of the entry for `key` and its age, if there is one.
    pub fn find<Q, R>(&self, key: &Q, read: impl FnOnce(&V, Duration) -> Option<R>) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.shard(key);
        let entry = shard.entries.find(hash, |e| e.key.borrow() == key)?;
        read(&entry.value, entry.stored.elapsed())
    }

    /// Stores `value` for `key`, now; the oldest entries go when the shard is full.
    pub fn insert(&self, key: K, value: V) {
        let per_shard = self.per_shard;
        let (hash, mut shard) = self.shard(&key);
        let shard = &mut *shard;
        shard.stores += 1;
        let number = shard.stores;
        let stored = Instant::now();
        match shard.entries.entry(hash, |e| e.key == key, |e| e.hash) {
            Entry::Occupied(mut occupied) => {
                let entry = occupied.get_mut();
                (entry.value, entry.stored, entry.number) = (value, stored, number);
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Stored {
                    key: key.clone(),
                    hash,
                    value,
                    stored,
                    number,
                });
                while shard.entries.len() > per_shard {
                    let Some((hash, oldest, stored_as)) = shard.order.pop_front() else {
                        break;
                    };
                    if let Ok(entry) = shard.entries.find_entry(hash, |e| e.key == oldest) {
                        if entry.get().number == stored_as {
                            entry.remove();
                        }
                    }
                }
            }
        }
        shard.order.push_back((hash, key, number));
        // Keys stored again leave older numbers behind; keep the queue near the map's size.
        if shard.order.len() > 2 * per_shard {
            let entries = &shard.entries;
            shard.order.retain(|(hash, key, number)| {
                entries
                    .find(*hash, |e| e.key == *key)
                    .is_some_and(|e| e.number == *number)
            });
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().map_or(0, |s| s.entries.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(cache: &Cache<String, u32>, key: &str) -> Option<u32> {
        cache.find(key, |value, _| Some(*value))
    }

    #[test]
    fn the_oldest_entry_goes_first_when_full() {
        let cache = Cache::new(3, 1);
        for (n, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(key.to_string(), n as u32);
        }
        // Storing `a` again makes `b` the oldest.
        cache.insert("a".to_string(), 10);
        cache.insert("d".to_string(), 3);
        assert_eq!(value(&cache, "a"), Some(10));
        assert_eq!(value(&cache, "b"), None);
        assert_eq!(value(&cache, "c"), Some(2));
        assert_eq!(value(&cache, "d"), Some(3));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn stays_bounded_under_any_mix_of_keys() {
        let cache = Cache::new(64, 4);
        for n in 0..10_000u32 {
            cache.insert(format!("key-{}", n % 97), n);
            cache.insert(format!("fresh-{n}"), n);
        }
        assert!(cache.len() <= 64, "{} entries", cache.len());
        for shard in cache.shards.iter() {
            assert!(shard.lock().unwrap().order.len() <= 2 * 16 + 1);
        }
        assert_eq!(value(&cache, "fresh-9999"), Some(9999), "the newest stays");
    }

    #[test]
    fn the_reader_decides_by_age() {
        let cache = Cache::new(8, 2);
        cache.insert("k".to_string(), 1);
        let young = |max: Duration| cache.find("k", |v, age| (age < max).then_some(*v));
        assert_eq!(young(Duration::from_secs(60)), Some(1));
        assert_eq!(young(Duration::ZERO), None);
        assert!(!cache.is_empty());
    }
}
