//! The shipped routes.yaml's policy, endpoint by endpoint: every service prefix, public
//! path, alias and per-endpoint rule, written out here and checked against the compiled
//! table (through the same router and access rule the proxy uses). An edit that opens a
//! hole, or moves an endpoint to another route, fails this test until the table here is
//! changed with it, in review.

use usher::config::{self, Config, RouteSpec};
use usher::filters::access::requires_authentication;
use usher::router::{RouteMatch, Router};

/// What one method and path get.
struct Expect {
    route: &'static str,
    /// The alias the request comes through, if any.
    via: Option<&'static str>,
    public: bool,
    /// Roles, any of which the caller needs (empty: any caller).
    roles: &'static [&'static str],
    /// Where a venue id comes from that the caller's venues must contain (a path parameter
    /// or a pointer into the body), whether venue-service confirms it, and which roles
    /// pass for every venue; empty: no venue scope.
    venue: &'static str,
    /// Rate-limit policies, in order.
    limits: &'static [&'static str],
    timeout_s: u64,
    max_body: u64,
    /// Whether the verified bearer token reaches the upstream.
    forwards_token: bool,
    /// Whether POST and PATCH need an Idempotency-Key (the body is then read first).
    idempotent: bool,
    /// Requests asking for more than this need another principal's approval (0: none).
    approval_above: u64,
    /// The webhook signature scheme deliveries must carry ("": none).
    webhook: &'static str,
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

const fn authenticated(route: &'static str, limits: &'static [&'static str]) -> Expect {
    Expect {
        route,
        via: None,
        public: false,
        roles: &[],
        venue: "",
        limits,
        timeout_s: 10,
        max_body: MIB,
        forwards_token: false,
        idempotent: false,
        approval_above: 0,
        webhook: "",
    }
}

/// A money or minting write: an Idempotency-Key, and a body of at most 64 KiB.
/// A route to the minting pool, whose requests Usher signs: bodies are read whole.
const fn minting(route: &'static str, limits: &'static [&'static str]) -> Expect {
    Expect {
        max_body: 64 * KIB,
        ..authenticated(route, limits)
    }
}

const fn idempotent(e: Expect) -> Expect {
    Expect {
        idempotent: true,
        max_body: 64 * KIB,
        ..e
    }
}

const GLOBAL: &[&str] = &["global"];
const VENUE_MANAGER: &str = ":venueId confirmed, unless admin";
const MINTING_VENUE: &str = ":venueId, unless platform_admin";
const MINTING_ADMINS: &[&str] = &["admin", "platform_admin"];

fn table() -> Vec<(&'static str, &'static str, Expect)> {
    let public = |e: Expect| Expect { public: true, ..e };
    vec![
        // auth-service: the sign-in flows are public; it alone gets the caller's token.
        (
            "POST",
            "/api/v1/auth/login",
            public(Expect {
                max_body: 64 * KIB,
                forwards_token: true,
                ..authenticated("auth", GLOBAL)
            }),
        ),
        (
            "POST",
            "/api/v1/auth/register",
            public(Expect {
                max_body: 64 * KIB,
                forwards_token: true,
                ..authenticated("auth", GLOBAL)
            }),
        ),
        (
            "POST",
            "/api/v1/auth/refresh",
            public(Expect {
                max_body: 64 * KIB,
                forwards_token: true,
                ..authenticated("auth", GLOBAL)
            }),
        ),
        (
            "POST",
            "/api/v1/auth/forgot-password",
            public(Expect {
                max_body: 64 * KIB,
                forwards_token: true,
                ..authenticated("auth", GLOBAL)
            }),
        ),
        (
            "POST",
            "/api/v1/auth/reset-password",
            public(Expect {
                max_body: 64 * KIB,
                forwards_token: true,
                ..authenticated("auth", GLOBAL)
            }),
        ),
        (
            "GET",
            "/api/v1/auth/verify-email",
            public(Expect {
                max_body: 64 * KIB,
                forwards_token: true,
                ..authenticated("auth", GLOBAL)
            }),
        ),
        (
            "POST",
            "/api/v1/auth/logout",
            Expect {
                max_body: 64 * KIB,
                forwards_token: true,
                ..authenticated("auth", GLOBAL)
            },
        ),
        (
            "GET",
            "/api/v1/auth/login/../me",
            Expect {
                max_body: 64 * KIB,
                forwards_token: true,
                ..authenticated("auth", GLOBAL)
            },
        ),
        // venue-service: reads for any caller, every write under a venue scoped to it.
        (
            "GET",
            "/api/v1/venues",
            authenticated("venues", &["global", "venue-api"]),
        ),
        (
            "GET",
            "/api/v1/venues/7",
            authenticated("venues", &["global", "venue-api"]),
        ),
        (
            "POST",
            "/api/v1/venues",
            authenticated("venues", &["global", "venue-api"]),
        ),
        (
            "POST",
            "/api/v1/venues/7",
            Expect {
                roles: &["venue_manager", "admin"],
                venue: VENUE_MANAGER,
                ..authenticated("venue-manage", &["global", "venue-api"])
            },
        ),
        (
            "POST",
            "/api/v1/venues/7/sections",
            Expect {
                roles: &["venue_manager", "admin"],
                venue: VENUE_MANAGER,
                ..authenticated("venue-manage", &["global", "venue-api"])
            },
        ),
        (
            "PUT",
            "/api/v1/venues/7",
            Expect {
                roles: &["venue_manager", "admin"],
                venue: VENUE_MANAGER,
                ..authenticated("venue-manage", &["global", "venue-api"])
            },
        ),
        (
            "PATCH",
            "/api/v1/venues/7/sections/2",
            Expect {
                roles: &["venue_manager", "admin"],
                venue: VENUE_MANAGER,
                ..authenticated("venue-manage", &["global", "venue-api"])
            },
        ),
        (
            "DELETE",
            "/api/v1/venues/7",
            Expect {
                roles: &["venue_manager", "admin"],
                venue: VENUE_MANAGER,
                ..authenticated("venue-manage", &["global", "venue-api"])
            },
        ),
        // event-service, and its other spelling.
        ("GET", "/api/v1/events", authenticated("events", GLOBAL)),
        (
            "POST",
            "/api/v1/events/9/tickets",
            authenticated("events", GLOBAL),
        ),
        (
            "GET",
            "/api/v1/event/9",
            Expect {
                via: Some("events-alt"),
                ..authenticated("events", GLOBAL)
            },
        ),
        // ticket-service: the audit's per-endpoint timeouts and the purchase limit, through
        // both spellings.
        ("GET", "/api/v1/tickets", authenticated("tickets", GLOBAL)),
        (
            "POST",
            "/api/v1/tickets/purchase",
            idempotent(Expect {
                timeout_s: 30,
                ..authenticated("ticket-purchase", &["global", "ticket-purchase"])
            }),
        ),
        (
            "POST",
            "/api/v1/ticket/purchase",
            idempotent(Expect {
                via: Some("tickets-alt"),
                timeout_s: 30,
                ..authenticated("ticket-purchase", &["global", "ticket-purchase"])
            }),
        ),
        (
            "POST",
            "/api/v1/tickets/purchase/",
            idempotent(Expect {
                timeout_s: 30,
                ..authenticated("ticket-purchase", &["global", "ticket-purchase"])
            }),
        ),
        (
            "GET",
            "/api/v1/tickets/t-1",
            Expect {
                timeout_s: 5,
                ..authenticated("ticket-lookup", GLOBAL)
            },
        ),
        (
            "HEAD",
            "/api/v1/ticket/t-1",
            Expect {
                via: Some("tickets-alt"),
                timeout_s: 5,
                ..authenticated("ticket-lookup", GLOBAL)
            },
        ),
        (
            "DELETE",
            "/api/v1/tickets/t-1",
            authenticated("tickets", GLOBAL),
        ),
        (
            "GET",
            "/api/v1/ticket",
            Expect {
                via: Some("tickets-alt"),
                ..authenticated("tickets", GLOBAL)
            },
        ),
        // payment-service: health public, provider webhooks public but signed; payments
        // limited, closed.
        ("GET", "/api/v1/payments", authenticated("payments", GLOBAL)),
        (
            "GET",
            "/api/v1/payments/health",
            public(authenticated("payments", GLOBAL)),
        ),
        (
            "GET",
            "/api/v1/payments/metrics",
            authenticated("payments", GLOBAL),
        ),
        (
            "POST",
            "/api/v1/payments/webhooks/stripe",
            public(Expect {
                max_body: 64 * KIB,
                webhook: "stripe",
                ..authenticated("payment-webhooks", &["webhooks"])
            }),
        ),
        (
            "GET",
            "/api/v1/payments/webhooks/stripe",
            authenticated("payments", GLOBAL),
        ),
        (
            "POST",
            "/api/v1/payments/process",
            idempotent(Expect {
                timeout_s: 45,
                ..authenticated("payment-process", &["global", "payments"])
            }),
        ),
        (
            "GET",
            "/api/v1/payments/process",
            authenticated("payments", GLOBAL),
        ),
        (
            "POST",
            "/api/v1/webhooks/provider",
            public(Expect {
                max_body: 64 * KIB,
                webhook: "stripe",
                ..authenticated("webhooks", &["webhooks"])
            }),
        ),
        // marketplace: only its health is public.
        (
            "GET",
            "/api/v1/marketplace/listings",
            authenticated("marketplace", GLOBAL),
        ),
        (
            "GET",
            "/api/v1/marketplace/health",
            public(authenticated("marketplace", GLOBAL)),
        ),
        // The other services: authenticated, the global limit.
        (
            "GET",
            "/api/v1/analytics/report",
            authenticated("analytics", GLOBAL),
        ),
        (
            "GET",
            "/api/v1/notifications",
            authenticated("notifications", GLOBAL),
        ),
        (
            "POST",
            "/api/v1/integrations/sync",
            authenticated("integrations", GLOBAL),
        ),
        (
            "GET",
            "/api/v1/compliance/audit",
            authenticated("compliance", GLOBAL),
        ),
        ("GET", "/api/v1/queue/jobs", authenticated("queue", GLOBAL)),
        (
            "GET",
            "/api/v1/search?q=x",
            authenticated("search", &["global", "event-search"]),
        ),
        (
            "POST",
            "/api/v1/files/upload",
            Expect {
                timeout_s: 60,
                max_body: 25 * MIB,
                ..authenticated("files", GLOBAL)
            },
        ),
        (
            "GET",
            "/api/v1/monitoring/status",
            Expect {
                roles: &["admin"],
                ..authenticated("monitoring", GLOBAL)
            },
        ),
        (
            "GET",
            "/api/v1/blockchain/tx/1",
            authenticated("blockchain", GLOBAL),
        ),
        ("GET", "/api/v1/orders/1", authenticated("orders", GLOBAL)),
        (
            "POST",
            "/api/v1/scanning/scan",
            authenticated("scanning", GLOBAL),
        ),
        (
            "GET",
            "/api/v1/transfers",
            authenticated("transfers", GLOBAL),
        ),
        (
            "POST",
            "/api/v1/transfers",
            idempotent(Expect {
                timeout_s: 90,
                ..authenticated("transfer-create", GLOBAL)
            }),
        ),
        // Minting: admins only, its own limits; a tenant admin within its venues, platform
        // admins for every venue and for what is destructive; batch mints stricter still,
        // and counted in tickets.
        (
            "GET",
            "/api/v1/minting/admin/stats",
            Expect {
                roles: &["platform_admin"],
                ..minting("minting-admin", &["global", "minting"])
            },
        ),
        (
            "GET",
            "/api/v1/minting/admin/dashboard",
            Expect {
                roles: &["platform_admin"],
                ..minting("minting-admin", &["global", "minting"])
            },
        ),
        (
            "GET",
            "/api/v1/minting/admin/batch-mint/estimate",
            Expect {
                roles: MINTING_ADMINS,
                ..minting("minting-estimate", &["global", "minting"])
            },
        ),
        (
            "DELETE",
            "/api/v1/minting/admin/cache/clear",
            Expect {
                roles: &["platform_admin"],
                ..minting("minting-cache-clear", &["global", "minting"])
            },
        ),
        (
            "GET",
            "/api/v1/minting/admin/cache/stats",
            Expect {
                roles: &["platform_admin"],
                ..minting("minting-admin", &["global", "minting"])
            },
        ),
        (
            "DELETE",
            "/api/v1/minting/admin/cache/t-1",
            Expect {
                roles: &["platform_admin"],
                ..minting("minting-cache-entry", &["global", "minting"])
            },
        ),
        (
            "POST",
            "/api/v1/minting/admin/reconcile/v-1",
            idempotent(Expect {
                roles: MINTING_ADMINS,
                venue: MINTING_VENUE,
                ..minting("minting-reconcile", &["global", "minting"])
            }),
        ),
        (
            "GET",
            "/api/v1/minting/admin/reconcile/v-1/history",
            Expect {
                roles: MINTING_ADMINS,
                venue: MINTING_VENUE,
                ..minting("minting-reconcile-history", &["global", "minting"])
            },
        ),
        (
            "POST",
            "/api/v1/minting/admin/reconcile/v-1/fix",
            idempotent(Expect {
                roles: &["platform_admin"],
                ..minting("minting-reconcile-fix", &["global", "minting"])
            }),
        ),
        (
            "GET",
            "/api/v1/minting/admin/stats/v-1",
            Expect {
                roles: MINTING_ADMINS,
                venue: MINTING_VENUE,
                ..minting("minting-venue-stats", &["global", "minting"])
            },
        ),
        (
            "GET",
            "/api/v1/minting/admin/mints/t-1",
            Expect {
                roles: &["platform_admin"],
                ..minting("minting-mint", &["global", "minting"])
            },
        ),
        (
            "POST",
            "/api/v1/minting/admin/batch-mint",
            idempotent(Expect {
                roles: MINTING_ADMINS,
                venue: "body /venueId, unless platform_admin",
                timeout_s: 120,
                approval_above: 100,
                ..authenticated(
                    "minting-batch",
                    &[
                        "global",
                        "minting",
                        "minting-batch",
                        "mint-tenant-daily",
                        "mint-admin-hourly",
                    ],
                )
            }),
        ),
        // Approvals are granted at the edge, by admins.
        (
            "GET",
            "/api/v1/approvals/0123456789abcdef0123456789abcdef",
            Expect {
                roles: MINTING_ADMINS,
                ..authenticated("approvals", &["global", "minting"])
            },
        ),
        (
            "POST",
            "/api/v1/approvals/0123456789abcdef0123456789abcdef/approve",
            Expect {
                roles: MINTING_ADMINS,
                ..authenticated("approvals", &["global", "minting"])
            },
        ),
        // A user's own mint status.
        (
            "GET",
            "/api/v1/minting/status/t-1",
            minting("minting-status", &["global", "mint-status"]),
        ),
    ]
}

/// Requests no route serves: 404 at the gateway, or 405 where a route serves the path for
/// other methods (paths are case-sensitive: another case is another path, which no route
/// serves, so it skips no policy; the minting catch-all takes reads only, so no other
/// spelling of a minting write reaches the service).
const UNROUTED: &[(&str, &str)] = &[
    ("POST", "/api/v1/TICKET/purchase"),
    ("POST", "/api/v1/minting/internal/mint"),
    ("POST", "/api/v1/minting/admin/Batch-Mint"),
    ("POST", "/api/v1/minting/admin/reconcile/v-1/FIX"),
    ("DELETE", "/api/v1/minting/admin/Cache/Clear"),
    ("GET", "/api/v1/minting/health"),
    ("GET", "/internal/users/u1/status"),
    ("GET", "/api/v2/tickets"),
    ("GET", "/metrics"),
    ("GET", "/"),
];

fn shipped() -> Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/routes.yaml"))
        .expect("reading the shipped routes.yaml");
    config::load("routes.yaml", &text).expect("the shipped routes.yaml compiles")
}

/// What the gateway does for `method` and `path` (normalized as the proxy does).
fn actual(config: &Config, router: &Router, method: &str, path: &str) -> Result<Expect, String> {
    let path = path.split('?').next().unwrap_or(path);
    let normalized = usher::path::normalize(path).map_err(|e| format!("{e:?}"))?;
    let method: http::Method = method.parse().unwrap();
    let found = match router.route(None, &method, &normalized) {
        RouteMatch::Found(found) => found,
        other => return Err(format!("{other:?}")),
    };
    let route: &RouteSpec = &config.routes[found.route];
    let routed_path = found.via.as_ref().map_or(&*normalized, |via| &via.path);
    let leak = |name: &str| -> &'static str { Box::leak(name.to_string().into_boxed_str()) };
    Ok(Expect {
        route: leak(&route.name),
        via: found
            .via
            .as_ref()
            .map(|via| leak(&config.aliases[via.alias].name)),
        public: !requires_authentication(route, routed_path),
        roles: Box::leak(
            route
                .auth
                .roles
                .iter()
                .map(|r| leak(r))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        ),
        venue: leak(&venue_scope(route)),
        limits: Box::leak(
            route
                .rate_limits
                .iter()
                .map(|l| leak(&config.rate_limiting.policies[l.policy].name))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        ),
        timeout_s: route.timeout.as_secs(),
        max_body: route.max_body,
        forwards_token: route.auth.forward_credential,
        idempotent: route.idempotency.is_some() && route.buffer_body,
        approval_above: route.approval.as_ref().map_or(0, |a| a.above),
        webhook: route.webhook.as_ref().map_or("", |w| w.scheme.as_str()),
    })
}

fn venue_scope(route: &RouteSpec) -> String {
    let auth = &route.auth;
    let from = match (auth.venue_param, &auth.venue_field) {
        (Some(index), _) => format!(":{}", route.pattern.param_names().nth(index).unwrap()),
        (None, Some(pointer)) => format!("body {pointer}"),
        (None, None) => return String::new(),
    };
    let confirmed = if auth.venue_check { " confirmed" } else { "" };
    format!("{from}{confirmed}, unless {}", auth.admin_roles.join("|"))
}

fn describe(e: &Expect) -> String {
    format!(
        "route {}{}, {}, roles {:?}{}, limits {:?}, timeout {}s, max body {}, token {}{}{}{}",
        e.route,
        e.via.map_or(String::new(), |via| format!(" (via {via})")),
        if e.public { "public" } else { "authenticated" },
        e.roles,
        if e.venue.is_empty() {
            String::new()
        } else {
            format!(", venue {}", e.venue)
        },
        e.limits,
        e.timeout_s,
        e.max_body,
        if e.forwards_token {
            "forwarded"
        } else {
            "kept at the edge"
        },
        if e.idempotent {
            ", Idempotency-Key"
        } else {
            ""
        },
        if e.approval_above > 0 {
            format!(", approval above {}", e.approval_above)
        } else {
            String::new()
        },
        if e.webhook.is_empty() {
            String::new()
        } else {
            format!(", {} webhook signature", e.webhook)
        }
    )
}

#[test]
fn every_endpoint_gets_its_policy() {
    let config = shipped();
    let router = Router::new(&config.routes, &config.aliases);
    let mut wrong = Vec::new();
    for (method, path, expected) in table() {
        match actual(&config, &router, method, path) {
            Ok(got) if describe(&got) == describe(&expected) => {}
            Ok(got) => wrong.push(format!(
                "{method} {path}\n  table: {}\n  file:  {}",
                describe(&expected),
                describe(&got)
            )),
            Err(e) => wrong.push(format!("{method} {path}: not routed ({e})")),
        }
    }
    for (method, path) in UNROUTED {
        if let Ok(got) = actual(&config, &router, method, path) {
            wrong.push(format!(
                "{method} {path}: should be 404 or 405, is {}",
                describe(&got)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the shipped routes.yaml differs from its policy table:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_table_covers_every_route_alias_and_public_path() {
    let config = shipped();
    let router = Router::new(&config.routes, &config.aliases);
    let rows: Vec<Expect> = table()
        .into_iter()
        .filter_map(|(method, path, _)| actual(&config, &router, method, path).ok())
        .collect();
    let mut missing = Vec::new();
    for route in &config.routes {
        if !rows.iter().any(|row| row.route == &*route.name) {
            missing.push(format!("route {}", route.name));
        }
        if let config::Access::PublicPaths(paths) = &route.access {
            let public_rows = rows
                .iter()
                .filter(|r| r.route == &*route.name && r.public)
                .count();
            if public_rows < paths.len() {
                missing.push(format!(
                    "{} of route {}'s {} public paths",
                    paths.len() - public_rows,
                    route.name,
                    paths.len()
                ));
            }
        }
    }
    for alias in &config.aliases {
        if !rows.iter().any(|row| row.via == Some(&*alias.name)) {
            missing.push(format!("alias {}", alias.name));
        }
    }
    assert!(
        missing.is_empty(),
        "rows are missing for: {}",
        missing.join(", ")
    );
    // Every authenticated token route asks auth-service about its user.
    for route in &config.routes {
        if !matches!(route.access, config::Access::Public) {
            assert!(
                route.auth.user_status,
                "route {} does not ask about user status",
                route.name
            );
        }
    }
}
