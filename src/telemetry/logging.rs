//! Process logs: JSON lines on stderr through `tracing`, with Pingora's own `log` records
//! bridged into the same stream. The level comes from `USHER_LOG` (default `info`), in
//! `tracing_subscriber::EnvFilter` syntax.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("USHER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .try_init();
}
