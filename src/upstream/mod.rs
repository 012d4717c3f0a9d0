//! Upstream pools and what protects them: discovery, active and passive health, load
//! balancing, the bulkhead and the circuit breaker.

pub mod breaker;
mod discovery;
mod health;
mod pool;

pub use breaker::{Admission, BreakerState, Outcome};
pub use pool::{BreakerPass, InFlightSlot, Pool};
