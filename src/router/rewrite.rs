//! What a route's `rewrite` forwards instead of the path it matched: the matched part
//! replaced by a template (`/admin`, `/admin/reconcile/:venueId`, or `/` to strip it), the
//! rest of the path kept. A template's `:name` segments take the values the route's own
//! pattern matched, so a route with parameters can be rewritten without losing them.

use std::fmt;

use super::{PathPattern, Segment};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    parts: Vec<Part>,
    /// As written, for `usher routes`.
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// Index into the route's matched parameters.
    Param(usize),
}

impl PathTemplate {
    /// Compiles `text` against the route's `pattern`: each `:name` must be one of its
    /// parameters. One trailing `/` is allowed and means nothing.
    pub fn compile(text: &str, pattern: &PathPattern) -> Result<Self, String> {
        let trimmed = match text.strip_suffix('/') {
            Some(rest) if !rest.is_empty() => rest,
            _ => text,
        };
        let parsed = PathPattern::parse(trimmed)?;
        let mut parts = Vec::new();
        for segment in parsed.segments() {
            parts.push(match segment {
                Segment::Literal(literal) => Part::Literal(literal.clone()),
                Segment::Param(name) => match pattern.param_names().position(|n| n == name) {
                    Some(index) => Part::Param(index),
                    None => {
                        return Err(format!(
                            "\"{text}\" uses :{name}, which the route's path \"{pattern}\" does not have"
                        ))
                    }
                },
            });
        }
        Ok(Self {
            parts,
            text: text.to_string(),
        })
    }

    /// A literal prefix (an alias's `to`, already checked), with no parameters.
    pub fn literal(prefix: &str) -> Self {
        let parts = super::split_path(prefix)
            .map(|segment| Part::Literal(segment.to_string()))
            .collect();
        Self {
            parts,
            text: prefix.to_string(),
        }
    }

    /// The path to forward: the first `depth` segments of the normalized `path` (the part
    /// the route's pattern matched, whose parameters are `params`) replaced by this
    /// template, the rest kept.
    pub fn apply(&self, path: &str, depth: usize, params: &[String]) -> String {
        let mut matched_end = 0;
        for _ in 0..depth {
            if matched_end + 1 >= path.len() {
                break;
            }
            matched_end = path[matched_end + 1..]
                .find('/')
                .map_or(path.len(), |at| matched_end + 1 + at);
        }
        let mut out = String::with_capacity(path.len() + self.text.len());
        for part in &self.parts {
            out.push('/');
            match part {
                Part::Literal(literal) => out.push_str(literal),
                Part::Param(index) => out.push_str(params.get(*index).map_or("", String::as_str)),
            }
        }
        out.push_str(&path[matched_end..]);
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(pattern: &str, template: &str, path: &str, params: &[&str]) -> String {
        let pattern = PathPattern::parse(pattern).unwrap();
        let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
        let depth = pattern.segments().len();
        PathTemplate::compile(template, &pattern)
            .unwrap()
            .apply(path, depth, &params)
    }

    #[test]
    fn replaces_the_matched_prefix() {
        assert_eq!(
            rewrite("/api/v1/auth", "/auth", "/api/v1/auth/login", &[]),
            "/auth/login"
        );
        assert_eq!(
            rewrite("/api/v1/auth", "/auth", "/api/v1/auth", &[]),
            "/auth"
        );
        assert_eq!(
            rewrite("/api/v1/auth", "/auth", "/api/v1/auth/", &[]),
            "/auth/"
        );
        assert_eq!(
            rewrite("/api/v1/auth", "/", "/api/v1/auth/login", &[]),
            "/login"
        );
        assert_eq!(rewrite("/api/v1/auth", "/", "/api/v1/auth", &[]), "/");
        assert_eq!(
            rewrite("/api/v1/events/:id", "/e/", "/api/v1/events/7/x", &["7"]),
            "/e/x"
        );
        assert_eq!(rewrite("/", "/base", "/anything", &[]), "/base/anything");
    }

    #[test]
    fn keeps_the_parameters_a_template_names() {
        assert_eq!(
            rewrite(
                "/api/v1/minting/admin/reconcile/:venueId",
                "/admin/reconcile/:venueId",
                "/api/v1/minting/admin/reconcile/v-7/fix",
                &["v-7"],
            ),
            "/admin/reconcile/v-7/fix"
        );
        assert_eq!(
            rewrite("/a/:x/b/:y", "/y/:y/x/:x", "/a/1/b/2", &["1", "2"]),
            "/y/2/x/1"
        );
    }

    #[test]
    fn refuses_what_it_cannot_fill() {
        let pattern = PathPattern::parse("/a/:x").unwrap();
        let error = PathTemplate::compile("/b/:y", &pattern).unwrap_err();
        assert_eq!(
            error,
            "\"/b/:y\" uses :y, which the route's path \"/a/:x\" does not have"
        );
        assert!(PathTemplate::compile("/b c", &pattern).is_err());
        assert!(PathTemplate::compile("b", &pattern).is_err());
    }
}
