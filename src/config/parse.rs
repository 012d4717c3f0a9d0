//! YAML text to [`RawConfig`], reporting every structural error rather than the first.
//!
//! serde stops at the first error. When the direct parse fails, the document is read again
//! as a generic YAML value and each section, upstream and route is deserialized on its own,
//! so one bad route does not hide another. The direct parse's error keeps the line and column
//! that the YAML parser knows; the others carry their path.

use super::error::{ConfigError, ConfigErrors};
use super::raw::{
    RawAuthentication, RawConfig, RawCors, RawDefaults, RawIdentity, RawLimits, RawListeners,
    RawRoute, RawServer, RawUpstream,
};
use serde::de::DeserializeOwned;
use serde_yaml::Value;

pub fn parse(source: &str, text: &str) -> Result<RawConfig, ConfigErrors> {
    let first = match serde_path_to_error::deserialize::<_, RawConfig>(
        serde_yaml::Deserializer::from_str(text),
    ) {
        Ok(raw) => return Ok(raw),
        Err(error) => error,
    };
    let first_path = display_path(first.path());
    let first_location = first.inner().location().map(|at| (at.line(), at.column()));
    let first_message = without_location(&first.inner().to_string());

    let error = |path: String, message: String, location| ConfigError {
        source: source.to_string(),
        location,
        path,
        message,
    };
    let mut errors: Vec<ConfigError> = match serde_yaml::from_str::<Value>(text) {
        Ok(document) => item_errors(&document)
            .into_iter()
            .map(|(path, message)| error(path, message, None))
            .collect(),
        // Not even valid YAML: the parser's own error is the only meaningful one.
        Err(syntax) => {
            let location = syntax.location().map(|at| (at.line(), at.column()));
            let message = format!("invalid YAML: {}", without_location(&syntax.to_string()));
            return Err(ConfigErrors(vec![error(String::new(), message, location)]));
        }
    };
    match errors.iter_mut().find(|e| e.path == first_path) {
        Some(same) => same.location = first_location,
        None => errors.insert(0, error(first_path, first_message, first_location)),
    }
    Err(ConfigErrors(errors))
}

/// Deserializes each part of the document on its own and returns `(path, message)` pairs.
fn item_errors(document: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let Value::Mapping(sections) = document else {
        errors.push((String::new(), "the file must be a YAML mapping".to_string()));
        return errors;
    };
    let mut has_listeners = false;
    for (key, value) in sections {
        match key.as_str() {
            Some("server") => check::<RawServer>(value, "server", &mut errors),
            Some("listeners") => {
                has_listeners = true;
                check::<RawListeners>(value, "listeners", &mut errors);
            }
            Some("defaults") => check::<RawDefaults>(value, "defaults", &mut errors),
            Some("authentication") => {
                check::<RawAuthentication>(value, "authentication", &mut errors)
            }
            Some("identity") => check::<RawIdentity>(value, "identity", &mut errors),
            Some("limits") => check::<RawLimits>(value, "limits", &mut errors),
            Some("cors") => check::<RawCors>(value, "cors", &mut errors),
            Some("upstreams") => match value {
                Value::Mapping(upstreams) => {
                    for (name, upstream) in upstreams {
                        let name = name.as_str().unwrap_or("?");
                        check::<RawUpstream>(upstream, &format!("upstreams.{name}"), &mut errors);
                    }
                }
                other => check::<Vec<RawUpstream>>(other, "upstreams", &mut errors),
            },
            Some("routes") => match value {
                Value::Sequence(routes) => {
                    for (index, route) in routes.iter().enumerate() {
                        check::<RawRoute>(route, &format!("routes[{index}]"), &mut errors);
                    }
                }
                other => check::<Vec<RawRoute>>(other, "routes", &mut errors),
            },
            other => errors.push((
                String::new(),
                format!(
                    "unknown field `{}`, expected one of `server`, `listeners`, `defaults`, `upstreams`, `routes`, `authentication`, `identity`, `limits`, `cors`",
                    other.unwrap_or("?")
                ),
            )),
        }
    }
    if !has_listeners {
        errors.push((String::new(), "missing field `listeners`".to_string()));
    }
    errors
}

fn check<T: DeserializeOwned>(value: &Value, prefix: &str, errors: &mut Vec<(String, String)>) {
    if let Err(error) = serde_path_to_error::deserialize::<_, T>(value.clone()) {
        let inner = display_path(error.path());
        let path = match inner.as_str() {
            "" => prefix.to_string(),
            _ if inner.starts_with('[') => format!("{prefix}{inner}"),
            _ => format!("{prefix}.{inner}"),
        };
        errors.push((path, without_location(&error.inner().to_string())));
    }
}

fn display_path(path: &serde_path_to_error::Path) -> String {
    match path.to_string().as_str() {
        "." => String::new(),
        other => other.to_string(),
    }
}

/// serde_yaml writes " at line N column M" into its messages; the location is reported
/// separately, so it is cut out (with a path prefix such as `listeners.public.?: `).
fn without_location(message: &str) -> String {
    let mut message = message.to_string();
    if let Some(at) = message.find(" at line ") {
        let rest = &message[at + " at line ".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ' ' || "column".contains(c)))
            .unwrap_or(rest.len());
        message.replace_range(at..at + " at line ".len() + end, "");
    }
    match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(' ') && prefix.contains('.') => rest.to_string(),
        _ => message,
    }
}
