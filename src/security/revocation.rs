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

use crate::cache::Cache;
use crate::config::{Errors, RedisSpec, RevocationSpec};
use crate::store::SharedStore;
use crate::telemetry::metrics::{labels, METRICS};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Revocation answers remembered, by Redis key; beyond this the oldest go.
const MAX_ANSWERS: usize = 100_000;

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
    /// Redis's answers (revoked or not), by key; taken over by a reload that keeps the
    /// same Redis and key template (`Revocation::inherit`).
    answers: Arc<Cache<String, bool>>,
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
            answers: Arc::new(Cache::new(MAX_ANSWERS, 16)),
        })
    }

    /// Keeps the running configuration's answers when this one asks the same keys (of the
    /// same Redis: the caller's to know); says whether it did.
    pub fn inherit(&mut self, previous: &Revocation) -> bool {
        let same = self.key_template == previous.key_template;
        if same {
            self.answers = Arc::clone(&previous.answers);
        }
        same
    }

    /// Whether the token `jti` is revoked: the file first, then the shared store when
    /// configured. An answer is reused for `cache_ttl`, and while Redis cannot answer, for
    /// `stale_if_error`.
    pub async fn check(
        &self,
        jti: &str,
        store: Option<&SharedStore>,
        spec: Option<&RedisSpec>,
    ) -> Status {
        if self.listed.contains(jti) {
            return counted(Status::Revoked, "file");
        }
        let (store, spec) = match (store, spec) {
            (Some(store), Some(spec)) => (store, spec),
            (None, None) => return counted(Status::Valid, "file"),
            // Redis is configured but its client could not be set up: no answer is no
            // permission, the route's on_dependency_failure decides.
            (None, Some(_)) | (Some(_), None) => return counted(Status::Unavailable, "redis"),
        };
        let key = self.key_template.replace("{jti}", jti);
        let remembered = |max_age: Duration| {
            self.answers.find(key.as_str(), |revoked, age| {
                (age < max_age).then_some(*revoked)
            })
        };
        if let Some(revoked) = remembered(self.cache_ttl) {
            return counted(status(revoked), "cache");
        }
        match store.guarded(spec, |redis| redis.exists(&key)).await {
            Some(Ok(revoked)) => {
                self.answers.insert(key, revoked);
                counted(status(revoked), "redis")
            }
            Some(Err(_)) | None => match remembered(self.stale_if_error) {
                Some(revoked) => counted(status(revoked), "stale"),
                None => counted(Status::Unavailable, "redis"),
            },
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
    labels::check("revocation_checks", &labels::REVOCATION_SOURCES, source);
    METRICS
        .revocation_checks
        .with_label_values(&[result, source])
        .inc();
    status
}
