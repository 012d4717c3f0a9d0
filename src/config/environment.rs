//! What routes.yaml leaves to the environment besides secrets, read with them at startup
//! and on every reload (`prepare`): the CORS origins (`allowed_origins_env`), which differ
//! per deployment, and the replica count (`replicas_env`) that sizes each replica's share
//! of a rate limit while Redis is down. Problems are reported at the key that names the
//! variable, so `usher check` shows them as environment warnings.

use super::compile::cors_origins;
use super::{Config, CorsPolicy, Errors, RedisSpec};
use std::collections::HashMap;
use std::sync::Arc;

/// Fills in what `config` takes from the environment.
pub fn resolve(config: &mut Config, errors: &mut Errors) {
    if let Some(spec) = config.rate_limiting.redis.as_mut() {
        if let Some(share) = fallback_share(spec, errors) {
            spec.fallback_share = share;
        }
    }
    // Routes share the global policy: resolve each policy once, keep it shared.
    let mut resolved: HashMap<*const CorsPolicy, Arc<CorsPolicy>> = HashMap::new();
    for route in &mut config.routes {
        let Some(policy) = &route.cors else {
            continue;
        };
        if policy.origins_env.is_none() {
            continue;
        }
        let key = Arc::as_ptr(policy);
        let filled = match resolved.get(&key) {
            Some(filled) => Arc::clone(filled),
            None => {
                let filled = Arc::new(with_origins(policy, errors));
                resolved.insert(key, Arc::clone(&filled));
                filled
            }
        };
        route.cors = Some(filled);
    }
}

/// `policy` with the origins its variable holds (separated by commas or spaces).
fn with_origins(policy: &CorsPolicy, errors: &mut Errors) -> CorsPolicy {
    let Some((at, name)) = &policy.origins_env else {
        return policy.clone();
    };
    let listed: Vec<String> = match std::env::var(name) {
        Ok(value) => value
            .split([',', ' '])
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
        Err(_) => {
            errors.error(at, format!("environment variable {name} is not set"));
            return policy.clone();
        }
    };
    match cors_origins(&listed, policy.credentials) {
        Ok((origins, any_origin)) => CorsPolicy {
            origins,
            any_origin,
            ..policy.clone()
        },
        Err(problems) => {
            for (_, message) in problems {
                errors.error(at, format!("{name}: {message}"));
            }
            policy.clone()
        }
    }
}

/// The share of each limit one replica keeps while Redis is down, when `spec` takes it from
/// the replica count in the environment (`replicas_env`): 1 / replicas, so the replicas
/// together admit the limit (for limits of at least one request per replica).
fn fallback_share(spec: &RedisSpec, errors: &mut Errors) -> Option<f64> {
    let name = spec.replicas_env.as_ref()?;
    let at = "rate_limiting.redis.replicas_env";
    let value = match std::env::var(name) {
        Ok(value) => value,
        Err(_) => {
            errors.error(at, format!("environment variable {name} is not set"));
            return None;
        }
    };
    match value.trim().parse::<u32>() {
        Ok(replicas) if replicas > 0 => Some(1.0 / f64::from(replicas)),
        _ => {
            errors.error(
                at,
                format!("{name} is \"{value}\", not a number of replicas (1 or more)"),
            );
            None
        }
    }
}
