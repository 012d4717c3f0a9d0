//! Raw file format to validated [`Config`]: defaults merged, names resolved, patterns parsed,
//! every error collected with the path of the key that caused it. Pure: no I/O, no clock.
//!
//! [`compile`] assembles the sections in order, each compiled by its own module; the order
//! matters where a section reads another (routes read upstreams, authentication and rate
//! limiting) and decides the order of the errors.

use super::error::{ConfigErrors, Errors};
use super::raw::RawConfig;
use super::{bounds, Config};
use std::sync::Arc;
use std::time::Duration;

mod aliases;
mod authentication;
mod cors;
mod identity;
mod limits;
mod listeners;
mod rate_limits;
mod routes;
mod server;
mod signing;
#[cfg(test)]
pub(crate) mod testing;
mod upstreams;

pub use cors::origins as cors_origins;
pub use rate_limits::check_redis_url;

/// The methods a route or a CORS policy may name.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Compiles a parsed file. `text` names the configuration's version (its hash) and places
/// errors.
pub fn compile(source: &str, text: &str, raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut c = Compiler {
        errors: Errors::new(source, text),
    };
    let server = c.server(&raw.server);
    let authentication = c.authentication(&raw.authentication);
    let identity = c.identity(&raw.identity);
    let limits = c.limits(&raw.limits);
    let cors = raw.cors.as_ref().map(|raw| Arc::new(c.cors("cors", raw)));
    let listeners = c.listeners(&raw.listeners);
    let rate_limiting = c.rate_limiting(&raw.rate_limiting);
    if let Some(revocation) = &authentication.revocation {
        if revocation.file.is_none() && rate_limiting.redis.is_none() {
            c.error(
                "authentication.revocation",
                "no store to look revoked tokens up in: configure rate_limiting.redis (shared with the auth service) or a file",
            );
        }
    }
    for (key, count, most) in [
        ("routes", raw.routes.len(), bounds::MAX_ROUTES),
        ("upstreams", raw.upstreams.len(), bounds::MAX_UPSTREAMS),
    ] {
        if count > most {
            c.error(
                key,
                format!("{count} {key}, more than the {most} a configuration may hold"),
            );
        }
    }
    if raw.defaults.route.user_status == Some(true) && authentication.user_status.is_none() {
        c.error(
            "defaults.route.user_status",
            "authentication.user_status is not configured",
        );
    }
    let upstreams = c.upstreams(&raw.upstreams, &raw.defaults.upstream);
    let routes = c.routes(
        &raw.routes,
        &routes::RouteInputs {
            defaults: &raw.defaults.route,
            upstreams: &upstreams,
            authentication: &authentication,
            cors: &cors,
            rate_limiting: &rate_limiting,
        },
    );
    let aliases = c.aliases(&raw.aliases, &routes);
    let signing = c.signing(raw.signing.as_ref(), &upstreams, &routes);
    // Route errors in file order; everything else stays where it was found.
    c.errors.sort_by_path_key(route_index);
    c.errors.finish(())?;
    Ok(Config {
        hash: content_hash(text),
        server,
        listeners: listeners.expect("listeners are valid when there are no errors"),
        upstreams,
        routes,
        aliases,
        authentication,
        identity,
        limits,
        rate_limiting,
        signing,
    })
}

/// First 12 hex digits of the SHA-256 of the file, the configuration's visible version.
pub fn content_hash(text: &str) -> String {
    crate::digest::sha256_hex(&[text.as_bytes()], 6)
}

/// Collects every error of one compilation; each section's module adds its methods.
struct Compiler<'a> {
    errors: Errors<'a>,
}

impl Compiler<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.error(path, message);
    }

    fn positive(&mut self, path: &str, value: Duration) -> Duration {
        if value.is_zero() {
            self.error(path, "must be greater than zero");
        }
        value
    }
}

/// A key's value: its own, else the one inherited from `defaults:`, else the built-in one.
/// Durations and sizes are written as [`super::units::Dur`] and [`super::units::ByteSize`]
/// and come out as what they hold.
fn merged<T, W: Into<T>>(own: Option<W>, inherited: Option<W>, builtin: T) -> T {
    own.or(inherited).map_or(builtin, Into::into)
}

/// `routes[7].x` → 7; other paths sort first.
fn route_index(path: &str) -> Option<usize> {
    path.strip_prefix("routes[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// Names of upstreams, routes, policies and tiers: they become metric labels.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The candidate nearest to `word` by edit distance, if it is close enough to be a typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2.max(word.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
