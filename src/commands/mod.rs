//! What each command line verb does. Each returns the process exit code.

pub mod check;
pub mod demo;
pub mod routes;
pub mod run;

pub use crate::prepare::prepare_file;
