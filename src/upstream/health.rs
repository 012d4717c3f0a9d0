//! Builds Pingora's active health check for an upstream from its spec.

use crate::config::{HealthCheckKind, HealthCheckSpec};
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};

/// `host` is sent as the Host header of HTTP checks.
pub fn build(spec: &HealthCheckSpec, host: &str) -> Box<dyn HealthCheck + Send + Sync> {
    match &spec.kind {
        HealthCheckKind::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.consecutive_success = spec.healthy_threshold;
            check.consecutive_failure = spec.unhealthy_threshold;
            check.peer_template.options.connection_timeout = Some(spec.timeout);
            check.peer_template.options.total_connection_timeout = Some(spec.timeout);
            check
        }
        HealthCheckKind::Http { path } => {
            let mut check = HttpHealthCheck::new(host, false);
            check.consecutive_success = spec.healthy_threshold;
            check.consecutive_failure = spec.unhealthy_threshold;
            check.peer_template.options.connection_timeout = Some(spec.timeout);
            check.peer_template.options.read_timeout = Some(spec.timeout);
            let mut request = RequestHeader::build("GET", path.as_bytes(), None)
                .expect("a validated path builds a request");
            request
                .append_header("Host", host)
                .expect("a validated host is a header value");
            request
                .append_header("User-Agent", "usher-health-check")
                .expect("static header value");
            check.req = request;
            Box::new(check)
        }
    }
}
