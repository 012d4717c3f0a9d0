//! Request filters: small, pure decisions that `request_filter` runs in a fixed order.
//! Each returns a value; the proxy turns a rejection into a response through `respond`.

pub mod access;
pub mod identity_headers;
