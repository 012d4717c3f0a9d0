//! Config errors that an SRE can act on in one try: the file, the line and column where the
//! parser knows them, the path of the offending key, and what is wrong.
//!
//! [`Errors`] is the one accumulator: the compiler and every loader of what the file names
//! (key files, API keys, revoked ids, TLS files, Redis secrets) report through it, by the
//! path of the key, so `usher check`, startup and a failed reload print them alike.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given by the caller.
    pub source: String,
    /// 1-based line and column, when the YAML parser reported them.
    pub location: Option<(usize, usize)>,
    /// Where in the document, e.g. `routes[3].upstream`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// Every error found in one file, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects the errors found in one file, in the order found.
pub struct Errors<'a> {
    source: &'a str,
    found: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    /// `source` names the file in every error.
    pub fn new(source: &'a str) -> Self {
        Errors {
            source,
            found: Vec::new(),
        }
    }

    /// An error at the key `path` (empty: the file itself).
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push(ConfigError {
            source: self.source.to_string(),
            location: None,
            path: path.into(),
            message: message.into(),
        });
    }

    /// How many errors have been found so far.
    pub fn count(&self) -> usize {
        self.found.len()
    }

    /// Whether an error was found at `prefix` or below it.
    pub fn any_under(&self, prefix: &str) -> bool {
        self.found.iter().any(|e| e.path.starts_with(prefix))
    }

    /// Reorders the errors by `key`, keeping the order found among equal keys.
    pub(crate) fn sort_by_path_key<K: Ord>(&mut self, mut key: impl FnMut(&str) -> K) {
        self.found.sort_by_key(|e| key(&e.path));
    }

    /// `value` when nothing was found, else every error.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.found.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.found))
        }
    }
}
