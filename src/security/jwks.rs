//! Keys from the issuer's JSON Web Key Set.
//!
//! The set is fetched before a configuration goes live, then again every
//! `refresh_interval`, and when a token names a `kid` Usher does not know (one refresh at a
//! time, at most once per `min_refresh_interval`, so a stream of forged `kid`s cannot turn
//! Usher into a load generator against the issuer). A failed refresh keeps the keys it had,
//! and a reload that fetches from the same URL takes over the running set, so an outage of
//! the issuer during a reload does not leave Usher without keys.
//! Each key's algorithm comes from the JWK's own `alg`; a JWK without one is skipped, since
//! the token must never choose its algorithm.

use super::keys::VerifyingKey;
use crate::config::{JwksSpec, JwtSpec};
use arc_swap::{ArcSwap, ArcSwapOption};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use tokio::time::Instant;

/// A JWKS document larger than this is refused.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

pub struct Jwks {
    spec: JwksSpec,
    jwt: JwtSpec,
    keys: ArcSwap<HashMap<String, Arc<VerifyingKey>>>,
    /// The set the keys were made from, for a reload to take over.
    document: ArcSwapOption<JwkSet>,
    loaded: AtomicBool,
    /// When the last refresh started; held while a refresh runs (single flight).
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(spec: &JwksSpec, jwt: &JwtSpec) -> Jwks {
        Jwks {
            spec: spec.clone(),
            jwt: jwt.clone(),
            keys: ArcSwap::from_pointee(HashMap::new()),
            document: ArcSwapOption::empty(),
            loaded: AtomicBool::new(false),
            last_refresh: tokio::sync::Mutex::new(None),
        }
    }

    pub fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.load().get(kid).cloned()
    }

    /// Whether a key set was ever obtained.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Fetches the set now, unless a refresh ran less than `min_refresh_interval` ago (or
    /// one is running: then this waits for it). Returns whether it fetched.
    pub async fn refresh_if_due(&self) -> bool {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.spec.min_refresh_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.refresh().await;
        true
    }

    /// Takes over the set `previous` fetched, and its refresh schedule, when both fetch the
    /// same URL. The keys are made again from that set, under this configuration's
    /// verification settings. Says whether there was a set to take over.
    pub fn inherit(&self, previous: &Jwks) -> bool {
        if previous.spec.url != self.spec.url {
            return false;
        }
        let document = previous.document.load_full();
        let taken = document.is_some();
        if let Some(document) = document {
            self.install(document);
        }
        // Unless a refresh is running there (then this one refreshes at once).
        if let (Ok(mut mine), Ok(theirs)) = (
            self.last_refresh.try_lock(),
            previous.last_refresh.try_lock(),
        ) {
            *mine = *theirs;
        }
        taken
    }

    fn install(&self, document: Arc<JwkSet>) {
        self.keys.store(Arc::new(self.keys_of(&document)));
        self.document.store(Some(document));
        self.loaded.store(true, Ordering::Release);
    }

    async fn refresh(&self) {
        match tokio::time::timeout(self.spec.timeout, self.fetch()).await {
            Ok(Ok(document)) => {
                self.install(Arc::new(document));
                let keys = self.keys.load().len();
                tracing::info!(url = %self.spec.url, keys, "JWKS refreshed");
            }
            Ok(Err(reason)) => {
                tracing::warn!(url = %self.spec.url, reason, "JWKS refresh failed; keeping the previous keys");
            }
            Err(_) => {
                tracing::warn!(url = %self.spec.url, "JWKS refresh timed out; keeping the previous keys")
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let (status, body) =
            crate::fetch::get_body(&self.spec.url.to_string(), MAX_DOCUMENT_BYTES).await?;
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))
    }

    /// The usable keys of `set`, by kid.
    fn keys_of(&self, set: &JwkSet) -> HashMap<String, Arc<VerifyingKey>> {
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, &jwk.common.key_algorithm) else {
                tracing::warn!("JWKS key without kid or alg skipped");
                continue;
            };
            let Ok(algorithm) = Algorithm::from_str(&format!("{alg:?}")) else {
                tracing::warn!(kid, "JWKS key with a non-signing alg skipped");
                continue;
            };
            // A key set is public: a symmetric key in it would let anyone sign tokens.
            if matches!(
                algorithm,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            ) {
                tracing::warn!(kid, "JWKS key with a symmetric alg refused");
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(
                        kid.clone(),
                        Arc::new(VerifyingKey::new(
                            Some(kid.clone()),
                            algorithm,
                            key,
                            &self.jwt,
                        )),
                    );
                }
                Err(e) => tracing::warn!(kid, error = %e, "JWKS key skipped"),
            }
        }
        keys
    }

    /// Fetches now, unless the set was taken over from the running configuration, then keeps
    /// it fresh for as long as a configuration uses it: `refresh_interval` after the last
    /// refresh, so reloads more frequent than that do not postpone it.
    pub async fn start(self: &Arc<Self>) {
        if !self.loaded() {
            self.refresh_if_due().await;
        }
        let weak: Weak<Jwks> = Arc::downgrade(self);
        let interval = self.spec.refresh_interval;
        tokio::spawn(async move {
            loop {
                let Some(last) = weak.upgrade().map(|jwks| jwks.last_refresh()) else {
                    return;
                };
                tokio::time::sleep_until(last.map_or_else(Instant::now, |at| at + interval)).await;
                let Some(jwks) = weak.upgrade() else {
                    return;
                };
                jwks.refresh_if_due().await;
            }
        });
    }

    /// When the last refresh started; `None` before the first, or while one runs.
    fn last_refresh(&self) -> Option<Instant> {
        self.last_refresh.try_lock().ok().and_then(|last| *last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks(url: &str, audience: &str) -> Jwks {
        let config = crate::config::load(
            "t.yaml",
            &format!(
                r#"
listeners: {{ public: {{ address: "127.0.0.1:1" }}, admin: {{ address: "127.0.0.1:2" }} }}
authentication: {{ jwt: {{ issuer: i, audiences: [{audience}], jwks: {{ url: "{url}" }} }} }}
upstreams: {{ svc: {{ targets: ["127.0.0.1:3"] }} }}
routes: [{{ name: a, match: {{ path: /a }}, upstream: svc }}]
"#
            ),
        )
        .unwrap();
        let jwt = config.authentication.jwt.unwrap();
        Jwks::new(jwt.jwks.as_ref().unwrap(), &jwt)
    }

    /// RFC 8037's example Ed25519 public key.
    fn document() -> Arc<JwkSet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
            }]}))
            .unwrap(),
        )
    }

    #[test]
    fn a_reload_takes_over_the_set_only_from_the_same_url() {
        let running = jwks("http://issuer/jwks", "a");
        running.install(document());
        assert!(running.key("k1").is_some());

        let same_url = jwks("http://issuer/jwks", "b");
        same_url.inherit(&running);
        assert!(same_url.loaded());
        let key = same_url.key("k1").expect("taken over");
        assert!(
            !Arc::ptr_eq(&key, &running.key("k1").unwrap()),
            "made again under the new settings"
        );

        let other_url = jwks("http://other-issuer/jwks", "a");
        other_url.inherit(&running);
        assert!(!other_url.loaded());
        assert!(other_url.key("k1").is_none());
    }
}
