//! An upstream's `circuit_breaker`: when it opens and how it closes again, merged with
//! `defaults.upstream`.

use crate::config::compile::{merged, Compiler};
use crate::config::raw::RawCircuitBreaker;
use crate::config::{builtin, BreakerSpec};

impl Compiler<'_> {
    pub(super) fn breaker(
        &mut self,
        at: &str,
        raw: Option<&RawCircuitBreaker>,
        defaults: Option<&RawCircuitBreaker>,
    ) -> BreakerSpec {
        let empty = RawCircuitBreaker::default();
        let (raw, defaults) = (raw.unwrap_or(&empty), defaults.unwrap_or(&empty));
        let at = format!("{at}.circuit_breaker");
        let error_percent = merged(
            raw.error_percent,
            defaults.error_percent,
            builtin::ERROR_PERCENT,
        );
        if !(1..=100).contains(&error_percent) {
            self.error(format!("{at}.error_percent"), "must be between 1 and 100");
        }
        let min_requests = merged(
            raw.min_requests,
            defaults.min_requests,
            builtin::MIN_REQUESTS,
        );
        let half_open_probes = merged(
            raw.half_open_probes,
            defaults.half_open_probes,
            builtin::HALF_OPEN_PROBES,
        );
        for (key, value) in [
            ("min_requests", min_requests),
            ("half_open_probes", half_open_probes),
        ] {
            if value == 0 {
                self.error(format!("{at}.{key}"), "must be at least 1");
            }
        }
        let window = merged(raw.window, defaults.window, builtin::WINDOW);
        let open_for = merged(raw.open_for, defaults.open_for, builtin::OPEN_FOR);
        BreakerSpec {
            error_percent,
            min_requests,
            window: self.positive(&format!("{at}.window"), window),
            open_for: self.positive(&format!("{at}.open_for"), open_for),
            half_open_probes,
            count_5xx: merged(raw.count_5xx, defaults.count_5xx, builtin::COUNT_5XX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::{assert_file_errors, file};
    use std::time::Duration;

    #[test]
    fn circuit_breakers() {
        let config = file("defaults: { upstream: { circuit_breaker: { open_for: 5s, count_5xx: false } } }\nupstreams: { a: { targets: [\"a:1\"], circuit_breaker: { error_percent: 20 } } }\n");
        let b = &config.upstreams[0].circuit_breaker;
        assert_eq!(
            (b.error_percent, b.open_for, b.count_5xx),
            (20, Duration::from_secs(5), false)
        );
        assert_eq!(
            (b.min_requests, b.window, b.half_open_probes),
            (
                builtin::MIN_REQUESTS,
                builtin::WINDOW,
                builtin::HALF_OPEN_PROBES
            )
        );
        let at = "upstreams.a.circuit_breaker";
        assert_file_errors(&[(
            "upstreams: { a: { targets: [\"a:1\"], circuit_breaker: { error_percent: 0, min_requests: 0, window: 0s } } }",
            &[
                &format!("{at}.error_percent: must be between 1 and 100"),
                &format!("{at}.min_requests: must be at least 1"),
                &format!("{at}.window: must be greater than zero"),
            ],
        )]);
    }
}
