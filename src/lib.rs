//! Usher: an edge proxy on Pingora, driven by one hot-reloadable `routes.yaml`.
//!
//! The configuration is read in two layers: [`config::raw`] mirrors the file, and
//! [`config::compile`] turns it, purely, into a validated [`config::Config`]. The
//! [`control`] plane publishes an immutable [`snapshot::Snapshot`] for it behind one
//! `ArcSwap`, built by [`carry_over`] (upstream [`upstream::Pool`]s, the shared store, key
//! sets, caches); on every file change or SIGHUP it does the same again, keeping what asks
//! the same places as before. The [`proxy`] loads the
//! snapshot once per request and runs Pingora's request phases; everything a phase needs
//! was computed when the snapshot was built. The phase chart is in [`proxy`]
//! (`src/proxy/mod.rs`), the order of the admission checks in `src/proxy/admission/mod.rs`;
//! before any phase runs, [`head_deadline`] bounds how long a client may take to send its
//! request head (408).
//!
//! The [`admin`] listener serves probes and metrics on its own port; [`server`] assembles
//! the Pingora server and drains it on SIGTERM/SIGINT.

#![forbid(unsafe_code)]

pub mod admin;
pub mod approval;
pub mod cache;
pub mod carry_over;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod digest;
pub mod echo;
pub mod fetch;
pub mod filters;
pub mod head_deadline;
pub mod idempotency;
pub mod load;
pub mod path;
pub mod prepare;
pub mod proxy;
pub mod ratelimit;
pub mod respond;
pub mod router;
pub mod scan;
pub mod security;
pub mod server;
pub mod signatures;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod validation;
