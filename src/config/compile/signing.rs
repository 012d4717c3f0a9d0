//! `signing`: the keys Usher signs forwarded requests with, and the upstreams that get
//! signed requests. A signature covers the body's digest, so every route to such an
//! upstream must read its body whole.

use super::Compiler;
use crate::config::raw::RawSigning;
use crate::config::{RouteSpec, SigningSpec, UpstreamSpec};

impl Compiler<'_> {
    pub(super) fn signing(
        &mut self,
        raw: Option<&RawSigning>,
        upstreams: &[UpstreamSpec],
        routes: &[RouteSpec],
    ) -> Option<SigningSpec> {
        let signed: Vec<&UpstreamSpec> = upstreams.iter().filter(|u| u.sign_requests).collect();
        let Some(raw) = raw else {
            if let Some(upstream) = signed.first() {
                self.error(
                    format!("upstreams.{}.sign_requests", upstream.name),
                    "there is no signing section with a key to sign with",
                );
            }
            return None;
        };
        if raw.keys.is_empty() {
            self.error("signing.keys", "list at least one key");
        }
        let mut keys: Vec<(String, String)> = Vec::new();
        for (i, key) in raw.keys.iter().enumerate() {
            let printable = !key.id.is_empty()
                && key.id.len() <= 64
                && key
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !printable {
                self.error(
                    format!("signing.keys[{i}].id"),
                    "1 to 64 letters, digits, -, _ or .",
                );
            } else if keys.iter().any(|(id, _)| *id == key.id) {
                self.error(
                    format!("signing.keys[{i}].id"),
                    format!("\"{}\" is listed twice", key.id),
                );
            }
            keys.push((key.id.clone(), key.private_key_file.clone()));
        }
        let active = match &raw.active {
            None => 0,
            Some(id) => keys.iter().position(|(k, _)| k == id).unwrap_or_else(|| {
                self.error(
                    "signing.active",
                    format!("\"{id}\" is not one of signing.keys"),
                );
                0
            }),
        };
        for (index, route) in routes.iter().enumerate() {
            let upstream = route.target.upstream().map(|u| &upstreams[u]);
            if upstream.is_some_and(|u| u.sign_requests) && !route.buffer_body {
                self.error(
                    format!("routes[{index}].max_body"),
                    "its upstream gets signed requests, whose signature covers the body: the body must be read whole (max_body at most 64 KiB, no buffer_body: false)",
                );
            }
        }
        Some(SigningSpec { keys, active })
    }
}
