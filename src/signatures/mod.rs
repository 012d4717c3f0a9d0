//! Signed requests at the edge: payment providers' webhooks verified over the raw body
//! before any service sees them ([`webhook`], with the secrets of [`keys`]), each delivery
//! accepted once ([`deliveries`]).

pub mod deliveries;
pub mod keys;
pub mod webhook;
