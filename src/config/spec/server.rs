//! The settings of the server itself: identity headers, limits, listeners.

use super::*;

#[derive(Debug, Clone)]
pub struct IdentitySpec {
    /// Lower-cased header names removed from every request: the built-in list plus
    /// `identity.strip_headers`.
    pub strip_headers: Vec<String>,
    /// Lower-cased prefixes (written `x-internal-*`) removed likewise.
    pub strip_prefixes: Vec<String>,
    /// Peers allowed to report the client's address in `X-Forwarded-For`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_headers: usize,
    pub max_header_bytes: u64,
    pub max_uri_bytes: u64,
    /// The most a client may take to send a request head, from the connection's start
    /// (first request) or from the head's first byte (later requests on the connection).
    pub request_head_timeout: Duration,
    /// The most a client may take to send a body that its route buffers.
    pub request_body_timeout: Duration,
    /// The bytes all buffered bodies may hold at once; past it, 503.
    pub max_buffered_bytes: u64,
    /// A reload may remove at most this share of the running routes (see control.rs).
    pub max_route_removal_percent: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub threads: usize,
    pub grace_period: Duration,
    pub access_log: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listeners {
    pub public: SocketAddr,
    pub tls: Option<TlsSettings>,
    pub h2c: bool,
    /// Bytes of each client connection's read buffer, held while it is open.
    pub read_buffer: usize,
    pub admin: SocketAddr,
}

impl Listeners {
    /// The scheme clients reach the public listener with.
    pub fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
    pub http2: bool,
}
