//! Signed requests at the edge: payment providers' webhooks verified over the raw body
//! before any service sees them ([`webhook`], with the secrets of [`keys`]), each delivery
//! accepted once ([`deliveries`]); and Usher's own RFC 9421 signature on what it forwards
//! to chosen upstreams ([`signer`], over [`message`]'s signature base).

pub mod deliveries;
pub mod keys;
pub mod message;
pub mod signer;
pub mod verify;
pub mod webhook;
