//! Request validation at the edge, on routes with `validate`: path parameters against their
//! patterns, and the body against the route's JSON Schema, before the upstream sees
//! anything. A malformed body is 400, a body that breaks its schema 422 naming the JSON
//! pointers of what is wrong (never the values), a body that is not JSON 415.
//!
//! Schemas are files beside routes.yaml, read with the environment (startup and every
//! reload; a file that cannot be read or is no valid schema is an error at the key that
//! names it) and compiled once. References are resolved within the schema only: nothing
//! is fetched, at load or at request time (the `jsonschema` crate's remote resolvers are
//! not built in).

use crate::config::{Config, Errors, RouteSpec};
use crate::respond::Rejection;
use http::HeaderMap;
use jsonschema::Validator;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Violations named in a refusal, at most.
const MAX_REPORTED: usize = 10;

/// Each route's compiled body schema, indexed like the configuration's routes.
#[derive(Default)]
pub struct Schemas {
    by_route: Vec<Option<Arc<Validator>>>,
}

impl Schemas {
    /// Reads and compiles every route's `validate.body_schema`, relative to `base` (the
    /// directory of routes.yaml); one file shared by several routes is read once.
    pub fn load(config: &Config, base: &Path, errors: &mut Errors) -> Schemas {
        let mut loaded: HashMap<&str, Option<Arc<Validator>>> = HashMap::new();
        let by_route = config
            .routes
            .iter()
            .enumerate()
            .map(|(index, route)| {
                let file = route.body_schema.as_deref()?;
                loaded
                    .entry(file)
                    .or_insert_with(|| {
                        let at = format!("routes[{index}].validate.body_schema");
                        match compile(&base.join(file)) {
                            Ok(validator) => Some(Arc::new(validator)),
                            Err(message) => {
                                errors.error(at, message);
                                None
                            }
                        }
                    })
                    .clone()
            })
            .collect();
        Schemas { by_route }
    }

    pub fn for_route(&self, route: usize) -> Option<&Validator> {
        self.by_route.get(route)?.as_deref()
    }
}

fn compile(path: &Path) -> Result<Validator, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read \"{}\": {e}", path.display()))?;
    let schema: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("\"{}\" is not JSON: {e}", path.display()))?;
    jsonschema::validator_for(&schema)
        .map_err(|e| format!("\"{}\" is not a usable JSON Schema: {e}", path.display()))
}

/// Refuses a request whose path parameters its route does not accept (before its body is
/// read: a bad path costs no body).
pub fn check_params(route: &RouteSpec, params: &[String]) -> Result<(), Rejection> {
    for (index, name, pattern) in &route.param_patterns {
        if params
            .get(*index)
            .is_some_and(|value| !pattern.is_match(value))
        {
            return Err(Rejection::InvalidParameter(name.clone()));
        }
    }
    Ok(())
}

/// The body as JSON, for the stages that read it (the schema, budgets): 415 when it is not
/// said to be JSON, 400 when it is not. `None` for a request of a method that carries no
/// content and has no body (`GET /history` on a route whose POST has a schema); such a
/// request with a body after all is read like the others.
pub fn document(
    method: &http::Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<serde_json::Value>, Rejection> {
    let carries_content = matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    );
    if !carries_content && body.is_empty() {
        return Ok(None);
    }
    if !is_json(headers) {
        return Err(Rejection::UnsupportedMediaType);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|_| Rejection::MalformedJson)
}

/// Refuses a body that breaks `schema`.
pub fn check_body(document: &serde_json::Value, schema: &Validator) -> Result<(), Rejection> {
    let mut pointers: Vec<String> = schema
        .iter_errors(document)
        .map(|error| error.instance_path().to_string())
        .collect();
    if pointers.is_empty() {
        return Ok(());
    }
    pointers.sort();
    pointers.dedup();
    pointers.truncate(MAX_REPORTED);
    Err(Rejection::InvalidBody(pointers))
}

/// `application/json`, or any `+json` type, whatever its parameters.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_references_are_never_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remote.json");
        std::fs::write(&path, r#"{"$ref": "http://schemas.invalid/order.json"}"#).unwrap();
        let Err(refused) = compile(&path) else {
            panic!("a remote reference is refused");
        };
        assert!(refused.contains("not a usable JSON Schema"), "{refused}");
        let local = dir.path().join("local.json");
        std::fs::write(
            &local,
            r##"{"$defs": {"seat": {"type": "integer"}}, "properties": {"seat": {"$ref": "#/$defs/seat"}}}"##,
        )
        .unwrap();
        let validator = compile(&local).expect("references within the schema resolve");
        assert!(!validator.is_valid(&serde_json::json!({"seat": "a"})));
    }

    #[test]
    fn json_media_types() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, value.parse().unwrap());
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
