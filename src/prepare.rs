//! From routes.yaml to everything a snapshot needs except network connections: the
//! validated configuration (pure), then what it names in the environment (files that must
//! exist, key material, API keys). Startup, every reload and `usher check` go through here,
//! so they accept and refuse exactly the same files.

use crate::config::{self, Config, ConfigError, ConfigErrors, Errors};
use crate::security::Security;
use crate::signatures::keys::WebhookKeys;
use crate::signatures::signer::Signer;
use crate::store::redis::{self, RedisSettings};
use crate::validation::Schemas;
use std::path::Path;

pub struct Prepared {
    pub config: Config,
    pub security: Security,
    /// The routes' body schemas, read and compiled.
    pub schemas: Schemas,
    /// The routes' webhook secrets, read.
    pub webhook_keys: WebhookKeys,
    /// The keys Usher signs forwarded requests with, read.
    pub signer: Option<Signer>,
    /// The shared rate-limit store's settings, secrets resolved.
    pub redis: Option<RedisSettings>,
}

pub fn prepare(source: &str, text: &str) -> Result<Prepared, ConfigErrors> {
    let mut config = config::load(source, text).and_then(|c| config::preflight(source, text, c))?;
    let mut errors = Errors::new(source, text);
    let security = Security::load(&config, &mut errors);
    let base = Path::new(source).parent().unwrap_or(Path::new("."));
    let schemas = Schemas::load(&config, base, &mut errors);
    let webhook_keys = WebhookKeys::load(&config, &mut errors);
    let signer = Signer::load(&config, &mut errors);
    config::environment::resolve(&mut config, &mut errors);
    let redis = config
        .rate_limiting
        .redis
        .as_ref()
        .and_then(|spec| redis::resolve(spec, &mut errors));
    errors.finish(Prepared {
        config,
        security,
        schemas,
        webhook_keys,
        signer,
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
    let refuse = |message: String| {
        ConfigErrors(vec![ConfigError {
            message,
            source: source.clone(),
            location: None,
            path: String::new(),
            route: None,
        }])
    };
    let text = read_bounded(path).map_err(refuse)?;
    Ok((source, text))
}

/// The file's text, refused past `bounds::MAX_FILE_BYTES` before it is read whole.
pub fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let most = config::bounds::MAX_FILE_BYTES;
    let mut text = String::new();
    file.take(most + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if text.len() as u64 > most {
        return Err(format!(
            "the file is larger than {} MiB, the most a configuration may be",
            most >> 20
        ));
    }
    Ok(text)
}
