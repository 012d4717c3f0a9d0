//! Route tables shared by the benchmarks: the shipped routes.yaml, and a generated table of
//! any size shaped like a real one (prefixes, parameters, method-specific routes).

use std::fmt::Write;

pub const SHIPPED: &str = include_str!("../routes.yaml");

pub fn generated(routes: usize) -> String {
    let mut text = String::from(
        "listeners:\n  public: { address: \"127.0.0.1:8080\" }\n  admin: { address: \"127.0.0.1:9090\" }\n\
         authentication:\n  jwt: { issuer: i, audiences: [a], keys: [{ kid: k, algorithm: HS256, secret_env: JWT_SECRET }] }\n\
         upstreams:\n  svc: { targets: [\"127.0.0.1:1\"] }\nroutes:\n",
    );
    for n in 0..routes {
        let service = n / 4;
        let _ = match n % 4 {
            0 => writeln!(text, "  - {{ name: r{n}, match: {{ path: /api/v1/svc{service} }}, upstream: svc }}"),
            1 => writeln!(text, "  - {{ name: r{n}, match: {{ path: /api/v1/svc{service}/:id, methods: [GET] }}, upstream: svc }}"),
            2 => writeln!(text, "  - {{ name: r{n}, match: {{ path: /api/v1/svc{service}/:id/items }}, upstream: svc }}"),
            _ => writeln!(text, "  - {{ name: r{n}, match: {{ path: /api/v1/svc{service}/search, methods: [POST] }}, upstream: svc }}"),
        };
    }
    text
}
