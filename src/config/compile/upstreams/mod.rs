//! `upstreams` and `defaults.upstream`: each pool's targets, load balancing, retries and
//! bulkhead, with its health check, timeouts and circuit breaker compiled by the modules
//! below, every key merged with `defaults.upstream`.

use super::{is_label, merged, Compiler};
use crate::config::raw::RawUpstream;
use crate::config::{bounds, builtin, HashKey, LoadBalancing, Target, UpstreamSpec};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

mod breaker;
mod health_check;
mod timeouts;

impl Compiler<'_> {
    pub(super) fn upstreams(
        &mut self,
        raw: &BTreeMap<String, RawUpstream>,
        defaults: &RawUpstream,
    ) -> Vec<UpstreamSpec> {
        if !defaults.targets.is_empty() {
            self.error(
                "defaults.upstream.targets",
                "targets belong to each upstream, not to defaults",
            );
        }
        raw.iter()
            .map(|(name, upstream)| self.upstream(name, upstream, defaults))
            .collect()
    }

    fn upstream(&mut self, name: &str, raw: &RawUpstream, defaults: &RawUpstream) -> UpstreamSpec {
        let at = format!("upstreams.{name}");
        if !is_label(name) {
            self.error(
                &at,
                "upstream names may hold only lower-case letters, digits, - and _",
            );
        } else if name.len() > bounds::MAX_NAME {
            self.error(
                &at,
                format!(
                    "upstream names may be at most {} characters",
                    bounds::MAX_NAME
                ),
            );
        }
        if raw.targets.is_empty() {
            self.error(
                format!("{at}.targets"),
                "at least one host:port target is required",
            );
        }
        let targets = raw
            .targets
            .iter()
            .enumerate()
            .filter_map(|(index, text)| {
                let target = parse_target(text);
                if target.is_none() {
                    self.error(
                        format!("{at}.targets[{index}]"),
                        format!("invalid target \"{text}\": expected host:port, such as tickets:3004 or 10.0.0.7:3004"),
                    );
                }
                target
            })
            .collect();

        let lb = self.load_balancing(&at, raw, defaults);
        let health_check = self.health_check(
            &at,
            raw.health_check.as_ref(),
            defaults.health_check.as_ref(),
        );
        let timeouts = self.timeouts(&at, raw.timeouts.as_ref(), defaults.timeouts.as_ref());
        let circuit_breaker = self.breaker(
            &at,
            raw.circuit_breaker.as_ref(),
            defaults.circuit_breaker.as_ref(),
        );
        let retries = merged(raw.retries, defaults.retries, builtin::RETRIES);
        if retries > 5 {
            self.error(format!("{at}.retries"), "at most 5 retries");
        }
        let max_in_flight = merged(
            raw.max_in_flight,
            defaults.max_in_flight,
            builtin::MAX_IN_FLIGHT,
        );
        if max_in_flight == 0 {
            self.error(format!("{at}.max_in_flight"), "must be at least 1");
        }
        let resolve_interval = merged(
            raw.resolve_interval,
            defaults.resolve_interval,
            builtin::RESOLVE_INTERVAL,
        );
        UpstreamSpec {
            name: Arc::from(name),
            targets,
            critical: merged(raw.critical, defaults.critical, builtin::CRITICAL),
            lb,
            health_check,
            timeouts,
            retries,
            max_in_flight,
            circuit_breaker,
            passive_ejection: merged(
                raw.passive_ejection,
                defaults.passive_ejection,
                builtin::PASSIVE_EJECTION,
            ),
            resolve_interval: self.positive(&format!("{at}.resolve_interval"), resolve_interval),
            sign_requests: raw.sign_requests,
        }
    }

    fn load_balancing(
        &mut self,
        at: &str,
        raw: &RawUpstream,
        defaults: &RawUpstream,
    ) -> LoadBalancing {
        let lb = merged(raw.lb.as_deref(), defaults.lb.as_deref(), builtin::LB);
        let hash_key = raw.hash_key.as_deref().or(defaults.hash_key.as_deref());
        match lb {
            "round_robin" | "random" if raw.hash_key.is_some() => {
                self.error(
                    format!("{at}.hash_key"),
                    "hash_key applies only to lb: consistent_hash",
                );
                LoadBalancing::RoundRobin
            }
            "round_robin" => LoadBalancing::RoundRobin,
            "random" => LoadBalancing::Random,
            "consistent_hash" => match merged(hash_key, None, builtin::HASH_KEY) {
                "client_address" => LoadBalancing::ConsistentHash(HashKey::ClientAddress),
                key => match key.strip_prefix("header:") {
                    Some(header) if http::HeaderName::from_str(header).is_ok() => {
                        LoadBalancing::ConsistentHash(HashKey::Header(header.to_ascii_lowercase()))
                    }
                    _ => {
                        self.error(
                            format!("{at}.hash_key"),
                            format!("invalid hash_key \"{key}\": expected client_address or header:<name>"),
                        );
                        LoadBalancing::RoundRobin
                    }
                },
            },
            other => {
                self.error(
                    format!("{at}.lb"),
                    format!("unknown load balancing \"{other}\": expected round_robin, random or consistent_hash"),
                );
                LoadBalancing::RoundRobin
            }
        }
    }
}

fn parse_target(text: &str) -> Option<Target> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let valid = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    valid.then(|| Target {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::{assert_file_errors, file};

    #[test]
    fn upstreams_merge_with_defaults_key_by_key() {
        let config = file(
            "defaults: { upstream: { retries: 0, critical: true } }\nupstreams:\n  a: { targets: [\"a:1\", \"[::1]:2\"] }\n  b: { targets: [\"b:1\"], retries: 3, lb: consistent_hash, hash_key: \"header:X-User\" }\n",
        );
        let (a, b) = (&config.upstreams[0], &config.upstreams[1]);
        assert_eq!(
            (a.retries, a.critical, b.retries, b.critical),
            (0, true, 3, true)
        );
        assert_eq!(
            a.targets[1],
            Target {
                host: "::1".into(),
                port: 2
            }
        );
        assert_eq!(a.lb, LoadBalancing::RoundRobin);
        assert_eq!(
            b.lb,
            LoadBalancing::ConsistentHash(HashKey::Header("x-user".into()))
        );
        assert_eq!(
            (a.max_in_flight, a.passive_ejection, a.resolve_interval),
            (
                builtin::MAX_IN_FLIGHT,
                builtin::PASSIVE_EJECTION,
                builtin::RESOLVE_INTERVAL
            )
        );
    }

    #[test]
    fn upstream_errors() {
        assert_file_errors(&[
            ("defaults: { upstream: { targets: [\"a:1\"] } }", &["defaults.upstream.targets: targets belong to each upstream, not to defaults"]),
            ("upstreams: { Tickets: { targets: [\"a:1\"] } }", &["upstreams.Tickets: upstream names may hold only lower-case letters, digits, - and _"]),
            ("upstreams: { a: { targets: [] } }", &["upstreams.a.targets: at least one host:port target is required"]),
            ("upstreams: { a: { targets: [\"a\", \"a:0\"] } }", &[
                "upstreams.a.targets[0]: invalid target \"a\": expected host:port, such as tickets:3004 or 10.0.0.7:3004",
                "upstreams.a.targets[1]: invalid target \"a:0\": expected host:port, such as tickets:3004 or 10.0.0.7:3004",
            ]),
            ("upstreams: { a: { targets: [\"a:1\"], lb: fastest } }", &["upstreams.a.lb: unknown load balancing \"fastest\": expected round_robin, random or consistent_hash"]),
            ("upstreams: { a: { targets: [\"a:1\"], hash_key: client_address } }", &["upstreams.a.hash_key: hash_key applies only to lb: consistent_hash"]),
            ("upstreams: { a: { targets: [\"a:1\"], lb: consistent_hash, hash_key: cookie } }", &["upstreams.a.hash_key: invalid hash_key \"cookie\": expected client_address or header:<name>"]),
            ("upstreams: { a: { targets: [\"a:1\"], retries: 6, max_in_flight: 0, resolve_interval: 0s } }", &[
                "upstreams.a.retries: at most 5 retries",
                "upstreams.a.max_in_flight: must be at least 1",
                "upstreams.a.resolve_interval: must be greater than zero",
            ]),
        ]);
    }
}
