//! The bulkhead: how many requests one upstream is working on for this Usher process at
//! once (`max_in_flight`).
//!
//! A slot stands for upstream work, not for a client's reading speed, so its life follows
//! the upstream exchange:
//! - it is taken at admission and given back when the upstream's response is complete, even
//!   if the client is still reading it (the proxy drops it then);
//! - when a client leaves while the upstream is still working on its request, Pingora closes
//!   the upstream connection, but many servers finish the work anyway (a thread-per-request
//!   server does not notice the close). Such a slot is *parked*: held as long as this
//!   upstream's responses have lately taken, at most the attempt's own time limit, so clients
//!   that open and abandon requests cannot put more work on the upstream than the bulkhead
//!   allows;
//! - one HTTP/2 connection may hold at most a quarter of the slots (at least one), so a
//!   single client's streams cannot fill the bulkhead for everyone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a slot was refused: the `reason` label of `usher_upstream_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_in_flight` requests are in flight.
    Full,
    /// The request's HTTP/2 connection holds its share already.
    ConnectionShare,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "bulkhead_full",
            Refusal::ConnectionShare => "connection_share",
        }
    }
}

pub struct Bulkhead {
    limit: u32,
    in_flight: AtomicU32,
    /// A moving average of the time to a response head, in microseconds; 0 until the first.
    typical_wait_us: AtomicU64,
    /// Slots held per HTTP/2 connection (by client socket address).
    connections: Mutex<HashMap<SocketAddr, u32>>,
}

/// A slot in the bulkhead; dropping it frees the slot.
pub struct Slot {
    bulkhead: Arc<Bulkhead>,
    connection: Option<SocketAddr>,
}

impl Bulkhead {
    pub fn new(limit: u32) -> Arc<Bulkhead> {
        Arc::new(Bulkhead {
            limit,
            in_flight: AtomicU32::new(0),
            typical_wait_us: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// Requests in flight and the capacity.
    pub fn fill(&self) -> (u32, u32) {
        (self.in_flight.load(Ordering::Relaxed), self.limit)
    }

    /// How many slots one HTTP/2 connection may hold.
    pub fn connection_share(&self) -> u32 {
        (self.limit / 4).max(1)
    }

    /// Takes a slot. `connection` is the client's socket address when the request is one of
    /// an HTTP/2 connection's streams (an HTTP/1 connection carries one request at a time).
    pub fn try_acquire(self: &Arc<Self>, connection: Option<SocketAddr>) -> Result<Slot, Refusal> {
        let limit = self.limit;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| Refusal::Full)?;
        let mut slot = Slot {
            bulkhead: Arc::clone(self),
            connection: None,
        };
        let Some(connection) = connection else {
            return Ok(slot);
        };
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let held = connections.entry(connection).or_insert(0);
        if *held >= self.connection_share() {
            drop(connections);
            return Err(Refusal::ConnectionShare); // `slot` drops and frees the count
        }
        *held += 1;
        slot.connection = Some(connection);
        Ok(slot)
    }

    /// Records how long an upstream took to answer with a response head.
    pub fn observe_wait(&self, wait: Duration) {
        let sample = wait.as_micros().min(u64::MAX as u128) as u64;
        // An exponentially weighted average with weight 1/8 for the new sample; a lost
        // update under contention only drops one sample.
        let _ = self
            .typical_wait_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample.max(1)
                } else {
                    (old * 7 + sample) / 8
                })
            });
    }

    /// How long to keep a slot whose client left while the upstream was still working:
    /// twice the typical wait for a response head (the margin covers its spread), never more
    /// than `limit` (the attempt's own time limit), and `limit` before any response has been
    /// seen.
    pub fn abandoned_hold(&self, limit: Duration) -> Duration {
        match self.typical_wait_us.load(Ordering::Relaxed) {
            0 => limit,
            typical => Duration::from_micros(typical.saturating_mul(2)).min(limit),
        }
    }
}

impl Slot {
    /// Keeps the slot until `until`, then frees it (see the module docs).
    pub fn park_until(self, until: Instant) {
        if until <= Instant::now() {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep_until(until.into()).await;
            drop(self);
        });
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(connection) = self.connection {
            let mut connections = self
                .bulkhead
                .connections
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(held) = connections.get_mut(&connection) {
                *held -= 1;
                if *held == 0 {
                    connections.remove(&connection);
                }
            }
        }
        self.bulkhead.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn caps_the_total_and_each_http2_connection() {
        let bulkhead = Bulkhead::new(8);
        assert_eq!(bulkhead.connection_share(), 2);
        let first = bulkhead.try_acquire(addr(1)).unwrap();
        let _second = bulkhead.try_acquire(addr(1)).unwrap();
        assert_eq!(
            bulkhead.try_acquire(addr(1)).err(),
            Some(Refusal::ConnectionShare)
        );
        assert_eq!(bulkhead.fill(), (2, 8), "a refused share frees its count");
        let others: Vec<_> = (0..6)
            .map(|_| bulkhead.try_acquire(None).unwrap())
            .collect();
        assert_eq!(bulkhead.try_acquire(addr(2)).err(), Some(Refusal::Full));
        drop(first);
        assert!(
            bulkhead.try_acquire(addr(1)).is_ok(),
            "the share is given back"
        );
        drop(others);
        assert_eq!(bulkhead.fill(), (1, 8));
        assert!(bulkhead
            .connections
            .lock()
            .unwrap()
            .contains_key(&addr(1).unwrap()));
    }

    #[test]
    fn a_small_bulkhead_still_lets_a_connection_hold_one() {
        let bulkhead = Bulkhead::new(3);
        assert_eq!(bulkhead.connection_share(), 1);
        let _held = bulkhead.try_acquire(addr(1)).unwrap();
        assert!(bulkhead.try_acquire(addr(1)).is_err());
    }

    #[test]
    fn abandoned_slots_are_held_for_the_typical_wait() {
        let bulkhead = Bulkhead::new(8);
        let limit = Duration::from_secs(10);
        assert_eq!(bulkhead.abandoned_hold(limit), limit, "nothing seen yet");
        bulkhead.observe_wait(Duration::from_millis(100));
        assert_eq!(bulkhead.abandoned_hold(limit), Duration::from_millis(200));
        for _ in 0..50 {
            bulkhead.observe_wait(Duration::from_millis(500));
        }
        let hold = bulkhead.abandoned_hold(limit);
        assert!(
            hold > Duration::from_millis(990) && hold <= Duration::from_millis(1000),
            "{hold:?}"
        );
        assert_eq!(
            bulkhead.abandoned_hold(Duration::from_millis(300)),
            Duration::from_millis(300)
        );
    }

    #[tokio::test]
    async fn a_parked_slot_is_freed_at_its_time() {
        let bulkhead = Bulkhead::new(1);
        let slot = bulkhead.try_acquire(None).unwrap();
        slot.park_until(Instant::now() + Duration::from_millis(50));
        assert_eq!(bulkhead.fill(), (1, 1));
        let freed = Instant::now() + Duration::from_secs(5);
        while bulkhead.fill().0 > 0 && Instant::now() < freed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(bulkhead.fill(), (0, 1));
    }
}
