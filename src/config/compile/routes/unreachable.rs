//! Checks across routes: duplicate names, and routes that an earlier route with the same
//! host, path shape and methods always wins over.

use crate::config::compile::Compiler;
use crate::config::RouteSpec;
use std::collections::HashMap;

impl Compiler<'_> {
    pub(super) fn check_unreachable(&mut self, routes: &[(usize, RouteSpec)]) {
        let mut seen_names: HashMap<&str, usize> = HashMap::new();
        for (index, route) in routes {
            if let Some(first) = seen_names.insert(&*route.name, *index) {
                self.error(
                    format!("routes[{index}].name"),
                    format!(
                        "route name \"{}\" is already used by routes[{first}]",
                        route.name
                    ),
                );
            }
        }
        // Routes that match exactly the same requests, in file order.
        let mut same_place: HashMap<PlaceKey, Vec<&(usize, RouteSpec)>> = HashMap::new();
        for entry in routes {
            let (_, route) = entry;
            same_place
                .entry((route.host.as_deref(), route.pattern.shape()))
                .or_default()
                .push(entry);
        }
        let mut groups: Vec<_> = same_place.into_values().filter(|g| g.len() > 1).collect();
        groups.sort_by_key(|group| group[0].0);
        for group in groups {
            for (position, (index, route)) in group.iter().enumerate() {
                let mut covered: Vec<&http::Method> = Vec::new();
                for (earlier_index, earlier) in &group[..position] {
                    // A route that lists methods beats one that accepts every method at the
                    // same pattern (see the router), so only like shadows like.
                    let shadowed = match (&earlier.methods, &route.methods) {
                        (None, None) => true,
                        (None, Some(_)) | (Some(_), None) => false,
                        (Some(earlier_methods), Some(methods)) => {
                            covered.extend(earlier_methods);
                            methods.iter().all(|m| covered.contains(&m))
                        }
                    };
                    if shadowed {
                        self.error(
                            format!("routes[{index}]"),
                            format!("can never match: routes[{earlier_index}] (\"{}\") already matches the same host, path and methods", earlier.name),
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// Host and path shape: routes with equal keys match exactly the same requests.
type PlaceKey<'a> = (Option<&'a str>, Vec<Option<&'a str>>);

#[cfg(test)]
mod tests {
    use crate::config::compile::testing::assert_file_errors;

    #[test]
    fn duplicate_and_shadowed_routes() {
        let head = "upstreams: { u: { targets: [\"u:1\"] } }\nroutes:\n";
        let route = |name: &str, matcher: &str| {
            format!("  - {{ name: {name}, match: {{ {matcher} }}, upstream: u, public: true }}\n")
        };
        assert_file_errors(&[
            (&format!("{head}{}{}", route("a", "path: /a"), route("a", "path: /b")), &["routes[1].name: route name \"a\" is already used by routes[0]"]),
            (&format!("{head}{}{}", route("a", "path: /x/:id"), route("b", "path: /x/:other")), &["routes[1]: can never match: routes[0] (\"a\") already matches the same host, path and methods"]),
            (&format!("{head}{}{}{}", route("a", "path: /x, methods: [GET]"), route("b", "path: /x, methods: [POST]"), route("c", "path: /x, methods: [POST, GET]")), &["routes[2]: can never match: routes[1] (\"b\") already matches the same host, path and methods"]),
            (&format!("{head}{}{}{}", route("a", "path: /x"), route("b", "path: /x, methods: [GET]"), route("c", "path: /x, host: h.example")), &[]),
        ]);
    }
}
