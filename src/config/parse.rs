//! YAML text to [`RawConfig`], reporting every structural error rather than the first.
//!
//! serde stops at the first error. When the direct parse fails, the document is read again
//! as a generic YAML value and each section, upstream and route is deserialized on its own,
//! so one bad route does not hide another. The direct parse's error keeps the line and column
//! that the YAML parser knows; the others carry their path.

use super::error::{ConfigError, ConfigErrors};
use super::raw::{
    RawAlias, RawAuthentication, RawConfig, RawCors, RawDefaults, RawIdentity, RawLimits,
    RawListeners, RawRateLimiting, RawRoute, RawServer, RawSigning, RawUpstream,
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
        route: None,
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
        let name = key.as_str().unwrap_or("?");
        has_listeners |= name == "listeners";
        if !check_section(name, value, &mut errors) {
            let expected: Vec<String> = sections_of_the_format()
                .iter()
                .map(|s| format!("`{s}`"))
                .collect();
            errors.push((
                String::new(),
                format!(
                    "unknown field `{name}`, expected one of {}",
                    expected.join(", ")
                ),
            ));
        }
    }
    if !has_listeners {
        errors.push((String::new(), "missing field `listeners`".to_string()));
    }
    errors
}

/// Checks one top-level section on its own; false for a name that is no section.
/// Every section of [`RawConfig`] has an arm here (a test holds the two together).
fn check_section(name: &str, value: &Value, errors: &mut Vec<(String, String)>) -> bool {
    match name {
        "server" => check::<RawServer>(value, name, errors),
        "listeners" => check::<RawListeners>(value, name, errors),
        "defaults" => check::<RawDefaults>(value, name, errors),
        "authentication" => check::<RawAuthentication>(value, name, errors),
        "identity" => check::<RawIdentity>(value, name, errors),
        "limits" => check::<RawLimits>(value, name, errors),
        "cors" => check::<RawCors>(value, name, errors),
        "rate_limiting" => check::<RawRateLimiting>(value, name, errors),
        "signing" => check::<RawSigning>(value, name, errors),
        "upstreams" => match value {
            Value::Mapping(upstreams) => {
                for (upstream_name, upstream) in upstreams {
                    let upstream_name = upstream_name.as_str().unwrap_or("?");
                    check::<RawUpstream>(upstream, &format!("upstreams.{upstream_name}"), errors);
                }
            }
            other => check::<Vec<RawUpstream>>(other, name, errors),
        },
        "routes" => match value {
            Value::Sequence(routes) => {
                for (index, route) in routes.iter().enumerate() {
                    let at = format!("routes[{index}]");
                    check::<RawRoute>(route, &at, errors);
                    // Both are optional in the format (a route has one or the other).
                    let leads_somewhere = route.as_mapping().is_none_or(|fields| {
                        fields.contains_key("upstream") || fields.contains_key("serve")
                    });
                    if !leads_somewhere {
                        errors.push((at, "missing field `upstream` (or `serve: approvals`, an endpoint Usher answers itself)".to_string()));
                    }
                }
            }
            other => check::<Vec<RawRoute>>(other, name, errors),
        },
        "aliases" => match value {
            Value::Sequence(aliases) => {
                for (index, alias) in aliases.iter().enumerate() {
                    check::<RawAlias>(alias, &format!("aliases[{index}]"), errors);
                }
            }
            other => check::<Vec<RawAlias>>(other, name, errors),
        },
        _ => return false,
    }
    true
}

/// The top-level sections, as the file format ([`RawConfig`]'s serde derive) lists them:
/// the one list, asked of the type itself.
fn sections_of_the_format() -> &'static [&'static str] {
    use serde::de::{self, Deserializer, Visitor};
    struct Fields(&'static [&'static str]);
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only structs are asked"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields = Fields(&[]);
    let _ = <RawConfig as serde::Deserialize>::deserialize(&mut fields);
    fields.0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_of_the_format_is_checked_on_its_own() {
        let sections = sections_of_the_format();
        assert!(sections.contains(&"rate_limiting"), "{sections:?}");
        for section in sections {
            let mut errors = Vec::new();
            assert!(
                check_section(section, &Value::Null, &mut errors),
                "{section} has no arm in check_section"
            );
        }
        assert!(!check_section("extras", &Value::Null, &mut Vec::new()));
    }
}
