//! The routes' webhook secrets, read with the environment (startup, every reload, `usher
//! check`): each from its environment variable or file, turned into the MAC key its scheme
//! uses. A secret that cannot be read, or is too short to be one, is an error at its key,
//! so a reload with a missing secret never replaces a working configuration.

use crate::config::{Config, Errors, SecretRef};
use std::sync::Arc;

/// A webhook secret shorter than this is refused (providers issue 24 bytes and more).
const MIN_SECRET_BYTES: usize = 16;

/// Each route's webhook keys, indexed like the configuration's routes, and the scope its
/// deliveries are told apart in: the scheme and the secrets, so two routes that take the
/// same provider's deliveries (the same secrets) accept each delivery once between them.
#[derive(Default)]
pub struct WebhookKeys {
    by_route: Vec<Option<RouteKeys>>,
}

/// A route's MAC keys, and the scope its deliveries are recorded in.
type RouteKeys = (Arc<[Vec<u8>]>, String);

impl WebhookKeys {
    pub fn load(config: &Config, errors: &mut Errors) -> WebhookKeys {
        let by_route = config
            .routes
            .iter()
            .enumerate()
            .map(|(index, route)| {
                let webhook = route.webhook.as_ref()?;
                let mut keys = Vec::new();
                for (i, secret) in webhook.secrets.iter().enumerate() {
                    let at = format!("routes[{index}].webhook.secrets[{i}]");
                    match read(secret).and_then(|bytes| {
                        let key = webhook.scheme.key(&bytes).map_err(|why| format!("the secret {why}"))?;
                        if key.len() < MIN_SECRET_BYTES {
                            return Err(format!(
                                "the secret is {} bytes; webhook secrets need at least {MIN_SECRET_BYTES}",
                                key.len()
                            ));
                        }
                        Ok(key)
                    }) {
                        Ok(key) => keys.push(key),
                        Err(message) => errors.error(at, message),
                    }
                }
                let scope = scope(webhook.scheme.as_str(), &keys);
                Some((Arc::from(keys), scope))
            })
            .collect();
        WebhookKeys { by_route }
    }

    pub fn for_route(&self, route: usize) -> &[Vec<u8>] {
        self.by_route
            .get(route)
            .and_then(|keys| keys.as_ref())
            .map_or(&[], |(keys, _)| keys)
    }

    /// The name the route's deliveries are recorded under.
    pub fn scope(&self, route: usize) -> &str {
        self.by_route
            .get(route)
            .and_then(|keys| keys.as_ref())
            .map_or("", |(_, scope)| scope)
    }
}

/// The scheme and a digest of its keys, sorted (so their order does not matter).
fn scope(scheme: &str, keys: &[Vec<u8>]) -> String {
    let mut sorted: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    sorted.sort();
    format!(
        "{scheme}:{}",
        crate::digest::sha256_prefixed_hex(&sorted, 8)
    )
}

fn read(secret: &SecretRef) -> Result<Vec<u8>, String> {
    let bytes = match secret {
        SecretRef::Env(name) => std::env::var(name)
            .map(String::into_bytes)
            .map_err(|_| format!("environment variable {name} is not set"))?,
        SecretRef::File(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read \"{path}\": {e}"))?
        }
        SecretRef::Literal(text) => text.clone().into_bytes(),
    };
    Ok(bytes.strip_suffix(b"\n").unwrap_or(&bytes).to_vec())
}
