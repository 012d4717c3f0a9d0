//! Config errors that an SRE can act on in one try: the file, the line and column of the
//! offending key, its path (with the route's name inside a route), and what is wrong.
//!
//! [`Errors`] is the one accumulator: the compiler and every loader of what the file names
//! (key files, API keys, revoked ids, TLS files, Redis secrets) report through it, by the
//! path of the key, so `usher check`, startup and a failed reload print them alike.

use super::locate::Locator;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given by the caller.
    pub source: String,
    /// 1-based line and column of the key named by `path`, when the text has it.
    pub location: Option<(usize, usize)>,
    /// Where in the document, e.g. `routes[3].upstream`; empty for the document itself.
    pub path: String,
    /// The name of the route `path` is in, shown beside its index.
    pub route: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        match (&self.route, self.path.split_once(']')) {
            _ if self.path.is_empty() => write!(f, ": {}", self.message),
            (Some(route), Some((index, rest))) => {
                write!(f, ": {index}] ({route}){rest}: {}", self.message)
            }
            _ => write!(f, ": {}: {}", self.path, self.message),
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

/// Collects the errors found in one file, in the order found, and places each in the text
/// when it is done.
pub struct Errors<'a> {
    source: &'a str,
    text: &'a str,
    found: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    /// `source` names the file in every error; `text` is the file's, to place them in.
    pub fn new(source: &'a str, text: &'a str) -> Self {
        Errors {
            source,
            text,
            found: Vec::new(),
        }
    }

    /// An error at the key `path` (empty: the file itself).
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push(ConfigError {
            source: self.source.to_string(),
            location: None,
            path: path.into(),
            route: None,
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

    /// `value` when nothing was found, else every error with the line and column of its key
    /// and, inside a route, the route's name (unless the error is about the name itself).
    pub fn finish<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        if self.found.is_empty() {
            return Ok(value);
        }
        let locator = Locator::new(self.text);
        for error in &mut self.found {
            error.location = locator.locate(&error.path);
            error.route = error
                .path
                .split_once(']')
                .filter(|(route, rest)| route.starts_with("routes[") && *rest != ".name")
                .and_then(|(route, _)| locator.scalar(&format!("{route}].name")))
                .map(str::to_string);
        }
        Err(ConfigErrors(self.found))
    }
}
