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
