//! The compiled configuration's types, one file per part of routes.yaml. Nothing here is
//! deserialized: [`super::compile`] makes them from the file format ([`super::raw`]).

mod authentication;
mod rate_limiting;
mod routes;
mod server;
mod upstreams;

pub use authentication::*;
pub use rate_limiting::*;
pub use routes::*;
pub use server::*;
pub use upstreams::*;

use crate::router::{PathPattern, PathTemplate};
use http::Method;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
