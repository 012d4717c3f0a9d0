//! Keys from the issuer's JSON Web Key Set.
//!
//! The set is fetched before a configuration goes live, then again every
//! `refresh_interval`, and when a token names a `kid` Usher does not know (one refresh at a
//! time, at most once per `min_refresh_interval`, so a stream of forged `kid`s cannot turn
//! Usher into a load generator against the issuer). A failed refresh keeps the keys it had.
//! Each key's algorithm comes from the JWK's own `alg`; a JWK without one is skipped, since
//! the token must never choose its algorithm.

use super::jwt::VerifyingKey;
use crate::config::{JwksSpec, JwtSpec};
use arc_swap::ArcSwap;
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

    async fn refresh(&self) {
        match tokio::time::timeout(self.spec.timeout, self.fetch()).await {
            Ok(Ok(keys)) => {
                tracing::info!(url = %self.spec.url, keys = keys.len(), "JWKS refreshed");
                self.keys.store(Arc::new(keys));
                self.loaded.store(true, Ordering::Release);
            }
            Ok(Err(reason)) => {
                tracing::warn!(url = %self.spec.url, reason, "JWKS refresh failed; keeping the previous keys");
            }
            Err(_) => {
                tracing::warn!(url = %self.spec.url, "JWKS refresh timed out; keeping the previous keys")
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
        let (status, body) =
            crate::fetch::get_body(&self.spec.url.to_string(), MAX_DOCUMENT_BYTES).await?;
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))?;
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
        Ok(keys)
    }

    /// Fetches now, then keeps the set fresh for as long as a configuration uses it.
    pub async fn start(self: &Arc<Self>) {
        self.refresh_if_due().await;
        let weak: Weak<Jwks> = Arc::downgrade(self);
        let interval = self.spec.refresh_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(jwks) = weak.upgrade() else {
                    return;
                };
                jwks.refresh_if_due().await;
            }
        });
    }
}
