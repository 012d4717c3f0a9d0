//! What each command line verb does. Each returns the process exit code.

pub mod check;
pub mod demo;
pub mod probe;
pub mod routes;
pub mod run;

pub use crate::prepare::prepare_file;

use crate::config::{self, Config, ConfigErrors};
use crate::prepare::read_file;
use std::path::Path;

/// The validated configuration alone: what documents the file (`usher routes`) needs, and
/// nothing the environment must supply.
pub fn load_config(path: &Path) -> Result<Config, ConfigErrors> {
    let (source, text) = read_file(path)?;
    config::load(&source, &text)
}
