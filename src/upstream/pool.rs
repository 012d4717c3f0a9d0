//! One upstream pool: its peers, how one is chosen, and what protects it.
//!
//! A pool owns Pingora's load balancer (discovery plus active health checks), the circuit
//! breaker, the bulkhead (`max_in_flight`, see [`super::bulkhead`]) and passive ejection of peers that refuse
//! connections. Pools are long-lived: a reload that leaves an upstream's definition unchanged
//! hands the same `Arc<Pool>` to the new snapshot, so health state, breaker state and Pingora's
//! pooled connections survive. [`Pool::maintain`] is the pool's background task; the
//! carry-over step (`carry_over::Running`) starts it and aborts it when a reload removes the
//! pool.

use super::breaker::{Admission, BreakerState, CircuitBreaker, Outcome};
use super::bulkhead::Bulkhead;
use super::discovery::DnsDiscovery;
use super::health;
use crate::config::{LoadBalancing, UpstreamSpec};
use crate::telemetry::metrics::METRICS;
use arc_swap::ArcSwap;
use pingora::lb::selection::{Consistent, Random, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use prometheus::{Histogram, IntGauge};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::{interval, MissedTickBehavior};

/// How many candidates a selection may look at before giving up.
const MAX_SELECTION_STEPS: usize = 256;

pub struct Pool {
    pub spec: UpstreamSpec,
    balancer: Balancer,
    /// The peers that may be chosen now, in the balancer's order, worked out again
    /// whenever that can change (a resolution, a round of health checks, an ejection and
    /// its end): round-robin and random choices read it, without the two hash lookups per
    /// candidate that Pingora's selection makes.
    ready: ArcSwap<Vec<SocketAddr>>,
    /// Held while the list is worked out and published, so that two publishers (a round of
    /// health checks, an ejection's end) cannot leave the older of their lists in place.
    publishing: Mutex<()>,
    /// Round-robin's next turn.
    turn: AtomicUsize,
    refreshes: bool,
    breaker: CircuitBreaker,
    pub bulkhead: Arc<Bulkhead>,
    breaker_gauge: IntGauge,
    attempt_duration: Histogram,
}

enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Hash(LoadBalancer<Consistent>),
}

macro_rules! with_balancer {
    ($balancer:expr, $lb:ident => $body:expr) => {
        match $balancer {
            Balancer::RoundRobin($lb) => $body,
            Balancer::Random($lb) => $body,
            Balancer::Hash($lb) => $body,
        }
    };
}

/// The breaker's permission for one request. Its outcome is recorded once, by
/// [`BreakerPass::settle`], or as neutral when the request ends without one (cancelled,
/// panicked), so a half-open probe slot can never leak.
pub struct BreakerPass {
    pool: Arc<Pool>,
    probe: Option<u64>,
    settled: bool,
}

impl BreakerPass {
    pub fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        self.pool.record(outcome, self.probe);
    }
}

impl Drop for BreakerPass {
    fn drop(&mut self) {
        if !self.settled {
            self.pool.record(Outcome::Neutral, self.probe);
        }
    }
}

impl Pool {
    /// Builds the pool. It has no peers until [`Pool::refresh`] has run once.
    pub fn new(spec: UpstreamSpec) -> Arc<Pool> {
        let discovery = DnsDiscovery::new(spec.targets.clone());
        let refreshes = !discovery.is_static();
        let mut backends = Backends::new(Box::new(discovery));
        let host = spec
            .targets
            .first()
            .map_or("localhost", |t| t.host.as_str());
        backends.set_health_check(Box::new(health::Check::new(&spec.health_check, host)));
        let balancer = match spec.lb {
            LoadBalancing::RoundRobin => {
                Balancer::RoundRobin(LoadBalancer::from_backends(backends))
            }
            LoadBalancing::Random => Balancer::Random(LoadBalancer::from_backends(backends)),
            LoadBalancing::ConsistentHash(_) => {
                Balancer::Hash(LoadBalancer::from_backends(backends))
            }
        };
        let breaker_gauge = METRICS.breaker_state.with_label_values(&[&*spec.name]);
        breaker_gauge.set(BreakerState::Closed.as_gauge());
        let attempt_duration = METRICS
            .upstream_attempt_duration
            .with_label_values(&[&*spec.name]);
        let bulkhead = Bulkhead::new(spec.max_in_flight);
        Arc::new(Pool {
            breaker: CircuitBreaker::new(spec.circuit_breaker.clone(), Instant::now()),
            spec,
            balancer,
            ready: ArcSwap::default(),
            publishing: Mutex::new(()),
            turn: AtomicUsize::new(0),
            refreshes,
            bulkhead,
            breaker_gauge,
            attempt_duration,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    fn backends(&self) -> &Backends {
        with_balancer!(&self.balancer, lb => lb.backends())
    }

    /// Resolves the targets again. On failure the previous peers stay.
    pub async fn refresh(&self) {
        let result = with_balancer!(&self.balancer, lb => lb.update().await);
        if let Err(e) = result {
            tracing::warn!(upstream = %self.spec.name, error = %e, "resolving upstream targets failed; keeping the previous peers");
        }
        self.export_peer_gauges();
    }

    /// Runs one round of active health checks over every peer, in parallel.
    pub async fn check_health(&self) {
        self.backends().run_health_check(true).await;
        self.export_peer_gauges();
    }

    /// The pool's background task: re-resolve and health-check on their intervals, forever.
    pub async fn maintain(self: Arc<Self>) {
        let mut resolve = interval(self.spec.resolve_interval);
        let mut check = interval(self.spec.health_check.interval);
        resolve.set_missed_tick_behavior(MissedTickBehavior::Delay);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first ticks are immediate; the pool was refreshed and checked when built.
        resolve.tick().await;
        check.tick().await;
        loop {
            tokio::select! {
                _ = resolve.tick(), if self.refreshes => self.refresh().await,
                _ = check.tick() => self.check_health().await,
            }
        }
    }

    /// Chooses a healthy, non-ejected peer that this request has not tried yet.
    pub fn select(&self, hash_key: &[u8], tried: &[SocketAddr]) -> Option<SocketAddr> {
        let start = match &self.balancer {
            Balancer::RoundRobin(_) => self.turn.fetch_add(1, Ordering::Relaxed),
            Balancer::Random(_) => rand::random(),
            Balancer::Hash(lb) => {
                let accept = |backend: &Backend, ready: bool| {
                    ready
                        && backend
                            .addr
                            .as_inet()
                            .is_some_and(|addr| !tried.contains(addr))
                };
                let chosen = lb.select_with(hash_key, MAX_SELECTION_STEPS, accept);
                return chosen.and_then(|backend| backend.addr.as_inet().copied());
            }
        };
        let ready = self.ready.load();
        let count = ready.len();
        (0..count)
            .map(|step| ready[start.wrapping_add(step) % count])
            .find(|peer| !tried.contains(peer))
    }

    /// Requests in flight to this upstream and its bulkhead's capacity.
    pub fn bulkhead_fill(&self) -> (u32, u32) {
        self.bulkhead.fill()
    }

    /// Asks the circuit breaker; `Err` holds how long until it may let requests through.
    pub fn admit(self: &Arc<Self>) -> Result<BreakerPass, Duration> {
        let admission = self.breaker.admit(Instant::now());
        self.export_breaker_state();
        match admission {
            Admission::Allowed { probe } => Ok(BreakerPass {
                pool: Arc::clone(self),
                probe,
                settled: false,
            }),
            Admission::Rejected { retry_after } => Err(retry_after),
        }
    }

    fn record(&self, outcome: Outcome, probe: Option<u64>) {
        self.breaker.record(outcome, probe, Instant::now());
        self.export_breaker_state();
    }

    /// Records how long an attempt took to get the upstream's response header.
    pub fn observe_attempt(&self, elapsed: std::time::Duration) {
        self.attempt_duration.observe(elapsed.as_secs_f64());
        self.bulkhead.observe_wait(elapsed);
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state(Instant::now())
    }

    fn export_breaker_state(&self) {
        let state = self.breaker_state();
        let previous = self.breaker_gauge.get();
        if previous != state.as_gauge() {
            self.breaker_gauge.set(state.as_gauge());
            if state == BreakerState::Open {
                tracing::warn!(upstream = %self.spec.name, state = state.as_str(), "circuit breaker opened");
            } else {
                tracing::info!(upstream = %self.spec.name, state = state.as_str(), "circuit breaker changed state");
            }
        }
    }

    /// Takes a peer that refused a connection out of selection for `passive_ejection`.
    pub fn eject(self: &Arc<Self>, peer: SocketAddr) {
        if self.spec.passive_ejection.is_zero() {
            return;
        }
        let Some(backend) = self
            .backends()
            .get_backend()
            .iter()
            .find(|b| b.addr.as_inet() == Some(&peer))
            .cloned()
        else {
            return;
        };
        self.backends().set_enable(&backend, false);
        self.export_peer_gauges();
        tracing::warn!(upstream = %self.spec.name, peer = %peer, for_ms = self.spec.passive_ejection.as_millis() as u64, "peer refused a connection; ejected");
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(pool.spec.passive_ejection).await;
            pool.backends().set_enable(&backend, true);
            pool.export_peer_gauges();
        });
    }

    /// `(ready, total)`: peers that may be chosen now, and peers resolved.
    pub fn peer_counts(&self) -> (usize, usize) {
        let backends = self.backends();
        let all = backends.get_backend();
        let ready = all.iter().filter(|b| backends.ready(b)).count();
        (ready, all.len())
    }

    /// Each peer with whether it may be chosen now.
    pub fn peers(&self) -> Vec<(SocketAddr, bool)> {
        let backends = self.backends();
        backends
            .get_backend()
            .iter()
            .filter_map(|b| b.addr.as_inet().map(|addr| (*addr, backends.ready(b))))
            .collect()
    }

    /// Publishes the peers that may be chosen now, and their counts.
    fn export_peer_gauges(&self) {
        {
            let _publishing = (self.publishing.lock()).unwrap_or_else(|p| p.into_inner());
            let ready: Vec<SocketAddr> = (self.peers().into_iter())
                .filter_map(|(peer, ready)| ready.then_some(peer))
                .collect();
            self.ready.store(Arc::new(ready));
        }
        let (ready, total) = self.peer_counts();
        METRICS
            .upstream_healthy_peers
            .with_label_values(&[&*self.spec.name])
            .set(ready as i64);
        METRICS
            .upstream_peers
            .with_label_values(&[&*self.spec.name])
            .set(total as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::file;

    fn pool(lb: &str) -> Arc<Pool> {
        let config = file(&format!(
            "upstreams: {{ p: {{ targets: [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"], \
             lb: {lb}, passive_ejection: 1m }} }}\n\
             routes: [{{ name: r, match: {{ path: /r }}, upstream: p, public: true }}]"
        ));
        Pool::new(config.upstreams[0].clone())
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn choices_go_round_the_ready_peers_and_skip_the_tried_and_the_ejected() {
        let pool = pool("round_robin");
        assert_eq!(
            pool.select(b"", &[]),
            None,
            "no peers before the first resolution"
        );
        pool.refresh().await;
        let turns: Vec<_> = (0..6).map(|_| pool.select(b"", &[]).unwrap()).collect();
        assert_eq!(turns[..3], turns[3..], "one turn each, in order");
        let mut seen = turns[..3].to_vec();
        seen.sort();
        assert_eq!(seen, [peer(1), peer(2), peer(3)]);
        for _ in 0..6 {
            assert_eq!(pool.select(b"", &[peer(1), peer(3)]), Some(peer(2)));
        }
        assert_eq!(pool.select(b"", &[peer(1), peer(2), peer(3)]), None);
        pool.eject(peer(2));
        let after: Vec<_> = (0..6).map(|_| pool.select(b"", &[]).unwrap()).collect();
        assert!(!after.contains(&peer(2)), "{after:?}");
        assert!(
            after.contains(&peer(1)) && after.contains(&peer(3)),
            "{after:?}"
        );
        assert_eq!(pool.peer_counts(), (2, 3));
    }

    #[tokio::test]
    async fn random_choices_reach_every_ready_peer() {
        let pool = pool("random");
        pool.refresh().await;
        pool.eject(peer(3));
        let mut seen: Vec<_> = (0..200).map(|_| pool.select(b"", &[]).unwrap()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, [peer(1), peer(2)]);
    }
}
