//! The `listeners` section: the public and admin addresses, and TLS.

use super::{merged, Compiler};
use crate::config::builtin;
use crate::config::raw::RawListeners;
use crate::config::{Listeners, TlsSettings};
use std::net::SocketAddr;
use std::str::FromStr;

impl Compiler<'_> {
    pub(super) fn listeners(&mut self, raw: &RawListeners) -> Option<Listeners> {
        let public = self.address("listeners.public.address", &raw.public.address);
        let admin = self.address("listeners.admin.address", &raw.admin.address);
        if public.is_some() && public == admin {
            self.error(
                "listeners.admin.address",
                "must differ from listeners.public.address: the admin endpoints are never served on the public port",
            );
        }
        let tls = raw.public.tls.as_ref().map(|tls| {
            for (key, value) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
                if value.trim().is_empty() {
                    self.error(format!("listeners.public.tls.{key}"), "must name a file");
                }
            }
            TlsSettings {
                cert_file: tls.cert_file.clone(),
                key_file: tls.key_file.clone(),
                http2: merged(tls.http2, None, builtin::TLS_HTTP2),
            }
        });
        Some(Listeners {
            public: public?,
            tls,
            h2c: raw.public.h2c,
            admin: admin?,
        })
    }

    fn address(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        let parsed = SocketAddr::from_str(text).ok();
        if parsed.is_none() {
            self.error(
                path,
                format!("invalid address \"{text}\": expected ip:port, such as 0.0.0.0:8080"),
            );
        }
        parsed
    }
}
