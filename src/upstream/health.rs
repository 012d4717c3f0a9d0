//! Active health checks, run by Pingora's health registry (which applies the
//! consecutive-success and -failure thresholds).
//!
//! Usher implements the check itself rather than using Pingora's `TcpHealthCheck` and
//! `HttpHealthCheck`: each of those owns a complete connector with its own preallocated
//! connection pool and TLS context, which cost about 1 MiB of resident memory per upstream
//! (measured with the shipped 19-upstream config; see docs/benchmarks.md). A check needs
//! none of that: TCP is a timed connect, HTTP a single request on a fresh connection.

use crate::config::{HealthCheckKind, HealthCheckSpec};
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::Backend;
use pingora::prelude::*;
use pingora::ErrorType;
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub struct Check {
    spec: HealthCheckSpec,
    /// Sent as the Host header of HTTP checks.
    host: String,
}

impl Check {
    pub fn new(spec: &HealthCheckSpec, host: &str) -> Check {
        Check {
            spec: spec.clone(),
            host: host.to_string(),
        }
    }

    async fn probe(&self, addr: SocketAddr) -> std::result::Result<(), String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let HealthCheckKind::Http { path } = &self.spec.kind else {
            return Ok(());
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let connection = tokio::spawn(connection);
        let request = http::Request::get(path.as_str())
            .header(http::header::HOST, &self.host)
            .header(http::header::USER_AGENT, "usher-health-check")
            .header(http::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let status = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?
            .status();
        connection.abort();
        if status == http::StatusCode::OK {
            Ok(())
        } else {
            Err(format!("GET {path} answered {status}"))
        }
    }
}

#[async_trait]
impl HealthCheck for Check {
    async fn check(&self, target: &Backend) -> Result<()> {
        let addr = *target
            .addr
            .as_inet()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "not an inet peer"))?;
        match tokio::time::timeout(self.spec.timeout, self.probe(addr)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Error::e_explain(ErrorType::ConnectError, reason),
            Err(_) => Error::e_explain(ErrorType::ConnectTimedout, "health check timed out"),
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.spec.healthy_threshold
        } else {
            self.spec.unhealthy_threshold
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::EchoServer;
    use std::time::Duration;

    fn spec(kind: HealthCheckKind) -> HealthCheckSpec {
        HealthCheckSpec {
            kind,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        }
    }

    fn backend(addr: SocketAddr) -> Backend {
        Backend::new(&addr.to_string()).unwrap()
    }

    #[tokio::test]
    async fn tcp_and_http_checks_against_a_real_server() {
        let server = EchoServer::start("svc").await.unwrap();
        let tcp = Check::new(&spec(HealthCheckKind::Tcp), "svc");
        let http = Check::new(
            &spec(HealthCheckKind::Http {
                path: "/health".into(),
            }),
            "svc",
        );
        assert!(tcp.check(&backend(server.addr)).await.is_ok());
        assert!(http.check(&backend(server.addr)).await.is_ok());

        server.set_status(503);
        assert!(
            http.check(&backend(server.addr)).await.is_err(),
            "503 is unhealthy"
        );
        assert!(
            tcp.check(&backend(server.addr)).await.is_ok(),
            "tcp only needs a connection"
        );

        server.set_status(0);
        server.set_delay(Duration::from_secs(2));
        let started = std::time::Instant::now();
        assert!(
            http.check(&backend(server.addr)).await.is_err(),
            "a slow answer times out"
        );
        assert!(started.elapsed() < Duration::from_secs(1));

        let closed = server.addr;
        drop(server);
        assert!(tcp.check(&backend(closed)).await.is_err(), "refused");
    }
}
