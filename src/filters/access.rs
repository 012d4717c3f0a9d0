//! Whether a request needs an authenticated caller. Secure by default: a route is
//! authenticated unless routes.yaml marks the route, or listed paths under it, public.

use crate::config::{Access, RouteSpec};
use crate::router::split_path;

/// `path` is the normalized request path. Public paths match its segments as written,
/// `;parameters` included, while routing compares segments without them: `/login;x` finds
/// the route of `/login` but is not the public `/login`, since an upstream that keeps the
/// parameter may route it elsewhere. Both readings err towards authentication.
pub fn requires_authentication(route: &RouteSpec, path: &str) -> bool {
    match &route.access {
        Access::Public => false,
        Access::Authenticated => true,
        Access::PublicPaths(public) => {
            let segments: Vec<&str> = split_path(path).collect();
            !public
                .iter()
                .any(|p| p.pattern.matches(&segments, p.subtree))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn public_paths_are_exact_or_subtrees() {
        let config = config::load(
            "t.yaml",
            r#"
listeners: { public: { address: "127.0.0.1:1" }, admin: { address: "127.0.0.1:2" } }
authentication: { jwt: { issuer: i, audiences: [a], keys: [{ kid: k, algorithm: HS256, secret_env: UNUSED_SECRET }] } }
upstreams: { auth: { targets: ["127.0.0.1:3"] } }
routes:
  - name: auth
    match: { path: /api/v1/auth }
    upstream: auth
    public_paths: [/login, /webhooks/*, /users/:id/avatar]
"#,
        )
        .unwrap();
        let route = &config.routes[0];
        for (path, needs_auth) in [
            ("/api/v1/auth/login", false),
            ("/api/v1/auth/login/", false),
            ("/api/v1/auth/login;x", true),
            ("/api/v1/auth;x/login", true),
            ("/api/v1/auth/login/extra", true),
            ("/api/v1/auth/loginx", true),
            ("/api/v1/auth/webhooks", false),
            ("/api/v1/auth/webhooks/stripe", false),
            ("/api/v1/auth/users/7/avatar", false),
            ("/api/v1/auth/users/7", true),
            ("/api/v1/auth", true),
            ("/api/v1/auth/me", true),
        ] {
            assert_eq!(requires_authentication(route, path), needs_auth, "{path}");
        }
    }
}
