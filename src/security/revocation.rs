//! Refuses tokens revoked before they expire (a logout, a password change, a stolen
//! token), by their `jti`. The auth service marks a token revoked by writing a key
//! (`session:blacklist:{jti}` by default) in the Redis Usher shares; a file of ids serves
//! where there is no Redis, and on top of it.
//!
//! Redis answers are reused for `cache_ttl` per `jti`, so a revocation reaches every
//! replica within that time. When Redis cannot answer, an answer up to `stale_if_error`
//! old still counts, so callers active before the outage keep working (a token revoked
//! after its last answer then passes until Redis is back or the answer is too old); for
//! other tokens the route's `on_dependency_failure` decides (closed: 503).

use crate::config::{Errors, RedisSpec, RevocationSpec};
use crate::ratelimit::{Limiter, Lookup};
use crate::telemetry::metrics::METRICS;
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Valid,
    Revoked,
    /// Redis could not answer and the file does not list the token.
    Unavailable,
}

pub struct Revocation {
    key_template: String,
    cache_ttl: Duration,
    stale_if_error: Duration,
    /// Ids listed in the file.
    listed: HashSet<String>,
}

impl Revocation {
    /// Reads the file of revoked ids, if one is configured; reports a problem at its key.
    pub fn load(spec: &RevocationSpec, errors: &mut Errors) -> Option<Revocation> {
        let listed = match &spec.file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| {
                    let message = format!("cannot read \"{path}\": {e}");
                    errors.error("authentication.revocation.file", message);
                })
                .ok()?
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_string)
                .collect(),
            None => HashSet::new(),
        };
        Some(Revocation {
            key_template: spec.key_template.clone(),
            cache_ttl: spec.cache_ttl,
            stale_if_error: spec.stale_if_error,
            listed,
        })
    }

    /// Whether the token `jti` is revoked: the file first, then Redis when configured.
    /// Redis's answers are remembered by the rate limiter's store, which outlives reloads.
    pub async fn check(&self, jti: &str, limiter: &Limiter, redis: Option<&RedisSpec>) -> Status {
        if self.listed.contains(jti) {
            return counted(Status::Revoked, "file");
        }
        let key = self.key_template.replace("{jti}", jti);
        match limiter
            .key_exists(&key, redis, self.cache_ttl, self.stale_if_error)
            .await
        {
            Lookup::NoStore => counted(Status::Valid, "file"),
            Lookup::Fresh(revoked) => counted(status(revoked), "redis"),
            Lookup::Cached(revoked) => counted(status(revoked), "cache"),
            Lookup::Stale(revoked) => counted(status(revoked), "stale"),
            Lookup::Unavailable => counted(Status::Unavailable, "redis"),
        }
    }
}

fn status(revoked: bool) -> Status {
    if revoked {
        Status::Revoked
    } else {
        Status::Valid
    }
}

fn counted(status: Status, source: &str) -> Status {
    let result = match status {
        Status::Valid => "valid",
        Status::Revoked => "revoked",
        Status::Unavailable => "unavailable",
    };
    METRICS
        .revocation_checks
        .with_label_values(&[result, source])
        .inc();
    status
}
