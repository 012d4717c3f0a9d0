//! Idempotency-Key at the edge (draft-ietf-httpapi-idempotency-key-header-07): a retried
//! money request (a purchase, a payment, a mint) runs once, and its retries get the first
//! answer.
//!
//! A key is scoped to the caller (tenant, credential kind and subject), so nobody can
//! replay another caller's response. The request's fingerprint (method, normalized path,
//! body) is kept with it:
//!
//! ```text
//! no record            → reserve (in flight, with a lease) → forward; on the answer, store it
//! same fingerprint     → in flight: 409 (Retry-After); completed: the stored answer replayed
//!                        with Idempotent-Replayed: true; lease run out: 409 outcome unknown
//! other fingerprint    → 422
//! ```
//!
//! Responses are stored (errors too, as the draft says) for the route's `ttl`; nothing is
//! stored when the upstream was never reached (the reservation is given back, so the client
//! may try again), and a request whose fate is unknown (the upstream was reached but no
//! whole answer came back, or the replica died) is never run again at the edge: its key
//! answers 409 `idempotency_outcome_unknown` until `ttl`, and the service, which gets the
//! key too, decides.
//!
//! Records live in the Redis every replica shares when one is configured (`shared`; if it
//! cannot answer, these routes answer 503: money fails closed), else in this process
//! (`local`, which survives reloads).

pub mod key;
mod local;
mod shared;

use crate::snapshot::Snapshot;
use crate::store::Place;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// A response as kept for replay: the upstream's status, its headers minus hop-by-hop and
/// per-message ones, and its body.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// What a reservation found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reserved {
    /// The first request with this key: go on, then complete or release it.
    Fresh,
    /// The same request completed: its answer.
    Replay(Arc<Stored>),
    /// The same request completed, but its answer was larger than the route keeps.
    NotReplayable,
    /// The same request is being served now.
    InFlight,
    /// The same request reached the upstream and no answer was recorded before its lease
    /// ran out.
    OutcomeUnknown,
    /// The key was used for another request.
    Mismatch,
    /// The store cannot take the key (it is full).
    Unavailable,
}

/// The request a key stands for: SHA-256 of method, normalized path, query and body.
pub type Fingerprint = [u8; 32];

pub fn fingerprint(method: &str, path: &str, query: &str, body: &[u8]) -> Fingerprint {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), query.as_bytes()] {
        // Length-prefixed, so no part can run into the next.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(body);
    hash.finalize().into()
}

/// The caller-scoped name of `key`: each part length-prefixed, so no claim value can make
/// two callers' scopes meet.
pub fn scoped(tenant: &str, source: &str, subject: &str, key: &str) -> String {
    let mut scoped = String::new();
    for part in [tenant, source, subject, key] {
        scoped.push_str(&part.len().to_string());
        scoped.push(':');
        scoped.push_str(part);
    }
    scoped
}

/// Where records are kept: this process's records (one store per process, carried over
/// by every reload), or the shared Redis, which the snapshot in force names.
pub struct Store {
    local: local::LocalStore,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            local: local::LocalStore::new(local::MAX_RECORDS, local::SHARDS),
        }
    }
}

impl Store {
    /// Reserves `key` for the request `fingerprint` under `token`, in flight for `lease`,
    /// remembered for `ttl`.
    pub async fn reserve(
        &self,
        records: Place<'_>,
        key: &str,
        fingerprint: Fingerprint,
        token: &str,
        lease: Duration,
        ttl: Duration,
    ) -> Reserved {
        match records {
            Place::Local => self.local.reserve(key, fingerprint, token, lease, ttl),
            Place::Missing => Reserved::Unavailable,
            Place::Shared(store, spec) => {
                let key = shared::record_key(&spec.key_prefix, key);
                let reply = store
                    .guarded(spec, |redis| {
                        shared::reserve(redis, &key, &fingerprint, token, lease, ttl)
                    })
                    .await;
                match reply {
                    Some(Ok(reserved)) => reserved,
                    Some(Err(_)) | None => Reserved::Unavailable,
                }
            }
        }
    }

    /// Records the answer to a reserved request (`None`: too large to keep). When the
    /// shared store cannot take it, the key's lease runs out and it answers "unknown".
    pub async fn complete(
        &self,
        records: Place<'_>,
        key: &str,
        token: &str,
        answer: Option<Stored>,
    ) {
        match records {
            Place::Local => self.local.complete(key, token, answer.map(Arc::new)),
            Place::Missing => {}
            Place::Shared(store, spec) => {
                let key = shared::record_key(&spec.key_prefix, key);
                let _ = store
                    .guarded(spec, |redis| {
                        shared::complete(redis, &key, token, answer.as_ref())
                    })
                    .await;
            }
        }
    }

    /// Gives a reservation back: the upstream never saw the request.
    pub async fn release(&self, records: Place<'_>, key: &str, token: &str) {
        match records {
            Place::Local => self.local.release(key, token),
            Place::Missing => {}
            Place::Shared(store, spec) => {
                let key = shared::record_key(&spec.key_prefix, key);
                let _ = store
                    .guarded(spec, |redis| shared::release(redis, &key, token))
                    .await;
            }
        }
    }
}

/// A request that holds a reservation: what it learns of its answer, and what it leaves
/// behind when it ends ([`Pending::finish`]).
pub struct Pending {
    snapshot: Arc<Snapshot>,
    key: String,
    token: String,
    max_response: u64,
    head: Option<(u16, Vec<(HeaderName, HeaderValue)>)>,
    body: Vec<u8>,
    too_large: bool,
    /// The upstream's answer came in whole (its end of stream, or a head without a body).
    whole: bool,
}

/// How a reserved request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The upstream's whole answer went through.
    Answered,
    /// The upstream never received the request (no attempt, or none connected).
    NotSent,
    /// The upstream may have acted on it, and no whole answer came back.
    Unknown,
}

impl Pending {
    pub fn new(snapshot: Arc<Snapshot>, key: String, token: String, max_response: u64) -> Self {
        Pending {
            snapshot,
            key,
            token,
            max_response,
            head: None,
            body: Vec::new(),
            too_large: false,
            whole: false,
        }
    }

    /// The upstream's final status and headers (a retry's replace an earlier attempt's).
    pub fn record_head(&mut self, status: u16, headers: &http::HeaderMap) {
        let kept = headers
            .iter()
            .filter(|(name, _)| kept_header(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        self.head = Some((status, kept));
        self.body.clear();
        self.too_large = false;
        self.whole = false;
    }

    /// The upstream's answer is complete: what the client does with it from here on (read
    /// it slowly, go away) does not make its fate unknown.
    pub fn record_end(&mut self) {
        self.whole = self.head.is_some();
    }

    /// Whether the upstream's whole answer is recorded.
    pub fn answered(&self) -> bool {
        self.whole
    }

    pub fn record_body(&mut self, chunk: &[u8]) {
        if self.too_large {
            return;
        }
        if (self.body.len() + chunk.len()) as u64 > self.max_response {
            self.too_large = true;
            self.body = Vec::new();
        } else {
            self.body.extend_from_slice(chunk);
        }
    }

    /// Stores the answer, gives the key back, or leaves it to its lease (`Unknown`: the
    /// key then answers 409 `idempotency_outcome_unknown`).
    pub async fn finish(self, ending: Ending) {
        let records = Place::of(&self.snapshot);
        let store = &self.snapshot.kept.idempotency;
        match (ending, self.head) {
            (Ending::Answered, Some((status, headers))) => {
                let answer = (!self.too_large).then(|| Stored {
                    status,
                    headers,
                    body: Bytes::from(self.body),
                });
                store
                    .complete(records, &self.key, &self.token, answer)
                    .await;
            }
            (Ending::NotSent, _) => store.release(records, &self.key, &self.token).await,
            _ => {}
        }
    }
}

/// Response headers a replay does not repeat: hop-by-hop ones (RFC 9110 section 7.6.1),
/// the framing it recomputes, and those that belong to one message.
pub fn kept_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "date"
            | "x-request-id"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_requests_apart() {
        let base = fingerprint("POST", "/buy", "", b"{\"n\":1}");
        assert_eq!(base, fingerprint("POST", "/buy", "", b"{\"n\":1}"));
        assert_ne!(base, fingerprint("PUT", "/buy", "", b"{\"n\":1}"));
        assert_ne!(base, fingerprint("POST", "/buy2", "", b"{\"n\":1}"));
        assert_ne!(base, fingerprint("POST", "/buy", "qty=2", b"{\"n\":1}"));
        assert_ne!(base, fingerprint("POST", "/buy", "", b"{\"n\":2}"));
        // The length prefixes keep the parts apart.
        assert_ne!(
            fingerprint("POST", "/a", "", b"b"),
            fingerprint("POST", "/ab", "", b"")
        );
        assert_ne!(
            fingerprint("POST", "/a", "b", b""),
            fingerprint("POST", "/a", "", b"b")
        );
    }

    #[test]
    fn a_replay_repeats_the_answer_not_the_message() {
        for dropped in [
            "connection",
            "transfer-encoding",
            "content-length",
            "date",
            "x-request-id",
        ] {
            assert!(!kept_header(&HeaderName::from_static(dropped)), "{dropped}");
        }
        for kept in ["content-type", "location", "etag", "set-cookie"] {
            assert!(kept_header(&HeaderName::from_static(kept)), "{kept}");
        }
    }
}
