//! Refuses tokens revoked before they expire (a logout, a password change, a stolen
//! token), by their `jti`. The auth service marks a token revoked by writing a key
//! (`session:blacklist:{jti}` by default) in the Redis Usher shares; a file of ids serves
//! where there is no Redis, and on top of it.
//!
//! Redis answers are reused for `cache_ttl` per `jti`, so a revocation reaches every
//! replica within that time. When Redis cannot answer, an answer up to `stale_if_error`
//! old still counts (callers active before the outage keep working; nothing revoked during
//! it could be learned anyway); for other tokens the route's `on_dependency_failure`
//! decides (closed: 503).

use crate::config::{RedisSpec, RevocationSpec};
use crate::ratelimit::Limiter;
use crate::telemetry::metrics::METRICS;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Valid,
    Revoked,
    /// Redis could not answer and the file does not list the token.
    Unavailable,
}

pub struct Revocation {
    key_template: String,
    cache_ttl: std::time::Duration,
    stale_if_error: std::time::Duration,
    /// Ids listed in the file.
    listed: HashSet<String>,
    /// Redis's answers: revoked or not, and when.
    answers: Mutex<HashMap<String, (bool, Instant)>>,
}

/// Answers beyond this empty the cache (the cheapest bounded policy).
const MAX_ANSWERS: usize = 100_000;

impl Revocation {
    /// Reads the file of revoked ids, if one is configured.
    pub fn load(spec: &RevocationSpec) -> Result<Revocation, String> {
        let listed = match &spec.file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read \"{path}\": {e}"))?
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_string)
                .collect(),
            None => HashSet::new(),
        };
        Ok(Revocation {
            key_template: spec.key_template.clone(),
            cache_ttl: spec.cache_ttl,
            stale_if_error: spec.stale_if_error,
            listed,
            answers: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the token `jti` is revoked: the file first, then Redis when configured.
    pub async fn check(&self, jti: &str, limiter: &Limiter, redis: Option<&RedisSpec>) -> Status {
        if self.listed.contains(jti) {
            return counted(Status::Revoked, "file");
        }
        if let Some(revoked) = self.cached(jti, self.cache_ttl) {
            return counted(status(revoked), "cache");
        }
        let key = self.key_template.replace("{jti}", jti);
        match limiter.key_exists(&key, redis).await {
            None => counted(Status::Valid, "file"),
            Some(Ok(revoked)) => {
                let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
                if answers.len() >= MAX_ANSWERS {
                    answers.clear();
                }
                answers.insert(jti.to_string(), (revoked, Instant::now()));
                counted(status(revoked), "redis")
            }
            Some(Err(())) => match self.cached(jti, self.stale_if_error) {
                Some(revoked) => counted(status(revoked), "stale"),
                None => counted(Status::Unavailable, "redis"),
            },
        }
    }

    fn cached(&self, jti: &str, max_age: std::time::Duration) -> Option<bool> {
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let (revoked, at) = answers.get(jti)?;
        (at.elapsed() < max_age).then_some(*revoked)
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
