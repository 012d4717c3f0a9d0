//! Upstream pools and what protects them: discovery, active and passive health, load
//! balancing, the bulkhead and the circuit breaker.

pub mod breaker;
pub mod bulkhead;
mod discovery;
mod health;
mod pool;

pub use breaker::{Admission, BreakerState, Outcome};
pub use bulkhead::Slot;
pub use pool::{BreakerPass, Pool};
