//! Overload shedding (the audit's "dynamic adjustment based on system load"): when Usher's
//! own in-flight requests, or the fill of the route's upstream bulkhead, reach a tier's
//! `shed_at`, that tier's requests are refused with 503 and `Retry-After` before they cost
//! anything more. Lower tiers have lower thresholds, so they go first; a tier without
//! `shed_at` is never shed (the bulkhead still caps it).

use crate::config::{SheddingSpec, Tiers};

/// The load, 0 (idle) to 1 (at capacity) or above: the higher of Usher's own in-flight
/// count against `max_in_flight` and the upstream bulkhead's fill, when that counts.
pub fn load(spec: &SheddingSpec, in_flight: i64, upstream: Option<(u32, u32)>) -> f64 {
    let own = in_flight.max(0) as f64 / f64::from(spec.max_in_flight);
    let upstream = match upstream {
        Some((used, capacity)) if spec.upstream_bulkhead && capacity > 0 => {
            f64::from(used) / f64::from(capacity)
        }
        _ => 0.0,
    };
    own.max(upstream)
}

/// How many tiers are being shed at `load`.
pub fn level(tiers: &Tiers, load: f64) -> usize {
    tiers
        .levels
        .iter()
        .filter(|tier| tier.shed_at.is_some_and(|at| load >= at))
        .count()
}

/// Whether a caller of tier `tier` is shed at `load`.
pub fn sheds(tiers: &Tiers, tier: usize, load: f64) -> bool {
    tiers.levels[tier].shed_at.is_some_and(|at| load >= at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tier;
    use std::sync::Arc;
    use std::time::Duration;

    fn tiers() -> Tiers {
        let tier = |name: &str, shed_at| Tier {
            name: Arc::from(name),
            multiplier: 1.0,
            shed_at,
        };
        Tiers {
            levels: vec![
                tier("premium", None),
                tier("standard", Some(0.9)),
                tier("free", Some(0.7)),
            ],
            default: 1,
            anonymous: 2,
        }
    }

    #[test]
    fn lower_tiers_go_first() {
        let spec = SheddingSpec {
            max_in_flight: 100,
            upstream_bulkhead: true,
            retry_after: Duration::from_secs(1),
        };
        let tiers = tiers();
        let calm = load(&spec, 50, Some((10, 100)));
        assert_eq!(level(&tiers, calm), 0);
        let busy_upstream = load(&spec, 10, Some((75, 100)));
        assert_eq!(level(&tiers, busy_upstream), 1);
        assert!(sheds(&tiers, 2, busy_upstream));
        assert!(!sheds(&tiers, 1, busy_upstream));
        let saturated = load(&spec, 100, None);
        assert_eq!(level(&tiers, saturated), 2);
        assert!(!sheds(&tiers, 0, saturated));
        let ignored = load(
            &SheddingSpec {
                upstream_bulkhead: false,
                ..spec
            },
            0,
            Some((100, 100)),
        );
        assert_eq!(ignored, 0.0);
    }
}
