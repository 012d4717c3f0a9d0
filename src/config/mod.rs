//! Configuration: the routes.yaml file format ([`raw`]) and the validated, compiled [`Config`]
//! that the rest of Usher reads.
//!
//! Two layers on purpose: the file format can change without touching the proxy, and
//! everything that can be decided before traffic arrives (defaults merged, names resolved to
//! indexes, patterns parsed, durations converted) is decided here, once, by pure code.
//! [`load`] is the one entry point: text in, a [`Config`] or every error out.

pub mod bounds;
pub(crate) mod builtin;
mod compile;
/// Compiling test files, for the tests of what reads a compiled configuration.
#[cfg(test)]
pub(crate) use compile::testing;
pub mod environment;
mod error;
mod locate;
mod parse;
pub mod raw;
mod spec;
pub mod units;

pub use compile::{check_redis_url, compile, content_hash};
pub use error::{ConfigError, ConfigErrors, Errors};
pub use spec::*;

use crate::router::PathPattern;
use std::sync::Arc;

/// Parses and validates routes.yaml text. `source` names the file in error messages.
pub fn load(source: &str, text: &str) -> Result<Config, ConfigErrors> {
    let raw = parse::parse(source, text)?;
    compile(source, text, raw)
}

/// A validated configuration. Immutable; a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Config {
    /// First 12 hex digits of the SHA-256 of the file's bytes.
    pub hash: String,
    pub server: ServerSettings,
    pub listeners: Listeners,
    /// Indexed by [`RouteSpec::upstream`].
    pub upstreams: Vec<UpstreamSpec>,
    /// In file order; the router decides precedence by specificity, not by this order.
    pub routes: Vec<RouteSpec>,
    /// Other spellings of the routes' paths, routed again as the route they lead to.
    pub aliases: Vec<AliasSpec>,
    pub authentication: AuthenticationSpec,
    pub identity: IdentitySpec,
    pub limits: Limits,
    pub rate_limiting: RateLimiting,
    /// The keys Usher signs forwarded requests with, when any upstream asks for it.
    pub signing: Option<SigningSpec>,
}

/// Checks what [`compile`] cannot because it needs the environment: that the files the
/// configuration names can be read. `usher check`, startup and every reload run it.
pub fn preflight(source: &str, text: &str, config: Config) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::new(source, text);
    if let Some(tls) = &config.listeners.tls {
        for (key, file) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
            if let Err(e) = std::fs::File::open(file) {
                errors.error(
                    format!("listeners.public.tls.{key}"),
                    format!("cannot read \"{file}\": {e}"),
                );
            }
        }
    }
    errors.finish(config)
}
