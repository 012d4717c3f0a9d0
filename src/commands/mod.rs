//! What each command line verb does. Each returns the process exit code.

pub mod check;
pub mod demo;
pub mod routes;
pub mod run;

use crate::config::{self, Config, ConfigErrors};
use std::path::Path;

/// Reads, validates and preflights a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![config::ConfigError {
            source: source.clone(),
            location: None,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    config::load(&source, &text).and_then(|c| config::preflight(&source, c))
}
