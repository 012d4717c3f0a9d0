//! `aliases`: other spellings of the routes' paths. An alias has a name, a match and `to`,
//! nothing else: every policy is the route's it leads to. The checks here keep that one hop:
//! `to` must lead to a route, and never to a path another alias (or the alias itself) could
//! match, so no alias chains or loops.

use super::Compiler;
use crate::config::raw::RawAlias;
use crate::config::{AliasSpec, RouteSpec};
use crate::path;
use crate::router::{PathPattern, RouteMatch, Router, Segment};
use std::collections::HashMap;
use std::sync::Arc;

impl Compiler<'_> {
    pub(super) fn aliases(&mut self, raw: &[RawAlias], routes: &[RouteSpec]) -> Vec<AliasSpec> {
        let mut names: HashMap<&str, String> = routes
            .iter()
            .map(|route| (&*route.name, format!("route \"{}\"", route.name)))
            .collect();
        let mut aliases: Vec<(usize, AliasSpec)> = Vec::new();
        for (index, alias) in raw.iter().enumerate() {
            let at = format!("aliases[{index}]");
            let errors_before = self.errors.count();
            self.entry_name(&at, "alias", &alias.name);
            if let Some(taken) = names.insert(&alias.name, format!("aliases[{index}]")) {
                self.error(
                    format!("{at}.name"),
                    format!("name \"{}\" is already used by {taken}", alias.name),
                );
            }
            let matcher = self.matcher(&at, &alias.matcher);
            if alias.matcher.exact {
                self.error(
                    format!("{at}.match.exact"),
                    "an alias leads a path and everything under it; exact is for routes",
                );
            }
            let to = self.target(&at, &alias.to);
            if self.errors.count() > errors_before {
                continue;
            }
            let (Some(pattern), Some(to)) = (matcher.pattern, to) else {
                continue;
            };
            // At the same place as a route it would win for the methods it lists, and those
            // requests would skip that route's policy.
            let same_place = routes.iter().find(|route| {
                route.host == matcher.host && route.pattern.shape() == pattern.shape()
            });
            if let Some(route) = same_place {
                self.error(
                    format!("{at}.match.path"),
                    format!(
                        "route \"{}\" matches the same paths: an alias is another spelling of a path, never a second entry at one",
                        route.name
                    ),
                );
                continue;
            }
            aliases.push((
                index,
                AliasSpec {
                    name: Arc::from(alias.name.as_str()),
                    host: matcher.host,
                    pattern,
                    methods: matcher.methods,
                    to,
                },
            ));
        }
        self.check_one_hop(&aliases, routes);
        aliases.into_iter().map(|(_, alias)| alias).collect()
    }

    /// `to`: a normalized, literal path prefix.
    fn target(&mut self, at: &str, to: &str) -> Option<String> {
        let literal = PathPattern::parse(to).is_ok_and(|pattern| {
            pattern
                .segments()
                .iter()
                .all(|s| matches!(s, Segment::Literal(_)))
        });
        let normalized = path::normalize(to).is_ok_and(|normalized| normalized == to);
        if literal && normalized {
            Some(to.to_string())
        } else {
            self.error(
                format!("{at}.to"),
                format!(
                    "\"{to}\" must be a normalized path without :params, such as /api/v1/tickets"
                ),
            );
            None
        }
    }

    /// Each alias leads to a route, and no alias could match where one leads.
    fn check_one_hop(&mut self, aliases: &[(usize, AliasSpec)], routes: &[RouteSpec]) {
        let router = Router::new(routes, &[] as &[AliasSpec]);
        for (index, alias) in aliases {
            let methods: Vec<http::Method> = match &alias.methods {
                Some(methods) => methods.clone(),
                None => super::METHODS
                    .iter()
                    .map(|m| m.parse().expect("listed methods parse"))
                    .collect(),
            };
            let leads_somewhere = methods.iter().any(|method| {
                !matches!(
                    router.route(alias.host.as_deref(), method, &alias.to),
                    RouteMatch::NotFound
                )
            });
            if !leads_somewhere {
                self.error(
                    format!("aliases[{index}].to"),
                    format!("no route matches {}", alias.to),
                );
                continue;
            }
            let hops_again = aliases.iter().find(|(_, other)| {
                hosts_meet(alias.host.as_deref(), other.host.as_deref())
                    && other.pattern.meets_subtree(&alias.to)
            });
            if let Some((other_index, other)) = hops_again {
                let whom = if other_index == index {
                    "back to itself".to_string()
                } else {
                    format!("to aliases[{other_index}] (\"{}\")", other.name)
                };
                self.error(
                    format!("aliases[{index}].to"),
                    format!(
                        "{} leads {whom}: an alias leads to a route, never to another alias",
                        alias.to
                    ),
                );
            }
        }
    }
}

fn hosts_meet(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile::testing::assert_file_errors;

    #[test]
    fn aliases_lead_to_a_route_in_one_hop() {
        let head = "upstreams: { u: { targets: [\"u:1\"] } }\nroutes:\n  - { name: tickets, match: { path: /tickets }, upstream: u, public: true }\naliases:\n";
        let alias = |name: &str, path: &str, to: &str| {
            format!("  - {{ name: {name}, match: {{ path: {path} }}, to: {to} }}\n")
        };
        assert_file_errors(&[
            (&format!("{head}{}", alias("ticket", "/ticket", "/tickets")), &[]),
            (
                &format!("{head}{}", alias("ticket", "/ticket", "/nowhere")),
                &["aliases[0].to: no route matches /nowhere"],
            ),
            (
                &format!("{head}{}", alias("tickets", "/ticket", "/tickets")),
                &["aliases[0].name: name \"tickets\" is already used by route \"tickets\""],
            ),
            (
                &format!("{head}{}", alias("ticket", "/ticket", "/tickets/:id")),
                &["aliases[0].to: \"/tickets/:id\" must be a normalized path without :params, such as /api/v1/tickets"],
            ),
            (
                &format!("{head}{}", alias("ticket", "/ticket", "/tickets/../x")),
                &["aliases[0].to: \"/tickets/../x\" must be a normalized path without :params, such as /api/v1/tickets"],
            ),
            (
                &format!(
                    "{head}{}{}",
                    alias("a", "/a", "/tickets"),
                    alias("b", "/tickets/special", "/tickets")
                ),
                &[
                    "aliases[0].to: /tickets leads to aliases[1] (\"b\"): an alias leads to a route, never to another alias",
                    "aliases[1].to: /tickets leads back to itself: an alias leads to a route, never to another alias",
                ],
            ),
            (
                &format!("{head}{}", alias("shadow", "/tickets", "/tickets")),
                &[
                    "aliases[0].match.path: route \"tickets\" matches the same paths: an alias is another spelling of a path, never a second entry at one",
                ],
            ),
            (
                &format!("{head}{}", alias("loop", "/tickets/old", "/tickets/old/new")),
                &["aliases[0].to: /tickets/old/new leads back to itself: an alias leads to a route, never to another alias"],
            ),
        ]);
    }
}
