//! A route's `validate`: the JSON Schema file its bodies must match (loaded, like key
//! files, with the environment: `crate::validation`), and patterns its path parameters
//! must match.

use crate::config::compile::Compiler;
use crate::config::raw::RawRoute;
use crate::router::PathPattern;

/// What `validate` compiles to: the schema file as written, and `(param index, name,
/// whole-value pattern)` for each parameter pattern.
pub(super) type Validation = (Option<String>, Vec<(usize, String, regex::Regex)>);

impl Compiler<'_> {
    pub(super) fn route_validation(
        &mut self,
        at: &str,
        raw: &RawRoute,
        pattern: Option<&PathPattern>,
        max_body: u64,
    ) -> Validation {
        let Some(validate) = &raw.validate else {
            return (None, Vec::new());
        };
        let at = format!("{at}.validate");
        let body_schema = validate.body_schema.clone();
        if let Some(schema) = &body_schema {
            if schema.trim().is_empty() {
                self.error(format!("{at}.body_schema"), "must name a JSON Schema file");
            }
            self.reads_whole_body(&format!("{at}.body_schema"), raw, max_body);
        }
        let mut patterns = Vec::new();
        for (name, text) in &validate.params {
            let key = format!("{at}.params.{name}");
            let index = pattern.and_then(|p| p.param_names().position(|n| n == name));
            // Checked as written (so the error is about what was written), used anchored.
            let checked =
                regex::Regex::new(text).and_then(|_| regex::Regex::new(&format!("^(?:{text})$")));
            match (index, checked) {
                (None, _) if pattern.is_some() => {
                    self.error(key, format!("the route's path has no :{name} parameter"))
                }
                (None, _) => {}
                (_, Err(e)) => {
                    let reason = e.to_string();
                    let reason = reason.lines().last().unwrap_or_default();
                    self.error(
                        key,
                        format!("invalid pattern: {}", reason.trim_start_matches("error: ")),
                    )
                }
                (Some(index), Ok(regex)) => patterns.push((index, name.clone(), regex)),
            }
        }
        (body_schema, patterns)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile::testing::{assert_file_errors, file};

    fn route(extra: &str) -> String {
        format!("upstreams: {{ u: {{ targets: [\"u:1\"] }} }}\nroutes:\n  - {{ name: r, match: {{ path: /orders/:orderId }}, upstream: u, public: true, {extra} }}\n")
    }

    #[test]
    fn schemas_and_parameter_patterns() {
        let config = file(&route("max_body: 8KiB, validate: { body_schema: schemas/order.json, params: { orderId: \"[0-9]{1,9}\" } }"));
        let compiled = &config.routes[0];
        assert_eq!(compiled.body_schema.as_deref(), Some("schemas/order.json"));
        assert!(compiled.buffer_body, "a schema needs the body first");
        let (index, name, pattern) = &compiled.param_patterns[0];
        assert_eq!((*index, name.as_str()), (0, "orderId"));
        assert!(pattern.is_match("42") && !pattern.is_match("42x") && !pattern.is_match("x42"));
        assert_file_errors(&[
            (&route("validate: { body_schema: s.json }"), &["routes[0].validate.body_schema: needs the whole body, which may be at most 64 KiB (max_body is 1048576 bytes)"]),
            (&route("max_body: 1KiB, buffer_body: false, validate: { body_schema: s.json }"), &["routes[0].validate.body_schema: needs the whole body before the upstream; remove buffer_body: false"]),
            (&route("validate: { params: { id: \"x\", orderId: \"(\" } }"), &[
                "routes[0].validate.params.id: the route's path has no :id parameter",
                "routes[0].validate.params.orderId: invalid pattern: unclosed group",
            ]),
        ]);
    }
}
