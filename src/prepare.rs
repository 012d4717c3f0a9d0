//! From routes.yaml to everything a snapshot needs except network connections: the
//! validated configuration (pure), then what it names in the environment (files that must
//! exist, key material, API keys). Startup, every reload and `usher check` go through here,
//! so they accept and refuse exactly the same files.

use crate::config::{self, Config, ConfigError, ConfigErrors};
use crate::ratelimit::redis::{self, RedisSettings};
use crate::security::Security;
use std::path::Path;

pub struct Prepared {
    pub config: Config,
    pub security: Security,
    /// The shared rate-limit store's settings, secrets resolved.
    pub redis: Option<RedisSettings>,
}

pub fn prepare(source: &str, text: &str) -> Result<Prepared, ConfigErrors> {
    let config = config::load(source, text).and_then(|c| config::preflight(source, c))?;
    let security = Security::load(source, &config);
    let redis = config
        .rate_limiting
        .redis
        .as_ref()
        .map(redis::resolve)
        .transpose()
        .map_err(|problems| {
            ConfigErrors(
                problems
                    .into_iter()
                    .map(|(path, message)| ConfigError {
                        source: source.to_string(),
                        location: None,
                        path,
                        message,
                    })
                    .collect(),
            )
        });
    let (security, redis) = match (security, redis) {
        (Ok(security), Ok(redis)) => (security, redis),
        (Err(ConfigErrors(mut a)), Err(ConfigErrors(b))) => {
            a.extend(b);
            return Err(ConfigErrors(a));
        }
        (Err(errors), _) | (_, Err(errors)) => return Err(errors),
    };
    Ok(Prepared {
        config,
        security,
        redis,
    })
}

pub fn prepare_file(path: &Path) -> Result<Prepared, ConfigErrors> {
    let (source, text) = read_file(path)?;
    prepare(&source, &text)
}

/// The file's name (as errors show it) and its text.
pub fn read_file(path: &Path) -> Result<(String, String), ConfigErrors> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((source, text)),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            message: format!("cannot read the file: {e}"),
            source,
            location: None,
            path: String::new(),
        }])),
    }
}
