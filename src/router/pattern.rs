//! Route path patterns: literal segments and `:param` segments, matched on segment
//! boundaries (`/api/v1/venues` matches `/api/v1/venues/7`, never `/api/v1/venuesX`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Parses `/a/:b/c`. The root `/` has no segments and matches every path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("path \"{text}\" must start with /"));
        };
        if rest.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        if rest.ends_with('/') {
            return Err(format!("path \"{text}\" must not end with /"));
        }
        let mut segments = Vec::new();
        for part in rest.split('/') {
            segments.push(parse_segment(text, part)?);
        }
        let mut names: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) => Some(name.as_str()),
                Segment::Literal(_) => None,
            })
            .collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!(
                "path \"{text}\" names parameter :{} twice",
                pair[0]
            ));
        }
        Ok(Self { segments })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether this pattern could match `prefix` or a path under it (it matches a prefix
    /// of `prefix`, or `prefix` is a prefix of paths it matches).
    pub fn meets_subtree(&self, prefix: &str) -> bool {
        self.segments
            .iter()
            .zip(split_path(prefix))
            .all(|(segment, text)| match segment {
                Segment::Literal(literal) => literal == text,
                Segment::Param(_) => true,
            })
    }

    /// This pattern followed by `tail`.
    pub fn join(&self, tail: &PathPattern) -> PathPattern {
        let mut segments = self.segments.clone();
        segments.extend(tail.segments.iter().cloned());
        PathPattern { segments }
    }

    /// Parameter names in order of appearance.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The pattern with parameter names erased: two patterns with the same shape match
    /// exactly the same paths.
    pub fn shape(&self) -> Vec<Option<&str>> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(text) => Some(text.as_str()),
                Segment::Param(_) => None,
            })
            .collect()
    }

    /// Whether `path` (split into segments) is this pattern exactly, or lies beneath it.
    pub fn matches(&self, path: &[&str], subtree: bool) -> bool {
        let length_ok = if subtree {
            path.len() >= self.segments.len()
        } else {
            path.len() == self.segments.len()
        };
        length_ok
            && self.segments.iter().zip(path).all(|(s, p)| match s {
                Segment::Literal(text) => text == p,
                Segment::Param(_) => !p.is_empty(),
            })
    }
}

fn parse_segment(text: &str, part: &str) -> Result<Segment, String> {
    if part.is_empty() {
        return Err(format!("path \"{text}\" has an empty segment (//)"));
    }
    if part == "." || part == ".." {
        return Err(format!("path \"{text}\" has a dot segment"));
    }
    if let Some(name) = part.strip_prefix(':') {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "path \"{text}\" has an invalid parameter name \":{name}\""
            ));
        }
        return Ok(Segment::Param(name.to_string()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()+,;=@".contains(c);
    if !part.chars().all(allowed) {
        return Err(format!(
            "path \"{text}\" segment \"{part}\" may hold only letters, digits and -._~!$&'()+,;=@"
        ));
    }
    Ok(Segment::Literal(part.to_string()))
}

/// Split a normalized path into segments, ignoring the leading slash and one trailing slash.
pub fn split_path(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(|s| !s.is_empty())
}

/// A path segment as routing compares it: without its `;` parameters (`admin;v=1` is
/// `admin`), which servlet containers and others strip before they route, so a route
/// and its policy cannot be sidestepped with a parameter.
pub fn segment_stem(segment: &str) -> &str {
    segment.split(';').next().unwrap_or(segment)
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => write!(f, "/{text}")?,
                Segment::Param(name) => write!(f, "/:{name}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for text in ["/", "/api/v1/venues", "/api/v1/events/:eventId/tickets"] {
            assert_eq!(PathPattern::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for text in [
            "api", "/a/", "/a//b", "/a/../b", "/:1x", "/:a/:a", "/a b", "/a%2f",
        ] {
            assert!(
                PathPattern::parse(text).is_err(),
                "{text} should be rejected"
            );
        }
    }

    #[test]
    fn matches_on_segment_boundaries() {
        let pattern = PathPattern::parse("/api/v1/venues").unwrap();
        let seg = |p: &'static str| split_path(p).collect::<Vec<_>>();
        assert!(pattern.matches(&seg("/api/v1/venues"), true));
        assert!(pattern.matches(&seg("/api/v1/venues/7"), true));
        assert!(!pattern.matches(&seg("/api/v1/venuesX"), true));
        assert!(!pattern.matches(&seg("/api/v1/venues/7"), false));
    }
}
