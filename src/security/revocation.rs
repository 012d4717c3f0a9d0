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
use crate::telemetry::metrics::{labels, CounterGrid};
use once_cell::sync::Lazy;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Revocation answers remembered, by Redis key; beyond this the oldest go.
const MAX_ANSWERS: usize = 100_000;

/// A check's answer: the position of its name in [`labels::REVOCATION_RESULTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Valid = 0,
    Revoked = 1,
    /// Redis could not answer and the file does not list the token.
    Unavailable = 2,
}

/// Where a check's answer came from: the position of its name in
/// [`labels::REVOCATION_SOURCES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    File = 0,
    Cache = 1,
    Redis = 2,
    /// An older answer, while Redis cannot answer.
    Stale = 3,
}

type Checks =
    CounterGrid<{ labels::REVOCATION_RESULTS.len() }, { labels::REVOCATION_SOURCES.len() }>;

/// `usher_revocation_checks_total`, by status and source.
static CHECKS: Lazy<Checks> = Lazy::new(|| {
    let (results, sources) = (&labels::REVOCATION_RESULTS, &labels::REVOCATION_SOURCES);
    CounterGrid::new(|m| &m.revocation_checks, None, results, sources)
});

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
            return counted(Status::Revoked, Source::File);
        }
        let (store, spec) = match (store, spec) {
            (Some(store), Some(spec)) => (store, spec),
            (None, None) => return counted(Status::Valid, Source::File),
            // Redis is configured but its client could not be set up: no answer is no
            // permission, the route's on_dependency_failure decides.
            (None, Some(_)) | (Some(_), None) => {
                return counted(Status::Unavailable, Source::Redis)
            }
        };
        let key = self.key_template.replace("{jti}", jti);
        let remembered = |max_age: Duration| {
            self.answers.find(key.as_str(), |revoked, age| {
                (age < max_age).then_some(*revoked)
            })
        };
        if let Some(revoked) = remembered(self.cache_ttl) {
            return counted(status(revoked), Source::Cache);
        }
        match store.guarded(spec, |redis| redis.exists(&key)).await {
            Some(Ok(revoked)) => {
                self.answers.insert(key, revoked);
                counted(status(revoked), Source::Redis)
            }
            Some(Err(_)) | None => match remembered(self.stale_if_error) {
                Some(revoked) => counted(status(revoked), Source::Stale),
                None => counted(Status::Unavailable, Source::Redis),
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

fn counted(status: Status, source: Source) -> Status {
    CHECKS.get(status as usize, source as usize).inc();
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_counted_under_their_names() {
        let results = labels::REVOCATION_RESULTS;
        assert_eq!(results[Status::Valid as usize], "valid");
        assert_eq!(results[Status::Revoked as usize], "revoked");
        assert_eq!(results[Status::Unavailable as usize], "unavailable");
        let sources = labels::REVOCATION_SOURCES;
        for (source, name) in [
            (Source::File, "file"),
            (Source::Cache, "cache"),
            (Source::Redis, "redis"),
            (Source::Stale, "stale"),
        ] {
            assert_eq!(sources[source as usize], name);
        }
    }
}
