//! `rate_limiting.redis`: where the shared counts live, how long to wait for them, and how
//! Usher copes while they cannot be reached.

use crate::config::compile::{merged, Compiler};
use crate::config::raw::RawRedis;
use crate::config::{builtin, RedisSpec, SecretRef};
use std::time::Duration;

/// A slower deadline would put seconds on every request while Redis is sick.
const MAX_TIMEOUT: Duration = Duration::from_secs(1);

const REDIS_SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
    "rediss-sentinel",
];

impl Compiler<'_> {
    pub(super) fn redis(&mut self, raw: &RawRedis) -> RedisSpec {
        let at = "rate_limiting.redis";
        let url = match (&raw.url, &raw.url_env) {
            (Some(url), None) => {
                if let Err(message) = check_redis_url(url) {
                    self.error(format!("{at}.url"), message);
                }
                SecretRef::Literal(url.clone())
            }
            (None, Some(env)) => SecretRef::Env(env.clone()),
            _ => {
                self.error(at, "set exactly one of url or url_env");
                SecretRef::Literal(String::new())
            }
        };
        let password = match (&raw.password_env, &raw.password_file) {
            (Some(env), None) => SecretRef::Env(env.clone()),
            (None, Some(file)) => SecretRef::File(file.clone()),
            (None, None) => {
                self.error(
                    at,
                    "a Redis password is required: set password_env or password_file",
                );
                SecretRef::Literal(String::new())
            }
            (Some(_), Some(_)) => {
                self.error(at, "set only one of password_env and password_file");
                SecretRef::Literal(String::new())
            }
        };
        let timeout = merged(raw.timeout, None, builtin::REDIS_TIMEOUT);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            self.error(
                format!("{at}.timeout"),
                "must be between 1ms and 1s (the default, 50ms, suits a Redis in the same zone)",
            );
        }
        let fallback_share = merged(raw.fallback_share, None, builtin::REDIS_FALLBACK_SHARE);
        if raw.fallback_share.is_some() && raw.replicas_env.is_some() {
            self.error(
                format!("{at}.replicas_env"),
                "set fallback_share or replicas_env (which makes it 1 / replicas), not both",
            );
        } else if !(fallback_share > 0.0 && fallback_share <= 1.0) {
            self.error(
                format!("{at}.fallback_share"),
                "must be a fraction above 0 and at most 1 (for example 0.34 with three replicas)",
            );
        }
        let failure_threshold = merged(
            raw.failure_threshold,
            None,
            builtin::REDIS_FAILURE_THRESHOLD,
        );
        if failure_threshold == 0 {
            self.error(
                format!("{at}.failure_threshold"),
                "must be greater than zero",
            );
        }
        let required_for_readiness =
            match merged(raw.readiness.as_deref(), None, builtin::REDIS_READINESS) {
                "required" => true,
                "reported" => false,
                other => {
                    self.error(
                        format!("{at}.readiness"),
                        format!("\"{other}\": expected required or reported"),
                    );
                    true
                }
            };
        RedisSpec {
            url,
            username: raw.username.clone(),
            password,
            timeout,
            key_prefix: {
                let prefix =
                    merged(raw.key_prefix.as_deref(), None, builtin::REDIS_KEY_PREFIX).to_string();
                if prefix.contains(['{', '}']) {
                    self.error(
                        format!("{at}.key_prefix"),
                        "must not contain { or }: Usher tags each bucket's keys itself, and a tag in the prefix would put every bucket in one Cluster slot",
                    );
                }
                prefix
            },
            failure_threshold,
            retry_interval: self.positive(
                &format!("{at}.retry_interval"),
                merged(raw.retry_interval, None, builtin::REDIS_RETRY_INTERVAL),
            ),
            fallback_share,
            replicas_env: raw.replicas_env.clone(),
            required_for_readiness,
        }
    }
}

/// A Redis URL must be one Usher can use, and must not carry the password.
pub fn check_redis_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("\"{url}\" is not a URL such as redis://redis:6379"));
    };
    if !REDIS_SCHEMES.contains(&scheme) {
        return Err(format!(
            "unsupported scheme \"{scheme}\": expected one of {}",
            REDIS_SCHEMES.join(", ")
        ));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "credentials do not belong in the URL, which is logged; use username and password_env or password_file"
                .to_string(),
        );
    }
    if authority.is_empty() {
        return Err("the URL names no host".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::section;

    #[test]
    fn redis_urls_without_credentials_only() {
        assert!(check_redis_url("redis://redis:6379/0").is_ok());
        assert!(check_redis_url("redis-sentinel://s1:26379/0?sentinelServiceName=main").is_ok());
        assert!(check_redis_url("rediss://:secret@redis:6379").is_err());
        assert!(check_redis_url("http://redis").is_err());
        assert!(check_redis_url("redis:6379").is_err());
    }

    fn redis(yaml: &str) -> (RedisSpec, Vec<String>) {
        section(yaml, |c, raw| c.redis(raw))
    }

    #[test]
    fn redis_defaults_and_errors() {
        let (spec, errors) = redis("{ url_env: R, password_file: p }");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (spec.url, spec.password),
            (SecretRef::Env("R".into()), SecretRef::File("p".into()))
        );
        assert_eq!(
            (spec.timeout, spec.key_prefix.as_str()),
            (builtin::REDIS_TIMEOUT, builtin::REDIS_KEY_PREFIX)
        );
        assert_eq!(
            (spec.failure_threshold, spec.retry_interval),
            (
                builtin::REDIS_FAILURE_THRESHOLD,
                builtin::REDIS_RETRY_INTERVAL
            )
        );
        assert_eq!(
            (spec.fallback_share, spec.required_for_readiness),
            (builtin::REDIS_FALLBACK_SHARE, true)
        );
        let at = "rate_limiting.redis";
        for (yaml, expected) in [
            ("{ url: \"redis://r\", url_env: R, password_env: P, password_file: p }", vec![
                format!("{at}: set exactly one of url or url_env"),
                format!("{at}: set only one of password_env and password_file"),
            ]),
            ("{ url: \"http://r\" }", vec![
                format!("{at}.url: unsupported scheme \"http\": expected one of redis, rediss, redis-cluster, rediss-cluster, redis-sentinel, rediss-sentinel"),
                format!("{at}: a Redis password is required: set password_env or password_file"),
            ]),
            ("{ url_env: R, password_env: P, timeout: 2s, fallback_share: 0, failure_threshold: 0, readiness: maybe, key_prefix: \"{x}\", retry_interval: 0s }", vec![
                format!("{at}.timeout: must be between 1ms and 1s (the default, 50ms, suits a Redis in the same zone)"),
                format!("{at}.fallback_share: must be a fraction above 0 and at most 1 (for example 0.34 with three replicas)"),
                format!("{at}.failure_threshold: must be greater than zero"),
                format!("{at}.readiness: \"maybe\": expected required or reported"),
                format!("{at}.key_prefix: must not contain {{ or }}: Usher tags each bucket's keys itself, and a tag in the prefix would put every bucket in one Cluster slot"),
                format!("{at}.retry_interval: must be greater than zero"),
            ]),
            ("{ url_env: R, password_env: P, fallback_share: 0.5, replicas_env: N }", vec![
                format!("{at}.replicas_env: set fallback_share or replicas_env (which makes it 1 / replicas), not both"),
            ]),
        ] {
            assert_eq!(redis(yaml).1, expected, "{yaml}");
        }
    }
}
