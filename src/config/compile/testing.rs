//! What the sections' tests share: a YAML snippet in, the compiled value and the errors out,
//! each error as `path: message`.

use super::Compiler;
use crate::config::error::{ConfigErrors, Errors};
use crate::config::Config;
use serde::de::DeserializeOwned;

/// Compiles one section, parsed from `yaml`, with `compile`.
pub(in crate::config::compile) fn section<R: DeserializeOwned, T>(
    yaml: &str,
    compile: impl FnOnce(&mut Compiler, &R) -> T,
) -> (T, Vec<String>) {
    let raw: R = serde_yaml::from_str(yaml).expect("the test's YAML parses");
    let mut c = Compiler {
        errors: Errors::new("test.yaml", yaml),
    };
    let value = compile(&mut c, &raw);
    (value, listed(c.errors.finish(())))
}

/// The errors of a whole file: `yaml` after a valid `listeners` section.
pub fn file_errors(yaml: &str) -> Vec<String> {
    listed(load(yaml).map(|_| ()))
}

/// A whole file that must compile: `yaml` after a valid `listeners` section.
pub fn file(yaml: &str) -> Config {
    load(yaml).unwrap_or_else(|errors| panic!("{errors}"))
}

/// Each row's YAML compiles with exactly the row's errors.
pub fn assert_file_errors(rows: &[(&str, &[&str])]) {
    for (yaml, expected) in rows {
        assert_eq!(file_errors(yaml), *expected, "{yaml}");
    }
}

fn load(yaml: &str) -> Result<Config, ConfigErrors> {
    let text = format!(
        "listeners:\n  public: {{ address: \"127.0.0.1:8080\" }}\n  admin: {{ address: \"127.0.0.1:9090\" }}\n{yaml}"
    );
    crate::config::load("test.yaml", &text)
}

fn listed<T>(result: Result<T, ConfigErrors>) -> Vec<String> {
    match result {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .0
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    }
}
