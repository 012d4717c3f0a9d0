//! `usher check FILE`: validate like `nginx -t`.
//!
//! The file itself must be valid: any error there fails the check. What the environment
//! must supply at startup (secrets, key files, API key and certificate files) is checked as
//! well; missing pieces are warnings unless `--strict`, so a pipeline that holds no secrets
//! can still check a ConfigMap, while startup and reload always require them.

use crate::config::{self, Access};
use std::path::Path;

pub fn check(path: &Path, strict: bool) -> i32 {
    let (source, text) = match crate::prepare::read_file(path) {
        Ok(read) => read,
        Err(errors) => return report_errors(&path.display().to_string(), &errors.0),
    };
    let config = match config::load(&source, &text) {
        Ok(config) => config,
        Err(errors) => return report_errors(&source, &errors.0),
    };
    let environment = match crate::prepare::prepare(&source, &text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0,
    };
    if strict && !environment.is_empty() {
        return report_errors(&source, &environment);
    }
    for problem in &environment {
        eprintln!("warning: {problem} (required at startup)");
    }
    let public = config
        .routes
        .iter()
        .filter(|r| !matches!(r.access, Access::Authenticated))
        .count();
    let aliases = match config.aliases.len() {
        0 => String::new(),
        n => format!(", {n} alias{}", if n == 1 { "" } else { "es" }),
    };
    println!(
        "{source}: ok: {} routes ({} with public paths){aliases}, {} upstreams, hash {}{}",
        config.routes.len(),
        public,
        config.upstreams.len(),
        config.hash,
        match environment.len() {
            0 => String::new(),
            n => format!(", {n} environment warning{}", if n == 1 { "" } else { "s" }),
        }
    );
    0
}

fn report_errors(source: &str, errors: &[config::ConfigError]) -> i32 {
    for error in errors {
        eprintln!("{error}");
    }
    let count = errors.len();
    eprintln!(
        "{source}: {count} error{}",
        if count == 1 { "" } else { "s" }
    );
    1
}
