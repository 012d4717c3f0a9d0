//! Request routing: host, normalized path and method to a route, most specific match first.
//!
//! Routes live in a segment trie per host (plus one for routes without a host). A request
//! walks the trie literal-first, then parameter; every node it reaches holds the routes whose
//! pattern ends there, which are prefix matches of the request. Precedence, deterministic:
//! 1. a route with a matching `host` over any route without one;
//! 2. the longest pattern (most segments);
//! 3. at equal length, a literal segment over a parameter, compared left to right;
//! 4. at the same pattern, a route that lists the method over one that accepts every method;
//! 5. then file order.
//!
//! Pure code: the same table and request always give the same answer.

mod pattern;
mod rewrite;
#[cfg(test)]
mod tests;

pub use pattern::{segment_stem, split_path, PathPattern, Segment};
pub use rewrite::PathTemplate;

use http::Method;
use std::collections::{BTreeMap, HashMap};

pub struct Router {
    by_host: HashMap<String, Node>,
    any_host: Node,
    /// Entries from this index on are aliases; `alias_to[i]` is where alias `i` leads.
    route_count: usize,
    alias_to: Vec<PathTemplate>,
}

#[derive(Default)]
struct Node {
    /// Literal children sorted by segment: a binary search beats hashing for the handful
    /// of children most nodes have, and stays logarithmic for thousands.
    literal: Vec<(Box<str>, Node)>,
    param: Option<Box<Node>>,
    /// Routes whose pattern ends here: those listing methods first, then file order.
    routes: Vec<RouteEntry>,
}

impl Node {
    fn literal_child(&self, segment: &str) -> Option<&Node> {
        self.literal
            .binary_search_by(|(text, _)| (**text).cmp(segment))
            .ok()
            .map(|at| &self.literal[at].1)
    }
}

/// A node while the trie is built: children in a map, so that adding one costs a lookup,
/// not a shift of the sorted vector (which made a table of 200,000 sibling routes take
/// 30 s); [`NodeBuilder::build`] sorts each node's children once.
#[derive(Default)]
struct NodeBuilder {
    literal: BTreeMap<Box<str>, NodeBuilder>,
    param: Option<Box<NodeBuilder>>,
    routes: Vec<RouteEntry>,
}

impl NodeBuilder {
    fn build(self) -> Node {
        let mut routes = self.routes;
        routes.sort_by_key(|entry| (entry.methods.is_none(), entry.index));
        Node {
            // A BTreeMap iterates in key order: the vector comes out sorted.
            literal: self
                .literal
                .into_iter()
                .map(|(text, child)| (text, child.build()))
                .collect(),
            param: self.param.map(|child| Box::new(child.build())),
            routes,
        }
    }
}

struct RouteEntry {
    index: usize,
    methods: Option<Vec<Method>>,
    /// Matches its path only, not the paths under it.
    exact: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found(Matched),
    /// The path matched, the method did not. Holds the methods that would have matched.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Matched {
    /// Index into the routes the router was built from.
    pub route: usize,
    /// Values of the route's `:param` segments, in pattern order.
    pub params: Vec<String>,
    /// How many leading path segments the route's pattern consumed (for prefix rewrites).
    pub depth: usize,
    /// The alias the request came through, if it did: `params` and `depth` are then those
    /// of its path as the alias rewrote it.
    pub via: Option<Via>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Via {
    /// Index into the aliases the router was built from.
    pub alias: usize,
    /// The request's path with the alias's matched prefix replaced by its `to`.
    pub path: String,
}

/// What the router needs of a route: the host, path pattern and methods it matches. The
/// compiled configuration's routes are it; the router knows nothing else of them.
pub trait Routable {
    /// Lower case, without a trailing dot (see [`host_name`]); `None`: any host.
    fn host(&self) -> Option<&str>;
    fn pattern(&self) -> &PathPattern;
    /// `None`: every method.
    fn methods(&self) -> Option<&[Method]>;
    /// Whether it matches its path only, not the paths under it.
    fn exact(&self) -> bool {
        false
    }
    /// For an alias, the path prefix its matched part is replaced by before the request is
    /// routed again.
    fn alias(&self) -> Option<&str> {
        None
    }
}

impl Router {
    /// A router for `routes` and `aliases`; an alias leads to a route in one hop (the second
    /// lookup sees routes only).
    pub fn new<R: Routable, A: Routable>(routes: &[R], aliases: &[A]) -> Self {
        let mut by_host: HashMap<String, NodeBuilder> = HashMap::new();
        let mut any_host = NodeBuilder::default();
        let entries = routes
            .iter()
            .map(|r| r as &dyn Routable)
            .chain(aliases.iter().map(|a| a as &dyn Routable));
        for (index, route) in entries.enumerate() {
            let mut node = match route.host() {
                Some(host) => by_host.entry(host.to_string()).or_default(),
                None => &mut any_host,
            };
            for segment in route.pattern().segments() {
                node = match segment {
                    Segment::Literal(text) => node.literal.entry(text.as_str().into()).or_default(),
                    Segment::Param(_) => node.param.get_or_insert_with(Default::default),
                };
            }
            node.routes.push(RouteEntry {
                index,
                methods: route.methods().map(<[Method]>::to_vec),
                exact: route.exact(),
            });
        }
        Router {
            by_host: by_host
                .into_iter()
                .map(|(host, node)| (host, node.build()))
                .collect(),
            any_host: any_host.build(),
            route_count: routes.len(),
            alias_to: aliases
                .iter()
                .map(|alias| PathTemplate::literal(alias.alias().unwrap_or("/")))
                .collect(),
        }
    }

    /// `host` is compared by [`host_name`]'s rule; `path` must be normalized. A match on an
    /// alias is routed again, among routes only, on the path the alias leads to.
    pub fn route(&self, host: Option<&str>, method: &Method, path: &str) -> RouteMatch {
        match self.lookup(host, method, path, usize::MAX) {
            RouteMatch::Found(found) if found.route >= self.route_count => {
                let alias = found.route - self.route_count;
                let path = self.alias_to[alias].apply(path, found.depth, &found.params);
                match self.lookup(host, method, &path, self.route_count) {
                    RouteMatch::Found(found) => RouteMatch::Found(Matched {
                        via: Some(Via { alias, path }),
                        ..found
                    }),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// The best entry below index `below`.
    fn lookup(&self, host: Option<&str>, method: &Method, path: &str, below: usize) -> RouteMatch {
        let mut allowed = Vec::new();
        if let Some(node) = host.and_then(|host| self.host_node(host)) {
            if let Some(found) = Search::run(node, path, method, below, &mut allowed) {
                return RouteMatch::Found(found);
            }
        }
        if let Some(found) = Search::run(&self.any_host, path, method, below, &mut allowed) {
            return RouteMatch::Found(found);
        }
        if allowed.is_empty() {
            RouteMatch::NotFound
        } else {
            allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            allowed.dedup();
            RouteMatch::MethodNotAllowed(allowed)
        }
    }

    fn host_node(&self, host: &str) -> Option<&Node> {
        if self.by_host.is_empty() {
            return None;
        }
        let host = host_name(host);
        self.by_host
            .get(host)
            .or_else(|| self.by_host.get(&host.to_ascii_lowercase()))
    }
}

/// The one rule for host matching: the name without its port and without the trailing dot
/// of a fully qualified name (`Api.Example.com.:8443` is `api.example.com`), compared without
/// regard to case. Route hosts are stored in this form, lower-cased.
pub fn host_name(host: &str) -> &str {
    let host = strip_port(host);
    host.strip_suffix('.').unwrap_or(host)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// One depth-first walk over the path's segments, split as the walk goes. `best` keeps the
/// deepest match found first, which with the literal-before-parameter order is the most
/// specific one.
struct Search<'a> {
    method: &'a Method,
    /// Entries from this index on are not candidates.
    below: usize,
    params: Vec<&'a str>,
    best: Option<Matched>,
    allowed: &'a mut Vec<Method>,
}

/// The next segment of `rest` and what follows it; `None` at the end of the path.
fn next_segment(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        return None;
    }
    let (segment, tail) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, ""),
    };
    Some((segment_stem(segment), tail))
}

impl<'a> Search<'a> {
    fn run(
        root: &Node,
        path: &'a str,
        method: &'a Method,
        below: usize,
        allowed: &'a mut Vec<Method>,
    ) -> Option<Matched> {
        let mut search = Search {
            method,
            below,
            params: Vec::new(),
            best: None,
            allowed,
        };
        search.visit(root, path, 0);
        search.best
    }

    fn visit(&mut self, node: &Node, rest: &'a str, depth: usize) {
        if let Some((segment, tail)) = next_segment(rest) {
            if let Some(child) = node.literal_child(segment) {
                self.visit(child, tail, depth + 1);
            }
            if let Some(child) = &node.param {
                self.params.push(segment);
                self.visit(child, tail, depth + 1);
                self.params.pop();
            }
        }
        if self.best.as_ref().is_some_and(|best| best.depth >= depth) {
            return;
        }
        let at_end = next_segment(rest).is_none();
        let candidates = node
            .routes
            .iter()
            .filter(|entry| entry.index < self.below && (at_end || !entry.exact));
        for entry in candidates {
            match &entry.methods {
                Some(methods) if !methods.contains(self.method) => {
                    self.allowed.extend(methods.iter().cloned());
                }
                _ => {
                    self.best = Some(Matched {
                        route: entry.index,
                        params: self.params.iter().map(|p| p.to_string()).collect(),
                        depth,
                        via: None,
                    });
                    return;
                }
            }
        }
    }
}
