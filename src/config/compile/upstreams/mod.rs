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
