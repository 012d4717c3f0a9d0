//! Table-driven routing tests over a small config that exercises every precedence rule.

use super::*;
use crate::config;

const TABLE: &str = r#"
authentication: { jwt: { issuer: i, audiences: [a], keys: [{ kid: k, algorithm: HS256, secret_env: UNUSED_SECRET }] } }
listeners:
  public: { address: "127.0.0.1:8080" }
  admin: { address: "127.0.0.1:9090" }
upstreams:
  svc: { targets: ["127.0.0.1:1"] }
routes:
  - { name: catch-all, match: { path: / }, upstream: svc }
  - { name: venues, match: { path: /api/v1/venues }, upstream: svc }
  - { name: venue, match: { path: /api/v1/venues/:venueId }, upstream: svc }
  - { name: venue-search, match: { path: /api/v1/venues/search }, upstream: svc }
  - { name: event-tickets, match: { path: /api/v1/events/:eventId/tickets }, upstream: svc }
  - { name: tickets, match: { path: /api/v1/tickets }, upstream: svc }
  - { name: purchase, match: { path: /api/v1/tickets/purchase, methods: [POST] }, upstream: svc }
  - { name: ticket-read, match: { path: /api/v1/tickets/:id, methods: [GET, HEAD] }, upstream: svc }
  - { name: admin-host, match: { path: /api/v1/venues, host: Admin.Example.com. }, upstream: svc }
  - { name: only-post, match: { path: /api/v1/jobs, methods: [POST] }, upstream: svc }
  - { name: job-run, match: { path: /api/v1/jobs/:jobId/run, methods: [POST], exact: true }, upstream: svc }
"#;

fn router() -> (Router, Vec<String>) {
    let config = config::load("test.yaml", TABLE).expect("table compiles");
    let names = config.routes.iter().map(|r| r.name.to_string()).collect();
    (Router::new(&config.routes, &config.aliases), names)
}

/// (host, method, path, expected route, expected params)
type Case = (
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

#[test]
fn most_specific_route_wins() {
    let (router, names) = router();
    let cases: &[Case] = &[
        (None, "GET", "/", "catch-all", &[]),
        (None, "GET", "/api/v1/venues", "venues", &[]),
        (None, "GET", "/api/v1/venues/", "venues", &[]),
        (None, "GET", "/api/v1/venuesX", "catch-all", &[]),
        (None, "GET", "/api/v1/venues/7", "venue", &["7"]),
        (None, "GET", "/api/v1/venues/7/seats", "venue", &["7"]),
        (None, "GET", "/api/v1/venues/search", "venue-search", &[]),
        // An exact route takes its own path (and a trailing slash), nothing under it.
        (None, "POST", "/api/v1/jobs/j1/run", "job-run", &["j1"]),
        (None, "POST", "/api/v1/jobs/j1/run/", "job-run", &["j1"]),
        (None, "POST", "/api/v1/jobs/j1/run/now", "only-post", &[]),
        // Parameters after a segment do not hide it (servlet containers cut them).
        (
            None,
            "GET",
            "/api/v1/venues/search;v=1",
            "venue-search",
            &[],
        ),
        (None, "GET", "/api;x/v1;y/venues;z/7;w", "venue", &["7"]),
        (
            None,
            "GET",
            "/api/v1/events/42/tickets",
            "event-tickets",
            &["42"],
        ),
        (
            None,
            "GET",
            "/api/v1/events/42/tickets/9",
            "event-tickets",
            &["42"],
        ),
        (None, "GET", "/api/v1/events/42", "catch-all", &[]),
        (None, "POST", "/api/v1/tickets/purchase", "purchase", &[]),
        (
            None,
            "GET",
            "/api/v1/tickets/purchase",
            "ticket-read",
            &["purchase"],
        ),
        (None, "GET", "/api/v1/tickets/77", "ticket-read", &["77"]),
        (None, "DELETE", "/api/v1/tickets/77", "tickets", &[]),
        (
            Some("admin.example.com"),
            "GET",
            "/api/v1/venues/7",
            "admin-host",
            &[],
        ),
        (
            Some("ADMIN.example.com:8443"),
            "GET",
            "/api/v1/venues",
            "admin-host",
            &[],
        ),
        // A fully qualified name's trailing dot names the same host.
        (
            Some("admin.example.com."),
            "GET",
            "/api/v1/venues",
            "admin-host",
            &[],
        ),
        (
            Some("Admin.Example.Com.:9"),
            "GET",
            "/api/v1/venues",
            "admin-host",
            &[],
        ),
        (
            Some("admin.example.com.."),
            "GET",
            "/api/v1/venues",
            "venues",
            &[],
        ),
        (
            Some("admin.example.com"),
            "GET",
            "/api/v1/events/1/tickets",
            "event-tickets",
            &["1"],
        ),
        (
            Some("other.example.com"),
            "GET",
            "/api/v1/venues",
            "venues",
            &[],
        ),
    ];
    for (host, method, path, expected, params) in cases {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        match router.route(*host, &method, path) {
            RouteMatch::Found(found) => {
                assert_eq!(
                    names[found.route], *expected,
                    "{method} {path} host {host:?}"
                );
                assert_eq!(found.params, *params, "{method} {path} params");
            }
            other => panic!("{method} {path}: expected {expected}, got {other:?}"),
        }
    }
}

#[test]
fn method_not_allowed_lists_allowed_methods() {
    let config = config::load(
        "test.yaml",
        &TABLE.replace(
            "  - { name: catch-all, match: { path: / }, upstream: svc }\n",
            "",
        ),
    )
    .unwrap();
    let router = Router::new(&config.routes, &config.aliases);
    assert_eq!(
        router.route(None, &Method::GET, "/api/v1/jobs"),
        RouteMatch::MethodNotAllowed(vec![Method::POST])
    );
    assert_eq!(
        router.route(None, &Method::GET, "/nothing"),
        RouteMatch::NotFound
    );
}

#[test]
fn depth_counts_pattern_segments() {
    let (router, _) = router();
    let RouteMatch::Found(found) = router.route(None, &Method::GET, "/api/v1/venues/7/seats")
    else {
        panic!("expected a match");
    };
    assert_eq!(found.depth, 4);
}

#[test]
fn an_alias_is_routed_again_among_routes_only() {
    let text = format!(
        "{TABLE}aliases:\n  - {{ name: ticket, match: {{ path: /api/v1/ticket }}, to: /api/v1/tickets }}\n  - {{ name: old-jobs, match: {{ path: /jobs, methods: [POST, GET] }}, to: /api/v1/jobs }}\n"
    );
    let config = config::load("test.yaml", &text).unwrap();
    let name = |index: usize| config.routes[index].name.to_string();
    let router = Router::new(&config.routes, &config.aliases);
    let RouteMatch::Found(found) = router.route(None, &Method::POST, "/api/v1/ticket/purchase")
    else {
        panic!("expected a match");
    };
    assert_eq!(name(found.route), "purchase");
    assert_eq!(
        found.via,
        Some(Via {
            alias: 0,
            path: "/api/v1/tickets/purchase".into()
        })
    );
    let RouteMatch::Found(found) = router.route(None, &Method::GET, "/api/v1/ticket/t-9") else {
        panic!("expected a match");
    };
    assert_eq!(name(found.route), "ticket-read");
    assert_eq!(found.params, ["t-9"], "params of the path the alias led to");
    assert_eq!(found.depth, 4);
    // The second lookup is an ordinary one: GET /api/v1/jobs is not only-post's (POST), so
    // the catch-all takes it, as it would without the alias.
    let RouteMatch::Found(found) = router.route(None, &Method::GET, "/jobs") else {
        panic!("expected a match");
    };
    assert_eq!(name(found.route), "catch-all");
    // Without an alias in between, nothing changes.
    let RouteMatch::Found(found) = router.route(None, &Method::GET, "/api/v1/tickets") else {
        panic!("expected a match");
    };
    assert_eq!((name(found.route).as_str(), found.via), ("tickets", None));
}
