//! The circuit breaker that guards every upstream.
//!
//! Closed: requests flow and outcomes are counted over a rolling window. When the window
//! holds at least `min_requests` outcomes and the error share reaches `error_percent`, the
//! breaker opens. Open: requests fail fast without touching the upstream until `open_for`
//! has passed. Half-open: at most `half_open_probes` requests go through as probes; when that
//! many succeed the breaker closes, and any failure opens it again.
//!
//! The clock is passed in, so the state machine is tested without sleeping. One short
//! mutex guards the state: it is held for a few arithmetic operations per request.

use crate::config::BreakerSpec;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// The value exported as the `usher_circuit_breaker_state` gauge.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// The breaker's answer to "may this request go to the upstream?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead. A probe (`Some(round)`) decides whether a half-open breaker closes, but
    /// only in the half-open round that admitted it.
    Allowed { probe: Option<u64> },
    /// Fail fast; the caller may retry after this long.
    Rejected { retry_after: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// The request ended before the upstream answered for reasons of its own (the client
    /// left, a body was too large): it says nothing about the upstream's health.
    Neutral,
}

pub struct CircuitBreaker {
    spec: BreakerSpec,
    inner: Mutex<Inner>,
}

struct Inner {
    phase: Phase,
    window: Window,
    /// Counts half-open rounds, so a late probe from an earlier round cannot count in this one.
    round: u64,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

impl CircuitBreaker {
    pub fn new(spec: BreakerSpec, now: Instant) -> Self {
        let window = Window::new(spec.window, now);
        CircuitBreaker {
            spec,
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                window,
                round: 0,
            }),
        }
    }

    pub fn admit(&self, now: Instant) -> Admission {
        let mut inner = self.lock();
        match inner.phase {
            Phase::Closed => Admission::Allowed { probe: None },
            Phase::Open { until } if now < until => Admission::Rejected {
                retry_after: until - now,
            },
            Phase::Open { .. } => {
                inner.round += 1;
                inner.phase = Phase::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                };
                Admission::Allowed {
                    probe: Some(inner.round),
                }
            }
            Phase::HalfOpen {
                in_flight,
                successes,
            } if in_flight + successes < self.spec.half_open_probes => {
                inner.phase = Phase::HalfOpen {
                    in_flight: in_flight + 1,
                    successes,
                };
                Admission::Allowed {
                    probe: Some(inner.round),
                }
            }
            Phase::HalfOpen { .. } => Admission::Rejected {
                retry_after: Duration::from_secs(1),
            },
        }
    }

    /// Records the outcome of a request that [`Self::admit`] allowed.
    pub fn record(&self, outcome: Outcome, probe: Option<u64>, now: Instant) {
        let mut inner = self.lock();
        let round = inner.round;
        match (inner.phase, probe) {
            (Phase::Closed, None) => {
                if outcome == Outcome::Neutral {
                    return;
                }
                inner.window.add(now, outcome == Outcome::Failure);
                let (total, failures) = inner.window.totals(now);
                if total >= self.spec.min_requests
                    && failures * 100 >= self.spec.error_percent * total
                {
                    inner.phase = Phase::Open {
                        until: now + self.spec.open_for,
                    };
                }
            }
            (
                Phase::HalfOpen {
                    in_flight,
                    successes,
                },
                Some(probe_round),
            ) if probe_round == round => {
                let in_flight = in_flight.saturating_sub(1);
                inner.phase = match outcome {
                    Outcome::Failure => Phase::Open {
                        until: now + self.spec.open_for,
                    },
                    Outcome::Neutral => Phase::HalfOpen {
                        in_flight,
                        successes,
                    },
                    Outcome::Success if successes + 1 >= self.spec.half_open_probes => {
                        inner.window = Window::new(self.spec.window, now);
                        Phase::Closed
                    }
                    Outcome::Success => Phase::HalfOpen {
                        in_flight,
                        successes: successes + 1,
                    },
                };
            }
            // Outcomes of requests admitted in an earlier phase no longer matter.
            _ => {}
        }
    }

    /// The state as an observer would describe it at `now`: an open breaker whose time is up
    /// reads as half-open, since the next request will be a probe.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.lock().phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if now < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Outcome counts over a rolling window, in `BUCKETS` slices.
struct Window {
    origin: Instant,
    slice: Duration,
    /// (slice number, requests, failures)
    buckets: [(u64, u32, u32); BUCKETS],
}

impl Window {
    fn new(length: Duration, now: Instant) -> Self {
        Window {
            origin: now,
            slice: (length / BUCKETS as u32).max(Duration::from_millis(1)),
            buckets: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    fn slice_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_millis() / self.slice.as_millis()) as u64
    }

    fn add(&mut self, now: Instant, failed: bool) {
        let slice = self.slice_of(now);
        let bucket = &mut self.buckets[(slice % BUCKETS as u64) as usize];
        if bucket.0 != slice {
            *bucket = (slice, 0, 0);
        }
        bucket.1 += 1;
        bucket.2 += u32::from(failed);
    }

    fn totals(&self, now: Instant) -> (u32, u32) {
        let current = self.slice_of(now);
        self.buckets
            .iter()
            .filter(|(slice, _, _)| {
                *slice != u64::MAX && current.saturating_sub(*slice) < BUCKETS as u64
            })
            .fold((0, 0), |(total, failures), (_, n, f)| {
                (total + n, failures + f)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BreakerSpec {
        BreakerSpec {
            error_percent: 50,
            min_requests: 4,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(30),
            half_open_probes: 2,
            count_5xx: true,
        }
    }

    fn run(breaker: &CircuitBreaker, now: Instant, outcome: Outcome) {
        let Admission::Allowed { probe } = breaker.admit(now) else {
            panic!("expected admission");
        };
        breaker.record(outcome, probe, now);
    }

    #[test]
    fn a_late_probe_from_an_earlier_round_does_not_count() {
        let t0 = Instant::now();
        let breaker = CircuitBreaker::new(spec(), t0);
        for _ in 0..4 {
            run(&breaker, t0, Outcome::Failure);
        }
        let t1 = t0 + Duration::from_secs(31);
        let Admission::Allowed { probe: late } = breaker.admit(t1) else {
            panic!("probe expected");
        };
        run(&breaker, t1, Outcome::Failure); // a second probe fails: open again
        let t2 = t1 + Duration::from_secs(31);
        let Admission::Allowed { probe: current } = breaker.admit(t2) else {
            panic!("probe expected");
        };
        assert_ne!(late, current);
        breaker.record(Outcome::Success, late, t2);
        breaker.record(Outcome::Success, late, t2);
        assert_eq!(
            breaker.state(t2),
            BreakerState::HalfOpen,
            "the earlier round's probe counted"
        );
        breaker.record(Outcome::Success, current, t2);
        assert!(matches!(
            breaker.admit(t2),
            Admission::Allowed { probe: Some(_) }
        ));
    }

    #[test]
    fn opens_at_threshold_with_minimum_volume() {
        let t0 = Instant::now();
        let breaker = CircuitBreaker::new(spec(), t0);
        run(&breaker, t0, Outcome::Failure);
        run(&breaker, t0, Outcome::Failure);
        run(&breaker, t0, Outcome::Failure);
        assert_eq!(
            breaker.state(t0),
            BreakerState::Closed,
            "below minimum volume"
        );
        run(&breaker, t0, Outcome::Success);
        assert_eq!(breaker.state(t0), BreakerState::Open, "3 of 4 failed");
        assert_eq!(
            breaker.admit(t0 + Duration::from_secs(10)),
            Admission::Rejected {
                retry_after: Duration::from_secs(20)
            }
        );
    }

    #[test]
    fn stays_closed_below_error_rate() {
        let t0 = Instant::now();
        let breaker = CircuitBreaker::new(spec(), t0);
        for _ in 0..10 {
            run(&breaker, t0, Outcome::Success);
            run(&breaker, t0, Outcome::Success);
            run(&breaker, t0, Outcome::Failure);
        }
        assert_eq!(breaker.state(t0), BreakerState::Closed);
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let t0 = Instant::now();
        let breaker = CircuitBreaker::new(spec(), t0);
        for _ in 0..3 {
            run(&breaker, t0, Outcome::Failure);
        }
        let later = t0 + Duration::from_secs(11);
        run(&breaker, later, Outcome::Failure);
        assert_eq!(breaker.state(later), BreakerState::Closed);
    }

    #[test]
    fn half_open_probes_close_on_success() {
        let t0 = Instant::now();
        let breaker = CircuitBreaker::new(spec(), t0);
        for _ in 0..4 {
            run(&breaker, t0, Outcome::Failure);
        }
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(breaker.state(t1), BreakerState::HalfOpen);
        assert!(matches!(
            breaker.admit(t1),
            Admission::Allowed { probe: Some(_) }
        ));
        assert!(matches!(
            breaker.admit(t1),
            Admission::Allowed { probe: Some(_) }
        ));
        assert!(
            matches!(breaker.admit(t1), Admission::Rejected { .. }),
            "probe budget spent"
        );
        breaker.record(Outcome::Success, Some(1), t1);
        assert_eq!(breaker.state(t1), BreakerState::HalfOpen);
        breaker.record(Outcome::Success, Some(1), t1);
        assert_eq!(breaker.state(t1), BreakerState::Closed);
        assert_eq!(breaker.admit(t1), Admission::Allowed { probe: None });
    }

    #[test]
    fn half_open_failure_reopens() {
        let t0 = Instant::now();
        let breaker = CircuitBreaker::new(spec(), t0);
        for _ in 0..4 {
            run(&breaker, t0, Outcome::Failure);
        }
        let t1 = t0 + Duration::from_secs(31);
        run(&breaker, t1, Outcome::Failure);
        assert_eq!(breaker.state(t1), BreakerState::Open);
    }

    #[test]
    fn neutral_probe_returns_its_slot() {
        let t0 = Instant::now();
        let breaker = CircuitBreaker::new(spec(), t0);
        for _ in 0..4 {
            run(&breaker, t0, Outcome::Failure);
        }
        let t1 = t0 + Duration::from_secs(31);
        for _ in 0..5 {
            run(&breaker, t1, Outcome::Neutral);
        }
        assert_eq!(breaker.state(t1), BreakerState::HalfOpen);
    }
}
