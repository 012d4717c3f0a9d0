//! Usher: an edge proxy on Pingora, driven by one hot-reloadable `routes.yaml`.
//!
//! The configuration is read in two layers: [`config::raw`] mirrors the file, and
//! [`config::compile`] turns it, purely, into a validated [`config::Config`]. The
//! [`control`] plane builds upstream [`upstream::Pool`]s for it and publishes an immutable
//! [`snapshot::Snapshot`] behind one `ArcSwap`; on every file change or SIGHUP it does the
//! same again, keeping pools whose definition did not change. The [`proxy`] loads the
//! snapshot once per request and runs the phases below; everything a phase needs was
//! computed when the snapshot was built.
//!
//! ```text
//!  client ──► head_deadline (408) ──► request_filter ────────────────────► upstream_peer ──► upstream
//!             ids, CORS preflight, snapshot, filters::hardening,        pool.select:
//!             path::normalize, router, filters::identity_headers,        healthy, untried,
//!             filters::access → authenticate → revocation → authorize,   timeouts ≤ deadline
//!             ratelimit (shedding, policies), lookups,
//!             body limit, bulkhead, circuit breaker
//!  client ◄── response_filter ◄── upstream_response_filter ◄──────────────────────────── upstream
//!             ids, security headers, CORS,  status, breaker outcome,   fail_to_connect: eject, retry
//!             writes within the deadline    slot back at the end
//!  any failure ──► fail_to_proxy ──► respond (one JSON error shape)
//!  always      ──► logging: slot (parked if the client left), metrics, access log
//! ```
//!
//! The [`admin`] listener serves probes and metrics on its own port; [`server`] assembles
//! the Pingora server and drains it on SIGTERM/SIGINT.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod echo;
pub mod fetch;
pub mod filters;
pub mod head_deadline;
pub mod load;
pub mod path;
pub mod prepare;
pub mod proxy;
pub mod ratelimit;
pub mod respond;
pub mod router;
pub mod security;
pub mod server;
pub mod snapshot;
pub mod telemetry;
pub mod upstream;
