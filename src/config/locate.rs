//! Where a key path (`routes[3].upstream`) stands in the text of routes.yaml.
//!
//! serde_yaml's values carry no positions, so errors found after parsing (by the compiler
//! and the loaders) would name a path only. This index is built from the YAML parser's
//! events, which carry marks, and only when there is an error to place: a path names a
//! mapping key by its key's start and a sequence item by the item's start.

use saphyr_parser::{Event, Parser, Span};
use std::collections::HashMap;

pub struct Locator {
    places: HashMap<String, Place>,
}

struct Place {
    /// 1-based line and column.
    at: (usize, usize),
    /// The value, when it is a scalar.
    scalar: Option<String>,
}

/// A mapping or sequence being read, and where its next node goes.
enum Frame {
    Mapping {
        path: String,
        /// The key read, waiting for its value.
        key: Option<String>,
    },
    Sequence {
        path: String,
        next: usize,
    },
    /// A mapping or sequence used as a key: nothing in it has a path.
    Key,
}

impl Locator {
    /// Indexes `text`; if the text is not valid YAML, what comes before the error.
    pub fn new(text: &str) -> Locator {
        let mut places = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            match &event {
                Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..) => {}
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    continue;
                }
                Event::DocumentEnd => break,
                _ => continue,
            }
            // The path of this node, if it is a value; a key is recorded in its mapping.
            let path = match stack.last_mut() {
                None => Some(String::new()),
                Some(Frame::Key) => None,
                Some(Frame::Sequence { path, next }) => {
                    *next += 1;
                    let item = format!("{path}[{}]", *next - 1);
                    places.entry(item.clone()).or_insert(Place {
                        at: start(&span),
                        scalar: None,
                    });
                    Some(item)
                }
                Some(Frame::Mapping { path, key }) => match key.take() {
                    Some(key) => Some(join(path, &key)),
                    None => {
                        let name = match &event {
                            Event::Scalar(value, ..) => value.to_string(),
                            _ => String::new(),
                        };
                        places.entry(join(path, &name)).or_insert(Place {
                            at: start(&span),
                            scalar: None,
                        });
                        *key = Some(name);
                        if !matches!(event, Event::Scalar(..) | Event::Alias(_)) {
                            stack.push(Frame::Key);
                        }
                        continue;
                    }
                },
            };
            match (event, path) {
                (Event::Scalar(value, ..), Some(path)) => {
                    if let Some(place) = places.get_mut(&path) {
                        place.scalar = Some(value.into_owned());
                    }
                }
                (Event::MappingStart(..), Some(path)) => {
                    stack.push(Frame::Mapping { path, key: None })
                }
                (Event::SequenceStart(..), Some(path)) => {
                    stack.push(Frame::Sequence { path, next: 0 })
                }
                (Event::MappingStart(..) | Event::SequenceStart(..), None) => {
                    stack.push(Frame::Key)
                }
                _ => {}
            }
        }
        Locator { places }
    }

    /// The line and column of `path`, or of its nearest written ancestor when the key itself
    /// is not in the file (a missing key, a value inherited from `defaults`); `None` for the
    /// document itself.
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let mut path = path;
        while !path.is_empty() {
            if let Some(place) = self.places.get(path) {
                return Some(place.at);
            }
            path = &path[..path.rfind(['.', '[']).unwrap_or(0)];
        }
        None
    }

    /// The scalar written at `path`, if there is one.
    pub fn scalar(&self, path: &str) -> Option<&str> {
        self.places.get(path)?.scalar.as_deref()
    }
}

fn start(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_placed_at_their_key_or_item() {
        let text = "\
listeners:
  public: { address: \"0.0.0.0:8080\", tls: { cert_file: a } }
upstreams:
  tickets:
    targets: [\"a:1\", \"b:2\"]
    \"lb\": random
routes:
  - name: one
    match: { path: /one }
    upstream: tickets
  - name: two
    upstream: tickts
    match:
      methods:
        - GET
        - [POST, PUT]
";
        let locator = Locator::new(text);
        for (path, expected) in [
            ("listeners", Some((1, 1))),
            ("listeners.public", Some((2, 3))),
            ("listeners.public.address", Some((2, 13))),
            ("listeners.public.tls.cert_file", Some((2, 45))),
            ("upstreams.tickets.targets[1]", Some((5, 22))),
            ("upstreams.tickets.lb", Some((6, 5))),
            ("routes[0]", Some((8, 5))),
            ("routes[0].upstream", Some((10, 5))),
            ("routes[1].upstream", Some((12, 5))),
            ("routes[1].match.methods[0]", Some((15, 11))),
            ("routes[1].match.methods[1][1]", Some((16, 18))),
            // Not written: the nearest ancestor that is.
            ("routes[1].timeout", Some((11, 5))),
            ("upstreams.tickets.timeouts.total", Some((4, 3))),
            ("authentication.jwt", None),
            ("", None),
        ] {
            assert_eq!(locator.locate(path), expected, "{path}");
        }
        assert_eq!(locator.scalar("routes[1].name"), Some("two"));
        assert_eq!(locator.scalar("upstreams.tickets.lb"), Some("random"));
        assert_eq!(locator.scalar("routes[1].match"), None);
    }

    #[test]
    fn invalid_yaml_keeps_what_came_before_the_error() {
        let locator = Locator::new("server: { threads: 2 }\nlisteners: { public: [\n");
        assert_eq!(locator.locate("server.threads"), Some((1, 11)));
        assert_eq!(locator.locate("listeners"), Some((2, 1)));
    }

    #[test]
    fn complex_keys_are_skipped() {
        let locator = Locator::new("? [a, b]\n: 1\nnext: 2\n");
        assert_eq!(locator.locate("next"), Some((3, 1)));
    }
}
