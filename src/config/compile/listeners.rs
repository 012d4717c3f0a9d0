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
        let default_buffer = match tls {
            Some(_) => builtin::READ_BUFFER_TLS,
            None => builtin::READ_BUFFER,
        };
        let read_buffer = merged(raw.public.read_buffer, None, default_buffer);
        if read_buffer > builtin::MAX_READ_BUFFER {
            self.error(
                "listeners.public.read_buffer",
                format!("{read_buffer} bytes is more than the 1MiB a connection may hold"),
            );
        }
        Some(Listeners {
            public: public?,
            tls,
            h2c: raw.public.h2c,
            read_buffer: read_buffer.min(builtin::MAX_READ_BUFFER) as usize,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::section;

    fn listeners(yaml: &str) -> (Option<Listeners>, Vec<String>) {
        section(yaml, |c, raw| c.listeners(raw))
    }

    #[test]
    fn listeners_and_tls() {
        let (compiled, errors) = listeners(
            "{ public: { address: \"0.0.0.0:8443\", tls: { cert_file: c, key_file: k } }, admin: { address: \"127.0.0.1:9090\" } }",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let compiled = compiled.unwrap();
        assert_eq!(compiled.public, "0.0.0.0:8443".parse().unwrap());
        assert!(!compiled.h2c);
        assert_eq!(compiled.tls.unwrap().http2, builtin::TLS_HTTP2);
        assert_eq!(compiled.read_buffer as u64, builtin::READ_BUFFER_TLS);
        let (plain, _) = listeners(
            "{ public: { address: \"0.0.0.0:80\" }, admin: { address: \"127.0.0.1:9090\" } }",
        );
        assert_eq!(plain.unwrap().read_buffer as u64, builtin::READ_BUFFER);
        let (own, _) = listeners(
            "{ public: { address: \"0.0.0.0:80\", read_buffer: 4KiB }, admin: { address: \"127.0.0.1:9090\" } }",
        );
        assert_eq!(own.unwrap().read_buffer, 4096);
        for (yaml, expected) in [
            (
                "{ public: { address: \"localhost:80\" }, admin: { address: \"127.0.0.1:9090\" } }",
                &["listeners.public.address: invalid address \"localhost:80\": expected ip:port, such as 0.0.0.0:8080"][..],
            ),
            (
                "{ public: { address: \"0.0.0.0:80\" }, admin: { address: \"0.0.0.0:80\" } }",
                &["listeners.admin.address: must differ from listeners.public.address: the admin endpoints are never served on the public port"],
            ),
            (
                "{ public: { address: \"0.0.0.0:80\", tls: { cert_file: \"\", key_file: k } }, admin: { address: \"0.0.0.0:81\" } }",
                &["listeners.public.tls.cert_file: must name a file"],
            ),
            (
                "{ public: { address: \"0.0.0.0:80\", read_buffer: 2MiB }, admin: { address: \"0.0.0.0:81\" } }",
                &["listeners.public.read_buffer: 2097152 bytes is more than the 1MiB a connection may hold"],
            ),
        ] {
            assert_eq!(listeners(yaml).1, expected, "{yaml}");
        }
    }
}
