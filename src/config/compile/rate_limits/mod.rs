//! The `rate_limiting` section (policies, default policies, tiers, shedding; the shared
//! store is [`redis`]'s) and each route's `rate_limits`.

use super::{closest, is_label, merged, Compiler};
use crate::config::raw::{RawAmount, RawPolicy, RawRateLimiting, RawRoute, RawTiers};
use crate::config::*;
use std::str::FromStr;

mod redis;

pub use redis::check_redis_url;

impl Compiler<'_> {
    pub(super) fn rate_limiting(&mut self, raw: &RawRateLimiting) -> RateLimiting {
        let redis = raw.redis.as_ref().map(|redis| self.redis(redis));
        let policies: Vec<Arc<PolicySpec>> = raw
            .policies
            .iter()
            .map(|(name, policy)| Arc::new(self.policy(name, policy)))
            .collect();
        let mut defaults = Vec::new();
        for (i, name) in raw.default_policies.iter().enumerate() {
            let at = format!("rate_limiting.default_policies[{i}]");
            let Some(index) = self.policy_index(&at, name, &policies) else {
                continue;
            };
            if policies[index]
                .key
                .iter()
                .any(|part| matches!(part, KeyPart::Param(_)))
            {
                self.error(at, format!("policy \"{name}\" keys on a path parameter; default policies apply to every route, so they cannot"));
            } else if policies[index].amount.is_some() {
                self.error(at, format!("policy \"{name}\" is a budget (it has amount); attach it to the routes whose bodies carry that amount"));
            } else if defaults.contains(&index) {
                self.error(at, format!("policy \"{name}\" is listed twice"));
            } else {
                defaults.push(index);
            }
        }
        let tiers = match &raw.tiers {
            Some(tiers) => self.tiers(tiers),
            None => Tiers {
                levels: vec![Tier {
                    name: Arc::from(builtin::TIER.0),
                    multiplier: builtin::TIER.1,
                    shed_at: None,
                }],
                default: 0,
                anonymous: 0,
            },
        };
        let shedding = raw.shedding.as_ref().map(|shedding| {
            if shedding.max_in_flight == 0 {
                self.error(
                    "rate_limiting.shedding.max_in_flight",
                    "must be greater than zero",
                );
            }
            if tiers.levels.iter().all(|tier| tier.shed_at.is_none()) {
                self.error(
                    "rate_limiting.shedding",
                    "no tier in rate_limiting.tiers has shed_at, so nothing would ever be shed",
                );
            }
            SheddingSpec {
                max_in_flight: shedding.max_in_flight,
                upstream_bulkhead: merged(
                    shedding.upstream_bulkhead,
                    None,
                    builtin::SHED_UPSTREAM_BULKHEAD,
                ),
                retry_after: self.positive(
                    "rate_limiting.shedding.retry_after",
                    merged(shedding.retry_after, None, builtin::SHED_RETRY_AFTER),
                ),
            }
        });

        RateLimiting {
            redis,
            defaults,
            policies,
            tiers,
            shedding,
        }
    }

    fn policy_index(
        &mut self,
        at: &str,
        name: &str,
        policies: &[Arc<PolicySpec>],
    ) -> Option<usize> {
        let index = policies.iter().position(|p| &*p.name == name);
        if index.is_none() {
            let hint = closest(name, policies.iter().map(|p| &*p.name))
                .map(|name| format!(" (did you mean \"{name}\"?)"))
                .unwrap_or_default();
            self.error(at, format!("unknown rate-limit policy \"{name}\"{hint}"));
        }
        index
    }

    fn policy(&mut self, name: &str, raw: &RawPolicy) -> PolicySpec {
        let at = format!("rate_limiting.policies.{name}");
        if !is_label(name) {
            self.error(
                &at,
                "policy names may hold only lower-case letters, digits, - and _",
            );
        }
        if raw.limit == 0 {
            self.error(
                format!("{at}.limit"),
                "must be at least 1 (to refuse every request, do not route it)",
            );
        }
        let window = self.positive(&format!("{at}.window"), raw.window.0);
        let key = match &raw.key {
            None => builtin::POLICY_KEY
                .iter()
                .map(|part| key_part(part).expect("the built-in key parses"))
                .collect(),
            Some(parts) if parts.is_empty() => {
                self.error(
                    format!("{at}.key"),
                    "an empty key would put every caller in one bucket; leave key out for per-caller buckets",
                );
                Vec::new()
            }
            Some(parts) => parts
                .iter()
                .enumerate()
                .filter_map(|(i, part)| {
                    key_part(part)
                        .map_err(|message| self.error(format!("{at}.key[{i}]"), message))
                        .ok()
                })
                .collect(),
        };
        let block = raw.block.as_ref().map(|block| {
            if block.after == 0 {
                self.error(format!("{at}.block.after"), "must be at least 1");
            }
            BlockSpec {
                after: block.after,
                duration: self.positive(&format!("{at}.block.duration"), block.duration.0),
            }
        });
        if raw.bot_after == Some(0) {
            self.error(format!("{at}.bot_after"), "must be at least 1");
        }
        let on_store_failure = match merged(
            raw.on_store_failure.as_deref(),
            None,
            builtin::ON_STORE_FAILURE,
        ) {
            "local" => StoreFailure::Local,
            "open" => StoreFailure::Open,
            "closed" => StoreFailure::Closed,
            other => {
                self.error(
                    format!("{at}.on_store_failure"),
                    format!("\"{other}\": expected local, open or closed"),
                );
                StoreFailure::Local
            }
        };
        let amount = raw
            .amount
            .as_ref()
            .and_then(|amount| self.amount(&at, raw, amount));
        PolicySpec {
            name: Arc::from(name),
            limit: raw.limit,
            window,
            key,
            block,
            bot_after: raw.bot_after,
            // A budget guards money: it never counts on its own while the store is away.
            on_store_failure: if amount.is_some() {
                StoreFailure::Closed
            } else {
                on_store_failure
            },
            tiered: merged(raw.tiered, None, builtin::TIERED),
            amount,
        }
    }

    /// Where an amount is in the body (a budget's, an approval's): exactly one of
    /// `length_of` and `number_at`, a JSON pointer.
    pub(in crate::config::compile) fn amount_at(
        &mut self,
        at: &str,
        length_of: &Option<String>,
        number_at: &Option<String>,
    ) -> Option<(String, Measure)> {
        let (pointer, measure, key) = match (length_of, number_at) {
            (Some(pointer), None) => (pointer, Measure::Length, "length_of"),
            (None, Some(pointer)) => (pointer, Measure::Number, "number_at"),
            _ => {
                self.error(
                    at,
                    "set exactly one of length_of: /array or number_at: /number (JSON pointers into the body)",
                );
                return None;
            }
        };
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            self.error(
                format!("{at}.{key}"),
                format!("\"{pointer}\" is not a JSON pointer: it starts with / (\"/ticketIds\")"),
            );
        }
        Some((pointer.clone(), measure))
    }

    /// A budget's `amount`, and what a budget may not be combined with.
    fn amount(&mut self, at: &str, policy: &RawPolicy, raw: &RawAmount) -> Option<AmountSpec> {
        let at = format!("{at}.amount");
        let (pointer, measure) = self.amount_at(&at, &raw.length_of, &raw.number_at)?;
        if raw
            .max_per_request
            .is_some_and(|cap| cap == 0 || cap > policy.limit)
        {
            self.error(
                format!("{at}.max_per_request"),
                format!(
                    "must be between 1 and the policy's limit ({})",
                    policy.limit
                ),
            );
        }
        let refused = [
            ("block", policy.block.is_some()),
            ("bot_after", policy.bot_after.is_some()),
            (
                "on_store_failure",
                policy
                    .on_store_failure
                    .as_deref()
                    .is_some_and(|f| f != "closed"),
            ),
        ];
        for (key, set) in refused {
            if set {
                let why = match key {
                    "on_store_failure" => "a budget fails closed: while Redis cannot answer, its requests are refused (503)",
                    _ => "a budget counts amounts, not refusals; remove it",
                };
                self.error(format!("{}.{key}", at.trim_end_matches(".amount")), why);
            }
        }
        Some(AmountSpec {
            pointer,
            measure,
            max_per_request: raw.max_per_request,
        })
    }

    fn tiers(&mut self, raw: &RawTiers) -> Tiers {
        let at = "rate_limiting.tiers";
        if raw.levels.is_empty() {
            self.error(format!("{at}.levels"), "list at least one tier");
        }
        let mut levels: Vec<Tier> = Vec::new();
        for (i, tier) in raw.levels.iter().enumerate() {
            let here = format!("{at}.levels[{i}]");
            if !is_label(&tier.name) {
                self.error(
                    format!("{here}.name"),
                    "tier names may hold only lower-case letters, digits, - and _",
                );
            }
            if levels.iter().any(|t| *t.name == *tier.name) {
                self.error(
                    format!("{here}.name"),
                    format!("tier \"{}\" is listed twice", tier.name),
                );
            }
            if !(tier.multiplier > 0.0 && tier.multiplier.is_finite()) {
                self.error(format!("{here}.multiplier"), "must be a number above 0");
            }
            if let Some(shed_at) = tier.shed_at {
                if !(shed_at > 0.0 && shed_at <= 1.0) {
                    self.error(
                        format!("{here}.shed_at"),
                        "must be a load fraction above 0 and at most 1",
                    );
                }
            }
            levels.push(Tier {
                name: Arc::from(tier.name.as_str()),
                multiplier: tier.multiplier,
                shed_at: tier.shed_at,
            });
        }
        let tiers = Tiers {
            levels,
            default: 0,
            anonymous: 0,
        };
        let mut find = |key: &str, name: &str| {
            tiers.find(name).unwrap_or_else(|| {
                self.error(
                    format!("{at}.{key}"),
                    format!("unknown tier \"{name}\": list it under levels"),
                );
                0
            })
        };
        let default = find("default", &raw.default);
        let anonymous = match &raw.anonymous {
            Some(name) => find("anonymous", name),
            None => tiers.levels.len().saturating_sub(1),
        };
        Tiers {
            default,
            anonymous,
            ..tiers
        }
    }

    /// The default policies (unless the route opts out), then the route's own.
    pub(super) fn route_limits(
        &mut self,
        at: &str,
        raw: &RawRoute,
        pattern: Option<&PathPattern>,
        rate_limiting: &RateLimiting,
    ) -> Vec<RouteLimit> {
        let mut attached: Vec<RouteLimit> = Vec::new();
        if merged(raw.default_rate_limits, None, builtin::DEFAULT_RATE_LIMITS) {
            attached.extend(rate_limiting.defaults.iter().map(|&policy| RouteLimit {
                policy,
                params: Vec::new(),
            }));
        }
        for (i, name) in raw.rate_limits.iter().enumerate() {
            let here = format!("{at}.rate_limits[{i}]");
            let Some(policy) = self.policy_index(&here, name, &rate_limiting.policies) else {
                continue;
            };
            if attached.iter().any(|a| a.policy == policy) {
                self.error(
                    here,
                    format!("policy \"{name}\" already applies to this route"),
                );
                continue;
            }
            let mut params = Vec::new();
            for part in &rate_limiting.policies[policy].key {
                let KeyPart::Param(param) = part else {
                    continue;
                };
                match pattern.and_then(|p| p.param_names().position(|n| n == param)) {
                    Some(index) => params.push(index),
                    None if pattern.is_some() => self.error(
                        &here,
                        format!("policy \"{name}\" keys on :{param}, which this route's path does not have"),
                    ),
                    None => {}
                }
            }
            attached.push(RouteLimit { policy, params });
        }
        attached
    }
}

fn key_part(text: &str) -> Result<KeyPart, String> {
    let named = |name: &str, what: &str| {
        if name.is_empty() {
            Err(format!("\"{text}\" names no {what}"))
        } else {
            Ok(name.to_string())
        }
    };
    Ok(match text.split_once(':') {
        None => match text {
            "tenant" => KeyPart::Tenant,
            "user" => KeyPart::User,
            "api_key" => KeyPart::ApiKey,
            "client" => KeyPart::Client,
            _ => return Err(format!("unknown key part \"{text}\": expected tenant, user, api_key, client, header:NAME, param:NAME or query:NAME")),
        },
        Some(("header", name)) => {
            let name = named(name, "header")?.to_ascii_lowercase();
            if http::HeaderName::from_str(&name).is_err() {
                return Err(format!("invalid header name \"{name}\""));
            }
            KeyPart::Header(name)
        }
        Some(("param", name)) => KeyPart::Param(named(name, "path parameter")?),
        Some(("query", name)) => KeyPart::Query(named(name, "query parameter")?),
        Some(_) => return Err(format!("unknown key part \"{text}\": expected tenant, user, api_key, client, header:NAME, param:NAME or query:NAME")),
    })
}

#[cfg(test)]
mod tests;
