//! Request filters: small decisions that admission runs in a fixed order (see the chart in
//! `proxy/admission`). Each returns a value; the proxy turns a refusal into a response
//! through `respond`.

pub mod access;
pub mod authenticate;
pub mod authorize;
pub mod client_address;
pub mod cors;
pub mod hardening;
pub mod identity_headers;
