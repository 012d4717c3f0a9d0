//! An upstream's `health_check`: how its peers are probed, merged with `defaults.upstream`.

use crate::config::compile::{merged, Compiler};
use crate::config::raw::RawHealthCheck;
use crate::config::{builtin, HealthCheckKind, HealthCheckSpec};

impl Compiler<'_> {
    pub(super) fn health_check(
        &mut self,
        at: &str,
        raw: Option<&RawHealthCheck>,
        defaults: Option<&RawHealthCheck>,
    ) -> HealthCheckSpec {
        let empty = RawHealthCheck::default();
        let (raw, defaults) = (raw.unwrap_or(&empty), defaults.unwrap_or(&empty));
        let at = format!("{at}.health_check");
        let path = raw.path.as_ref().or(defaults.path.as_ref());
        let kind = match merged(
            raw.kind.as_deref(),
            defaults.kind.as_deref(),
            builtin::HC_TYPE,
        ) {
            "tcp" => {
                if raw.path.is_some() {
                    self.error(format!("{at}.path"), "a path applies only to type: http");
                }
                HealthCheckKind::Tcp
            }
            "http" => match path {
                Some(path) if path.starts_with('/') => HealthCheckKind::Http { path: path.clone() },
                Some(path) => {
                    self.error(
                        format!("{at}.path"),
                        format!("path \"{path}\" must start with /"),
                    );
                    HealthCheckKind::Tcp
                }
                None => {
                    self.error(
                        format!("{at}.path"),
                        "type: http needs a path, such as /health",
                    );
                    HealthCheckKind::Tcp
                }
            },
            other => {
                self.error(
                    format!("{at}.type"),
                    format!("unknown health check type \"{other}\": expected tcp or http"),
                );
                HealthCheckKind::Tcp
            }
        };
        let interval = merged(raw.interval, defaults.interval, builtin::HC_INTERVAL);
        let timeout = merged(raw.timeout, defaults.timeout, builtin::HC_TIMEOUT);
        self.positive(&format!("{at}.interval"), interval);
        self.positive(&format!("{at}.timeout"), timeout);
        if timeout > interval {
            self.error(
                format!("{at}.timeout"),
                "must not be longer than the interval",
            );
        }
        let healthy_threshold = merged(
            raw.healthy_threshold,
            defaults.healthy_threshold,
            builtin::HC_HEALTHY,
        );
        let unhealthy_threshold = merged(
            raw.unhealthy_threshold,
            defaults.unhealthy_threshold,
            builtin::HC_UNHEALTHY,
        );
        for (key, value) in [
            ("healthy_threshold", healthy_threshold),
            ("unhealthy_threshold", unhealthy_threshold),
        ] {
            if value == 0 {
                self.error(format!("{at}.{key}"), "must be at least 1");
            }
        }
        HealthCheckSpec {
            kind,
            interval,
            timeout,
            healthy_threshold,
            unhealthy_threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::{assert_file_errors, file};
    use std::time::Duration;

    #[test]
    fn health_checks() {
        let config = file("defaults: { upstream: { health_check: { type: http, path: /health, interval: 2s } } }\nupstreams:\n  a: { targets: [\"a:1\"] }\n  b: { targets: [\"b:1\"], health_check: { type: tcp, healthy_threshold: 1 } }\n");
        let (a, b) = (
            &config.upstreams[0].health_check,
            &config.upstreams[1].health_check,
        );
        assert_eq!(
            a.kind,
            HealthCheckKind::Http {
                path: "/health".into()
            }
        );
        assert_eq!(
            (a.interval, a.timeout),
            (Duration::from_secs(2), builtin::HC_TIMEOUT)
        );
        assert_eq!(
            (b.kind.clone(), b.healthy_threshold, b.unhealthy_threshold),
            (HealthCheckKind::Tcp, 1, builtin::HC_UNHEALTHY)
        );
        let at = "upstreams.a.health_check";
        assert_file_errors(&[
            ("upstreams: { a: { targets: [\"a:1\"], health_check: { path: /h } } }", &[&format!("{at}.path: a path applies only to type: http")]),
            ("upstreams: { a: { targets: [\"a:1\"], health_check: { type: http, path: h } } }", &[&format!("{at}.path: path \"h\" must start with /")]),
            ("upstreams: { a: { targets: [\"a:1\"], health_check: { type: udp } } }", &[&format!("{at}.type: unknown health check type \"udp\": expected tcp or http")]),
            ("upstreams: { a: { targets: [\"a:1\"], health_check: { interval: 1s, timeout: 2s, unhealthy_threshold: 0 } } }", &[
                &format!("{at}.timeout: must not be longer than the interval"),
                &format!("{at}.unhealthy_threshold: must be at least 1"),
            ]),
        ]);
    }
}
